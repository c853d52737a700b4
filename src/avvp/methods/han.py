"""HAN (Tian, Li, Xu, ECCV 2020): one training stage with the paper's recipe (PROTOCOL §4)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avvp.methods.settings import TrainSettings
from avvp.methods.stages import Method, TrainingStage, register_method, register_stage


def _objective(settings: TrainSettings, inputs: Mapping[str, Path], classes: Sequence[str]) -> Any:
    from avvp.methods.objectives import HanObjective

    return HanObjective(settings.visual_smoothing)


register_stage(TrainingStage(
    id="han",
    description="HAN with the paper's loss and recipe; keeps the best validation segment-level Type@AV",
    defaults=TrainSettings(),
    objective=_objective,
))
register_method(Method("han", "HAN", ("han",)))
