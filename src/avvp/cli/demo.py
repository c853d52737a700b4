"""`avvp demo --out DIR`: write the synthetic demo data set (mp4 clips and LLP-format annotations).

DIR gets classes.txt, videos/<filename>.mp4, train.csv, val.csv, test.csv, eval_audio.csv and
eval_visual.csv. The same seed gives the same annotations and the same decoded clips; adding
videos leaves the earlier ones unchanged. With --dense, DIR gets a dense-label pretraining set
instead (UWAV's generator): videos/<filename>.mp4 of the train and val clips with an audio-visual
event and annotations.json, those events in UnAV-100's form.
"""
from __future__ import annotations

import argparse
from pathlib import Path


HELP = "write the synthetic demo data set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from avvp.clips.demo import DEFAULT_N_VIDEOS

    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--n-videos", type=int, default=DEFAULT_N_VIDEOS,
                        help="number of clips, at least 5 (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="clips encoded at once (default: %(default)s)")
    parser.add_argument("--dense", action="store_true",
                        help="write a dense-label pretraining set in UnAV-100's form (annotations.json) instead")


def run(args: argparse.Namespace) -> None:
    import time

    from avvp.clips.demo import SPLITS, make_demo

    started = time.perf_counter()
    if args.dense:
        from avvp.clips.demo import plan_clips, write_clips, write_dense_annotations

        clips = [c for c in plan_clips(args.n_videos, args.seed)
                 if c.split != "test" and any(e.audible and e.visible for e in c.events)]
        write_clips(clips, args.out / "videos", args.workers)
        write_dense_annotations(clips, args.out / "annotations.json")
        print(f"{len(clips)} dense-label demo clips in {args.out} ({time.perf_counter() - started:.1f} s)")
        return
    clips = make_demo(args.out, args.n_videos, args.seed, args.workers)
    sizes = ", ".join(f"{sum(c.split == s for c in clips)} {s}" for s in SPLITS)
    print(f"{len(clips)} demo clips ({sizes}) in {args.out} ({time.perf_counter() - started:.1f} s)")
