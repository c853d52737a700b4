"""Shared fixtures: the real LLP annotation files, random features in the released layout, small
disks that fill up, and the demo run end to end (once per session, shared by the workflow test modules)."""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from workflow_helpers import copy_workflow, run_snakemake

REPO = Path(__file__).resolve().parents[1]
LLP = REPO / "data" / "llp"


@pytest.fixture(scope="session")
def llp_dir() -> Path:
    return LLP


def write_random_features(root: Path, video_ids: list[str], seed: int = 0,
                          shapes: dict[str, tuple[int, int]] | None = None) -> Path:
    """Random float32 features in the released layout for `video_ids` (LLP shapes by default)."""
    from avvp.extractors import PUBLISHED, feature_kind

    rng = np.random.default_rng(seed)
    for kind, shape in (shapes or {k: feature_kind(k).shape for k in PUBLISHED}).items():
        (root / kind).mkdir(parents=True, exist_ok=True)
        for vid in video_ids:
            np.save(root / kind / f"{vid}.npy", rng.random(shape, dtype=np.float32))
    return root


def write_weak_csv(path: Path, filenames: list[str], labels: np.ndarray, classes: tuple[str, ...]) -> Path:
    """A weak split file in the LLP format."""
    lines = ["filename\tevent_labels"]
    for name, row in zip(filenames, labels):
        lines.append(f"{name}\t{','.join(classes[i] for i in np.flatnonzero(row))}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextmanager
def small_tmpfs(folder: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `folder`: a real file system that fills up. Mounting needs root
    (the test is skipped where it is refused); it is unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                           capture_output=True, text=True)
    if mount.returncode:
        refused = os.geteuid() != 0 or any(word in mount.stderr.lower() for word in ("permission", "not permitted"))
        if refused:
            pytest.skip(f"cannot mount a small tmpfs here (needs root): {mount.stderr.strip()}")
        raise AssertionError(f"mount -t tmpfs failed: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_disk(disk: Path, leave: int) -> None:
    """Fill `disk` with a file (`filler`), leaving `leave` bytes free."""
    stat = os.statvfs(disk)
    (disk / "filler").write_bytes(bytes(max(0, stat.f_bavail * stat.f_frsize - leave)))


DEMO_BUDGET_S = 600


@dataclass(frozen=True)
class DemoRun:
    workdir: Path
    seconds: float

    def read_json(self, name: str) -> dict:
        return json.loads((self.workdir / name).read_text(encoding="utf-8"))

    def shards(self) -> list[str]:
        return sorted(p.name for p in (self.workdir / "results/features").iterdir())


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`make demo`'s pipeline up to metrics.json from a fresh copy (`snakemake --cores 2
    results/metrics.json`, offline); its figures, viewer and report: test_workflow's three_seeds."""
    workdir = copy_workflow(tmp_path_factory.mktemp("demo"))
    start = time.monotonic()
    run_snakemake(workdir, "--cores", "2", "results/metrics.json", timeout=3 * DEMO_BUDGET_S)
    return DemoRun(workdir, time.monotonic() - start)
