"""JoMoLD (Cheng et al., ECCV 2022): joint-modal label denoising.

A noise estimator (HAN without cross-modal attention) gives, per class, the fraction of weak labels
that are probably noise in each modality (`estimate_noise_ratios`). Denoised training then, on every
batch, drops that fraction of each class's labels: a visual label goes when its visual loss is among
the largest AND its audio loss among the smallest of the batch's videos labelled with the class (the
audio explains the label, the visual cannot), and symmetrically for audio (`select_drops`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from avvp.features import PackedSplit
from avvp.methods.contrastive import SMOOTHING, TEMPERATURE, contrastive_loss
from avvp.methods.objectives import Batch, bce, describe, visual_target
from avvp.methods.passes import modality_probabilities
from avvp.model import HAN
from avvp.atomic import atomic_output

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
                 visual_threshold: float = VISUAL_THRESHOLD) -> NoiseRatios:
    """r_m[c] = noisy labelled (video, c) pairs / videos labelled c (0 for a class nobody has).

    Class means run over all videos. The visual rule scales v_prob by the estimator's smoothed
    target of a present class, (1 - s/2) = 0.95, as the released code does.
    """
    present = np.asarray(labels) > 0
    a_mean, v_mean = np.asarray(a_prob).mean(axis=0), np.asarray(v_prob).mean(axis=0)
    noisy_v = present & ((1 - visual_smoothing / 2) * v_prob < visual_threshold * v_mean)
    noisy_a = present & (a_prob < audio_threshold * a_mean)
    labelled = present.sum(axis=0)
    denominator = np.maximum(labelled, 1)
    return NoiseRatios(tuple(classes), noisy_a.sum(axis=0) / denominator, noisy_v.sum(axis=0) / denominator,
                       labelled, a_mean, v_mean)


def estimate_noise_ratios(model: HAN, packed: PackedSplit, device: torch.device, visual_smoothing: float = 0.1,
                          batch_size: int = 128) -> NoiseRatios:
    """One eval-mode pass of the noise estimator over the packed training split."""
    a_prob, v_prob = modality_probabilities(model, packed, device, batch_size)["original"]
    return noise_ratios(a_prob, v_prob, np.asarray(packed.labels), packed.classes, visual_smoothing)


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
