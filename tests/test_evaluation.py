"""The vectorised evaluator equals a literal reading of PROTOCOL §5 (tests/reference_evaluation.py).

The reference itself is checked on hand-worked cases; then both are compared to 1e-9 on the real LLP
validation and test ground truth and on synthetic ground truths, with many kinds of predictions.
"""
from __future__ import annotations

import csv
import json
import os
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import reference_evaluation as ref
from avvp.evaluation.annotations import AnnotationReport, GroundTruth, ground_truth, read_classes, read_dense, read_weak
from avvp.cli import main
from avvp.evaluation.scores import align_predictions, evaluate_arrays, score, segment_decisions
from avvp.evaluation.events import EventRow, event_rows, runs, write_events
from avvp.model.predictions import Predictions, load_predictions, save_predictions
from avvp.base.protocol import LEVELS, SCORES

LLP = Path(__file__).resolve().parents[1] / "data" / "llp"
T = 10


# ---------------------------------------------------------------------------------------------
# Helpers: comparisons, prediction generators, synthetic ground truths.


def assert_matches_reference(metrics: dict, expected: dict) -> None:
    for level in LEVELS:
        assert set(metrics[level]) == set(SCORES)
        for key in SCORES:
            assert metrics[level][key] == pytest.approx(expected[level][key], abs=1e-9, rel=0), (level, key)
    assert metrics["n_videos"] == expected["n_videos"]
    for level in LEVELS:
        for stream, by_class in expected["per_class"][level].items():
            got = metrics["per_class"][level][stream]
            assert list(got) == list(by_class)
            for name, value in by_class.items():
                if value is None:
                    assert got[name] is None, (level, stream, name)
                else:
                    assert got[name] == pytest.approx(value, abs=1e-9, rel=0), (level, stream, name)


def check_against_reference(global_prob, frame_prob, gt_a, gt_v, classes, ft=0.5, gt_thr=0.5) -> dict:
    gt = GroundTruth(np.asarray(gt_a, bool), np.asarray(gt_v, bool), AnnotationReport())
    metrics = evaluate_arrays(global_prob, frame_prob, gt, ft, gt_thr, classes)
    expected = ref.reference_evaluate(global_prob, frame_prob, gt_a, gt_v, list(classes), ft, gt_thr)
    assert_matches_reference(metrics, expected)
    return metrics


def frames_from(gt_a: np.ndarray, gt_v: np.ndarray) -> np.ndarray:
    """(N, C, T) audio and visual masks -> (N, T, 2, C) float32 layout of frame_prob."""
    return np.stack([gt_a, gt_v], axis=2).transpose(0, 3, 2, 1).astype(np.float32)


def make_predictions(kind: str, gt_a: np.ndarray, gt_v: np.ndarray, rng: np.random.Generator):
    """(global_prob (N, C), frame_prob (N, T, 2, C)) float32 of one kind."""
    n, c, t = gt_a.shape
    if kind == "random":
        return rng.random((n, c), dtype=np.float32), rng.random((n, t, 2, c), dtype=np.float32)
    if kind == "all_zero":
        return np.zeros((n, c), np.float32), np.zeros((n, t, 2, c), np.float32)
    if kind == "all_one":
        return np.ones((n, c), np.float32), np.ones((n, t, 2, c), np.float32)
    if kind == "correlated":  # mostly right, with noise that breaks and shifts runs
        frame = 0.25 + 0.5 * frames_from(gt_a, gt_v) + rng.normal(0, 0.22, (n, t, 2, c))
        present = (gt_a.any(-1) | gt_v.any(-1)).astype(np.float32)
        glob = 0.2 + 0.6 * present + rng.normal(0, 0.2, (n, c))
        return np.clip(glob, 0, 1).astype(np.float32), np.clip(frame, 0, 1).astype(np.float32)
    if kind == "exact":  # the ground truth itself, as probabilities 0/1
        return (gt_a.any(-1) | gt_v.any(-1)).astype(np.float32), frames_from(gt_a, gt_v)
    if kind == "at_threshold":  # values on both sides of and exactly at 0.5 in float32
        half = np.float32(0.5)
        values = np.array([np.nextafter(half, 0), half, np.nextafter(half, 1)], np.float32)
        return rng.choice(values, (n, c)), rng.choice(values, (n, t, 2, c))
    raise ValueError(kind)


