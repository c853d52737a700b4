"""Arguments and loaders shared by the model-side commands (pack, train, predict, evaluate, parse)."""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from avvp.extractors import PUBLISHED

if TYPE_CHECKING:
    from avvp.evaluation.annotations import Vocabulary, WeakSplit
    from avvp.features.store import FeatureSource, PackedSplit


def add_required_paths(parser: argparse.ArgumentParser, helps: Mapping[str, str]) -> None:
    """A required path option for each flag of `helps` (flag -> help text), in order."""
    for flag, text in helps.items():
        parser.add_argument(flag, required=True, type=Path, help=text)


def add_limit_args(parser: argparse.ArgumentParser, seconds: float, frames: int, what: str) -> None:
    """--max-seconds and --max-frames: bounds on a video as it decodes (0 = no bound)."""
    parser.add_argument("--max-seconds", type=float, default=seconds, metavar="S",
                        help=f"refuse a {what} longer than this, as decoded, not as its header claims "
                             "(default: %(default)g; 0: no limit)")
    parser.add_argument("--max-frames", type=int, default=frames, metavar="N",
                        help=f"refuse a {what} with more video frames than this (default: %(default)d; 0: no limit)")


def limits(args: argparse.Namespace) -> dict[str, float | int | None]:
    """The --max-seconds/--max-frames values, 0 (or less) as None: no limit."""
    return {"max_seconds": args.max_seconds if args.max_seconds > 0 else None,
            "max_frames": args.max_frames if args.max_frames > 0 else None}


def add_features_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", type=Path,
                        help="a folder in the released layout (<kind>/<video id>.npy for each kind)")
    parser.add_argument("--features-shards", type=Path, metavar="DIR",
                        help="a folder of shard folders 000, 001, ..., each in the released layout (the "
                             "workflow's results/features); with --shard-count")
    parser.add_argument("--shard-count", type=int, default=0, metavar="N",
                        help="--features-shards: its shards 000 to N-1 (default: %(default)s)")
    parser.add_argument("--features-dir", action="append", default=[], metavar="KIND=DIR",
                        help="an extra folder of one kind's <id>.npy files (repeatable; searched after --features)")
    parser.add_argument("--on-missing", choices=("error", "skip"), default="error",
                        help="a missing or bad feature file fails (default) or is recorded as a skip")


def add_threshold_args(parser: argparse.ArgumentParser) -> None:
    """The two decision thresholds of PROTOCOL section 5, the same in evaluate and parse."""
    parser.add_argument("--frame-threshold", type=float, default=0.5,
                        help="a segment has an event when its per-segment, per-modality probability is at "
                        "least this (default 0.5)")
    parser.add_argument("--global-threshold", type=float, default=0.5,
                        help="an event counts in a video at all only when its video-level probability is "
                        "at least this (default 0.5)")


def add_feature_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-features", type=feature_names, default=PUBLISHED, metavar="KIND[,KIND...]",
                        help=f"the model's feature set, in order (default: {','.join(PUBLISHED)})")


def feature_names(text: str) -> tuple[str, ...]:
    """`vggish,res152` -> its known kinds (an unknown one is an error naming the known ones)."""
    from avvp.extractors import feature_set

    try:
        return tuple(kind.name for kind in feature_set(n.strip() for n in text.split(",") if n.strip()))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_classes_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classes", type=Path,
                        help="the data set's classes.txt (default: classes.txt beside the split file)")


def feature_source(args: argparse.Namespace, kinds: tuple[str, ...]) -> FeatureSource:
    from avvp.extractors import feature_kind
    from avvp.features.store import released_source

    source: dict[str, list[Path]] = released_source(args.features, kinds) if args.features else {k: [] for k in kinds}
    if args.features_shards is not None:
        if args.shard_count < 1:
            raise ValueError("--features-shards needs --shard-count N (its shards 000 to N-1)")
        for shard in range(args.shard_count):
            for kind, folders in released_source(args.features_shards / f"{shard:03d}", kinds).items():
                source[kind] += folders
    for item in args.features_dir:
        kind, sep, folder = item.partition("=")
        if not sep:
            raise ValueError(f"--features-dir takes KIND=DIR, got {item!r}")
        feature_kind(kind)
        source.setdefault(kind, []).append(Path(folder))
    return source


def vocabulary(classes: Path | None, split_csv: Path) -> Vocabulary:
    from avvp.evaluation.annotations import read_classes

    path = classes or split_csv.parent / "classes.txt"
    if not path.is_file():
        raise FileNotFoundError(f"class list {path} not found; pass --classes")
    return read_classes(path)


def split_and_pack(split_csv: Path, vocab: Vocabulary, args: argparse.Namespace, pack: Path | None,
                   out_dir: Path, kinds: tuple[str, ...], pooled: bool = True) -> tuple[WeakSplit, PackedSplit]:
    """The split file and its packed features: `pack` if given, else packed now into `out_dir`
    (`pooled`: rows averaged to segments, which only a network with linear input layers allows)."""
    from avvp.evaluation.annotations import read_weak
    from avvp.features.store import packed_or_pack

    split = read_weak(split_csv, vocab)
    source = feature_source(args, kinds) if pack is None else {}
    return split, packed_or_pack(split, pack, source, out_dir, kinds, args.on_missing, pooled)
