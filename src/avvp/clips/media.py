"""Audio (16 kHz WAV) and frames (8 fps JPEG) of a clip, made exactly as PROTOCOL §2 says.

Rules (the same in the single-video commands and in `prepare_clips`):
- No audio track: the WAV is digital silence as long as the clip (at least `min_seconds`), in
  moviepy's format (16 kHz, 2 channels, 16 bit); the status is `no_audio`, never a crash.
- Audio shorter than `min_seconds` (10 s): padded at the end with silence, so that VGGish always
  gets its 10 examples (it needs 9.615 s) while the audio that is there keeps its timing.
- A clip is used only if it has a video stream and its decoded length is within `tolerance` (0.5 s)
  of the length its LLP filename asks for (`clip_problem`, applied by downloads, local clips and
  `prepare_clips` alike): 80 frames are later picked by round(linspace(0, n-1, 80)), which stretches
  a short clip over the ten 1-second segments, so a 6 s clip would put its events in the wrong
  segments. Half a segment is the most misalignment we accept, while a correct section (cut within
  a frame of the asked points, its last audio frame within ~0.05 s) is always inside. Outside it the
  clip is `unavailable` with its length in the reason.
- Bounds come from what a file is, not what its name or header claims: a clip whose decoded length
  exceeds `max_seconds` (60 s by default; LLP clips are 10 s) or that decodes more than `max_frames`
  video frames is `unavailable` with that reason, before anything is written. Odd but usable clips
  (a stream shorter than its container says, a frame rate below 1 or above 240 fps) are warned
  about on stderr and noted in their record's reason.
Outputs are written under a temporary name in the target folder and renamed into place (`avvp.base.atomic`);
silence is written in blocks, so a long clip without audio never sits in memory.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import wave
from collections.abc import Iterable, Mapping
from pathlib import Path

from avvp.evaluation.annotations import parse_filename
from avvp.base.atomic import atomic_folder, atomic_output, atomic_path, naming
from avvp.base.progress import progress
from avvp.clips.ffmpeg import (MAX_CLIP_FRAMES, MAX_CLIP_SECONDS, MediaError, MediaInfo, ffmpeg_exe, ffmpeg_record,
                               input_arg, last_error, limit_problem, media_warnings, probe, raise_if_disk_full)
from avvp.clips.records import ClipRecord

AUDIO_RATE = 16000
AUDIO_CHANNELS = 2  # moviepy always writes stereo; VGGish averages the channels
FRAME_RATE = 8
MIN_AUDIO_SECONDS = 10.0
DURATION_TOLERANCE_S = 0.5
DEFAULT_CLIP_SECONDS = 10.0
BLOCK_BYTES = 1 << 20  # silence and copies are written in blocks of this size
NO_AUDIO_REASON = "no audio track: the WAV is silence of the clip's length"
FFMPEG_RECORD = "ffmpeg.json"  # in a shard's frames folder: the ffmpeg that made its frames
# Errors of the disk written to, not of the clip: they stop the step instead of marking clips unavailable.
DISK_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def clip_seconds(filename: str) -> float:
    """The length an LLP filename asks for (end - start); 10 s for names that are not LLP names."""
    try:
        name = parse_filename(filename)
    except ValueError:
        return DEFAULT_CLIP_SECONDS
    return name.end - name.start


def clip_problem(info: MediaInfo, expected: float, tolerance: float = DURATION_TOLERANCE_S) -> str | None:
    """Why a probed clip cannot be used (no video, decoded length off by more than `tolerance`)."""
    if not info.has_video:
        return "no video stream"
    if info.duration < expected - tolerance:
        what = "truncated" if info.truncated else "too short"
        return f"{what}: {info.duration:.2f} s decode, expected {expected:g} s (at least {expected - tolerance:g} s)"
    if info.duration > expected + tolerance:
        return f"too long: {info.duration:.2f} s, expected {expected:g} s (at most {expected + tolerance:g} s)"
    return None


def _moviepy_audio_clip(path: Path):
    """moviepy's AudioFileClip, run with our ffmpeg (moviepy reads FFMPEG_BINARY once, on import).

    `VideoFileClip(p).audio` is `AudioFileClip(p, fps=44100, nbytes=2, buffersize=200000)`; we build
    that directly (the WAV is byte-identical, a test checks it), so no video decoder is started.
    """
    os.environ.setdefault("FFMPEG_BINARY", ffmpeg_exe())
    from moviepy import AudioFileClip

    return AudioFileClip(str(path), fps=44100, nbytes=2, buffersize=200000)


def _pad_wav(path: Path, seconds: float) -> None:
    """Append digital silence to a 16-bit WAV until it lasts at least `seconds` (copied in blocks)."""
    with wave.open(str(path), "rb") as src:
        params = src.getparams()
        missing = round(seconds * params.framerate) - params.nframes
        if missing <= 0:
            return
        padded = path.with_name(path.name + ".pad")
        try:
            with wave.open(str(padded), "wb") as out:
                out.setnchannels(params.nchannels)
                out.setsampwidth(params.sampwidth)
                out.setframerate(params.framerate)
                block = max(1, BLOCK_BYTES // (params.nchannels * params.sampwidth))
                while data := src.readframes(block):
                    out.writeframes(data)
                _write_zeros(out, missing * params.nchannels * params.sampwidth)
            os.replace(padded, path)
        finally:
            padded.unlink(missing_ok=True)


def _write_zeros(out: wave.Wave_write, n_bytes: int) -> None:
    block = bytes(min(n_bytes, BLOCK_BYTES))
    while n_bytes > 0:
        out.writeframes(block[:n_bytes])
        n_bytes -= len(block)


def write_silence(path: Path, n_frames: int, rate: int, channels: int) -> None:
    """`n_frames` of 16-bit digital silence as a WAV file, written in blocks (never whole in memory)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        _write_zeros(out, n_frames * channels * 2)


