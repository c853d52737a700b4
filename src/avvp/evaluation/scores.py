"""The LLP evaluation (PROTOCOL §5), exact and vectorised over videos, classes and streams.

Training scores the validation split after every epoch, so nothing here loops over videos or
classes in Python. Each (stream, video, class) row of T <= 10 segment decisions is read as a T-bit
integer, and segment-level TP, FP, FN are bit counts of AND-ed rows. For the event level, each of
the T(T+1)/2 <= 55 possible intervals [s, e) gets one bit of a 64-bit word; a table over all 2^T
rows, built once, holds each row's maximal runs as such a word and the intervals that one of those
runs matches at IoU >= 0.5 as another. Matching all rows is then bitwise AND and bit counting:
a predicted run is a TP exactly when its bit is among the ground truth's matched intervals.
Streams are stacked in the order audio, visual, audio-visual.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avvp.evaluation.annotations import GroundTruth
from avvp.evaluation.dataset_scores import class_totals, dataset_level, f_percent
from avvp.evaluation.events import runs
from avvp.evaluation.protocols import BUILT_IN, Outputs, Protocol, decide, decisions
from avvp.base.protocol import LEVELS, STREAMS

MAX_SEGMENTS = 10  # the 55 intervals of a 10-segment row fit in one 64-bit word


def segment_decisions(
    global_prob: np.ndarray,
    frame_prob: np.ndarray,
    frame_threshold: float = 0.5,
    global_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """The seed's rule (N, C, T) bool: frame prob >= t_f AND global prob >= t_g (`protocols` has the others)."""
    present = np.asarray(global_prob) >= global_threshold
    return decisions(frame_prob, present, present, (frame_threshold, frame_threshold))


@dataclass(frozen=True)
class Counts:
    """TP, FP, FN of one level, each (S, N, C) int64: stream x video x class.

    The streams are audio, visual, audio-visual (S = 3), or their Event@AV sum (S = 1).
    """

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    def event_at_av(self) -> Counts:
        """Audio and visual counts summed per video and class, (1, N, C) (the Event@AV stream)."""
        return Counts(self.tp[:2].sum(0, keepdims=True), self.fp[:2].sum(0, keepdims=True),
                      self.fn[:2].sum(0, keepdims=True))


def _row_codes(mask: np.ndarray) -> np.ndarray:
    """(..., T) bool -> (...) int64, bit t set where segment t is 1."""
    return mask.astype(np.int64) @ (1 << np.arange(mask.shape[-1], dtype=np.int64))


