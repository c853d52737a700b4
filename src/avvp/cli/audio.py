"""`avvp audio VIDEO OUT.wav`: the clip's audio as a 16 kHz WAV, written by moviepy (PROTOCOL §2).

A clip without an audio track gives silence of the clip's length and prints `no_audio`; audio
shorter than --min-seconds is padded with silence at the end.
"""
from __future__ import annotations

import argparse
from pathlib import Path


HELP = "one video's audio as a 16 kHz WAV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="a video file (any container ffmpeg reads)")
    parser.add_argument("out_wav", type=Path, metavar="OUT.wav", help="the WAV to write (mono, 16 kHz, 16-bit)")
    parser.add_argument("--min-seconds", type=float, default=10.0,
                        help="pad shorter audio with silence to this length (default: %(default)s)")


def run(args: argparse.Namespace) -> None:
    from avvp.clips.media import extract_audio

    print(f"{extract_audio(args.video, args.out_wav, args.min_seconds)}: {args.out_wav}")
