"""`avvp media`: audio and frames for every usable clip of a records TSV (the shard form).

VIDEOS/<filename>.mp4 -> AUDIO/<filename>.wav and FRAMES/<filename>/%06d.jpg; OUT.tsv holds the
updated status per clip (a clip that fails to decode or has the wrong length becomes
`unavailable`). Clips already done are skipped.
"""
from __future__ import annotations

import argparse
from pathlib import Path


HELP = "audio + frames for the clips of a records TSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", required=True, type=Path, help="records TSV (from avvp download)")
    parser.add_argument("--videos-dir", required=True, type=Path, help="folder of the downloaded clips")
    parser.add_argument("--audio-dir", required=True, type=Path, help="folder for the WAVs (<clip>.wav)")
    parser.add_argument("--frames-dir", required=True, type=Path, help="folder for the frame folders (<clip>/000001.jpg, ...)")
    parser.add_argument("--out-records", required=True, type=Path, help="updated records TSV to write")


def run(args: argparse.Namespace) -> None:
    from collections import Counter

    from avvp.clips.ffmpeg import ffmpeg_exe, ffmpeg_version
    from avvp.clips.media import prepare_clips
    from avvp.clips.records import read_records, write_records

    records = prepare_clips(read_records(args.records), args.videos_dir, args.audio_dir, args.frames_dir)
    write_records(records, args.out_records)
    counts = Counter(r.status for r in records)
    print(", ".join(f"{counts[s]} {s}" for s in ("ok", "no_audio", "unavailable"))
          + f" -> {args.out_records} (ffmpeg {ffmpeg_version()}, {ffmpeg_exe()})")