def _intervals(n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of interval [s, e) in a (T+1, T+1) lookup, and the (K, K) bool "IoU >= 0.5" matrix."""
    start, stop = np.triu_indices(n_segments + 1, k=1)  # all 0 <= s < e <= T
    lookup = np.full((n_segments + 1, n_segments + 1), -1, np.int64)
    lookup[start, stop] = np.arange(len(start))
    inter = np.clip(np.minimum(stop[:, None], stop) - np.maximum(start[:, None], start), 0, None)
    union = (stop - start)[:, None] + (stop - start) - inter
    return lookup, 2 * inter >= union  # intersection >= 0.5 x union, in integers


@lru_cache(maxsize=MAX_SEGMENTS)
def _run_words(n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """For every row code (2^T,) uint64: the set of its maximal runs, and of the intervals matched
    at IoU >= 0.5 by one of its runs, as bit sets over interval indices."""
    codes = np.arange(2**n_segments)
    masks = ((codes[:, None] >> np.arange(n_segments)) & 1).astype(bool)  # (2^T, T)
    lookup, match = _intervals(n_segments)
    bit = np.left_shift(np.uint64(1), np.arange(len(match), dtype=np.uint64))
    matched_by = np.bitwise_or.reduce(np.where(match, bit, np.uint64(0)), axis=1)  # (K,)
    row, start, stop = runs(masks)
    interval = lookup[start, stop]
    run_word = np.zeros(len(codes), np.uint64)
    hit_word = np.zeros(len(codes), np.uint64)
    np.bitwise_or.at(run_word, row, bit[interval])
    np.bitwise_or.at(hit_word, row, matched_by[interval])
    return run_word, hit_word


def _level_counts(pred: np.ndarray, gt: np.ndarray, n_segments: int) -> tuple[Counts, Counts]:
    """Segment- and event-level counts from row codes of decisions and ground truth, same shape.

    Segment level counts segments. Event level: a predicted run is a TP when some ground-truth run
    of the same row has IoU >= 0.5, else a FP; a ground-truth run with no such predicted run is a FN.
    """
    segment = Counts(_n_bits(pred & gt), _n_bits(pred & ~gt), _n_bits(~pred & gt))
    run_word, hit_word = _run_words(n_segments)
    tp = _n_bits(run_word[pred] & hit_word[gt])
    event = Counts(tp, _n_bits(run_word[pred]) - tp, _n_bits(run_word[gt] & ~hit_word[pred]))
    return segment, event


def _n_bits(words: np.ndarray) -> np.ndarray:
    return np.bitwise_count(words).astype(np.int64)


def video_f(counts: Counts) -> np.ndarray:
    """Per-video F, (S, N): mean over the classes with TP+FP > 0 or TP+FN > 0, 1.0 when none is."""
    denom = 2 * counts.tp + counts.fp + counts.fn
    kept = denom > 0
    f_class = np.divide(2.0 * counts.tp, denom, out=np.zeros(denom.shape), where=kept)
    n_kept = kept.sum(-1)
    return np.where(n_kept > 0, f_class.sum(-1) / np.maximum(n_kept, 1), 1.0)


def _summary(counts: Counts) -> dict[str, float]:
    """The five numbers of one level, in percent."""
    per_stream = 100.0 * video_f(counts).mean(-1)
    out = dict(zip(STREAMS, per_stream.tolist()))
    out["type_at_av"] = float(np.mean(per_stream))
    out["event_at_av"] = float(100.0 * video_f(counts.event_at_av()).mean())
    return out


def _class_f(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, classes: Sequence[str]) -> dict:
    return {c: f_percent(t, p, n) for c, t, p, n in zip(classes, tp.tolist(), fp.tolist(), fn.tolist())}


@dataclass(frozen=True)
class Scores:
    """Counts of both levels for N videos; the ten numbers and per-class F derive from them."""

    segment: Counts
    event: Counts

    @property
    def n_videos(self) -> int:
        return int(self.segment.tp.shape[1])

    def ten_numbers(self) -> dict[str, dict[str, float]]:
        """{"segment_level": {...}, "event_level": {...}}, five keys each, percent, averaged over videos."""
        return {"segment_level": _summary(self.segment), "event_level": _summary(self.event)}

    def per_class(self, classes: Sequence[str]) -> dict:
        """Per level, stream and class: F in percent from TP, FP, FN summed over ALL videos.

        This is a corpus-level F per class (not the per-video average of the ten numbers); streams
        are audio, visual, audio_visual and event_at_av (audio + visual counts); None where the
        class has neither predictions nor ground truth.
        """
        return {level: {s: _class_f(*totals, classes) for s, totals in class_totals(counts).items()}
                for level, counts in zip(LEVELS, (self.segment, self.event))}


def score(pred_a: np.ndarray, pred_v: np.ndarray, gt_a: np.ndarray, gt_v: np.ndarray) -> Scores:
    """Score (N, C, T) bool decisions against (N, C, T) bool ground truth, T <= 10."""
    arrays = [np.asarray(x, dtype=bool) for x in (pred_a, pred_v, gt_a, gt_v)]
    if len({x.shape for x in arrays}) != 1 or arrays[0].ndim != 3:
        shapes = [x.shape for x in arrays]
        raise ValueError(f"decisions and ground truth must share one (N, C, T) shape, got {shapes}")
    n_segments = arrays[0].shape[-1]
    if not 1 <= n_segments <= MAX_SEGMENTS:
        raise ValueError(f"evaluation handles 1 to {MAX_SEGMENTS} segments per video, got {n_segments}")
    pa, pv, ga, gv = (_row_codes(x) for x in arrays)
    # Audio-visual rows are the bitwise AND of the audio and visual rows.
    return Scores(*_level_counts(np.stack([pa, pv, pa & pv]), np.stack([ga, gv, ga & gv]), n_segments))


def evaluate_arrays(
    global_prob: np.ndarray,
    frame_prob: np.ndarray,
    gt: GroundTruth,
    frame_threshold: float = 0.5,
    global_threshold: float = 0.5,
    classes: Sequence[str] | None = None,
) -> dict:
    """`evaluate_outputs` under the seed's rule at the given thresholds (training's validation)."""
    rule = BUILT_IN["avvp"].with_parts(frame_threshold=(frame_threshold,) * 2, gate_threshold=(global_threshold,) * 2)
    return evaluate_outputs(Outputs(global_prob, frame_prob), gt, rule, classes=classes)


def evaluate_outputs(
    outputs: Outputs,
    gt: GroundTruth,
    protocol: Protocol = BUILT_IN["avvp"],
    thresholds: Mapping[str, Sequence[float]] | None = None,
    classes: Sequence[str] | None = None,
) -> dict:
    """The metrics.json body for N videos under `protocol`: ten numbers, n_videos, per-class F,
    dataset-level F (a second opinion, not the published metric), annotation warnings and the
    protocol's definition (with its calibrated thresholds, if any).

    `gt` must hold the same N videos in the same order; `classes` names the per-class keys (class
    indices as strings when not given).
    """
    n, c = np.shape(outputs.global_prob)
    if n == 0:
        raise ValueError("no videos to score")
    if gt.audio.shape[:2] != (n, c) or gt.visual.shape != gt.audio.shape:
        raise ValueError(f"ground truth {gt.audio.shape}/{gt.visual.shape} does not match "
                         f"predictions for {n} videos x {c} classes")
    if np.shape(outputs.frame_prob)[-1] != c or np.shape(outputs.frame_prob)[:2] != (n, gt.audio.shape[2]):
        expected = (n, gt.audio.shape[2], 2, c)
        raise ValueError(f"frame_prob has shape {np.shape(outputs.frame_prob)}, expected {expected}")
    names = list(classes) if classes is not None else [str(i) for i in range(c)]
    if len(names) != c:
        raise ValueError(f"{len(names)} class names for {c} classes")
    pred_a, pred_v = decide(protocol, outputs, thresholds)
    scores = score(pred_a, pred_v, gt.audio, gt.visual)
    rule = protocol.describe()
    if protocol.calibrated:
        rule["calibrated_thresholds"] = {m: dict(zip(names, map(float, thresholds[m]))) for m in protocol.calibrated}
    return {
        **scores.ten_numbers(),
        "n_videos": scores.n_videos,
        "per_class": scores.per_class(names),
        "dataset_level": dataset_level(scores, names),
        "annotation_warnings": gt.report.as_dict(),
        "protocol": rule,
    }


def align_predictions(
    video_ids: Sequence[str], filenames: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Match predictions to a split: predicted videos must be split videos (a subset is allowed).

    Returns (prediction rows, split rows) of the scored videos in the split's order, and the split
    filenames without a prediction (unavailable videos), so a missing clip lowers `n_videos` instead
    of silently scoring as an empty prediction.
    """
    split_row = {f: i for i, f in enumerate(filenames)}
    foreign = [v for v in video_ids if v not in split_row]
    if foreign:
        raise ValueError(f"{len(foreign)} predicted video(s) are not in the split, e.g. {foreign[:3]}")
    pred_row = {v: i for i, v in enumerate(video_ids)}
    split_rows = np.array(sorted(split_row[v] for v in video_ids), dtype=np.int64)
    pred_rows = np.array([pred_row[filenames[i]] for i in split_rows], dtype=np.int64)
    unscored = [f for f in filenames if f not in pred_row]
    return pred_rows, split_rows, unscored
