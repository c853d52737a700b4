"""Rule demo_videos: render the demo clips of one shard (clip i depends only on (seed, i))."""

import sys

from avvp.clips.demo import write_shard

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

write_shard(snakemake.params.indices, snakemake.params.seed, snakemake.output[0], snakemake.threads)
