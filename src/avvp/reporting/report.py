"""The HTML pieces of the workflow's report: the leaderboard and metrics tables, and the front page's
summary.

Both are fragments that Snakemake's report embeds (`workflow/report/workflow.rst` includes the
summary; `workflow/report/style.css`, the report's stylesheet, lays the front page out full width
above the rule graph). Figures are inlined as PNG data so the page is self-contained.
"""
from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avvp.reporting.figures import metrics_table
from avvp.reporting.leaderboard import build_leaderboard, leaderboard_html


def table_caption(method: str, entry: Mapping[str, Any], n_videos: int) -> str:
    """A method's table caption: its label, the stage scored when the method has several, its
    features, the data."""
    stage = "" if entry["final_stage"] == method else f"model of stage {entry['final_stage']}; "
    spread = "; mean ± sample sd over seeds" if entry["n_seeds"] > 1 else ""
    return (f"{entry['label']} ({stage}features {', '.join(entry['features'])}): test split, {n_videos} videos, "
            f"percent{spread}")


def metrics_tables_html(metrics: Mapping[str, Any],
                        published: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The leaderboard (every method under every protocol, with the random-weights warning above
    it when it applies), then one table per method: each seed, mean ± sd, and the method's own
    published row. `published`: `published_by_method()`, or None where the data set is not LLP."""
    parts = [leaderboard_html(build_leaderboard(metrics, published))]
    n_videos = metrics["coverage"]["test"]["scored"]
    for method, entry in metrics["methods"].items():
        seeds = {f"seed {seed}": scores for seed, scores in entry["seeds"].items()}
        own = [published[method]] if published and method in published else []
        parts.append(metrics_table(seeds, own, fmt="html", caption=table_caption(method, entry, n_videos)))
    return "\n".join(parts)


def figure_html(path: str | Path, alt: str) -> str:
    """A PNG inlined as a captioned figure, drawn at its own pixel size (narrower only where the
    page is)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure class="avvp-figure"><img class="figure" src="data:image/png;base64,{data}" '
            f'alt="{html.escape(alt)}"><figcaption>{html.escape(alt)}</figcaption></figure>')


def viewer_html(href: str) -> str:
    """The line under the metrics that leads to the test split's viewer (`href` relative to the report)."""
    link = html.escape(href, quote=True)
    return (f'<p class="avvp-viewer">Watch each test video with its events and ground truth, worst first: '
            f'<a href="{link}">{html.escape(href)}</a> (the offline viewer, in this report\'s folder; '
            "avvp view rebuilds it).</p>")


def summary_html(table_html: str, curves: Mapping[str, str | Path], per_class: Mapping[str, str | Path],
                 timelines: Sequence[str | Path], viewer: str | None = None) -> str:
    """The report's front page below its title: the metrics tables, the link to the test split's
    viewer (its address relative to the report), then every figure (label -> figure file)."""
    parts = ['<section class="avvp-metrics">', table_html, "</section>"]
    if viewer:
        parts.append(viewer_html(viewer))
    parts.append("<h2>Training curves</h2>")
    parts += [figure_html(p, f"{label}: loss and validation Type@AV per epoch") for label, p in curves.items()]
    parts.append("<h2>Per-class F-scores (segment level)</h2>")
    parts += [figure_html(p, f"{label}: audio and visual F per class") for label, p in per_class.items()]
    if timelines:
        parts.append("<h2>Test timelines (first run's model; hatched: ground truth)</h2>")
        parts += [figure_html(p, Path(p).stem) for p in timelines]
    return '<div class="avvp-front">\n' + "\n".join(parts) + "\n</div>\n"
