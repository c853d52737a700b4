"""JoMoLD (Cheng et al., ECCV 2022): joint-modal label denoising.

A noise estimator (HAN without cross-modal attention) gives, per class, the fraction of weak labels
that are probably noise in each modality (`estimate_noise_ratios`, the pass `jomold_ratios`).
Denoised training then, on every batch, drops that fraction of each class's labels
(`avvp.methods.denoising`).

| stage | what it does | schedule | keeps |
| --- | --- | --- | --- |
| jomold_estimator | HAN without cross-modal attention + contrastive (both after) | 25 ep, Adam 5e-4, batch 128, step 6 x0.25 | best val event audio F |
| jomold_ratios | per-class noise ratios from the frozen estimator, without cross-modal attention | one pass | - |
| jomold_denoise | denoised training, visual dropout 0.5 | as the estimator | best val event audio F |

The estimator also has the visual dropout 0.5: the released JoMoLD code builds one network class,
with that dropout, for both of its training stages.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from avvp.base.atomic import atomic_output
from avvp.methods.settings import FaithfulSettings, probability, setting
from avvp.methods.stages import Method, Pass, PassJob, StageInput, TrainingStage, register_method, register_stage

if TYPE_CHECKING:
    import torch

    from avvp.features.store import PackedSplit
    from avvp.model.han import HAN

AUDIO_THRESHOLD = 0.6  # audio label noisy when a_prob < 0.6 x the class mean
VISUAL_THRESHOLD = 1.8  # visual label noisy when (1 - s/2) v_prob < 1.8 x the class mean


@dataclass(frozen=True, eq=False)
class NoiseRatios:
    """Per-class noise ratios r_a, r_v (C,) and what they were computed from."""

    classes: tuple[str, ...]
    audio: np.ndarray
    visual: np.ndarray
    labelled: np.ndarray  # (C,) training videos labelled with the class
    audio_mean: np.ndarray  # (C,) class means of the predicted probabilities
    visual_mean: np.ndarray


def noise_ratios(a_prob: np.ndarray, v_prob: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                 visual_smoothing: float = 0.1, audio_threshold: float = AUDIO_THRESHOLD,
                 visual_threshold: float = VISUAL_THRESHOLD,
                 class_means: tuple[np.ndarray, np.ndarray] | None = None) -> NoiseRatios:
    """r_m[c] = noisy labelled (video, c) pairs / videos labelled c (0 for a class nobody has).

    Class means run over all videos unless given (audio, visual). The visual rule scales v_prob by
    the estimator's smoothed target of a present class, (1 - s/2) = 0.95, as the released code does.
    """
    present = np.asarray(labels) > 0
    a_mean, v_mean = class_means or (np.asarray(a_prob).mean(axis=0), np.asarray(v_prob).mean(axis=0))
    noisy_v = present & ((1 - visual_smoothing / 2) * v_prob < visual_threshold * v_mean)
    noisy_a = present & (a_prob < audio_threshold * a_mean)
    labelled = present.sum(axis=0)
    denominator = np.maximum(labelled, 1)
    return NoiseRatios(tuple(classes), noisy_a.sum(axis=0) / denominator, noisy_v.sum(axis=0) / denominator,
                       labelled, a_mean, v_mean)


def batch_means(prob: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
    """(C,) the released ratio pass's class means: the mean of each batch's class means, every batch
    weighing the same, over the batches of a loader shuffled with `seed` that keeps its last, partial
    batch."""
    prob = np.asarray(prob)
    order = np.random.default_rng(seed).permutation(len(prob))
    batches = [prob[order[start:start + batch_size]] for start in range(0, len(prob), batch_size)]
    return np.mean([batch.mean(axis=0) for batch in batches], axis=0)


def estimate_noise_ratios(model: HAN, packed: PackedSplit, device: torch.device, visual_smoothing: float = 0.1,
                          batch_size: int = 128, shuffle_seed: int | None = None) -> NoiseRatios:
    """One eval-mode pass of the noise estimator over the packed training split; with `shuffle_seed`,
    the class means of the released pass (`batch_means`) instead of those of the whole split."""
    from avvp.methods.passes import modality_probabilities

    a_prob, v_prob = modality_probabilities(model, packed, device, batch_size)["original"]
    means = None if shuffle_seed is None else (batch_means(a_prob, batch_size, shuffle_seed),
                                               batch_means(v_prob, batch_size, shuffle_seed))
    return noise_ratios(a_prob, v_prob, np.asarray(packed.labels), packed.classes, visual_smoothing, class_means=means)


def write_noise_ratios(path: str | Path, ratios: NoiseRatios, **provenance: Any) -> None:
    body = {
        "classes": list(ratios.classes),
        "audio": ratios.audio.tolist(),
        "visual": ratios.visual.tolist(),
        "labelled": ratios.labelled.tolist(),
        "audio_mean": ratios.audio_mean.tolist(),
        "visual_mean": ratios.visual_mean.tolist(),
        **provenance,
    }
    with atomic_output(path, "w") as fh:
        fh.write(json.dumps(body, indent=1))


def read_noise_ratios(path: str | Path, classes: Sequence[str]) -> NoiseRatios:
    """Load a ratios file written for the same class list; ratios must lie in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"noise ratios file {path} does not exist")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        got = tuple(body["classes"])
        arrays = {k: np.asarray(body[k], np.float64) for k in ("audio", "visual", "labelled", "audio_mean", "visual_mean")}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a noise ratios file ({err!r})") from None
    if got != tuple(classes):
        raise ValueError(f"{path} was computed for classes {list(got)}, not {list(classes)}")
    for key in ("audio", "visual"):
        values = arrays[key]
        if values.shape != (len(classes),) or not np.all((values >= 0) & (values <= 1)):
            raise ValueError(f"{path}: {key!r} must hold {len(classes)} ratios in [0, 1]")
    return NoiseRatios(got, arrays["audio"], arrays["visual"], arrays["labelled"].astype(np.int64),
                       arrays["audio_mean"], arrays["visual_mean"])


