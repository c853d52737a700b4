"""The feature store: per-video `.npy` files in the released layout, and packed per-split arrays.

Training reads one memory-mapped array per split and stream. The 80 ResNet-152 frame features are
averaged to 10 segments at packing time: HAN applies a Linear to every frame and then averages
each 8 consecutive frames, and a mean commutes with a Linear, so pooling first is exact.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from avvp.annotations import WeakSplit, video_id

# kind -> (rows, dims) of one video's file, as released.
STREAMS: dict[str, tuple[int, int]] = {
    "vggish": (10, 128),
    "res152": (80, 2048),
    "r2plus1d_18": (10, 512),
}
N_SEGMENTS = 10


class FeatureError(ValueError):
    """A missing or malformed feature file; the message names the file."""


FeatureSource = Mapping[str, Sequence[Path]]


def released_source(root: str | Path) -> dict[str, list[Path]]:
    """The folders of a released-layout root: `root/vggish`, `root/res152`, `root/r2plus1d_18`."""
    root = Path(root)
    return {kind: [root / kind] for kind in STREAMS}


def find_feature(source: FeatureSource, kind: str, vid: str) -> Path:
    """The first `<vid>.npy` of `kind` among the source's folders."""
    for folder in source.get(kind, ()):
        path = Path(folder) / f"{vid}.npy"
        if path.is_file():
            return path
    folders = ", ".join(str(f) for f in source.get(kind, ())) or "(no folder given)"
    raise FeatureError(f"no {kind} features for video {vid}: {vid}.npy not in {folders}")


def load_feature(path: Path, kind: str) -> np.ndarray:
    """Load one video's features, checking shape, dtype and finiteness."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise FeatureError(f"{path}: unreadable {kind} feature file ({err})") from None
    expected = STREAMS[kind]
    if array.shape != expected:
        raise FeatureError(f"{path}: {kind} features must have shape {expected}, got {array.shape}")
    if array.dtype != np.float32:
        raise FeatureError(f"{path}: {kind} features must be float32, got {array.dtype}")
    if not np.isfinite(array).all():
        raise FeatureError(f"{path}: {kind} features hold NaN or infinite values")
    return array


def pool_frames(frames: np.ndarray, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """Average consecutive frames to `n_segments` rows: (..., 80, D) -> (..., 10, D)."""
    *lead, n, dim = frames.shape
    return frames.reshape(*lead, n_segments, n // n_segments, dim).mean(axis=-2, dtype=np.float32)


@dataclass(frozen=True)
class PackedSplit:
    """A split's features as memory-mapped arrays, in the split file's order (skipped videos out)."""

    root: Path
    filenames: tuple[str, ...]
    classes: tuple[str, ...]
    labels: np.ndarray  # (N, C)
    streams: dict[str, np.ndarray]  # kind -> (N, 10 or 80, D), memory-mapped
    skipped: dict[str, str]  # filename -> reason
    pooled: bool

    def __len__(self) -> int:
        return len(self.filenames)


def pack_split(
    split: WeakSplit,
    source: FeatureSource,
    out_dir: str | Path,
    pooled: bool = True,
    available: set[str] | None = None,
    on_missing: str = "error",
    unavailable_reasons: Mapping[str, str] | None = None,
) -> PackedSplit:
    """Gather a split's per-video files into one array per stream, written under `out_dir`.

    `available` (filenames from the availability manifest) restricts the videos; a video outside
    it is skipped with its manifest reason. `on_missing="skip"` records a missing or bad feature
    file as a skip instead of failing. The folder appears under its final name only when complete.
    """
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', not {on_missing!r}")
    out_dir = Path(out_dir)
    reasons = unavailable_reasons or {}
    skipped: dict[str, str] = {}
    rows: dict[str, list[np.ndarray]] = {kind: [] for kind in STREAMS}
    kept: list[int] = []
    for i, name in enumerate(split.filenames):
        if available is not None and name not in available:
            skipped[name] = reasons.get(name, "not available")
            continue
        try:
            loaded = {k: load_feature(find_feature(source, k, video_id(name)), k) for k in STREAMS}
        except FeatureError as err:
            if on_missing == "error":
                raise
            skipped[name] = str(err)
            continue
        for kind, array in loaded.items():
            rows[kind].append(pool_frames(array) if pooled and kind == "res152" else array)
        kept.append(i)

    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for kind, (n_rows, dim) in STREAMS.items():
        n_rows = N_SEGMENTS if pooled and kind == "res152" else n_rows
        stacked = np.stack(rows[kind]) if kept else np.zeros((0, n_rows, dim), np.float32)
        np.save(tmp / f"{kind}.npy", stacked)
    np.save(tmp / "labels.npy", split.labels[kept])
    index = {
        "filenames": [split.filenames[i] for i in kept],
        "classes": list(split.vocab.classes),
        "skipped": skipped,
        "pooled": pooled,
    }
    (tmp / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return load_packed(out_dir)


def load_packed(root: str | Path) -> PackedSplit:
    """Open a packed split folder (arrays memory-mapped, read-only)."""
    root = Path(root)
    index_path = root / "index.json"
    if not index_path.is_file():
        raise FeatureError(f"{root}: not a packed split (no index.json)")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    streams = {kind: np.load(root / f"{kind}.npy", mmap_mode="r") for kind in STREAMS}
    labels = np.load(root / "labels.npy")
    n = len(index["filenames"])
    for kind, array in streams.items():
        if array.shape[0] != n:
            raise FeatureError(f"{root / kind}.npy: {array.shape[0]} rows, index.json lists {n}")
    return PackedSplit(
        root=root,
        filenames=tuple(index["filenames"]),
        classes=tuple(index["classes"]),
        labels=labels,
        streams=streams,
        skipped=dict(index["skipped"]),
        pooled=bool(index["pooled"]),
    )
