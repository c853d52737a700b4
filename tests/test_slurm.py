"""The SLURM profile (profiles/slurm) on a real single-node SLURM started by the tests.

Skipped only where slurm-wlm/munge are not installed (scripts/install_system_deps.sh
installs them as root). Everything else runs for real: munged, slurmctld, slurmd, sbatch,
srun, and Snakemake with the maintained SLURM executor plugin (snakemake-executor-plugin-slurm),
its job status read with squeue as the profile says (the test cluster has no accounting database).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm_cluster import Job, SlurmCluster, single_node_slurm, slurm_missing_reason
from workflow_helpers import copy_workflow, environment, snakemake_command, write_config

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"

pytestmark = pytest.mark.skipif(
    slurm_missing_reason() is not None, reason=slurm_missing_reason() or ""
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """One cluster for the module; its node advertises one (stand-in) GPU."""
    with single_node_slurm(tmp_path_factory.mktemp("slurm"), gpus=1) as c:
        yield c


def snakemake(
    cluster: SlurmCluster, workdir: Path, *args: str, profile: str | Path = PROFILE, timeout: float = 400
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake with the SLURM profile in workdir against the test cluster.

    Jobs inherit this environment through sbatch, so they find the venv's avvp and snakemake.
    """
    env = environment()
    env.update(SLURM_CONF=str(cluster.conf), PATH=f"{cluster.root / 'bin'}{os.pathsep}{env['PATH']}")
    return subprocess.run(
        snakemake_command("--profile", str(profile), "--seconds-between-status-checks", "2", *args),
        cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
    )


def new_jobs(cluster: SlurmCluster, before: list[Job]) -> list[Job]:
    """Jobs submitted since `before` was taken, once all of them have ended."""
    seen = {j.job_id for j in before}
    return [j for j in cluster.wait_for_jobs() if j.job_id not in seen]


TRIVIAL = textwrap.dedent(
    """
    rule all:
        input: "out/joined.txt", "out/gpu.txt"

    rule first:
        output: "out/first.txt"
        threads: 2
        resources: mem_mb=300, runtime=5
        shell: "echo $SLURM_JOB_ID $SLURM_CPUS_PER_TASK > {output}"

    rule joined:
        input: "out/first.txt"
        output: "out/joined.txt"
        shell: "cat {input} > {output}; echo $SLURM_JOB_ID >> {output}"

    rule gpu:
        output: "out/gpu.txt"
        resources: mem_mb=200, gpu=1
        shell: "echo $SLURM_JOB_ID $CUDA_VISIBLE_DEVICES > {output}"
    """
)


def rule_of(job: Job) -> str:
    """The rule a job ran: the plugin names jobs by run and puts `rule_<name>[_wildcards_...]` in the comment."""
    return job.comment.removeprefix("rule_").split("_wildcards_")[0]


def test_profile_runs_trivial_workflow_on_slurm(cluster: SlurmCluster, tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(TRIVIAL)
    before = cluster.jobs()
    done = snakemake(cluster, tmp_path, "--cores", "2", "--set-resources", "gpu:slurm_partition=debug")
    assert done.returncode == 0, done.stderr[-4000:]

    jobs = {j.job_id: j for j in new_jobs(cluster, before)}
    assert sorted(rule_of(j) for j in jobs.values()) == ["first", "gpu", "joined"]
    assert len({j.name for j in jobs.values()}) == 1  # one run id for the whole run
    assert all(j.state == "COMPLETED" for j in jobs.values()), jobs

    first_id, cpus = (tmp_path / "out" / "first.txt").read_text().split()
    joined = (tmp_path / "out" / "joined.txt").read_text().split()
    gpu_id, visible = (tmp_path / "out" / "gpu.txt").read_text().split()
    assert joined[:2] == [first_id, cpus] and joined[2] != first_id  # two separate jobs
    assert cpus == "2" and jobs[first_id].cpus == "2"  # threads -> --cpus-per-task
    assert jobs[first_id].min_memory == "300M"  # mem_mb -> --mem
    assert jobs[first_id].time_limit == "5:00"  # runtime -> --time (minutes)
    assert jobs[gpu_id].tres == "gres:gpu:1" and visible == "0"  # gpu -> --gpus
    assert jobs[gpu_id].partition == "debug"  # slurm_partition, here set per rule
    assert "gpu" not in jobs[first_id].tres and "gpu" not in jobs[joined[2]].tres  # none when gpu is 0
    for job_id, job in jobs.items():  # SLURM's own job logs, kept by the profile
        assert list((tmp_path / ".snakemake" / "slurm_logs" / f"rule_{rule_of(job)}").rglob(f"{job_id}.log"))

    again = snakemake(cluster, tmp_path, "--cores", "2")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert {j.job_id for j in new_jobs(cluster, before)} == set(jobs)  # nothing resubmitted


def test_failed_job_is_reported_as_failed(cluster: SlurmCluster, tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(
        'rule broken:\n    output: "out/never.txt"\n    shell: "echo trying; exit 3"\n'
    )
    before = cluster.jobs()
    start = time.monotonic()
    done = snakemake(cluster, tmp_path, "--cores", "1", "--restart-times", "0", timeout=120)
    assert done.returncode != 0
    assert time.monotonic() - start < 90  # the failure was noticed, not waited out
    (job,) = new_jobs(cluster, before)
    assert rule_of(job) == "broken" and job.state == "FAILED"
    assert "Error in rule broken" in done.stderr


# The demo made tiny: one shard, the fewest clips the schema allows, two epochs.
TINY_DEMO = {
    "dataset": {"name": "tiny demo on SLURM", "mode": "demo", "n_shards": 1, "demo": {"n_videos": 5, "seed": 0}},
    "stages": {"han": {"epochs": 2, "batch_size": 4}},
}


@pytest.mark.slow
def test_demo_to_metrics_on_slurm(cluster: SlurmCluster, tmp_path: Path) -> None:
    copy_workflow(tmp_path)  # a working copy, as a user's clone would be
    write_config(tmp_path / "tiny.yaml", TINY_DEMO)
    before = cluster.jobs()

    done = snakemake(
        cluster, tmp_path, "results/metrics.json", "--cores", "2", "--configfile", "tiny.yaml",
        profile="profiles/slurm", timeout=1500,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]

    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    scores = metrics["methods"]["han"]["seeds"]["1"]
    assert set(scores["segment_level"]) == {"audio", "visual", "audio_visual", "type_at_av", "event_at_av"}

    # Every job Snakemake ran outside its own process went through sbatch, one SLURM job each.
    remote_rules = re.findall(r"^rule (\w+):$", log, flags=re.MULTILINE)
    jobs = {j.job_id: j for j in new_jobs(cluster, before)}
    assert remote_rules and len(remote_rules) == len(jobs)
    assert sorted(rule_of(j) for j in jobs.values()) == sorted(remote_rules)
    assert all(j.state == "COMPLETED" for j in jobs.values()), jobs
    assert {"extract", "train", "evaluate"} <= set(remote_rules)
