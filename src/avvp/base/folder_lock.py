"""One writer per folder, and a job that stops when whoever started it is gone.

`folder_lock` takes an exclusive `flock` on a lock file in the folder and writes the owner (PID,
host, start time) into it. The kernel drops the lock when its process ends, however it ends (a
SIGKILL too), so a dead owner's folder is simply taken over; a live one's is refused with an error
naming its PID. The same process may take a folder's lock again (nested: the CLI and the training
loop both take it).

`ParentWatch` serves a job started by a workflow engine: when its parent process ends (a Snakemake
killed with SIGKILL leaves its jobs running, adopted by PID 1 or a subreaper), the main thread gets
a KeyboardInterrupt, so the job stops instead of writing beside the job of the next run.
"""
from __future__ import annotations

import _thread
import datetime
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: no locking
    fcntl = None

_HELD: dict[str, tuple[int, int]] = {}  # real path of a lock file -> (its descriptor, nesting depth)


class FolderBusy(RuntimeError):
    """Another live process holds the folder's lock."""


def _owner(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "an unknown process"


@contextmanager
def folder_lock(folder: str | Path, name: str = "train.lock", what: str = "training") -> Iterator[Path]:
    """Hold folder/name exclusively for the block; FolderBusy names the live owner otherwise."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    key = os.path.realpath(path)
    if fcntl is None:
        yield path
        return
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
        try:
            yield path
        finally:
            fd, depth = _HELD[key]
            _HELD[key] = (fd, depth - 1)
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise FolderBusy(f"{folder} is in use by another {what} ({_owner(path)}, holding {path}): "
                         f"wait for it to end or stop it") from None
    try:
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} on {socket.gethostname()} since {started}\n".encode())
        _HELD[key] = (fd, 1)
        yield path
    finally:
        _HELD.pop(key, None)
        os.close(fd)  # releases the lock; the file stays (removing it would race with a new owner)


class ParentWatch:
    """Interrupt the main thread (KeyboardInterrupt) once this process's parent has ended; `fired`
    says whether it did. Checks every `interval` seconds from a daemon thread."""

    def __init__(self, interval: float = 1.0) -> None:
        self.parent = os.getppid()
        self.interval = interval
        self.fired = False
        self._previous: Any = signal.SIG_DFL
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="parent-watch", daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            if os.getppid() != self.parent:
                self.fired = True
                print(f"the process that started this one (PID {self.parent}) has ended: stopping",
                      file=sys.stderr, flush=True)
                _thread.interrupt_main()
                return

    def _on_sigint(self, signum: int, frame: Any) -> None:
        # interrupt_main() runs the SIGINT handler; a process started in the background ignores
        # SIGINT (a shell's `&`), so this one raises for the watch and otherwise does as before.
        if self.fired or self._previous is signal.default_int_handler:
            raise KeyboardInterrupt
        if callable(self._previous):
            self._previous(signum, frame)

    def __enter__(self) -> ParentWatch:
        self._previous = signal.getsignal(signal.SIGINT)
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._on_sigint)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._previous is not None:  # None: a handler not set from Python, left in place
            signal.signal(signal.SIGINT, self._previous)
