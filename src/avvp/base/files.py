"""What every step says about files: the suffixes of video files, a file's sha256, and why a
weights-only `torch.load` refused one.

Kept apart from the heavier modules so that hashing a file or recognising a video imports
neither numpy nor torch.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi")


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_refusal(err: BaseException) -> str:
    """Why `torch.load(..., weights_only=True)` failed, on one line for a one-line error.

    Torch's refusal of a file that names code to run (a pickle's `__reduce__`) is a paragraph whose
    first line advises loading it without the restriction; what counts is the line naming what the
    file asked for. Any other error gives its first line.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        detail = next((line for line in lines[1:] if not line.startswith("Check the documentation")), "")
        detail = detail.removeprefix("WeightsUnpickler error: ").split(". ")[0].rstrip(".")
        return f"refused by a weights-only load, nothing in it was run: {detail or 'no reason given'}"
    return lines[0] if lines else type(err).__name__
