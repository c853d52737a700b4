"""Per-modality label tables: `filename<TAB>event_labels`, the LLP weak format, except that the
label list may be empty (a refinement can remove every label of a modality)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from avvp.base.atomic import atomic_output


def write_label_table(path: str | Path, filenames: Sequence[str], labels: np.ndarray, classes: Sequence[str]) -> None:
    """One row per video, classes comma-separated in vocabulary order; written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(("filename", "event_labels"))
    for name, row in zip(filenames, labels):
        writer.writerow((name, ",".join(classes[i] for i in np.flatnonzero(row > 0))))
    with atomic_output(path, "w") as fh:
        fh.write(buffer.getvalue())


def read_label_table(path: str | Path, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """filename -> (C,) float32 0/1; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label table {path} does not exist")
    index = {name: i for i, name in enumerate(classes)}
    table: dict[str, np.ndarray] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header != ["filename", "event_labels"]:
            raise ValueError(f"{path}:1: expected the header filename<TAB>event_labels, got {header}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if len(row) != 2:
                raise ValueError(f"{where}: expected 2 tab-separated fields, got {len(row)}")
            name, labels = row
            if name in table:
                raise ValueError(f"{where}: {name!r} appears twice")
            vector = np.zeros(len(classes), np.float32)
            for label in filter(None, (s.strip() for s in labels.split(","))):
                if label not in index:
                    raise ValueError(f"{where}: unknown class {label!r}")
                vector[index[label]] = 1.0
            table[name] = vector
    return table


def table_rows(table: dict[str, np.ndarray], filenames: Sequence[str], shape: tuple[int, ...],
               path: str | Path) -> np.ndarray:
    """(N, *shape) labels of `filenames` in their order (shape: (C,) for a label table, (10, C) for a
    segment table); a video without a row is an error."""
    missing = [f for f in filenames if f not in table]
    if missing:
        raise ValueError(f"{path}: no row for {len(missing)} training video(s), e.g. {missing[0]!r}")
    out = np.zeros((len(filenames), *shape), np.float32)
    for i, name in enumerate(filenames):
        out[i] = table[name]
    return out


def write_segment_table(path: str | Path, filenames: Sequence[str], labels: np.ndarray,
                        classes: Sequence[str]) -> None:
    """Segment-level labels (N, 10, C): one row per video and segment, `filename<TAB>segment<TAB>event_labels`
    (segments 0-9 in order, classes as in the video-level table); written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(("filename", "segment", "event_labels"))
    for name, rows in zip(filenames, labels):
        for segment, row in enumerate(rows):
            writer.writerow((name, segment, ",".join(classes[i] for i in np.flatnonzero(row > 0))))
    with atomic_output(path, "w") as fh:
        fh.write(buffer.getvalue())


def read_segment_table(path: str | Path, classes: Sequence[str], segments: int = 10) -> dict[str, np.ndarray]:
    """filename -> (segments, C) float32 0/1; every video needs each segment once (errors name file and line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"segment label table {path} does not exist")
    index = {name: i for i, name in enumerate(classes)}
    table: dict[str, np.ndarray] = {}
    seen: dict[str, set[int]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header != ["filename", "segment", "event_labels"]:
            raise ValueError(f"{path}:1: expected the header filename<TAB>segment<TAB>event_labels, got {header}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if len(row) != 3 or not row[1].isdigit() or int(row[1]) >= segments:
                raise ValueError(f"{where}: expected filename, a segment 0-{segments - 1} and labels, got {row}")
            name, segment = row[0], int(row[1])
            if segment in seen.setdefault(name, set()):
                raise ValueError(f"{where}: segment {segment} of {name!r} appears twice")
            seen[name].add(segment)
            rows = table.setdefault(name, np.zeros((segments, len(classes)), np.float32))
            for label in filter(None, (s.strip() for s in row[2].split(","))):
                if label not in index:
                    raise ValueError(f"{where}: unknown class {label!r}")
                rows[segment, index[label]] = 1.0
    incomplete = [name for name, s in seen.items() if len(s) != segments]
    if incomplete:
        raise ValueError(f"{path}: {incomplete[0]!r} does not have all {segments} segments")
    return table
