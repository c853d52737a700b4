"""JoMoLD's denoised training (Cheng et al., ECCV 2022): labels dropped per batch at the noise ratios.

On every batch, a fraction of each class's labels goes: a visual label when its visual loss is among
the largest AND its audio loss among the smallest of the batch's videos labelled with the class (the
audio explains the label, the visual cannot), and symmetrically for audio (`select_drops`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from avvp.methods.contrastive import SMOOTHING, TEMPERATURE, contrastive_loss
from avvp.methods.objectives import Batch, bce, describe, visual_target
from avvp.model.han import HAN


def _ranks(values: Tensor, members: Tensor, descending: bool) -> Tensor:
    """Per column, each member's 0-based rank among the members (ties by row); others rank last."""
    key = (-values if descending else values).masked_fill(~members, math.inf)
    order = torch.argsort(key, dim=0, stable=True)
    positions = torch.arange(len(values), device=values.device).unsqueeze(1).expand_as(order)
    return torch.empty_like(order).scatter_(0, order, positions)


def select_drops(loss_a: Tensor, loss_v: Tensor, labels: Tensor, ratio_a: Tensor,
                 ratio_v: Tensor) -> tuple[Tensor, Tensor]:
    """(drop_a, drop_v), each (B, C) bool: which weak labels of the batch to drop.

    For class c, among the n videos labelled with it, k_v = floor(r_v[c] n): a visual label drops
    when its video is among the k_v largest l_v and among the k_v smallest l_a; symmetrically, with
    k_a, an audio label drops among the k_a largest l_a and the k_a smallest l_v.
    """
    members = labels > 0.5
    count = members.sum(dim=0).double()
    k_a = torch.floor(ratio_a.double() * count)
    k_v = torch.floor(ratio_v.double() * count)
    high_a, low_a = _ranks(loss_a, members, True), _ranks(loss_a, members, False)
    high_v, low_v = _ranks(loss_v, members, True), _ranks(loss_v, members, False)
    drop_v = members & (high_v < k_v) & (low_a < k_v)
    drop_a = members & (high_a < k_a) & (low_v < k_a)
    return drop_a, drop_v


def ratio_scale(epoch: int, index: int, n_batches: int, warmup_epochs: float, faithful: bool = False) -> float:
    """The fraction of the noise ratios applied to a batch: a linear ramp from 0 at the first batch
    to 1 after `warmup_epochs` epochs.

    `faithful` reproduces the released code, which restarts from the full ratios every epoch and
    multiplies them, batch after batch, by min(1, progress / warmup): with warm-up 0.9 nothing is
    dropped in epoch 1 (the first factor is 0) and the full ratios apply from epoch 2 on.
    """
    if warmup_epochs <= 0:
        return 1.0
    progress = (epoch - 1 + np.arange(index + 1) / n_batches) / warmup_epochs
    if faithful:
        return float(np.prod(np.minimum(1.0, progress)))
    return float(min(1.0, progress[-1]))


@dataclass(frozen=True, eq=False)
class JointDenoisingObjective:
    """JoMoLD's denoised training loss.

    A no-grad pass of the current model without cross-modal attention (in the current mode, as the
    released code) gives per-entry BCE losses l_a (against y) and l_v (against the smoothed visual
    target); `select_drops` removes labels with the ramped ratios; then
    loss = 2 BCE(a, Pa') + BCE(v, Pv') + BCE(global, y) + contrastive (both streams after attention).
    `faithful` reproduces the released ramp and contrastive variant.
    """

    audio_ratios: np.ndarray
    visual_ratios: np.ndarray
    smoothing: float = 0.1
    warmup_epochs: float = 0.9
    faithful: bool = False
    audio_weight: float = 2.0
    weight: float = 1.0
    temperature: float = TEMPERATURE
    contrastive_smoothing: float = SMOOTHING

    def drops(self, model: HAN, batch: Batch) -> tuple[Tensor, Tensor]:
        """The batch's (drop_a, drop_v) masks."""
        labels = batch.labels
        with torch.no_grad():
            _, a_prob, v_prob, _ = model.classify(model.encode(*batch.inputs, cross_modal=False))
            loss_a = bce(a_prob, labels, reduction="none")
            loss_v = bce(v_prob, visual_target(labels, self.smoothing), reduction="none")
        scale = ratio_scale(batch.epoch, batch.index, batch.n_batches, self.warmup_epochs, self.faithful)
        ratio_a = torch.as_tensor(self.audio_ratios, dtype=torch.float64, device=labels.device) * scale
        ratio_v = torch.as_tensor(self.visual_ratios, dtype=torch.float64, device=labels.device) * scale
        return select_drops(loss_a, loss_v, labels, ratio_a, ratio_v)

    def __call__(self, model: HAN, batch: Batch) -> Tensor:
        drop_a, drop_v = self.drops(model, batch)
        streams = model.encode(*batch.inputs)
        global_prob, a_prob, v_prob, _ = model.classify(streams)
        audio_target = batch.labels.masked_fill(drop_a, 0.0)
        visual = visual_target(batch.labels, self.smoothing).masked_fill(drop_v, 0.0)
        contrastive = contrastive_loss(streams.audio, streams.visual, self.temperature,
                                       self.contrastive_smoothing, expected_probability=self.faithful)
        return (self.audio_weight * bce(a_prob, audio_target) + bce(v_prob, visual)
                + bce(global_prob, batch.labels) + self.weight * contrastive)

    def describe(self) -> dict[str, Any]:
        return describe(self)
