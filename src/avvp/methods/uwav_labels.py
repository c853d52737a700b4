"""UWAV's labels pass and the pretraining of its generator, as pure functions (Lai et al., CVPR 2025;
the released code's main_pretrain.py, utils/eval_utils.py, utils/train_utils.py, dataloader.py).

Pretraining (on UnAV-100, `read_unav_labels`): the generator (`avvp.model.uwav`) is trained on
audio-visual segment labels with `pretraining_loss`, BCE of the product of the two modalities'
probabilities, under `PretrainingRecipe` (AdamW, warm-up then cosine decay, set once per epoch).

The labels pass: the frozen generator's segment logits on the target data set (`segment_logits`);
per class and modality the threshold with the best F on the validation split's segment-level truth,
among the midpoints between its sorted logits (`classwise_thresholds`); and the training split's hard
labels, a logit strictly above its class's threshold within the video's labels (VALOR's rule,
`avvp.methods.valor.pseudo_labels`). What the released pass writes per modality is all three: the
unmasked logits, the hard labels and the thresholds (`ModalityLabels`); the uncertainty-weighted
soft labels of training are computed from the logits and thresholds later.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avvp.methods.valor import pseudo_labels, warm_up_cosine
from avvp.model.inference import iterate_batches
from avvp.model.uwav import UWAVGenerator

UNAV_CLASSES = 100
UNAV_SUBSETS = ("train", "validation", "test")
F_FLOOR = 1e-12  # the released F's denominator floor: F = 0, not NaN, where P + R = 0


# ----------------------------------------------------------------------------- pretraining


def pretraining_loss(a_logits: Tensor, v_logits: Tensor, labels: Tensor, valid: Tensor,
                     positive_weight: float = 5.0, negative_weight: float = 1.0) -> Tensor:
    """BCE of sigmoid(a) x sigmoid(v) against the audio-visual labels (B, T, C), averaged over the valid
    segments (B, T) and classes. Every segment of a class the video has anywhere counts `positive_weight`
    times, those of the classes it lacks `negative_weight` times: the weight is per video and class,
    not per positive segment (released calculate_loss)."""
    loss = F.binary_cross_entropy(torch.sigmoid(a_logits) * torch.sigmoid(v_logits), labels, reduction="none")
    weight = torch.where(labels.sum(dim=1, keepdim=True) > 0, positive_weight, negative_weight)
    valid = valid.to(loss.dtype)
    return (loss * weight * valid[..., None]).sum() / (valid.sum() * labels.shape[-1])


class EpochRates(torch.optim.lr_scheduler.LRScheduler):
    """Sets each group's rate to `rate(epoch)` exactly (1-based, the epoch about to run), as the
    released scheduler does; a LambdaLR's factor x lr would be off by rounding."""

    def __init__(self, optimizer: torch.optim.Optimizer, rate: Callable[[int], float]) -> None:
        self.rate = rate
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [self.rate(self.last_epoch + 1)] * len(self.optimizer.param_groups)


@dataclass(frozen=True)
class PretrainingRecipe:
    """The generator's pretraining on UnAV-100 (scripts/train_transformer.sh over main_pretrain.py's
    defaults). The released run keeps the first epoch with the best validation segment-level
    audio-visual F, a segment's class predicted where sigmoid(a) x sigmoid(v) >= 0.5."""

    epochs: int = 80
    warm_up: int = 10
    lr: float = 1e-4
    lr_min: float = 1e-5
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    grad_norm: float = 2.0  # clip of the gradient norm, every step
    batch_size: int = 64
    positive_weight: float = 5.0
    negative_weight: float = 1.0
    seed: int = 1000

    def rate(self, epoch: int) -> float:
        """The rate of `epoch` (1-based): a linear warm-up for `warm_up` epochs, then a cosine decay that
        reaches lr_min at the last epoch; it changes once per epoch, never within one."""
        return warm_up_cosine(epoch, self.epochs, self.warm_up, self.lr, self.lr_min)

    def optimizer(self, params: Iterable[Any]) -> torch.optim.AdamW:
        return torch.optim.AdamW(params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)

    def scheduler(self, optimizer: torch.optim.Optimizer) -> EpochRates:
        """Step it after each epoch: it sets epoch 1's rate when made, epoch k + 1's at its k-th step."""
        return EpochRates(optimizer, self.rate)


