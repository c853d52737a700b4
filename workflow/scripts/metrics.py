"""Rule metrics: the test-split scores, plus how many clips of each split were used (and why not
the others) and which backbone weights made the features; random weights are labelled."""
import json
import sys
from pathlib import Path

from avvp.predictions import atomic_output

sys.stdout = sys.stderr = open(snakemake.log[0], "w")

RANDOM_NOTE = ("features made with RANDOM backbone weights: these numbers show that the pipeline "
               "works end to end; they are not comparable with published results")


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def split_coverage(pack_dir: str) -> dict:
    """Clips of a split that made it into its pack, and the reason for each one that did not."""
    index = read_json(Path(pack_dir) / "index.json")
    used, skipped = index["filenames"], index["skipped"]
    return {"total": len(used) + len(skipped), "used": len(used), "not_used": skipped}


def weights_used(files: dict[str, list[str]]) -> dict:
    """Kind -> its weights record (one when all shards agree, else the distinct ones)."""
    out = {}
    for kind, paths in files.items():
        records = [read_json(p) for p in paths if Path(p).is_file()]
        distinct = list({json.dumps(r, sort_keys=True): r for r in records}.values())
        if not distinct:
            out[kind] = {"weights": "unknown", "how": "no weights.json beside the feature files"}
        else:
            out[kind] = distinct[0] if len(distinct) == 1 else {"weights": "mixed", "records": distinct}
    return out


scores = read_json(snakemake.input.scores)
coverage = {Path(p).name: split_coverage(p) for p in snakemake.input.packs}
test = coverage["test"]
test.update(scored=scores["n_videos"], not_scored={
    name: test["not_used"].get(name, "no prediction") for name in scores["unscored"]})
weights = weights_used(snakemake.params.weights)
random = sorted(kind for kind, rec in weights.items()
                if rec["weights"] == "random" or any(r["weights"] == "random" for r in rec.get("records", [])))
metrics = {
    **scores,
    "dataset": snakemake.params.dataset,
    "coverage": coverage,
    "weights": weights,
    "random_weights": random,
}
if random:
    metrics["weights_note"] = f"{', '.join(random)}: {RANDOM_NOTE}"
with atomic_output(snakemake.output[0], "w") as fh:
    json.dump(metrics, fh, indent=2)
    fh.write("\n")
print(json.dumps({k: metrics[k] for k in ("segment_level", "event_level", "n_videos")}, indent=1))
