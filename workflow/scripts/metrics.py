"""Rule metrics: every run's scores, each method's mean and sd over seeds, coverage and weights."""

import sys

from avvp.aggregate import build_metrics, write_metrics

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

params = snakemake.params
write_metrics(snakemake.output[0], build_metrics(snakemake.input.scores, params.runs, params.final_stage,
                                                 snakemake.input.packs, params.weights, params.dataset, params.ffmpeg))
