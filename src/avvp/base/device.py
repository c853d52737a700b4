"""Device selection: `auto` picks CUDA when present, everything also runs on the CPU."""
from __future__ import annotations

import torch


def resolve_device(spec: str = "auto") -> torch.device:
    """`auto` | `cpu` | `cuda` | `cuda:N` -> a torch.device; a clear error when CUDA is asked but absent."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {spec!r} asked for, but CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    return device