# ----------------------------------------------------------------------------- labels pass


@torch.inference_mode()
def segment_logits(model: UWAVGenerator, audio: np.ndarray, visual: np.ndarray, device: torch.device,
                   batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The frozen generator's audio and visual logits (N, T, C) float32 of N videos' segment embeddings
    (audio (N, T, 512) CLAP, visual (N, T, 768) CLIP; all segments real), in eval mode."""
    model.eval()
    parts: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for rows in iterate_batches(len(audio), batch_size):
        a, v = (torch.from_numpy(np.asarray(x[rows], np.float32)).to(device) for x in (audio, visual))
        for part, logits in zip(parts, model(a, v)):
            part.append(logits.float().cpu().numpy())
    empty = np.zeros((0, np.shape(audio)[1], model.n_classes), np.float32)
    a_logits, v_logits = (np.concatenate(part) if part else empty for part in parts)
    return a_logits, v_logits


def best_f_threshold(truth: Tensor, logits: Tensor) -> tuple[float, float]:
    """The threshold with the best F of 1-D logits against 0/1 truth, and that F.

    The candidates are the midpoints between consecutive sorted logits, below the lowest -inf (all
    positive); a candidate's F is that of calling its position and everything sorted after it
    positive, so within tied logits it follows torch.argsort's order, as released. The first best
    candidate wins (the lowest threshold). With no positive in the truth, F is NaN everywhere and the
    first candidate, -inf, wins."""
    order = torch.argsort(logits)
    logits, truth = logits[order], truth[order]
    hits = torch.cumsum(truth.flip(0), dim=0).flip(0)  # true positives from each position up
    called = len(logits) - torch.arange(len(logits), dtype=torch.float32, device=logits.device)
    precision, recall = hits / called, hits / hits[0].item()
    f = 2 * precision * recall / torch.clamp(precision + recall, min=F_FLOOR)
    below = torch.cat((torch.tensor([-math.inf], device=logits.device), logits[:-1]))
    best = torch.argmax(f).item()
    return ((logits[best] + below[best]) / 2).item(), f[best].item()


def classwise_thresholds(logits: np.ndarray, truth: np.ndarray, video_labels: np.ndarray) -> np.ndarray:
    """(C,) float32: per class, `best_f_threshold` over all segments of the validation videos, videos in
    order; a class that is not a label of the video has logit -inf there (the mask the hard labels get).

    logits, truth: (N, T, C); video_labels: (N, C) 0/1."""
    logits = torch.from_numpy(np.asarray(logits, np.float32))
    truth = torch.from_numpy(np.asarray(truth, np.float32))
    labelled = torch.from_numpy(np.asarray(video_labels, np.float32))[:, None, :] == 1
    masked = torch.where(labelled, logits, -math.inf)
    n_classes = logits.shape[-1]
    per_class = masked.permute(2, 0, 1).reshape(n_classes, -1), truth.permute(2, 0, 1).reshape(n_classes, -1)
    return np.array([best_f_threshold(t, z)[0] for z, t in zip(*per_class)], np.float32)


class ModalityLabels(NamedTuple):
    """What the labels pass keeps of one modality of the training split."""

    logits: np.ndarray  # (N, T, C) float32, the generator's, unmasked
    labels: np.ndarray  # (N, T, C) float32 0/1 hard labels
    thresholds: np.ndarray  # (C,) float32, from the validation split


def modality_labels(train_logits: np.ndarray, train_video_labels: np.ndarray, val_logits: np.ndarray,
                    val_truth: np.ndarray, val_video_labels: np.ndarray) -> ModalityLabels:
    """One modality's thresholds chosen on the validation split and the training split's hard labels."""
    thresholds = classwise_thresholds(val_logits, val_truth, val_video_labels)
    return ModalityLabels(np.asarray(train_logits, np.float32),
                          pseudo_labels(train_logits, thresholds, train_video_labels), thresholds)


# ----------------------------------------------------------------------------- UnAV-100 annotations


def _number(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {what} must be a finite number, got {value!r}")
    return float(value)


def _video_labels(video: dict[str, Any], n_classes: int, names: dict[int, str], where: str) -> np.ndarray:
    """One video's (seconds, C) bool labels: its duration and each event's span rounded out to whole
    seconds (start down, end up), the part of a span past the video's end dropped."""
    duration = _number(video.get("duration"), "'duration'", where)
    if duration <= 0:
        raise ValueError(f"{where}: 'duration' must be positive, got {duration}")
    events = video.get("annotations")
    if not isinstance(events, list) or not events:
        raise ValueError(f"{where}: expected a non-empty 'annotations' list (the released loader cannot read a "
                         f"video without one)")
    labels = np.zeros((math.ceil(duration), n_classes), bool)
    for i, event in enumerate(events):
        at = f"{where}, annotation {i}"
        segment = event.get("segment") if isinstance(event, dict) else None
        if not isinstance(segment, list) or len(segment) != 2:
            raise ValueError(f"{at}: expected 'segment': [start, end], got {segment!r}")
        start, end = (_number(s, "a segment bound", at) for s in segment)
        if start < 0 or end < start:
            raise ValueError(f"{at}: segment {segment} must have 0 <= start <= end")
        label_id = event.get("label_id")
        if isinstance(label_id, bool) or not isinstance(label_id, int) or not 0 <= label_id < n_classes:
            raise ValueError(f"{at}: 'label_id' must be an integer 0-{n_classes - 1}, got {label_id!r}")
        name = names.setdefault(label_id, event.get("label"))
        if name != event.get("label"):
            raise ValueError(f"{at}: label_id {label_id} is {event.get('label')!r} here and {name!r} elsewhere")
        labels[math.floor(start):math.ceil(end), label_id] = True
    return labels


def read_unav_labels(path: str | Path, subset: str, n_classes: int = UNAV_CLASSES) -> dict[str, np.ndarray]:
    """Video id -> (seconds, C) bool audio-visual labels of one subset of UnAV-100's dense annotations
    (`unav100_annotations.json`: {"database": {id: {subset, duration, annotations: [{segment, label,
    label_id}]}}}), in the file's order.

    As the released loader: a video lasts its duration rounded up to whole seconds, the class is the
    event's label_id, and a video's subset matches case-insensitively (the released one matches any
    substring of the subset's name). Where the released loader pads every video to the subset's
    longest and then ignores the padding, the arrays here end with the video. Errors name the file
    and the video."""
    if subset not in UNAV_SUBSETS:
        raise ValueError(f"subset must be one of {UNAV_SUBSETS}, got {subset!r}")
    try:
        database = json.loads(Path(path).read_text(encoding="utf-8"))["database"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a readable UnAV annotation file with a 'database' object ({err!r})") from err
    if not isinstance(database, dict):
        raise ValueError(f"{path}: 'database' must be an object of videos")
    names: dict[int, str] = {}
    labels = {}
    for video_id, video in database.items():
        where = f"{path}: video {video_id!r}"
        if not isinstance(video, dict) or not isinstance(video.get("subset"), str):
            raise ValueError(f"{where}: expected an object with a 'subset' string")
        if video["subset"].lower() == subset:
            labels[video_id] = _video_labels(video, n_classes, names, where)
    return labels


def unav_class_names(path: str | Path) -> list[str]:
    """The class names of an annotation file in UnAV-100's form, by label_id 0..K-1 (a label_id without
    a named event below the largest is an error naming the file)."""
    database = json.loads(Path(path).read_text(encoding="utf-8"))["database"]
    names = {event["label_id"]: event["label"] for video in database.values() for event in video.get("annotations", [])}
    missing = [i for i in range(max(names, default=-1) + 1) if i not in names]
    if not names or missing:
        raise ValueError(f"{path}: no event names label_id {missing[0] if missing else 0}")
    return [names[i] for i in range(len(names))]
