"""Rule per_class: one method's audio and visual F per class, the mean over its seeds."""
import json
import sys
from pathlib import Path

from avvp.figures import per_class_bars
from avvp.atomic import atomic_output

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

run = json.loads(Path(snakemake.input[0]).read_text(encoding="utf-8"))["runs"][snakemake.wildcards.method]
with atomic_output(snakemake.output[0], "wb") as fh:
    per_class_bars(run["mean"], fh)
print(f"{snakemake.wildcards.method}: per-class F, mean over {run['n_seeds']} seed(s)")
