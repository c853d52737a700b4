"""Rules parse and timelines: videos through a run's model (events as JSON and CSV, a timeline each)."""

import sys

from avvp.parse import available_videos, parse_with_checkpoint

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

inp, params = snakemake.input, snakemake.params
videos = available_videos(params.videos, inp.manifest, params.limit) if "manifest" in inp.keys() else params.videos
parse_with_checkpoint(videos, inp.checkpoint, snakemake.output[0], params.weights, params.seed, **params.settings,
                      audio_csv=inp.get("audio_csv"), visual_csv=inp.get("visual_csv"))
