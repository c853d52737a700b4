"""What every step says about files: the suffixes of video files, and a file's sha256.

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
