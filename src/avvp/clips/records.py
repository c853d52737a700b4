"""Clip records: what became of each clip (downloaded, decodable, why not), as a TSV manifest.

Missing videos are data, not crashes: every step that can lose a clip says so here, with a reason a
person can act on, and later steps use only the usable clips.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from avvp.base.atomic import atomic_output

HEADER = ("filename", "video_id", "status", "reason")
# `no_audio`: decodable, no audio track; still used, its WAV is silence (the reason says so).
STATUSES = ("ok", "no_audio", "unavailable")
USABLE = ("ok", "no_audio")


@dataclass(frozen=True)
class ClipRecord:
    filename: str
    video_id: str
    status: str
    reason: str = ""

    def __post_init__(self) -> None:
        # The filename names the clip's outputs (VIDEOS/<filename>.mp4, FRAMES/<filename>/, which a
        # failed clip has removed): `..`, `x/../y` or `/abs` would reach outside those folders.
        if self.filename in ("", ".", "..") or any(c in self.filename for c in "/\\\0"):
            raise ValueError(f"{self.filename!r} is not a clip filename (one name, no folder part)")
        if self.status not in STATUSES:
            raise ValueError(f"{self.filename}: status {self.status!r} is not one of {STATUSES}")
        # One TSV line per record, whatever a tool's message looked like.
        object.__setattr__(self, "reason", re.sub(r"\s+", " ", self.reason).strip())

    @property
    def usable(self) -> bool:
        """The clip can be used downstream (`ok` or `no_audio`)."""
        return self.status in USABLE


def read_records(path: str | Path) -> list[ClipRecord]:
    """Read a records TSV; errors name the file and the 1-based line."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or tuple(rows[0]) != HEADER:
        raise ValueError(f"{path}:1: expected the header {chr(9).join(HEADER)!r}")
    records = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(HEADER):
            raise ValueError(f"{path}:{line}: expected {len(HEADER)} tab-separated fields, got {len(row)}")
        try:
            records.append(ClipRecord(*row))
        except ValueError as err:
            raise ValueError(f"{path}:{line}: {err}") from None
    return records


def write_records(records: Iterable[ClipRecord], path: str | Path) -> None:
    """Write a records TSV atomically (a temp file in the same folder, then os.replace)."""
    with atomic_output(path, "w") as fh:
        fh.write("\t".join(HEADER) + "\n")
        for r in records:
            fh.write(f"{r.filename}\t{r.video_id}\t{r.status}\t{r.reason}\n")


def gather_records(shard_records: Iterable[str | Path], out: str | Path) -> dict[str, int]:
    """The shards' records as one manifest sorted by filename; a clip in two shards is an error.

    Returns how many clips have each status.
    """
    records = [r for path in shard_records for r in read_records(path)]
    repeated = [name for name, n in Counter(r.filename for r in records).items() if n > 1]
    if repeated:
        raise ValueError(f"clips recorded by more than one shard: {repeated[:5]}")
    write_records(sorted(records, key=lambda r: r.filename), out)
    return dict(Counter(r.status for r in records))