def synthetic_gt(kind: str, n: int, c: int, rng: np.random.Generator) -> np.ndarray:
    """(N, C, T) bool ground truth of one kind."""
    if kind == "empty":
        return np.zeros((n, c, T), bool)
    if kind == "edges":  # runs that touch segment 0, segment 9, or both
        shapes = np.zeros((8, T), bool)
        shapes[0, :3] = True
        shapes[1, 6:] = True
        shapes[2, :] = True
        shapes[3, 0] = True
        shapes[4, 9] = True
        shapes[5, [0, 1, 8, 9]] = True
        shapes[6, [0, 2, 4, 6, 8]] = True
        shapes[7, 1:9] = True
        pick = rng.integers(0, len(shapes) + 4, (n, c))  # indices >= 8: no event
        return np.where((pick < len(shapes))[..., None], shapes[np.minimum(pick, len(shapes) - 1)], False)
    if kind == "random_runs":
        return rng.random((n, c, T)) < rng.choice([0.05, 0.3, 0.7], (n, c, 1))
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# The reference, checked by hand.

CLASSES3 = ["A", "B", "C"]


def hand_case():
    """Three videos, classes A, B, C; decisions are given as 0/1 probabilities.

    Video 1:
      audio  A: GT [0,4), pred [0,2) + [5,7): seg TP2 FP2 FN2 -> 1/2; event: [0,2) vs [0,4) IoU 2/4
             = 0.5 -> TP, [5,7) FP; GT matched -> TP1 FP1 FN0 -> 2/3.
             B: nothing (not kept).  C: GT [7,10), pred [9,10): seg TP1 FN2 -> 1/2; event IoU 1/3
             -> FP1 FN1 -> 0.   audio: seg 1/2, event 1/3.
      visual A: GT [0,10) = pred -> 1 and 1.  B: pred [4,5), no GT -> 0 and 0.  C: nothing.
             visual: seg 1/2, event 1/2.
      a-v    A only (GT [0,4) & [0,10); pred a & v = pred_a): seg 1/2, event 2/3.
      Event@AV: seg A (12,2,2) -> 24/28 = 6/7, B (0,1,0) -> 0, C (1,0,2) -> 1/2: mean 19/42;
             event A (2,1,0) -> 4/5, B (0,1,0) -> 0, C (0,1,1) -> 0: mean 4/15.
    Video 2: no GT; audio frame probs 1 for A but its video-level prob 0.4 < 0.5 -> no prediction:
      every number 1 (no class kept).
    Video 3:
      audio  B: GT [2,5), no prediction -> seg 0, event 0.
      visual C: GT [0,3) + [5,10), pred [0,10): seg TP8 FP2 -> 16/18 = 8/9; event: pred vs [5,10)
             IoU 5/10 -> TP, [0,3) IoU 3/10 -> FN: TP1 FN1 -> 2/3.
      a-v    nothing -> 1 and 1.
      Event@AV: seg B (0,0,3) -> 0, C -> 8/9: 4/9; event B (0,0,1) -> 0, C -> 2/3: 1/3.
    """
    n, c = 3, 3
    pa, pv = np.zeros((n, c, T), int), np.zeros((n, c, T), int)
    ga, gv = np.zeros((n, c, T), int), np.zeros((n, c, T), int)
    ga[0, 0, 0:4] = 1; pa[0, 0, 0:2] = 1; pa[0, 0, 5:7] = 1  # noqa: E702
    ga[0, 2, 7:10] = 1; pa[0, 2, 9] = 1  # noqa: E702
    gv[0, 0, :] = 1; pv[0, 0, :] = 1  # noqa: E702
    pv[0, 1, 4] = 1
    ga[2, 1, 2:5] = 1
    gv[2, 2, 0:3] = 1; gv[2, 2, 5:10] = 1; pv[2, 2, :] = 1  # noqa: E702
    global_prob = np.ones((n, c), np.float32)
    frame_prob = frames_from(pa, pv)
    global_prob[1, 0] = 0.4
    frame_prob[1, :, 0, 0] = 1.0
    F = Fraction
    per_video = {  # (segment, event) per stream and video
        "audio": [(F(1, 2), F(1, 3)), (1, 1), (0, 0)],
        "visual": [(F(1, 2), F(1, 2)), (1, 1), (F(8, 9), F(2, 3))],
        "audio_visual": [(F(1, 2), F(2, 3)), (1, 1), (1, 1)],
        "event_at_av": [(F(19, 42), F(4, 15)), (1, 1), (F(4, 9), F(1, 3))],
    }
    expected = {}
    for i, level in enumerate(LEVELS):
        mean = {s: 100 * F(sum(F(v[i]) for v in vals), 3) for s, vals in per_video.items()}
        mean["type_at_av"] = (mean["audio"] + mean["visual"] + mean["audio_visual"]) / 3
        expected[level] = {k: float(v) for k, v in mean.items()}
    return global_prob, frame_prob, ga, gv, expected


