"""`avvp train`: HAN with the paper's recipe; every hyper-parameter can be overridden."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from avvp.cli.common import add_classes_arg, add_features_args, split_and_pack, vocabulary


def register(sub: argparse._SubParsersAction) -> None:
    from avvp.training import TrainConfig

    p = sub.add_parser("train", help="train HAN on weak labels; keeps the best validation checkpoint")
    add_features_args(p, required=False)
    for name in ("train", "val", "audio", "visual"):
        p.add_argument(f"--{name}-csv", type=Path, required=True)
    add_classes_arg(p)
    p.add_argument("--train-pack", type=Path, help="an `avvp pack` folder to use instead of --features")
    p.add_argument("--val-pack", type=Path, help="an `avvp pack` folder to use instead of --features")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            kind = {"int": int, "float": float, "str": str}[field.type]
            p.add_argument(flag, type=kind, default=field.default, help=f"default {field.default}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from avvp.annotations import ground_truth, read_dense
    from avvp.training import TrainConfig, train

    if args.features is None and not args.features_dir and not (args.train_pack and args.val_pack):
        raise ValueError("give --features (or --features-dir), or both --train-pack and --val-pack")
    vocab = vocabulary(args.classes, args.train_csv)
    packs = args.out_dir / "packed"
    _, train_pack = split_and_pack(args.train_csv, vocab, args, args.train_pack, packs / "train")
    val_split, val_pack = split_and_pack(args.val_csv, vocab, args, args.val_pack, packs / "val")
    kept = set(val_pack.filenames)
    val_split = val_split.subset([f in kept for f in val_split.filenames])
    if val_split.filenames != val_pack.filenames:
        raise ValueError(f"{args.val_pack}: videos are not in the order of {args.val_csv}")
    gt = ground_truth(val_split, read_dense(args.audio_csv, vocab), read_dense(args.visual_csv, vocab))
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    summary = train(train_pack, val_pack, gt, args.out_dir, config, resume=args.resume)
    print(json.dumps(summary))
