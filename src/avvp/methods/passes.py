"""Frozen-model passes over a packed training split: per-modality video probabilities, and running a
registered pass so that its folder appears complete or not at all."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from avvp.base.atomic import atomic_folder
from avvp.features.store import PackedSplit
from avvp.model.inference import batch_tensors, iterate_batches
from avvp.methods.stages import Pass, PassJob
from avvp.model.han import HAN


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
        own = batch_tensors(packed, rows, device, model.features)
        inputs = {"original": own}
        if partners is not None:
            partner = batch_tensors(packed, partners[rows], device, model.features)
            audio = [kind.modality == "audio" for kind in model.kinds]
            inputs["visual_replaced"] = tuple(o if a else p for o, p, a in zip(own, partner, audio))
            inputs["audio_replaced"] = tuple(p if a else o for o, p, a in zip(own, partner, audio))
        for name in passes:
            _, a_prob, v_prob, _ = model(*inputs[name])
            out[name][0].append(a_prob.float().cpu().numpy())
            out[name][1].append(v_prob.float().cpu().numpy())
    n_classes = len(packed.classes)
    empty = np.zeros((0, n_classes), np.float32)
    return {name: (np.concatenate(a) if a else empty, np.concatenate(v) if v else empty)
            for name, (a, v) in out.items()}


def run_pass(spec: Pass, job: PassJob) -> str:
    """Run a pass, with the model options its spec fixes, into a temporary folder that replaces
    `job.out_dir` only when the pass succeeds."""
    with atomic_folder(job.out_dir) as tmp:
        return spec.run(dataclasses.replace(job, out_dir=tmp, model_options=spec.model_options))
