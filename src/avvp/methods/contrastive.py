"""The audio-visual segment-matching term of MA-MMIL and JoMoLD.

Per video, the 10x10 cosine similarities between audio segments (rows) and visual segments
(columns) are divided by a temperature; audio segment t must pick visual segment t among the 10
segments of the same video. The target puts 1 - s on segment t and s / 9 on each other segment.
"""
from __future__ import annotations

import torch
from torch import Tensor

TEMPERATURE = 0.2
SMOOTHING = 0.1


def segment_similarities(audio: Tensor, visual: Tensor, temperature: float = TEMPERATURE) -> Tensor:
    """(B, T, d) and (B, T, d) -> (B, T, T) cosine similarities / temperature, audio along rows."""
    a = torch.nn.functional.normalize(audio, dim=-1)
    v = torch.nn.functional.normalize(visual, dim=-1)
    return a @ v.transpose(1, 2) / temperature


def smoothed_targets(n_segments: int, smoothing: float, like: Tensor) -> Tensor:
    """(T, T): 1 - s on the diagonal, s / (T - 1) elsewhere."""
    off = smoothing / (n_segments - 1)
    eye = torch.eye(n_segments, dtype=like.dtype, device=like.device)
    return eye * (1 - smoothing - off) + off


def contrastive_loss(audio: Tensor, visual: Tensor, temperature: float = TEMPERATURE,
                     smoothing: float = SMOOTHING, expected_probability: bool = False,
                     weights: Tensor | None = None) -> Tensor:
    """Mean over videos and audio segments of the label-smoothed cross-entropy.

    `expected_probability` computes JoMoLD's released variant instead: -log of the target-weighted
    sum of the softmax probabilities (not the weighted sum of their logs). `weights` (B, T) weigh
    each video's segments in the mean (CoLeaF's cross-network terms).
    """
    sims = segment_similarities(audio, visual, temperature)
    target = smoothed_targets(sims.shape[-1], smoothing, sims)
    if expected_probability:
        losses = -torch.log((torch.softmax(sims, dim=-1) * target).sum(dim=-1))
    else:
        losses = -(torch.log_softmax(sims, dim=-1) * target).sum(dim=-1)
    return (losses if weights is None else weights * losses).mean()
