"""Rule media: `avvp media` on one shard, then the extractors' input lists of its usable clips."""
import sys

from avvp.cli import main
from avvp.atomic import atomic_output
from avvp.records import read_records

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

inp, out = snakemake.input, snakemake.output
status = main([
    "media", "--records", inp.records, "--videos-dir", inp.videos,
    "--audio-dir", out.audio, "--frames-dir", out.frames, "--out-records", out.records,
])
if status:
    sys.exit(status)

usable = [r.filename for r in read_records(out.records) if r.usable]
lists = {
    out.audio_list: [f"{out.audio}/{name}.wav" for name in usable],
    out.frames_list: [f"{out.frames}/{name}" for name in usable],
}
for path, lines in lists.items():
    with atomic_output(path, "w") as fh:
        fh.writelines(f"{line}\n" for line in lines)
print(f"{len(usable)} usable clips listed for extraction")
