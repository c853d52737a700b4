"""Each training stage's settings: schedule, model options, checkpoint choice and objective.

| method | what it trains | schedule | keeps |
| --- | --- | --- | --- |
| han | HAN, the paper's loss | 40 ep, Adam 3e-4, batch 16, step 10 x0.1 | best val segment Type@AV |
| ma_mmil_stage1 | HAN + contrastive (audio after vs visual before attention) | 12 ep, as HAN | final |
| ma_mmil_stage3 | as stage 1, on refined audio/visual labels | 12 ep, as HAN | final |
| jomold_estimator | HAN without cross-modal attention + contrastive (both after) | 25 ep, Adam 5e-4, batch 128, step 6 x0.25 | best val event audio F |
| jomold | denoised training, visual dropout 0.5 | as the estimator | best val event audio F |

The estimator also has the visual dropout 0.5: the released JoMoLD code builds one network class,
with that dropout, for both of its training stages.
"""
from __future__ import annotations

from typing import Any

from avvp.methods.jomold import JointDenoisingObjective, NoiseRatios
from avvp.methods.objectives import HanContrastiveObjective, HanObjective, Objective
from avvp.training import TrainConfig

_JOMOLD = {"epochs": 25, "batch_size": 128, "lr": 5e-4, "step_size": 6, "gamma": 0.25,
           "visual_dropout": 0.5, "select": "event_audio"}
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "han": {},
    "ma_mmil_stage1": {"epochs": 12, "select": "final"},
    "ma_mmil_stage3": {"epochs": 12, "select": "final"},
    "jomold_estimator": {**_JOMOLD, "cross_modal": False},
    "jomold": dict(_JOMOLD),
}
METHODS = tuple(METHOD_DEFAULTS)


def method_config(method: str, **overrides: Any) -> TrainConfig:
    """The stage's TrainConfig: its defaults, then `overrides` (any TrainConfig field)."""
    if method not in METHOD_DEFAULTS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    return TrainConfig(**{**METHOD_DEFAULTS[method], **overrides})


def build_objective(method: str, config: TrainConfig, faithful: bool = False, has_targets: bool = False,
                    noise_ratios: NoiseRatios | None = None) -> Objective:
    """The stage's loss. ma_mmil_stage3 needs refined targets and jomold noise ratios; no other stage
    takes them. `faithful` reproduces the released code where it departs from the papers
    (MA-MMIL stage 3: the video-level target aliases the audio target; JoMoLD: its ramp and its
    contrastive variant); it changes nothing for han and ma_mmil_stage1."""
    if method not in METHOD_DEFAULTS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    if has_targets != (method == "ma_mmil_stage3"):
        raise ValueError("refined audio/visual labels are required by ma_mmil_stage3 and taken by no other method"
                         f" (method {method})")
    if (noise_ratios is not None) != (method == "jomold"):
        raise ValueError(f"noise ratios are required by jomold and taken by no other method (method {method})")
    smoothing = config.visual_smoothing
    if method == "han":
        return HanObjective(smoothing)
    if method in ("ma_mmil_stage1", "ma_mmil_stage3"):
        return HanContrastiveObjective(smoothing, "input", video_target_from_audio=faithful and method == "ma_mmil_stage3")
    if method == "jomold_estimator":
        return HanContrastiveObjective(smoothing, "output", expected_probability=faithful)
    assert noise_ratios is not None
    return JointDenoisingObjective(noise_ratios.audio, noise_ratios.visual, smoothing, faithful=faithful)