def test_reference_on_hand_worked_case():
    global_prob, frame_prob, ga, gv, expected = hand_case()
    result = ref.reference_evaluate(global_prob, frame_prob, ga, gv, CLASSES3)
    for level in LEVELS:
        for key in SCORES:
            assert result[level][key] == pytest.approx(expected[level][key], abs=1e-12), (level, key)
    # Corpus per-class F: audio A segments (2,2,2) -> 50%; B only the FN of video 3 -> 0%;
    # audio-visual B has neither predictions nor ground truth -> None.
    seg = result["per_class"]["segment_level"]
    assert seg["audio"]["A"] == pytest.approx(50.0)
    assert seg["audio"]["B"] == 0.0
    assert seg["audio_visual"]["B"] is None


def test_evaluator_on_hand_worked_case():
    global_prob, frame_prob, ga, gv, expected = hand_case()
    metrics = check_against_reference(global_prob, frame_prob, ga, gv, CLASSES3)
    for level in LEVELS:
        for key in SCORES:
            assert metrics[level][key] == pytest.approx(expected[level][key], abs=1e-12)
    # Event-level audio per-class A: TP1 FP1 FN0 over all videos -> 2/3.
    assert metrics["per_class"]["event_level"]["audio"]["A"] == pytest.approx(200 / 3)


def test_empty_everything_scores_100():
    """No ground truth and no predictions: no class is kept anywhere, every video scores 1.0."""
    gt = np.zeros((4, 3, T), bool)
    metrics = check_against_reference(*make_predictions("all_zero", gt, gt, None), gt, gt, CLASSES3)
    assert all(metrics[level][k] == 100.0 for level in LEVELS for k in SCORES)


# ---------------------------------------------------------------------------------------------
# Against the reference on the real LLP ground truth.


@pytest.fixture(scope="module")
def llp():
    vocab = read_classes(LLP / "classes.txt")
    audio = read_dense(LLP / "AVVP_eval_audio.csv", vocab)
    visual = read_dense(LLP / "AVVP_eval_visual.csv", vocab)
    audio_rows = ref.read_dense_rows(LLP / "AVVP_eval_audio.csv")
    visual_rows = ref.read_dense_rows(LLP / "AVVP_eval_visual.csv")
    out = {"classes": list(vocab.classes)}
    for name, file in (("val", "AVVP_val_pd.csv"), ("test", "AVVP_test_pd.csv")):
        split = read_weak(LLP / file, vocab)
        filenames = ref.read_split_filenames(LLP / file)
        ref_a, ref_v = ref.split_ground_truth(filenames, out["classes"], audio_rows, visual_rows)
        out[name] = (ground_truth(split, audio, visual), np.array(ref_a), np.array(ref_v))
    return out


@pytest.mark.parametrize("split", ["val", "test"])
def test_ground_truth_matches_row_by_row_reading(llp, split):
    gt, ref_a, ref_v = llp[split]
    np.testing.assert_array_equal(gt.audio, ref_a == 1)
    np.testing.assert_array_equal(gt.visual, ref_v == 1)


