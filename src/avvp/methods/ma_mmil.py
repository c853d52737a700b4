"""MA-MMIL stage 2 (Wu and Yang, CVPR 2021): modality-aware label refinement by swapping tracks.

With a frozen stage-1 model, each training video is paired with a partner video that shares none of
its classes. Replacing one modality's features by the partner's removes that modality's evidence for
the video's own classes: if, with the audio replaced, the model no longer finds class c in either
modality, the visual track never showed c, so c's visual label is noise (and symmetrically). The
thresholds scale with how often the model gets each class and modality wrong on the training split.

| stage | what it does | schedule | keeps |
| --- | --- | --- | --- |
| ma_mmil_stage1 | HAN + contrastive (audio after vs visual before attention) | 12 ep, as HAN | final |
| ma_mmil_refine | refined audio and visual labels from the frozen stage-1 model | one pass | - |
| ma_mmil_stage3 | as stage 1, on the refined labels | 12 ep, as HAN | final |
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from avvp.methods.label_tables import read_label_table, table_rows, write_label_table
from avvp.methods.settings import FaithfulSettings, TrainSettings, setting
from avvp.methods.stages import Method, Pass, PassJob, StageInput, TrainingStage, register_method, register_stage

if TYPE_CHECKING:
    import torch

    from avvp.features.store import PackedSplit
    from avvp.model.han import HAN

JUDGE_FACTOR = 0.5  # a label is noise when both probabilities fall below 0.5 x delta


def draw_partners(labels: np.ndarray, seed: int, filenames: Sequence[str] | None = None) -> np.ndarray:
    """For each video (row of the (N, C) weak labels), a uniformly drawn other row sharing no class.

    Seeded (numpy's default generator), so the draw can be repeated and recorded. A video that shares
    a class with every other video is an error naming it.
    """
    present = np.asarray(labels) > 0
    n = len(present)
    patterns, pattern_of = np.unique(present, axis=0, return_inverse=True)
    pattern_of = pattern_of.reshape(-1)
    disjoint = ~(patterns.astype(np.int64) @ patterns.T.astype(np.int64)).astype(bool)  # (P, P)
    rng = np.random.default_rng(seed)
    partners = np.empty(n, np.int64)
    for p in range(len(patterns)):
        videos = np.flatnonzero(pattern_of == p)
        candidates = np.flatnonzero(disjoint[p][pattern_of])  # holds the videos themselves iff p is empty
        holds_self = not patterns[p].any()
        n_choices = len(candidates) - (1 if holds_self else 0)
        if n_choices <= 0:
            name = filenames[videos[0]] if filenames is not None else f"row {videos[0]}"
            raise ValueError(f"video {name} shares a class with every other training video: no partner to draw")
        draw = rng.integers(0, n_choices, size=len(videos))
        if holds_self:  # skip each video's own position among the candidates
            own = np.searchsorted(candidates, videos)
            draw = draw + (draw >= own)
        partners[videos] = candidates[draw]
    return partners


def modality_error(prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C,) fraction of videos whose decision prob > 0.5 differs from the weak label."""
    return ((np.asarray(prob) > 0.5) != (np.asarray(labels) > 0)).mean(axis=0)


def noise_thresholds(error: np.ndarray) -> np.ndarray:
    """delta = err / max(err): 1 for the class the model gets wrong most often, 0 everywhere when
    it gets every class right (then no label is judged noise)."""
    top = float(np.max(error)) if np.size(error) else 0.0
    return np.zeros_like(error, dtype=np.float64) if top == 0 else np.asarray(error, np.float64) / top


def judge_noise(labels: np.ndarray, audio_replaced: tuple[np.ndarray, np.ndarray],
                visual_replaced: tuple[np.ndarray, np.ndarray], delta_audio: np.ndarray,
                delta_visual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(noisy_audio, noisy_visual), each (N, C) bool, among the labelled (video, class) pairs.

    Visual label noisy: with the audio replaced, both a_prob and v_prob < 0.5 delta_v[c].
    Audio label noisy: with the visual replaced, both < 0.5 delta_a[c].
    """
    present = np.asarray(labels) > 0
    limit_v = JUDGE_FACTOR * np.asarray(delta_visual)
    limit_a = JUDGE_FACTOR * np.asarray(delta_audio)
    noisy_visual = present & (audio_replaced[0] < limit_v) & (audio_replaced[1] < limit_v)
    noisy_audio = present & (visual_replaced[0] < limit_a) & (visual_replaced[1] < limit_a)
    return noisy_audio, noisy_visual


@dataclass(frozen=True)
class Refinement:
    """Stage 2's result for the videos of a packed training split, in its order."""

    audio_labels: np.ndarray  # (N, C) float32
    visual_labels: np.ndarray  # (N, C) float32
    partners: np.ndarray  # (N,) row of each video's partner
    error_audio: np.ndarray  # (C,)
    error_visual: np.ndarray
    delta_audio: np.ndarray
    delta_visual: np.ndarray


def refine_labels(model: HAN, packed: PackedSplit, seed: int, device: torch.device,
                  batch_size: int = 128) -> Refinement:
    """Draw partners, run the three passes of the frozen model and judge every weak label."""
    from avvp.methods.passes import modality_probabilities

    labels = np.asarray(packed.labels) > 0
    partners = draw_partners(labels, seed, packed.filenames)
    probs = modality_probabilities(model, packed, device, batch_size, partners)
    error_audio = modality_error(probs["original"][0], labels)
    error_visual = modality_error(probs["original"][1], labels)
    delta_audio, delta_visual = noise_thresholds(error_audio), noise_thresholds(error_visual)
    noisy_audio, noisy_visual = judge_noise(labels, probs["audio_replaced"], probs["visual_replaced"],
                                            delta_audio, delta_visual)
    return Refinement((labels & ~noisy_audio).astype(np.float32), (labels & ~noisy_visual).astype(np.float32),
                      partners, error_audio, error_visual, delta_audio, delta_visual)


def write_refinement(out_dir: str | Path, packed: PackedSplit, refinement: Refinement, seed: int,
                     **provenance: Any) -> Path:
    """out_dir/{audio_labels.tsv, visual_labels.tsv, partners.tsv, refine.json}.

    refine.json records the seed, the per-class errors and thresholds, and how many labels of each
    class each modality lost.
    """
    tmp = Path(out_dir)
    tmp.mkdir(parents=True, exist_ok=True)
    classes = list(packed.classes)
    names = list(packed.filenames)
    write_label_table(tmp / "audio_labels.tsv", names, refinement.audio_labels, classes)
    write_label_table(tmp / "visual_labels.tsv", names, refinement.visual_labels, classes)
    lines = ["filename\tpartner"] + [f"{names[i]}\t{names[j]}" for i, j in enumerate(refinement.partners)]
    (tmp / "partners.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    weak = np.asarray(packed.labels) > 0
    summary = {
        "seed": seed,
        "n_videos": len(names),
        "classes": classes,
        "labelled": weak.sum(axis=0).tolist(),
        "removed_audio": (weak & (refinement.audio_labels == 0)).sum(axis=0).tolist(),
        "removed_visual": (weak & (refinement.visual_labels == 0)).sum(axis=0).tolist(),
        "error_audio": refinement.error_audio.tolist(),
        "error_visual": refinement.error_visual.tolist(),
        "delta_audio": refinement.delta_audio.tolist(),
        "delta_visual": refinement.delta_visual.tolist(),
        **provenance,
    }
    (tmp / "refine.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return tmp


# ----------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class RefineSettings:
    """The refinement pass (the partner draw uses the run's seed)."""

    batch_size: int = setting(128, "videos per forward pass", minimum=1)


def _refine(job: PassJob) -> str:
    model, packed, device, _ = job.frozen_model()
    refinement = refine_labels(model, packed, job.seed, device, job.settings.batch_size)
    write_refinement(job.out_dir, packed, refinement, job.seed, checkpoint=str(job.inputs["checkpoint"]))
    return f"refined labels of {len(packed)} videos"


def _contrastive(settings: TrainSettings, inputs: Mapping[str, Path], classes: Sequence[str]) -> Any:
    from avvp.methods.objectives import HanContrastiveObjective

    return HanContrastiveObjective(settings.visual_smoothing, "input",
                                   video_target_from_audio=getattr(settings, "faithful", False))


def _refined_targets(inputs: Mapping[str, Path], packed: PackedSplit) -> Any:
    from avvp.methods.training import ModalityTargets

    tables = [Path(inputs["refined"]) / f"{m}_labels.tsv" for m in ("audio", "visual")]
    return ModalityTargets(*(table_rows(read_label_table(path, packed.classes), packed.filenames,
                                        (len(packed.classes),), path) for path in tables))


register_stage(TrainingStage(
    id="ma_mmil_stage1",
    description="MA-MMIL stage 1: HAN plus the contrastive term (audio after vs visual before attention)",
    defaults=TrainSettings(epochs=12, keep="final"),
    objective=_contrastive,
))
register_stage(Pass("ma_mmil_refine", "MA-MMIL stage 2: refined audio and visual label tables from the frozen "
                    "stage-1 model (partner videos drawn with the run's seed)", RefineSettings(), _refine,
                    model_of="ma_mmil_stage1"))
register_stage(TrainingStage(
    id="ma_mmil_stage3",
    description="MA-MMIL stage 3: stage 1's training from scratch on the refined labels (faithful: a removed "
                "audio label also leaves the video-level target, as in the released code)",
    defaults=FaithfulSettings(epochs=12, keep="final"),
    objective=_contrastive,
    targets=_refined_targets,
    inputs=(StageInput("refined", "ma_mmil_refine", help="the ma_mmil_refine folder (audio/visual label tables)"),),
))
register_method(Method("ma_mmil", "MA-MMIL", ("ma_mmil_stage1", "ma_mmil_refine", "ma_mmil_stage3")))
