"""Frozen-model passes over a packed training split: per-modality video probabilities."""
from __future__ import annotations

import numpy as np
import torch

from avvp.features import PackedSplit
from avvp.inference import batch_tensors, iterate_batches
from avvp.model import HAN


@torch.inference_mode()
def modality_probabilities(model: HAN, packed: PackedSplit, device: torch.device, batch_size: int = 128,
                           partners: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(a_prob, v_prob), each (N, C), of every video in eval mode, under "original".

    With `partners` (a row of the split per video), also "visual_replaced" (the video's audio with
    its partner's visual features) and "audio_replaced" (the partner's audio with its own visual).
    """
    model.eval()
    passes = ("original",) if partners is None else ("original", "visual_replaced", "audio_replaced")
    out: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {name: ([], []) for name in passes}
    for rows in iterate_batches(len(packed), batch_size):
        audio, frames, clips = batch_tensors(packed, rows, device)
        inputs = {"original": (audio, frames, clips)}
        if partners is not None:
            p_audio, p_frames, p_clips = batch_tensors(packed, partners[rows], device)
            inputs["visual_replaced"] = (audio, p_frames, p_clips)
            inputs["audio_replaced"] = (p_audio, frames, clips)
        for name in passes:
            _, a_prob, v_prob, _ = model(*inputs[name])
            out[name][0].append(a_prob.float().cpu().numpy())
            out[name][1].append(v_prob.float().cpu().numpy())
    n_classes = len(packed.classes)
    empty = np.zeros((0, n_classes), np.float32)
    return {name: (np.concatenate(a) if a else empty, np.concatenate(v) if v else empty)
            for name, (a, v) in out.items()}