@pytest.mark.parametrize(
    "split, kind, frame_thr, global_thr, seed",
    [
        ("test", "random", 0.5, 0.5, 0),
        ("test", "correlated", 0.5, 0.5, 1),
        ("test", "all_one", 0.5, 0.5, 0),
        ("test", "exact", 0.5, 0.5, 0),
        ("val", "all_zero", 0.5, 0.5, 0),
        ("val", "correlated", 0.3, 0.7, 2),
        ("val", "correlated", 0.7, 0.2, 3),
        ("val", "at_threshold", 0.5, 0.5, 4),
    ],
)
def test_llp_split_matches_reference(llp, split, kind, frame_thr, global_thr, seed):
    gt, ref_a, ref_v = llp[split]
    rng = np.random.default_rng(seed)
    global_prob, frame_prob = make_predictions(kind, gt.audio, gt.visual, rng)
    gt_obj = GroundTruth(gt.audio, gt.visual, gt.report)
    metrics = evaluate_arrays(global_prob, frame_prob, gt_obj, frame_thr, global_thr, llp["classes"])
    expected = ref.reference_evaluate(
        global_prob, frame_prob, ref_a, ref_v, llp["classes"], frame_thr, global_thr
    )
    assert_matches_reference(metrics, expected)
    assert metrics["n_videos"] == len(gt.audio)
    assert metrics["annotation_warnings"] == gt.report.as_dict()
    assert metrics["protocol"]["frame_threshold"] == {"audio": frame_thr, "visual": frame_thr}
    assert metrics["protocol"]["gate_threshold"] == {"audio": global_thr, "visual": global_thr}
    if kind == "exact":  # predicting the ground truth itself is perfect everywhere
        assert all(metrics[level][k] == pytest.approx(100.0) for level in LEVELS for k in SCORES)


@pytest.mark.parametrize("seed", range(6))
def test_llp_subsets_many_thresholds(llp, seed):
    """Random 150-video subsets of the test split, random thresholds, mixed prediction kinds."""
    gt, ref_a, ref_v = llp["test"]
    rng = np.random.default_rng(100 + seed)
    rows = np.sort(rng.choice(len(gt.audio), 150, replace=False))
    kind = ["random", "correlated", "at_threshold"][seed % 3]
    global_prob, frame_prob = make_predictions(kind, gt.audio[rows], gt.visual[rows], rng)
    thresholds = (0.5, 0.5) if kind == "at_threshold" else tuple(rng.uniform(0.1, 0.9, 2))
    check_against_reference(global_prob, frame_prob, ref_a[rows], ref_v[rows], llp["classes"], *thresholds)


# ---------------------------------------------------------------------------------------------
# Against the reference on synthetic ground truths.


@pytest.mark.parametrize("gt_kind", ["empty", "edges", "random_runs"])
@pytest.mark.parametrize("pred_kind", ["random", "correlated", "all_zero", "all_one", "exact"])
def test_synthetic_matches_reference(gt_kind, pred_kind):
    rng = np.random.default_rng(zlib.crc32(f"{gt_kind}/{pred_kind}".encode()))
    n, c = 60, 7
    gt_a, gt_v = synthetic_gt(gt_kind, n, c, rng), synthetic_gt(gt_kind, n, c, rng)
    if pred_kind == "exact" and gt_kind != "empty":  # predictions touching both ends, shifted
        gt_v = np.roll(gt_a, 1, axis=-1)
    global_prob, frame_prob = make_predictions(pred_kind, gt_a, gt_v, rng)
    check_against_reference(global_prob, frame_prob, gt_a, gt_v, [f"c{i}" for i in range(c)])


