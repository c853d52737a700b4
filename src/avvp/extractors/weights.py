"""Which weights an extractor runs with: `pretrained`, `random` (seeded) or a state-dict file.

- `pretrained`: the kind's published checkpoint (its `Pretrained` record), downloaded once into
  torch's hub cache (`$TORCH_HOME/hub/checkpoints/`). With `AVVP_OFFLINE=1`, or when the download
  fails, the error names the URL and the exact path where a manually fetched file is picked up.
- PATH: a plain state dict in the network's own format, loaded strictly into the full network
  (classifier included), so a file for another network fails with the names that do not match.
- `random`: the kind's seeded initialisation, made usable without training (see
  `avvp.extractors.calibration`).
- Kinds published as a model folder (Hugging Face's `save_pretrained` layout; `Extractor.from_folder`):
  `pretrained` downloads the Hub repository's files once into `$TORCH_HOME/hub/huggingface/`, and
  PATH is such a folder. The sha256 is of the loaded tensors.

Within `reused_networks()` each network is built (and a random one calibrated) once and handed out
as copies, for callers that extract input by input (`avvp parse`, one video at a time).

The record written next to the features (`weights.json`) says which weights, their sha256 (of the
file for `pretrained` and PATH, of the tensors for `random`), the seed and how they were made.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from avvp.extractors import FeatureKind
from avvp.provenance import file_sha256

OFFLINE_ENV = "AVVP_OFFLINE"
_REUSED: ContextVar[dict | None] = ContextVar("avvp_reused_networks", default=None)


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


def fetch(url: str, hashed: bool = False) -> Path:
    """The cached file of `url`, downloaded first when absent and downloads are allowed.

    `hashed`: the file name ends in `-<first sha256 hex digits>.`, which the download is checked
    against.
    """
    path = cached_path(url)
    if path.is_file():
        return path
    advice = f"download {url} yourself and put it at {path}"
    if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
        raise RuntimeError(f"weights file {path} is not cached and {OFFLINE_ENV} forbids downloads; {advice}")
    match = re.search(r"-([a-f0-9]{8,})\.", path.name) if hashed else None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # torch writes to a temporary name and moves it into place when complete
        torch.hub.download_url_to_file(url, str(path), hash_prefix=match[1] if match else None)
    except (OSError, RuntimeError, ValueError) as err:
        raise RuntimeError(f"could not download {url} ({err}); {advice}") from err
    return path


def hub_folder(kind: FeatureKind) -> Path:
    """The cached model folder of a kind published on the Hugging Face Hub, downloaded first when
    absent and downloads are allowed; otherwise an error naming the files and where they go."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    published = kind.pretrained
    repo = urlparse(published.url).path.strip("/")
    cache = Path(torch.hub.get_dir()) / "huggingface"
    offline = os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0")
    advice = (f"download the files {', '.join(published.files)} of {published.url} into one folder and pass "
              f"that folder as the weights (--weights PATH), or let avvp download them once into {cache}")
    try:
        return Path(snapshot_download(repo, cache_dir=cache, allow_patterns=list(published.files),
                                      local_files_only=offline))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:
        why = f"{OFFLINE_ENV} forbids downloads" if offline else f"the download failed ({err})"
        raise RuntimeError(f"{kind.name} weights ({published.holds}) are not cached and {why}; {advice}") from err


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


@contextmanager
def reused_networks() -> Iterator[None]:
    """Within the block `load_network` builds each (kind, weights, seed) once and returns copies
    (a caller may change the network it gets, e.g. drop its classifier)."""
    token = _REUSED.set({})
    try:
        yield
    finally:
        _REUSED.reset(token)


def load_network(kind: FeatureKind, weights: str = "random", seed: int = 0) -> tuple[nn.Module, WeightsRecord]:
    """The full network of `kind` on the CPU in eval mode with the chosen weights, and its record."""
    cache = _REUSED.get()
    if cache is None:
        return _load_network(kind, weights, seed)
    key = (kind.name, weights, seed)
    if key not in cache:
        cache[key] = _load_network(kind, weights, seed)
    model, record = cache[key]
    return copy.deepcopy(model), record


def _load_network(kind: FeatureKind, weights: str, seed: int) -> tuple[nn.Module, WeightsRecord]:
    network = kind.network()
    if weights == "random":
        model, how = network.random(seed)
        return model, WeightsRecord(kind.name, "random", state_dict_sha256(model.state_dict()), seed, how)
    if network.from_folder is not None:
        return _load_folder(kind, weights, seed)
    if weights == "pretrained":
        if kind.pretrained is None:
            raise ValueError(f"feature kind {kind.name} has no published weights; use random or a state-dict path")
        path = fetch(kind.pretrained.url, kind.pretrained.hashed)
        how = f"pretrained: {kind.pretrained.url}; sha256 is of the file"
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} not found (use pretrained, random or a state-dict path)")
        how = "weights from a plain state dict file; sha256 is of the file"
    model = network.build()
    load_state_file(kind.name, model, path)
    model.eval()
    return model, WeightsRecord(kind.name, weights if weights == "pretrained" else str(path), file_sha256(path), seed, how)


def _load_folder(kind: FeatureKind, weights: str, seed: int) -> tuple[nn.Module, WeightsRecord]:
    """A kind published as a model folder: `pretrained` (the Hub repository, cached) or a local folder."""
    if weights == "pretrained":
        if kind.pretrained is None or not kind.pretrained.files:
            raise ValueError(f"feature kind {kind.name} has no published model folder; use random or a folder path")
        folder = hub_folder(kind)
        how = f"pretrained: {kind.pretrained.url} ({kind.pretrained.holds}); sha256 is of the tensors"
    else:
        folder = Path(weights)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} is not a model folder (no config.json; {kind.name} weights are "
                                    f"pretrained, random or a folder saved with save_pretrained)")
        how = "weights from a local model folder; sha256 is of the tensors"
    model = kind.network().from_folder(folder)
    model.eval()
    return model, WeightsRecord(kind.name, weights if weights == "pretrained" else str(folder),
                                state_dict_sha256(model.state_dict()), seed, how)
