"""Clips from YouTube (or any URL template) with yt-dlp, or from a folder of clips already cut.

Each LLP filename (`<id>_<start>_<end>`) ends as one ClipRecord and, when usable, one file
`OUT_DIR/<filename>.mp4`:
- Only the section is fetched: yt-dlp's `download_ranges` with `force_keyframes_at_cuts`, so ffmpeg
  re-encodes around the cuts and the clip is the seconds asked for, not the nearest keyframes.
- Exit codes are not trusted: every output is probed (decoded to the end, see avvp.clips.ffmpeg) and must
  have a video stream and decode to within 0.5 s of the asked length (media.clip_problem), so a
  0-second, truncated or streamless file is `unavailable` whatever yt-dlp said.
- yt-dlp writes into a private temporary folder next to the output; only a checked file is renamed
  to its final name, so a failed or interrupted download leaves nothing under that name.
- Idempotent: a valid file already at the final name is kept; an invalid one is removed first.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from avvp.base.atomic import naming
from avvp.evaluation.annotations import ClipName, parse_filename
from avvp.clips.ffmpeg import MediaError, ffmpeg_exe, probe
from avvp.clips.media import DURATION_TOLERANCE_S, NO_AUDIO_REASON, clip_problem, clip_seconds
from avvp.clips.records import ClipRecord

log = logging.getLogger(__name__)

DEFAULT_URL_TEMPLATE = "https://www.youtube.com/watch?v={video_id}"
# Prefer <= 360p (short side >= 256 px is all ResNet-152 needs; the cut is re-encoded, so smaller
# is faster); `?` keeps formats of unknown height (direct links); merged into mp4 below.
DEFAULT_FORMAT = "bv*[height<=?360]+ba/b[height<=?360]/bv*+ba/b"
# yt-dlp messages worth another try; anything else (private, removed, 404, ...) is final.
_TRANSIENT = re.compile(
    r"HTTP Error (?:429|5\d\d)|timed out|[Cc]onnection|Temporary failure|Incomplete|"
    r"Unable to download video data|ffmpeg exited",
)


@dataclass(frozen=True)
class DownloadOptions:
    """How to fetch. `url_template` may use `{video_id}` and `{filename}`. `rate_limit` is
    yt-dlp's syntax (`2M` = 2 MiB/s); ffmpeg's own transfer of a section is not throttled by it.
    `retries` is passed to yt-dlp and also bounds our retries of a transient failure or of an
    output that fails the check; `sleep` seconds pass between two videos fetched, and the n-th
    retry waits `sleep * 2**(n-1)`. Every network operation is bounded: `socket_timeout` seconds
    to connect or to wait for data (yt-dlp's requests and the ffmpeg that cuts the section), and
    `clip_timeout` seconds for one try of a clip as a whole; a try past it is killed and recorded."""

    url_template: str = DEFAULT_URL_TEMPLATE
    format: str = DEFAULT_FORMAT
    rate_limit: str | None = None
    retries: int = 3
    sleep: float = 0.0
    tolerance: float = DURATION_TOLERANCE_S
    socket_timeout: float = 30.0
    clip_timeout: float = 300.0

    def __post_init__(self) -> None:
        try:
            self.url_template.format(video_id="x", filename="x")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"bad URL template {self.url_template!r}: {err!r}") from None
        if self.retries < 0 or self.sleep < 0:
            raise ValueError("retries and sleep must be >= 0")
        if self.socket_timeout <= 0 or self.clip_timeout <= 0:
            raise ValueError("socket_timeout and clip_timeout must be > 0 seconds")
        if self.rate_limit is not None:
            from yt_dlp.utils import parse_bytes

            if parse_bytes(self.rate_limit) is None:
                raise ValueError(f"bad rate limit {self.rate_limit!r} (e.g. 500K, 2M)")


def _checked_record(path: Path, filename: str, video_id: str, tolerance: float) -> ClipRecord:
    """Probe a candidate file; MediaError with the reason when it is not a usable clip."""
    try:
        info = probe(path)
    except MediaError as err:  # the record names the clip; the temporary path would only confuse
        raise MediaError(str(err).removeprefix(f"{path}: ")) from None
    problem = clip_problem(info, clip_seconds(filename), tolerance)
    if problem is not None:
        raise MediaError(problem)
    if not info.has_audio:
        return ClipRecord(filename, video_id, "no_audio", NO_AUDIO_REASON)
    return ClipRecord(filename, video_id, "ok")


def _kept(final: Path, name: ClipName, filename: str, tolerance: float) -> ClipRecord | None:
    """The record of a valid clip already at `final`; an invalid one is deleted (None)."""
    if not final.exists():
        return None
    try:
        return _checked_record(final, filename, name.video_id, tolerance)
    except MediaError as err:
        log.info("%s: replacing invalid existing file (%s)", final, err)
        final.unlink()
        return None


def _place(candidate: Path, final: Path, filename: str, video_id: str, tolerance: float) -> ClipRecord:
    """Check `candidate` (in the output folder) and rename it to `final`."""
    record = _checked_record(candidate, filename, video_id, tolerance)
    os.replace(candidate, final)
    return record


@contextmanager
def _scratch(out_dir: Path, filename: str) -> Iterator[Path]:
    """A private folder next to the outputs, removed with whatever is left in it (.part files)."""
    with naming(out_dir / f"{filename}.mp4", always=True):  # a read-only folder: the clip asked for
        tmp = Path(tempfile.mkdtemp(prefix=f".{filename}.", suffix=".part", dir=out_dir))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Log:
    """yt-dlp logger: its chatter goes to our debug log instead of the terminal."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = warning = error = debug


def yt_dlp_reason(message: str) -> str:
    """The useful part of a yt-dlp error: no `ERROR:`, `[extractor] id:` or `(caused by ...)`."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", message)
    message = re.sub(r"^ERROR:\s*", "", message.strip())
    message = re.sub(r"^\[[^\]]+\]\s*[\w-]+:\s*", "", message)
    message = re.sub(r"\s*\(caused by .*\)\s*$", "", message, flags=re.S)
    return message.strip() or "yt-dlp failed without a message"


@contextmanager
def _ffmpeg_for_yt_dlp() -> Iterator[None]:
    """Point yt-dlp at our ffmpeg. Its check for section downloads ignores the `ffmpeg_location`
    option and reads this context variable, which yt-dlp's own command line sets."""
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

    token = FFmpegPostProcessor._ffmpeg_location.set(ffmpeg_exe())
    try:
        yield
    finally:
        FFmpegPostProcessor._ffmpeg_location.reset(token)


def _yt_dlp_params(name: ClipName, scratch: Path, options: DownloadOptions) -> dict:
    from yt_dlp.utils import download_range_func, parse_bytes

    return {
        "format": options.format,
        "merge_output_format": "mp4",
        # a single non-mp4 format (e.g. webm) is remuxed, so the clip is always an mp4
        "postprocessors": [{"key": "FFmpegVideoRemuxer", "preferedformat": "mp4"}],
        "outtmpl": {"default": str(scratch / "clip.%(ext)s")},
        "download_ranges": download_range_func(None, [(name.start, name.end)]),
        "force_keyframes_at_cuts": True,
        "ffmpeg_location": ffmpeg_exe(),
        "socket_timeout": options.socket_timeout,
        # the ffmpeg that fetches the section: give up when a read or write waits this long (µs)
        "external_downloader_args": {"ffmpeg_i": ["-rw_timeout", str(int(options.socket_timeout * 1e6))]},
        "ratelimit": parse_bytes(options.rate_limit) if options.rate_limit else None,
        "retries": options.retries,
        "fragment_retries": options.retries,
        "extractor_retries": options.retries,
        "noplaylist": True,
        "cachedir": False,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _Log(),
    }


def _fetch(url: str, name: ClipName, scratch: Path, options: DownloadOptions) -> tuple[str, bool]:
    """yt-dlp's download of the section into `scratch`: ("", _) or (reason, whether to retry)."""
    import yt_dlp

    try:
        with _ffmpeg_for_yt_dlp(), yt_dlp.YoutubeDL(_yt_dlp_params(name, scratch, options)) as ydl:
            ydl.download([url])
    except yt_dlp.utils.DownloadError as err:
        reason = yt_dlp_reason(str(err.msg or err))
        return reason, bool(_TRANSIENT.search(reason))
    return "", False


def _fetch_in_child(url: str, name: ClipName, scratch: Path, options: DownloadOptions, reply: Connection) -> None:
    os.setpgid(0, 0)  # its own process group: yt-dlp's ffmpeg goes down with it on a timeout
    reply.send(_fetch(url, name, scratch, options))


def _fetch_bounded(url: str, name: ClipName, scratch: Path, options: DownloadOptions) -> tuple[str, bool]:
    """`_fetch` in a child process that is killed, with every process it started, once the clip
    has taken `options.clip_timeout` seconds (a server that stalls mid-file never ends on its own)."""
    context = multiprocessing.get_context("fork")  # no re-import per clip
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_fetch_in_child, args=(url, name, scratch, options, send), daemon=True)
    child.start()
    send.close()
    try:
        if receive.poll(options.clip_timeout):
            return receive.recv()
        return f"timed out: no complete clip after {options.clip_timeout:g} s (clip_timeout)", False
    except EOFError:
        return f"the download process ended without an answer (exit code {child.exitcode})", True
    finally:
        with suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.join()
        receive.close()


