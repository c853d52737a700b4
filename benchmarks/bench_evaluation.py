"""Scoring the 1,200-video LLP test split: vectorised evaluator vs a published-style baseline.

Random predictions, the real test-split ground truth. The baseline is tests/reference_evaluation.py:
per-video Python loops, per-class loops, events found by scanning each row and matched pair by pair,
as the published evaluation does (its per-video ground truth is built from rows grouped by filename
once, which is kinder to it than filtering the whole table per video). Both run in the same process,
interleaved, `--repeats` times; the table shows median seconds. Usage:

    .venv/bin/python benchmarks/bench_evaluation.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import reference_evaluation as ref  # noqa: E402

from avvp.evaluation.annotations import ground_truth, read_classes, read_dense, read_weak  # noqa: E402
from avvp.evaluation.scores import _run_words, evaluate_arrays  # noqa: E402

LLP = ROOT / "data" / "llp"


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    vocab = read_classes(LLP / "classes.txt")
    classes = list(vocab.classes)
    split = read_weak(LLP / "AVVP_test_pd.csv", vocab)
    audio_csv, visual_csv = LLP / "AVVP_eval_audio.csv", LLP / "AVVP_eval_visual.csv"
    audio, visual = read_dense(audio_csv, vocab), read_dense(visual_csv, vocab)
    audio_rows, visual_rows = ref.read_dense_rows(audio_csv), ref.read_dense_rows(visual_csv)
    filenames = list(split.filenames)
    rng = np.random.default_rng(args.seed)
    n, c = len(filenames), len(classes)
    global_prob = rng.random((n, c), dtype=np.float32)
    frame_prob = rng.random((n, 10, 2, c), dtype=np.float32)

    gt = ground_truth(split, audio, visual)
    ref_a, ref_v = ref.split_ground_truth(filenames, classes, audio_rows, visual_rows)

    def cold_score():  # as the first evaluation in a process: the run tables are built first
        _run_words.cache_clear()
        return evaluate_arrays(global_prob, frame_prob, gt, classes=classes)

    tasks = {
        "score, first call in a process (builds run tables)": (
            cold_score,
            lambda: ref.reference_evaluate(global_prob, frame_prob, ref_a, ref_v, classes),
        ),
        "score (ground truth arrays given)": (
            lambda: evaluate_arrays(global_prob, frame_prob, gt, classes=classes),
            lambda: ref.reference_evaluate(global_prob, frame_prob, ref_a, ref_v, classes),
        ),
        "ground truth from dense rows + score": (
            lambda: evaluate_arrays(
                global_prob, frame_prob, ground_truth(split, audio, visual), classes=classes
            ),
            lambda: ref.reference_evaluate(
                global_prob, frame_prob,
                *ref.split_ground_truth(filenames, classes, audio_rows, visual_rows), classes,
            ),
        ),
    }
    times = {name: ([], []) for name in tasks}
    for _ in range(args.repeats):
        for name, (ours, baseline) in tasks.items():
            t_ours, metrics = timed(ours)
            t_base, expected = timed(baseline)
            times[name][0].append(t_ours)
            times[name][1].append(t_base)
            for level in ("segment_level", "event_level"):
                for key, value in expected[level].items():
                    assert abs(metrics[level][key] - value) < 1e-9, (level, key)

    print(f"Scoring the LLP test split ({n} videos, {c} classes, random predictions), "
          f"median of {args.repeats} interleaved repeats\n")
    print("| task | baseline (s) | avvp (s) | speed-up |")
    print("| --- | --- | --- | --- |")
    for name, (ours, base) in times.items():
        m_ours, m_base = statistics.median(ours), statistics.median(base)
        print(f"| {name} | {m_base:.3f} | {m_ours:.4f} | {m_base / m_ours:.0f}x |")


if __name__ == "__main__":
    main()