def test_event_counts_every_row_pair_of_8_segments():
    """All 2^8 x 2^8 (prediction, ground truth) rows: the count tables equal scanning + matching."""
    codes = np.arange(256)
    masks = ((codes[:, None] >> np.arange(8)) & 1).astype(bool)
    pred = np.repeat(masks, 256, axis=0)[None]  # one "video", 65,536 "classes"
    gt = np.tile(masks, (256, 1))[None]
    scores = score(pred, pred, gt, gt)
    for counts, level in ((scores.segment, "segment"), (scores.event, "event")):
        got = np.stack([counts.tp[0, 0], counts.fp[0, 0], counts.fn[0, 0]], 1)
        if level == "segment":
            want = [ref.segment_tp_fp_fn(p, g) for p, g in zip(pred[0].astype(int), gt[0].astype(int))]
        else:
            events = [ref.scan_events(m.astype(int)) for m in masks]
            want = [ref.match_events(events[i // 256], events[i % 256]) for i in range(256 * 256)]
        np.testing.assert_array_equal(got, np.array(want))


def test_event_counts_random_rows_of_10_segments():
    rng = np.random.default_rng(7)
    pred = rng.random((1, 20000, T)) < rng.choice([0.2, 0.5, 0.8], (1, 20000, 1))
    gt = rng.random((1, 20000, T)) < rng.choice([0.2, 0.5, 0.8], (1, 20000, 1))
    counts = score(pred, pred, gt, gt).event
    want = [ref.match_events(ref.scan_events(p.astype(int)), ref.scan_events(g.astype(int)))
            for p, g in zip(pred[0], gt[0])]
    got = np.stack([counts.tp[0, 0], counts.fp[0, 0], counts.fn[0, 0]], 1)
    np.testing.assert_array_equal(got, np.array(want))


# ---------------------------------------------------------------------------------------------
# Decisions, alignment, argument checks.


def test_segment_decisions_layout_and_gating():
    frame_prob = np.zeros((1, T, 2, 2), np.float32)
    frame_prob[0, 3, 0, 1] = 0.5  # audio, class 1, segment 3, exactly at the threshold
    frame_prob[0, 7, 1, 0] = 0.9  # visual, class 0, segment 7
    pred_a, pred_v = segment_decisions(np.array([[0.9, 0.5]], np.float32), frame_prob)
    assert pred_a.shape == (1, 2, T) and np.argwhere(pred_a).tolist() == [[0, 1, 3]]
    assert np.argwhere(pred_v).tolist() == [[0, 0, 7]]
    pred_a, pred_v = segment_decisions(np.array([[0.2, 0.49]], np.float32), frame_prob)
    assert not pred_a.any() and not pred_v.any()


def test_align_predictions_subset_in_split_order():
    pred_rows, split_rows, unscored = align_predictions(["c", "a"], ["a", "b", "c", "d"])
    assert pred_rows.tolist() == [1, 0] and split_rows.tolist() == [0, 2]
    assert unscored == ["b", "d"]
    with pytest.raises(ValueError, match="not in the split.*'z'"):
        align_predictions(["a", "z"], ["a", "b"])


def test_bad_shapes_are_errors():
    gt = GroundTruth(np.zeros((2, 3, T), bool), np.zeros((2, 3, T), bool), AnnotationReport())
    with pytest.raises(ValueError, match="does not match"):
        evaluate_arrays(np.zeros((3, 3), np.float32), np.zeros((3, T, 2, 3), np.float32), gt)
    with pytest.raises(ValueError, match="frame_prob"):
        evaluate_arrays(np.zeros((2, 3), np.float32), np.zeros((2, 8, 2, 3), np.float32), gt)
    with pytest.raises(ValueError, match="1 to 10 segments"):
        z = np.zeros((1, 1, 12), bool)
        score(z, z, z, z)


# ---------------------------------------------------------------------------------------------
# Events.


def test_runs_vectorised_equals_scanning():
    rng = np.random.default_rng(3)
    mask = rng.random((4, 6, T)) < 0.5
    mask[0, 0] = True
    mask[0, 1] = False
    i, j, start, stop = runs(mask)
    want = [(a, b, s, e) for a in range(4) for b in range(6)
            for s, e in ref.scan_events(mask[a, b].astype(int))]
    assert list(zip(i.tolist(), j.tolist(), start.tolist(), stop.tolist())) == want
    start, stop = runs(np.array([1, 1, 0, 1, 0, 0, 1, 1, 1, 1], bool))
    assert list(zip(start.tolist(), stop.tolist())) == [(0, 2), (3, 4), (6, 10)]


def test_event_table_for_hand_made_masks(tmp_path):
    audio = np.zeros((2, 2, T), bool)
    visual = np.zeros((2, 2, T), bool)
    audio[0, 0, [0, 1, 8, 9]] = True  # video a, class X: [0,2) and [8,10)
    visual[0, 1, :] = True  # video a, class Y: the whole clip
    audio[1, 1, 3] = True  # video b, class Y: [3,4)
    visual[1, 0, 5:7] = True  # video b, class X: [5,7)
    rows = event_rows(["a_0_10", "b_0_10"], ["X", "Y"], {"audio": audio, "visual": visual})
    assert rows == [
        EventRow("a_0_10", 0, 2, "X", "audio"),
        EventRow("a_0_10", 8, 10, "X", "audio"),
        EventRow("a_0_10", 0, 10, "Y", "visual"),
        EventRow("b_0_10", 3, 4, "Y", "audio"),
        EventRow("b_0_10", 5, 7, "X", "visual"),
    ]
    path = tmp_path / "events.tsv"
    write_events(path, rows)
    lines = path.read_text().splitlines()
    assert lines[0] == "filename\tonset\toffset\tevent_labels\tmodality"
    assert lines[1:3] == ["a_0_10\t0\t2\tX\taudio", "a_0_10\t8\t10\tX\taudio"]
    assert len(lines) == 6 and os.listdir(tmp_path) == ["events.tsv"]


# ---------------------------------------------------------------------------------------------
# Predictions files.


def _preds(n=3, c=2, ids=None):
    rng = np.random.default_rng(0)
    return Predictions(ids or [f"vid{i:08d}_0_10" for i in range(n)], [f"k{i}" for i in range(c)],
                       rng.random((n, c), dtype=np.float32), rng.random((n, T, 2, c), dtype=np.float32))


def test_predictions_round_trip(tmp_path):
    preds = _preds()
    save_predictions(tmp_path / "p.npz", preds)
    back = load_predictions(tmp_path / "p.npz")
    assert back.video_ids == preds.video_ids and back.classes == preds.classes
    np.testing.assert_array_equal(back.frame_prob, preds.frame_prob)
    np.testing.assert_array_equal(back.global_prob, preds.global_prob)
    assert os.listdir(tmp_path) == ["p.npz"]


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"frame_prob": None}, r"missing array\(s\) \['frame_prob'\]"),
        ({"global_prob": np.zeros((3, 2))}, "global_prob must be a float32 array, got float64"),
        ({"frame_prob": np.zeros((3, T, 3, 2), np.float32)}, r"frame_prob has shape \(3, 10, 3, 2\)"),
        ({"global_prob": np.zeros((3, 5), np.float32)}, r"global_prob has shape \(3, 5\)"),
        ({"global_prob": np.full((3, 2), np.nan, np.float32)}, r"outside \[0, 1\]"),
        ({"video_ids": np.array(["a", "a", "b"])}, "video_ids repeat"),
        ({"classes": np.array([1, 2])}, "classes must be a 1-D unicode array"),
    ],
)
def test_bad_predictions_file_names_the_file(tmp_path, arrays, message):
    preds = _preds()
    content = {"video_ids": np.array(preds.video_ids), "classes": np.array(preds.classes),
               "global_prob": preds.global_prob, "frame_prob": preds.frame_prob}
    content.update(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: v for k, v in content.items() if v is not None})
    with pytest.raises(ValueError, match=message) as err:
        load_predictions(path)
    assert str(path) in str(err.value)


