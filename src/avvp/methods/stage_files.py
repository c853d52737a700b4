"""The files a training stage writes beside its checkpoints: `log.csv` (one row per epoch: loss,
learning rate, seconds and the validation scores) and `summary.json` (which epoch model.pt holds,
and why). Plain CSV and JSON, so reports read them without torch.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from avvp.base.atomic import atomic_output
from avvp.base.protocol import LEVELS, SCORES

LOG_NAME = "log.csv"
SUMMARY_NAME = "summary.json"
LOG_COLUMNS = ("epoch", "loss", "lr", "seconds") + tuple(f"{lv.split('_')[0]}_{s}" for lv in LEVELS for s in SCORES)


def log_row(epoch: int, loss: float, lr: float, seconds: float, metrics: dict[str, Any]) -> dict[str, Any]:
    """One epoch's row: its loss and learning rate, how long it took, and its validation scores."""
    row: dict[str, Any] = {"epoch": epoch, "loss": loss, "lr": lr, "seconds": round(seconds, 3)}
    for level in LEVELS:
        for score in SCORES:
            row[f"{level.split('_')[0]}_{score}"] = metrics[level][score]
    return row


def write_log(stage_dir: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    with atomic_output(Path(stage_dir) / LOG_NAME, "w") as fh:
        fh.write(buffer.getvalue())


def read_log(path: str | Path) -> dict[str, list[float]]:
    """A `log.csv` as columns of floats; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log {path} not found")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no epochs logged")
    missing = {"epoch", "loss", "segment_type_at_av"} - set(rows[0])
    if missing:
        raise ValueError(f"{path}: not a training log, columns {sorted(missing)} missing")
    columns: dict[str, list[float]] = {k: [] for k in rows[0]}
    for line, row in enumerate(rows, start=2):
        for key, value in row.items():
            try:
                columns[key].append(float(value))
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: {key} {value!r} is not a number") from None
    return columns


def write_summary(stage_dir: Path, summary: dict[str, Any]) -> None:
    with atomic_output(Path(stage_dir) / SUMMARY_NAME, "w") as fh:
        json.dump(summary, fh, indent=1)


def read_summary(stage_dir: str | Path) -> dict[str, Any]:
    """A training stage's summary.json (which epoch model.pt holds)."""
    path = Path(stage_dir) / SUMMARY_NAME
    if not path.is_file():
        raise FileNotFoundError(f"training summary {path} not found")
    return json.loads(path.read_text(encoding="utf-8"))
