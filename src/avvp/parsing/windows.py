"""A video of any length as 10-second windows, each medium cut the way `avvp extract` reads a clip.

HAN sees 10 one-second segments at a time. A video of any length, frame rate and size is decoded
once per medium (16 kHz audio by `media.write_audio`, 8 fps frames by `media.extract_frames`,
the audio track at its own rate by `audio_track.write_track`) and cut into consecutive windows
[10w, 10w + 10) s:

- Segments: the video has S = max(1, ceil(duration - 1/8)) one-second segments (a tail shorter
  than one 8 fps frame, such as the few milliseconds an AAC track runs past the picture, is not a
  segment of its own) and W = ceil(S / 10) windows.
- Audio of window w: samples [160000 w, 160000 (w + 1)) of the video's WAV, padded with digital
  silence past the end (VGGish reads its 10 examples from the first 9.615 s of it). Kinds that
  read the clip file itself (medium `video`: CLAP's track at its own rate R) get the same cut of
  the track as a WAV at rate R: samples [10 R w, 10 R (w + 1)), silence past the end.
- Frames of window w: `ffmpeg -r 8` (the LLP rule, shared with `avvp extract`) starts its output
  with up to 2 copies of the first picture (its frame-rate conversion runs ahead: a 10 s clip gives
  82 frames), so frame i shows time (i - lead) / 8 with lead = n - round(8 x duration), clipped to
  0..2. Window w gets frames lead + 80w .. lead + 80w + 79; the last window every remaining frame.
  A full first window also keeps the leading copies, and 80 frames are picked by
  round(linspace(0, n - 1, 80)), the LLP rule: for a 10-second clip these are the very frames
  `avvp extract` picks, so it is parsed from the features that training and `avvp predict` use.
  A window with fewer than 80 frames is padded by repeating its last frame (the video's last
  frame if it has none), so each real frame stays on its own second. The last frame is repeated
  rather than black because a cut to black is a strong visual change of its own that the networks
  would respond to.
"""
from __future__ import annotations

import math
import os
import shutil
import wave
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from avvp.clips.audio_track import write_track
from avvp.extractors import FRAMES, MEDIA, VIDEO
from avvp.extractors.parts.frames import N_FRAMES, pick_frame_indices
from avvp.clips.ffmpeg import MediaError, MediaInfo, limit_problem, media_warnings, probe
from avvp.clips.media import FRAME_RATE, extract_frames, write_audio
from avvp.base.protocol import SEGMENTS

WINDOW_SECONDS = SEGMENTS  # one-second segments
TAIL_SLACK_S = 1.0 / FRAME_RATE
MAX_LEADING_COPIES = 2


def segment_count(duration: float) -> int:
    """One-second segments of a video of `duration` seconds (see the module docstring)."""
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be a time in seconds, got {duration!r}")
    return max(1, math.ceil(duration - TAIL_SLACK_S))


def window_count(duration: float) -> int:
    """10-second windows needed to cover the video's segments."""
    return math.ceil(segment_count(duration) / SEGMENTS)


def leading_copies(n_frames: int, duration: float) -> int:
    """How many extra copies of the first picture `ffmpeg -r 8` put before the real frames."""
    return int(np.clip(n_frames - round(FRAME_RATE * duration), 0, MAX_LEADING_COPIES))


def window_frame_indices(n_frames: int, n_windows: int, lead: int = 0) -> np.ndarray:
    """(n_windows, 80) indices into the video's 8 fps frames: each window's picked frames.

    `lead` leading copies of the first picture are skipped, except by a full first window.
    """
    if n_frames < 1:
        raise ValueError("the video has no frames")
    per_window = WINDOW_SECONDS * FRAME_RATE
    picks = np.empty((n_windows, N_FRAMES), np.int64)
    for w in range(n_windows):
        start = lead + w * per_window
        stop = n_frames if w == n_windows - 1 else min(n_frames, start + per_window)
        frames = np.arange(start, stop)
        if w == 0 and len(frames) >= per_window:
            frames = np.arange(0, stop)
        elif len(frames) == 0:
            frames = np.array([n_frames - 1])
        if len(frames) < per_window:
            frames = np.concatenate([frames, np.full(per_window - len(frames), frames[-1])])
        picks[w] = frames[pick_frame_indices(len(frames))]
    return picks


