"""The frames of a clip as the published scripts read them: 80 picked 8 fps JPEGs, decoded with PIL.

Preprocessing uses torchvision's functional resize/crop on PIL images, exactly what the published
scripts' per-frame transforms did (PIL bilinear with its antialiasing, uint8 output), so the pixels
match theirs bit for bit; only the float normalisation is batched.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

N_FRAMES = 80  # frames picked per 10-second clip (PROTOCOL §2)


def pick_frame_indices(n: int, k: int = N_FRAMES) -> np.ndarray:
    """round(linspace(0, n - 1, k)) as the published scripts did (numpy's round: halves to even).

    With fewer than k frames some indices repeat; zero frames is an error for the caller to name.
    """
    if n < 1:
        raise ValueError(f"cannot pick {k} frames out of {n}")
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


def frame_files(folder: Path) -> list[Path]:
    """The JPEG frames of a folder in name order (ffmpeg's %06d.jpg)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise ValueError(f"{folder}: no JPEG frames in this folder")
    return files


def load_frames(folder: Path, load_one: Callable[[Path], np.ndarray], k: int = N_FRAMES) -> np.ndarray:
    """(k, H, W, 3): the k picked frames of a folder (80 by default), each file decoded once."""
    files = frame_files(folder)
    picks = pick_frame_indices(len(files), k)
    decoded = {i: load_one(files[i]) for i in np.unique(picks)}
    return np.stack([decoded[i] for i in picks])


def open_rgb(path: Path) -> Image.Image:
    """An image file as RGB; an unreadable one is a ValueError naming it."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable image ({err})") from err


def normalise_frames(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(N, H, W, 3) uint8 (or float in [0, 1]) -> (N, 3, H, W) float32 normalised, channels-last strides.

    Same arithmetic as ToTensor + Normalize (x / 255, minus mean, over std), for the whole batch.
    """
    x = frames.float().div(255) if frames.dtype == torch.uint8 else frames.float()
    x = (x - torch.tensor(mean, device=x.device)) / torch.tensor(std, device=x.device)
    return x.permute(0, 3, 1, 2)
