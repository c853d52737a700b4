"""Which ffmpeg we run, and what a media file really holds.

No system ffmpeg is required: `ffmpeg` on PATH wins (PROTOCOL §2 prefers a 4.x-5.x system build for
pixel fidelity), else the binary the `imageio-ffmpeg` wheel ships. That wheel has no ffprobe, so
`probe` works with ffmpeg alone and uses an ffprobe only when one comes with the chosen ffmpeg.

Why `probe` decodes the whole file instead of reading the header: a header describes what the file
was meant to hold. A download cut off mid-way keeps a header that claims the full length, and a
container can list streams whose packets are missing or undecodable. One `ffmpeg -i FILE -f null -`
pass decodes every selected stream to the end (decoded duration and frame count, from `-progress`),
so what it reports is what the frame and audio steps will actually get. It costs about 0.35 s for a
10 s 360p clip on 2 cores, small next to a download or the media step itself.

Why the header (stream list, size, rate, claimed duration) never comes from text that names the
file: ffmpeg's stderr echoes the input path, so a file name holding a newline, or text such as
`Stream #0:1: Audio: aac, 44100 Hz`, would change what we read. The header comes from ffprobe's JSON
when there is an ffprobe; else from ffmpeg's stderr of the decode pass. Either way the file is
opened here and handed over as `/dev/fd/N`, so the only path any tool prints is that one (and error
messages keep the user's real path, which we add ourselves).
"""
from __future__ import annotations

import errno
import functools
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# A clip is "truncated" when fewer seconds decode than its header claims, by more than this.
TRUNCATION_SLACK_S = 0.5
# Frame rates outside this range are warned about: a header that says 0.002 fps (or 10,000) makes a
# short clip decode as minutes of repeated pictures (or the other way round).
PLAUSIBLE_FPS = (1.0, 240.0)
# Bounds on what a file is as decoded (`limit_problem`), whatever its name or header claims: the
# media step's (LLP clips are 10 s; `avvp media`, config `media`) and `avvp parse`'s (config `parse`).
MAX_CLIP_SECONDS, MAX_CLIP_FRAMES = 60.0, 14_400  # 60 s at 240 fps
MAX_VIDEO_SECONDS, MAX_VIDEO_FRAMES = 4 * 3600.0, 1_000_000  # 4 h; about 4.6 h at 60 fps


class MediaError(ValueError):
    """A media file that cannot be read or lacks what is needed; the message names the file."""


def raise_if_disk_full(message: str, path: str | Path) -> None:
    """Raise the OSError of a full disk, naming `path`, where a tool's failure `message` (ffmpeg's,
    or moviepy's quoting it) says so: their text is all that tells, and a full disk is no fault of
    the clip (a MediaError would record it as unavailable)."""
    for code in (errno.ENOSPC, errno.EDQUOT):
        if os.strerror(code) in message:
            raise OSError(code, os.strerror(code), str(path))


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary used for everything: PATH's `ffmpeg`, else imageio-ffmpeg's."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffprobe_exe() -> str | None:
    """The ffprobe of the same build as `ffmpeg_exe()` (same folder, or PATH's when ffmpeg is PATH's);
    None when there is none, as with imageio-ffmpeg's wheel."""
    ffmpeg = ffmpeg_exe()
    found = shutil.which("ffprobe", path=str(Path(ffmpeg).parent))
    if found is None and ffmpeg == shutil.which("ffmpeg"):
        found = shutil.which("ffprobe")
    return found


@functools.cache
def ffmpeg_version(exe: str | None = None) -> str:
    """The version word of `ffmpeg -version` (e.g. `5.1.6-0+deb12u1`), to record with outputs."""
    exe = exe or ffmpeg_exe()
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=True).stdout
    match = re.match(r"ffmpeg version (\S+)", out)
    if match is None:
        raise RuntimeError(f"{exe}: unexpected `-version` output: {out[:80]!r}")
    return match[1]


def ffmpeg_record() -> dict[str, str]:
    """Which ffmpeg made the media: its path and version (recorded with the frames and in metrics)."""
    return {"path": ffmpeg_exe(), "version": ffmpeg_version()}


def fidelity_warning() -> str | None:
    """A warning when the ffmpeg in use is not of the 5.x line, whose frames equal the released
    LLP frames pixel for pixel (PROTOCOL §2); None when it is."""
    version = ffmpeg_version()
    major = re.match(r"(\d+)\.", version)
    if major is not None and major[1] == "5":
        return None
    return (f"ffmpeg {version} ({ffmpeg_exe()}) is not of the 5.x line: its 8 fps frames differ from the released "
            "LLP frames (by about 0.4 grey levels on average, 1.9 at worst, for the 9.0 build), so features will "
            "not match the published ones exactly; `make setup` as root installs Debian's ffmpeg 5.1 "
            "(docs/PROTOCOL.md, section 2)")


