"""Writing files and folders so that readers never see them half-written under their final name.

A failure removes what was written so far; an OSError without a file name (a full disk hit while
writing through a file handle) is raised again naming the final path, so messages say where. A full
disk always names the final path (a copy's error names its source, a tool's its temporary file), also
where a library wrapped it in an error of its own (torch.save's "unexpected pos" RuntimeError).
A SIGTERM (a scheduler or Snakemake stopping a job) kills Python without running any `finally`,
which would leave the temporary files and folders behind: `exit_on_sigterm` makes it raise
SystemExit instead, so that these cleanups (and a parse run's work folder) run.
"""
from __future__ import annotations

import errno
import filecmp
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def exit_on_sigterm() -> None:
    """From now on a SIGTERM raises SystemExit(143) in the main thread (128 + SIGTERM, the status a
    killed process reports to a shell), so `finally` blocks and these writers' cleanups run, and
    `subprocess.run` kills its child. Later SIGTERMs are ignored, so that the cleanup is not cut
    short (SIGKILL still ends the process). Call it from the main thread of a program's entry point."""
    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


_FULL_DISK = (errno.ENOSPC, errno.EDQUOT)  # no space left, or none left to this user (a quota)


def full_disk(err: BaseException) -> OSError | None:
    """The full-disk OSError that `err` is or was raised from (its cause or unsuppressed context):
    libraries report one in errors of their own, torch.save as "unexpected pos"."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL_DISK:
            return seen
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None


@contextmanager
def naming(path: str | Path, always: bool = False) -> Iterator[None]:
    """OSErrors of the block name `path` where they name no file, and always for a full disk (it is
    about where the block writes) or with `always` (a temporary name inside a folder being filled,
    or one a read-only disk refused, means nothing to a reader). An error that wraps a full disk
    becomes that OSError, its text kept."""
    try:
        yield
    except OSError as err:
        if err.errno is None and type(err) is OSError:  # numpy's short write says only "N requested and M written"
            said = (str(err).splitlines() or ["no message"])[0]  # moviepy's runs on for lines: one line
            if shutil.disk_usage(Path(path).parent).free == 0:  # what was written still fills the disk
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({said})", str(path)) from err
            raise OSError(None, f"could not write it whole ({said})", str(path)) from err
        if err.errno is not None and (err.filename is None or always or err.errno in _FULL_DISK):
            raise type(err)(err.errno, err.strerror, str(path)) from err
        raise
    except Exception as err:
        full = full_disk(err)
        if full is None:
            raise
        first_line = (str(err).splitlines() or [type(err).__name__])[0]
        raise OSError(full.errno, f"{full.strerror} ({first_line})", str(path)) from err


@contextmanager
def atomic_output(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path, always=True):  # a read-only folder: the file asked for, not a temporary name
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    try:
        with naming(path), os.fdopen(fd, mode, **text) as fh:
            yield fh
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder next to `path` to fill; it replaces `path` only if the block succeeds.

    An old folder at `path` is moved aside first and deleted after the swap, so `path` holds
    either the old complete folder or the new one, never a mixture.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming(path, always=True):
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with naming(path, always=True):
            yield tmp
        os.chmod(tmp, 0o755)
        old = path.parent / f".{path.name}.{secrets.token_hex(4)}.old" if path.exists() else None
        if old is not None:
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_path(path: str | Path, suffix: str = "", keep_identical: bool = False) -> Iterator[Path]:
    """A temporary name next to `path` for a tool that writes a file by name (ffmpeg, moviepy); the
    file replaces `path` only if the block succeeds, and is removed otherwise.

    `keep_identical`: when `path` already holds the same bytes it is left untouched (its time too),
    so that making the same file again does not make every later step look out of date.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp{suffix}"
    try:
        with naming(path):
            yield tmp
        if keep_identical and path.is_file() and filecmp.cmp(tmp, path, shallow=False):
            return
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):  # not unlink(missing_ok): a read-only disk refuses even that, hiding the error
            tmp.unlink()
