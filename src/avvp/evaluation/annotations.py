"""LLP-format annotation files: class vocabularies, weak split files and dense event files.

The vocabulary belongs to the data set (a `classes.txt`, one name per line, in index order); nothing
here knows LLP's 25 classes. Every parse error names the file and the 1-based line.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avvp.base.protocol import SEGMENTS

# A split file's filename: an 11-character YouTube id, then start and end seconds.
_SPLIT_NAME = re.compile(r"^(?P<id>[A-Za-z0-9_-]{11})_(?P<start>\d+(?:\.\d+)?)_(?P<end>\d+(?:\.\d+)?)$")
# Dense files also hold orphan rows whose id lost characters (`VMTJRpjbE_150_160`): same shape,
# any id length. They are matched against the splits by full filename, never parsed further.
_DENSE_NAME = re.compile(r"^[A-Za-z0-9_-]+_\d+(?:\.\d+)?_\d+(?:\.\d+)?$")


class AnnotationError(ValueError):
    """A malformed annotation file; the message starts with `FILE:LINE:`."""


@dataclass(frozen=True)
class Vocabulary:
    """The ordered class names of a data set; index i is column i of every label array."""

    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"duplicate class names in vocabulary: {self.classes}")
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(self.classes)})

    def __len__(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        """Column of `name`; KeyError when the class is not in the vocabulary."""
        return self._index[name]  # type: ignore[attr-defined]

    def __contains__(self, name: object) -> bool:
        return name in self._index  # type: ignore[attr-defined]


# What separates labels (`,`), columns (tab) and quotes fields (`"`) in LLP's files: a class name
# holding one could be written to a classes file but never read back as a label.
_SEPARATORS = (",", "\t", '"')


def read_classes(path: str | Path) -> Vocabulary:
    """Read a `classes.txt` (one class per line, blank lines ignored); a name holding a CSV
    separator of LLP's files is refused with its line, as no split file could name it."""
    names = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        name = line.strip()
        if any(sep in name for sep in _SEPARATORS):
            raise AnnotationError(f"{path}:{number}: class name {name!r} holds a separator of LLP's files "
                                  f"(comma, tab or double quote), so no label could name it")
        if name:
            names.append(name)
    if not names:
        raise AnnotationError(f"{path}:1: no class names")
    return Vocabulary(tuple(names))


@dataclass(frozen=True)
class ClipName:
    """A parsed LLP filename: `<11-char YouTube id>_<start>_<end>`."""

    video_id: str
    start: float
    end: float


def parse_filename(filename: str) -> ClipName:
    """Split an LLP filename; the id is the first 11 characters and may contain `_` and `-`."""
    match = _SPLIT_NAME.match(filename)
    if match is None:
        raise ValueError(f"unparsable LLP filename {filename!r} (expected <11-char id>_<start>_<end>)")
    return ClipName(match["id"], float(match["start"]), float(match["end"]))


def video_id(filename: str) -> str:
    """The YouTube id of an LLP filename (the first 11 characters, validated)."""
    return parse_filename(filename).video_id


@dataclass(frozen=True)
class WeakSplit:
    """A split file: filenames in file order and their video-level (weak) labels."""

    path: Path
    vocab: Vocabulary
    filenames: tuple[str, ...]
    labels: np.ndarray  # (N, C) float32, 1 where the class is present

    @property
    def video_ids(self) -> tuple[str, ...]:
        return tuple(video_id(f) for f in self.filenames)

    def subset(self, keep: np.ndarray) -> WeakSplit:
        """The rows where the boolean mask `keep` is true, in the same order."""
        idx = np.flatnonzero(keep)
        return WeakSplit(self.path, self.vocab, tuple(self.filenames[i] for i in idx), self.labels[idx])


@dataclass(frozen=True)
class DenseEvents:
    """A dense (audio or visual) annotation file, one entry per row."""

    path: Path
    filenames: np.ndarray  # (R,) str
    onset: np.ndarray  # (R,) float64 seconds
    offset: np.ndarray  # (R,) float64 seconds
    class_index: np.ndarray  # (R,) int64
    line: np.ndarray  # (R,) int64, 1-based line in the file


def _rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Tab-separated rows with a header, as (line number, row) pairs; checks the columns."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise AnnotationError(f"{path}:1: missing column(s) {missing}; header is {header}")
        rows = []
        for row in reader:
            if None in row or any(row[c] is None for c in required):
                raise AnnotationError(f"{path}:{reader.line_num}: wrong number of fields")
            rows.append((reader.line_num, row))
    return rows


def _class_indices(names: str, vocab: Vocabulary, where: str) -> list[int]:
    out = []
    for name in names.split(","):
        name = name.strip()
        if name not in vocab:
            raise AnnotationError(f"{where}: unknown class {name!r}")
        out.append(vocab.index(name))
    return out


def read_weak(path: str | Path, vocab: Vocabulary) -> WeakSplit:
    """Read a weak split file (`filename`, `event_labels`)."""
    path = Path(path)
    filenames: list[str] = []
    labels = []
    seen: dict[str, int] = {}
    for line, row in _rows(path, ("filename", "event_labels")):
        where = f"{path}:{line}"
        name = row["filename"]
        try:
            parse_filename(name)
        except ValueError as err:
            raise AnnotationError(f"{where}: {err}") from None
        if name in seen:
            raise AnnotationError(f"{where}: {name!r} repeats line {seen[name]}")
        seen[name] = line
        vec = np.zeros(len(vocab), np.float32)
        vec[_class_indices(row["event_labels"], vocab, where)] = 1.0
        filenames.append(name)
        labels.append(vec)
    matrix = np.stack(labels) if labels else np.zeros((0, len(vocab)), np.float32)
    return WeakSplit(path, vocab, tuple(filenames), matrix)


