"""`avvp download`: LLP clips to VIDEOS/<filename>.mp4 with yt-dlp (or from a local folder), plus a
records TSV that says, per clip, `ok`, `no_audio` or `unavailable` with the reason.

A clip that cannot be had is recorded, not an error: the command fails only on bad arguments.
"""
from __future__ import annotations

import argparse
from pathlib import Path


HELP = "fetch clips (yt-dlp sections or a local folder)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from avvp.clips.download import DEFAULT_FORMAT, DEFAULT_URL_TEMPLATE, DownloadOptions

    parser.add_argument("--out-dir", required=True, type=Path, help="VIDEOS folder for <filename>.mp4")
    parser.add_argument("--records", required=True, type=Path, help="records TSV to write")
    parser.add_argument("--url-template", default=DEFAULT_URL_TEMPLATE,
                        help="URL of a video; {video_id} and {filename} are filled in (default: %(default)s)")
    parser.add_argument("--local-dir", type=Path,
                        help="take clips already cut from this folder (<filename>.mp4 or <id>.mp4) instead")
    parser.add_argument("--format", default=DEFAULT_FORMAT, help="yt-dlp format selector (default: %(default)s)")
    parser.add_argument("--rate-limit", help="yt-dlp rate limit, bytes/s (e.g. 2M)")
    parser.add_argument("--retries", type=int, default=DownloadOptions.retries,
                        help="retries of a transient failure (default: %(default)s)")
    parser.add_argument("--sleep", type=float, default=DownloadOptions.sleep,
                        help="seconds between two fetched videos; retries back off from it (default: %(default)s)")
    parser.add_argument("--socket-timeout", type=float, default=DownloadOptions.socket_timeout,
                        help="seconds to wait for a connection or for data before a try fails (default: %(default)s)")
    parser.add_argument("--clip-timeout", type=float, default=DownloadOptions.clip_timeout,
                        help="seconds one try of a clip may take as a whole; past it the try is killed and "
                             "the clip recorded as unavailable (default: %(default)s)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--list", type=Path, help="file with one LLP filename per line")
    which.add_argument("filenames", nargs="*", default=[], metavar="FILENAME",
                       help="LLP filenames (<11-char id>_<start>_<end>)")


def read_filename_list(path: Path) -> list[str]:
    """One LLP filename per line (blank lines and `#` comments skipped); errors name the line."""
    from avvp.evaluation.annotations import parse_filename

    names = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        try:
            parse_filename(name)
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from None
        names.append(name)
    return names


def run(args: argparse.Namespace) -> None:
    from collections import Counter

    from avvp.evaluation.annotations import parse_filename
    from avvp.clips.download import DownloadOptions, download_clips, fetch_local
    from avvp.clips.records import write_records

    filenames = read_filename_list(args.list) if args.list else args.filenames
    if not filenames:
        raise ValueError("no filenames given (pass FILENAME... or --list FILE)")
    for name in filenames:
        parse_filename(name)
    if args.local_dir:
        records = fetch_local(filenames, args.local_dir, args.out_dir)
    else:
        options = DownloadOptions(url_template=args.url_template, format=args.format,
                                  rate_limit=args.rate_limit, retries=args.retries, sleep=args.sleep,
                                  socket_timeout=args.socket_timeout, clip_timeout=args.clip_timeout)
        records = download_clips(filenames, args.out_dir, options)
    write_records(records, args.records)
    counts = Counter(r.status for r in records)
    print(", ".join(f"{counts[s]} {s}" for s in ("ok", "no_audio", "unavailable")) + f" -> {args.records}")
