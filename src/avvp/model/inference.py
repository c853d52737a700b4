"""Running HAN over a packed split: batches straight from the memory-mapped arrays."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from avvp.features.store import PackedSplit
from avvp.model.han import HAN
from avvp.model.predictions import Predictions
from avvp.base.protocol import SEGMENTS


def batch_tensors(packed: PackedSplit, rows: np.ndarray, device: torch.device,
                  kinds: Sequence[str]) -> tuple[Tensor, ...]:
    """The features of `kinds` for the given rows, as float32 tensors on `device` (HAN's inputs)."""
    missing = [kind for kind in kinds if kind not in packed.arrays]
    if missing:
        raise ValueError(f"{packed.root}: packed without the feature kind(s) {missing} the model needs")
    order = np.sort(rows)  # sorted reads are sequential on the memory map
    inverse = np.argsort(np.argsort(rows))
    return tuple(torch.from_numpy(np.asarray(packed.arrays[kind][order])[inverse]).to(device, non_blocking=True)
                 for kind in kinds)


def iterate_batches(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[np.ndarray]:
    """Row indices in batches; shuffled when a generator is given (the last batch may be short)."""
    order = torch.randperm(n, generator=generator).numpy() if generator is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


@torch.inference_mode()
def predict_packed(model: HAN, packed: PackedSplit, device: torch.device, batch_size: int = 128) -> Predictions:
    """Global and frame probabilities for every video of the packed split, in its order."""
    model.eval()
    global_prob, frame_prob = [], []
    for rows in iterate_batches(len(packed), batch_size):
        g, _, _, f = model(*batch_tensors(packed, rows, device, model.features))
        global_prob.append(g.float().cpu().numpy())
        frame_prob.append(f.float().cpu().numpy())
    n_classes = len(packed.classes)
    return Predictions(
        video_ids=np.array(packed.filenames, dtype=str),
        classes=np.array(packed.classes, dtype=str),
        global_prob=np.concatenate(global_prob) if global_prob else np.zeros((0, n_classes), np.float32),
        frame_prob=np.concatenate(frame_prob) if frame_prob else np.zeros((0, SEGMENTS, 2, n_classes), np.float32),
    )
