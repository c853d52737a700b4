"""`avvp parse`: videos of any length -> events (JSON, CSV) and a timeline PNG per video."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

KINDS = ("vggish", "res152", "r2plus1d_18")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse", help="parse videos into audio, visual and audio-visual events")
    p.add_argument("videos", nargs="+", type=Path, metavar="VIDEO")
    p.add_argument("--checkpoint", type=Path, required=True, help="HAN checkpoint (ours or the official state dict)")
    p.add_argument("--out", type=Path, default=Path("parsed"),
                   help="folder for <stem>.json, <stem>.csv and <stem>.png (default: parsed)")
    p.add_argument("--classes", type=Path, help="classes.txt (needed for an official state dict)")
    p.add_argument("--weights", action="append", default=[], metavar="SPEC|KIND=SPEC",
                   help="feature extractor weights: pretrained, random or a state-dict path, for all "
                        f"extractors or for one KIND in {', '.join(KINDS)} (repeatable; default: random, "
                        "which makes the events meaningless)")
    p.add_argument("--weights-seed", type=int, default=0,
                   help="seed of random extractor weights; use the one the features of training used (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, help="extractor inputs per forward pass (default: by device)")
    p.add_argument("--frame-threshold", type=float, default=0.5)
    p.add_argument("--global-threshold", type=float, default=0.5)
    p.add_argument("--audio-csv", type=Path, help="dense audio annotations (LLP format) to draw beside the prediction")
    p.add_argument("--visual-csv", type=Path, help="dense visual annotations (LLP format), likewise")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def weight_choices(items: list[str]) -> dict[str, str]:
    """`SPEC` sets every extractor, `KIND=SPEC` one of them (later items win); unnamed kinds: random."""
    chosen = dict.fromkeys(KINDS, "random")
    for item in items:
        kind, sep, spec = item.partition("=")
        if sep and kind in KINDS:
            chosen[kind] = spec
        else:
            chosen = dict.fromkeys(KINDS, item)
    return chosen


def run(args: argparse.Namespace) -> None:
    from avvp.annotations import Vocabulary, read_classes, read_dense
    from avvp.parse import HANWindowModel, parse_videos

    for name in ("frame_threshold", "global_threshold"):
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
    given = read_classes(args.classes).classes if args.classes else None
    model = HANWindowModel(args.checkpoint, given, weight_choices(args.weights), seed=args.weights_seed,
                           device=args.device, batch_size=args.batch_size, progress=not args.no_progress)
    vocab = Vocabulary(tuple(model.classes))
    audio = read_dense(args.audio_csv, vocab) if args.audio_csv else None
    visual = read_dense(args.visual_csv, vocab) if args.visual_csv else None
    random_kinds = [kind for kind, spec in model.weights.items() if spec == "random"]
    if random_kinds:
        print(f"WARNING: features from RANDOM weights ({', '.join(random_kinds)}): the events will not be "
              "meaningful; pass --weights pretrained (or state-dict files) for real parsing", file=sys.stderr)
    parsed = parse_videos(args.videos, model, args.out, args.frame_threshold, args.global_threshold, audio, visual)
    for p in parsed:
        print(f"{p.video}: {p.duration:.2f} s, {p.n_windows} window(s), {len(p.events)} events -> "
              f"{p.json_path}, {p.csv_path.name}, {p.png_path.name}")
