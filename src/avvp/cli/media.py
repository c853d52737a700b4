"""`avvp media`: audio and frames for every usable clip of a records TSV (the shard form).

VIDEOS/<filename>.mp4 -> AUDIO/<filename>.wav and FRAMES/<filename>/%06d.jpg; OUT.tsv holds the
updated status per clip (a clip that fails to decode or has the wrong length becomes
`unavailable`). Clips already done are skipped. A clip longer than --max-seconds or with more
than --max-frames video frames, as decoded (not as its name or header claims), is `unavailable`
with that reason; a truncated stream or an implausible frame rate is warned about on stderr and
noted in the record.
"""
from __future__ import annotations

import argparse

from avvp.cli.common import add_limit_args, add_required_paths, limits
from avvp.clips.ffmpeg import MAX_CLIP_FRAMES, MAX_CLIP_SECONDS

HELP = "audio + frames for the clips of a records TSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_required_paths(parser, {
        "--records": "records TSV (from avvp download)",
        "--videos-dir": "folder of the downloaded clips",
        "--audio-dir": "folder for the WAVs (<clip>.wav)",
        "--frames-dir": "folder for the frame folders (<clip>/000001.jpg, ...)",
        "--out-records": "updated records TSV to write",
    })
    add_limit_args(parser, MAX_CLIP_SECONDS, MAX_CLIP_FRAMES, "clip")


def run(args: argparse.Namespace) -> None:
    from collections import Counter

    from avvp.clips.ffmpeg import ffmpeg_exe, ffmpeg_version
    from avvp.clips.media import prepare_clips
    from avvp.clips.records import read_records, write_records

    records = prepare_clips(read_records(args.records), args.videos_dir, args.audio_dir, args.frames_dir,
                            **limits(args))
    write_records(records, args.out_records)
    counts = Counter(r.status for r in records)
    print(", ".join(f"{counts[s]} {s}" for s in ("ok", "no_audio", "unavailable"))
          + f" -> {args.out_records} (ffmpeg {ffmpeg_version()}, {ffmpeg_exe()})")
