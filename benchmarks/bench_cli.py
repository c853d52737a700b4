"""Start-up cost of the command line as whole processes: `avvp --help`, and `avvp evaluate` on the
1,200-video LLP test split (random predictions, the real dense annotations).

Each command runs `--repeats` times after one warm-up; the table gives the median wall-clock
seconds. With `--baseline-src DIR` (the `src/` folder of another checkout, e.g. an older commit
from `git worktree add`), the same commands run interleaved with that code on PYTHONPATH, and the
table adds its medians and the ratio. Usage:

    .venv/bin/python benchmarks/bench_cli.py [--repeats 7] [--baseline-src /tmp/old/src]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LLP = ROOT / "data" / "llp"


def random_predictions(out: Path) -> Path:
    """Random probabilities for every video of the LLP test split, in the predictions format."""
    from avvp.evaluation.annotations import read_classes, read_weak
    from avvp.model.predictions import Predictions, save_predictions

    vocab = read_classes(LLP / "classes.txt")
    split = read_weak(LLP / "AVVP_test_pd.csv", vocab)
    rng = np.random.default_rng(0)
    n, c = len(split.filenames), len(vocab)
    save_predictions(out, Predictions(split.filenames, vocab.classes, rng.random((n, c), dtype=np.float32),
                                      rng.random((n, 10, 2, c), dtype=np.float32)))
    return out


def wall(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--baseline-src", type=Path, help="src/ of the code to compare against")
    args = parser.parse_args()
    avvp = [str(Path(sys.executable).parent / "avvp")]  # the console script, as a user runs it
    with tempfile.TemporaryDirectory() as tmp:
        preds = random_predictions(Path(tmp) / "test.npz")
        evaluate = [*avvp, "evaluate", "--predictions", str(preds), "--split-csv", str(LLP / "AVVP_test_pd.csv"),
                    "--audio-csv", str(LLP / "AVVP_eval_audio.csv"), "--visual-csv", str(LLP / "AVVP_eval_visual.csv"),
                    "--out", str(Path(tmp) / "metrics.json")]
        commands = {"avvp --help": [*avvp, "--help"], "avvp evaluate (LLP test split)": evaluate}
        codes = {"avvp": dict(os.environ)}
        if args.baseline_src:
            codes["baseline"] = {**os.environ, "PYTHONPATH": str(args.baseline_src.resolve())}
        times = {(name, code): [] for name in commands for code in codes}
        for repeat in range(args.repeats + 1):
            for name, command in commands.items():
                for code, env in codes.items():
                    seconds = wall(command, env)
                    if repeat:  # the first round warms the file cache
                        times[name, code].append(seconds)
    head = "| command | avvp (s) |" + (" baseline (s) | baseline / avvp |" if args.baseline_src else "")
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for name in commands:
        ours = statistics.median(times[name, "avvp"])
        row = f"| {name} | {ours:.3f} |"
        if args.baseline_src:
            base = statistics.median(times[name, "baseline"])
            row += f" {base:.3f} | {base / ours:.1f}x |"
        print(row)


if __name__ == "__main__":
    main()
