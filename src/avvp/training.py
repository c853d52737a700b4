"""Training HAN with the paper's recipe (PROTOCOL §4), on packed splits.

Loss = BCE(global, y) + BCE(a_prob, y) + BCE(v_prob, 0.9 y + 0.05); Adam 3e-4, batch 16, 40 epochs,
lr x0.1 every 10 epochs, seed 1. After each epoch the model is scored on the validation split and
the best segment-level Type@AV is kept (a tie replaces the kept one).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from avvp.annotations import GroundTruth
from avvp.checkpoint import save_checkpoint
from avvp.device import resolve_device
from avvp.evaluation import evaluate_arrays
from avvp.features import PackedSplit
from avvp.inference import batch_tensors, iterate_batches, predict_packed
from avvp.model import HAN
from avvp.predictions import atomic_output

EPS = 1e-7
LEVELS = ("segment_level", "event_level")
SCORES = ("audio", "visual", "audio_visual", "type_at_av", "event_at_av")
LOG_COLUMNS = ("epoch", "loss", "lr", "seconds") + tuple(f"{lv.split('_')[0]}_{s}" for lv in LEVELS for s in SCORES)


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of the recipe; the defaults are the paper's."""

    epochs: int = 40
    lr: float = 3e-4
    batch_size: int = 16
    step_size: int = 10
    gamma: float = 0.1
    seed: int = 1
    visual_smoothing: float = 0.1  # visual target = (1 - s) y + s / 2
    dropout: float = 0.1
    frame_threshold: float = 0.5
    global_threshold: float = 0.5
    device: str = "auto"
    progress: bool = True


def bce(prob: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy on probabilities clamped to [1e-7, 1 - 1e-7], as the published code."""
    return torch.nn.functional.binary_cross_entropy(prob.clamp(EPS, 1 - EPS), target)


def han_loss(outputs: tuple[Tensor, Tensor, Tensor, Tensor], labels: Tensor, smoothing: float) -> Tensor:
    """The paper's loss: video, audio and (label-smoothed) visual MIL terms."""
    global_prob, a_prob, v_prob, _ = outputs
    visual_target = labels * (1 - smoothing) + smoothing / 2
    return bce(global_prob, labels) + bce(a_prob, labels) + bce(v_prob, visual_target)


def validate(model: HAN, packed: PackedSplit, gt: GroundTruth, config: TrainConfig,
             device: torch.device) -> dict[str, Any]:
    """The ten numbers of `model` on a packed split."""
    preds = predict_packed(model, packed, device)
    return evaluate_arrays(preds.global_prob, preds.frame_prob, gt,
                           frame_threshold=config.frame_threshold, global_threshold=config.global_threshold)


def _recipe(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a resumed run must share (not the epoch count, device or verbosity)."""
    return {k: v for k, v in config.items() if k not in ("epochs", "device", "progress")}


def _log_row(epoch: int, loss: float, lr: float, seconds: float, metrics: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"epoch": epoch, "loss": loss, "lr": lr, "seconds": round(seconds, 3)}
    for level in LEVELS:
        for score in SCORES:
            row[f"{level.split('_')[0]}_{score}"] = metrics[level][score]
    return row


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_output(path, "w") as fh:
        fh.write(buffer.getvalue())


def train(train_split: PackedSplit, val_split: PackedSplit, val_gt: GroundTruth, out_dir: str | Path,
          config: TrainConfig = TrainConfig(), resume: bool = False) -> dict[str, Any]:
    """Train, writing out_dir/model.pt (best), last.pt (resumable) and log.csv; returns a summary.

    With `resume`, training continues from out_dir/last.pt (model, optimiser, scheduler and random
    states), so an interrupted run ends exactly where an uninterrupted one would have.
    """
    if tuple(train_split.classes) != tuple(val_split.classes):
        raise ValueError("training and validation splits were packed with different class lists")
    if len(train_split) == 0 or len(val_split) == 0:
        raise ValueError(f"empty split: {len(train_split)} training and {len(val_split)} validation videos")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    classes = list(train_split.classes)
    torch.manual_seed(config.seed)
    model = HAN(len(classes), dropout=config.dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    shuffle = torch.Generator().manual_seed(config.seed)
    state = {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "log": []}
    last_path = out_dir / "last.pt"
    if resume and last_path.is_file():
        saved = torch.load(last_path, map_location="cpu", weights_only=True)
        if _recipe(saved["config"]) != _recipe(dataclasses.asdict(config)):
            raise ValueError(f"{last_path} was written with another training config; remove it to restart")
        model.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        shuffle.set_state(saved["shuffle_rng"])
        torch.set_rng_state(saved["torch_rng"])
        state = saved["train_state"]

    labels_all = torch.from_numpy(np.asarray(train_split.labels, np.float32))
    extra = {"config": dataclasses.asdict(config), "model_options": {"dropout": config.dropout}}
    epochs = tqdm(range(state["epoch"] + 1, config.epochs + 1), desc="epochs", disable=not config.progress)
    for epoch in epochs:
        started = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for rows in iterate_batches(len(train_split), config.batch_size, shuffle):
            inputs = batch_tensors(train_split, rows, device)
            labels = labels_all[rows].to(device)
            loss = han_loss(model(*inputs), labels, config.visual_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
            count += len(rows)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        metrics = validate(model, val_split, val_gt, config, device)
        state["log"].append(_log_row(epoch, total / count, lr, time.perf_counter() - started, metrics))
        score = metrics["segment_level"]["type_at_av"]
        if score >= state["best_score"]:
            state["best_score"], state["best_epoch"] = score, epoch
            save_checkpoint(out_dir / "model.pt", model, classes, epoch=epoch, val_metrics=metrics, **extra)
        state["epoch"] = epoch
        epochs.set_postfix(loss=f"{total / count:.4f}", val_type_at_av=f"{score:.2f}")
        save_checkpoint(last_path, model, classes, epoch=epoch, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), shuffle_rng=shuffle.get_state(),
                        torch_rng=torch.get_rng_state(), train_state=state, **extra)
        _write_log(out_dir / "log.csv", state["log"])
    return {"best_epoch": state["best_epoch"], "best_val_type_at_av": state["best_score"],
            "epochs": state["epoch"], "n_train": len(train_split), "n_val": len(val_split)}
