"""Rule metrics: every run's test-split scores with each method's mean and standard deviation over
seeds, plus how many clips of each split were used (and why not the others) and which backbone
weights made the features; random weights are labelled.

The top-level ten numbers, n_videos and per_class are the first listed method's mean over seeds, so
readers of a one-run metrics.json keep working.
"""
import json
import statistics
import sys
from pathlib import Path

from avvp.atomic import atomic_output

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


LEVELS = ("segment_level", "event_level")
SD_OF = "sample standard deviation over seeds (n - 1 denominator); null with one seed"


def mean_sd(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample sd of the values that exist (a per-class F is None where it is undefined)."""
    known = [v for v in values if v is not None]
    if not known:
        return None, None
    return statistics.mean(known), statistics.stdev(known) if len(known) > 1 else None


def aggregate(bodies: list[dict]) -> tuple[dict, dict]:
    """Mean and sd, key by key, of the runs' segment_level, event_level and per_class."""
    mean: dict = {}
    sd: dict = {}

    def walk(parts: list, m: dict, d: dict) -> None:
        for key, first in parts[0].items():
            column = [p.get(key) for p in parts]
            if isinstance(first, dict):
                walk(column, m.setdefault(key, {}), d.setdefault(key, {}))
            else:
                m[key], d[key] = mean_sd(column)

    walk([{k: b[k] for k in (*LEVELS, "per_class")} for b in bodies], mean, sd)
    mean["n_videos"] = bodies[0]["n_videos"]
    return mean, sd


def per_method(runs: list[list], bodies: list[dict], final_stage: dict[str, str]) -> dict:
    """method -> {seeds: {seed: ten numbers, n_videos, per_class}, mean, sd, ...}."""
    out: dict = {}
    for (method, seed), body in zip(runs, bodies):
        entry = out.setdefault(method, {"final_stage": final_stage[method], "seeds": {}})
        entry["seeds"][str(seed)] = {k: body[k] for k in (*LEVELS, "n_videos", "per_class")}
    for method, entry in out.items():
        seeds = list(entry["seeds"].values())
        entry["mean"], entry["sd"] = aggregate(seeds)
        entry.update(n_seeds=len(seeds), sd_of=SD_OF)
    return out


bodies = [read_json(path) for path in snakemake.input.scores]
runs = per_method(snakemake.params.runs, bodies, snakemake.params.final_stage)
first_method = snakemake.params.runs[0][0]
scores = {**bodies[0], **runs[first_method]["mean"]}
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
    "summary_of": f"{first_method}: mean over its {runs[first_method]['n_seeds']} seed(s)",
    "runs": runs,
}
if random:
    metrics["weights_note"] = f"{', '.join(random)}: {RANDOM_NOTE}"
with atomic_output(snakemake.output[0], "w") as fh:
    json.dump(metrics, fh, indent=2)
    fh.write("\n")
print(json.dumps({k: metrics[k] for k in ("segment_level", "event_level", "n_videos")}, indent=1))
