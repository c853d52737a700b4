"""The timeline picture of a parsed video: what the model hears and sees, second by second.

One row per class present (predicted or annotated), in vocabulary order, each with three lanes:
audio, visual and audio-visual (where both hold), named on the right. Predictions are solid bars;
when ground truth is known each lane is split, prediction above and ground truth (hatched) below.
The seconds axis spans the video (padding is never drawn); dashed lines mark the edges of the
10-second windows the model saw (up to 30 of them). The width grows with the video's length and
the height with the number of classes, so labels never crowd; the legend sits below the axes,
outside the bars. Its swatches are drawn like the bars: a modality's colour, solid for the
prediction and hatched for the ground truth. Written as PNG (150 dpi), PDF or SVG (vector, the
text stays text). The video's and the classes' names are drawn as written (`avvp.base.literal_text`).
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence
from typing import IO, Any

from avvp.evaluation.events import Event
from avvp.base.protocol import SEGMENTS, STREAMS
from avvp.base.literal_text import LITERAL

COLOURS = {"audio": "#1f77b4", "visual": "#e6730f", "audio_visual": "#7b3fa0"}
LANES = STREAMS
LANE_NAMES = {"audio": "audio", "visual": "visual", "audio_visual": "audio-visual"}  # as printed
LANE_HEIGHT = 0.28  # of a class row of height 1
MAX_EDGES = 30  # window edges drawn up to this many windows; beyond, they would hide the bars
PNG_DPI = 150
PREDICTED = {"alpha": 0.9}
TRUTH = {"alpha": 0.3, "hatch": "////", "linewidth": 0.8}
CLASS_FONT, LANE_FONT, TICK_FONT = 11, 9, 10  # points


def figure_width(duration: float) -> float:
    """Inches: about a third of an inch per second, between 7 and 22."""
    return min(22.0, max(7.0, 3.0 + 0.3 * duration))


def _bars(events: Iterable[Event], row_of: dict[str, int]) -> dict[tuple[int, int], list[tuple[float, float]]]:
    """(row, lane) -> [(start, width)]."""
    out: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for e in events:
        out.setdefault((row_of[e.label], LANES.index(e.modality)), []).append((e.onset, e.offset - e.onset))
    return out


def _draw_bars(ax: Any, events: Sequence[Event], ground_truth: Sequence[Event] | None, row_of: dict[str, int],
               top: float) -> None:
    """The predicted bars, and below them in each lane the ground truth's (hatched) when known."""
    layers = [(events, PREDICTED, 0.0)]
    if ground_truth is not None:
        layers.append((ground_truth, TRUTH, 0.5))
    for layer_events, style, shift in layers:
        height = LANE_HEIGHT * (0.9 if ground_truth is None else 0.45)
        for (row, lane), spans in _bars(layer_events, row_of).items():
            colour = COLOURS[LANES[lane]]
            y = row + top + lane * LANE_HEIGHT + shift * LANE_HEIGHT * 0.9 + LANE_HEIGHT * 0.05
            ax.broken_barh(spans, (y, height), facecolors=colour, edgecolors=colour, **style)


def _class_rows(ax: Any, shown: Sequence[str], n_rows: int, top: float, duration: float) -> None:
    """The class names on the left, the lane names on the right, a line between classes."""
    ax.set_xlim(0, duration)
    ax.set_ylim(n_rows, 0)
    ax.set_yticks([r + 0.5 for r in range(len(shown))], shown, fontsize=CLASS_FONT, **LITERAL)
    for r in range(1, n_rows):
        ax.axhline(r, color="0.75", linewidth=0.8)
    lanes = ax.twinx()
    lanes.set_ylim(n_rows, 0)
    lanes.set_yticks([r + top + (k + 0.5) * LANE_HEIGHT for r in range(len(shown)) for k in range(len(LANES))],
                     [LANE_NAMES[name] for _ in shown for name in LANES], fontsize=LANE_FONT, color="0.3")
    lanes.tick_params(length=0)
    if not shown:
        ax.text(duration / 2, 0.5, "no events", ha="center", va="center", color="0.4")


