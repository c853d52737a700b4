"""Figures and tables for a run's report: training curves, per-class F-scores, the metrics table.

Each function reads the files the pipeline writes (`log.csv` of `avvp train`, `metrics.json` of
`avvp evaluate`) and writes one PNG or returns one table, so report rules stay one call each.
Published numbers come from `avvp.reporting.leaderboard.published_by_method`. Class and run names
are drawn as written (`avvp.base.literal_text`).
"""
from __future__ import annotations

import html
import json
import statistics
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from avvp.base.random_weights import random_weights_text
from avvp.methods.stage_files import read_log, read_summary
from avvp.base.protocol import LEVELS, SCORES
from avvp.base.literal_text import LITERAL, make_literal
HEADERS = {"audio": "Audio", "visual": "Visual", "audio_visual": "Audio-Visual",
           "type_at_av": "Type@AV", "event_at_av": "Event@AV"}
CURVE_SCORE = "segment_type_at_av"  # the validation score drawn per epoch


# ----------------------------------------------------------------------------- random-weights banner


def random_weights_banner(kinds: Sequence[str]) -> str | None:
    """The red line on every figure whose numbers come from features of RANDOM backbone weights."""
    return random_weights_text(kinds, "these scores are not comparable with published results")


def _banner(fig: Any, warning: str | None) -> None:
    if warning:
        fig.suptitle(textwrap.fill(warning, 90), color="#c00000", fontweight="bold", fontsize=11, **LITERAL)


# ----------------------------------------------------------------------------- training curves


