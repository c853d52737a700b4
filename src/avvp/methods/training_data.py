"""What a training stage reads, prepared: the training and validation splits packed (or their
`avvp pack` folders opened) and the validation split's dense ground truth, in the order of its pack.
`avvp train` calls `training_data`; so can a library caller before `avvp.methods.training.train`."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from avvp.evaluation.annotations import GroundTruth, Vocabulary, WeakSplit, ground_truth, read_dense, read_weak
from avvp.extractors import PUBLISHED
from avvp.features.store import FeatureSource, PackedSplit, packed_or_pack


@dataclass(frozen=True, eq=False)
class TrainingData:
    """The packed splits a stage trains and validates on, and the validation split's ground truth
    (row i: video i of `val`)."""

    train: PackedSplit
    val: PackedSplit
    val_gt: GroundTruth


def training_data(vocab: Vocabulary, train_csv: Path, val_csv: Path, audio_csv: Path, visual_csv: Path,
                  source: FeatureSource, packs_dir: Path, kinds: Sequence[str] = PUBLISHED, *,
                  train_pack: Path | None = None, val_pack: Path | None = None,
                  on_missing: str = "error") -> TrainingData:
    """The splits `train_csv` and `val_csv` (LLP format, classes `vocab`) with their features:
    `train_pack` / `val_pack` where given, else packed now from `source` (kind -> folders of
    `<id>.npy`) into `packs_dir`/train and `packs_dir`/val (`on_missing` as in `pack_split`); and
    the ground truth of the validation videos that were packed, from the dense `audio_csv` and
    `visual_csv`. A `val_pack` whose videos are not in the order of `val_csv` is refused."""
    train_split = read_weak(train_csv, vocab)
    train = packed_or_pack(train_split, train_pack, source, packs_dir / "train", kinds, on_missing)
    val_split = read_weak(val_csv, vocab)
    val = packed_or_pack(val_split, val_pack, source, packs_dir / "val", kinds, on_missing)
    return TrainingData(train, val, packed_ground_truth(val, val_split, audio_csv, visual_csv, val_pack))


def packed_ground_truth(packed: PackedSplit, split: WeakSplit, audio_csv: Path, visual_csv: Path,
                        where: Path | None) -> GroundTruth:
    """The dense ground truth of the videos of `split` that were packed, in the pack's order (the
    pack `where`, if its videos are in another order than the split file's, is refused)."""
    kept = set(packed.filenames)
    split = split.subset([f in kept for f in split.filenames])
    if split.filenames != packed.filenames:
        raise ValueError(f"{where}: videos are not in the order of {split.path}")
    return ground_truth(split, read_dense(audio_csv, split.vocab), read_dense(visual_csv, split.vocab))
