"""Which weights an extractor runs with: `pretrained`, `random` (seeded) or a state-dict file.

- `pretrained`: the published checkpoint, downloaded once into torch's hub cache
  (`$TORCH_HOME/hub/checkpoints/`). With `AVVP_OFFLINE=1`, or when the download fails, the error
  names the URL and the exact path where a manually fetched file is picked up.
- PATH: a plain state dict in the network's own format (torchvision's for ResNet-152 and
  R(2+1)D-18, the PyTorch port's for VGGish), loaded strictly into the full network (classifier
  included), so a file for another network fails with the names that do not match.
- `random`: a seeded initialisation. A random network in eval mode is badly scaled: batch norm holds
  untrained statistics (mean 0, variance 1), and ResNet-152 features reach 1e7-1e8. So the batch-norm
  statistics are re-estimated once per model build, in one train-mode pass over a fixed calibration
  set: seeded synthetic "dead-leaves" images (random opaque shapes of random colours with power-law
  sizes over 1/f noise, a classic model of natural-image statistics), or clips panning across them,
  through each network's own normalisation. The set depends on the seed only, never on the clips
  being extracted, so a clip's features do not depend on which shard or batch it is in. (Pink noise
  alone was tried first: features of synthetic pictures such as ffmpeg's test patterns came out
  ~300 and nearly collinear; with dead leaves they are ~1-3 and distinct.) Before that, the batch norm
  that closes each residual branch gets gamma = 1/sqrt(number of blocks), which keeps the deep random
  stack out of its chaotic regime (see `damp_residual_branches`). VGGish has
  no batch norm; it gets He-normal weights and zero biases, which keep activations at the input's
  scale through its ReLU stack.

The record written next to the features (`weights.json`) says which weights, their sha256 (of the
file for `pretrained` and PATH, of the tensors for `random`), the seed and how they were made.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn

from avvp import visual_nets
from avvp.features import STREAMS
from avvp.vggish import VGGish

KINDS = tuple(STREAMS)
OFFLINE_ENV = "AVVP_OFFLINE"
VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
VGGISH_PCA_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth"
PRETRAINED_URLS = {
    "vggish": VGGISH_URL,
    "res152": visual_nets.RES152_URL,
    "r2plus1d_18": visual_nets.R2PLUS1D_URL,
}
# torchvision names its files <name>-<first sha256 hex digits>.pth and checks them; the port does not.
HASHED_URLS = {visual_nets.RES152_URL, visual_nets.R2PLUS1D_URL}
CALIBRATION_IMAGES = 16  # ResNet-152: dead-leaves images of 224 x 224 (one batch)
CALIBRATION_CLIPS = 8  # R(2+1)D-18: panning dead-leaves clips of 8 x 112 x 112 (one batch)


@dataclass(frozen=True)
class WeightsRecord:
    """What `weights.json` holds: kind, weights choice, sha256, seed, and how they were made."""

    kind: str
    weights: str
    sha256: str
    seed: int
    how: str

    def as_dict(self) -> dict:
        return asdict(self)


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; expected one of {', '.join(KINDS)}")


def architecture(kind: str) -> nn.Module:
    """The full network of `kind` (classifier included, so published state dicts load strictly)."""
    check_kind(kind)
    if kind == "vggish":
        return VGGish()
    return visual_nets.resnet152() if kind == "res152" else visual_nets.r2plus1d_18()


# ----------------------------------------------------------------------------- files


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """A checksum of tensors themselves (names, dtypes, shapes, bytes), independent of file format."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype.str}|{array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def cached_path(url: str) -> Path:
    """Where torch's hub cache keeps the file of `url` (respects TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def fetch(url: str) -> Path:
    """The cached file of `url`, downloaded first when absent and downloads are allowed."""
    path = cached_path(url)
    if path.is_file():
        return path
    advice = f"download {url} yourself and put it at {path}"
    if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
        raise RuntimeError(f"weights file {path} is not cached and {OFFLINE_ENV} forbids downloads; {advice}")
    match = re.search(r"-([a-f0-9]{8,})\.", path.name) if url in HASHED_URLS else None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # torch writes to a temporary name and moves it into place when complete
        torch.hub.download_url_to_file(url, str(path), hash_prefix=match[1] if match else None)
    except (OSError, RuntimeError, ValueError) as err:
        raise RuntimeError(f"could not download {url} ({err}); {advice}") from err
    return path


def load_state_file(kind: str, model: nn.Module, path: Path) -> None:
    """Load a plain state dict strictly; a wrong file fails with a message naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean: not a state-dict file
        raise ValueError(f"{path}: not a readable PyTorch state dict ({err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a plain state dict (parameter name -> tensor)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path} is not a {kind} state dict: {err}") from err


