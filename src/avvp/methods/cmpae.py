"""CMPAE (Gao, Chen, Xu, CVPR 2023): cross-modal presence-absence evidence on JoMoLD's denoised labels.

CMPAE trains its own network (`avvp.model.cmpae.CMPAENet`: evidential head, encoder mix) on the
labels JoMoLD's noise ratios leave (the released ramp: nothing dropped in epoch 1), with the
label-smoothed segment-matching term and an uncertainty-weighted mutual-learning term between the
video-level branch and the modality probabilities (`avvp.methods.evidential`).

| stage | what it does | schedule | keeps |
| --- | --- | --- | --- |
| jomold_estimator, jomold_ratios | JoMoLD's, unchanged (or the released noise_ratios.npz: setting `noise_ratios`) | | |
| cmpae_train | CMPAE's loss: audio 2.0, visual 0.6, video 0.6, contrastive 1.0, mutual 1.0 | 20 ep, Adam 5e-4, batch 128, step 6 x0.25 | best validation mean of the ten numbers under CMPAE's rule (gates 0.45) |

The weights and schedule are the released option.py's defaults, which its train.sh does not change.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avvp.methods.settings import TrainSettings, setting
from avvp.methods.stages import Method, StageInput, TrainingStage, register_method, register_stage


@dataclass(frozen=True)
class CmpaeSettings(TrainSettings):
    """CMPAE's training stage: the HAN recipe's fields with CMPAE's values, on CMPAE's network."""

    noise_ratios: str = setting("", "a released noise_ratios.npz (arrays audio and visual, one ratio per class) "
                                "used instead of the jomold_ratios pass's; empty: the pass's", path=True)

    pooled_inputs = False  # CMPAENet's input layers end in an ELU

    def model_options(self) -> dict[str, Any]:
        return {**super().model_options(), "network": "cmpae"}


def read_released_ratios(path: str | Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(audio, visual) ratios of a released noise_ratios.npz (CMPAE's and CoLeaF's repositories ship
    one: float64 arrays `audio` and `visual` of one ratio per class)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"noise ratios file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            audio, visual = np.asarray(arrays["audio"], np.float64), np.asarray(arrays["visual"], np.float64)
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"{path}: not a noise_ratios.npz with arrays audio and visual ({err})") from None
    for name, values in (("audio", audio), ("visual", visual)):
        if values.shape != (n_classes,) or not np.all((values >= 0) & (values <= 1)):
            raise ValueError(f"{path}: {name!r} must hold {n_classes} ratios in [0, 1], got shape {values.shape}")
    return audio, visual


def noise_ratio_arrays(settings: CmpaeSettings, inputs: Mapping[str, Path],
                       classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(audio, visual) ratios: the released file the settings name, else the jomold_ratios pass's."""
    from avvp.methods.jomold import RATIOS_FILE, read_noise_ratios  # a method module: imported when used

    if settings.noise_ratios:
        return read_released_ratios(settings.noise_ratios, len(classes))
    ratios = read_noise_ratios(Path(inputs["ratios"]) / RATIOS_FILE, classes)
    return ratios.audio, ratios.visual


def _objective(settings: CmpaeSettings, inputs: Mapping[str, Path], classes: Sequence[str]) -> Any:
    from avvp.methods.evidential import CmpaeObjective

    return CmpaeObjective(*noise_ratio_arrays(settings, inputs, classes), settings.visual_smoothing)


register_stage(TrainingStage(
    id="cmpae_train",
    description="CMPAE's training: its evidential network on JoMoLD's denoised labels (the released ramp) with the "
                "contrastive and mutual-learning terms; keeps the best validation mean of the ten numbers",
    defaults=CmpaeSettings(epochs=20, batch_size=128, lr=5e-4, step_size=6, gamma=0.25, visual_dropout=0.5,
                           keep="mean_of_ten", validation_rule="cmpae_as_published"),
    objective=_objective,
    inputs=(StageInput("ratios", "jomold_ratios", help="the jomold_ratios folder (ratios.json)"),),
))
register_method(Method("cmpae", "CMPAE", ("jomold_estimator", "jomold_ratios", "cmpae_train")))
