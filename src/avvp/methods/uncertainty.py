"""UWAV's training objective (Lai et al., CVPR 2025): HAN trained on the generator's segment logits
turned into uncertainty-weighted soft labels, with class-balanced weights and feature mixup.

For a modality with generator segment logits z (B, T, C), per-class thresholds theta (C,) and the
video's labels y (B, C):
- soft labels: s = sigmoid((z - theta) / 2) for the video's classes, 0 for the others; a threshold of
  -inf (the threshold search kept every segment of the class) becomes the class's smallest logit in
  the batch minus 1, so its labels stay finite;
- the segment term: mean over (B, T, C) of BCE with logits of HAN's segment logits against s, each
  term weighted (w+, w-) by whether its class is a label of the video (`inverse_frequency_weights`);
- the mixup term: HAN's segment features after the attention layers, flattened to B x T segments,
  mixed with a permutation of them, lam x + (1 - lam) x[perm] with lam ~ Beta(alpha, alpha), through
  the shared classifier, against both soft labels in the same proportion (unweighted, mean);
  lam and perm are drawn per modality, audio first, after the forward pass;
- loss = video BCE + segment_weight (audio + visual) + mixup_weight (audio + visual).
The network's frame logits and its audio/visual streams are the same for both modalities' terms;
the batch's audio and visual labels are the generator's (B, 10, C) segment logits.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from avvp.methods.objectives import Batch, bce, describe
from avvp.methods.uwav import inverse_frequency_weights
from avvp.model.han import HAN

# (alpha, number of segments, device) -> (lam, permutation of the segments)
Draw = Callable[[float, int, torch.device], tuple[Tensor, Tensor]]


def beta_draw(alpha: float, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """lam ~ Beta(alpha, alpha) (1 when alpha is 0: no mixing) and a random permutation of n, from
    torch's generator in the released order, so a seeded run draws the released values."""
    lam = torch.distributions.Beta(alpha, alpha).sample() if alpha > 0 else torch.tensor(1.0)
    return lam, torch.randperm(n, device=device)


def soft_labels(logits: Tensor, thresholds: Tensor, labels: Tensor) -> Tensor:
    """(B, T, C): sigmoid((z - theta) / 2) where the class is a label of the video, else 0. Above 1/2
    exactly where the hard pseudo label is on (z > theta); the halved margin keeps labels near the
    threshold uncertain. A -inf threshold is replaced by the class's smallest logit in the batch - 1."""
    floor = logits.amin(dim=(0, 1)) - 1
    thresholds = torch.where(thresholds == -math.inf, floor, thresholds)
    soft = torch.sigmoid((logits - thresholds) / 2)
    return torch.where(labels[:, None, :] == 1, soft, 0.0)


def weighted_segment_loss(logits: Tensor, soft: Tensor, labels: Tensor, weights: tuple[float, float]) -> Tensor:
    """Mean over (B, T, C) of BCE with logits against the soft labels, a term weighing weights[0] when
    its class is a label of the video and weights[1] otherwise."""
    loss = nn.functional.binary_cross_entropy_with_logits(logits, soft, reduction="none")
    positive, negative = (loss.new_tensor(w) for w in weights)
    return (loss * torch.where(labels[:, None, :] == 1, positive, negative)).mean()


def mixup_loss(features: Tensor, soft: Tensor, classifier: nn.Module, lam: Tensor | float, perm: Tensor) -> Tensor:
    """The batch's segments (B, T, d) mixed with the segments `perm` picks (over all B x T):
    lam x + (1 - lam) x[perm] through `classifier`, against lam s + (1 - lam) s[perm] as two BCE terms."""
    x, y = features.flatten(0, 1), soft.flatten(0, 1)
    logits = classifier(lam * x + (1 - lam) * x[perm])
    with_logits = nn.functional.binary_cross_entropy_with_logits
    return lam * with_logits(logits, y) + (1 - lam) * with_logits(logits, y[perm])


@dataclass(frozen=True, eq=False)
class UwavObjective:
    """UWAV's loss (see the module) on a batch whose audio and visual labels are the generator's segment
    logits. The class frequencies are those of the training split's hard pseudo labels
    (`avvp.methods.uwav.class_frequencies`); `draw` gives each modality's lam and permutation."""

    audio_thresholds: np.ndarray  # (C,) the generator's per-class logit thresholds
    visual_thresholds: np.ndarray
    audio_class_freq: np.ndarray  # (C,)
    visual_class_freq: np.ndarray
    pos_weight: float = 0.5
    alpha: float = 1.7
    segment_weight: float = 1.0
    mixup_weight: float = 1.0
    draw: Draw = field(default=beta_draw, repr=False)

    def __call__(self, model: HAN, batch: Batch) -> Tensor:
        streams = model.encode(*batch.inputs)
        visual = model.visual_dropout(streams.visual)
        global_prob = model.head(streams.audio, visual)[0]
        logits = model.frame_logits(streams.audio, visual)  # (B, T, 2, C)
        features = (streams.audio, visual)
        generator = (batch.audio_labels, batch.visual_labels)  # the generator's segment logits
        thresholds = (self.audio_thresholds, self.visual_thresholds)
        freqs = (self.audio_class_freq, self.visual_class_freq)
        soft = [soft_labels(z, torch.as_tensor(t).to(z), batch.labels) for z, t in zip(generator, thresholds)]
        segment = [weighted_segment_loss(logits[:, :, m], soft[m], batch.labels,
                                         inverse_frequency_weights(freqs[m], self.pos_weight)) for m in range(2)]
        mixup = []
        for x, s in zip(features, soft):  # audio draws first, as released
            lam, perm = self.draw(self.alpha, x.shape[0] * x.shape[1], x.device)
            mixup.append(mixup_loss(x, s, model.fc_prob, lam, perm))
        return (bce(global_prob, batch.labels) + (segment[0] + segment[1]) * self.segment_weight
                + (mixup[0] + mixup[1]) * self.mixup_weight)

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in describe(self).items() if k != "draw"}