def write_audio(info: MediaInfo, out_wav: str | Path, min_seconds: float = MIN_AUDIO_SECONDS) -> str:
    """The audio step for an already probed clip; returns `ok` or `no_audio` (see module rules).
    A read-only or full disk raises OSError naming `out_wav`: no clip is to blame for it."""
    try:
        with atomic_path(out_wav, ".wav") as tmp:
            with naming(out_wav, always=True):
                tmp.touch()  # a disk that takes no file fails here, with its errno, not inside moviepy's ffmpeg
            if info.has_audio:
                clip = _moviepy_audio_clip(Path(info.path).absolute())
                try:
                    clip.write_audiofile(str(tmp), fps=AUDIO_RATE, logger=None)
                finally:
                    clip.close()
                _pad_wav(tmp, min_seconds)
            else:
                write_silence(tmp, round(max(info.duration, min_seconds) * AUDIO_RATE), AUDIO_RATE, AUDIO_CHANNELS)
    except (OSError, wave.Error) as err:
        if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
            raise
        raise_if_disk_full(str(err), out_wav)
        raise MediaError(f"{info.path}: audio extraction failed ({err})") from err
    return "ok" if info.has_audio else "no_audio"


def extract_audio(video: str | Path, out_wav: str | Path, min_seconds: float = MIN_AUDIO_SECONDS) -> str:
    """Write the clip's audio as a 16 kHz WAV with moviepy (PROTOCOL §2); `ok` or `no_audio`.

    An unreadable file raises MediaError naming it; a file without audio gives silence.
    """
    return write_audio(probe(video), out_wav, min_seconds)


def extract_frames(video: str | Path, out_dir: str | Path) -> int:
    """Run `ffmpeg -i VIDEO -y -r 8 OUT_DIR/%06d.jpg` (built by ffmpeg-python); returns the frame count.

    Frames go to a temporary folder next to OUT_DIR that replaces it only when ffmpeg succeeded and
    wrote at least one frame; otherwise MediaError names the video. ffmpeg runs under
    `subprocess.run`, which kills it when we are interrupted (SIGTERM, Ctrl-C), so that it cannot
    write on into the temporary folder after that is removed.
    """
    import ffmpeg

    video = Path(video)
    with atomic_folder(out_dir) as tmp:
        pattern = str(tmp.absolute()).replace("%", "%%") + "/%06d.jpg"
        cmd = (ffmpeg.input(input_arg(video)).output(pattern, r=FRAME_RATE)
               .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
               .overwrite_output()
               .compile(cmd=ffmpeg_exe()))
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        if proc.returncode != 0:
            stderr = proc.stderr.decode(errors="replace")
            raise_if_disk_full(stderr, out_dir)
            message = last_error(stderr, video)
            raise MediaError(f"{video}: frame extraction failed ({message})") from None
        count = sum(1 for _ in tmp.glob("*.jpg"))
        if count == 0:
            raise MediaError(f"{video}: no video frames decoded")
    return count


