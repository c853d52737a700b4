"""`avvp frames VIDEO OUT_DIR`: `ffmpeg -i VIDEO -y -r 8 OUT_DIR/%06d.jpg` (PROTOCOL §2)."""
from __future__ import annotations

import argparse
from pathlib import Path


HELP = "one video's frames at 8 fps as JPEG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="a video file (any container ffmpeg reads)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder for the frames (000001.jpg, ...)")


def run(args: argparse.Namespace) -> None:
    from avvp.clips.ffmpeg import ffmpeg_exe, ffmpeg_version
    from avvp.clips.media import extract_frames

    count = extract_frames(args.video, args.out_dir)
    print(f"{count} frames -> {args.out_dir} (ffmpeg {ffmpeg_version()}, {ffmpeg_exe()})")
