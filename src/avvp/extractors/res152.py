"""ResNet-152 (ImageNet) frame features (PROTOCOL §2): 80 picked frames, short side to 256 (PIL
bilinear), centre crop 224, ImageNet mean/std; the global-pool output, 2048 per frame.

The weights are torchvision's IMAGENET1K_V1 (the checkpoint the older `pretrainedmodels` package
served), not V2. On CPU the network runs as fused oneDNN convolutions (`fused_resnet`);
docs/BENCHMARKS.md has the speed against the published NCHW forward of 80 frames.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as TF
from torch import nn
from torchvision.transforms import InterpolationMode

from avvp.extractors.parts.calibration import calibration_rng, dead_leaves, residual_extractor
from avvp.extractors.parts.frames import load_frames, normalise_frames, open_rgb
from avvp.extractors.parts.fused_resnet import FusedResNet, can_fuse

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CALIBRATION_IMAGES = 16  # dead-leaves images of 224 x 224 (one batch)


def resnet152() -> nn.Module:
    """torchvision's ResNet-152 with its ImageNet classifier (initialised by torchvision)."""
    return torchvision.models.resnet152(weights=None)


def res152_frame(path: Path) -> np.ndarray:
    """(224, 224, 3) uint8: short side to 256 (PIL bilinear), centre crop 224."""
    image = TF.resize(open_rgb(path), [256], InterpolationMode.BILINEAR)
    return np.asarray(TF.center_crop(image, [224, 224]))


def load_res152_frames(folder: Path) -> np.ndarray:
    """(80, 224, 224, 3) uint8: the folder's picked frames, resized and cropped (runs in decoding workers)."""
    return load_frames(folder, res152_frame)


def prepare(frames: torch.Tensor) -> torch.Tensor:
    """(N, 224, 224, 3) uint8 -> normalised network input."""
    return normalise_frames(frames, IMAGENET_MEAN, IMAGENET_STD)


def calibration_images(seed: int) -> torch.Tensor:
    """Network-ready dead-leaves images of the seed's calibration set."""
    images = dead_leaves(calibration_rng(seed), CALIBRATION_IMAGES, 224, 224)
    return prepare(torch.from_numpy(images))


def feature_network(model: nn.Module, device: torch.device) -> nn.Module:
    """The network up to its global pool (classifier replaced by the identity); fused on a CPU."""
    model.fc = nn.Identity()
    model.eval()
    if can_fuse(model, device):
        return FusedResNet(model)
    return model.to(device=device, memory_format=torch.channels_last)


EXTRACTOR = residual_extractor(
    resnet152, calibration_images, f"{CALIBRATION_IMAGES} dead-leaves images of 224x224",
    features=feature_network, load=load_res152_frames, prepare=prepare, layout=torch.channels_last)
