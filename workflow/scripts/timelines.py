"""Rule timelines: the first few available test videos through `avvp parse` with the first run's
model, drawn beside their ground truth (the report's gallery)."""
import shlex
import sys
from pathlib import Path

from avvp.cli import main
from avvp.records import read_records

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

usable = {r.filename for r in read_records(snakemake.input.manifest) if r.usable}
videos = [path for name, path in snakemake.params.videos.items() if name in usable and Path(path).is_file()]
chosen = videos[: snakemake.params.n_videos]
out = Path(snakemake.output[0])
out.mkdir(parents=True, exist_ok=True)
if chosen:
    evaluate = snakemake.params.evaluate
    status = main([
        "parse", *chosen, "--checkpoint", snakemake.input.checkpoint, "--out", str(out),
        *shlex.split(snakemake.params.weights), "--device", snakemake.params.device,
        "--frame-threshold", str(evaluate["frame_threshold"]),
        "--global-threshold", str(evaluate["global_threshold"]),
        "--audio-csv", snakemake.input.audio_csv, "--visual-csv", snakemake.input.visual_csv, "--no-progress",
    ])
    if status:
        sys.exit(status)
print(f"{len(chosen)} of {len(videos)} available test videos drawn")
