"""ResNet-152 and R(2+1)D-18 feature networks and their frame preprocessing (PROTOCOL §2).

Preprocessing is done on PIL images with torchvision's own functional resize/crop, exactly what the
published scripts' per-frame transforms did (PIL bilinear with its antialiasing, uint8 output), so
the pixels match theirs bit for bit; only the float normalisation is batched. ResNet-152: short
side to 256, centre crop 224. R(2+1)D-18: each frame to exactly 112 x 112. Both then scale to [0, 1]
and normalise with the network's mean and std.

For inference the classifier is replaced by the identity (features = the global-pool output) and
the network runs channels-last in small batches under `torch.inference_mode`; on CPU, ResNet-152
runs as fused oneDNN convolutions (`avvp.fused_resnet`). docs/BENCHMARKS.md has the speed against
the published NCHW forward of 80 frames.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode

RES152_URL = torchvision.models.ResNet152_Weights.IMAGENET1K_V1.url
R2PLUS1D_URL = torchvision.models.video.R2Plus1D_18_Weights.KINETICS400_V1.url
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
CLIP_FRAMES = 8


def resnet152() -> nn.Module:
    """torchvision's ResNet-152 with its ImageNet classifier (initialised by torchvision)."""
    return torchvision.models.resnet152(weights=None)


def r2plus1d_18() -> nn.Module:
    """torchvision's R(2+1)D-18 with its Kinetics-400 classifier; input (B, C, T, H, W)."""
    return torchvision.models.video.r2plus1d_18(weights=None)


def residual_branch_ends(model: nn.Module) -> list[nn.Module]:
    """The batch norm that closes each residual branch (ResNet bottleneck bn3, R(2+1)D conv2[1])."""
    ends: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, torchvision.models.resnet.Bottleneck):
            ends.append(module.bn3)
        elif isinstance(module, torchvision.models.video.resnet.BasicBlock):
            ends.append(module.conv2[1])
    return ends


def feature_network(model: nn.Module) -> nn.Module:
    """The ResNet or R(2+1)D itself, classifier replaced by the identity, in eval mode."""
    model.fc = nn.Identity()
    return model.eval()


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable image ({err})") from err


def res152_frame(path: Path) -> np.ndarray:
    """(224, 224, 3) uint8: short side to 256 (PIL bilinear), centre crop 224."""
    image = TF.resize(_open_rgb(path), [256], InterpolationMode.BILINEAR)
    return np.asarray(TF.center_crop(image, [224, 224]))


def r2plus1d_frame(path: Path) -> np.ndarray:
    """(112, 112, 3) uint8: resized to exactly 112 x 112 (PIL bilinear), no crop."""
    return np.asarray(TF.resize(_open_rgb(path), [112, 112], InterpolationMode.BILINEAR))


def normalise_frames(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(N, H, W, 3) uint8 (or float in [0, 1]) -> (N, 3, H, W) float32 normalised, channels-last strides.

    Same arithmetic as ToTensor + Normalize (x / 255, minus mean, over std), for the whole batch.
    """
    x = frames.float().div(255) if frames.dtype == torch.uint8 else frames.float()
    x = (x - torch.tensor(mean, device=x.device)) / torch.tensor(std, device=x.device)
    return x.permute(0, 3, 1, 2)


def frames_to_clips(frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) frames -> (N / 8, 3, 8, H, W) clips of consecutive frames, in order."""
    n, c, h, w = frames.shape
    if n % CLIP_FRAMES:
        raise ValueError(f"{n} frames do not split into clips of {CLIP_FRAMES}")
    x = frames.permute(0, 2, 3, 1).reshape(n // CLIP_FRAMES, CLIP_FRAMES, h, w, c)
    return x.permute(0, 4, 1, 2, 3)
