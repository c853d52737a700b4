"""UWAV (Lai et al., CVPR 2025, "Uncertainty-weighted Weakly-supervised Audio-Visual Video Parsing"):
HAN trained on a pretrained generator's segment logits as uncertainty-weighted soft labels.

The training stage (`uwav_train`) trains UWAV's HAN (`avvp.model.uwav_han.UwavHAN`: five layers, 16
heads, feed-forward 2048, the visual stream attending to the updated audio) on UWAV's loss
(`avvp.methods.uncertainty.UwavObjective`) and recipe (scripts/train_han.sh of the released code):
AdamW (beta1 0.9, weight decay 1e-4), lr 1e-4 with 10 warm-up epochs then a cosine decay to 5e-6 at
epoch 80, stepped per epoch; batch 64; gradient norm clipped at 1; keeping the first epoch with the
best validation segment Type@AV (main.py keeps an epoch only when its Seg-type is strictly higher).
The released run's seed, 20000, is the run's, not the stage's. It needs from the labels pass, per
modality: the generator's segment logits of the training split (the batch's audio and visual
labels), its per-class thresholds and the hard pseudo labels (for the class frequencies).

This module holds what loads no torch (the settings, the class frequencies and weights); the loss
is in `avvp.methods.uncertainty`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from avvp.methods.settings import KEEP, setting
from avvp.methods.valor import ValorSettings


def class_frequencies(labels: np.ndarray) -> np.ndarray:
    """(C,) the fraction of the training split's segments whose hard pseudo label (N, T, C) is on,
    per class (the released dataloader's `get_class_freq`)."""
    labels = np.asarray(labels, np.float64)
    return labels.sum(axis=(0, 1)) / (labels.shape[0] * labels.shape[1])


def inverse_frequency_weights(class_freq: np.ndarray, pos_weight: float) -> tuple[float, float]:
    """UWAV's `inverse_freq` weights (of a video's classes, of the others): (C - F) x pos_weight and F,
    where F, the sum of the class frequencies, is the mean number of classes a segment is labelled
    with: each side is weighed by the other's frequency (F labelled against C - F unlabelled entries
    per segment), so the rare labelled side counts more. Two numbers, not one per class, and no
    smoothing, as released."""
    total = float(np.sum(class_freq))
    return (len(class_freq) - total) * pos_weight, total


@dataclass(frozen=True)
class UwavSettings(ValorSettings):
    """UWAV's recipe (scripts/train_han.sh): VALOR's optimiser and schedule with UWAV's values, its
    HAN, the class weights and mixup."""

    epochs: int = setting(80, "training epochs", minimum=1)
    lr: float = setting(1e-4, "learning rate (the peak of the warm-up)", minimum=0)
    batch_size: int = setting(64, "videos per training batch", minimum=1)
    keep: str = setting("type_at_av_first", "the epoch kept as model.pt (UWAV: the earliest best validation "
                        "segment Type@AV)", choices=KEEP)
    lr_min: float = setting(5e-6, "learning rate of the last epoch (the cosine decay's floor)", minimum=0)
    weight_decay: float = setting(1e-4, "AdamW weight decay", minimum=0)
    beta1: float = setting(0.9, "AdamW beta1", minimum=0, below=1)
    heads: int = setting(16, "attention heads", minimum=1)
    ff: int = setting(2048, "feed-forward width of the attention layers", minimum=1)
    layers: int = setting(5, "attention layers", minimum=1)
    proj_layers: int = setting(1, "layers of the visual input perceptron (1: one linear layer)", minimum=1)
    pos_weight: float = setting(0.5, "factor of the weight of a video's classes in the segment loss", minimum=0)
    alpha: float = setting(1.7, "mixup's lam ~ Beta(alpha, alpha); 0: no mixing", minimum=0)
    segment_weight: float = setting(1.0, "weight of the segment loss", minimum=0)
    mixup_weight: float = setting(1.0, "weight of the mixup loss", minimum=0)

    def model_options(self) -> dict[str, Any]:
        return {**super().model_options(), "proj_layers": self.proj_layers, "network": "uwav"}


def uwav_objective(settings: UwavSettings, thresholds: Mapping[str, np.ndarray],
                   pseudo_labels: Mapping[str, np.ndarray]) -> Any:
    """UWAV's objective from the generator's per-class thresholds (C,) and the training split's hard
    pseudo labels (N, 10, C), each by modality."""
    from avvp.methods.uncertainty import UwavObjective

    return UwavObjective(np.asarray(thresholds["audio"]), np.asarray(thresholds["visual"]),
                         class_frequencies(pseudo_labels["audio"]), class_frequencies(pseudo_labels["visual"]),
                         settings.pos_weight, settings.alpha, settings.segment_weight, settings.mixup_weight)
