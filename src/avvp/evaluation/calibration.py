"""Per-class gate thresholds chosen on the validation split, for any method's final probabilities.

CMPAE (CVPR 2023) gates each class's visual segments with its own threshold, found by
`--mode select_thresholds`: for every class in turn, each value of a grid is tried while every other
class keeps the default 0.45, the validation split is scored, and the value with the best event-level
visual F wins (ties to the last grid value, which is the largest). The released code re-runs its
networks and per-video metric loops for every (class, value) pair. Here only the tried class's
column differs from the default decisions, and a video's F is the mean of per-class F-scores, so the
default decisions are scored once and every (class, value) column is scored once, all in one call of
the vectorised evaluator: a video's objective is the rest of its classes (fixed) plus that column.
The choice per class is the released one; it is independent of the other classes' choices.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike

from avvp.base.protocol import LEVELS, MODALITIES, SCORES, STREAMS
from avvp.evaluation.protocols import CALIBRATED, Outputs, Protocol
from avvp.evaluation.scores import Counts, Scores, score

if TYPE_CHECKING:
    from avvp.evaluation.annotations import GroundTruth

# CMPAE's grid (main.py, `thres_candi`), its default gate and frame threshold.
CMPAE_GRID = (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
CMPAE_DEFAULT = 0.45
CMPAE_FRAME_THRESHOLD = 0.25
# Objectives closer than this (percentage points) are equal: mathematically equal values summed in
# another order must not split a tie by rounding (errors ~1e-13); distinct values differ by far more.
TIE_TOLERANCE = 1e-9


def calibrate_thresholds(
    a_prob: ArrayLike,
    v_prob: ArrayLike,
    frame_prob: ArrayLike,
    gt_a: ArrayLike,
    gt_v: ArrayLike,
    *,
    modality: Literal["audio", "visual", "both"] = "visual",
    objective: tuple[str, str] | None = None,
    grid: Sequence[float] = CMPAE_GRID,
    default: ArrayLike = CMPAE_DEFAULT,
    fixed_gate: ArrayLike = CMPAE_DEFAULT,
    frame_threshold: float = CMPAE_FRAME_THRESHOLD,
    strict: bool = False,
) -> np.ndarray:
    """Per-class gate thresholds of `modality` that maximise `objective` on these videos.

    The defaults reproduce CMPAE's `select_thresholds`. A segment of class c is predicted in a
    modality where its frame probability passes `frame_threshold` and the modality's video
    probability of c passes the gate; each class's gate is chosen on its own, with all other classes
    at `default` (not at their chosen values), as the released code does.

    a_prob, v_prob: (N, C) audio and visual video-level probabilities (the method's final ones,
        e.g. CMPAE's 0.7 x cross-modal-on + 0.3 x off mixture).
    frame_prob: (N, T, 2, C) segment probabilities, audio then visual on the third axis.
    gt_a, gt_v: (N, C, T) bool dense ground truth of the same videos, T <= 10.
    modality: whose gates are chosen; "both" chooses each modality's as a call for it alone would
        and returns them stacked (audio, visual).
    objective: (level, score), level one of `LEVELS`, score one of `SCORES` (a key of the ten
        numbers); None means the event level of the chosen modality's stream (CMPAE: the
        event-level visual F).
    grid: the values tried, in this order; a tie goes to the last value reaching the best score.
    default: gate(s) of the chosen modality's other classes while one class is tried, scalar or (C,).
    fixed_gate: gate(s) of the other modality, scalar or (C,) (CMPAE: audio 0.45); it only matters
        for objectives that read both modalities (audio_visual, type_at_av, event_at_av).
    frame_threshold: segment threshold of both modalities.
    strict: compare with `>` instead of `>=` (gates and frames alike).

    Returns float64 thresholds, (C,), or (2, C) for "both". Probabilities are compared in float64,
    as the released code compares its float32 visual probabilities with its float64 thresholds.
    """
    a_prob, v_prob = (np.asarray(p, dtype=np.float64) for p in (a_prob, v_prob))
    frame_prob = np.asarray(frame_prob, dtype=np.float64)
    gt_a, gt_v = (np.asarray(g, dtype=bool) for g in (gt_a, gt_v))
    n, c = v_prob.shape if v_prob.ndim == 2 else (0, 0)
    t = gt_a.shape[-1] if gt_a.ndim == 3 else 0
    shapes = (a_prob.shape, v_prob.shape, frame_prob.shape, gt_a.shape, gt_v.shape)
    if n == 0 or shapes != ((n, c), (n, c), (n, t, 2, c), (n, c, t), (n, c, t)):
        raise ValueError(f"expected a_prob, v_prob (N, C), frame_prob (N, T, 2, C), gt_a, gt_v (N, C, T) with "
                         f"N > 0; got {', '.join(map(str, shapes))}")
    values = np.asarray(grid, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"grid must be a non-empty sequence of thresholds, got {grid!r}")
    if modality == "both":
        return np.stack([calibrate_thresholds(a_prob, v_prob, frame_prob, gt_a, gt_v, modality=m, objective=objective,
                                              grid=grid, default=default, fixed_gate=fixed_gate,
                                              frame_threshold=frame_threshold, strict=strict)
                         for m in MODALITIES])
    if modality not in MODALITIES:
        raise ValueError(f"modality must be 'audio', 'visual' or 'both', got {modality!r}")
    level, key = objective if objective is not None else ("event_level", modality)
    if level not in LEVELS or key not in SCORES:
        raise ValueError(f"objective must be (one of {LEVELS}, one of {SCORES}), got {objective!r}")

    def passes(prob: np.ndarray, threshold: ArrayLike) -> np.ndarray:
        return prob > threshold if strict else prob >= threshold

    frames = passes(frame_prob, frame_threshold).transpose(2, 0, 3, 1)  # (modality, N, C, T)
    m = MODALITIES.index(modality)
    probs = (a_prob, v_prob)
    gates = [passes(p, _per_class(fixed_gate, c)) for p in probs]
    gates[m] = passes(probs[m], _per_class(default, c))
    base = [frames[i] & gates[i][:, :, None] for i in range(2)]
    f_base, kept_base = _class_f(_objective_counts(score(*base, gt_a, gt_v), level, key))  # (S, N, C)
    # Each video's sum of F and number of kept classes over the classes other than the tried one.
    others = ~np.eye(c, dtype=bool)[:, None, :]  # (C tried, 1, C)
    f_rest = np.where(others, f_base[:, None], 0.0).sum(-1)  # (S, C, N)
    kept_rest = (others & kept_base[:, None]).sum(-1)

    # Every (class, grid value) column at once, as (C, G, N) rows of one class and T segments.
    shape = (c, values.size, n, t)
    tried = frames[m].transpose(1, 0, 2)[:, None] & passes(probs[m].T[:, None, :, None], values[:, None, None])
    fixed = np.broadcast_to(base[1 - m].transpose(1, 0, 2)[:, None], shape)
    preds = [tried, fixed] if m == 0 else [fixed, tried]
    truth = [np.broadcast_to(g.transpose(1, 0, 2)[:, None], shape) for g in (gt_a, gt_v)]
    rows = [x.reshape(-1, 1, t) for x in (*preds, *truth)]
    f_col, kept_col = _class_f(_objective_counts(score(*rows), level, key))
    f_col, kept_col = (x.reshape(-1, c, values.size, n) for x in (f_col, kept_col))  # (S, C, G, N)

    n_kept = kept_rest[:, :, None] + kept_col
    video_f = np.where(n_kept > 0, (f_rest[:, :, None] + f_col) / np.maximum(n_kept, 1), 1.0)
    value = 100.0 * video_f.mean(-1).mean(0)  # (C, G): mean over videos, then over averaged streams
    near_best = value >= value.max(1, keepdims=True) - TIE_TOLERANCE
    last = values.size - 1 - np.argmax(near_best[:, ::-1], axis=1)
    return values[last]


def _objective_counts(scores: Scores, level: str, key: str) -> Counts:
    """The streams whose per-video F the objective averages: one stream, the three (Type@AV), or
    the audio + visual counts (Event@AV)."""
    counts = scores.segment if level == "segment_level" else scores.event
    if key == "event_at_av":
        return counts.event_at_av()
    if key == "type_at_av":
        return counts
    i = STREAMS.index(key)
    return Counts(counts.tp[i:i + 1], counts.fp[i:i + 1], counts.fn[i:i + 1])


def _per_class(threshold: ArrayLike, n_classes: int) -> np.ndarray:
    """A scalar or (C,) threshold as (C,) float64."""
    return np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n_classes,))


def _class_f(counts: Counts) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F and whether the class counts in its video's mean (as `video_f` keeps it)."""
    denom = 2 * counts.tp + counts.fp + counts.fn
    kept = denom > 0
    return np.divide(2.0 * counts.tp, denom, out=np.zeros(denom.shape), where=kept), kept


