"""Seeded random weights that still give usable features (tests and the offline demo).

A random network in eval mode is badly scaled: batch norm holds untrained statistics (mean 0,
variance 1), and ResNet-152 features reach 1e7-1e8. So a residual network's batch-norm statistics
are re-estimated once per model build, in one train-mode pass over a fixed calibration set: seeded
synthetic "dead-leaves" images (random opaque shapes of random colours with power-law sizes over
1/f noise, a classic model of natural-image statistics), or clips panning across them, through the
network's own normalisation. The set depends on the seed only, never on the clips being extracted,
so a clip's features do not depend on which shard or batch it is in. (Pink noise alone was tried
first: features of synthetic pictures such as ffmpeg's test patterns came out ~300 and nearly
collinear; with dead leaves they are ~1-3 and distinct.) Before that, the batch norm that closes
each residual branch gets gamma = 1/sqrt(number of blocks), which keeps the deep random stack out
of its chaotic regime (see `damp_residual_branches`).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

from avvp.extractors import Extractor


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's global generator seeded for the block, and restored after it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def calibration_rng(seed: int) -> np.random.Generator:
    """The generator of a seed's calibration set (independent of torch's)."""
    return np.random.default_rng([seed, 0xCA11B])


def pink_noise(rng: np.random.Generator, n: int, height: int, width: int) -> np.ndarray:
    """(n, height, width, 3) float32 images in [0, 1] with a 1/f spectrum and correlated colours."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(height, width))
    shape = (n, 4, height, width // 2 + 1)
    spectrum = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * amplitude
    fields = np.fft.irfft2(spectrum, s=(height, width))
    fields /= fields.std(axis=(2, 3), keepdims=True)
    image = fields[:, :1] + 0.35 * fields[:, 1:]  # a shared luminance field plus weaker colour fields
    image /= image.std(axis=(1, 2, 3), keepdims=True)
    contrast = rng.uniform(0.1, 0.3, (n, 1, 1, 1))
    brightness = rng.uniform(0.3, 0.7, (n, 1, 1, 1))
    return np.clip(brightness + contrast * image, 0.0, 1.0).transpose(0, 2, 3, 1).astype(np.float32)


def dead_leaves(rng: np.random.Generator, n: int, height: int, width: int, leaves: int = 60) -> np.ndarray:
    """(n, height, width, 3) float32 images in [0, 1] after the dead-leaves model of natural images.

    Opaque discs and rectangles of random colours, with power-law sizes, drawn over each other on a
    pink-noise background and textured with it: sharp edges, flat saturated regions and a 1/f-like
    spectrum, so the statistics cover both textured footage and synthetic pictures.
    """
    texture = pink_noise(rng, n, height, width)
    images = texture.copy()
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(n):
        grain = 0.15 * (texture[i] - texture[i].mean())
        for _ in range(leaves):
            size = height / 3 * rng.uniform(0.03, 1.0) ** 2
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            if rng.random() < 0.5:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < size**2
            else:
                mask = (np.abs(yy - cy) < size) & (np.abs(xx - cx) < size * rng.uniform(0.3, 3.0))
            images[i][mask] = np.clip(rng.uniform(0.0, 1.0, 3) + grain[mask], 0.0, 1.0)
    return images


def drifting_clips(rng: np.random.Generator, n: int, frames: int, size: int) -> np.ndarray:
    """(n, frames, size, size, 3) windows panning across dead-leaves images: a scene in motion."""
    margin = 4 * frames
    canvas = dead_leaves(rng, n, size + 2 * margin, size + 2 * margin)
    velocity = rng.integers(-3, 4, (n, 2))
    clips = np.empty((n, frames, size, size, 3), dtype=np.float32)
    for i in range(n):
        for t in range(frames):
            y, x = margin + velocity[i] * t
            clips[i, t] = canvas[i, y:y + size, x:x + size]
    return clips


def recalibrate_batch_norm(model: nn.Module, batch: torch.Tensor) -> None:
    """Set every batch norm's running statistics to those of `batch` (one train-mode pass)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # plain average: with one batch, exactly that batch's statistics
    layout = torch.channels_last if batch.dim() == 4 else torch.channels_last_3d  # faster on CPU
    model.to(memory_format=layout).train()
    with torch.no_grad():
        model(batch.contiguous(memory_format=layout))
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    model.eval()


def residual_branch_ends(model: nn.Module) -> list[nn.Module]:
    """The batch norm that closes each residual branch (ResNet bottleneck bn3, R(2+1)D conv2[1])."""
    ends: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, torchvision.models.resnet.Bottleneck):
            ends.append(module.bn3)
        elif isinstance(module, torchvision.models.video.resnet.BasicBlock):
            ends.append(module.conv2[1])
    return ends


def damp_residual_branches(model: nn.Module) -> float:
    """Scale the batch norm closing each residual branch to gamma = 1/sqrt(blocks); returns gamma.

    With gamma = 1 a random 50-block ResNet-152 is chaotic: float32 rounding grows to ~4e-4
    relative in its features (against a float64 evaluation), so two correct implementations
    disagree beyond 1e-4. Damped branches keep it near 2e-6 and the features' scale steadier.
    """
    ends = residual_branch_ends(model)
    gamma = 1.0 / float(np.sqrt(len(ends)))
    for norm in ends:
        nn.init.constant_(norm.weight, gamma)
    return gamma


def random_residual(build: Callable[[], nn.Module], calibration: Callable[[int], torch.Tensor],
                    what: str) -> Callable[[int], tuple[nn.Module, str]]:
    """The `random` of a residual network: seed -> a network with damped branches and batch norm
    calibrated on `calibration(seed)` (network-ready inputs described by `what`), and a sentence
    saying how it was made."""
    return functools.partial(_random_residual, build, calibration, what)


def residual_extractor(build: Callable[[], nn.Module], calibration: Callable[[int], torch.Tensor], what: str, *,
                       features: Callable[[nn.Module, torch.device], nn.Module], load: Callable[[Path], np.ndarray],
                       prepare: Callable[[torch.Tensor], torch.Tensor], layout: torch.memory_format) -> Extractor:
    """The `Extractor` of a residual network: `random_residual` weights (calibrated on
    `calibration(seed)`, described by `what`), its input batches in the memory format `layout`."""
    return Extractor(build=build, random=random_residual(build, calibration, what), features=features, load=load,
                     prepare=prepare, memory_format=lambda: layout)


def _random_residual(build: Callable[[], nn.Module], calibration: Callable[[int], torch.Tensor], what: str,
                     seed: int) -> tuple[nn.Module, str]:
    with seeded(seed):
        model = build()
    model.eval()
    gamma = damp_residual_branches(model)
    recalibrate_batch_norm(model, calibration(seed))
    return model, (f"random: torchvision's default initialisation under torch seed {seed}, the batch norm "
                   f"closing each residual branch set to gamma {gamma:.4f} (1/sqrt(blocks)); batch-norm "
                   f"statistics re-estimated on a fixed calibration set of {what} (numpy seed [{seed}, "
                   f"0xCA11B]), independent of the clips extracted")
