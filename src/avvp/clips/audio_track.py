"""A clip's own audio track, read the way `librosa.load(path, sr=rate)` reads a video file.

VALOR (and so the `clap` kinds) takes its 48 kHz audio from the clip itself, not from the
pipeline's 16 kHz WAV: librosa 0.10 cannot read an mp4 with soundfile and falls back to
audioread, which runs `ffmpeg -i FILE -f s16le -` (the track's own rate and channels, 16-bit).
librosa then scales by 1/32768 to float32, averages the channels (`to_mono`) and resamples with
soxr's HQ filter to `ceil(n x (rate / native rate))` samples, zero-filled at the end (its
`fix_length`); at the native rate it resamples nothing. `load_track` does exactly these steps
(a test compares it with librosa.load on real clips, bit for bit).

We ask ffmpeg for a WAV stream rather than raw s16le: the samples are the same (both are
pcm_s16le), and the WAV header says the rate and channel count, which audioread reads from
ffmpeg's log instead. A clip without an audio track, which librosa cannot read at all, gives
digital silence as long as the clip and at least 10 s (the media step's rule).
"""
from __future__ import annotations

import math
import struct
import subprocess
from pathlib import Path

import numpy as np

from avvp.base.atomic import atomic_path
from avvp.clips.ffmpeg import (MediaError, MediaInfo, ffmpeg_exe, input_arg, last_error, probe,
                               raise_if_disk_full)
from avvp.clips.media import MIN_AUDIO_SECONDS, write_silence


def _ffmpeg_wav(path: Path, out: str) -> bytes:
    """ffmpeg writes the file's audio track as a 16-bit WAV to `out` (`-` for its stdout, returned)."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", input_arg(path),
                           "-f", "wav", "-y", out], capture_output=True)
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        raise_if_disk_full(stderr, out)
        raise MediaError(f"{path}: audio decoding failed ({last_error(stderr, path)})")
    return proc.stdout


def parse_wav_stream(data: bytes, name: str | Path = "stream") -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV written to a pipe (sizes unknown, so the data chunk runs to the end) ->
    int16 samples (n, channels) and the rate."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise MediaError(f"{name}: ffmpeg did not write a WAV stream")
    pos, channels, rate = 12, 0, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if chunk == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[pos + 8:pos + 24])
            if (fmt, bits) != (1, 16):
                raise MediaError(f"{name}: expected 16-bit PCM, got format {fmt} with {bits} bits")
        elif chunk == b"data":
            if not channels:
                raise MediaError(f"{name}: WAV data before its format")
            body = data[pos + 8:]
            body = body[: len(body) - len(body) % (2 * channels)]
            return np.frombuffer(body, "<i2").reshape(-1, channels), rate
        pos += 8 + size + (size & 1)
    raise MediaError(f"{name}: WAV stream without data")


def read_track(path: str | Path) -> tuple[np.ndarray, int] | None:
    """The file's audio track at its own rate and channel count: int16 (n, channels) and the rate;
    None when the file has no audio stream. MediaError (naming the file) when it cannot be decoded."""
    path = Path(path)
    if not probe(path, decode=False).has_audio:
        return None
    return parse_wav_stream(_ffmpeg_wav(path, "-"), path)


def silence(seconds: float, rate: int) -> np.ndarray:
    """Digital silence for a clip without audio: its length, at least MIN_AUDIO_SECONDS."""
    return np.zeros(round(max(seconds, MIN_AUDIO_SECONDS) * rate), np.float32)


def load_track(path: str | Path, rate: int) -> np.ndarray:
    """float32 mono at `rate`: `librosa.load(path, sr=rate)` (module rules), or silence."""
    import soxr

    path = Path(path)
    info = probe(path, decode=False)
    if not info.has_audio:
        return silence(info.duration, rate)
    samples, native = parse_wav_stream(_ffmpeg_wav(path, "-"), path)
    wave = np.mean(samples.T.astype(np.float32) * (1.0 / 32768), axis=0)
    if native == rate:
        return wave
    n = int(math.ceil(len(wave) * (float(rate) / native)))  # librosa's length, float ratio included
    out = soxr.resample(wave, native, rate, quality="soxr_hq")
    return np.pad(out, (0, max(0, n - len(out))))[:n]


def write_track(info: MediaInfo, out_wav: str | Path, silence_rate: int = 48000) -> None:
    """The probed clip's audio track as a 16-bit WAV at its own rate and channel count (what
    `read_track` would decode; parsing cuts it into windows), or mono silence at `silence_rate`."""
    with atomic_path(out_wav, ".wav") as tmp:
        if info.has_audio:
            _ffmpeg_wav(Path(info.path), str(tmp))
        else:
            write_silence(tmp, round(max(info.duration, MIN_AUDIO_SECONDS) * silence_rate), silence_rate, 1)