# ----------------------------------------------------------------------------- stages

RATIOS_FILE = "ratios.json"
RELEASED_SMOOTHING = 0.1  # JoMoLD's visual smoothing (a released checkpoint records none): positives weigh 0.95


@dataclass(frozen=True)
class RatioSettings:
    """The noise-ratio pass."""

    batch_size: int = setting(128, "videos per forward pass (faithful: per batch of the class means)", minimum=1)
    visual_smoothing: float | None = probability(None, "the estimator's visual label smoothing (null: the one its "
                                                 "checkpoint was trained with; faithful: 0.1, as the released pass)")
    faithful: bool = setting(False, "the released pass: class means of shuffled batches (the run's seed) averaged "
                             "with equal weights, visual smoothing 0.1")


def _ratios(job: PassJob) -> str:
    model, packed, device, payload = job.frozen_model()
    checkpoint = job.inputs["checkpoint"]
    settings = job.settings
    smoothing = settings.visual_smoothing
    if smoothing is None:  # the released pass's data have the loader's default, whatever the estimator had
        trained = payload.get("config", {}).get("visual_smoothing", RELEASED_SMOOTHING)
        smoothing = RELEASED_SMOOTHING if settings.faithful else trained
    seed = job.seed if settings.faithful else None
    ratios = estimate_noise_ratios(model, packed, device, smoothing, settings.batch_size, seed)
    write_noise_ratios(job.out_dir / RATIOS_FILE, ratios, checkpoint=str(checkpoint), n_videos=len(packed),
                       visual_smoothing=smoothing, faithful=settings.faithful, shuffle_seed=seed)
    return f"noise ratios of {len(packed.classes)} classes -> {job.out_dir / RATIOS_FILE}"


def _explain_ratios(folder: Path) -> str | None:
    """A modality whose noise ratios are 1 for every labelled class loses all its labels in training."""
    body = json.loads((folder / RATIOS_FILE).read_text(encoding="utf-8"))
    labelled = np.asarray(body["labelled"]) > 0
    notes = []
    for modality in ("audio", "visual"):
        ratios = np.asarray(body[modality])[labelled]
        if ratios.size and np.all(ratios >= 1.0):
            notes.append(f"its noise ratios drop every {modality} label (ratio 1 for all {ratios.size} labelled "
                         f"classes): the model is trained without a single {modality} label, so its {modality} "
                         "and audio-visual scores say nothing of the method (a 0 there is its rule at work, not "
                         "a fault)")
    return "; ".join(notes) or None


def _estimator_objective(settings: FaithfulSettings, inputs: Mapping[str, Path], classes: Sequence[str]) -> Any:
    from avvp.methods.objectives import HanContrastiveObjective

    return HanContrastiveObjective(settings.visual_smoothing, "output", expected_probability=settings.faithful)


def _denoise_objective(settings: FaithfulSettings, inputs: Mapping[str, Path], classes: Sequence[str]) -> Any:
    from avvp.methods.denoising import JointDenoisingObjective

    ratios = read_noise_ratios(Path(inputs["ratios"]) / RATIOS_FILE, classes)
    return JointDenoisingObjective(ratios.audio, ratios.visual, settings.visual_smoothing, faithful=settings.faithful)


_SCHEDULE = FaithfulSettings(epochs=25, batch_size=128, lr=5e-4, step_size=6, gamma=0.25, visual_dropout=0.5,
                             keep="event_audio")
register_stage(TrainingStage(
    id="jomold_estimator",
    description="JoMoLD's noise estimator: HAN without cross-modal attention plus the contrastive term "
                "(faithful: the released contrastive variant)",
    defaults=replace(_SCHEDULE, cross_modal=False),
    objective=_estimator_objective,
))
register_stage(Pass("jomold_ratios", "JoMoLD: per-class audio and visual noise ratios from the frozen estimator, "
                    "run without cross-modal attention (faithful: the released per-batch class means)",
                    RatioSettings(), _ratios, model_of="jomold_estimator", model_options={"cross_modal": False},
                    explain=_explain_ratios))
register_stage(TrainingStage(
    id="jomold_denoise",
    description="JoMoLD's denoised training: labels dropped per batch at the noise ratios (faithful: the "
                "released ramp, nothing dropped in epoch 1, and contrastive variant)",
    defaults=_SCHEDULE,
    objective=_denoise_objective,
    inputs=(StageInput("ratios", "jomold_ratios", help="the jomold_ratios folder (ratios.json)"),),
))
register_method(Method("jomold", "JoMoLD", ("jomold_estimator", "jomold_ratios", "jomold_denoise")))
