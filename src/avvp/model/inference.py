"""Running HAN over a packed split: batches straight from the memory-mapped arrays."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from avvp.features.store import PackedSplit
from avvp.model.han import HAN
from avvp.evaluation.protocols import Outputs
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
def predict_packed(model: HAN, packed: PackedSplit, device: torch.device, batch_size: int = 128,
                   cross_modal_off: bool = True) -> Predictions:
    """Every probability of every video of the packed split, in its order: the model as trained,
    and with `cross_modal_off` again with its cross-modal attention off (read by CMPAE's rule;
    training's validation, which scores the seed's rule, skips it)."""
    model.eval()
    passes: dict[bool, list[list[np.ndarray]]] = {False: [], **({True: []} if cross_modal_off else {})}
    for rows in iterate_batches(len(packed), batch_size):
        inputs = batch_tensors(packed, rows, device, model.features)
        for off in passes:
            outputs = model.classify(model.encode(*inputs, cross_modal=False if off else None))
            passes[off].append([x.float().cpu().numpy() for x in outputs])
    n_classes = len(packed.classes)
    empty = [np.zeros((0, n_classes), np.float32)] * 3 + [np.zeros((0, SEGMENTS, 2, n_classes), np.float32)]
    g, a, v, f = _stacked(passes[False], empty)
    off = Outputs(*_reordered(_stacked(passes[True], empty))) if cross_modal_off else None
    return Predictions(np.array(packed.filenames, dtype=str), np.array(packed.classes, dtype=str), g, f, a, v,
                       cross_modal_off=off)


def _stacked(batches: list[list[np.ndarray]], empty: list[np.ndarray]) -> list[np.ndarray]:
    """Batches of (global, a, v, frame) arrays joined along the videos."""
    return [np.concatenate(parts) for parts in zip(*batches)] if batches else empty


def _reordered(arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """(global, a, v, frame), the model's order, as Outputs' (global, frame, a, v)."""
    g, a, v, f = arrays
    return g, f, a, v
