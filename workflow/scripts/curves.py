"""Rule curves: one run's training loss and validation Type@AV per epoch, seeds overlaid."""

import sys

from avvp.evaluation.aggregate import random_kinds, weights_used
from avvp.base.atomic import atomic_output
from avvp.reporting.figures import random_weights_banner, training_curves

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

params = snakemake.params
warning = random_weights_banner(random_kinds(weights_used(params.weights)))
with atomic_output(snakemake.output[0], "wb") as fh:
    training_curves(dict(zip(params.labels, params.stages)), fh, warning=warning)