def _attempt(
    filename: str, name: ClipName, final: Path, options: DownloadOptions,
) -> tuple[ClipRecord | None, str, bool]:
    """One try: (record, "", _) on success, else (None, reason, whether another try may help)."""
    url = options.url_template.format(video_id=name.video_id, filename=filename)
    with _scratch(final.parent, filename) as scratch:
        reason, transient = _fetch_bounded(url, name, scratch, options)
        if reason:
            return None, reason, transient
        outputs = sorted(scratch.glob("clip.mp4"))
        if not outputs:
            return None, "yt-dlp reported success but wrote no mp4", True
        try:
            return _place(outputs[0], final, filename, name.video_id, options.tolerance), "", False
        except MediaError as err:  # a cut-off transfer may go better next time; a wrong source will not
            final_problem = str(err).startswith(("no video stream", "too long"))
            return None, f"downloaded file unusable: {err}", not final_problem


def download_clip(filename: str, out_dir: str | Path, options: DownloadOptions = DownloadOptions()) -> ClipRecord:
    """Fetch one clip to OUT_DIR/<filename>.mp4 (kept if already valid); returns its record."""
    name = parse_filename(filename)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{filename}.mp4"
    kept = _kept(final, name, filename, options.tolerance)
    if kept is not None:
        return kept
    reason = ""
    for attempt in range(options.retries + 1):
        if attempt:
            time.sleep(options.sleep * 2 ** (attempt - 1))
        record, reason, transient = _attempt(filename, name, final, options)
        if record is not None:
            return record
        log.info("%s: attempt %d failed: %s", filename, attempt + 1, reason)
        if not transient:
            break
    return ClipRecord(filename, name.video_id, "unavailable", reason)


