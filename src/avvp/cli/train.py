"""`avvp train`: one training stage (HAN by default, or a stage of MA-MMIL or JoMoLD); every
hyper-parameter can be overridden, the defaults depend on --method."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from avvp.cli.common import add_classes_arg, add_features_args, split_and_pack, vocabulary


def _default_help(name: str, default: object, per_method: dict[str, dict[str, object]]) -> str:
    others = ", ".join(f"{m}: {opts[name]}" for m, opts in per_method.items() if name in opts)
    return f"default {default}" + (f" ({others})" if others else "")


def register(sub: argparse._SubParsersAction) -> None:
    from avvp.methods.recipes import METHOD_DEFAULTS, METHODS
    from avvp.training import TrainConfig

    p = sub.add_parser("train", help="train one stage on weak labels; keeps the stage's chosen checkpoint")
    add_features_args(p, required=False)
    for name in ("train", "val", "audio", "visual"):
        p.add_argument(f"--{name}-csv", type=Path, required=True)
    add_classes_arg(p)
    p.add_argument("--train-pack", type=Path, help="an `avvp pack` folder to use instead of --features")
    p.add_argument("--val-pack", type=Path, help="an `avvp pack` folder to use instead of --features")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--method", choices=METHODS, default="han",
                   help="the stage to train (default han); its defaults apply to the options below")
    p.add_argument("--audio-labels", type=Path, help="refined audio label table (ma_mmil_stage3; `avvp refine ma-mmil`)")
    p.add_argument("--visual-labels", type=Path, help="refined visual label table (ma_mmil_stage3)")
    p.add_argument("--noise-ratios", type=Path, help="noise ratios JSON (jomold; `avvp refine jomold-ratios`)")
    p.add_argument("--faithful", action=argparse.BooleanOptionalAction, default=False,
                   help="reproduce the released code where it departs from the paper (ma_mmil_stage3: the "
                        "video-level target loses removed audio labels; jomold_estimator, jomold: released "
                        "contrastive variant; jomold: released ramp, no label dropped in epoch 1)")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        helptext = _default_help(field.name, field.default, METHOD_DEFAULTS)
        if field.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        else:
            kind = {"int": int, "float": float, "str": str}[field.type]
            p.add_argument(flag, type=kind, default=None, choices=field.metadata.get("choices"), help=helptext)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from avvp.annotations import ground_truth, read_dense
    from avvp.methods.jomold import read_noise_ratios
    from avvp.methods.label_tables import read_label_table, table_rows
    from avvp.methods.recipes import build_objective, method_config
    from avvp.training import ModalityTargets, TrainConfig, train

    if args.features is None and not args.features_dir and not (args.train_pack and args.val_pack):
        raise ValueError("give --features (or --features-dir), or both --train-pack and --val-pack")
    if (args.audio_labels is None) != (args.visual_labels is None):
        raise ValueError("give both --audio-labels and --visual-labels, or neither")
    vocab = vocabulary(args.classes, args.train_csv)
    packs = args.out_dir / "packed"
    _, train_pack = split_and_pack(args.train_csv, vocab, args, args.train_pack, packs / "train")
    val_split, val_pack = split_and_pack(args.val_csv, vocab, args, args.val_pack, packs / "val")
    kept = set(val_pack.filenames)
    val_split = val_split.subset([f in kept for f in val_split.filenames])
    if val_split.filenames != val_pack.filenames:
        raise ValueError(f"{args.val_pack}: videos are not in the order of {args.val_csv}")
    gt = ground_truth(val_split, read_dense(args.audio_csv, vocab), read_dense(args.visual_csv, vocab))
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    config = method_config(args.method, **given)
    targets = None
    if args.audio_labels is not None:
        targets = ModalityTargets(*(
            table_rows(read_label_table(path, vocab.classes), train_pack.filenames, len(vocab), path)
            for path in (args.audio_labels, args.visual_labels)))
    ratios = read_noise_ratios(args.noise_ratios, vocab.classes) if args.noise_ratios else None
    objective = build_objective(args.method, config, args.faithful, targets is not None, ratios)
    summary = train(train_pack, val_pack, gt, args.out_dir, config, resume=args.resume,
                    objective=objective, targets=targets)
    print(json.dumps({"method": args.method, **summary}))
