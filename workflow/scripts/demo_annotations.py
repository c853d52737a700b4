"""Rule demo_annotations: the demo's classes.txt and LLP-format split and dense files."""

import sys
from pathlib import Path

from avvp.clips.demo import plan_clips, write_annotations

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

demo = snakemake.params.demo
write_annotations(plan_clips(demo["n_videos"], demo["seed"]), Path(snakemake.output.classes).parent)
