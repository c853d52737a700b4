"""The HTML pieces of the workflow's report: the metrics tables and the front page's summary.

Both are fragments that Snakemake's report embeds (`workflow/report/workflow.rst` includes the
summary); figures are inlined as PNG data so the page is self-contained.
"""
from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avvp.figures import metrics_table


def metrics_tables_html(metrics: Mapping[str, Any], labels: Mapping[str, str],
                        published: Sequence[Mapping[str, Any]] = ()) -> str:
    """One table per method (each seed, then mean ± sd, then the published rows), with the
    random-weights warning above them when it applies."""
    parts = []
    if metrics.get("weights_note"):
        parts.append(f'<p class="warning"><strong>{html.escape(metrics["weights_note"])}</strong></p>')
    for method, run in metrics["runs"].items():
        seeds = {f"seed {seed}": body for seed, body in run["seeds"].items()}
        caption = (f"{labels[method]} ({run['final_stage']} model), test split, {run['mean']['n_videos']} videos, "
                   f"percent; sd = {run['sd_of']}")
        parts.append(metrics_table(seeds, published, fmt="html", caption=caption))
    return "\n".join(parts)


def figure_html(path: str | Path, alt: str, width: str) -> str:
    """A PNG inlined as a captioned figure."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure style="display:inline-block;margin:4px;width:{width};vertical-align:top">'
            f'<img class="figure" src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="width:100%">'
            f'<figcaption>{html.escape(alt)}</figcaption></figure>')


def summary_html(table_html: str, curves: Mapping[str, str | Path], per_class: Mapping[str, str | Path],
                 timelines: Sequence[str | Path]) -> str:
    """The report's front page: the metrics tables and every figure inline (label -> figure file)."""
    # The report draws the rule graph beside its front page: tables scroll inside their column.
    parts = ["<h2>Test-split metrics</h2>",
             f'<div style="overflow-x:auto;max-width:100%;font-size:85%">{table_html}</div>',
             "<h2>Training curves</h2>"]
    parts += [figure_html(p, f"{label}: loss and validation Type@AV per epoch", "95%") for label, p in curves.items()]
    parts.append("<h2>Per-class F-scores (segment level, mean over seeds)</h2>")
    parts += [figure_html(p, f"{label}: audio and visual F per class", "46%") for label, p in per_class.items()]
    if timelines:
        parts.append("<h2>Test timelines (first run's model; hatched: ground truth)</h2>")
        parts += [figure_html(p, Path(p).stem, "95%") for p in timelines]
    return '<div class="avvp-summary">\n' + "\n".join(parts) + "\n</div>\n"
