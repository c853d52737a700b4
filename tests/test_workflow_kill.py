"""A hard kill during training, then `snakemake --unlock` and the same command again: the rerun
resumes from last.pt and ends with every output of the stage and the uninterrupted run's numbers,
whether Snakemake alone was killed (its trainer must stop by itself) or its whole process group.
And one trainer at a time per stage folder: a second is refused, naming the first's PID.

Features mode on a few clips with random features; the kept epoch (`type_at_av_first`) comes early,
so the kill falls after it and the resumed run keeps no later epoch (what used to end in a
MissingOutputException for model.pt)."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workflow_helpers import (
    annotations,
    copy_workflow,
    environment,
    run_snakemake,
    small_demo_dataset,
    snakemake_command,
    write_random_features,
    write_config,
)

EPOCHS = 60
STAGE = Path("results/runs/han/seed1/han")
TRAIN_LOG = Path("results/logs/train/han_seed1_han.log")
CONFIG = "kill.yaml"
TARGET = ["--cores", "2", f"--configfile={CONFIG}", "results/metrics.json"]


def epochs_logged(workdir: Path) -> int:
    path = workdir / STAGE / "log.csv"
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except OSError:
        return 0


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # an unreaped orphan has ended too


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    """A features-mode workflow whose splits are packed (nothing trained yet)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("kill") / "base")
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 8, "val": 4, "test": 2})
    write_random_features(workdir / "released", list(chosen))
    write_config(workdir / CONFIG, {
        "dataset": {"mode": "features", "annotations": annotations("data/mini"), "features_dir": "released"},
        "stages": {"han": {"epochs": EPOCHS, "keep": "type_at_av_first"}}})
    run_snakemake(workdir, *TARGET[:-1], *(f"results/packed/{s}" for s in ("train", "val", "test")))
    return workdir


@pytest.fixture(scope="module")
def straight(packed: Path) -> Path:
    """The uninterrupted run."""
    workdir = packed.parent / "straight"
    shutil.copytree(packed, workdir, symlinks=True)
    run_snakemake(workdir, *TARGET)
    return workdir


def kill_mid_training(workdir: Path, kill_at: int, group: bool) -> int | None:
    """Start the run, SIGKILL Snakemake (or its process group) once `kill_at` epochs are logged;
    the trainer's PID (from train.lock), or None when there is no lock file."""
    with (workdir / "killed.log").open("w") as fh:
        proc = subprocess.Popen(snakemake_command(*TARGET), cwd=workdir, env=environment(), text=True,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while proc.poll() is None and epochs_logged(workdir) < kill_at:
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before the kill:\n{(workdir / 'killed.log').read_text()[-3000:]}"
        lock = workdir / STAGE / "train.lock"
        trainer = int(lock.read_text().split()[1]) if lock.is_file() else None
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()
        logged = epochs_logged(workdir)
        assert kill_at <= logged < EPOCHS - 5, f"killed at epoch {logged}: too late to test a resumption"
        if trainer is not None:  # the orphaned trainer must stop by itself
            deadline = time.monotonic() + 30
            while alive(trainer) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not alive(trainer), f"trainer {trainer} still runs after its Snakemake was killed"
        return trainer
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the session (an old-style orphan)
        except ProcessLookupError:
            pass


def check_recovery(straight: Path, packed: Path, name: str, group: bool) -> None:
    kept = json.loads((straight / STAGE / "summary.json").read_text())["kept_epoch"]
    workdir = packed.parent / name
    shutil.copytree(packed, workdir, symlinks=True)
    kill_mid_training(workdir, kept + 3, group)
    run_snakemake(workdir, "--unlock", *TARGET[2:])
    run_snakemake(workdir, *TARGET)
    train_log = (workdir / TRAIN_LOG).read_text()
    assert "resuming from" in train_log and "after epoch" in train_log, train_log[-2000:]
    assert "starting from epoch 1" not in train_log, train_log[-2000:]
    assert (workdir / STAGE / "summary.json").read_text() == (straight / STAGE / "summary.json").read_text()

    def rows(root: Path) -> list[dict]:
        with (root / STAGE / "log.csv").open() as fh:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]

    assert rows(workdir) == rows(straight)
    ours, theirs = (json.loads((w / "results/metrics.json").read_text()) for w in (workdir, straight))
    assert ours["methods"] == theirs["methods"]
    evaluation = "results/runs/han/seed1/evaluation/avvp/test.json"
    assert (workdir / evaluation).read_text() == (straight / evaluation).read_text()


@pytest.mark.slow
def test_snakemake_killed_alone_its_trainer_stops_and_the_rerun_resumes(packed: Path, straight: Path) -> None:
    check_recovery(straight, packed, "alone", group=False)


@pytest.mark.slow
def test_process_group_killed_the_rerun_resumes(packed: Path, straight: Path) -> None:
    check_recovery(straight, packed, "group", group=True)


def test_a_second_trainer_on_a_stage_folder_is_refused_naming_the_first(tmp_path: Path) -> None:
    chosen = small_demo_dataset(tmp_path / "data", {"train": 4, "val": 2, "test": 1})
    write_random_features(tmp_path / "features", list(chosen))
    data = tmp_path / "data"
    args = [str(Path(sys.executable).parent / "avvp"), "train", "--features", str(tmp_path / "features"),
            "--train-csv", str(data / "train.csv"), "--val-csv", str(data / "val.csv"),
            "--audio-csv", str(data / "eval_audio.csv"), "--visual-csv", str(data / "eval_visual.csv"),
            "--classes", str(data / "classes.txt"), "--out-dir", str(tmp_path / "stage"), "--epochs", "100000",
            "--model-features", "vggish,r2plus1d_18", "--no-progress"]
    first = subprocess.Popen(args, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "stage" / "log.csv").is_file() and first.poll() is None:
            assert time.monotonic() < deadline, "the first trainer logged no epoch in 120 s"
            time.sleep(0.2)
        assert first.poll() is None, first.stderr.read()
        try:
            second = subprocess.run(args, env=environment(), capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("a second trainer ran beside the first") from None
        assert second.returncode == 1, second.stderr
        assert f"PID {first.pid}" in second.stderr and second.stderr.strip().count("\n") == 0, second.stderr
        assert "train.lock" in second.stderr
        assert first.poll() is None  # the first goes on
    finally:
        first.kill()
        first.wait()