def protocol_thresholds(rule: Protocol, outputs: Outputs, gt: GroundTruth) -> dict[str, np.ndarray]:
    """Per-class gate thresholds of each calibrated modality of `rule`, chosen on these outputs
    (the validation split's) from the rule's calibration default, the other modality's gate at its
    fixed threshold (or the default where it is calibrated too)."""
    if rule.gate == "fused":  # one gate for both modalities: the fused probability stands in for each
        gate_probs = (outputs.global_prob, outputs.global_prob)
    elif outputs.a_prob is None or outputs.v_prob is None:
        raise ValueError("no a_prob / v_prob (written by an avvp before protocols: predict again)")
    else:
        gate_probs = (outputs.a_prob, outputs.v_prob)
    if rule.frame_threshold[0] != rule.frame_threshold[1]:
        raise ValueError(f"protocol {rule.name}: calibration takes one frame threshold for both modalities")
    thresholds = {}
    for modality in rule.calibrated:
        other = rule.gate_threshold[1 - MODALITIES.index(modality)]
        thresholds[modality] = calibrate_thresholds(
            *gate_probs, outputs.frame_prob, gt.audio, gt.visual, modality=modality, default=rule.calibration_default,
            fixed_gate=rule.calibration_default if other == CALIBRATED else other,
            frame_threshold=rule.frame_threshold[0], strict=rule.strict)
    return thresholds

