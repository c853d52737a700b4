"""Rule curves: one method's training loss and validation Type@AV per epoch, seeds overlaid."""

import sys

from avvp.atomic import atomic_output
from avvp.figures import training_curves

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

with atomic_output(snakemake.output[0], "wb") as fh:
    training_curves(dict(zip(snakemake.params.labels, snakemake.params.stages)), fh)
