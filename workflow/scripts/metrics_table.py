"""Rule metrics_table: one HTML table per method (each seed, then mean ± sd), and on LLP the
published results beside them; random backbone weights are stated above the tables."""
import html
import json
import sys
from pathlib import Path

from avvp.figures import metrics_table, published_results
from avvp.atomic import atomic_output

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

metrics = json.loads(Path(snakemake.input[0]).read_text(encoding="utf-8"))
labels = snakemake.params.labels
published = published_results("all") if snakemake.params.published else []
parts = []
if metrics.get("weights_note"):
    parts.append(f'<p class="warning"><strong>{html.escape(metrics["weights_note"])}</strong></p>')
for method, run in metrics["runs"].items():
    seeds = {f"seed {seed}": body for seed, body in run["seeds"].items()}
    caption = (f"{labels[method]} ({run['final_stage']} model), test split, {run['mean']['n_videos']} videos, "
               f"percent; sd = {run['sd_of']}")
    parts.append(metrics_table(seeds, published, fmt="html", caption=caption))
with atomic_output(snakemake.output[0], "w") as fh:
    fh.write("\n".join(parts))
print(f"tables of {len(metrics['runs'])} method(s); published rows: {len(published)}")