def input_arg(path: str | Path) -> str:
    """`path` as an ffmpeg input that is never read as an option or a protocol (`-x`, `a:b`)."""
    return "file:" + str(Path(path).absolute())


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` found. `duration` is what decodes; `container_duration` what the header says."""

    path: str
    duration: float
    container_duration: float | None
    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    video_frames: int = 0

    @property
    def truncated(self) -> bool:
        """Fewer seconds decode than the header claims (a cut-off download)."""
        return (
            self.container_duration is not None
            and self.duration < self.container_duration - TRUNCATION_SLACK_S
        )


_DURATION = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)$")
_SIZE = re.compile(r"\b([1-9]\d*)x([1-9]\d*)\b")
_FPS = re.compile(r"\b(\d+(?:\.\d+)?)(k?) (?:fps|tbr)\b")
_RATE = re.compile(r"\b(\d+) Hz\b")
_OUT_TIME = re.compile(r"^out_time=(-?)(\d+):(\d\d):(\d\d(?:\.\d+)?)$", re.M)
_FRAME = re.compile(r"^frame=\s*(\d+)$", re.M)


def _seconds(hours: str, minutes: str, seconds: str) -> float:
    """`H:MM:SS.ffffff` in seconds, rounded to the microsecond (so that equal times compare equal)."""
    return round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 6)


def _printed_duration(seconds: str | None) -> float | None:
    """ffprobe's duration rounded as ffmpeg prints it (to 1/100 s, halves up): both readings agree."""
    try:
        micros = round(float(seconds) * 1e6)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return (micros + 5000) // 10000 / 100


def _printed_rate(rate: str | None) -> float | None:
    """A `num/den` rate of ffprobe rounded as ffmpeg prints it (2 decimals, 4 below 0.005)."""
    num, _, den = (rate or "").partition("/")
    if not (num.isdigit() and den.isdigit() and int(num) and int(den)):
        return None
    fps = int(num) / int(den)
    return float(f"{fps:.2f}") if round(fps * 100) else float(f"{fps:.4f}")


def _json_header(stdout: str) -> dict:
    """Streams and claimed duration from ffprobe's JSON, in the form `_parse_header` gives."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return {}
    info: dict = {"has_video": False, "has_audio": False,
                  "container_duration": _printed_duration(data.get("format", {}).get("duration"))}
    for stream in data.get("streams", []):
        kind = stream.get("codec_type")
        if kind == "video" and not stream.get("disposition", {}).get("attached_pic") and not info["has_video"]:
            info["has_video"] = True
            if stream.get("width") and stream.get("height"):
                info["width"], info["height"] = int(stream["width"]), int(stream["height"])
            fps = _printed_rate(stream.get("avg_frame_rate")) or _printed_rate(stream.get("r_frame_rate"))
            if fps is not None:
                info["fps"] = fps
        elif kind == "audio" and not info["has_audio"]:
            info["has_audio"] = True
            if int(stream.get("sample_rate") or 0):
                info["sample_rate"] = int(stream["sample_rate"])
    return info


def _parse_header(stderr: str) -> dict:
    """Streams and claimed duration of input #0 from ffmpeg's stderr (the `Input #0` section); safe
    only when the input is named `/dev/fd/N`, since the stderr echoes the input's name."""
    lines = stderr.splitlines()
    try:
        first = next(i for i, line in enumerate(lines) if line.startswith("Input #0"))
    except StopIteration:
        return {}
    info: dict = {"has_video": False, "has_audio": False, "container_duration": None}
    for line in lines[first + 1 :]:
        if not line.startswith(" "):  # `Output #0`, `Stream mapping:`, log lines: section over
            break
        if (match := _DURATION.match(line)) is not None:
            info["container_duration"] = _seconds(*match.groups())
        elif (match := _STREAM.match(line)) is not None:
            kind, desc = match.groups()
            if kind == "Video" and "(attached pic)" not in desc and not info["has_video"]:
                info["has_video"] = True
                if (size := _SIZE.search(desc)) is not None:
                    info["width"], info["height"] = int(size[1]), int(size[2])
                if (fps := _FPS.search(desc)) is not None:
                    info["fps"] = float(fps[1]) * (1000 if fps[2] else 1)
            elif kind == "Audio" and not info["has_audio"]:
                info["has_audio"] = True
                if (rate := _RATE.search(desc)) is not None:
                    info["sample_rate"] = int(rate[1])
    return info


_LOG_PREFIX = re.compile(r"^\[[^\]]+ @ 0x[0-9a-f]+\] ")


def last_error(stderr: str, path: str | Path | None = None) -> str:
    """ffmpeg's most specific complaint: the last message that is not a generic `Error opening ...`,
    without the `file:PATH: ` some builds put before it (the caller names the file itself, and a
    temporary path in a recorded reason would differ from run to run)."""
    lines = [_LOG_PREFIX.sub("", line).strip() for line in stderr.splitlines() if line.strip()]
    specific = [line for line in lines if not line.startswith("Error opening")]
    message = (specific or lines or ["ffmpeg gave no message"])[-1]
    return message.removeprefix(f"{input_arg(path)}: ") if path is not None else message


