"""R(2+1)D-18 (Kinetics-400) clip features (PROTOCOL §2): the 80 picked frames, each resized to
exactly 112 x 112 (PIL bilinear, no crop), Kinetics mean/std, grouped in order into 10 clips of 8
consecutive frames; the pooled layer before the classifier, 512 per clip. Weights: torchvision's
KINETICS400_V1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as TF
from torch import nn
from torchvision.transforms import InterpolationMode

from avvp.extractors.parts.calibration import calibration_rng, drifting_clips, residual_extractor
from avvp.extractors.parts.frames import load_frames, normalise_frames, open_rgb

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
CLIP_FRAMES = 8
CALIBRATION_CLIPS = 8  # panning dead-leaves clips of 8 x 112 x 112 (one batch)


def r2plus1d_18() -> nn.Module:
    """torchvision's R(2+1)D-18 with its Kinetics-400 classifier; input (B, C, T, H, W)."""
    return torchvision.models.video.r2plus1d_18(weights=None)


def r2plus1d_frame(path: Path) -> np.ndarray:
    """(112, 112, 3) uint8: resized to exactly 112 x 112 (PIL bilinear), no crop."""
    return np.asarray(TF.resize(open_rgb(path), [112, 112], InterpolationMode.BILINEAR))


def frames_to_clips(frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) frames -> (N / 8, 3, 8, H, W) clips of consecutive frames, in order."""
    n, c, h, w = frames.shape
    if n % CLIP_FRAMES:
        raise ValueError(f"{n} frames do not split into clips of {CLIP_FRAMES}")
    x = frames.permute(0, 2, 3, 1).reshape(n // CLIP_FRAMES, CLIP_FRAMES, h, w, c)
    return x.permute(0, 4, 1, 2, 3)


def load_clips(folder: Path) -> np.ndarray:
    """(10, 8, 112, 112, 3) uint8: the folder's picked frames as 10 clips of 8."""
    return load_frames(folder, r2plus1d_frame).reshape(-1, CLIP_FRAMES, 112, 112, 3)


def prepare(clips: torch.Tensor) -> torch.Tensor:
    """(N, 8, 112, 112, 3) uint8 -> (N, 3, 8, 112, 112) normalised network input."""
    frames = clips.reshape(-1, *clips.shape[2:])
    return frames_to_clips(normalise_frames(frames, KINETICS_MEAN, KINETICS_STD))


def calibration_clips(seed: int) -> torch.Tensor:
    """Network-ready panning dead-leaves clips of the seed's calibration set."""
    clips = drifting_clips(calibration_rng(seed), CALIBRATION_CLIPS, CLIP_FRAMES, 112)
    return prepare(torch.from_numpy(clips))


def feature_network(model: nn.Module, device: torch.device) -> nn.Module:
    """The network up to its pooled layer (classifier replaced by the identity)."""
    model.fc = nn.Identity()
    return model.eval().to(device=device, memory_format=torch.channels_last_3d)


EXTRACTOR = residual_extractor(
    r2plus1d_18, calibration_clips, f"{CALIBRATION_CLIPS} panning dead-leaves clips of 8x112x112",
    features=feature_network, load=load_clips, prepare=prepare, layout=torch.channels_last_3d)
