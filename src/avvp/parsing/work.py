"""A parse run's private work folder inside its output folder.

Several runs may share one output folder, so each makes its own `.parse-work-*` folder and records
in it who owns it (PID, host, the process's start time). At start a run removes only the folders
whose owner is gone: its PID no longer runs on this host, or now belongs to a process started at
another time (a reused PID). A live run's folder, another host's, and a fresh one whose owner
record is not written yet are left alone; one without a record (an older avvp) after an hour.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from avvp.base.atomic import naming

PREFIX = ".parse-work-"
OWNER_FILE = "owner.json"
UNOWNED_GRACE_S = 3600.0  # a folder without an owner record is kept this long (it may be just made)


def process_start(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot, /proc), to tell a reused PID from its owner;
    None where /proc has no such process or does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name before ")" may hold spaces


def owner_record(pid: int | None = None) -> dict[str, Any]:
    """What identifies a running process (this one by default) across PID reuse."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "started": process_start(pid)}


def _pid_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        pass
    return True


def owner_alive(owner: Mapping[str, Any]) -> bool:
    """Whether the run that wrote `owner` may still be running (another host's: assumed so)."""
    if owner.get("host") != socket.gethostname():
        return True
    pid = owner["pid"]
    if not _pid_runs(pid):
        return False
    started, now = owner.get("started"), process_start(pid)
    return started is None or now is None or started == now


def _read_owner(folder: Path) -> dict[str, Any] | None:
    """The folder's owner record; None when it has none (or an unreadable one)."""
    try:
        owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    valid = isinstance(owner, dict) and isinstance(owner.get("pid"), int) and owner["pid"] > 0
    return owner if valid else None


def is_stale(folder: Path) -> bool:
    """Whether a work folder was left by a run that is gone."""
    owner = _read_owner(folder)
    if owner is None:
        try:
            return time.time() - folder.stat().st_mtime > UNOWNED_GRACE_S
        except OSError:
            return False
    return not owner_alive(owner)


def clear_stale(out: Path) -> list[Path]:
    """Remove the work folders in `out` of runs that are gone (killed); returns them."""
    stale = [folder for folder in out.glob(f"{PREFIX}*") if folder.is_dir() and is_stale(folder)]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


@contextmanager
def run_work_folder(out: Path) -> Iterator[Path]:
    """This run's own work folder in `out` (stale ones cleared first), removed when the run ends."""
    clear_stale(out)
    with naming(out, always=True):  # a read-only folder: named, not the work folder it refused
        folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=out))
    try:
        with naming(folder / OWNER_FILE):  # a full disk says where
            (folder / OWNER_FILE).write_text(json.dumps(owner_record()), encoding="utf-8")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
