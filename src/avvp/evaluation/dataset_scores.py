"""F-scores from counts pooled over all videos: the per-class F and a dataset-level second opinion.

The ten numbers (PROTOCOL §5) average one F per video, and a video with no event of a type and none
predicted scores 1.0 there, so they reward the many empty (video, stream) pairs. Pooling TP, FP, FN
over videos instead weighs every video-class-segment cell (segment level) or event (event level)
once and gives no credit for an empty one. `dataset_level` reports that reading as `micro` (all
classes pooled) and `macro` (the mean of the per-class F). It is not the published metric and must
never be compared with published numbers.

Empty denominators: a pooled F is None (JSON null) when 2TP + FP + FN = 0, i.e. nothing was
predicted and nothing annotated, since any number there would be a convention, not a measurement.
`macro` averages over the classes whose F is defined (some prediction or ground truth in that
stream), so it is None exactly when `micro` is; `type_at_av` is None when one of its three streams is.
"""
from __future__ import annotations

from collections.abc import Sequence
from statistics import mean
from typing import TYPE_CHECKING

import numpy as np

from avvp.base.protocol import LEVELS, STREAMS

if TYPE_CHECKING:
    from avvp.evaluation.scores import Counts, Scores

POOLED_STREAMS = (*STREAMS, "event_at_av")


def f_percent(tp: int, fp: int, fn: int) -> float | None:
    """2TP / (2TP + FP + FN) in percent; None when there is nothing to score (no prediction, no
    ground truth), where any number would be a convention rather than a measurement."""
    denom = 2 * tp + fp + fn
    return 100.0 * 2 * tp / denom if denom > 0 else None


def class_totals(counts: Counts) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per stream (audio, visual, audio_visual, event_at_av = audio + visual): TP, FP, FN per class,
    (C,) each, summed over all videos: the counts behind every pooled F."""
    tp, fp, fn = (x.sum(1) for x in (counts.tp, counts.fp, counts.fn))  # (3, C)
    out = {s: (tp[i], fp[i], fn[i]) for i, s in enumerate(STREAMS)}
    out["event_at_av"] = (tp[0] + tp[1], fp[0] + fp[1], fn[0] + fn[1])
    return out


def _with_type_at_av(by_stream: dict[str, float | None]) -> dict[str, float | None]:
    """The five keys of a level, in the ten numbers' order: type_at_av is the mean of the three
    streams, None if one of them is (a mean over fewer streams would be another quantity)."""
    three = [by_stream[s] for s in STREAMS]
    type_at_av = None if None in three else mean(three)
    return {**{s: by_stream[s] for s in STREAMS}, "type_at_av": type_at_av, "event_at_av": by_stream["event_at_av"]}


def dataset_level(scores: Scores, classes: Sequence[str]) -> dict:
    """{level: {"micro": {...}, "macro": {...}}}, five keys each as in the ten numbers, percent.

    micro: F of TP, FP, FN summed over all videos and classes. macro: the mean of the defined
    per-class F of `scores.per_class(classes)` (counts summed over videos), so it can be read off
    the same metrics file. None where nothing was predicted or annotated in a stream.
    """
    n_classes = scores.segment.tp.shape[-1]
    if len(set(classes)) != n_classes:
        raise ValueError(f"{n_classes} distinct class names needed, got {len(classes)} ({len(set(classes))} distinct)")
    per_class = scores.per_class(classes)
    out = {}
    for level, counts in zip(LEVELS, (scores.segment, scores.event)):
        totals = class_totals(counts)
        micro = {s: f_percent(*(int(x.sum()) for x in totals[s])) for s in POOLED_STREAMS}
        defined = {s: [f for f in per_class[level][s].values() if f is not None] for s in POOLED_STREAMS}
        macro = {s: mean(fs) if fs else None for s, fs in defined.items()}
        out[level] = {"micro": _with_type_at_av(micro), "macro": _with_type_at_av(macro)}
    return out
