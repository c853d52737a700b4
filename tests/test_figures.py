"""Report figures and the metrics table: real training logs and real evaluation outputs in."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avvp.evaluation.annotations import AnnotationReport, GroundTruth
from avvp.evaluation.scores import evaluate_arrays
from avvp.reporting.figures import metrics_table, per_class_bars, training_curves
from avvp.reporting.leaderboard import published_by_method
from avvp.methods.stage_files import read_log
from avvp.base.protocol import SCORES

CLASSES = ("Speech", "Dog", "Acoustic_guitar", "Vacuum_cleaner")


def check_png(path: Path, min_size: tuple[int, int] = (400, 200)) -> None:
    """A real PNG of sane size that is not one flat colour."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min_size[0] <= image.width <= 4000 and min_size[1] <= image.height <= 4000
        pixels = np.asarray(image.convert("L"), np.float64)
    assert pixels.std() > 5


def random_metrics(seed: int) -> dict:
    """evaluate_arrays on random probabilities and ground truth: a real metrics.json body."""
    rng = np.random.default_rng(seed)
    n, c = 12, len(CLASSES)
    gt = GroundTruth(rng.random((n, c, 10)) < 0.3, rng.random((n, c, 10)) < 0.3, AnnotationReport())
    gt.audio[:, 3] = gt.visual[:, 3] = False  # one class with no ground truth ...
    frame = rng.random((n, 10, 2, c)).astype(np.float32)
    frame[..., 3] = 0.0  # ... and no predictions: its F is undefined (n/a)
    return evaluate_arrays(rng.random((n, c)).astype(np.float32), frame, gt, classes=CLASSES)


