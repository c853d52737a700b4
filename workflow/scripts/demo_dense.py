"""Rule demo_dense: `avvp demo --dense`, then each clip's frames (`avvp frames`), then its clip
features from the frames and its clap_windows features from the clip (`avvp extract`), all under the
rule's folder, which Snakemake removes if any step fails."""

import shlex
import sys
from pathlib import Path

from avvp.cli import main

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

out = Path(snakemake.output[0])
params = snakemake.params


def run(args: list[str]) -> None:
    print("avvp", shlex.join(args), flush=True)
    if main(args) != 0:
        raise SystemExit(f"avvp {args[0]} failed (see above)")


run(["demo", "--dense", "--out", str(out), "--n-videos", str(params.n_videos), "--seed", str(params.seed)])
videos = sorted((out / "videos").glob("*.mp4"))
for video in videos:
    run(["frames", str(video), str(out / "frames" / video.stem)])
inputs = {"clip": [str(out / "frames" / v.stem) for v in videos], "clap_windows": [str(v) for v in videos]}
for kind, flags in params.kinds.items():
    run(["extract", "--kind", kind, *shlex.split(flags), "--out-dir", str(out / "features"), "--no-progress",
         *inputs[kind]])
