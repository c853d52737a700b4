"""CMPAE's training loss (its main.py `train`, mutual_loss.py): JoMoLD's denoising, then
2 BCE(a, Pa') + 0.6 BCE(v, Pv') + 0.6 BCE(video, y) + contrastive + mutual learning.

The mutual-learning term ties the video-level branch to the modality probabilities, class by class:
to the larger of a_prob and v_prob where the class is labelled, to their mean where it is not,
each weighted by the certainty (1 - u) of the modality side. Batches alternate which side learns:
on odd batches the video branch moves towards the (fixed) modality side, weighted by its own
uncertainty clamped at 0.9 or more; on even batches the modality side moves towards the (fixed)
video branch, weighted by one minus that uncertainty.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from avvp.methods.contrastive import contrastive_loss
from avvp.methods.denoising import JointDenoisingObjective
from avvp.methods.objectives import EPS, Batch, bce, describe, visual_target
from avvp.model.cmpae import CMPAENet

GLOBAL_UNCERTAINTY_FLOOR = 0.9


def mutual_learning_loss(labels: Tensor, global_prob: Tensor, a_prob: Tensor, v_prob: Tensor, a_uct: Tensor,
                         v_uct: Tensor, global_uct: Tensor, odd_batch: bool, absent_weight: float = 1.0) -> Tensor:
    """The mean over videos and classes of the uncertainty-weighted squared gaps (module docstring)."""
    global_uct = global_uct.clamp(min=GLOBAL_UNCERTAINTY_FLOOR).unsqueeze(-1)
    probs, uncertainties = torch.stack((a_prob, v_prob), dim=-1), torch.stack((a_uct, v_uct), dim=-1)
    max_prob, index = probs.max(dim=-1)
    max_uct = uncertainties.gather(-1, index.unsqueeze(-1)).squeeze(-1)
    mean_prob, mean_uct = probs.mean(dim=-1), uncertainties.mean(dim=-1)
    if odd_batch:
        weight, video, max_prob, mean_prob = global_uct, global_prob, max_prob.detach(), mean_prob.detach()
    else:
        weight, video = 1 - global_uct, global_prob.detach()
    present = weight * (1 - max_uct) * (video - max_prob) ** 2 * labels
    absent = weight * (1 - mean_uct) * (video - mean_prob) ** 2 * (1 - labels)
    return (present + absent_weight * absent).mean()


@dataclass(frozen=True, eq=False)
class CmpaeObjective(JointDenoisingObjective):
    """CMPAE's loss on `CMPAENet`; the drops are JoMoLD's (released ramp), from the network's pass
    without cross-modal attention."""

    faithful: bool = True
    visual_weight: float = 0.6
    video_weight: float = 0.6
    mutual_weight: float = 1.0
    absent_weight: float = 1.0  # mutual_lamb

    def __call__(self, model: CMPAENet, batch: Batch) -> Tensor:
        drop_a, drop_v = self.drops(model, batch)
        streams = model.encode(*batch.inputs)
        out = model.evidence(streams)
        global_prob, a_prob, v_prob = (p.clamp(EPS, 1 - EPS) for p in out[:3])
        audio_target = batch.labels.masked_fill(drop_a, 0.0)
        visual = visual_target(batch.labels, self.smoothing).masked_fill(drop_v, 0.0)
        contrastive = contrastive_loss(streams.audio, streams.visual, self.temperature, self.contrastive_smoothing,
                                       expected_probability=True)
        mutual = mutual_learning_loss(batch.labels, global_prob, a_prob, v_prob, out.a_uct, out.v_uct, out.global_uct,
                                      odd_batch=batch.index % 2 == 1, absent_weight=self.absent_weight)
        return (self.audio_weight * bce(a_prob, audio_target) + self.visual_weight * bce(v_prob, visual)
                + self.video_weight * bce(global_prob, batch.labels) + self.weight * contrastive
                + self.mutual_weight * mutual)

    def describe(self) -> dict[str, Any]:
        return describe(self)
