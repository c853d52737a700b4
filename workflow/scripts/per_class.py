"""Rule per_class: one run's audio and visual F per class (the mean over its seeds, if several)."""

import sys

from avvp.evaluation.aggregate import central_scores, read_json
from avvp.base.atomic import atomic_output
from avvp.reporting.figures import per_class_bars, random_weights_banner

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

metrics = read_json(snakemake.input[0])
scores = {**central_scores(metrics["methods"][snakemake.wildcards.run]),
          "n_videos": metrics["coverage"]["test"]["scored"]}
with atomic_output(snakemake.output[0], "wb") as fh:
    per_class_bars(scores, fh, warning=random_weights_banner(metrics["random_weights"]))
