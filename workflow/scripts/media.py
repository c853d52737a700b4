"""Rule media: audio and frames of one shard's clips, its updated records and extraction lists."""

import sys

from avvp.media import prepare_shard

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

inp, out = snakemake.input, snakemake.output
prepare_shard(inp.records, inp.videos, out.audio, out.frames, out.records, out.audio_list, out.frames_list)
