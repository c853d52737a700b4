"""The file `avvp calibrate` writes and evaluation reads: per-class gate thresholds chosen on the
validation split, with the classes they belong to and how they were chosen.

Layout: {"format": "avvp-calibration/1", "protocol": name, "classes": [...],
"thresholds": {"visual": [one per class], ...}, "chosen_on": {...}}. A threshold list that does not
fit the classes being scored is refused, naming the file, instead of gating the wrong class.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avvp.base.atomic import atomic_output

FORMAT = "avvp-calibration/1"


def write_thresholds(path: str | Path, protocol: str, classes: Sequence[str],
                     thresholds: Mapping[str, Sequence[float]], chosen_on: Mapping[str, Any]) -> None:
    """Write the per-class thresholds of each calibrated modality (atomically)."""
    body = {"format": FORMAT, "protocol": protocol, "classes": list(classes),
            "thresholds": {m: [float(t) for t in values] for m, values in thresholds.items()},
            "chosen_on": dict(chosen_on)}
    with atomic_output(path, "w") as fh:
        json.dump(body, fh, indent=2)
        fh.write("\n")


def read_thresholds(path: str | Path, classes: Sequence[str], modalities: Sequence[str]) -> dict[str, list[float]]:
    """The thresholds of `modalities` for `classes` (by name, so a reordered class list still fits)."""
    path = Path(path)
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: calibration file not found (`avvp calibrate` writes it)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a calibration file ({err})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"{path}: not a calibration file (format {FORMAT} expected)")
    index = {name: i for i, name in enumerate(body.get("classes", []))}
    missing = [c for c in classes if c not in index]
    if missing:
        raise ValueError(f"{path}: no thresholds for class(es) {missing[:5]}")
    out = {}
    for modality in modalities:
        values = body.get("thresholds", {}).get(modality)
        if not isinstance(values, list) or len(values) != len(index):
            raise ValueError(f"{path}: no {modality} thresholds for its {len(index)} classes")
        out[modality] = [float(values[index[c]]) for c in classes]
    return out
