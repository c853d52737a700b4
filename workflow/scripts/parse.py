"""Rules parse and timelines: videos through a run's model (events as JSON and CSV, a timeline each),
one after the other into params.out_dir, reusing the features under params.features; rule parse
also lists the videos and their outputs (its output, written when all are done)."""

import sys
from pathlib import Path

from avvp.base.atomic import atomic_output, exit_on_sigterm
from avvp.parsing.parse import available_videos, parse_with_checkpoint

sys.stdout = sys.stderr = open(snakemake.log[0], "w")
exit_on_sigterm()  # a cancelled job removes its temporary outputs and work folders

inp, params = snakemake.input, snakemake.params
videos = available_videos(params.videos, inp.manifest, params.limit) if "manifest" in inp.keys() else params.videos
parse_with_checkpoint(videos, inp.checkpoint, params.out_dir, **params.settings, features=params.features,
                      audio_csv=inp.get("audio_csv"), visual_csv=inp.get("visual_csv"))
if "videos" in snakemake.output.keys():
    with atomic_output(snakemake.output.videos, "w") as fh:
        fh.write("video\tjson\n" + "".join(f"{v}\t{params.out_dir}/{Path(v).stem}.json\n" for v in videos))
