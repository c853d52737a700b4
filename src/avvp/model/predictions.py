"""Model outputs for a split, stored as one `.npz` that prediction writes and evaluation reads.

Layout (CONTRACTS): `video_ids` (N,) unicode = split filenames, `classes` (C,) unicode,
`global_prob` (N, C) float32, `frame_prob` (N, T, 2, C) float32 with [:, :, 0] audio and
[:, :, 1] visual; since evaluation protocols also `a_prob`, `v_prob` (N, C) (the modality gates
of MA-MMIL's and JoMoLD's rules) and the same four arrays of a second forward pass with the
cross-modal attention switched off, prefixed `off_` (CMPAE's rule mixes both passes). Files
without them still evaluate under the rules that do not need them. Both sides validate the file,
so a bad one fails where it is read, naming the file, instead of producing wrong numbers later.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avvp.base.atomic import atomic_output
from avvp.evaluation.protocols import Outputs, Protocol

_KEYS = ("video_ids", "classes", "global_prob", "frame_prob")
_PROBS = ("global_prob", "frame_prob", "a_prob", "v_prob")  # the arrays of one pass (Outputs' fields)
OFF = "off_"  # the prefix of the pass without cross-modal attention


@dataclass(frozen=True)
class Predictions:
    """Video-level and segment-level probabilities of one model on the videos of a split."""

    video_ids: tuple[str, ...]
    classes: tuple[str, ...]
    global_prob: np.ndarray  # (N, C) float32
    frame_prob: np.ndarray  # (N, T, 2, C) float32; axis 2: 0 audio, 1 visual
    a_prob: np.ndarray | None = None  # (N, C) float32
    v_prob: np.ndarray | None = None  # (N, C) float32
    cross_modal_off: Outputs | None = None  # the same model without cross-modal attention

    def __post_init__(self) -> None:
        object.__setattr__(self, "video_ids", tuple(str(v) for v in self.video_ids))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        problem = _problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def as_trained(self) -> Outputs:
        return Outputs(self.global_prob, self.frame_prob, self.a_prob, self.v_prob)

    def outputs(self, protocol: Protocol) -> Outputs:
        """The probabilities `protocol` reads: the model as trained, without its cross-modal
        attention, or the mix of both."""
        if protocol.forward == "as_trained":
            return self.as_trained
        if self.cross_modal_off is None:
            raise ValueError(f"protocol {protocol.name} needs the pass without cross-modal attention, which these "
                             "predictions lack (written by an avvp before protocols: predict again)")
        if protocol.forward == "cross_modal_off":
            return self.cross_modal_off
        return self.as_trained.mixed(self.cross_modal_off, protocol.mix_weight)


def _arrays(p: Predictions) -> list[tuple[str, np.ndarray]]:
    """Every probability array `p` holds, under its file key."""
    out = [(name, getattr(p, name)) for name in _PROBS if getattr(p, name) is not None]
    if p.cross_modal_off is not None:
        out += [(OFF + name, getattr(p.cross_modal_off, name)) for name in _PROBS
                if getattr(p.cross_modal_off, name) is not None]
    return out


def _problem(p: Predictions) -> str | None:
    """What is wrong with `p`, or None; one message per kind of mistake."""
    n, c = len(p.video_ids), len(p.classes)
    if len(set(p.video_ids)) != n:
        dup = sorted({v for v in p.video_ids if p.video_ids.count(v) > 1})
        return f"video_ids repeat: {dup[:5]}"
    if c == 0 or len(set(p.classes)) != c:
        return f"classes must be non-empty and distinct, got {list(p.classes)}"
    for prefix, part in (("", p), (OFF, p.cross_modal_off)):
        if part is not None and (part.a_prob is None) != (part.v_prob is None):
            return f"{prefix}a_prob and {prefix}v_prob come together"
        if part is not None and (part.global_prob is None or part.frame_prob is None):
            return f"{prefix}global_prob and {prefix}frame_prob come together"
    for name, array in _arrays(p):
        frames = name.endswith("frame_prob")
        shape = "(N, T, 2, C)" if frames else "(N, C)"
        if not isinstance(array, np.ndarray) or array.dtype != np.float32:
            return f"{name} must be a float32 array, got {getattr(array, 'dtype', type(array).__name__)}"
        ok = array.ndim == 4 and array.shape[2] == 2 if frames else array.ndim == 2
        if frames and ok and array.shape[1] != p.frame_prob.shape[1]:
            return f"{name} has {array.shape[1]} segments, frame_prob {p.frame_prob.shape[1]}"
        if not ok or array.shape[0] != n or array.shape[-1] != c:
            return f"{name} has shape {array.shape}, expected {shape} with N={n} videos, C={c} classes"
        if not np.all((array >= 0) & (array <= 1)):  # also rejects NaN
            return f"{name} holds values outside [0, 1] (or NaN)"
    return None


def save_predictions(path: str | Path, preds: Predictions) -> None:
    """Write `preds` as an uncompressed `.npz` (no pickled objects), atomically."""
    with atomic_output(path) as fh:
        np.savez(fh, video_ids=np.array(preds.video_ids, dtype=str), classes=np.array(preds.classes, dtype=str),
                 **dict(_arrays(preds)))


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
            arrays = {k: data[k] for k in keys}
        for key in ("video_ids", "classes"):
            if arrays[key].ndim != 1 or arrays[key].dtype.kind != "U":
                got = f"{arrays[key].dtype} {arrays[key].shape}"
                raise ValueError(f"{key} must be a 1-D unicode array, got {got}")
        off = None
        if OFF + "global_prob" in arrays:
            off = Outputs(*(arrays.get(OFF + name) for name in _PROBS))
        return Predictions(tuple(arrays["video_ids"].tolist()), tuple(arrays["classes"].tolist()),
                           *(arrays.get(name) for name in _PROBS), cross_modal_off=off)
    except ValueError as err:
        raise ValueError(f"{path}: bad predictions file: {err}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:  # unreadable or truncated
        raise ValueError(f"{path}: not a readable .npz predictions file ({err})") from None


def select_rows(preds: Predictions, rows: np.ndarray) -> Predictions:
    """The predictions of the given videos (row indices), in that order."""
    def part(outputs: Outputs) -> list[np.ndarray | None]:
        return [None if getattr(outputs, name) is None else getattr(outputs, name)[rows] for name in _PROBS]

    off = None if preds.cross_modal_off is None else Outputs(*part(preds.cross_modal_off))
    return Predictions(tuple(preds.video_ids[i] for i in rows), preds.classes, *part(preds.as_trained),
                       cross_modal_off=off)
