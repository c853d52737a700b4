"""`avvp predict`: a checkpoint (ours or a released one) on a split -> predictions .npz
(global and per-segment probabilities of every class)."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from avvp.cli.common import add_classes_arg, add_features_args, split_and_pack

HELP = "write a model's global and segment probabilities on a split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="model.pt of a run, or a released checkpoint (HAN's MMIL_Net.pt, MA-MMIL's, JoMoLD's, CMPAE's, CoLeaF's or UWAV's HAN)")
    add_features_args(parser)
    parser.add_argument("--split-csv", type=Path, required=True, help="the weak split file to predict")
    parser.add_argument("--pack", type=Path, help="an `avvp pack` folder to use instead of --features")
    add_classes_arg(parser)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--out", type=Path, required=True, help="the predictions .npz to write")


def run(args: argparse.Namespace) -> None:
    from avvp.base.atomic import naming
    from avvp.evaluation.annotations import Vocabulary, read_classes
    from avvp.model.checkpoint import load_han
    from avvp.base.device import resolve_device
    from avvp.model.inference import predict_packed
    from avvp.model.predictions import save_predictions

    if args.features is None and args.features_shards is None and not args.features_dir and args.pack is None:
        raise ValueError("give --features (or --features-dir), or --pack")
    device = resolve_device(args.device)
    sibling = args.split_csv.parent / "classes.txt"
    class_file = args.classes or (sibling if sibling.is_file() else None)
    given = read_classes(class_file).classes if class_file else None
    model, classes, _ = load_han(args.checkpoint, given, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with naming(args.out, always=True):  # a read-only folder: the file asked for, not a scratch name
        scratch_folder = tempfile.TemporaryDirectory(dir=args.out.parent)
    # The split is packed beside the output, on its disk: a full disk there names the output.
    with naming(args.out), scratch_folder as scratch:
        _, packed = split_and_pack(args.split_csv, Vocabulary(tuple(classes)), args, args.pack,
                                   Path(scratch) / "pack", model.features, pooled=model.pools_first)
        if not model.pools_first and any(packed.arrays[k.name].shape[1] != k.rows for k in model.kinds):
            print(f"warning: {args.pack} holds rows averaged to segments, and this network's input layers are not "
                  "linear: its probabilities differ from those on each kind's own rows (avvp pack --unpooled)",
                  file=sys.stderr)
        save_predictions(args.out, predict_packed(model, packed, device))
    print(f"predicted {len(packed)} videos -> {args.out} ({len(packed.skipped)} skipped)")