# ----------------------------------------------------------------------------- random weights


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


def calibration_batch(kind: str, seed: int) -> torch.Tensor:
    """Network-ready inputs of the seeded calibration set of `kind` (see the module docstring)."""
    rng = np.random.default_rng([seed, 0xCA11B])
    if kind == "res152":
        images = dead_leaves(rng, CALIBRATION_IMAGES, 224, 224)
        inputs = visual_nets.normalise_frames(torch.from_numpy(images), visual_nets.IMAGENET_MEAN,
                                              visual_nets.IMAGENET_STD)
    else:
        clips = drifting_clips(rng, CALIBRATION_CLIPS, visual_nets.CLIP_FRAMES, 112)
        frames = visual_nets.normalise_frames(torch.from_numpy(clips.reshape(-1, 112, 112, 3)),
                                              visual_nets.KINETICS_MEAN, visual_nets.KINETICS_STD)
        inputs = visual_nets.frames_to_clips(frames)
    return inputs


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


def he_init(model: nn.Module) -> None:
    """He-normal weights (fan-in, ReLU gain) and zero biases for every conv and linear layer."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)


def damp_residual_branches(model: nn.Module) -> float:
    """Scale the batch norm closing each residual branch to gamma = 1/sqrt(blocks); returns gamma.

    With gamma = 1 a random 50-block ResNet-152 is chaotic: float32 rounding grows to ~4e-4
    relative in its features (against a float64 evaluation), so two correct implementations
    disagree beyond 1e-4. Damped branches keep it near 2e-6 and the features' scale steadier.
    """
    ends = visual_nets.residual_branch_ends(model)
    gamma = 1.0 / float(np.sqrt(len(ends)))
    for norm in ends:
        nn.init.constant_(norm.weight, gamma)
    return gamma


def random_model(kind: str, seed: int) -> tuple[nn.Module, str]:
    """A seeded random network of `kind`, made usable, and a sentence saying how."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = architecture(kind)
        if kind == "vggish":
            he_init(model)
    model.eval()
    if kind == "vggish":
        return model, f"random: He-normal weights, zero biases, torch seed {seed} (VGGish has no batch norm)"
    gamma = damp_residual_branches(model)
    recalibrate_batch_norm(model, calibration_batch(kind, seed))
    what = (f"{CALIBRATION_IMAGES} dead-leaves images of 224x224" if kind == "res152"
            else f"{CALIBRATION_CLIPS} panning dead-leaves clips of 8x112x112")
    return model, (f"random: torchvision's default initialisation under torch seed {seed}, the batch norm "
                   f"closing each residual branch set to gamma {gamma:.4f} (1/sqrt(blocks)); batch-norm "
                   f"statistics re-estimated on a fixed calibration set of {what} (numpy seed [{seed}, "
                   f"0xCA11B]), independent of the clips extracted")


# ----------------------------------------------------------------------------- entry point


def load_model(kind: str, weights: str = "random", seed: int = 0) -> tuple[nn.Module, WeightsRecord]:
    """The full network of `kind` on the CPU in eval mode with the chosen weights, and its record."""
    check_kind(kind)
    if weights == "random":
        model, how = random_model(kind, seed)
        return model, WeightsRecord(kind, "random", state_dict_sha256(model.state_dict()), seed, how)
    if weights == "pretrained":
        url = PRETRAINED_URLS[kind]
        path, how = fetch(url), f"pretrained: {url}; sha256 is of the file"
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} not found (use pretrained, random or a state-dict path)")
        how = "weights from a plain state dict file; sha256 is of the file"
    model = architecture(kind)
    load_state_file(kind, model, path)
    model.eval()
    return model, WeightsRecord(kind, weights if weights == "pretrained" else str(path), file_sha256(path), seed, how)


def pca_params_path(spec: str) -> Path:
    """`pretrained` (the port's PCA file, cached like the weights) or a path to PCA parameters."""
    return fetch(VGGISH_PCA_URL) if spec == "pretrained" else Path(spec)