def test_unreadable_predictions_files(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    single = tmp_path / "single.npz"
    with open(single, "wb") as fh:
        np.save(fh, np.zeros(3))
    good = tmp_path / "good.npz"
    save_predictions(good, _preds())
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:200])
    for path in (text, single, cut):
        with pytest.raises(ValueError, match=str(path)):
            load_predictions(path)
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        load_predictions(tmp_path / "absent.npz")


# ---------------------------------------------------------------------------------------------
# Command line.


def _llp_args(tmp_path, preds_path, *extra):
    return ["evaluate", "--predictions", str(preds_path), "--split-csv", str(LLP / "AVVP_val_pd.csv"),
            "--audio-csv", str(LLP / "AVVP_eval_audio.csv"),
            "--visual-csv", str(LLP / "AVVP_eval_visual.csv"),
            "--out", str(tmp_path / "out" / "metrics.json"), *extra]


def test_cli_end_to_end(llp, tmp_path, capsys):
    """A shuffled subset of the validation split: scored in split order, the rest listed as unscored."""
    gt, ref_a, ref_v = llp["val"]
    filenames = ref.read_split_filenames(LLP / "AVVP_val_pd.csv")
    rng = np.random.default_rng(11)
    global_prob, frame_prob = make_predictions("correlated", gt.audio, gt.visual, rng)
    keep = np.sort(rng.choice(len(filenames), len(filenames) - 4, replace=False))
    order = rng.permutation(keep)
    save_predictions(tmp_path / "p.npz", Predictions([filenames[i] for i in order], llp["classes"],
                                                     global_prob[order], frame_prob[order]))
    events = tmp_path / "out" / "events.tsv"
    argv = _llp_args(tmp_path, tmp_path / "p.npz", "--events-out", str(events), "--frame-threshold", "0.4",
                     "--known-csv", str(LLP / "AVVP_dataset_full.csv"))
    assert main(argv) == 0
    assert "scored 645 of 649 videos" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    expected = ref.reference_evaluate(global_prob[keep], frame_prob[keep], ref_a[keep], ref_v[keep],
                                      llp["classes"], 0.4, 0.5)
    assert_matches_reference(metrics, expected)
    assert metrics["n_split"] == 649
    kept = set(keep.tolist())
    assert metrics["unscored"] == [f for i, f in enumerate(filenames) if i not in kept]
    assert metrics["protocol"]["name"] == "avvp+custom" and metrics["protocol"]["gate"] == "fused"
    assert metrics["protocol"]["frame_threshold"] == {"audio": 0.4, "visual": 0.4}
    assert metrics["protocol"]["gate_threshold"] == {"audio": 0.5, "visual": 0.5}
    # The LLP README: 14 audio and 11 visual dense rows belong to no split.
    assert metrics["annotation_warnings"]["orphan_rows"] == {"audio": 14, "visual": 11}
    assert sorted(os.listdir(tmp_path / "out")) == ["events.tsv", "metrics.json"]
    # The event table lists, per scored video, exactly the runs of its decisions.
    with open(events, newline="") as fh:
        table = list(csv.DictReader(fh, delimiter="\t"))
    first = filenames[keep[0]]
    so_a, so_v = ref.video_decisions(global_prob[keep[0]], frame_prob[keep[0]], 0.4, 0.5)
    want = [(first, str(s), str(e), llp["classes"][k], mod)
            for mod, so in (("audio", so_a), ("visual", so_v))
            for k in range(len(llp["classes"])) for s, e in ref.scan_events(so[k])]
    got = [tuple(r.values()) for r in table if r["filename"] == first]
    assert got == want and len(want) > 0
    assert {r["filename"] for r in table} <= {filenames[i] for i in keep}


