"""Rule summary: the report's front page (included by workflow/report/workflow.rst)."""

import os
import sys
from pathlib import Path

from avvp.base.atomic import atomic_output
from avvp.reporting.report import summary_html

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

inp, labels = snakemake.input, snakemake.params.labels
timelines = sorted(Path(inp.timelines[0]).glob("*.png")) if inp.timelines else []
# The viewer's address from the report, which sits in the experiment folder
# (`snakemake --report results/report.html`, or results/<experiment>/report.html).
viewer = os.path.relpath(inp.viewer[0], snakemake.params.experiment) if inp.viewer else None
with atomic_output(snakemake.output[0], "w") as fh:
    fh.write(summary_html(Path(inp.table).read_text(encoding="utf-8"),
                          {labels[Path(p).stem]: p for p in inp.curves},
                          {labels[Path(p).stem]: p for p in inp.per_class}, timelines, viewer))
