"""`avvp pack`: one split's per-video features -> memory-mapped arrays (frames pooled to 10)."""
from __future__ import annotations

import argparse
from pathlib import Path

from avvp.cli.common import add_classes_arg, add_features_args, feature_source, vocabulary


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="pack a split's features into memory-mapped arrays")
    p.add_argument("--split-csv", type=Path, required=True)
    add_classes_arg(p)
    add_features_args(p, required=False)
    p.add_argument("--manifest", type=Path, help="availability records (TSV); only available clips are packed")
    p.add_argument("--unpooled", action="store_true", help="keep the 80 frame features instead of 10 segments")
    p.add_argument("--out-dir", type=Path, required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from avvp.annotations import read_weak
    from avvp.features import pack_split
    from avvp.records import read_records

    split = read_weak(args.split_csv, vocabulary(args.classes, args.split_csv))
    available = reasons = None
    if args.manifest:
        records = read_records(args.manifest)
        available = {r.filename for r in records if r.status != "unavailable"}
        reasons = {r.filename: r.reason for r in records if r.status == "unavailable"}
    packed = pack_split(split, feature_source(args), args.out_dir, pooled=not args.unpooled,
                        available=available, on_missing=args.on_missing, unavailable_reasons=reasons)
    print(f"packed {len(packed)} of {len(split.filenames)} videos into {args.out_dir}"
          f" ({len(packed.skipped)} skipped)")