def prepare_clips(
    records: Iterable[ClipRecord],
    videos_dir: str | Path,
    audio_dir: str | Path,
    frames_dir: str | Path,
    tolerance: float = DURATION_TOLERANCE_S,
    max_seconds: float | None = MAX_CLIP_SECONDS,
    max_frames: int | None = MAX_CLIP_FRAMES,
) -> list[ClipRecord]:
    """Audio and frames of every usable clip of a shard; returns the updated records, in order.

    VIDEOS/<filename>.mp4 -> AUDIO/<filename>.wav and FRAMES/<filename>/%06d.jpg. A clip whose WAV
    and frames folder both exist is skipped (its audio status re-read from the file header). A clip
    that is missing, fails to decode, is over the bounds (`max_seconds`, `max_frames`, as decoded;
    None = no bound) or has the wrong length becomes `unavailable` with the reason, and its outputs
    are removed, so that outputs and records always agree. Warnings (truncated, implausible frame
    rate) go to stderr and into the reason as `note: ...`. Unusable input records pass through unchanged.
    """
    videos_dir, audio_dir, frames_dir = Path(videos_dir), Path(audio_dir), Path(frames_dir)
    records = list(records)
    out = []
    with progress(len(records), "media", "clip") as bar:
        for rec in records:
            out.append(_prepared(rec, videos_dir, audio_dir, frames_dir, tolerance, max_seconds, max_frames)
                       if rec.usable else rec)
            bar.update(1)
    return out


def _prepared(rec: ClipRecord, videos_dir: Path, audio_dir: Path, frames_dir: Path, tolerance: float,
              max_seconds: float | None, max_frames: int | None) -> ClipRecord:
    """One usable clip's audio and frames (`prepare_clips`), and its updated record."""
    video = videos_dir / f"{rec.filename}.mp4"
    wav, frames = audio_dir / f"{rec.filename}.wav", frames_dir / rec.filename
    notes: list[str] = []
    try:
        if wav.is_file() and any(frames.glob("*.jpg")):
            info = probe(video, decode=False)
        else:
            info = probe(video, max_frames=max_frames)
            problem = limit_problem(info, max_seconds, max_frames) or clip_problem(
                info, clip_seconds(rec.filename), tolerance)
            notes = [n for n in media_warnings(info, max_frames)
                     if not (problem or "").startswith(n.partition(":")[0])]  # not said twice
            for note in notes:
                print(f"{video}: warning: {note}", file=sys.stderr, flush=True)
            if problem is not None:
                raise MediaError(f"{video}: {problem}")
            write_audio(info, wav)
            extract_frames(video, frames)
    except MediaError as err:
        wav.unlink(missing_ok=True)
        shutil.rmtree(frames, ignore_errors=True)
        reason = str(err).removeprefix(f"{video}: ")  # the record names the clip already
        return ClipRecord(rec.filename, rec.video_id, "unavailable", _with_notes(reason, notes))
    status, reason = ("ok", "") if info.has_audio else ("no_audio", NO_AUDIO_REASON)
    return ClipRecord(rec.filename, rec.video_id, status, _with_notes(reason, notes))


def _with_notes(reason: str, notes: list[str]) -> str:
    return "; ".join([reason] * bool(reason) + [f"note: {n}" for n in notes])


def prepare_shard(records: str | Path, videos_dir: str | Path, audio_dir: str | Path, frames_dir: str | Path,
                  out_records: str | Path, lists: Mapping[str, str | Path], max_seconds: float | None = MAX_CLIP_SECONDS,
                  max_frames: int | None = MAX_CLIP_FRAMES) -> list[ClipRecord]:
    """`prepare_clips` for one shard's records TSV, then the updated records and the extractors'
    input lists of its usable clips, one per medium in `lists` (`audio`: the WAVs, `frames`: the
    frames folders, `video`: the clips themselves). The audio and frames folders exist afterwards
    even when no clip of the shard is usable; the frames folder also records which ffmpeg made them
    (`ffmpeg.json`: path and version)."""
    from avvp.clips.records import read_records, write_records

    videos_dir, audio_dir, frames_dir = Path(videos_dir), Path(audio_dir), Path(frames_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    frames_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(frames_dir / FFMPEG_RECORD, "w") as fh:
        json.dump(ffmpeg_record(), fh, indent=1)
    updated = prepare_clips(read_records(records), videos_dir, audio_dir, frames_dir, max_seconds=max_seconds,
                            max_frames=max_frames)
    write_records(updated, out_records)
    usable = [r.filename for r in updated if r.usable]
    inputs = {"audio": [audio_dir / f"{name}.wav" for name in usable], "frames": [frames_dir / name for name in usable],
              "video": [videos_dir / f"{name}.mp4" for name in usable]}
    for medium, path in lists.items():
        with atomic_output(path, "w") as fh:
            fh.writelines(f"{line}\n" for line in inputs[medium])
    return updated
