#!/usr/bin/env python3
"""Snakemake cluster-generic submit command for SLURM.

Called as `submit.py JOBSCRIPT`. A format string in the profile cannot leave an option
out, so the job's threads and resources are read from the `# properties = {...}` line
that Snakemake writes into every jobscript and turned into sbatch options here: threads
-> --cpus-per-task, mem_mb -> --mem, runtime (minutes) -> --time, gpu -> --gres=gpu:N
only when N > 0. Partition, account and the like come from sbatch's own SBATCH_*
environment variables. Prints the SLURM job id, as the executor expects.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROPERTIES = "# properties = "
LOG_DIR = Path(".snakemake") / "slurm_logs"


def read_properties(jobscript: Path) -> dict:
    """The job description Snakemake embedded in the jobscript."""
    for line in jobscript.read_text().splitlines():
        if line.startswith(PROPERTIES):
            return json.loads(line[len(PROPERTIES):])
    raise ValueError(f"{jobscript}: no '{PROPERTIES.strip()}' line")


def job_name(props: dict) -> str:
    """The rule's name, or the group's for a group job."""
    return props.get("rule") or f"group-{props.get('groupid', 'job')}"


def sbatch_options(props: dict) -> list[str]:
    """sbatch options for one Snakemake job (single or group)."""
    resources = props.get("resources") or {}
    name = job_name(props)
    options = [
        "--parsable",
        f"--job-name=smk-{name}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={max(1, int(props.get('threads') or 1))}",
        f"--output={LOG_DIR / name / '%j.log'}",
    ]
    if resources.get("mem_mb"):
        options.append(f"--mem={int(resources['mem_mb'])}")
    if resources.get("runtime"):
        options.append(f"--time={int(resources['runtime'])}")
    gpus = int(resources.get("gpu") or 0)
    if gpus > 0:
        options.append(f"--gres=gpu:{gpus}")
    return options


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: submit.py JOBSCRIPT", file=sys.stderr)
        return 2
    jobscript = Path(argv[0])
    props = read_properties(jobscript)
    options = sbatch_options(props)
    (LOG_DIR / job_name(props)).mkdir(parents=True, exist_ok=True)  # sbatch does not create it
    done = subprocess.run(["sbatch", *options, str(jobscript)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"sbatch {' '.join(options)} failed: {done.stderr.strip()}", file=sys.stderr)
        return done.returncode
    # --parsable prints "jobid" or "jobid;cluster"; the status command gets it back.
    print(done.stdout.strip().split(";")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