def _seconds(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f"{where}: unparsable {column} {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise AnnotationError(f"{where}: {column} {text!r} is not a time in seconds")
    return value


def read_dense(path: str | Path, vocab: Vocabulary, broken_names_are_orphans: bool = False) -> DenseEvents:
    """Read a dense event file (`filename`, `onset`, `offset`, `event_labels`); one class per row.

    An unparsable filename is an error, except with `broken_names_are_orphans`: the legacy audio file
    (before the 2024 fix) holds three such rows, which the published evaluations matched to no
    video; scoring it as published keeps them as orphan rows."""
    path = Path(path)
    names, onsets, offsets, classes, lines = [], [], [], [], []
    for line, row in _rows(path, ("filename", "onset", "offset", "event_labels")):
        where = f"{path}:{line}"
        if not broken_names_are_orphans and not _DENSE_NAME.match(row["filename"]):
            raise AnnotationError(f"{where}: unparsable filename {row['filename']!r}")
        for index in _class_indices(row["event_labels"], vocab, where):
            names.append(row["filename"])
            onsets.append(_seconds(row["onset"], where, "onset"))
            offsets.append(_seconds(row["offset"], where, "offset"))
            classes.append(index)
            lines.append(line)
    return DenseEvents(
        path,
        np.array(names, dtype=str),
        np.array(onsets, np.float64),
        np.array(offsets, np.float64),
        np.array(classes, np.int64),
        np.array(lines, np.int64),
    )


@dataclass
class AnnotationReport:
    """What the evaluation silently tolerates, counted so that a user can see it."""

    rows_outside_split: dict[str, int] = field(default_factory=dict)  # other splits and orphans
    orphan_rows: dict[str, list[str]] = field(default_factory=dict)  # in no known split; by modality
    zero_length_rows: dict[str, int] = field(default_factory=dict)
    off_label_rows: dict[str, int] = field(default_factory=dict)  # class not in the weak labels
    videos_without_rows: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "rows_outside_split": dict(self.rows_outside_split),
            "orphan_rows": {m: len(v) for m, v in self.orphan_rows.items()},
            "orphan_filenames": {m: sorted(set(v)) for m, v in self.orphan_rows.items()},
            "zero_length_rows": dict(self.zero_length_rows),
            "off_label_rows": dict(self.off_label_rows),
            "videos_without_rows": {m: len(v) for m, v in self.videos_without_rows.items()},
        }


def dense_matrix(
    split: WeakSplit, events: DenseEvents, n_segments: int = SEGMENTS
) -> tuple[np.ndarray, dict]:
    """Per-video, per-class, per-segment ground truth (N, C, T) bool for one modality.

    Rows are matched by full filename; a row covers segments int(onset) .. int(offset) - 1.
    Also returns what the AnnotationReport counts (rows of other videos, zero-length rows, rows of a
    class outside the weak labels, videos without rows).
    """
    row_of = {name: i for i, name in enumerate(split.filenames)}
    video = np.array([row_of.get(n, -1) for n in events.filenames], np.int64)
    matched = video >= 0
    start = np.clip(events.onset.astype(np.int64), 0, n_segments)
    stop = np.clip(events.offset.astype(np.int64), 0, n_segments)
    seg = np.arange(n_segments)
    cover = (seg[None, :] >= start[:, None]) & (seg[None, :] < stop[:, None])  # (R, T)
    gt = np.zeros((len(split.filenames), len(split.vocab), n_segments), bool)
    np.logical_or.at(gt, (video[matched], events.class_index[matched]), cover[matched])
    has_rows = np.zeros(len(split.filenames), bool)
    has_rows[video[matched]] = True
    off_label = matched.copy()
    off_label[matched] = split.labels[video[matched], events.class_index[matched]] == 0
    counts = {
        "outside": events.filenames[~matched].tolist(),
        "zero_length": int((matched & (events.offset.astype(np.int64) <= events.onset.astype(np.int64))).sum()),
        "off_label": int(off_label.sum()),
        "without_rows": [f for f, h in zip(split.filenames, has_rows) if not h],
    }
    return gt, counts


@dataclass(frozen=True)
class GroundTruth:
    """Dense ground truth of a split: audio and visual (N, C, T) bool, and what was tolerated."""

    audio: np.ndarray
    visual: np.ndarray
    report: AnnotationReport


def ground_truth(
    split: WeakSplit,
    audio: DenseEvents,
    visual: DenseEvents,
    known_filenames: set[str] | None = None,
) -> GroundTruth:
    """Both modalities' dense ground truth for the videos of `split`, in its order.

    Rows of other videos are ignored. Those whose filename is also absent from `known_filenames`
    (every split of the data set, when given) are reported as orphans.
    """
    report = AnnotationReport()
    mats = {}
    for modality, events in (("audio", audio), ("visual", visual)):
        mats[modality], counts = dense_matrix(split, events)
        report.rows_outside_split[modality] = len(counts["outside"])
        if known_filenames is not None:
            report.orphan_rows[modality] = [f for f in counts["outside"] if f not in known_filenames]
        report.zero_length_rows[modality] = counts["zero_length"]
        report.off_label_rows[modality] = counts["off_label"]
        report.videos_without_rows[modality] = counts["without_rows"]
    return GroundTruth(mats["audio"], mats["visual"], report)