def _time_axis(ax: Any, duration: float) -> list[int]:
    """Seconds ticks and grid, and the dashed window edges (returned; drawn when under MAX_EDGES)."""
    from matplotlib.ticker import MaxNLocator, MultipleLocator

    if duration <= 30:
        ax.xaxis.set_major_locator(MultipleLocator(1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=20, steps=[1, 2, 5, 10], integer=True))
        if duration <= 300:
            ax.xaxis.set_minor_locator(MultipleLocator(1))
    ax.tick_params(axis="x", labelsize=TICK_FONT)
    ax.grid(axis="x", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
    edges = [e for e in range(SEGMENTS, math.ceil(duration), SEGMENTS)]
    if len(edges) < MAX_EDGES:
        for edge in edges:
            ax.axvline(edge, color="0.45", linestyle="--", linewidth=0.9)
    return edges


def _swatch(modality: str, style: dict) -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=COLOURS[modality], edgecolor=COLOURS[modality], **style)


def _legend(fig: Any, with_truth: bool, edges: Sequence[int]) -> None:
    """The legend below the axes: the modalities, the two layers when ground truth is drawn, the edges."""
    from matplotlib.legend_handler import HandlerTuple
    from matplotlib.lines import Line2D

    handles: list = [_swatch(m, PREDICTED) for m in LANES]
    labels = [LANE_NAMES[m] for m in LANES]
    if with_truth:  # the two layers, each shown in the three colours its bars have
        handles += [tuple(_swatch(m, PREDICTED) for m in LANES), tuple(_swatch(m, TRUTH) for m in LANES)]
        labels += ["predicted (solid)", "ground truth (hatched)"]
    if edges and len(edges) < MAX_EDGES:
        handles.append(Line2D([], [], color="0.45", linestyle="--", linewidth=0.9))
        labels.append("10 s window edge")
    # Three columns, never wider than the figure: the modalities on the first row, the layers (and the
    # window edges) below. Matplotlib fills a legend column by column, so the entries go in that order.
    columns = len(LANES)
    order = sorted(range(len(handles)), key=lambda i: (i % columns, i // columns))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    fig.legend(handles, labels, loc="outside lower center", ncols=columns, frameon=False, fontsize=LANE_FONT,
               handler_map={tuple: HandlerTuple(ndivide=None, pad=0)}, handlelength=3)


def draw_timeline(
    out: str | IO[bytes],
    duration: float,
    classes: Sequence[str],
    events: Sequence[Event],
    ground_truth: Sequence[Event] | None = None,
    title: str = "",
    n_windows: int | None = None,
    warning: str | None = None,
    format: str = "png",
) -> None:
    """Write the timeline of one video to `out` (a path or a binary file) as `format`: png, pdf or svg."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    order = {name: i for i, name in enumerate(classes)}
    shown = sorted({e.label for e in events} | {e.label for e in ground_truth or ()}, key=order.__getitem__)
    row_of = {name: i for i, name in enumerate(shown)}
    n_rows = max(1, len(shown))
    width = figure_width(duration)
    # About 8 bold 11-pt characters per inch: wrapped, the warning never runs off a narrow figure.
    warning_lines = textwrap.wrap(warning, width=int(8 * width)) if warning else []
    fig = Figure(figsize=(width, 2.0 + 1.0 * n_rows + 0.3 * len(warning_lines)), layout="constrained")
    ax = fig.add_subplot()
    top = (1 - len(LANES) * LANE_HEIGHT) / 2
    _draw_bars(ax, events, ground_truth, row_of, top)
    _class_rows(ax, shown, n_rows, top, duration)
    edges = _time_axis(ax, duration)
    ax.set_xlabel("time in the video (s)")
    windows = f" · {n_windows} window{'s' if n_windows != 1 else ''} of 10 s" if n_windows else ""
    ax.set_title(f"{title} · {duration:.2f} s{windows}", loc="left", fontsize=11, **LITERAL)
    if warning_lines:
        fig.suptitle("\n".join(warning_lines), color="#c00000", fontweight="bold", fontsize=11, **LITERAL)
    _legend(fig, ground_truth is not None, edges)
    # Vector text stays text (selectable, searchable): SVG <text>, PDF TrueType fonts.
    with rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
        fig.savefig(out, format=format, dpi=PNG_DPI if format == "png" else "figure")
