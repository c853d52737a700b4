"""`avvp parse`: videos of any length -> events, with a trained HAN. Per video: OUT/<stem>.json
(events, probabilities, what produced them), OUT/<stem>.csv (one event per row) and a timeline
figure per --format; at the end OUT/index.html, the viewer of the whole folder (`avvp view`): each
video played with its timeline, in any browser, offline.

The CSV columns: class, modality (audio = heard, visual = seen, audio_visual = both at once),
onset and offset in seconds of the video, and score: the mean over the event's seconds of p x g,
p the frame probability of its modality (for audio_visual the smaller of the audio and visual
ones) and g the class's probability in that second's 10-second window; it lies in (0, 1] and is
at least frame threshold x global threshold. Higher means more confident.

Videos are done one after the other, with a line per video on stderr. A video that fails (e.g. a
corrupt file) is named there with its error and the others go on; the run then exits 1, its last
line saying `N of M videos failed: ...`. A full disk stops the run at once, its last line naming
the file that did not fit. OUT is resumable: a run that is stopped keeps the videos it finished,
and running it again skips them (a video is done again when the checkpoint, weights, thresholds or
formats changed). Several runs may write into one OUT at once.

A video longer than --max-seconds (default 4 hours) or with more than --max-frames video frames,
as decoded (not as its header claims), fails with that reason before anything is written; a
truncated video or one with an implausible frame rate (below 1 or above 240 fps) is warned about.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from avvp.cli.common import add_limit_args, limits
from avvp.clips.ffmpeg import MAX_VIDEO_FRAMES, MAX_VIDEO_SECONDS

HELP = "parse videos into audio, visual and audio-visual events with a trained model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files (any length, size and rate)")
    p.add_argument("--checkpoint", type=Path, required=True, help="HAN checkpoint (ours, or a released one: HAN's "
                   "MMIL_Net.pt, MA-MMIL's or JoMoLD's)")
    p.add_argument("--out", type=Path, default=Path("parsed"),
                   help="folder for <stem>.json, <stem>.csv and the figures (default: parsed)")
    p.add_argument("--format", type=figure_formats, default=("png",), metavar="FMT[,FMT...]",
                   help="timeline figure formats, any of png, pdf, svg (default: png)")
    p.add_argument("--classes", type=Path,
                   help="classes.txt (default: the checkpoint's own; LLP's for a released 25-class checkpoint)")
    p.add_argument("--weights", action="append", default=[], metavar="SPEC|KIND=SPEC",
                   help="feature extractor weights: pretrained, random or a state-dict path, for all extractors "
                        "or for one feature KIND (repeatable). Default: those the checkpoint was trained with "
                        "(pretrained for a released checkpoint); another choice is refused unless "
                        "--allow-weights-mismatch")
    p.add_argument("--weights-seed", type=int,
                   help="seed of random extractor weights (default: the checkpoint's)")
    p.add_argument("--allow-weights-mismatch", action="store_true",
                   help="run even with other extractor weights than the checkpoint's (the outputs record it)")
    p.add_argument("--features", type=Path, action="append", default=[], metavar="ROOT",
                   help="features extracted before, in the released layout ROOT/<kind>/<id>.npy (repeatable, "
                        "e.g. each results/features/<shard>): a 10-second clip found there is not decoded and "
                        "no network runs for it")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, help="extractor inputs per forward pass (default: by device)")
    p.add_argument("--frame-threshold", type=float, default=0.5,
                   help="a second holds an event when its frame probability reaches this (default: 0.5) ...")
    p.add_argument("--global-threshold", type=float, default=0.5,
                   help="... and its window's probability of the class reaches this (default: 0.5)")
    p.add_argument("--audio-csv", type=Path, help="dense audio annotations (LLP format) to draw beside the prediction")
    p.add_argument("--visual-csv", type=Path, help="dense visual annotations (LLP format), likewise")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (the line per video stays)")
    add_limit_args(p, MAX_VIDEO_SECONDS, MAX_VIDEO_FRAMES, "video")


def figure_formats(text: str) -> tuple[str, ...]:
    """`png,pdf` -> ("png", "pdf"); an unknown format is an error naming the known ones."""
    from avvp.parsing.parse import FIGURE_FORMATS

    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    if not formats or set(formats) - set(FIGURE_FORMATS):
        raise argparse.ArgumentTypeError(f"formats are {', '.join(FIGURE_FORMATS)}, got {text!r}")
    return formats


def weight_choices(items: list[str]) -> dict[str, str]:
    """`SPEC` sets every extractor, `KIND=SPEC` one of them (later items win); kinds not named are
    left out (they get the checkpoint's weights)."""
    from avvp.extractors import feature_kinds

    kinds = tuple(feature_kinds())
    chosen: dict[str, str] = {}
    for item in items:
        kind, sep, spec = item.partition("=")
        if sep and kind in kinds:
            chosen[kind] = spec
        else:
            chosen = dict.fromkeys(kinds, item)
    return chosen


def run(args: argparse.Namespace) -> None:
    from avvp.evaluation.annotations import read_classes
    from avvp.parsing.parse import parse_with_checkpoint

    from avvp.parsing.parse import VideosFailed

    given = read_classes(args.classes).classes if args.classes else None
    try:
        parse_with_checkpoint(args.videos, args.checkpoint, args.out, weight_choices(args.weights), args.weights_seed,
                              args.device, args.batch_size, args.frame_threshold, args.global_threshold,
                              args.audio_csv, args.visual_csv, given, progress=not args.no_progress,
                              features=args.features, formats=args.format,
                              allow_mismatch=args.allow_weights_mismatch, **limits(args))
    except VideosFailed:
        write_page(args.out)  # the videos that were parsed are viewable; the failures stay an error
        raise
    write_page(args.out)


def write_page(out: Path) -> None:
    """The folder's viewer (`avvp view`), its path said on stderr beside the per-video lines."""
    import sys

    from avvp.parsing.viewer import write_viewer

    try:
        print(f"viewer: {write_viewer(out)}", file=sys.stderr)
    except (ValueError, FileNotFoundError):
        pass  # nothing was parsed into OUT: no page to show
