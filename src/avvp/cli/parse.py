"""`avvp parse`: videos of any length -> events (JSON, CSV) and a timeline PNG per video.

The model's feature set (from its checkpoint) decides which extractors run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "parse videos into audio, visual and audio-visual events with a trained model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("videos", nargs="+", type=Path, metavar="VIDEO")
    p.add_argument("--checkpoint", type=Path, required=True, help="HAN checkpoint (ours, or a released one: HAN's "
                   "MMIL_Net.pt, MA-MMIL's or JoMoLD's)")
    p.add_argument("--out", type=Path, default=Path("parsed"),
                   help="folder for <stem>.json, <stem>.csv and <stem>.png (default: parsed)")
    p.add_argument("--classes", type=Path, help="classes.txt (needed for a released checkpoint)")
    p.add_argument("--weights", action="append", default=[], metavar="SPEC|KIND=SPEC",
                   help="feature extractor weights: pretrained, random or a state-dict path, for all "
                        "extractors or for one feature KIND (repeatable; default: random, which makes the "
                        "events meaningless)")
    p.add_argument("--weights-seed", type=int, default=0,
                   help="seed of random extractor weights; use the one the features of training used (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, help="extractor inputs per forward pass (default: by device)")
    p.add_argument("--frame-threshold", type=float, default=0.5)
    p.add_argument("--global-threshold", type=float, default=0.5)
    p.add_argument("--audio-csv", type=Path, help="dense audio annotations (LLP format) to draw beside the prediction")
    p.add_argument("--visual-csv", type=Path, help="dense visual annotations (LLP format), likewise")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def weight_choices(items: list[str]) -> dict[str, str]:
    """`SPEC` sets every extractor, `KIND=SPEC` one of them (later items win); unnamed kinds: random."""
    from avvp.extractors import feature_kinds

    kinds = tuple(feature_kinds())
    chosen = dict.fromkeys(kinds, "random")
    for item in items:
        kind, sep, spec = item.partition("=")
        if sep and kind in kinds:
            chosen[kind] = spec
        else:
            chosen = dict.fromkeys(kinds, item)
    return chosen


def run(args: argparse.Namespace) -> None:
    from avvp.annotations import read_classes
    from avvp.parse import parse_with_checkpoint

    weights = weight_choices(args.weights)
    given = read_classes(args.classes).classes if args.classes else None
    parsed = parse_with_checkpoint(args.videos, args.checkpoint, args.out, weights, args.weights_seed, args.device,
                                   args.batch_size, args.frame_threshold, args.global_threshold, args.audio_csv,
                                   args.visual_csv, given, progress=not args.no_progress)
    if parsed and parsed[0].warning:
        print(f"WARNING: {parsed[0].warning}; pass --weights pretrained (or state-dict files) for real parsing",
              file=sys.stderr)
    for p in parsed:
        print(f"{p.video}: {p.duration:.2f} s, {p.n_windows} window(s), {len(p.events)} events -> "
              f"{p.json_path}, {p.csv_path.name}, {p.png_path.name}")
