#!/usr/bin/env python3
"""Snakemake cluster-generic status command for SLURM without an accounting database.

Called as `status.py JOBID`; prints `running`, `success` or `failed`. Without sacct
the only record of a job is slurmctld's memory, which `squeue --states=all` reads,
finished jobs included, until MinJobAge (300 s by default) after they end; Snakemake
polls far more often than that. A job the controller no longer knows is reported as
failed (its outcome cannot be known); a controller that does not answer is reported
as running, so that a restarting slurmctld does not abort the workflow.
"""

from __future__ import annotations

import subprocess
import sys
import time

SUCCESS = {"COMPLETED"}
FAILED = {
    "BOOT_FAIL", "CANCELLED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT",
}  # every other state (PENDING, RUNNING, COMPLETING, REQUEUED, SUSPENDED, ...) is still running
UNKNOWN_JOB = "Invalid job id"


def slurm_state(job_id: str, attempts: int = 3, pause_s: float = 2.0) -> str | None:
    """The job's SLURM state; None if the controller does not know the job.

    Raises ConnectionError when squeue keeps failing for another reason.
    """
    error = ""
    for attempt in range(attempts):
        done = subprocess.run(
            ["squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--format=%T"],
            capture_output=True, text=True,
        )
        if done.returncode == 0:
            words = done.stdout.split()
            return words[0] if words else None
        if UNKNOWN_JOB in done.stderr:
            return None
        error = done.stderr.strip()
        if attempt + 1 < attempts:
            time.sleep(pause_s)
    raise ConnectionError(error)


def verdict(state: str | None) -> str:
    """Map a SLURM state to what Snakemake understands."""
    if state is None:
        return "failed"
    state = state.rstrip("+")  # e.g. "CANCELLED+" in some displays
    if state in SUCCESS:
        return "success"
    if state in FAILED:
        return "failed"
    return "running"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: status.py JOBID", file=sys.stderr)
        return 2
    job_id = argv[0].split(";")[0]
    try:
        state = slurm_state(job_id)
    except ConnectionError as err:
        print(f"status.py: squeue failed for job {job_id}, will ask again: {err}", file=sys.stderr)
        print("running")
        return 0
    if state is None:
        print(f"status.py: slurmctld does not know job {job_id} (ended long ago?)", file=sys.stderr)
    print(verdict(state))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
