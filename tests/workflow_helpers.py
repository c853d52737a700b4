"""Running the Snakemake workflow from tests: a copy of the workflow in a temp folder, real
`snakemake` runs and dry runs, and the list of jobs a dry run plans."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# What a fresh clone holds for the workflow (src/ is not needed: avvp is installed).
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "envs", "profiles", "data")
_JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) ", re.MULTILINE)


@dataclass(frozen=True)
class Job:
    """A planned or finished job: its rule and its wildcards (as `name=value` pairs)."""

    rule: str
    wildcards: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        return dict(self.wildcards).get(name)


def copy_workflow(dest: Path) -> Path:
    """A fresh-clone-like copy of the workflow in `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def environment() -> dict[str, str]:
    """The test's environment with this interpreter's bin folder (snakemake, avvp) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def snakemake_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def run_snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run snakemake in `workdir`; fails the test with its output when it fails."""
    proc = subprocess.run(snakemake_command(*args), cwd=workdir, env=environment(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc


def job_blocks(output: str) -> dict[int, Job]:
    """Jobid -> job, from the `rule X:` blocks of snakemake's output (their indented `jobid:` and
    `wildcards:` lines)."""
    jobs: dict[int, Job] = {}
    rule, fields = None, {}

    def close() -> None:
        if rule is not None and "jobid" in fields:
            pairs = [item.split("=", 1) for item in fields.get("wildcards", "").split(", ") if item]
            jobs[int(fields["jobid"])] = Job(rule, tuple((k, v) for k, v in pairs))

    for line in output.splitlines():
        header = _JOB_HEADER.match(line)
        if header:
            close()
            rule, fields = header.group(1), {}
        elif rule is not None and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            fields[key] = value
        elif rule is not None:
            close()
            rule = None
    close()
    return jobs


def finished_jobs(output: str) -> list[Job]:
    """The jobs that a (possibly killed) run's output reports as finished."""
    blocks = job_blocks(output)
    return [blocks[int(m.group(1))] for m in _FINISHED.finditer(output)]


def planned_jobs(workdir: Path, *args: str, target: str = "results/metrics.json") -> list[Job]:
    """The jobs a dry run of `target` would run."""
    output = run_snakemake(workdir, target, "-n", "--cores", "1", *args).stdout
    return list(job_blocks(output).values())


def rule_counts(jobs: list[Job]) -> Counter:
    return Counter(job.rule for job in jobs)


def write_config(path: Path, data: dict) -> Path:
    """A config file for --configfile. Unless `data` names its experiment, its outputs go to results/
    itself (`experiment: ""`), where the tests read them as the demo's; test_experiments.py covers
    the experiment folders."""
    path.write_text(yaml.safe_dump({"experiment": "", **data}, sort_keys=False), encoding="utf-8")
    return path


def load_config(workdir: Path, name: str = "config/config.yaml") -> dict:
    return yaml.safe_load((workdir / name).read_text(encoding="utf-8"))


def shard_of(video_id: str, n_shards: int) -> int:
    """The documented shard rule (first 4 bytes of the id's SHA-1, modulo n), stated independently
    of the workflow so a test can predict which shard a clip lands in."""
    return int.from_bytes(hashlib.sha1(video_id.encode()).digest()[:4], "big") % n_shards


def small_demo_dataset(dest: Path, per_split: dict[str, int]) -> dict:
    """The first clips of each demo split as a small data set in the LLP file format
    (filename -> avvp.clips.demo.DemoClip)."""
    from avvp.clips.demo import plan_clips, write_annotations

    clips = plan_clips(8 * max(per_split.values()), seed=0)
    chosen = [c for split, n in per_split.items() for c in [c for c in clips if c.split == split][:n]]
    write_annotations(chosen, dest)
    return {c.filename: c for c in chosen}


def annotations(folder: str) -> dict[str, str]:
    """The `dataset.annotations` config of LLP-format files in `folder` (as small_demo_dataset writes)."""
    return {"classes": f"{folder}/classes.txt", "train": f"{folder}/train.csv", "val": f"{folder}/val.csv",
            "test": f"{folder}/test.csv", "eval_audio": f"{folder}/eval_audio.csv",
            "eval_visual": f"{folder}/eval_visual.csv"}


FEATURE_SHAPES = {"vggish": (10, 128), "res152": (80, 2048), "r2plus1d_18": (10, 512)}


def write_random_features(root: Path, filenames: list[str], seed: int = 0) -> None:
    """Random LLP-shaped features of `filenames` in the released layout (root/<kind>/<id>.npy)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for kind, shape in FEATURE_SHAPES.items():
        (root / kind).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            np.save(root / kind / f"{name[:11]}.npy", rng.random(shape, dtype=np.float32))