def _run(cmd: list[str], fd: int) -> subprocess.CompletedProcess[str]:
    """Run `cmd`, which reads the open file `fd` as `/dev/fd/N`, from its start."""
    os.lseek(fd, 0, os.SEEK_SET)  # where /dev/fd/N shares our offset (macOS), every reader starts at 0
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", pass_fds=(fd,))


def probe(path: str | Path, decode: bool = True, max_frames: int | None = None) -> MediaInfo:
    """Decode `path` to the end and describe it; MediaError (naming the file) when it cannot.

    A missing, empty or unreadable file, or one with neither a video nor an audio stream, is an
    error. A truncated file is not: it probes with the duration that decodes (and `truncated` set
    when its header claims more), so that callers can say how much of it was there.
    `decode=False` reads the header only (about 40 ms): `duration` is then the claimed one, for
    callers that need the stream list of a file already checked. `max_frames`: the decode stops
    after one video frame more than this (`video_frames` then exceeds it, and `duration` is how far
    it got), so a file far too long to use costs little to refuse (`limit_problem`).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise MediaError(f"{path}: not a readable media file ({err.strerror})") from None
    try:
        return _probe_open(path, fd, decode, max_frames)
    finally:
        os.close(fd)


def _probe_open(path: Path, fd: int, decode: bool, max_frames: int | None = None) -> MediaInfo:
    """`probe` of the file open as `fd`; every tool sees it as `/dev/fd/N`, never by `path`."""
    source = f"/dev/fd/{fd}"
    decode_cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-i", input_arg(source)]
    if decode:
        if max_frames is not None:
            decode_cmd += ["-frames:v", str(max_frames + 1)]
        decode_cmd += ["-f", "null", "-progress", "pipe:1", "-"]
    ffprobe = ffprobe_exe()
    if ffprobe is None:  # the header from the decode pass's own stderr
        proc = _run(decode_cmd, fd)
        header = _parse_header(proc.stderr)
    else:
        proc = _run([ffprobe, "-v", "error", "-print_format", "json", "-show_streams", "-show_format",
                     "-i", input_arg(source)], fd)
        header = _json_header(proc.stdout) if proc.returncode == 0 else {}
    if not header:
        raise MediaError(f"{path}: not a readable media file ({last_error(proc.stderr, source)})")
    if not (header["has_video"] or header["has_audio"]):
        raise MediaError(f"{path}: no video or audio stream")
    if not decode:  # (ffmpeg alone exits 1 without an output: expected)
        return MediaInfo(path=str(path), duration=header["container_duration"] or 0.0, **header)
    if ffprobe is not None:
        proc = _run(decode_cmd, fd)
    if proc.returncode != 0:
        raise MediaError(f"{path}: decoding failed ({last_error(proc.stderr, source)})")
    times = _OUT_TIME.findall(proc.stdout)
    frames = _FRAME.findall(proc.stdout)
    duration = 0.0 if not times or times[-1][0] else _seconds(*times[-1][1:])
    return MediaInfo(
        path=str(path),
        duration=duration,
        video_frames=int(frames[-1]) if frames else 0,
        **header,
    )


def limit_problem(info: MediaInfo, max_seconds: float | None, max_frames: int | None) -> str | None:
    """Why a decoded file is too big to process: longer than `max_seconds` as decoded (not as its
    header claims), or more than `max_frames` video frames; None when within both (None = no limit)."""
    if max_seconds is not None and info.duration > max_seconds:
        return (f"too long to process: {info.duration:.2f} s decode, over the limit of {max_seconds:g} s "
                "(max_seconds)")
    if max_frames is not None and info.video_frames > max_frames:
        return f"too many frames to process: over the limit of {max_frames} video frames (max_frames)"
    return None


def media_warnings(info: MediaInfo, max_frames: int | None = None) -> list[str]:
    """What is odd about a decoded file but does not stop its use: a stream shorter than its
    container says (truncated), an implausible frame rate (claimed by the header, or as decoded).
    `max_frames`: the cap `probe` decoded with; a decode stopped by it is not called truncated."""
    capped = max_frames is not None and info.video_frames > max_frames
    warnings = []
    if info.truncated and not capped:
        warnings.append(f"truncated: {info.duration:.2f} s decode, the container says {info.container_duration:.2f} s")
    low, high = PLAUSIBLE_FPS
    if info.fps is not None and not low <= info.fps <= high:
        warnings.append(f"implausible frame rate: the header says {info.fps:g} fps (expected {low:g} to {high:g})")
    elif info.has_video and info.video_frames > 1 and info.duration > 0 and not capped:
        rate = info.video_frames / info.duration
        if not low <= rate <= high:
            warnings.append(f"implausible frame rate: {info.video_frames} frames decode over {info.duration:.2f} s "
                            f"({rate:.3g} fps; expected {low:g} to {high:g})")
    return warnings
