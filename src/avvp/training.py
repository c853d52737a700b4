"""One training loop for every stage: HAN's recipe (PROTOCOL §4) and the refinement methods' stages.

What varies between stages is pluggable: the objective (a loss per batch, `avvp.methods.objectives`;
HAN's by default), the per-modality labels it trains on, the model options (cross-modal attention,
visual dropout), the optimiser schedule (Adam lr, batch, StepLR step and gamma, epochs) and which
epoch becomes model.pt: the best validation segment-level Type@AV (HAN; a tie replaces the kept one),
the best validation event-level audio F (JoMoLD), or the final weights (MA-MMIL). The defaults are
the paper's HAN recipe; `avvp.methods.recipes` holds the other stages' settings.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from avvp.annotations import GroundTruth
from avvp.checkpoint import save_checkpoint
from avvp.device import resolve_device
from avvp.evaluation import evaluate_arrays
from avvp.features import PackedSplit
from avvp.inference import batch_tensors, iterate_batches, predict_packed
from avvp.methods.objectives import Batch, HanObjective, Objective, bce, han_loss  # noqa: F401 (bce, han_loss re-exported)
from avvp.model import HAN
from avvp.atomic import atomic_output

LEVELS = ("segment_level", "event_level")
SCORES = ("audio", "visual", "audio_visual", "type_at_av", "event_at_av")
LOG_COLUMNS = ("epoch", "loss", "lr", "seconds") + tuple(f"{lv.split('_')[0]}_{s}" for lv in LEVELS for s in SCORES)
# Checkpoint choice -> the validation number it maximises (None: keep the final weights).
SELECTIONS: dict[str, tuple[str, str] | None] = {
    "type_at_av": ("segment_level", "type_at_av"),
    "event_audio": ("event_level", "audio"),
    "final": None,
}


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of a training stage; the defaults are the paper's HAN recipe."""

    epochs: int = 40
    lr: float = 3e-4
    batch_size: int = 16
    step_size: int = 10
    gamma: float = 0.1
    seed: int = 1
    visual_smoothing: float = 0.1  # visual target = (1 - s) y + s / 2
    dropout: float = 0.1
    cross_modal: bool = True  # False: each stream attends only to itself
    visual_dropout: float = 0.0  # dropout on the visual stream before the classifier
    select: str = field(default="type_at_av", metadata={"choices": tuple(SELECTIONS)})
    frame_threshold: float = 0.5
    global_threshold: float = 0.5
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be one of {sorted(SELECTIONS)}, not {self.select!r}")

    def model_options(self) -> dict[str, Any]:
        """HAN's constructor options, stored in checkpoints so that loading rebuilds the same model."""
        return {"dropout": self.dropout, "cross_modal": self.cross_modal, "visual_dropout": self.visual_dropout}


@dataclass(frozen=True, eq=False)
class ModalityTargets:
    """Per-modality labels (N, C), 0/1, for the rows of the training split (e.g. MA-MMIL's refined ones)."""

    audio: np.ndarray
    visual: np.ndarray

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for array in (self.audio, self.visual):
            digest.update(np.ascontiguousarray(array, np.float32).tobytes())
        return digest.hexdigest()


def validate(model: HAN, packed: PackedSplit, gt: GroundTruth, config: TrainConfig,
             device: torch.device) -> dict[str, Any]:
    """The ten numbers of `model` on a packed split."""
    preds = predict_packed(model, packed, device)
    return evaluate_arrays(preds.global_prob, preds.frame_prob, gt,
                           frame_threshold=config.frame_threshold, global_threshold=config.global_threshold)


