"""`calibrate_thresholds` equals CMPAE's released `--mode select_thresholds`, transcribed below.

The transcription is the released code with the two forward passes replaced by the given (already
mixed) probabilities and the annotation tables by ground-truth arrays: it scores the whole split with
its own copy of the released per-video metric code for every (class, grid value) pair. The other
modalities and objectives, which the released code does not have, are checked against a brute force
that re-scores every candidate with `score()` and compares objectives as exact fractions.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from avvp.base.protocol import LEVELS, MODALITIES, STREAMS
from avvp.evaluation.calibration import CMPAE_GRID, calibrate_thresholds
from avvp.evaluation.scores import Counts, score

T = 10

# ---------------------------------------------------------------------------------------------
# CMPAE, utils/eval_metrics.py (MengyuanChen21/CVPR2023-CMPAE), transcribed as released except that
# the class count 25 is the arrays' (the released code hard-codes 25 in event_level).


def to_vec(start, end):
    x = np.zeros(10)
    for i in range(start, end):
        x[i] = 1
    return x


def extract_event(seq, n):
    x = []
    i = 0
    while i < 10:
        if seq[i] == 1:
            start = i
            if i + 1 == 10:
                i = i + 1
                end = i
                x.append(to_vec(start, end))
                break

            for j in range(i + 1, 10):
                if seq[j] != 1:
                    i = j + 1
                    end = j
                    x.append(to_vec(start, end))
                    break
                else:
                    i = j + 1
                    if i == 10:
                        end = i
                        x.append(to_vec(start, end))
                        break
        else:
            i += 1
    return x


def event_wise_metric(event_p, event_gt):
    TP = 0
    FP = 0
    FN = 0

    if event_p is not None:
        num_event = len(event_p)
        for i in range(num_event):
            x1 = event_p[i]
            if event_gt is not None:
                nn = len(event_gt)
                flag = True
                for j in range(nn):
                    x2 = event_gt[j]
                    if np.sum(x1 * x2) >= 0.5 * np.sum(x1 + x2 - x1 * x2):
                        TP += 1
                        flag = False
                        break
                if flag:
                    FP += 1
            else:
                FP += 1

    if event_gt is not None:
        num_event = len(event_gt)
        for i in range(num_event):
            x1 = event_gt[i]
            if event_p is not None:
                nn = len(event_p)
                flag = True
                for j in range(nn):
                    x2 = event_p[j]
                    if np.sum(x1 * x2) >= 0.5 * np.sum(x1 + x2 - x1 * x2):
                        flag = False
                        break
                if flag:
                    FN += 1
            else:
                FN += 1
    return TP, FP, FN


def f_of_kept(TP, FP, FN):
    """The released code repeats this block for each stream; one copy serves them all here."""
    F = []
    for ii in range(len(FP)):
        if (TP + FP)[ii] != 0 or (TP + FN)[ii] != 0:
            F.append(2 * TP[ii] / (2 * TP[ii] + (FN + FP)[ii]))
    if len(F) == 0:
        return 1.0
    return sum(F) / len(F)


def event_level(SO_a, SO_v, SO_av, GT_a, GT_v, GT_av):
    N = len(SO_a)  # released: N = 25, and every list and array below sized 25
    event_p_a = [None for n in range(N)]
    event_gt_a = [None for n in range(N)]
    event_p_v = [None for n in range(N)]
    event_gt_v = [None for n in range(N)]
    event_p_av = [None for n in range(N)]
    event_gt_av = [None for n in range(N)]
    TP_a, TP_v, TP_av = np.zeros(N), np.zeros(N), np.zeros(N)
    FP_a, FP_v, FP_av = np.zeros(N), np.zeros(N), np.zeros(N)
    FN_a, FN_v, FN_av = np.zeros(N), np.zeros(N), np.zeros(N)

    for n in range(N):
        seq_pred = SO_a[n, :]
        if np.sum(seq_pred) != 0:
            event_p_a[n] = extract_event(seq_pred, n)
        seq_gt = GT_a[n, :]
        if np.sum(seq_gt) != 0:
            event_gt_a[n] = extract_event(seq_gt, n)

        seq_pred = SO_v[n, :]
        if np.sum(seq_pred) != 0:
            event_p_v[n] = extract_event(seq_pred, n)
        seq_gt = GT_v[n, :]
        if np.sum(seq_gt) != 0:
            event_gt_v[n] = extract_event(seq_gt, n)

        seq_pred = SO_av[n, :]
        if np.sum(seq_pred) != 0:
            event_p_av[n] = extract_event(seq_pred, n)
        seq_gt = GT_av[n, :]
        if np.sum(seq_gt) != 0:
            event_gt_av[n] = extract_event(seq_gt, n)

        tp, fp, fn = event_wise_metric(event_p_a[n], event_gt_a[n])
        TP_a[n] += tp
        FP_a[n] += fp
        FN_a[n] += fn

        tp, fp, fn = event_wise_metric(event_p_v[n], event_gt_v[n])
        TP_v[n] += tp
        FP_v[n] += fp
        FN_v[n] += fn

        tp, fp, fn = event_wise_metric(event_p_av[n], event_gt_av[n])
        TP_av[n] += tp
        FP_av[n] += fp
        FN_av[n] += fn

    TP = TP_a + TP_v
    FN = FN_a + FN_v
    FP = FP_a + FP_v
    return (f_of_kept(TP_a, FP_a, FN_a), f_of_kept(TP_v, FP_v, FN_v), f_of_kept(TP, FP, FN),
            f_of_kept(TP_av, FP_av, FN_av))


def segment_level(SO_a, SO_v, SO_av, GT_a, GT_v, GT_av):
    TP_a = np.sum(SO_a * GT_a, axis=1)
    FN_a = np.sum((1 - SO_a) * GT_a, axis=1)
    FP_a = np.sum(SO_a * (1 - GT_a), axis=1)

    TP_v = np.sum(SO_v * GT_v, axis=1)
    FN_v = np.sum((1 - SO_v) * GT_v, axis=1)
    FP_v = np.sum(SO_v * (1 - GT_v), axis=1)

    TP = TP_a + TP_v
    FN = FN_a + FN_v
    FP = FP_a + FP_v

    TP_av = np.sum(SO_av * GT_av, axis=1)
    FN_av = np.sum((1 - SO_av) * GT_av, axis=1)
    FP_av = np.sum(SO_av * (1 - GT_av), axis=1)
    return (f_of_kept(TP_a, FP_a, FN_a), f_of_kept(TP_v, FP_v, FN_v), f_of_kept(TP, FP, FN),
            f_of_kept(TP_av, FP_av, FN_av))


def print_overall_metric(F_seg_a, F_seg_v, F_seg, F_seg_av, F_event_a, F_event_v, F_event, F_event_av):
    audio_segment_level = 100 * np.mean(np.array(F_seg_a))
    visual_segment_level = 100 * np.mean(np.array(F_seg_v))
    av_segment_level = 100 * np.mean(np.array(F_seg_av))
    avg_type_seg = (100 * np.mean(np.array(F_seg_av)) +
                    100 * np.mean(np.array(F_seg_a)) +
                    100 * np.mean(np.array(F_seg_v))) / 3.
    avg_event_seg = 100 * np.mean(np.array(F_seg))
    audio_event_level = 100 * np.mean(np.array(F_event_a))
    visual_event_level = 100 * np.mean(np.array(F_event_v))
    av_event_level = 100 * np.mean(np.array(F_event_av))
    avg_type_eve = (100 * np.mean(np.array(F_event_av)) +
                    100 * np.mean(np.array(F_event_a)) +
                    100 * np.mean(np.array(F_event_v))) / 3.
    avg_event_eve = 100 * np.mean(np.array(F_event))
    return audio_segment_level, visual_segment_level, av_segment_level, avg_type_seg, avg_event_seg, \
        audio_event_level, visual_event_level, av_event_level, avg_type_eve, avg_event_eve


# ---------------------------------------------------------------------------------------------
# CMPAE, main.py: eval() (lines 181-291) and main()'s select_thresholds branch (lines 397-423).


def released_eval(a_prob, v_prob, frame_prob, gt_a, gt_v, v_thres=0.4, target_class=None):
    """eval() in select_thresholds mode: video batch_idx's probabilities stand for the model's
    mixed outputs (lines 205-210), its ground-truth arrays for GT_a, GT_v (lines 235-265)."""
    n_classes = a_prob.shape[1]
    F_seg_a, F_seg_v, F_seg, F_seg_av = [], [], [], []
    F_event_a, F_event_v, F_event, F_event_av = [], [], [], []
    for batch_idx in range(len(a_prob)):
        v_thres_list = np.full((1, n_classes), 0.45)
        v_thres_list[0, target_class] = v_thres

        oa = (a_prob[batch_idx:batch_idx + 1] >= 0.45).astype(np.int_)
        ov = (v_prob[batch_idx:batch_idx + 1] >= v_thres_list).astype(np.int_)

        Pa = frame_prob[batch_idx, :, 0, :]
        Pv = frame_prob[batch_idx, :, 1, :]

        Pa = (Pa >= 0.25).astype(np.int_) * np.repeat(oa, repeats=10, axis=0)
        Pv = (Pv >= 0.25).astype(np.int_) * np.repeat(ov, repeats=10, axis=0)

        GT_a = gt_a[batch_idx].astype(np.float64)
        GT_v = gt_v[batch_idx].astype(np.float64)
        GT_av = GT_a * GT_v

        SO_a = np.transpose(Pa)
        SO_v = np.transpose(Pv)
        SO_av = SO_a * SO_v

        f_a, f_v, f, f_av = segment_level(SO_a, SO_v, SO_av, GT_a, GT_v, GT_av)
        F_seg_a.append(f_a)
        F_seg_v.append(f_v)
        F_seg.append(f)
        F_seg_av.append(f_av)

        f_a, f_v, f, f_av = event_level(SO_a, SO_v, SO_av, GT_a, GT_v, GT_av)
        F_event_a.append(f_a)
        F_event_v.append(f_v)
        F_event.append(f)
        F_event_av.append(f_av)
    return print_overall_metric(F_seg_a, F_seg_v, F_seg, F_seg_av, F_event_a, F_event_v, F_event, F_event_av)


def released_select_thresholds(a_prob, v_prob, frame_prob, gt_a, gt_v, classes=None) -> np.ndarray:
    """train.sh runs five processes (--start_class 0, 5, ..., 20), each over
    range(start_class, start_class + 5): every class once, each on its own; write_excel's cell is
    an array entry here."""
    thres_candi = [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
    excel = np.zeros(a_prob.shape[1])
    for target_class in (range(a_prob.shape[1]) if classes is None else classes):
        best_select_metric = 0
        best_v_thres = 0
        for i, v_thres in enumerate(thres_candi):
            audio_seg, visual_seg, av_seg, avg_type_seg, avg_event_seg, \
                audio_eve, visual_eve, av_eve, avg_type_eve, avg_event_eve \
                = released_eval(a_prob, v_prob, frame_prob, gt_a, gt_v, v_thres=v_thres, target_class=target_class)

            select_metric = visual_eve

            if select_metric >= best_select_metric:
                best_select_metric = select_metric
                best_v_thres = v_thres

        excel[target_class] = best_v_thres
    return excel


# ---------------------------------------------------------------------------------------------
# Inputs.


def random_split(seed: int, n: int = 40, c: int = 6) -> tuple[np.ndarray, ...]:
    """float32 probabilities as the released networks give them, a quarter of the gates exactly on
    a grid value (float32, as they would arrive), frames often exactly 0.25; ground truth of 0-2 runs."""
    rng = np.random.default_rng(seed)
    a_prob = rng.uniform(0.2, 0.8, (n, c)).astype(np.float32)
    v_prob = rng.uniform(0.2, 0.8, (n, c)).astype(np.float32)
    on_grid = rng.random((n, c)) < 0.25
    v_prob[on_grid] = rng.choice(np.array(CMPAE_GRID, dtype=np.float32), on_grid.sum())
    frame_prob = rng.uniform(0.0, 0.6, (n, T, 2, c)).astype(np.float32)
    frame_prob[rng.random(frame_prob.shape) < 0.05] = np.float32(0.25)
    gt_a, gt_v = np.zeros((2, n, c, T), dtype=bool)
    for gt in (gt_a, gt_v):
        for i, j in zip(*np.nonzero(rng.random((n, c)) < 0.3)):
            for _ in range(rng.integers(1, 3)):
                start = rng.integers(0, T)
                gt[i, j, start:rng.integers(start + 1, T + 1)] = True
    # Predictions lean towards the ground truth so that thresholds matter.
    frame_prob += 0.3 * np.stack([gt_a, gt_v], axis=2).transpose(0, 3, 2, 1).astype(np.float32)
    return a_prob, v_prob, frame_prob, gt_a, gt_v


def exact_choice(a_prob, v_prob, frame_prob, gt_a, gt_v, *, modality, objective, grid, default, fixed_gate,
                 frame_threshold=0.25, strict=False) -> np.ndarray:
    """Per class, every grid value scored in full by `score()`, objectives compared as fractions;
    the last value reaching the best wins."""
    level, key = objective
    m = MODALITIES.index(modality)
    probs = [np.asarray(p, np.float64) for p in (a_prob, v_prob)]
    frames = np.asarray(frame_prob, np.float64).transpose(2, 0, 3, 1)
    cmp = np.greater if strict else np.greater_equal
    n, c = probs[0].shape
    out = np.zeros(c)
    for target in range(c):
        best = None
        for g in grid:
            gates = [np.broadcast_to(np.asarray(fixed_gate, np.float64), (c,)).copy() for _ in range(2)]
            gates[m] = np.broadcast_to(np.asarray(default, np.float64), (c,)).copy()
            gates[m][target] = g
            preds = [cmp(frames[i], frame_threshold) & cmp(probs[i], gates[i])[:, :, None] for i in range(2)]
            scores = score(*preds, gt_a, gt_v)
            counts = scores.segment if level == LEVELS[0] else scores.event
            streams = ([counts.event_at_av()] if key == "event_at_av" else
                       [counts] if key == "type_at_av" else
                       [Counts(*(x[STREAMS.index(key)][None] for x in (counts.tp, counts.fp, counts.fn)))])
            value = Fraction(0)
            for s in streams:
                for tp, fp, fn in zip(s.tp.reshape(-1, c), s.fp.reshape(-1, c), s.fn.reshape(-1, c)):
                    kept = [Fraction(2 * a, 2 * a + b + d) for a, b, d in zip(tp, fp, fn) if 2 * a + b + d > 0]
                    value += sum(kept) / len(kept) if kept else Fraction(1)
            if best is None or value >= best:
                best, out[target] = value, g
    return out


# ---------------------------------------------------------------------------------------------
# Tests.


@pytest.mark.parametrize("seed", range(4))
def test_equals_the_released_procedure(seed: int) -> None:
    split = random_split(seed)
    expected = released_select_thresholds(*split)
    assert len(set(expected)) > 2, "a split on which the choice is trivial tests little"
    np.testing.assert_array_equal(calibrate_thresholds(*split), expected)


def test_ties_go_to_the_last_grid_value_and_a_class_without_ground_truth_is_gated_off() -> None:
    n, c = 4, 3
    a_prob = np.full((n, c), 0.9, np.float32)
    v_prob = np.full((n, c), 0.5)  # float64: 0.3 is then exactly the grid value
    frame_prob = np.zeros((n, T, 2, c), np.float32)
    gt_a, gt_v = np.zeros((2, n, c, T), dtype=bool)
    # Class 0: one video, correct at a gate of at most 0.3 (its v_prob 0.3 passes 0.3 itself), lost
    # above: 0.25 and 0.3 tie, 0.3 wins.
    v_prob[0, 0] = 0.3
    frame_prob[0, :5, 1, 0] = 0.9
    gt_v[0, 0, :5] = True
    # Class 1: no ground truth, predicted in every video at v_prob 0.5: any gate above 0.5 is best.
    frame_prob[:, :, 1, 1] = 0.9
    # Class 2: never predicted (frames below 0.25), no ground truth: every value ties.
    frame_prob[:, :, 1, 2] = 0.2
    split = (a_prob, v_prob, frame_prob, gt_a, gt_v)
    np.testing.assert_array_equal(released_select_thresholds(*split), [0.3, 0.7, 0.7])
    np.testing.assert_array_equal(calibrate_thresholds(*split), [0.3, 0.7, 0.7])
    # Strict comparisons: v_prob 0.3 no longer passes 0.3, so only 0.25 keeps class 0.
    np.testing.assert_array_equal(calibrate_thresholds(*split, strict=True), [0.25, 0.7, 0.7])
    # The last value in grid order, not the largest: a grid given in descending order.
    np.testing.assert_array_equal(calibrate_thresholds(*split, grid=CMPAE_GRID[::-1]), [0.25, 0.55, 0.25])


@pytest.mark.parametrize("modality, objective", [
    ("audio", None),
    ("visual", ("segment_level", "visual")),
    ("visual", ("event_level", "audio_visual")),
    ("audio", ("segment_level", "type_at_av")),
    ("visual", ("event_level", "event_at_av")),
])
def test_other_modalities_and_objectives_equal_a_brute_force(modality: str, objective) -> None:
    split = random_split(7, n=30, c=5)
    rng = np.random.default_rng(1)
    default, fixed_gate = rng.choice(CMPAE_GRID, 5), rng.choice(CMPAE_GRID, 5)
    grid = (0.3, 0.4, 0.5, 0.6)
    ours = calibrate_thresholds(*split, modality=modality, objective=objective, grid=grid, default=default,
                                fixed_gate=fixed_gate, frame_threshold=0.3)
    expected = exact_choice(*split, modality=modality, objective=objective or ("event_level", modality),
                            grid=grid, default=default, fixed_gate=fixed_gate, frame_threshold=0.3)
    np.testing.assert_array_equal(ours, expected)


def test_both_modalities_stack_audio_then_visual() -> None:
    split = random_split(3, n=20, c=4)
    both = calibrate_thresholds(*split, modality="both")
    assert both.shape == (2, 4)
    np.testing.assert_array_equal(both[0], calibrate_thresholds(*split, modality="audio"))
    np.testing.assert_array_equal(both[1], calibrate_thresholds(*split, modality="visual"))


@pytest.mark.parametrize("change, message", [
    (dict(a_prob=np.zeros((3, 4))), "expected a_prob"),
    (dict(gt_v=np.zeros((5, 4, 9), bool)), "expected a_prob"),
    (dict(modality="speech"), "modality"),
    (dict(objective=("event_level", "loudness")), "objective"),
    (dict(grid=()), "grid"),
    (dict(default=np.zeros(3)), "broadcast"),
])
def test_rejects_malformed_input(change: dict, message: str) -> None:
    a_prob, v_prob, frame_prob, gt_a, gt_v = random_split(0, n=5, c=4)
    args = dict(a_prob=a_prob, v_prob=v_prob, frame_prob=frame_prob, gt_a=gt_a, gt_v=gt_v) | change
    arrays = [args.pop(k) for k in ("a_prob", "v_prob", "frame_prob", "gt_a", "gt_v")]
    with pytest.raises(ValueError, match=message):
        calibrate_thresholds(*arrays, **args)
