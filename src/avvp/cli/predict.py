"""`avvp predict`: a checkpoint (ours or the official state dict) on a split -> predictions .npz."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from avvp.cli.common import add_classes_arg, add_features_args, split_and_pack


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="write global and frame probabilities of a split")
    p.add_argument("--checkpoint", type=Path, required=True)
    add_features_args(p, required=False)
    p.add_argument("--split-csv", type=Path, required=True)
    p.add_argument("--pack", type=Path, help="an `avvp pack` folder to use instead of --features")
    add_classes_arg(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from avvp.annotations import Vocabulary, read_classes
    from avvp.checkpoint import load_model
    from avvp.device import resolve_device
    from avvp.inference import predict_packed
    from avvp.predictions import save_predictions

    if args.features is None and not args.features_dir and args.pack is None:
        raise ValueError("give --features (or --features-dir), or --pack")
    device = resolve_device(args.device)
    sibling = args.split_csv.parent / "classes.txt"
    class_file = args.classes or (sibling if sibling.is_file() else None)
    given = read_classes(class_file).classes if class_file else None
    model, classes, _ = load_model(args.checkpoint, given, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as scratch:
        _, packed = split_and_pack(args.split_csv, Vocabulary(tuple(classes)), args, args.pack,
                                   Path(scratch) / "pack")
        save_predictions(args.out, predict_packed(model, packed, device))
    print(f"predicted {len(packed)} videos -> {args.out} ({len(packed.skipped)} skipped)")
