"""Which weights an extractor runs with: `pretrained`, `random` (seeded) or a state-dict file.

- `pretrained`: the kind's published checkpoint (its `Pretrained` record), downloaded once
  (`avvp.extractors.parts.downloads`).
- PATH: a plain state dict in the network's own format, loaded strictly into the full network
  (classifier included), so a file for another network fails with the names that do not match.
- `random`: the kind's seeded initialisation, made usable without training (see
  `avvp.extractors.parts.calibration`).
- Kinds published as a model folder (Hugging Face's `save_pretrained` layout; `Extractor.from_folder`):
  `pretrained` is the Hub repository's files, cached, and PATH is such a folder. The sha256 is of
  the loaded tensors.

Within `reused_networks()` each network is built (and a random one calibrated) once and handed out
as copies, for callers that extract input by input (`avvp parse`, one video at a time). Every load
returns the `WeightsRecord` written next to the features (`avvp.features.weights`).
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import torch
from torch import nn

from avvp.base.files import file_sha256, load_refusal
from avvp.extractors import FeatureKind
from avvp.extractors.parts.downloads import fetch, hub_folder
from avvp.features.weights import WeightsRecord, state_dict_sha256

_REUSED: ContextVar[dict | None] = ContextVar("avvp_reused_networks", default=None)


def load_state_file(kind: str, model: nn.Module, path: Path) -> None:
    """Load a plain state dict strictly; a wrong file fails with a message naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean: not a state-dict file
        raise ValueError(f"{path}: not a readable PyTorch state dict ({load_refusal(err)})") from None
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
