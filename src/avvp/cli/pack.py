"""`avvp pack`: one split's per-video features -> memory-mapped arrays, one per feature kind, with
rows averaged to the 10 one-second segments."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from avvp.cli.common import add_classes_arg, add_feature_set_arg, add_features_args, feature_source, vocabulary

HELP = "pack a split's features into memory-mapped arrays"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split-csv", type=Path, required=True, help="the weak split file (LLP format)")
    add_classes_arg(parser)
    add_features_args(parser)
    add_feature_set_arg(parser)
    parser.add_argument("--manifest", type=Path, help="availability records (TSV); only available clips are packed")
    parser.add_argument("--unpooled", action="store_true", help="keep each kind's own rows instead of 10 segments")
    parser.add_argument("--min-coverage", type=float, default=0.0, metavar="F",
                        help="fail, writing nothing, when fewer than this fraction of the split's videos have "
                             "features (a half-copied features folder; default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, required=True, help="the pack folder to write")


def run(args: argparse.Namespace) -> None:
    from avvp.evaluation.annotations import read_weak
    from avvp.features.store import pack_split
    from avvp.clips.records import read_records

    split = read_weak(args.split_csv, vocabulary(args.classes, args.split_csv))
    available = reasons = None
    if args.manifest:
        records = read_records(args.manifest)
        available = {r.filename for r in records if r.status != "unavailable"}
        reasons = {r.filename: r.reason for r in records if r.status == "unavailable"}
    kinds = args.model_features
    packed = pack_split(split, feature_source(args, kinds), args.out_dir, kinds, pooled=not args.unpooled,
                        available=available, on_missing=args.on_missing, unavailable_reasons=reasons)
    total = len(split.filenames)
    if total and len(packed) / total < args.min_coverage:
        shutil.rmtree(args.out_dir)
        where = args.features or args.features_shards or ", ".join(args.features_dir) or "the features"
        raise ValueError(f"{args.split_csv}: only {len(packed)} of {total} videos ({100 * len(packed) / total:.1f} %) "
                         f"have features in {where}, below the minimum coverage {args.min_coverage:g} (config "
                         "dataset.min_coverage); complete the folder, or lower the minimum to run on partial data")
    print(f"packed {len(packed)} of {total} videos into {args.out_dir} ({len(packed.skipped)} skipped)")
