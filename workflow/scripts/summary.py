"""Rule summary: the report's front page (included by workflow/report/workflow.rst) with the
metrics tables and every figure inline, so one screen shows the run; the figures are also the
report's own entries, with captions, under their categories."""
import base64
import html
import sys
from pathlib import Path

from avvp.atomic import atomic_output

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

inp, labels = snakemake.input, snakemake.params.labels


def image(path: str | Path, alt: str, width: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure style="display:inline-block;margin:4px;width:{width};vertical-align:top">'
            f'<img class="figure" src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="width:100%">'
            f'<figcaption>{html.escape(alt)}</figcaption></figure>')


def method_of(path: str) -> str:
    return labels[Path(path).stem]


# The report draws the rule graph beside its front page: tables scroll inside their column.
table = Path(inp.table).read_text(encoding="utf-8")
parts = ["<h2>Test-split metrics</h2>", f'<div style="overflow-x:auto;max-width:100%;font-size:85%">{table}</div>',
         "<h2>Training curves</h2>"]
parts += [image(p, f"{method_of(p)}: loss and validation Type@AV per epoch", "95%") for p in inp.curves]
parts.append("<h2>Per-class F-scores (segment level, mean over seeds)</h2>")
parts += [image(p, f"{method_of(p)}: audio and visual F per class", "46%") for p in inp.per_class]
if inp.timelines:
    pngs = sorted(Path(inp.timelines[0]).glob("*.png"))
    parts.append("<h2>Test timelines (first run's model; hatched: ground truth)</h2>")
    parts += [image(p, p.stem, "95%") for p in pngs]
with atomic_output(snakemake.output[0], "w") as fh:
    fh.write('<div class="avvp-summary">\n' + "\n".join(parts) + "\n</div>\n")
print(f"summary of {len(inp.curves)} method(s)")
