"""Training objectives for the generic loop in `avvp.methods.training`: one call per batch -> a scalar loss.

An objective sees the model, the batch inputs, the weak (video-level) labels, the per-modality
labels (the weak ones unless a refinement stage changed them), the batch's rows in the training
split and where the batch falls in training (for ramps). HAN's objective is the paper's loss; the
others add the contrastive term, drop labels on the fly, or (VALOR) train the segment logits on
segment-level labels.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from avvp.methods.contrastive import SMOOTHING, TEMPERATURE, contrastive_loss
from avvp.model.han import HAN

EPS = 1e-7


def bce(prob: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy on probabilities clamped to [1e-7, 1 - 1e-7], as the published code."""
    return torch.nn.functional.binary_cross_entropy(prob.clamp(EPS, 1 - EPS), target, reduction=reduction)


def visual_target(labels: Tensor, smoothing: float, visual_labels: Tensor | None = None) -> Tensor:
    """(1 - s) y + s / 2; a weak label that `visual_labels` removes gets 0 (not s / 2), as in the
    released MA-MMIL and JoMoLD code."""
    target = labels * (1 - smoothing) + smoothing / 2
    if visual_labels is None:
        return target
    removed = (labels > 0) & (visual_labels <= 0)
    return target.masked_fill(removed, 0.0)


def han_loss(outputs: tuple[Tensor, Tensor, Tensor, Tensor], labels: Tensor, smoothing: float,
             audio_labels: Tensor | None = None, visual_labels: Tensor | None = None) -> Tensor:
    """The paper's loss: video, audio and (label-smoothed) visual MIL terms.

    The audio and visual terms use the per-modality labels when given, the weak labels otherwise.
    """
    global_prob, a_prob, v_prob, _ = outputs
    audio_target = labels if audio_labels is None else audio_labels
    return (bce(global_prob, labels) + bce(a_prob, audio_target)
            + bce(v_prob, visual_target(labels, smoothing, visual_labels)))


@dataclass(frozen=True)
class Batch:
    """One training batch as an objective sees it."""

    inputs: tuple[Tensor, ...]  # the model's features, in its feature set's order
    labels: Tensor  # (B, C) weak video-level labels
    audio_labels: Tensor  # (B, C) per-modality labels: the weak ones unless refined; (B, 10, C) segment-level
    visual_labels: Tensor
    rows: np.ndarray  # (B,) rows of the training split
    epoch: int  # 1-based
    index: int  # 0-based batch index within the epoch
    n_batches: int  # batches per epoch


class Objective(Protocol):
    """A training loss; `describe()` goes into checkpoints, so a resumed run must match it. An
    objective that trains networks of its own (CoLeaF's branches) also has `state_dict()` and
    `load_state_dict(state, model)`, which last.pt carries."""

    def __call__(self, model: HAN, batch: Batch) -> Tensor: ...

    def describe(self) -> dict[str, Any]: ...


def describe(objective: Any) -> dict[str, Any]:
    """A dataclass objective's settings, with its class name, as plain JSON-able values."""
    fields = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
              for k, v in dataclasses.asdict(objective).items()}
    return {"objective": type(objective).__name__, **fields}


@dataclass(frozen=True)
class HanObjective:
    """HAN's loss on the per-modality labels (the paper's recipe when they are the weak labels)."""

    smoothing: float = 0.1

    def __call__(self, model: HAN, batch: Batch) -> Tensor:
        return han_loss(model(*batch.inputs), batch.labels, self.smoothing, batch.audio_labels, batch.visual_labels)

    def describe(self) -> dict[str, Any]:
        return describe(self)


@dataclass(frozen=True)
class HanContrastiveObjective:
    """HAN's loss plus the segment-matching term (MA-MMIL stages 1 and 3, JoMoLD's noise estimator).

    `visual_stream` picks the visual side of the contrastive pair: "input" is the fused visual
    stream before the attention layer (MA-MMIL), "output" the one after it (JoMoLD); the audio side
    is always after. `video_target_from_audio` reproduces the released MA-MMIL stage 3, whose
    video-level target is the same array as the audio target, so a removed audio label also leaves
    the video-level target. `expected_probability` selects JoMoLD's released contrastive variant.
    """

    smoothing: float = 0.1
    visual_stream: Literal["input", "output"] = "input"
    video_target_from_audio: bool = False
    expected_probability: bool = False
    weight: float = 1.0
    temperature: float = TEMPERATURE
    contrastive_smoothing: float = SMOOTHING

    def __post_init__(self) -> None:
        if self.visual_stream not in ("input", "output"):
            raise ValueError(f"visual_stream must be 'input' or 'output', not {self.visual_stream!r}")

    def __call__(self, model: HAN, batch: Batch) -> Tensor:
        streams = model.encode(*batch.inputs)
        labels = batch.audio_labels if self.video_target_from_audio else batch.labels
        loss = han_loss(model.classify(streams), labels, self.smoothing, batch.audio_labels, batch.visual_labels)
        visual = streams.visual_in if self.visual_stream == "input" else streams.visual
        return loss + self.weight * contrastive_loss(streams.audio, visual, self.temperature,
                                                     self.contrastive_smoothing, self.expected_probability)

    def describe(self) -> dict[str, Any]:
        return describe(self)


@dataclass(frozen=True)
class ValorObjective:
    """VALOR's loss: the video-level BCE of the global score plus, per modality, BCE with logits of
    the segment logits against the segment-level pseudo labels (the batch's (B, 10, C) audio and
    visual labels); every term weighs 1, each the mean over its elements."""

    def __call__(self, model: HAN, batch: Batch) -> Tensor:
        streams = model.encode(*batch.inputs)
        visual = model.visual_dropout(streams.visual)
        global_prob = model.head(streams.audio, visual)[0]
        logits = model.frame_logits(streams.audio, visual)  # (B, 10, 2, C)
        with_logits = torch.nn.functional.binary_cross_entropy_with_logits
        return (bce(global_prob, batch.labels) + with_logits(logits[:, :, 0], batch.audio_labels)
                + with_logits(logits[:, :, 1], batch.visual_labels))

    def describe(self) -> dict[str, Any]:
        return describe(self)
