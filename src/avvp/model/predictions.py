"""Model outputs for a split, stored as one `.npz` that prediction writes and evaluation reads.

Layout (CONTRACTS): `video_ids` (N,) unicode = split filenames, `classes` (C,) unicode,
`global_prob` (N, C) float32, `frame_prob` (N, T, 2, C) float32 with [:, :, 0] audio and
[:, :, 1] visual. Both sides validate it, so a bad file fails where it is read, naming the file,
instead of producing wrong numbers later.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avvp.base.atomic import atomic_output

_KEYS = ("video_ids", "classes", "global_prob", "frame_prob")


@dataclass(frozen=True)
class Predictions:
    """Video-level and segment-level probabilities of one model on the videos of a split."""

    video_ids: tuple[str, ...]
    classes: tuple[str, ...]
    global_prob: np.ndarray  # (N, C) float32
    frame_prob: np.ndarray  # (N, T, 2, C) float32; axis 2: 0 audio, 1 visual

    def __post_init__(self) -> None:
        object.__setattr__(self, "video_ids", tuple(str(v) for v in self.video_ids))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        problem = _problem(self)
        if problem:
            raise ValueError(problem)


def _problem(p: Predictions) -> str | None:
    """What is wrong with `p`, or None; one message per kind of mistake."""
    n, c = len(p.video_ids), len(p.classes)
    if len(set(p.video_ids)) != n:
        dup = sorted({v for v in p.video_ids if p.video_ids.count(v) > 1})
        return f"video_ids repeat: {dup[:5]}"
    if c == 0 or len(set(p.classes)) != c:
        return f"classes must be non-empty and distinct, got {list(p.classes)}"
    for name, array, shape in (
        ("global_prob", p.global_prob, "(N, C)"),
        ("frame_prob", p.frame_prob, "(N, T, 2, C)"),
    ):
        if not isinstance(array, np.ndarray) or array.dtype != np.float32:
            return f"{name} must be a float32 array, got {getattr(array, 'dtype', type(array).__name__)}"
        ok = array.ndim == 2 if name == "global_prob" else array.ndim == 4 and array.shape[2] == 2
        if not ok or array.shape[0] != n or array.shape[-1] != c:
            return f"{name} has shape {array.shape}, expected {shape} with N={n} videos, C={c} classes"
        if not np.all((array >= 0) & (array <= 1)):  # also rejects NaN
            return f"{name} holds values outside [0, 1] (or NaN)"
    return None


def save_predictions(path: str | Path, preds: Predictions) -> None:
    """Write `preds` as an uncompressed `.npz` (no pickled objects), atomically."""
    with atomic_output(path) as fh:
        np.savez(
            fh,
            video_ids=np.array(preds.video_ids, dtype=str),
            classes=np.array(preds.classes, dtype=str),
            global_prob=preds.global_prob,
            frame_prob=preds.frame_prob,
        )


def load_predictions(path: str | Path) -> Predictions:
    """Read and validate a predictions file; every problem is a ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: predictions file not found")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with data:
            keys = set(data.files)
            missing = [k for k in _KEYS if k not in keys]
            if missing:
                raise ValueError(f"missing array(s) {missing}; found {sorted(keys)}")
            arrays = {k: data[k] for k in _KEYS}
        for key in ("video_ids", "classes"):
            if arrays[key].ndim != 1 or arrays[key].dtype.kind != "U":
                got = f"{arrays[key].dtype} {arrays[key].shape}"
                raise ValueError(f"{key} must be a 1-D unicode array, got {got}")
        return Predictions(
            tuple(arrays["video_ids"].tolist()),
            tuple(arrays["classes"].tolist()),
            arrays["global_prob"],
            arrays["frame_prob"],
        )
    except ValueError as err:
        raise ValueError(f"{path}: bad predictions file: {err}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:  # unreadable or truncated
        raise ValueError(f"{path}: not a readable .npz predictions file ({err})") from None
