"""CoLeaF (Sardari et al., ECCV 2024): contrastive-collaborative learning on CMPAE's network.

| stage | what it does | schedule | keeps |
| --- | --- | --- | --- |
| jomold_estimator, jomold_ratios | JoMoLD's, unchanged (or the released noise_ratios.npz: setting `noise_ratios`) | | |
| coleaf_train | CMPAE's loss with CoLeaF's weights (audio 2.0, visual 1.0, video 2.0, contrastive 1.0, mutual 1.0) and the single-modality branches' teaching (`avvp.methods.collaborative`) | 10 ep, Adam 5e-4, batch 128, step 6 x0.25 (branches the same) | best validation mean of the ten numbers under CoLeaF's rule (gates 0.52) |

The values are the released option.py's and main.py's (its README runs main.py with no options).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avvp.methods.cmpae import CmpaeSettings, noise_ratio_arrays
from avvp.methods.stages import Method, StageInput, TrainingStage, register_method, register_stage


@dataclass(frozen=True)
class CoLeaFSettings(CmpaeSettings):
    """CoLeaF's training stage: CMPAE's settings on CoLeaF's network."""

    def model_options(self) -> dict[str, Any]:
        return {**super().model_options(), "network": "coleaf"}


def _objective(settings: CoLeaFSettings, inputs: Mapping[str, Path], classes: Sequence[str]) -> Any:
    from avvp.methods.collaborative import CoLeaFObjective

    audio, visual = noise_ratio_arrays(settings, inputs, classes)
    return CoLeaFObjective(audio, visual, settings.visual_smoothing, lr=settings.lr, step_size=settings.step_size,
                           gamma=settings.gamma)


register_stage(TrainingStage(
    id="coleaf_train",
    description="CoLeaF's training: CMPAE's network and loss with two single-modality branches that learn beside "
                "it and teach it; keeps the best validation mean of the ten numbers",
    defaults=CoLeaFSettings(epochs=10, batch_size=128, lr=5e-4, step_size=6, gamma=0.25, visual_dropout=0.5,
                            keep="mean_of_ten", validation_rule="coleaf_as_published"),
    objective=_objective,
    inputs=(StageInput("ratios", "jomold_ratios", help="the jomold_ratios folder (ratios.json)"),),
))
register_method(Method("coleaf", "CoLeaF", ("jomold_estimator", "jomold_ratios", "coleaf_train")))