def _labelled(folders: str | Path | Sequence[str | Path] | Mapping[str, str | Path]) -> dict[str, Path]:
    """label -> stage folder; unlabelled folders are named by their parent (e.g. `seed1`)."""
    if isinstance(folders, Mapping):
        return {str(k): Path(v) for k, v in folders.items()}
    paths = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(p) for p in folders]
    names = [p.parent.name or p.name for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    return dict(zip(names, paths))


def training_curves(stages: str | Path | Sequence[str | Path] | Mapping[str, str | Path],
                    out: str | Path | IO[bytes], warning: str | None = None) -> dict[str, tuple[float, float]]:
    """Loss and validation segment-level Type@AV per epoch of training stages (folders holding
    `log.csv` and `summary.json`), one line per stage (e.g. per seed).

    Each run's kept epoch (the one in its model.pt, as training recorded it) is marked; it is the
    best Type@AV epoch only where the stage keeps that one. `warning` (e.g. `random_weights_banner`)
    is drawn in red above the plots. Returns the marked (epoch, Type@AV) per label.
    """
    from matplotlib.figure import Figure

    runs = {label: (read_log(folder / "log.csv"), read_summary(folder)) for label, folder in _labelled(stages).items()}
    if not runs:
        raise ValueError("no training stages given")
    fig = Figure(figsize=(11, 4.2), layout="constrained", dpi=100)
    loss_ax, score_ax = fig.subplots(1, 2)
    marked = {}
    for label, (log, summary) in runs.items():
        marker = "o" if len(log["epoch"]) == 1 else None  # one epoch draws no line: a point instead
        line, = loss_ax.plot(log["epoch"], log["loss"], label=f"{label} (kept: {summary['keep']})", linewidth=1.5,
                             marker=marker)
        score_ax.plot(log["epoch"], log[CURVE_SCORE], color=line.get_color(), linewidth=1.5, marker=marker)
        kept = log["epoch"].index(float(summary["kept_epoch"]))
        marked[label] = (log["epoch"][kept], log[CURVE_SCORE][kept])
        score_ax.plot(*marked[label], "o", color=line.get_color(), markersize=6)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    score_ax.set(xlabel="epoch", ylabel="Type@AV (%)", title="Validation segment-level Type@AV (dot: kept epoch)")
    for ax in (loss_ax, score_ax):
        ax.grid(color="0.9")
        ax.xaxis.get_major_locator().set_params(integer=True)
    legend = fig.legend(handles=loss_ax.get_lines(), loc="outside lower center", ncols=min(len(runs), 6),
                        frameon=False, fontsize=9)
    make_literal(legend.get_texts())  # run labels are folder names
    _banner(fig, warning)
    fig.savefig(out, format="png")
    return marked


# ----------------------------------------------------------------------------- per-class bars


def _metrics(metrics: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(metrics, Mapping):
        return metrics
    path = Path(metrics)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file {path} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON metrics file ({err})") from None


def per_class_bars(metrics: str | Path | Mapping[str, Any], out: str | Path | IO[bytes],
                   level: str = "segment_level", warning: str | None = None) -> None:
    """Audio and visual F per class (an evaluation's `per_class`), horizontal bars; `n/a` where a
    class has neither predictions nor ground truth in that modality; `warning` in red on top."""
    from matplotlib.figure import Figure

    body = _metrics(metrics)
    try:
        audio, visual = (body["per_class"][level][s] for s in ("audio", "visual"))
    except KeyError as err:
        raise ValueError(f"metrics lack per_class/{level}/audio and visual ({err} missing)") from None
    classes = list(audio)
    fig = Figure(figsize=(8, 1.4 + 0.32 * len(classes)), layout="constrained", dpi=100)
    ax = fig.add_subplot()
    height = 0.38
    for shift, (name, scores, colour) in enumerate((("audio", audio, "#1f77b4"), ("visual", visual, "#e6730f"))):
        ys = [i + (shift - 0.5) * height for i in range(len(classes))]
        values = [scores.get(c) for c in classes]
        ax.barh(ys, [v or 0.0 for v in values], height=height, color=colour, label=name)
        for y, v in zip(ys, values):
            if v is None:
                ax.text(1, y, "n/a", va="center", fontsize=7, color="0.4")
    ax.set_yticks(range(len(classes)), classes, fontsize=9, **LITERAL)
    ax.set_ylim(len(classes) - 0.4, -0.6)
    ax.set_xlim(0, 100)
    ax.set_xlabel("F-score (%), TP/FP/FN summed over all videos")
    n = body.get("n_videos")
    ax.set_title(f"Per-class {level.replace('_', ' ')} F" + (f" ({n} videos)" if n is not None else ""), **LITERAL)
    ax.grid(axis="x", color="0.9")
    ax.set_axisbelow(True)
    fig.legend(loc="outside lower center", ncols=2, frameon=False)
    _banner(fig, warning)
    fig.savefig(out, format="png")


# ----------------------------------------------------------------------------- metrics table


def _row_values(metrics: Mapping[str, Any]) -> list[float | None]:
    return [metrics.get(level, {}).get(key) for level in LEVELS for key in SCORES]


def metrics_table(runs: Mapping[str, Mapping[str, Any]], published: Sequence[Mapping[str, Any]] = (),
                  fmt: str = "markdown", caption: str | None = None) -> str:
    """The ten numbers of each run (label -> metrics.json body, or one metrics body), a
    `mean ± sd` row (sample standard deviation) when there are several runs, then the published rows
    (`published_by_method()` entries).

    `fmt` is `markdown` or `html` (a self-contained <table>); numbers in percent, one decimal;
    `–` where a published source gives no number.
    """
    if fmt not in ("markdown", "html"):
        raise ValueError(f"fmt must be 'markdown' or 'html', not {fmt!r}")
    if "segment_level" in runs:
        runs = {"this run": runs}
    rows: list[tuple[str, list[str]]] = []
    values = {label: _row_values(m) for label, m in runs.items()}
    for label, vals in values.items():
        if any(v is None for v in vals):
            raise ValueError(f"run {label!r}: metrics lack some of the ten numbers")
        rows.append((label, [f"{v:.1f}" for v in vals]))
    if len(values) > 1:
        columns = list(zip(*values.values()))
        rows.append((f"mean ± sd ({len(values)} runs)",
                     [f"{statistics.mean(c):.1f} ± {statistics.stdev(c):.1f}" for c in columns]))
    for entry in published:
        cells = ["–" if v is None else f"{v:.1f}" for v in _row_values(entry)]
        rows.append((f"{entry['paper']} (published)", cells))
    if fmt == "markdown":
        head = ["run"] + [f"{lv.split('_')[0]} {HEADERS[k]}" for lv in LEVELS for k in SCORES]
        lines = [f"| {' | '.join(head)} |", "|" + " --- |" * len(head)]
        lines += [f"| {label} | {' | '.join(cells)} |" for label, cells in rows]
        return (f"{caption}\n\n" if caption else "") + "\n".join(lines) + "\n"
    cell = "<td>{}</td>".format
    out = ['<table class="metrics">']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    levels = "".join(f'<th colspan="{len(SCORES)}">{lv.split("_")[0].title()} level</th>' for lv in LEVELS)
    names = "".join(f"<th>{HEADERS[k]}</th>" for _ in LEVELS for k in SCORES)
    out.append(f'<thead><tr><th rowspan="2">run</th>{levels}</tr><tr>{names}</tr></thead>')
    out.append("<tbody>")
    for label, cells in rows:
        out.append(f"<tr><th>{html.escape(label)}</th>" + "".join(cell(html.escape(c)) for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out) + "\n"
