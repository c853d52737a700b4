"""A throwaway single-node SLURM cluster on this host, for tests of the SLURM profile.

Why its own munged and config: the test must not depend on (or disturb) any SLURM or
munge that the machine may already run, so everything lives in one temporary folder:
a fresh munge key and socket, a slurm.conf naming only this host on 127.0.0.1 with free
ports, and the state, spool and log folders. The settings avoid what a container or
sandbox usually lacks: no cgroups (proctrack/linuxproc, task/none), no accounting
database (so job outcomes are read with squeue, kept for an hour by MinJobAge).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scancel")


def slurm_missing_reason() -> str | None:
    """Why a local SLURM cannot be started here (programs missing), or None when it can."""
    missing = [p for p in PROGRAMS if _find(p) is None]
    if not missing:
        return None
    return (
        f"SLURM is not installed here (missing: {', '.join(missing)}); "
        "`scripts/install_system_deps.sh` installs slurm-wlm and munge when run as root"
    )


def _find(program: str) -> str | None:
    """Locate a program, also in the sbin folders that a non-root PATH often lacks."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin:/usr/local/sbin"
    return shutil.which(program, path=path)


@dataclass(frozen=True)
class Job:
    """One job as slurmctld remembers it."""

    job_id: str
    name: str
    comment: str
    partition: str
    state: str
    tres: str
    cpus: str
    min_memory: str
    time_limit: str


@dataclass(frozen=True)
class SlurmCluster:
    """Handle on a running cluster: its config file, environment and logs."""

    root: Path
    conf: Path
    node: str

    @property
    def env(self) -> dict[str, str]:
        """The caller's environment with SLURM_CONF pointing at this cluster and its client
        folder first on PATH (see `_write_clients`)."""
        path = f"{self.root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(
            list(args), env=self.env, capture_output=True, text=True, check=check, timeout=60
        )

    def jobs(self) -> list[Job]:
        """Every job the controller knows, finished ones included."""
        fields = "JobID,Name,Comment,Partition,State,tres-per-job,NumCPUs,MinMemory,TimeLimit"
        out = self.run("squeue", "--noheader", "--states=all", f"--Format={fields.replace(',', ':300|,')}:300").stdout
        rows = [line.split("|") for line in out.splitlines() if line.strip()]
        return [Job(*(field.strip() for field in row)) for row in rows]

    def wait_for_jobs(self, timeout: float = 60.0) -> list[Job]:
        """Wait until no job is pending or running; return all jobs."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            if all(j.state not in {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING"} for j in jobs):
                return jobs
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still active after {timeout} s: {jobs}")
            time.sleep(0.5)


def _free_ports(n: int) -> list[int]:
    """n distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def _real_memory_mb() -> int:
    """Memory to declare for the node: a bit below what is available, so slurmd agrees."""
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    available_kb = int(fields["MemAvailable"].split()[0])
    return max(512, int(available_kb / 1024 * 0.9))


def write_config(root: Path, node: str, gpus: int = 0) -> Path:
    """Write slurm.conf (and gres.conf when gpus > 0) for a one-node cluster under root."""
    user = pwd.getpwuid(os.getuid()).pw_name
    ports = _free_ports(2)
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    lines = [
        "ClusterName=avvptest",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ports[0]}",
        f"SlurmdPort={ports[1]}",
        f"SlurmUser={user}",
        f"SlurmdUser={user}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge-run' / 'munge.socket'}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        # No cgroups: a container or sandbox rarely lets slurmd manage them.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        # No accounting database: outcomes come from slurmctld's memory, kept an hour.
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MinJobAge=3600",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "MpiDefault=none",
        "ReturnToService=2",
        "MailProg=/bin/true",
        *(["GresTypes=gpu"] if gpus else []),
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} "
        f"RealMemory={_real_memory_mb()}{gres} State=UNKNOWN",
        f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
    ]
    conf = root / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    if gpus:
        # A stand-in device: enough for SLURM to schedule and export gpu gres on a
        # machine without one; jobs then see CUDA_VISIBLE_DEVICES but no real GPU.
        (root / "gres.conf").write_text(
            "".join(f"NodeName={node} Name=gpu File=/dev/null\n" for _ in range(gpus))
        )
    return conf


