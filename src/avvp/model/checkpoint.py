"""Checkpoint files: ours carry the class vocabulary, the model's options (its feature set among
them), the training settings and the weights records of the training features
(`avvp.features.weights`) beside the weights. The released ones carry weights only: HAN's
`MMIL_Net.pt` and MA-MMIL's are plain state dicts, JoMoLD's and CMPAE's a dict with the state dict
under "model" beside its optimiser, scheduler and random-number states (CMPAE's network is recognised
by its modules, `avvp.model.networks`). All were trained on LLP, so a released
file with LLP's 25 outputs gets LLP's class list (shipped with the package) unless told otherwise."""
from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from avvp.base.atomic import atomic_output
from avvp.base.files import load_refusal
from avvp.model.han import HAN, load_han_state
from avvp.model.networks import build_network, released_network

# The top-level keys of JoMoLD's checkpoints (its main.py saves the random-number states, then these four).
JOMOLD_KEYS = frozenset({"torch_rng", "cuda_rng", "random_rng", "numpy_rng", "model", "optimizer", "scheduler",
                         "epochs"})
# JoMoLD's checkpoints hold numpy's random state, np.random.get_state(): a uint32 array in a tuple, which
# a weights-only load refuses. Rather than unpickling without restriction, the load also allows exactly
# what rebuilds a uint32 array (under numpy 2's and numpy 1's module names, the released files being
# older): no other class or dtype, and no function other than the array's reconstruction, can load.
_RECONSTRUCT = np._core.multiarray._reconstruct
NUMPY_RNG_GLOBALS = [_RECONSTRUCT, (_RECONSTRUCT, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype,
                     np.dtypes.UInt32DType]


def llp_classes() -> list[str]:
    """LLP's 25 classes in index order (the released checkpoints' outputs), as shipped with avvp."""
    from avvp.evaluation.annotations import read_classes

    with resources.as_file(resources.files("avvp").joinpath("data/llp_classes.txt")) as path:
        return list(read_classes(path).classes)


def save_checkpoint(path: str | Path, model: HAN, classes: Sequence[str], **extra: Any) -> None:
    """Write {"state_dict", "classes", "model_options", **extra} atomically."""
    payload = {"state_dict": model.state_dict(), "classes": list(classes), "model_options": model.options(), **extra}
    with atomic_output(path) as fh:
        torch.save(payload, fh)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint as a dict with at least "state_dict" ("classes" is None for released files)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(NUMPY_RNG_GLOBALS):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a bad file
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({load_refusal(err)})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a state dict or a checkpoint dict")
    if "state_dict" in payload:
        return payload
    if "model" in payload and payload.keys() <= JOMOLD_KEYS:
        return {"state_dict": payload["model"], "classes": None}
    return {"state_dict": payload, "classes": None}


def load_han(path: str | Path, classes: Sequence[str] | None = None, device: torch.device | str = "cpu",
             options: Mapping[str, Any] | None = None) -> tuple[HAN, list[str], dict[str, Any]]:
    """Build the checkpoint's network (HAN, or the released network its modules name) from a
    checkpoint (ours or a released one), in eval mode on `device`.

    `classes` must agree with ours when both are given; a released file without them gets LLP's
    classes when it has 25 outputs (they were all trained on LLP), else they are required.
    `options` replace the model options the checkpoint stores (a released file stores none: HAN's
    defaults), for a pass whose method fixes them.
    """
    payload = read_checkpoint(path)
    stored = payload.get("classes")
    if stored is None and classes is None:
        outputs = payload["state_dict"].get("fc_prob.weight")
        llp = llp_classes()
        if outputs is None or outputs.shape[0] != len(llp):
            raise ValueError(f"{path} holds no class list and does not have LLP's {len(llp)} outputs: pass the "
                             "data set's classes")
        classes = llp
    if stored is not None and classes is not None and list(classes) != list(stored):
        raise ValueError(f"{path} was trained on classes {stored}, not {list(classes)}")
    names = list(stored if stored is not None else classes)
    stored_options = payload.get("model_options") or {"network": released_network(payload["state_dict"])}
    model = build_network(len(names), **{**stored_options, **(options or {})})
    try:
        load_han_state(model, payload["state_dict"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return model.to(device).eval(), names, payload