def test_cli_without_known_csv_counts_rows_outside_split(llp, tmp_path):
    gt = llp["val"][0]
    filenames = ref.read_split_filenames(LLP / "AVVP_val_pd.csv")
    global_prob, frame_prob = make_predictions("random", gt.audio, gt.visual, np.random.default_rng(0))
    save_predictions(tmp_path / "p.npz", Predictions(filenames, llp["classes"], global_prob, frame_prob))
    assert main(_llp_args(tmp_path, tmp_path / "p.npz")) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["n_videos"] == metrics["n_split"] == 649 and metrics["unscored"] == []
    assert metrics["annotation_warnings"]["orphan_rows"] == {}
    assert metrics["annotation_warnings"]["rows_outside_split"] == gt.report.as_dict()["rows_outside_split"]


def test_cli_errors(llp, tmp_path, capsys):
    filenames = ref.read_split_filenames(LLP / "AVVP_val_pd.csv")
    foreign = _preds(n=2, c=25, ids=[filenames[0], "XXXXXXXXXXX_0_10"])
    save_predictions(tmp_path / "foreign.npz", Predictions(foreign.video_ids, llp["classes"],
                                                           foreign.global_prob, foreign.frame_prob))
    assert main(_llp_args(tmp_path, tmp_path / "foreign.npz")) == 1
    assert "not in the split" in capsys.readouterr().err
    save_predictions(tmp_path / "vocab.npz", _preds(ids=filenames[:3]))  # classes k0, k1
    assert main(_llp_args(tmp_path, tmp_path / "vocab.npz")) == 1
    assert "unknown class" in capsys.readouterr().err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cli_names_the_predictions_file_when_its_shape_does_not_fit(llp, tmp_path, capsys):
    """Predictions with 8 segments per video (not the protocol's 10): the error names the file."""
    filenames = ref.read_split_filenames(LLP / "AVVP_val_pd.csv")[:3]
    rng = np.random.default_rng(0)
    path = tmp_path / "eight.npz"
    save_predictions(path, Predictions(filenames, llp["classes"], rng.random((3, 25), dtype=np.float32),
                                       rng.random((3, 8, 2, 25), dtype=np.float32)))
    assert main(_llp_args(tmp_path, path)) == 1
    err = capsys.readouterr().err
    assert f"{path}: frame_prob has shape (3, 8, 2, 25)" in err and err.count("\n") == 1
