"""The pretraining of UWAV's generator (`avvp.model.uwav.UWAVGenerator`) on a dense-label data set in
UnAV-100's form: its annotation JSON and per-video CLAP and CLIP segment features, each averaged to
one row per second of the video (released dataloader.py: `avgpool_feature` to the video's duration
rounded up), videos of different lengths padded per batch and masked.

Each epoch trains on the `train` subset in a seeded random order under `PretrainingRecipe` (AdamW,
the warm-up and cosine rate set once per epoch, the gradient norm clipped every step) and scores the
`validation` subset: a class is predicted in a second where sigmoid(a) x sigmoid(v) >= 0.5, and the
score is the mean over videos of the segment-level audio-visual F (per class F averaged over the
classes predicted or present, 1.0 for a video with neither; the released segment_level). The first
epoch with the best score is kept (strictly better replaces it), as main_pretrain.py keeps it."""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avvp.methods.uwav_labels import PretrainingRecipe, pretraining_loss, read_unav_labels
from avvp.model.uwav import UWAVGenerator

LOG_COLUMNS = ("epoch", "loss", "val_segment_av", "lr", "seconds")


@dataclass(frozen=True)
class DenseSplit:
    """One subset of a dense-label data set: per video its id, (T, 512) CLAP and (T, 768) CLIP rows, one
    per second, and (T, C) bool audio-visual labels."""

    ids: tuple[str, ...]
    audio: tuple[np.ndarray, ...]
    visual: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.ids)


def per_second(features: np.ndarray, seconds: int) -> np.ndarray:
    """(L, D) rows averaged to (seconds, D) by adaptive average pooling, as the released loader does."""
    x = torch.from_numpy(np.asarray(features, np.float32)).T[None]
    return F.adaptive_avg_pool1d(x, seconds)[0].T.contiguous().numpy()


def read_dense_split(annotations: Path, subset: str, clap_dir: Path, clip_dir: Path, n_classes: int) -> DenseSplit:
    """A subset of the annotation file with each video's `<id>.npy` from both feature folders; a
    missing or malformed file is an error naming it."""
    labels = read_unav_labels(annotations, subset, n_classes)
    audio, visual = [], []
    for video, label in labels.items():
        for folder, width, out in ((clap_dir, 512, audio), (clip_dir, 768, visual)):
            path = Path(folder) / f"{video}.npy"
            if not path.is_file():
                raise ValueError(f"{path}: no features of video {video} of {annotations}")
            rows = np.load(path)
            if rows.ndim != 2 or rows.shape[1] != width or len(rows) == 0:
                raise ValueError(f"{path}: {tuple(rows.shape)} features, expected (rows, {width})")
            out.append(per_second(rows, len(label)))
    return DenseSplit(tuple(labels), tuple(audio), tuple(visual), tuple(labels.values()))


def padded(split: DenseSplit, rows: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The videos `rows` padded to the longest: audio (B, T, 512), visual (B, T, 768), labels (B, T, C)
    float and valid (B, T) bool."""
    length = max(len(split.labels[i]) for i in rows)
    n_classes = split.labels[rows[0]].shape[1]
    audio = torch.zeros(len(rows), length, split.audio[rows[0]].shape[1])
    visual = torch.zeros(len(rows), length, split.visual[rows[0]].shape[1])
    labels = torch.zeros(len(rows), length, n_classes)
    valid = torch.zeros(len(rows), length, dtype=torch.bool)
    for b, i in enumerate(rows):
        t = len(split.labels[i])
        audio[b, :t], visual[b, :t] = torch.from_numpy(split.audio[i]), torch.from_numpy(split.visual[i])
        labels[b, :t] = torch.from_numpy(split.labels[i].astype(np.float32))
        valid[b, :t] = True
    return audio, visual, labels, valid


def segment_f(pred: np.ndarray, truth: np.ndarray) -> float:
    """A video's segment-level F of (T, C) bool decisions: per class 2TP / (2TP + FP + FN) over the
    classes predicted or present, their mean; 1.0 where there is none."""
    tp = (pred & truth).sum(0)
    wrong = (pred & ~truth).sum(0) + (~pred & truth).sum(0)
    kept = (2 * tp + wrong) > 0
    return float(np.mean(2 * tp[kept] / (2 * tp[kept] + wrong[kept]))) if kept.any() else 1.0


@torch.inference_mode()
def validation_score(generator: UWAVGenerator, split: DenseSplit, device: torch.device) -> float:
    """Mean segment-level audio-visual F of the videos (percent), one video at a time as released."""
    generator.eval()
    scores = []
    for i in range(len(split)):
        audio, visual, labels, valid = (x.to(device) for x in padded(split, np.array([i])))
        a, v = generator(audio, visual, valid)
        pred = (torch.sigmoid(a) * torch.sigmoid(v) >= 0.5)[0].cpu().numpy()
        scores.append(segment_f(pred, labels[0].cpu().numpy() > 0))
    return 100.0 * float(np.mean(scores)) if scores else 0.0


def pretrain(generator: UWAVGenerator, train: DenseSplit, val: DenseSplit, recipe: PretrainingRecipe,
             device: torch.device, log: Path) -> tuple[dict[str, Tensor], int, float]:
    """Train `generator` for recipe.epochs; the state dict of the kept epoch, that epoch and its score.
    Each epoch's loss, validation score, rate and seconds are appended to `log` (a CSV)."""
    generator.to(device)
    optimizer = recipe.optimizer(generator.parameters())
    scheduler = recipe.scheduler(optimizer)
    order = torch.Generator().manual_seed(recipe.seed)  # the batch order; dropout draws from torch's own
    best: tuple[dict[str, Tensor], int, float] | None = None
    with log.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(LOG_COLUMNS)
        for epoch in range(1, recipe.epochs + 1):
            start, rate = time.monotonic(), optimizer.param_groups[0]["lr"]
            generator.train()
            losses = []
            for rows in torch.randperm(len(train), generator=order).split(recipe.batch_size):
                audio, visual, labels, valid = (x.to(device) for x in padded(train, rows.numpy()))
                a, v = generator(audio, visual, valid)
                loss = pretraining_loss(a, v, labels, valid, recipe.positive_weight, recipe.negative_weight)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(generator.parameters(), recipe.grad_norm)
                optimizer.step()
                losses.append(loss.item())
            scheduler.step()
            score = validation_score(generator, val, device)
            writer.writerow([epoch, float(np.mean(losses)), score, rate, time.monotonic() - start])
            fh.flush()
            print(f"epoch {epoch}/{recipe.epochs}: loss {np.mean(losses):.4f}, validation segment AV F {score:.2f}",
                  flush=True)
            if best is None or score > best[2]:
                best = ({k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}, epoch, score)
    assert best is not None, "recipe.epochs >= 1"
    return best