def _recipe(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a resumed run must share (not the epoch count, device or verbosity)."""
    return {k: v for k, v in config.items() if k not in ("epochs", "device", "progress")}


def _selection_score(select: str, metrics: dict[str, Any], epoch: int) -> float:
    key = SELECTIONS[select]
    return float(epoch) if key is None else metrics[key[0]][key[1]]


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


def _label_tensors(train_split: PackedSplit, targets: ModalityTargets | None) -> tuple[torch.Tensor, ...]:
    """Weak, audio and visual labels of every training row (the weak ones stand in for missing targets)."""
    labels = torch.from_numpy(np.asarray(train_split.labels, np.float32))
    if targets is None:
        return labels, labels, labels
    out = [labels]
    for name, array in (("audio", targets.audio), ("visual", targets.visual)):
        if np.shape(array) != tuple(labels.shape):
            raise ValueError(f"{name} targets have shape {np.shape(array)}, the training split {tuple(labels.shape)}")
        out.append(torch.from_numpy(np.asarray(array, np.float32)))
    return tuple(out)


def train(train_split: PackedSplit, val_split: PackedSplit, val_gt: GroundTruth, out_dir: str | Path,
          config: TrainConfig = TrainConfig(), resume: bool = False, objective: Objective | None = None,
          targets: ModalityTargets | None = None) -> dict[str, Any]:
    """Train, writing out_dir/model.pt (the selected epoch), last.pt (resumable) and log.csv.

    `objective` defaults to HAN's loss; `targets` replace the weak labels in the audio and visual
    terms. With `resume`, training continues from out_dir/last.pt (model, optimiser, scheduler and
    random states), so an interrupted run ends exactly where an uninterrupted one would have; a
    last.pt written with another config, objective or targets is refused.
    """
    if tuple(train_split.classes) != tuple(val_split.classes):
        raise ValueError("training and validation splits were packed with different class lists")
    if len(train_split) == 0 or len(val_split) == 0:
        raise ValueError(f"empty split: {len(train_split)} training and {len(val_split)} validation videos")
    if objective is None:
        objective = HanObjective(config.visual_smoothing)
    labels_all, audio_all, visual_all = _label_tensors(train_split, targets)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    classes = list(train_split.classes)
    torch.manual_seed(config.seed)
    model = HAN(len(classes), **config.model_options()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    shuffle = torch.Generator().manual_seed(config.seed)
    extra = {"config": dataclasses.asdict(config), "model_options": config.model_options(),
             "objective": objective.describe(), "targets_sha256": targets.fingerprint() if targets else None}
    state = {"epoch": 0, "best_score": -math.inf, "best_epoch": 0, "log": []}
    last_path = out_dir / "last.pt"
    if resume and last_path.is_file():
        saved = torch.load(last_path, map_location="cpu", weights_only=True)
        if _recipe(saved["config"]) != _recipe(extra["config"]):
            raise ValueError(f"{last_path} was written with another training config; remove it to restart")
        for key in ("objective", "targets_sha256"):
            if saved.get(key) != extra[key]:
                raise ValueError(f"{last_path} was written with another {key.split('_')[0]}; remove it to restart")
        model.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        shuffle.set_state(saved["shuffle_rng"])
        torch.set_rng_state(saved["torch_rng"])
        if device.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)  # dropout masks on the GPU
        state = saved["train_state"]

    n_batches = math.ceil(len(train_split) / config.batch_size)
    epochs = tqdm(range(state["epoch"] + 1, config.epochs + 1), desc="epochs", disable=not config.progress)
    for epoch in epochs:
        started = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for index, rows in enumerate(iterate_batches(len(train_split), config.batch_size, shuffle)):
            batch = Batch(batch_tensors(train_split, rows, device), labels_all[rows].to(device),
                          audio_all[rows].to(device), visual_all[rows].to(device), rows, epoch, index, n_batches)
            loss = objective(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
            count += len(rows)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        metrics = validate(model, val_split, val_gt, config, device)
        state["log"].append(_log_row(epoch, total / count, lr, time.perf_counter() - started, metrics))
        score = _selection_score(config.select, metrics, epoch)
        if score >= state["best_score"]:
            state["best_score"], state["best_epoch"] = score, epoch
            save_checkpoint(out_dir / "model.pt", model, classes, epoch=epoch, val_metrics=metrics, **extra)
        state["epoch"] = epoch
        epochs.set_postfix(loss=f"{total / count:.4f}", val_type_at_av=f"{metrics['segment_level']['type_at_av']:.2f}")
        save_checkpoint(last_path, model, classes, epoch=epoch, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), shuffle_rng=shuffle.get_state(),
                        torch_rng=torch.get_rng_state(),
                        cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                        train_state=state, **extra)
        _write_log(out_dir / "log.csv", state["log"])
    best = state["log"][state["best_epoch"] - 1] if state["best_epoch"] else {}
    return {"best_epoch": state["best_epoch"], "selected_by": config.select,
            "best_val_type_at_av": best.get("segment_type_at_av"), "best_val_event_audio": best.get("event_audio"),
            "epochs": state["epoch"], "n_train": len(train_split), "n_val": len(val_split)}