def write_window_audio(wav: Path, out_wavs: Sequence[Path]) -> None:
    """Cut a WAV into consecutive 10-second WAVs (same rate and format), silence past its end.

    Read window by window, so a long video never sits in memory.
    """
    with wave.open(str(wav), "rb") as src:
        params = src.getparams()
        size = WINDOW_SECONDS * params.framerate
        frame_bytes = params.nchannels * params.sampwidth
        for out in out_wavs:
            data = src.readframes(size)
            with wave.open(str(out), "wb") as dst:
                dst.setnchannels(params.nchannels)
                dst.setsampwidth(params.sampwidth)
                dst.setframerate(params.framerate)
                dst.writeframes(data + bytes(size * frame_bytes - len(data)))


def write_window_frames(frames: Sequence[Path], picks: np.ndarray, out_dirs: Sequence[Path]) -> None:
    """Per window a folder of its 80 picked frames, `000001.jpg` .. `000080.jpg`: hard links, or
    copies on a file system without them."""
    for out, row in zip(out_dirs, picks):
        out.mkdir(parents=True)
        for k, index in enumerate(row, start=1):
            try:
                os.link(frames[index], out / f"{k:06d}.jpg")
            except OSError:
                shutil.copyfile(frames[index], out / f"{k:06d}.jpg")


class VideoWindows:
    """A probed video and its windows: per window a 10 s WAV, a folder of 80 frames and a 10 s cut
    of the audio track at its own rate (module rules), written under `work_dir` as `<key>w<NNNN>`
    files when first asked for. Each medium is decoded separately, so a model that finds a video's
    features already extracted decodes nothing."""

    def __init__(self, info: MediaInfo, work_dir: Path, key: str, warnings: Sequence[str] = ()) -> None:
        self.video, self.duration, self.has_audio = Path(info.path), info.duration, info.has_audio
        self.warnings = tuple(warnings)  # odd but usable (truncated, implausible frame rate)
        self.n_windows = window_count(info.duration)
        self._info, self._work, self._names = info, work_dir, [f"{key}w{w:04d}" for w in range(self.n_windows)]
        self._key = key

    def _cut(self, name: str, write: Callable[[MediaInfo, Path], Any]) -> tuple[Path, ...]:
        """`write` the whole video's WAV, then cut it into the windows' 10 s WAVs under `name`/."""
        full_wav = self._work / f"{self._key}_{name}.wav"
        write(self._info, full_wav)
        wavs = tuple(self._work / name / f"{n}.wav" for n in self._names)
        wavs[0].parent.mkdir(parents=True, exist_ok=True)
        write_window_audio(full_wav, wavs)
        return wavs

    @cached_property
    def audio(self) -> tuple[Path, ...]:
        return self._cut("audio", write_audio)

    @cached_property
    def tracks(self) -> tuple[Path, ...]:
        return self._cut("track", write_track)

    def inputs(self, medium: str) -> tuple[Path, ...]:
        """The windows' inputs for a feature kind of this medium (`avvp.extractors.MEDIA`)."""
        if medium not in MEDIA:
            raise ValueError(f"unknown medium {medium!r}; one of {MEDIA}")
        return self.frames if medium == FRAMES else self.tracks if medium == VIDEO else self.audio

    @cached_property
    def frames(self) -> tuple[Path, ...]:
        full_frames = self._work / f"{self._key}_frames"
        n_frames = extract_frames(self.video, full_frames)
        folders = tuple(self._work / "frames" / n for n in self._names)
        lead = leading_copies(n_frames, self.duration)
        write_window_frames(sorted(full_frames.glob("*.jpg")), window_frame_indices(n_frames, self.n_windows, lead),
                            folders)
        return folders


def prepare_windows(video: str | Path, work_dir: str | Path, key: str, max_seconds: float | None = None,
                    max_frames: int | None = None) -> VideoWindows:
    """Probe `video`; its windows are decoded under `work_dir` on first use (`VideoWindows`).

    A file that cannot be decoded, has no video stream, or decodes longer than `max_seconds` or to
    more than `max_frames` video frames (None: no bound) raises MediaError naming it, before
    anything is written; what is odd but usable is in the windows' `warnings`.
    """
    info = probe(video, max_frames=max_frames)
    if not info.has_video:
        raise MediaError(f"{video}: no video stream (parsing needs pictures)")
    problem = limit_problem(info, max_seconds, max_frames)
    if problem is not None:
        raise MediaError(f"{video}: {problem}")
    return VideoWindows(info, Path(work_dir), key, media_warnings(info, max_frames))
