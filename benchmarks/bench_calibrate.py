"""Per-class threshold calibration on the LLP validation split: `calibrate_thresholds` against a
literal transcription of CMPAE's `--mode select_thresholds` (tests/test_calibration.py).

The real validation split's dense ground truth (649 videos, 25 classes, 10 segments), random
float32 probabilities leaning towards it, CMPAE's grid and gates. Ours runs `--repeats` times
(median shown). The transcription scores the split once per (class, grid value) pair with its copy
of the released per-video metric code; it runs on the first `--released-classes` classes, is checked
equal to ours there, and is extrapolated linearly to all 25 (every class costs the same: 10 full
evaluations). The released code also runs its two forward passes per video per evaluation, which
neither side here does. Usage:

    .venv/bin/python benchmarks/bench_calibrate.py [--repeats 5] [--released-classes 2]
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

from test_calibration import released_select_thresholds  # noqa: E402

from avvp.evaluation.annotations import ground_truth, read_classes, read_dense, read_weak  # noqa: E402
from avvp.evaluation.calibration import CMPAE_GRID, calibrate_thresholds  # noqa: E402

LLP = ROOT / "data" / "llp"


def validation_split(seed: int) -> tuple[np.ndarray, ...]:
    """Random mixed probabilities for the real validation ground truth, segments above 0.25 more
    often where an event is annotated, so that the thresholds matter."""
    vocab = read_classes(LLP / "classes.txt")
    gt = ground_truth(read_weak(LLP / "AVVP_val_pd.csv", vocab), read_dense(LLP / "AVVP_eval_audio.csv", vocab),
                      read_dense(LLP / "AVVP_eval_visual.csv", vocab))
    n, c, t = gt.audio.shape
    rng = np.random.default_rng(seed)
    a_prob = rng.random((n, c), dtype=np.float32)
    v_prob = rng.random((n, c), dtype=np.float32)
    frame_prob = 0.4 * rng.random((n, t, 2, c), dtype=np.float32)
    frame_prob += 0.3 * np.stack([gt.audio, gt.visual], axis=2).transpose(0, 3, 2, 1)
    return a_prob, v_prob, frame_prob, gt.audio, gt.visual


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--released-classes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    split = validation_split(args.seed)
    n, c = split[0].shape
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = calibrate_thresholds(*split)
        times.append(time.perf_counter() - start)

    classes = range(args.released_classes)
    start = time.perf_counter()
    released = released_select_thresholds(*split, classes=classes)
    per_class = (time.perf_counter() - start) / args.released_classes
    np.testing.assert_array_equal(ours[list(classes)], released[list(classes)])

    print(f"LLP validation split: {n} videos, {c} classes, grid of {len(CMPAE_GRID)} values; "
          f"thresholds {ours.tolist()}\n")
    print("| procedure | seconds |")
    print("| --- | ---: |")
    print(f"| `calibrate_thresholds`, median of {args.repeats} | {statistics.median(times):.3f} |")
    measured = per_class * args.released_classes
    print(f"| literal transcription, {args.released_classes} classes measured | {measured:.1f} |")
    print(f"| literal transcription, all {c} classes (extrapolated) | {per_class * c:.0f} |")


if __name__ == "__main__":
    main()
