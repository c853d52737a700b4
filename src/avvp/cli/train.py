"""`avvp train --stage ID`: one training stage of a method (HAN by default), from packed splits or
feature folders; every setting of the stage is an option whose default is the stage's published
value. Writes OUT_DIR/model.pt (the kept epoch), last.pt (resumable), log.csv and summary.json.

One training at a time writes a stage folder: OUT_DIR/train.lock names the live one, and a second
is refused (a killed one's lock is gone with it)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from avvp.cli.common import add_classes_arg, add_feature_set_arg, add_features_args, feature_source, vocabulary

HELP = "train one stage (HAN, or a stage of MA-MMIL, JoMoLD or VALOR) on weak or pseudo labels"


def _training_stages() -> list:
    from avvp.methods.stages import stages

    return [s for s in stages().values() if s.trains]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from avvp.cli.stage_args import add_stage_args

    add_stage_args(parser, _training_stages(), default="han")
    add_features_args(parser)
    add_feature_set_arg(parser)
    for name, what in (("train", "training split"), ("val", "validation split"),
                       ("audio", "dense audio events"), ("visual", "dense visual events")):
        parser.add_argument(f"--{name}-csv", type=Path, required=True, help=f"the {what} (LLP format)")
    add_classes_arg(parser)
    parser.add_argument("--train-pack", type=Path, help="an `avvp pack` folder to use instead of --features")
    parser.add_argument("--val-pack", type=Path, help="an `avvp pack` folder to use instead of --features")
    parser.add_argument("--out-dir", type=Path, required=True, help="the stage's folder")
    parser.add_argument("--seed", type=int, default=1, help="the run's seed: weights, shuffling, dropout (default: 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--resume", nargs="?", const="exact", choices=("exact", "auto"),
                        help="continue from OUT_DIR/last.pt exactly where it stopped; `auto`: only when it "
                             "matches these settings, else start again (saying why)")
    parser.add_argument("--keep-last", action=argparse.BooleanOptionalAction, default=True,
                        help="keep OUT_DIR/last.pt (model, optimiser and random states) once training has "
                             "finished, so that a run with more epochs can continue it (default: keep; "
                             "--no-keep-last removes it, as the workflow does unless train.keep_last)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar: a line per epoch instead (loss, validation Type@AV; for a log file)")
    parser.add_argument("--stop-with-parent", action="store_true",
                        help="stop when the process that started this one ends (e.g. a killed Snakemake); "
                             "the next run resumes from last.pt with --resume")


def run(args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    from avvp.base.folder_lock import ParentWatch, folder_lock

    watch = ParentWatch() if args.stop_with_parent else None
    try:
        with watch or nullcontext(), folder_lock(args.out_dir):
            _train(args)
    except BaseException:  # the interrupt, or what a library made of it (torch.save: a RuntimeError)
        if watch is None or not watch.fired:
            raise
        raise RuntimeError(f"stopped: the process that started it (PID {watch.parent}) has ended; "
                           f"{args.out_dir / 'last.pt'} holds the last finished epoch") from None


def _train(args: argparse.Namespace) -> None:
    from avvp.cli.stage_args import stage_inputs, stage_settings
    from avvp.methods.stages import stage
    from avvp.methods.training import train
    from avvp.methods.training_data import training_data

    specs = _training_stages()
    spec = stage(args.stage)
    settings = stage_settings(spec, args, specs)
    inputs = stage_inputs(spec, args, specs)
    if (args.features is None and args.features_shards is None and not args.features_dir
            and not (args.train_pack and args.val_pack)):
        raise ValueError("give --features (or --features-dir), or both --train-pack and --val-pack")
    vocab = vocabulary(args.classes, args.train_csv)
    kinds = args.model_features
    source = feature_source(args, kinds) if args.train_pack is None or args.val_pack is None else {}
    data = training_data(vocab, args.train_csv, args.val_csv, args.audio_csv, args.visual_csv, source,
                         args.out_dir / "packed", kinds, train_pack=args.train_pack, val_pack=args.val_pack,
                         on_missing=args.on_missing)
    objective = spec.objective(settings, inputs, vocab.classes)
    targets = spec.targets(inputs, data.train) if spec.targets else None
    summary = train(data.train, data.val, data.val_gt, args.out_dir, settings, seed=args.seed, device=args.device,
                    progress=not args.no_progress, features=kinds, resume=args.resume or False, objective=objective,
                    targets=targets, keep_last=args.keep_last)
    print(json.dumps({"stage": spec.id, **summary}))