def _write_clients(root: Path, conf: Path) -> None:
    """`srun` under root/bin that names this cluster's config.

    A real cluster's clients find /etc/slurm/slurm.conf; this one's config lives under root and
    is named by SLURM_CONF, which the SLURM plugin's job step removes (with every SLURM_*
    variable) before it calls srun inside a job. The job's PATH (exported from the submitting
    environment) leads srun to this wrapper instead.
    """
    real = _find("srun") or "srun"
    (root / "bin").mkdir(exist_ok=True)
    wrapper = root / "bin" / "srun"
    wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{conf}" exec "{real}" "$@"\n')
    wrapper.chmod(0o755)


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a daemon in the foreground as our child, its output going to log."""
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a daemon we started, killing it if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _tail(path: Path, n: int = 15) -> str:
    if not path.exists():
        return f"({path.name}: absent)"
    return f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def _wait_until_idle(cluster: SlurmCluster, procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Block until the node reports idle; fail with the daemons' logs if it never does."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        res = cluster.run("sinfo", "--noheader", "--Node", "--format=%T", check=False)
        state = res.stdout.strip()
        if res.returncode == 0 and state == "idle":
            return
        time.sleep(0.5)
    logs = "\n".join(_tail(p) for p in sorted((cluster.root / "log").iterdir()))
    raise RuntimeError(f"SLURM node not idle after start (state {state!r}):\n{logs}")


@contextmanager
def single_node_slurm(root: Path, gpus: int = 0, timeout: float = 60.0) -> Iterator[SlurmCluster]:
    """Run munged, slurmctld and slurmd under root; stop them and their jobs on exit."""
    root = Path(root).resolve()
    for sub in ("munge-key", "munge-run", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "munge-key", 0o700)
    os.chmod(root / "munge-run", 0o755)  # job users must reach the socket
    key = root / "munge-key" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o600)

    node = socket.gethostname().split(".")[0]
    cluster = SlurmCluster(root=root, conf=write_config(root, node, gpus), node=node)
    _write_clients(root, cluster.conf)
    log = root / "log"
    with ExitStack() as stack:
        munged = _start(
            [
                _find("munged") or "munged", "--foreground", "--force",
                f"--key-file={key}",
                f"--socket={root / 'munge-run' / 'munge.socket'}",
                f"--pid-file={root / 'munge-run' / 'munged.pid'}",
                f"--seed-file={root / 'munge-key' / 'munged.seed'}",
                f"--log-file={log / 'munged.log'}",
            ],
            log / "munged.out",
            cluster.env,
        )
        stack.callback(_stop, munged)
        ctld = _start([_find("slurmctld") or "slurmctld", "-D"], log / "slurmctld.out", cluster.env)
        stack.callback(_stop, ctld)
        slurmd = _start([_find("slurmd") or "slurmd", "-D", "-N", node], log / "slurmd.out", cluster.env)
        stack.callback(_stop, slurmd)
        stack.callback(_cancel_all, cluster)
        _wait_until_idle(cluster, [munged, ctld, slurmd], timeout)
        yield cluster


def _cancel_all(cluster: SlurmCluster) -> None:
    """Cancel every job still queued or running, so that none outlives the cluster."""
    res = cluster.run("squeue", "--noheader", "--format=%i", check=False)
    active = res.stdout.split() if res.returncode == 0 else []
    if active:
        cluster.run("scancel", *active, check=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and cluster.run(
            "squeue", "--noheader", "--format=%i", check=False
        ).stdout.strip():
            time.sleep(0.5)