def write_log(path: Path, seed: int, epochs: int = 6, kept: int | None = None, keep: str = "final") -> Path:
    """A log.csv in the columns `avvp train` writes, and its summary.json (kept epoch: the last)."""
    from avvp.methods.stage_files import LOG_COLUMNS

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(LOG_COLUMNS)]
    for epoch in range(1, epochs + 1):
        row = {k: rng.uniform(20, 60) for k in LOG_COLUMNS}
        row.update(epoch=epoch, loss=2.0 / epoch + rng.uniform(0, 0.1), lr=3e-4, seconds=1.5)
        lines.append(",".join(str(row[k]) for k in LOG_COLUMNS))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {"kept_epoch": epochs if kept is None else kept, "keep": keep}
    (path.parent / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return path


def test_training_curves_overlay_seeds_and_mark_the_kept_epoch(tmp_path):
    logs = [write_log(tmp_path / f"seed_{s}" / "han" / "log.csv", s, kept=s + 1) for s in (1, 2, 3)]
    marked = training_curves([log.parent for log in logs], tmp_path / "curves.png")
    check_png(tmp_path / "curves.png", (800, 300))
    for s, log in zip((1, 2, 3), logs):  # the epoch training recorded, not the best-scoring one
        assert marked[f"seed_{s}"] == (s + 1, read_log(log)["segment_type_at_av"][s])
    assert training_curves({"only run": logs[0].parent}, tmp_path / "one.png") == {"only run": marked["seed_1"]}
    check_png(tmp_path / "one.png", (800, 300))
    assert read_log(logs[0])["epoch"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_a_one_epoch_run_is_a_visible_point_in_both_plots(tmp_path):
    """One epoch makes no line segment; the plots would look empty without a marker."""
    log = write_log(tmp_path / "run" / "han" / "log.csv", 0, epochs=1)
    training_curves([log.parent], tmp_path / "one.png")
    with Image.open(tmp_path / "one.png") as image:
        pixels = np.asarray(image.convert("RGB"), np.int32)
    plots = pixels[: int(pixels.shape[0] * 0.8)]  # above the legend, whose line has the colour too
    blue = (np.abs(plots - [31, 119, 180]).sum(axis=2) < 40)  # matplotlib's first colour, C0
    width = plots.shape[1]
    assert blue[:, : width // 2].sum() > 20 and blue[:, width // 2:].sum() > 20


def test_training_curves_name_a_bad_log(tmp_path):
    bad = tmp_path / "bad" / "log.csv"
    bad.parent.mkdir()
    bad.write_text("epoch,loss\n1,0.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match="log.csv: not a training log"):
        training_curves([bad.parent], tmp_path / "x.png")
    log = write_log(tmp_path / "run" / "log.csv", 0)
    log.write_text(log.read_text().replace(",0.0003,", ",oops,", 1))
    with pytest.raises(ValueError, match=r"log.csv:2: lr 'oops'"):
        training_curves([log.parent], tmp_path / "x.png")
    (log.parent / "summary.json").unlink()
    write_log(log, 0)
    (log.parent / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="summary.json not found"):
        training_curves([log.parent], tmp_path / "x.png")


def test_per_class_bars_from_metrics_json(tmp_path):
    metrics = random_metrics(0)
    assert metrics["per_class"]["segment_level"]["audio"]["Vacuum_cleaner"] is None
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics), encoding="utf-8")
    per_class_bars(path, tmp_path / "bars.png")
    check_png(tmp_path / "bars.png", (600, 250))
    per_class_bars(metrics, tmp_path / "event.png", level="event_level")
    check_png(tmp_path / "event.png", (600, 250))
    with pytest.raises(ValueError, match="per_class"):
        per_class_bars({"segment_level": {}}, tmp_path / "x.png")


class _Cells(HTMLParser):
    """Rows of an HTML table as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_metrics_table_with_seeds_and_the_published_row():
    runs = {f"seed {s}": random_metrics(s) for s in (1, 2, 3)}
    han = [published_by_method()["han"]]
    parser = _Cells()
    parser.feed(metrics_table(runs, han, fmt="html", caption="random backbone weights"))
    body = parser.rows[2:]  # two header rows
    labels = ["seed 1", "seed 2", "seed 3", "mean ± sd (3 runs)", f"{han[0]['paper']} (published)"]
    assert [r[0] for r in body] == labels and all(len(r) == 11 for r in body)
    levels = ("segment_level", "event_level")
    values = np.array([[m[lv][k] for lv in levels for k in SCORES] for m in runs.values()])
    assert body[0][1:] == [f"{v:.1f}" for v in values[0]]
    assert body[3][1:] == [f"{m:.1f} ± {s:.1f}" for m, s in zip(values.mean(0), values.std(0, ddof=1))]
    assert body[4][1:] == [f"{han[0][lv][k]:.1f}" for lv in levels for k in SCORES]

    published = published_by_method()
    markdown = metrics_table(runs["seed 1"], [published["han"], published["ma_mmil"]])
    lines = markdown.strip().splitlines()
    assert lines[0].startswith("| run | segment Audio |") and len(lines) == 2 + 1 + 2
    assert lines[2].startswith("| this run |")
    assert lines[4] == "| MA-MMIL (CVPR 2021) (published) | – | – | – | 58.9 | – | – | – | – | 53.0 | – |"
    with pytest.raises(ValueError, match="fmt"):
        metrics_table(runs, fmt="latex")


def test_names_with_dollars_are_not_mathtext(tmp_path):
    """Run labels and class names holding `$` (mathtext that would not even parse) draw as written."""
    odd = "my_run_$1_$2"
    log = write_log(tmp_path / "seed_1" / "han" / "log.csv", 1)
    assert set(training_curves({odd: log.parent}, tmp_path / "curves.png")) == {odd}
    check_png(tmp_path / "curves.png", (800, 300))
    metrics = random_metrics(0)
    for scores in metrics["per_class"]["segment_level"].values():
        if isinstance(scores, dict) and "Speech" in scores:
            scores[odd] = scores.pop("Speech")
    per_class_bars(metrics, tmp_path / "bars.png", warning=f"RANDOM weights ({odd})")
    check_png(tmp_path / "bars.png", (600, 250))
