"""Rule demo_videos: render the demo clips of one shard (clip i depends only on (seed, i))."""
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from avvp.demo import MIN_VIDEOS, plan_clips, write_clip

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

indices = snakemake.params.indices
clips = plan_clips(max(MIN_VIDEOS, max(indices) + 1), snakemake.params.seed)
out = Path(snakemake.output[0])
out.mkdir(parents=True, exist_ok=True)
with ThreadPoolExecutor(snakemake.threads) as pool:
    list(pool.map(lambda i: write_clip(clips[i], out / f"{clips[i].filename}.mp4"), indices))
print(f"rendered {len(indices)} demo clips into {out}")
