"""One training loop for every training stage: HAN's recipe (PROTOCOL §4) and the refinement
methods' stages.

What varies between stages comes from their spec (`avvp.methods.stages`): the settings (schedule,
model options, which epoch to keep), the objective (a loss per batch; HAN's by default) and the
per-modality labels it trains on. The kept epoch becomes model.pt: the best validation
segment-level Type@AV (HAN: a tie replaces the kept one; VALOR: the earliest stays), the best
validation event-level audio F (JoMoLD), or the final weights (MA-MMIL); `summary.json` records which.

last.pt carries everything a rerun needs to finish the stage as an uninterrupted run would: the
model, optimiser, scheduler and random states of the last finished epoch, the log rows so far and
the kept epoch's weights and scores. So a rerun after a kill rewrites model.pt, log.csv and
summary.json even when no later epoch is kept (Snakemake removes a killed job's outputs).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from avvp.evaluation.annotations import GroundTruth
from avvp.model.checkpoint import save_checkpoint
from avvp.base.device import resolve_device
from avvp.base.files import load_refusal
from avvp.base.folder_lock import folder_lock
from avvp.evaluation.scores import evaluate_outputs
from avvp.extractors import PUBLISHED
from avvp.features.store import PackedSplit
from avvp.model.inference import batch_tensors, iterate_batches, predict_packed
from avvp.methods.objectives import Batch, HanObjective, Objective
from avvp.methods.settings import LoopSettings, TrainSettings
from avvp.methods.stage_files import log_row, write_log, write_summary
from avvp.model.han import HAN
from avvp.model.networks import build_network
from avvp.base.protocol import SEGMENTS


class Selection(NamedTuple):
    """The validation number a checkpoint choice maximises, and whether an epoch that ties the best
    so far replaces it."""

    level: str
    score: str
    ties_replace: bool = True


# Checkpoint choice (settings `keep`) -> what it maximises (None: keep the final weights).
SELECTIONS: dict[str, Selection | None] = {
    "type_at_av": Selection("segment_level", "type_at_av"),
    "type_at_av_first": Selection("segment_level", "type_at_av", ties_replace=False),
    "event_audio": Selection("event_level", "audio"),
    "mean_of_ten": Selection("both", "mean_of_ten"),
    "final": None,
}


@dataclass(frozen=True, eq=False)
class ModalityTargets:
    """Per-modality targets for the rows of the training split: 0/1 labels, video-level (N, C) (e.g.
    MA-MMIL's refined ones) or segment-level (N, 10, C) (VALOR's pseudo labels), or segment-level
    scores the objective turns into labels (UWAV's generator logits)."""

    audio: np.ndarray
    visual: np.ndarray

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for array in (self.audio, self.visual):
            digest.update(np.ascontiguousarray(array, np.float32).tobytes())
        return digest.hexdigest()


def validate(model: HAN, packed: PackedSplit, gt: GroundTruth, settings: LoopSettings,
             device: torch.device) -> dict[str, Any]:
    """The ten numbers of `model` on a packed split under the settings' validation rule."""
    rule = settings.validation_protocol()
    preds = predict_packed(model, packed, device, cross_modal_off=rule.forward != "as_trained")
    defaults = {m: [rule.calibration_default] * len(packed.classes) for m in rule.calibrated}
    return evaluate_outputs(preds.outputs(rule), gt, rule, thresholds=defaults)


def _recipe(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a resumed run must share (not the epoch count)."""
    return {k: v for k, v in config.items() if k != "epochs"}


# What a last.pt written by `train` holds beyond a model; a file without them was written by
# something else (a copied model.pt, another program) and cannot be continued.
RESUME_KEYS = ("config", "model_options", "epoch", "state_dict", "optimizer", "scheduler", "shuffle_rng",
               "torch_rng", "train_state", "kept")


def _first_line(err: BaseException) -> str:
    """An error's message on one line (the CLI's errors are one line each)."""
    return (str(err).splitlines() or [type(err).__name__])[0]


def _load_last(last_path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The training state in last.pt, or None and why it is none: unreadable, not a dict, or a dict
    without the keys `train` writes."""
    try:
        saved = torch.load(last_path, map_location="cpu", weights_only=True)
    except Exception as err:  # a file cut off by a kill or a full disk: torch's errors vary
        return None, f"{last_path}: not a readable checkpoint ({load_refusal(err)})"
    if not isinstance(saved, dict):
        return None, f"{last_path}: not a training checkpoint (it holds a {type(saved).__name__})"
    missing = [key for key in RESUME_KEYS if key not in saved]
    if missing:
        return None, f"{last_path}: not a resumable training state (no {', '.join(missing)})"
    return saved, None


def _mismatch(last_path: Path, saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """Why a training state cannot continue this run (other settings, model, objective or targets)."""
    if not isinstance(saved["config"], dict) or _recipe(saved["config"]) != _recipe(current["config"]):
        return f"{last_path} was written with other training settings"
    for key, what in (("model_options", "model (feature set)"), ("objective", "objective"),
                      ("targets_sha256", "targets")):
        if saved.get(key) != current[key]:
            return f"{last_path} was written with another {what}"
    return None


def _stale(last_path: Path, saved: dict[str, Any], epochs: int, data: Sequence[Path]) -> str | None:
    """Why `auto` sets a matching state aside: older than the packed data, or past the epochs asked
    (a finished state is taken: its kept epoch's files are written again)."""
    packed = max((Path(root) / "index.json").stat().st_mtime for root in data)
    if last_path.stat().st_mtime < packed:
        return f"{last_path} is older than the packed splits"
    if not isinstance(saved["epoch"], int) or saved["epoch"] > epochs:
        return f"{last_path} is past the epochs asked (it is at epoch {saved['epoch']} of {epochs})"
    return None


def _set_aside(problem: str, resume: bool | str) -> None:
    """`auto` starts afresh, saying why on stderr; an explicit resume refuses in one line."""
    if resume != "auto":
        raise ValueError(f"{problem}; remove it to restart")
    print(f"{problem}: starting from epoch 1", file=sys.stderr)


def _resumable(last_path: Path, current: dict[str, Any], resume: bool | str, epochs: int,
               data: Sequence[Path]) -> dict[str, Any] | None:
    """The saved state to continue from, or None to start at epoch 1 (see `train`).

    `auto` also starts afresh from a last.pt older than the packed data (`data`: packed splits made
    since may hold other videos or features) or one past the epochs asked. A finished one (all
    epochs trained) is taken: nothing is trained, its kept epoch's files are written again."""
    if not resume or not last_path.is_file():
        return None
    saved, problem = _load_last(last_path)
    if saved is not None:
        problem = _mismatch(last_path, saved, current)
    if problem is None and resume == "auto":
        problem = _stale(last_path, saved, epochs, data)
    if problem is None:
        print(f"resuming from {last_path} after epoch {saved['epoch']}", file=sys.stderr)
        return saved
    _set_aside(problem, resume)
    return None


def _keeps(keep: str, metrics: dict[str, Any], epoch: int, best: float) -> tuple[bool, float]:
    """Whether this epoch replaces the kept one under the checkpoint choice `keep`, and its score."""
    selection = SELECTIONS[keep]
    if selection is None:
        return True, float(epoch)
    if selection.level == "both":
        score = float(np.mean([v for level in ("segment_level", "event_level") for v in metrics[level].values()]))
    else:
        score = metrics[selection.level][selection.score]
    return (score >= best if selection.ties_replace else score > best), score


def _label_tensors(train_split: PackedSplit, targets: ModalityTargets | None) -> tuple[torch.Tensor, ...]:
    """Weak, audio and visual labels of every training row (the weak ones stand in for missing targets)."""
    labels = torch.from_numpy(np.asarray(train_split.labels, np.float32))
    if targets is None:
        return labels, labels, labels
    out = [labels]
    n, c = labels.shape
    for name, array in (("audio", targets.audio), ("visual", targets.visual)):
        if np.shape(array) not in ((n, c), (n, SEGMENTS, c)):
            raise ValueError(f"{name} targets have shape {np.shape(array)}, the training split needs {(n, c)} "
                             f"(video level) or {(n, SEGMENTS, c)} (segment level)")
        out.append(torch.from_numpy(np.asarray(array, np.float32)))
    return tuple(out)


def trained_feature_weights(train_split: PackedSplit, val_split: PackedSplit,
                            features: Sequence[str]) -> dict[str, dict | None]:
    """Kind -> the weights record of the training features, which every checkpoint carries (parsing
    defaults to it); validation features from other weights are refused."""
    records = {kind: train_split.feature_weights.get(kind) for kind in features}
    for kind, record in records.items():
        other = val_split.feature_weights.get(kind)
        if record is not None and other is not None and record.get("sha256") != other.get("sha256"):
            raise ValueError(f"{kind} features of {train_split.root} and {val_split.root} come from different "
                             f"weights ({record.get('weights')} and {other.get('weights')})")
    return records


def _check_splits(train_split: PackedSplit, val_split: PackedSplit) -> None:
    if tuple(train_split.classes) != tuple(val_split.classes):
        raise ValueError("training and validation splits were packed with different class lists")
    if len(train_split) == 0 or len(val_split) == 0:
        raise ValueError(f"empty split: {train_split.root} packs {len(train_split)} training videos and "
                         f"{val_split.root} {len(val_split)} validation videos (see their index.json for why)")


def _fresh(settings: LoopSettings, features: Sequence[str], n_classes: int, seed: int,
           device: torch.device) -> tuple[HAN, Any, Any, torch.Generator]:
    """A seeded model, its optimiser and schedule and the shuffling generator of epoch 1 (again
    after a failed restore, so a run set aside equals a fresh one)."""
    torch.manual_seed(seed)
    model = build_network(n_classes, features=features, **settings.model_options()).to(device)
    optimizer = settings.optimizer(model.parameters())
    return model, optimizer, settings.scheduler(optimizer), torch.Generator().manual_seed(seed)


def _restore(saved: dict[str, Any], model: HAN, optimizer: Any, scheduler: Any, shuffle: torch.Generator,
             device: torch.device) -> dict[str, Any]:
    """Put a last.pt's model, optimiser, scheduler and random states back; its training state."""
    model.load_state_dict(saved["state_dict"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    shuffle.set_state(saved["shuffle_rng"])
    torch.set_rng_state(saved["torch_rng"])
    if device.type == "cuda" and saved.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)  # dropout masks on the GPU
    return saved["train_state"]


def _objective_state(objective: Objective) -> dict[str, Any]:
    """What an objective with a state of its own (CoLeaF's branches) adds to last.pt."""
    return {"objective_state": objective.state_dict()} if hasattr(objective, "state_dict") else {}


def _cpu_copy(model: HAN) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def train(train_split: PackedSplit, val_split: PackedSplit, val_gt: GroundTruth, out_dir: str | Path,
          settings: LoopSettings = TrainSettings(), *, seed: int = 1, device: str = "auto", progress: bool = True,
          features: Sequence[str] = PUBLISHED, resume: bool | str = False, objective: Objective | None = None,
          targets: ModalityTargets | None = None, keep_last: bool = True) -> dict[str, Any]:
    """Train, writing out_dir/model.pt (the kept epoch), last.pt (resumable), log.csv and summary.json.

    Both checkpoints record the weights that made the training features (`feature_weights`).

    `settings` choose the optimiser, its schedule and gradient clipping; `objective` defaults to
    HAN's loss (with `TrainSettings`' visual smoothing); `targets` replace the weak labels in the audio and visual
    terms; `features` is the model's feature set (the packed splits must hold it). With `resume`,
    training continues from out_dir/last.pt (model, optimiser, scheduler and random states), so an
    interrupted run ends exactly where an uninterrupted one would have; a last.pt that is unreadable
    or was written with other settings, seed, features, objective or targets is refused, or with
    `resume="auto"` set aside: training starts from epoch 1 and says why on stderr. Resuming
    writes model.pt, log.csv and summary.json at the end whatever is missing, even when no epoch
    after the restored one is kept. One training at a time writes out_dir (`folder_lock`).
    `keep_last=False` removes last.pt once every epoch has run (a killed run keeps it to resume).
    """
    with folder_lock(out_dir):
        return _train(train_split, val_split, val_gt, Path(out_dir), settings, seed=seed, device=device,
                      progress=progress, features=features, resume=resume, objective=objective, targets=targets,
                      keep_last=keep_last)


def _train(train_split: PackedSplit, val_split: PackedSplit, val_gt: GroundTruth, out_dir: Path,
           settings: LoopSettings, *, seed: int, device: str, progress: bool, features: Sequence[str],
           resume: bool | str, objective: Objective | None, targets: ModalityTargets | None,
           keep_last: bool) -> dict[str, Any]:
    _check_splits(train_split, val_split)
    if objective is None:
        objective = HanObjective(settings.visual_smoothing)
    labels_all, audio_all, visual_all = _label_tensors(train_split, targets)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch_device = resolve_device(device)
    classes = list(train_split.classes)
    model, optimizer, scheduler, shuffle = _fresh(settings, features, len(classes), seed, torch_device)
    max_norm = settings.max_grad_norm()
    extra = {"config": {**dataclasses.asdict(settings), "seed": seed}, "objective": objective.describe(),
             "targets_sha256": targets.fingerprint() if targets else None,
             "feature_weights": trained_feature_weights(train_split, val_split, features)}
    state = {"epoch": 0, "best_score": -math.inf, "best_epoch": 0, "log": []}
    kept = None  # the kept epoch: {"epoch", "state_dict" (on the CPU), "val_metrics"}
    written = None  # the epoch this run wrote to model.pt
    last_path = out_dir / "last.pt"
    saved = _resumable(last_path, {**extra, "model_options": model.options()}, resume, settings.epochs,
                       (train_split.root, val_split.root))
    if saved is not None:
        try:
            if hasattr(objective, "load_state_dict"):  # first: building its networks draws random numbers
                objective.load_state_dict(saved["objective_state"], model)
            state, kept = _restore(saved, model, optimizer, scheduler, shuffle, torch_device), saved["kept"]
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:  # a state of another shape
            _set_aside(f"{last_path}: its training state does not fit this run ({_first_line(err)})", resume)
            model, optimizer, scheduler, shuffle = _fresh(settings, features, len(classes), seed, torch_device)

    n_batches = math.ceil(len(train_split) / settings.batch_size)
    epochs = tqdm(range(state["epoch"] + 1, settings.epochs + 1), desc="epochs", disable=not progress)
    for epoch in epochs:
        started = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for index, rows in enumerate(iterate_batches(len(train_split), settings.batch_size, shuffle)):
            batch = Batch(batch_tensors(train_split, rows, torch_device, model.features),
                          labels_all[rows].to(torch_device), audio_all[rows].to(torch_device),
                          visual_all[rows].to(torch_device), rows, epoch, index, n_batches)
            loss = objective(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            total += loss.item() * len(rows)
            count += len(rows)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        metrics = validate(model, val_split, val_gt, settings, torch_device)
        state["log"].append(log_row(epoch, total / count, lr, time.perf_counter() - started, metrics))
        better, score = _keeps(settings.keep, metrics, epoch, state["best_score"])
        if better:
            state["best_score"], state["best_epoch"] = score, epoch
            kept = {"epoch": epoch, "state_dict": _cpu_copy(model), "val_metrics": metrics}
            save_checkpoint(out_dir / "model.pt", model, classes, epoch=epoch, val_metrics=metrics, **extra)
            written = epoch
        state["epoch"] = epoch
        epochs.set_postfix(loss=f"{total / count:.4f}", val_type_at_av=f"{metrics['segment_level']['type_at_av']:.2f}")
        if not progress:  # a log file's steady line instead of the bar
            print(f"epoch {epoch} of {settings.epochs}: loss {total / count:.4f}, validation segment Type@AV "
                  f"{metrics['segment_level']['type_at_av']:.2f}, {time.perf_counter() - started:.1f} s",
                  file=sys.stderr, flush=True)
        save_checkpoint(last_path, model, classes, epoch=epoch, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), shuffle_rng=shuffle.get_state(),
                        torch_rng=torch.get_rng_state(),
                        cuda_rng=torch.cuda.get_rng_state(torch_device) if torch_device.type == "cuda" else None,
                        train_state=state, kept=kept, **extra, **_objective_state(objective))
        write_log(out_dir, state["log"])
        write_summary(out_dir, _summary(state, settings.keep, len(train_split), len(val_split)))
    if kept is not None and written != kept["epoch"]:  # resumed after the kept epoch: its model.pt again
        model.load_state_dict(kept["state_dict"])
        save_checkpoint(out_dir / "model.pt", model, classes, epoch=kept["epoch"], val_metrics=kept["val_metrics"],
                        **extra)
    summary = _summary(state, settings.keep, len(train_split), len(val_split))
    write_log(out_dir, state["log"])
    write_summary(out_dir, summary)
    if not keep_last:  # finished: model.pt, log.csv and summary.json say all a finished stage needs
        last_path.unlink(missing_ok=True)
    return summary


def _summary(state: dict[str, Any], keep: str, n_train: int, n_val: int) -> dict[str, Any]:
    """What training did: the kept epoch (the one in model.pt) and why, and its validation scores."""
    best = state["log"][state["best_epoch"] - 1] if state["best_epoch"] else {}
    return {"kept_epoch": state["best_epoch"], "keep": keep,
            "best_val_type_at_av": best.get("segment_type_at_av"), "best_val_event_audio": best.get("event_audio"),
            "epochs": state["epoch"], "n_train": n_train, "n_val": n_val}
