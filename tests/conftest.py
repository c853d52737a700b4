"""Shared fixtures: the real LLP annotation files, random features in the released layout, and the
demo run end to end (once per session, shared by the workflow test modules)."""
from __future__ import annotations

import json
import time
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
    """`make demo` from a fresh copy: `snakemake --cores 2 results/metrics.json`, offline."""
    workdir = copy_workflow(tmp_path_factory.mktemp("demo"))
    start = time.monotonic()
    run_snakemake(workdir, "--cores", "2", "results/metrics.json", timeout=3 * DEMO_BUDGET_S)
    return DemoRun(workdir, time.monotonic() - start)
