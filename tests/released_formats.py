"""Checkpoint files in the formats of the released code, built around a HAN's weights: HAN's
`MMIL_Net.pt` and MA-MMIL's (plain state dicts with their networks' unused modules), and JoMoLD's
(the state dict under "model" beside optimiser, scheduler and random-number states). The unused
modules are real torch modules of the released shapes, with seeded values."""
from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avvp.model.han import HAN

FORMATS = ("han", "ma_mmil", "jomold")


class GammaBetaNorm(nn.Module):
    """MA-MMIL's own LayerNorm: its parameters are called gamma and beta."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(d))
        self.beta = nn.Parameter(torch.zeros(d))


class TwoInputAttention(nn.Module):
    """The parameters of MA-MMIL's MultiHeadAttention2(512, 512, 512)."""

    def __init__(self, d: int = 512) -> None:
        super().__init__()
        self.w_qs, self.w_ks, self.w_vs, self.fc = (nn.Linear(d, d) for _ in range(4))
        self.layer_norm = GammaBetaNorm(d)


def _with_modules(model: HAN, modules: dict[str, nn.Module], seed: int) -> dict[str, torch.Tensor]:
    """The model's state dict plus the modules' parameters under their names, drawn with `seed`."""
    torch.manual_seed(seed)
    state = dict(model.state_dict())
    for prefix, module in modules.items():
        for key, value in module.state_dict().items():
            state[f"{prefix}.{key}"] = value.normal_() if value.is_floating_point() else value
    return state


def _encoder_norms() -> nn.ModuleDict:
    return nn.ModuleDict({"norm1": nn.LayerNorm(512), "norm2": nn.LayerNorm(512)})


def han_state(model: HAN, seed: int = 0) -> dict[str, torch.Tensor]:
    """HAN's `MMIL_Net.pt`: the model plus the unused audio, visual and cross-modal encoders and the
    attention encoder's norms (74 keys)."""
    def layer() -> nn.TransformerEncoder:
        return nn.TransformerEncoder(nn.TransformerEncoderLayer(512, 1, 512), 1, enable_nested_tensor=False)

    cmt = _encoder_norms()
    cmt["layers"] = nn.ModuleList([nn.TransformerEncoderLayer(512, 1, 512)])
    return _with_modules(model, {"audio_encoder": layer(), "visual_encoder": layer(), "cmt_encoder": cmt,
                                 "hat_encoder": _encoder_norms()}, seed)


def ma_mmil_state(model: HAN, seed: int = 0) -> dict[str, torch.Tensor]:
    """MA-MMIL's stage-1 (and stage-3) `MMIL_Net.pt`: HAN's plus t_att, t_att2, fc1, fc2 (98 keys)."""
    extra = _with_modules(model, {"t_att": TwoInputAttention(), "t_att2": TwoInputAttention(),
                                  "fc1": nn.Linear(1024, 256), "fc2": nn.Linear(256, 2)}, seed + 1)
    return {**han_state(model, seed), **extra}


def jomold_checkpoint(model: HAN, seed: int = 0) -> dict[str, object]:
    """JoMoLD's noise estimator or final model as its main.py saves them (the attention encoder's
    unused norms are its only extra modules; 34 model keys)."""
    optimizer = torch.optim.Adam(copy.deepcopy(model).parameters(), lr=5e-4)
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.ones_like(p)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=6, gamma=0.25)
    return {"torch_rng": torch.get_rng_state(), "cuda_rng": torch.get_rng_state(), "random_rng": random.getstate(),
            "numpy_rng": np.random.get_state(), "model": _with_modules(model, {"hat_encoder": _encoder_norms()}, seed),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epochs": 25}


def save_released(path: Path, model: HAN, released: str, seed: int = 0) -> Path:
    """`model`'s weights in the file format of the released `han`, `ma_mmil` or `jomold` code."""
    builders = {"han": han_state, "ma_mmil": ma_mmil_state, "jomold": jomold_checkpoint}
    torch.save(builders[released](model, seed), path)
    return path


def with_numpy1_names(path: Path, payload: dict[str, object]) -> Path:
    """`payload` saved as numpy 1.x pickles arrays (`numpy.core.multiarray`), as the released files are:
    the legacy torch format keeps the pickle as plain bytes, so the module name can be rewritten."""
    torch.save(payload, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    assert data.count(b"numpy._core.multiarray\n") == 1
    path.write_bytes(data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    return path
