"""Rule media: audio and frames of one shard's clips, its updated records and extraction lists
(one per medium: WAVs, frames folders, the clips themselves)."""

import sys

from avvp.base.atomic import exit_on_sigterm
from avvp.clips.media import prepare_shard

sys.stdout = sys.stderr = open(snakemake.log[0], "w")
exit_on_sigterm()  # a cancelled job removes its temporary outputs and work folders

inp, out = snakemake.input, snakemake.output
lists = {"audio": out.audio_list, "frames": out.frames_list, "video": out.video_list}
prepare_shard(inp.records, inp.videos, out.audio, out.frames, out.records, lists, **snakemake.params.limits)
