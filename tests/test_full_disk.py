"""A full disk in any command that writes files is one line naming the path, and leaves nothing
behind: every such `avvp` command runs as a real process with its output on a small tmpfs that a
filler leaves just short of room (so the big write fails midway where there is one), on the demo's
clips and random features. The commands run a few at a time, each on its own disk.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from avvp.cli import main
from conftest import fill_disk, small_tmpfs, write_random_features

AVVP = str(Path(sys.executable).parent / "avvp")
KIB = 1024


@dataclass(frozen=True)
class Inputs:
    """Small real inputs on the ordinary disk: the demo data set (5 clips), its records, random
    features, a HAN checkpoint, the packed training split, test predictions and three WAVs."""

    demo: Path
    names: list[str]
    records: Path
    features: Path
    checkpoint: Path
    pack: Path
    predictions: Path
    wavs: list[Path]

    def csv(self, name: str) -> str:
        return str(self.demo / f"{name}.csv")

    def video(self, i: int = 0) -> str:
        return str(self.demo / "videos" / f"{self.names[i]}.mp4")


@dataclass(frozen=True)
class Case:
    """A command: its arguments given inputs and its disk, the output the error must name (it or a
    path inside it), and how many bytes the filler leaves free."""

    args: Callable[[Inputs, Path], list[str]]
    output: str
    leave: int


def _write_tone(path: Path, hz: float) -> Path:
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(16000)
        fh.writeframes((8000 * np.sin(2 * math.pi * hz * np.arange(160000) / 16000)).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    import torch

    from avvp.evaluation.annotations import read_classes
    from avvp.model.checkpoint import save_checkpoint
    from avvp.model.han import HAN

    root = tmp_path_factory.mktemp("inputs")
    demo = root / "demo"
    assert main(["demo", "--out", str(demo), "--n-videos", "5"]) == 0
    names = [line.split("\t")[0] for split in ("train", "val", "test")
             for line in (demo / f"{split}.csv").read_text().splitlines()[1:]]
    records = root / "records.tsv"
    assert main(["download", "--local-dir", str(demo / "videos"), "--out-dir", str(root / "videos"),
                 "--records", str(records), *names]) == 0
    features = write_random_features(root / "features", [n[:11] for n in names])
    torch.manual_seed(0)
    checkpoint = root / "model.pt"
    save_checkpoint(checkpoint, HAN(len(read_classes(demo / "classes.txt").classes)),
                    read_classes(demo / "classes.txt").classes)
    pack, predictions = root / "pack", root / "predictions.npz"
    assert main(["pack", "--split-csv", str(demo / "train.csv"), "--features", str(features),
                 "--out-dir", str(pack)]) == 0
    assert main(["predict", "--checkpoint", str(checkpoint), "--features", str(features), "--split-csv",
                 str(demo / "test.csv"), "--out", str(predictions), "--device", "cpu"]) == 0
    wavs = [_write_tone(root / f"tone{i:08d}_0_10.wav", 220 * (i + 1)) for i in range(3)]
    return Inputs(demo, names, records, features, checkpoint, pack, predictions, wavs)


def _train(i: Inputs, disk: Path) -> list[str]:
    return ["train", "--features", str(i.features), "--train-csv", i.csv("train"), "--val-csv", i.csv("val"),
            "--audio-csv", i.csv("eval_audio"), "--visual-csv", i.csv("eval_visual"), "--out-dir", str(disk / "run"),
            "--epochs", "1", "--device", "cpu", "--no-progress"]


# Every command that writes files. `leave`: what still fits, so that the failing write is the big
# one, cut off midway (a few bytes: the first write of a small output fails).
CASES = {
    "demo": Case(lambda i, d: ["demo", "--out", str(d / "demo"), "--n-videos", "5"], "demo", 700 * KIB),
    "download": Case(lambda i, d: ["download", "--local-dir", str(i.demo / "videos"), "--out-dir", str(d / "videos"),
                                   "--records", str(d / "records.tsv"), *i.names], "videos", 700 * KIB),
    "audio": Case(lambda i, d: ["audio", i.video(), str(d / "clip.wav")], "clip.wav", 128 * KIB),
    "frames": Case(lambda i, d: ["frames", i.video(), str(d / "frames")], "frames", 100 * KIB),
    "media": Case(lambda i, d: ["media", "--records", str(i.records), "--videos-dir", str(i.demo / "videos"),
                                "--audio-dir", str(d / "media"), "--frames-dir", str(d / "media"),
                                "--out-records", str(d / "media.tsv")], "media", 600 * KIB),
    "extract": Case(lambda i, d: ["extract", "--kind", "vggish", "--out-dir", str(d / "features"), "--device", "cpu",
                                  "--no-progress", *map(str, i.wavs)], "features", 12 * KIB),
    "pack": Case(lambda i, d: ["pack", "--split-csv", i.csv("train"), "--features", str(i.features),
                               "--out-dir", str(d / "pack")], "pack", 64 * KIB),
    "train": Case(_train, "run", 4096 * KIB),
    "pass": Case(lambda i, d: ["pass", "--stage", "jomold_ratios", "--checkpoint", str(i.checkpoint),
                               "--train-pack", str(i.pack), "--out-dir", str(d / "ratios"), "--device", "cpu"],
                 "ratios", 0),
    "predict": Case(lambda i, d: ["predict", "--checkpoint", str(i.checkpoint), "--features", str(i.features),
                                  "--split-csv", i.csv("test"), "--out", str(d / "predictions.npz"),
                                  "--device", "cpu"], "predictions.npz", 32 * KIB),
    "evaluate": Case(lambda i, d: ["evaluate", "--predictions", str(i.predictions), "--split-csv", i.csv("test"),
                                   "--audio-csv", i.csv("eval_audio"), "--visual-csv", i.csv("eval_visual"),
                                   "--out", str(d / "metrics.json"), "--events-out", str(d / "events.tsv")],
                     "metrics.json", 0),
    "parse": Case(lambda i, d: ["parse", i.video(), "--checkpoint", str(i.checkpoint), "--features", str(i.features),
                                "--out", str(d / "parsed"), "--device", "cpu", "--no-progress"], "parsed", 16 * KIB),
}


@dataclass(frozen=True)
class Outcome:
    disk: Path
    returncode: int
    stderr: str


@pytest.fixture(scope="module")
def outcomes(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Each command run once on its own nearly full 8 MiB tmpfs, three at a time (mostly imports)."""
    env = {**os.environ, "AVVP_OFFLINE": "1"}  # the released-style checkpoint's networks are never fetched
    root = tmp_path_factory.mktemp("disks")
    with ExitStack() as stack:
        disks = {name: stack.enter_context(small_tmpfs(root / name, "8m")) for name in CASES}

        def run(name: str) -> Outcome:
            fill_disk(disks[name], CASES[name].leave)
            proc = subprocess.run([AVVP, *CASES[name].args(inputs, disks[name])], env=env, capture_output=True,
                                  text=True, timeout=300)
            return Outcome(disks[name], proc.returncode, proc.stderr)

        with ThreadPoolExecutor(3) as pool:
            yield dict(zip(CASES, pool.map(run, CASES)))


ERROR_LINE = re.compile(r"avvp (?P<command>\S+): error: (?P<path>/[^:]+): (?P<why>.+)")


@pytest.mark.parametrize("command", CASES)
def test_a_full_disk_is_one_line_naming_the_path_and_leaves_nothing(outcomes: dict[str, Outcome],
                                                                    command: str) -> None:
    outcome = outcomes[command]
    assert outcome.returncode == 1, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in outcome.stderr, outcome.stderr
    error = ERROR_LINE.fullmatch(lines[0])
    assert error is not None and error["command"] == command, lines[0]
    output = outcome.disk / CASES[command].output
    assert Path(error["path"]).is_relative_to(output), lines[0]  # the output, or the file inside it
    assert error["why"].startswith("No space left on device"), lines[0]
    hidden = [str(p) for p in outcome.disk.rglob(".*")]  # temporary files and folders, work folders
    assert hidden == [], hidden
