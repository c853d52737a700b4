"""`avvp view DIR`: (re)build DIR/index.html, the viewer of a parse output folder, and print its path.

The page lists the parsed videos (name, length, number of events; with ground truth also each
video's segment-level F and its errors, worst first) and plays the chosen one with its timeline
drawn in the page: a playhead follows the video, a click on an event jumps to its onset, a class
name shows its probabilities against the thresholds. It is one file that works from file:// with
no server and no network; the videos are linked by relative path, so keep them where they are
relative to DIR (or move them together). Keys: space plays or pauses, left/right step one second,
up/down move between videos. `avvp parse --out DIR` writes the same page when it ends.
"""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "build the offline viewer (DIR/index.html) of a parse output folder and print its path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR",
                        help="a folder `avvp parse --out DIR` wrote (its <stem>.json files)")


def run(args: argparse.Namespace) -> None:
    from avvp.parsing.viewer import write_viewer

    print(write_viewer(args.folder))
