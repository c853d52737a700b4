"""Rule metrics: every run's scores, each method's mean and sd over seeds, coverage and provenance."""

import sys

from avvp.evaluation.aggregate import build_metrics, distinct, weights_used, write_metrics
from avvp.methods.stages import pass_notes
from avvp.reporting.provenance import provenance_block, stage_settings

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

inp, params, config = snakemake.input, snakemake.params, snakemake.config
provenance = provenance_block(config, stage_settings(params.stage_settings), inp.checkpoints,
                              inp.annotations, weights_used(params.weights), distinct(params.ffmpeg))
write_metrics(snakemake.output[0], build_metrics(inp.scores, params.runs, params.methods, inp.packs,
                                                 params.dataset, provenance, params.protocols,
                                                 pass_notes(params.explained)))
