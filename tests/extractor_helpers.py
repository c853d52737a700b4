"""Inputs for the extractor tests: 16-bit PCM WAVs and folders of real ffmpeg-made JPEG frames."""
from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np

from avvp.clips.ffmpeg import ffmpeg_exe


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """samples (n,) or (n, channels) in [-1, 1] -> a 16-bit PCM WAV."""
    data = np.asarray(samples, dtype=np.float64)
    channels = 1 if data.ndim == 1 else data.shape[1]
    ints = np.clip(np.round(data * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(ints.tobytes())
    return path


def tone(freq: float, seconds: float = 10.0, rate: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(round(seconds * rate))) / rate)


def make_frames(folder: Path, n_frames: int, source: str = "testsrc", size: str = "160x120") -> Path:
    """`n_frames` JPEGs %06d.jpg from an ffmpeg lavfi source, as the frames step writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"{source}=size={size}:rate=8", "-frames:v", str(n_frames),
                    str(folder / "%06d.jpg")], check=True)
    return folder
