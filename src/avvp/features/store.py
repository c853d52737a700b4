"""The feature store: per-video `.npy` files in the released layout, and packed per-split arrays.

Training reads one memory-mapped array per split and feature kind. Kinds with more rows than
segments (ResNet-152's 80 frames) are averaged to 10 segments at packing time: HAN applies a
Linear to every row and then averages each segment's rows, and a mean commutes with a Linear, so
pooling first is exact (as for a kind's own weighted pooling: CLAP's token maps). Shapes and names come from the feature kinds registry.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from avvp.evaluation.annotations import WeakSplit, video_id
from avvp.base.atomic import atomic_folder
from avvp.extractors import PUBLISHED, feature_kind
from avvp.features.weights import combined_record
from avvp.base.protocol import SEGMENTS


class FeatureError(ValueError):
    """A missing or malformed feature file; the message names the file."""


FeatureSource = Mapping[str, Sequence[Path]]


def released_source(root: str | Path, kinds: Sequence[str] = PUBLISHED) -> dict[str, list[Path]]:
    """The folders of a released-layout root: `root/<kind>` for each kind (by default the published three)."""
    root = Path(root)
    return {kind: [root / kind] for kind in kinds}


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
    expected = feature_kind(kind).shape
    if array.shape != expected:
        raise FeatureError(f"{path}: {kind} features must have shape {expected}, got {array.shape}")
    if array.dtype != np.float32:
        raise FeatureError(f"{path}: {kind} features must be float32, got {array.dtype}")
    if not np.isfinite(array).all():
        raise FeatureError(f"{path}: {kind} features hold NaN or infinite values")
    return array


def pool_segments(rows: np.ndarray, kind: str | None = None) -> np.ndarray:
    """Rows to one per segment: (..., 80, D) -> (..., 10, D) by averaging consecutive rows, or by
    the kind's own pooling where it names one (CLAP's 64 time-frequency tokens); 10 rows stay."""
    *lead, n, dim = rows.shape
    spec = feature_kind(kind) if kind is not None else None
    if spec is not None and spec.pooling:
        return np.einsum("sr,...rd->...sd", spec.segment_weights(), rows).astype(np.float32)
    if n == SEGMENTS:
        return rows
    return rows.reshape(*lead, SEGMENTS, n // SEGMENTS, dim).mean(axis=-2, dtype=np.float32)


@dataclass(frozen=True)
class PackedSplit:
    """A split's features as memory-mapped arrays, in the split file's order (skipped videos out)."""

    root: Path
    filenames: tuple[str, ...]
    classes: tuple[str, ...]
    labels: np.ndarray  # (N, C)
    arrays: dict[str, np.ndarray]  # feature kind -> (N, 10 or its rows, D), memory-mapped
    skipped: dict[str, str]  # filename -> reason
    pooled: bool
    # kind -> the weights.json record of the folders its features came from (None: no record)
    feature_weights: dict[str, dict | None] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.filenames)


def pack_split(
    split: WeakSplit,
    source: FeatureSource,
    out_dir: str | Path,
    kinds: Sequence[str] = PUBLISHED,
    pooled: bool = True,
    available: set[str] | None = None,
    on_missing: str = "error",
    unavailable_reasons: Mapping[str, str] | None = None,
) -> PackedSplit:
    """Gather a split's per-video files into one array per kind, written under `out_dir`.

    `available` (filenames from the availability manifest) restricts the videos; a video outside
    it is skipped with its manifest reason. `on_missing="skip"` records a missing or bad feature
    file as a skip instead of failing. The folder appears under its final name only when complete.
    Each kind's weights record (`weights.json` of the folders its files came from) is kept in the
    index, so that training can record what made its features.
    """
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', not {on_missing!r}")
    specs = [feature_kind(k) for k in kinds]
    reasons = unavailable_reasons or {}
    skipped: dict[str, str] = {}
    rows: dict[str, list[np.ndarray]] = {kind: [] for kind in kinds}
    kept: list[int] = []
    folders: dict[str, set[Path]] = {kind: set() for kind in kinds}
    for i, name in enumerate(split.filenames):
        if available is not None and name not in available:
            skipped[name] = reasons.get(name, "not available")
            continue
        try:
            files = {k: find_feature(source, k, video_id(name)) for k in kinds}
            loaded = {k: load_feature(path, k) for k, path in files.items()}
        except FeatureError as err:
            if on_missing == "error":
                raise
            skipped[name] = str(err)
            continue
        for kind, array in loaded.items():
            rows[kind].append(pool_segments(array, kind) if pooled else array)
            folders[kind].add(files[kind].parent)
        kept.append(i)
    records = {kind: combined_record(kind, folders[kind]) for kind in kinds}

    with atomic_folder(out_dir) as tmp:
        for spec in specs:
            n_rows = SEGMENTS if pooled else spec.rows
            stacked = np.stack(rows[spec.name]) if kept else np.zeros((0, n_rows, spec.dim), np.float32)
            np.save(tmp / f"{spec.name}.npy", stacked)
        np.save(tmp / "labels.npy", split.labels[kept])
        index = {
            "filenames": [split.filenames[i] for i in kept],
            "classes": list(split.vocab.classes),
            "kinds": list(kinds),
            "skipped": skipped,
            "pooled": pooled,
            "feature_weights": records,
        }
        (tmp / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    return load_packed(out_dir)


def packed_or_pack(split: WeakSplit, pack: str | Path | None, source: FeatureSource, out_dir: str | Path,
                   kinds: Sequence[str] = PUBLISHED, on_missing: str = "error", pooled: bool = True) -> PackedSplit:
    """The split's packed features: the `avvp pack` folder `pack` where given (it must hold the
    split's classes), else the split packed now from `source` into `out_dir` (`pack_split`)."""
    if pack is None:
        return pack_split(split, source, out_dir, kinds, pooled=pooled, on_missing=on_missing)
    packed = load_packed(pack)
    if tuple(packed.classes) != split.vocab.classes:
        raise ValueError(f"{pack} was packed with classes {packed.classes}, not {split.vocab.classes}")
    return packed


def load_packed(root: str | Path) -> PackedSplit:
    """Open a packed split folder (arrays memory-mapped, read-only)."""
    root = Path(root)
    index_path = root / "index.json"
    if not index_path.is_file():
        raise FeatureError(f"{root}: not a packed split (no index.json)")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    arrays = {kind: np.load(root / f"{kind}.npy", mmap_mode="r") for kind in index.get("kinds", PUBLISHED)}
    labels = np.load(root / "labels.npy")
    n = len(index["filenames"])
    for kind, array in arrays.items():
        if array.shape[0] != n:
            raise FeatureError(f"{root / kind}.npy: {array.shape[0]} rows, index.json lists {n}")
    return PackedSplit(
        root=root,
        filenames=tuple(index["filenames"]),
        classes=tuple(index["classes"]),
        labels=labels,
        arrays=arrays,
        skipped=dict(index["skipped"]),
        pooled=bool(index["pooled"]),
        feature_weights=dict(index.get("feature_weights", {})),
    )
