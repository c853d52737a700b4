"""Events from segment decisions: maximal runs of 1s, the event table users read, and the events
of a parsed video.

An event is a maximal run of consecutive positive segments of one class (PROTOCOL §5). The run
finder works on any number of leading axes at once, so evaluation, the event table and the parser
share it. The table (`EventRow`) has the dense LLP annotation format plus a `modality` column; one
LLP segment is one second, so onset/offset are segment indices. A parsed video's `Event` is in
seconds of the video, with a score. Modalities are named as the protocol's streams: `audio`,
`visual`, `audio_visual`.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avvp.base.atomic import atomic_output

TABLE_COLUMNS = ("filename", "onset", "offset", "event_labels", "modality")
PARSED_COLUMNS = ("class", "modality", "onset", "offset", "score")


def runs(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """All maximal runs of True along the last axis of `mask`, in one pass.

    Returns `(*leading_indices, start, stop)` as int64 arrays of equal length, one entry per run,
    `stop` exclusive, ordered by the leading indices (C order) and then by `start`. A 1-D mask gives
    just `(start, stop)`.
    """
    m = np.asarray(mask, dtype=bool)
    edge = np.zeros(m.shape[:-1] + (1,), dtype=bool)
    padded = np.concatenate([edge, m, edge], axis=-1)
    # Position i is a boundary where m[i] differs from m[i-1]; per row they alternate start, stop.
    *lead, pos = np.nonzero(padded[..., 1:] != padded[..., :-1])
    return (*(index[0::2] for index in lead), pos[0::2], pos[1::2])


@dataclass(frozen=True)
class EventRow:
    """One predicted event in the dense-annotation format (times in seconds = segments)."""

    filename: str
    onset: int
    offset: int
    event_labels: str
    modality: str


def event_rows(
    filenames: Sequence[str], classes: Sequence[str], masks: Mapping[str, np.ndarray]
) -> list[EventRow]:
    """Rows for every maximal run of every (video, class) in each modality's (N, C, T) mask.

    `masks` maps a modality name (e.g. `audio`, `visual`) to its decisions; rows are ordered by
    video (in `filenames` order), modality (in mapping order), class index, onset.
    """
    parts = []
    for m_index, mask in enumerate(masks.values()):
        if mask.shape[:2] != (len(filenames), len(classes)):
            raise ValueError(
                f"mask shape {mask.shape} does not match {len(filenames)} videos x {len(classes)} classes"
            )
        video, cls, start, stop = runs(mask)
        parts.append(np.stack([video, np.full_like(video, m_index), cls, start, stop]))
    table = np.concatenate(parts, axis=1) if parts else np.zeros((5, 0), np.int64)
    table = table[:, np.lexsort(table[::-1])]
    names = list(masks)
    return [
        EventRow(filenames[v], int(s), int(e), classes[c], names[m]) for v, m, c, s, e in table.T
    ]


def write_events(path: str | Path, rows: Sequence[EventRow]) -> None:
    """Write rows as a tab-separated table with header `filename onset offset event_labels modality`."""
    with atomic_output(path, "w") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(TABLE_COLUMNS)
        writer.writerows((r.filename, r.onset, r.offset, r.event_labels, r.modality) for r in rows)


@dataclass(frozen=True)
class Event:
    """An event of a parsed video, in seconds of the video; `score` is None for ground truth."""

    label: str
    modality: str  # one of protocol.STREAMS
    onset: float
    offset: float
    score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["class"] = row.pop("label")
        return {k: row[k] for k in PARSED_COLUMNS}