def _unique(filenames: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(filenames))


def download_clips(
    filenames: Iterable[str], out_dir: str | Path, options: DownloadOptions = DownloadOptions(),
) -> list[ClipRecord]:
    """`download_clip` for each filename (duplicates once), sleeping `options.sleep` between
    fetches; never raises for a video that cannot be had, it records why."""
    from avvp.base.progress import progress

    records = []
    fetched_before = False
    names = list(_unique(filenames))
    with progress(len(names), "download", "clip") as bar:
        for filename in names:
            fetch = not (Path(out_dir) / f"{filename}.mp4").exists()
            if fetch and fetched_before:
                time.sleep(options.sleep)
            fetched_before = fetched_before or fetch
            records.append(download_clip(filename, out_dir, options))
            bar.update(1)
    return records


def fetch_local(
    filenames: Iterable[str], local_dir: str | Path, out_dir: str | Path,
    tolerance: float = DURATION_TOLERANCE_S,
) -> list[ClipRecord]:
    """Take clips already cut from LOCAL_DIR, named `<filename>.mp4` or `<youtube id>.mp4`.

    A symbolic link (relative or absolute) is followed to its file. Each clip is probed and checked
    like a download, then hard-linked (copied across file systems) to OUT_DIR/<filename>.mp4 through
    a temporary name, so the output is always a regular file, never a link.
    """
    local_dir, out_dir = Path(local_dir), Path(out_dir)
    if not local_dir.is_dir():
        raise FileNotFoundError(f"local clip folder {local_dir} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for filename in _unique(filenames):
        name = parse_filename(filename)
        final = out_dir / f"{filename}.mp4"
        kept = _kept(final, name, filename, tolerance)
        if kept is not None:
            records.append(kept)
            continue
        candidates = [local_dir / f"{filename}.mp4", local_dir / f"{name.video_id}.mp4"]
        source = next((c for c in candidates if c.is_file()), None)  # is_file follows links
        if source is None:
            dangling = [c.name for c in candidates if c.is_symlink()]
            reason = (f"{dangling[0]} in {local_dir} is a link to a missing file" if dangling else
                      f"not in {local_dir} (looked for {candidates[0].name}, {candidates[1].name})")
            records.append(ClipRecord(filename, name.video_id, "unavailable", reason))
            continue
        with _scratch(out_dir, filename) as scratch:
            staged = scratch / "clip.mp4"
            target = source.resolve()  # a link's file itself: os.link would link the link
            try:
                os.link(target, staged)
            except OSError:
                with naming(final):  # a full disk names the clip, not the copy's source
                    shutil.copyfile(target, staged)
            try:
                records.append(_place(staged, final, filename, name.video_id, tolerance))
            except MediaError as err:
                records.append(ClipRecord(filename, name.video_id, "unavailable", f"{source.name}: {err}"))
    return records
