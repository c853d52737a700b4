"""Checkpoint files: ours carry the class vocabulary, the model's options (its feature set among
them) and the training settings beside the weights; the official `MMIL_Net.pt` is a plain state
dict of the published feature set and needs the vocabulary from elsewhere."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from avvp.atomic import atomic_output
from avvp.model import HAN, load_weights


def save_checkpoint(path: str | Path, model: HAN, classes: Sequence[str], **extra: Any) -> None:
    """Write {"state_dict", "classes", "model_options", **extra} atomically."""
    payload = {"state_dict": model.state_dict(), "classes": list(classes), "model_options": model.options(), **extra}
    with atomic_output(path) as fh:
        torch.save(payload, fh)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint as a dict with at least "state_dict" ("classes" is None for official files)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a bad file
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({err})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a state dict or a checkpoint dict")
    if "state_dict" in payload:
        return payload
    return {"state_dict": payload, "classes": None}


def load_han(path: str | Path, classes: Sequence[str] | None = None,
             device: torch.device | str = "cpu") -> tuple[HAN, list[str], dict[str, Any]]:
    """Build HAN from a checkpoint (ours or official), in eval mode on `device`.

    `classes` is required for an official state dict and must agree with ours when both are given.
    """
    payload = read_checkpoint(path)
    stored = payload.get("classes")
    if stored is None and classes is None:
        raise ValueError(f"{path} holds no class list (official format): pass the data set's classes")
    if stored is not None and classes is not None and list(classes) != list(stored):
        raise ValueError(f"{path} was trained on classes {stored}, not {list(classes)}")
    names = list(stored if stored is not None else classes)
    model = HAN(len(names), **payload.get("model_options", {}))
    try:
        load_weights(model, payload["state_dict"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return model.to(device).eval(), names, payload
