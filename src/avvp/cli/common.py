"""Arguments and loaders shared by the model-side subcommands (pack, train, predict)."""
from __future__ import annotations

import argparse
from pathlib import Path

from avvp.annotations import Vocabulary, WeakSplit, read_classes, read_weak
from avvp.features import FeatureSource, PackedSplit, STREAMS, load_packed, pack_split, released_source


def add_features_args(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--features", type=Path, required=required,
                        help="folder in the released layout (vggish/, res152/, r2plus1d_18/)")
    parser.add_argument("--features-dir", action="append", default=[], metavar="KIND=DIR",
                        help="an extra folder of one kind's <id>.npy files (repeatable; searched after --features)")
    parser.add_argument("--on-missing", choices=("error", "skip"), default="error",
                        help="a missing or bad feature file fails (default) or is recorded as a skip")


def add_classes_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classes", type=Path,
                        help="the data set's classes.txt (default: classes.txt beside the split file)")


def feature_source(args: argparse.Namespace) -> FeatureSource:
    source: dict[str, list[Path]] = released_source(args.features) if args.features else {k: [] for k in STREAMS}
    for item in args.features_dir:
        kind, sep, folder = item.partition("=")
        if not sep or kind not in STREAMS:
            raise ValueError(f"--features-dir takes KIND=DIR with KIND in {sorted(STREAMS)}, got {item!r}")
        source[kind].append(Path(folder))
    return source


def vocabulary(classes: Path | None, split_csv: Path) -> Vocabulary:
    path = classes or split_csv.parent / "classes.txt"
    if not path.is_file():
        raise FileNotFoundError(f"class list {path} not found; pass --classes")
    return read_classes(path)


def split_and_pack(split_csv: Path, vocab: Vocabulary, args: argparse.Namespace,
                   pack: Path | None, out_dir: Path) -> tuple[WeakSplit, PackedSplit]:
    """The split file and its packed features: `pack` if given, else packed now into `out_dir`."""
    split = read_weak(split_csv, vocab)
    if pack is not None:
        packed = load_packed(pack)
        if tuple(packed.classes) != vocab.classes:
            raise ValueError(f"{pack} was packed with classes {packed.classes}, not {vocab.classes}")
    else:
        packed = pack_split(split, feature_source(args), out_dir, on_missing=args.on_missing)
    return split, packed
