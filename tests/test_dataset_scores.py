"""Dataset-level F (avvp.evaluation.dataset_scores): a hand-worked case, then random cases against
scikit-learn (segment level) and against a plain loop over events (event level).

Segment level, micro: `f1_score(average="micro")` over the multilabel matrix whose rows are
(video, segment) cells and whose columns are classes. Macro: `f1_score(average="macro")` over the
same matrix with `labels` restricted to the classes that have a prediction or ground truth in that
stream. Event@AV stacks the audio and the visual rows, so each class sums both streams' counts.
Event level: events and IoU >= 0.5 matching from tests/reference_evaluation.py, which shares no
code with the evaluator.
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

import reference_evaluation as ref
from avvp.base.protocol import LEVELS, SCORES, STREAMS
from avvp.evaluation.annotations import AnnotationReport, GroundTruth
from avvp.evaluation.dataset_scores import class_totals, dataset_level
from avvp.evaluation.scores import evaluate_arrays, score

POOLED = (*STREAMS, "event_at_av")


def rows(text: str) -> list[int]:
    return [int(ch) for ch in text]


def hand_case() -> tuple[np.ndarray, ...]:
    """2 videos x 3 classes (dog, car, rain) x 6 segments; rain is empty everywhere."""
    pa, pv, ga, gv = (np.zeros((2, 3, 6), bool) for _ in range(4))
    dog, car = 0, 1
    ga[0, dog], pa[0, dog] = rows("111100"), rows("011110")  # seg TP 3 FP 1 FN 1; events IoU 3/5: TP
    gv[0, dog], pv[0, dog] = rows("110000"), rows("100000")  # seg TP 1 FN 1; events IoU 1/2: TP
    pa[0, car] = rows("000011")                               # seg FP 2; event FP
    ga[1, car] = rows("001111")                               # seg FN 4; event FN
    gv[1, car], pv[1, car] = rows("001111"), rows("110110")  # seg TP 2 FP 2 FN 2; events FP, TP
    return pa, pv, ga, gv


# Hand counts summed over videos, per class (dog, car, rain): (TP, FP, FN).
# Audio-visual: dog GT 110000 in video 0, prediction 011110 & 100000 = nothing; car GT 001111 in
# video 1, prediction nothing. Event@AV: audio + visual.
HAND_COUNTS = {
    "segment_level": {
        "audio": [(3, 1, 1), (0, 2, 4), (0, 0, 0)],
        "visual": [(1, 0, 1), (2, 2, 2), (0, 0, 0)],
        "audio_visual": [(0, 0, 2), (0, 0, 4), (0, 0, 0)],
        "event_at_av": [(4, 1, 2), (2, 4, 6), (0, 0, 0)],
    },
    "event_level": {
        "audio": [(1, 0, 0), (0, 1, 1), (0, 0, 0)],
        "visual": [(1, 0, 0), (1, 1, 0), (0, 0, 0)],
        "audio_visual": [(0, 0, 1), (0, 0, 1), (0, 0, 0)],
        "event_at_av": [(2, 0, 0), (1, 2, 1), (0, 0, 0)],
    },
}

# F = 200 TP / (2TP + FP + FN). micro pools the classes' counts; macro averages dog and car (rain
# has no prediction and no ground truth, so it is left out, not scored 0 or 100).
HAND_F = {
    "segment_level": {
        "micro": {"audio": 600 / 14,              # TP 3 FP 3 FN 5
                  "visual": 600 / 11,             # TP 3 FP 2 FN 3
                  "audio_visual": 0.0,            # TP 0 FP 0 FN 6
                  "event_at_av": 1200 / 25},      # TP 6 FP 5 FN 8
        "macro": {"audio": (600 / 8 + 0.0) / 2,
                  "visual": (200 / 3 + 400 / 8) / 2,
                  "audio_visual": 0.0,
                  "event_at_av": (800 / 11 + 400 / 14) / 2},
    },
    "event_level": {
        "micro": {"audio": 200 / 4,               # TP 1 FP 1 FN 1
                  "visual": 400 / 5,              # TP 2 FP 1 FN 0
                  "audio_visual": 0.0,            # TP 0 FP 0 FN 2
                  "event_at_av": 600 / 9},        # TP 3 FP 2 FN 1
        "macro": {"audio": (100.0 + 0.0) / 2,
                  "visual": (100.0 + 200 / 3) / 2,
                  "audio_visual": 0.0,
                  "event_at_av": (100.0 + 200 / 5) / 2},
    },
}
CLASSES = ["dog", "car", "rain"]


def test_hand_worked_counts_and_scores() -> None:
    scores = score(*hand_case())
    for level, counts in zip(LEVELS, (scores.segment, scores.event)):
        totals = class_totals(counts)
        for stream, expected in HAND_COUNTS[level].items():
            got = list(zip(*(t.tolist() for t in totals[stream])))
            assert got == expected, (level, stream)
    result = dataset_level(scores, CLASSES)
    assert list(result) == list(LEVELS)
    for level in LEVELS:
        assert list(result[level]) == ["micro", "macro"]
        for kind in ("micro", "macro"):
            expected = HAND_F[level][kind]
            got = result[level][kind]
            assert list(got) == list(SCORES)
            for stream in POOLED:
                assert got[stream] == pytest.approx(expected[stream], abs=1e-12), (level, kind, stream)
            three = [expected[s] for s in STREAMS]
            assert got["type_at_av"] == pytest.approx(sum(three) / 3, abs=1e-12), (level, kind)


def test_empty_denominators_give_none() -> None:
    empty = np.zeros((2, 3, 6), bool)
    result = dataset_level(score(empty, empty, empty, empty), CLASSES)
    assert all(v is None for level in LEVELS for kind in result[level].values() for v in kind.values())
    # Audio and visual events that never overlap: audio-visual has nothing to score, so Type@AV,
    # the mean of three streams, is undefined too; the other streams are measured.
    pa, pv, ga, gv = (np.zeros((1, 1, 4), bool) for _ in range(4))
    pa[0, 0], ga[0, 0], pv[0, 0], gv[0, 0] = rows("1100"), rows("1100"), rows("0011"), rows("0010")
    result = dataset_level(score(pa, pv, ga, gv), ["x"])
    for kind in ("micro", "macro"):
        seg = result["segment_level"][kind]
        assert seg["audio_visual"] is None and seg["type_at_av"] is None
        assert seg["audio"] == 100.0 and seg["visual"] == pytest.approx(200 / 3)
        assert seg["event_at_av"] == pytest.approx(600 / 7)  # TP 3 FP 1 FN 0


def test_needs_one_distinct_name_per_class() -> None:
    empty = np.zeros((1, 3, 6), bool)
    scores = score(empty, empty, empty, empty)
    for names in (["a", "b"], ["a", "b", "a"]):
        with pytest.raises(ValueError, match="3 distinct class names"):
            dataset_level(scores, names)


def _cells(mask: np.ndarray) -> np.ndarray:
    """(N, C, T) -> (N*T, C + 1) multilabel indicator: one row per video segment, one column per
    class, and an all-zero last column so that sklearn never reads one class as a binary target
    (whose "micro" average would count true negatives); an empty column adds no TP, FP or FN."""
    cells = mask.transpose(0, 2, 1).reshape(-1, mask.shape[1])
    return np.concatenate([cells, np.zeros((len(cells), 1), bool)], axis=1).astype(int)


def _sklearn_segment(pred: np.ndarray, gt: np.ndarray) -> dict[str, float | None]:
    """micro and macro F (percent) of one stream's cells; None where sklearn's denominators are 0."""
    y_pred, y_true = _cells(pred), _cells(gt)
    present = np.flatnonzero(y_pred.any(0) | y_true.any(0))
    micro = f1_score(y_true, y_pred, average="micro", zero_division=np.nan)
    macro = f1_score(y_true, y_pred, average="macro", labels=present, zero_division=np.nan) if len(present) else np.nan
    return {k: (None if np.isnan(v) else 100.0 * v) for k, v in (("micro", micro), ("macro", macro))}


def _loop_events(pred: np.ndarray, gt: np.ndarray) -> dict[str, float | None]:
    """micro and macro event-level F (percent) of (S, N, C, T) masks, S streams pooled per class,
    by scanning and matching every (stream, video, class) row in plain Python."""
    n_classes = pred.shape[2]
    tp, fp, fn = [0] * n_classes, [0] * n_classes, [0] * n_classes
    for s in range(pred.shape[0]):
        for i in range(pred.shape[1]):
            for c in range(n_classes):
                t, p, n = ref.match_events(ref.scan_events(list(pred[s, i, c].astype(int))),
                                           ref.scan_events(list(gt[s, i, c].astype(int))))
                tp[c], fp[c], fn[c] = tp[c] + t, fp[c] + p, fn[c] + n
    denom_all = 2 * sum(tp) + sum(fp) + sum(fn)
    micro = 100.0 * 2 * sum(tp) / denom_all if denom_all else None
    per_class = [100.0 * 2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) for c in range(n_classes) if 2 * tp[c] + fp[c] + fn[c]]
    return {"micro": micro, "macro": sum(per_class) / len(per_class) if per_class else None}


def _assert_close(got: float | None, expected: float | None, where: tuple) -> None:
    if expected is None:
        assert got is None, where
    else:
        assert got == pytest.approx(expected, abs=1e-9, rel=0), where


@pytest.mark.parametrize("seed", range(40))
def test_random_cases_match_sklearn_and_an_event_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c, t = int(rng.integers(1, 13)), int(rng.integers(1, 7)), int(rng.integers(1, 11))
    density = rng.choice([0.02, 0.15, 0.5, 0.8])
    pa, pv, ga, gv = (rng.random((n, c, t)) < density for _ in range(4))
    if seed % 5 == 0:  # some classes with neither prediction nor ground truth anywhere
        empty = rng.random(c) < 0.5
        for x in (pa, pv, ga, gv):
            x[:, empty] = False
    result = dataset_level(score(pa, pv, ga, gv), [f"c{k}" for k in range(c)])
    pred = {"audio": pa[None], "visual": pv[None], "audio_visual": (pa & pv)[None], "event_at_av": np.stack([pa, pv])}
    gt = {"audio": ga[None], "visual": gv[None], "audio_visual": (ga & gv)[None], "event_at_av": np.stack([ga, gv])}
    for stream in POOLED:
        segment = _sklearn_segment(np.concatenate(pred[stream], axis=2), np.concatenate(gt[stream], axis=2))
        event = _loop_events(pred[stream], gt[stream])
        for kind in ("micro", "macro"):
            _assert_close(result["segment_level"][kind][stream], segment[kind], (seed, "segment", kind, stream))
            _assert_close(result["event_level"][kind][stream], event[kind], (seed, "event", kind, stream))
    for level in LEVELS:
        for kind in ("micro", "macro"):
            three = [result[level][kind][s] for s in STREAMS]
            expected = None if None in three else sum(three) / 3
            _assert_close(result[level][kind]["type_at_av"], expected, (seed, level, kind, "type_at_av"))


def test_evaluate_arrays_reports_it_beside_the_ten_numbers() -> None:
    pa, pv, ga, gv = hand_case()
    frame_prob = np.stack([pa, pv], axis=-1).transpose(0, 2, 3, 1).astype(np.float32)  # (N, T, 2, C)
    metrics = evaluate_arrays(np.ones((2, 3), np.float32), frame_prob, GroundTruth(ga, gv, AnnotationReport()),
                              classes=CLASSES)
    assert metrics["dataset_level"] == dataset_level(score(pa, pv, ga, gv), CLASSES)
    assert set(metrics["segment_level"]) == set(SCORES)  # the published numbers keep their own keys
