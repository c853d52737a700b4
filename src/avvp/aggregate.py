"""metrics.json: every run's test-split scores, each method's mean and standard deviation over
seeds, how many clips of each split were used (and why not the others), and which backbone weights
made the features; random weights are labelled.

The top-level ten numbers, n_videos and per_class are the first listed method's mean over seeds, so
readers of a one-run metrics.json keep working.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avvp.atomic import atomic_output
from avvp.protocol import LEVELS

RANDOM_NOTE = ("features made with RANDOM backbone weights: these numbers show that the pipeline "
               "works end to end; they are not comparable with published results")
SD_OF = "sample standard deviation over seeds (n - 1 denominator); null with one seed"


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON file ({err})") from None


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample sd of the values that exist (a per-class F is None where it is undefined)."""
    known = [v for v in values if v is not None]
    if not known:
        return None, None
    return statistics.mean(known), statistics.stdev(known) if len(known) > 1 else None


def aggregate(bodies: Sequence[Mapping[str, Any]]) -> tuple[dict, dict]:
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


def per_method(runs: Sequence[tuple[str, int]], bodies: Sequence[Mapping[str, Any]],
               final_stage: Mapping[str, str]) -> dict:
    """method -> {final_stage, seeds: {seed: ten numbers, n_videos, per_class}, mean, sd, n_seeds, sd_of}."""
    out: dict = {}
    for (method, seed), body in zip(runs, bodies):
        entry = out.setdefault(method, {"final_stage": final_stage[method], "seeds": {}})
        entry["seeds"][str(seed)] = {k: body[k] for k in (*LEVELS, "n_videos", "per_class")}
    for entry in out.values():
        seeds = list(entry["seeds"].values())
        entry["mean"], entry["sd"] = aggregate(seeds)
        entry.update(n_seeds=len(seeds), sd_of=SD_OF)
    return out


def split_coverage(pack_dir: str | Path) -> dict:
    """Clips of a split that made it into its pack, and the reason for each one that did not."""
    index = read_json(Path(pack_dir) / "index.json")
    used, skipped = index["filenames"], index["skipped"]
    return {"total": len(used) + len(skipped), "used": len(used), "not_used": skipped}


def weights_used(files: Mapping[str, Sequence[str | Path]]) -> dict:
    """Kind -> its weights record (one when all shards agree, else the distinct ones)."""
    out = {}
    for kind, paths in files.items():
        records = distinct(paths)
        if not records:
            out[kind] = {"weights": "unknown", "how": "no weights.json beside the feature files"}
        else:
            out[kind] = records[0] if len(records) == 1 else {"weights": "mixed", "records": records}
    return out


def distinct(paths: Sequence[str | Path]) -> list[dict]:
    """The distinct JSON records among the files that exist (e.g. each shard's ffmpeg.json)."""
    records = [read_json(p) for p in paths if Path(p).is_file()]
    return list({json.dumps(r, sort_keys=True): r for r in records}.values())


def random_kinds(weights: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The kinds whose features (all or some shards) come from random weights."""
    return sorted(kind for kind, rec in weights.items()
                  if rec["weights"] == "random" or any(r["weights"] == "random" for r in rec.get("records", [])))


def build_metrics(scores: Sequence[str | Path], runs: Sequence[tuple[str, int]], final_stage: Mapping[str, str],
                  packs: Sequence[str | Path], weights_files: Mapping[str, Sequence[str | Path]],
                  dataset: Mapping[str, Any], ffmpeg_files: Sequence[str | Path] = ()) -> dict:
    """The metrics.json body from each run's evaluation file (in `runs` order), the split packs, the
    feature folders' weights records and the frames folders' ffmpeg records."""
    bodies = [read_json(path) for path in scores]
    by_method = per_method(runs, bodies, final_stage)
    first_method = runs[0][0]
    top = {**bodies[0], **by_method[first_method]["mean"]}
    coverage = {Path(p).name: split_coverage(p) for p in packs}
    test = coverage["test"]
    test.update(scored=top["n_videos"], not_scored={
        name: test["not_used"].get(name, "no prediction") for name in top["unscored"]})
    weights = weights_used(weights_files)
    random = random_kinds(weights)
    metrics = {
        **top,
        "dataset": dict(dataset),
        "coverage": coverage,
        "weights": weights,
        "random_weights": random,
        "ffmpeg": distinct(ffmpeg_files),
        "summary_of": f"{first_method}: mean over its {by_method[first_method]['n_seeds']} seed(s)",
        "runs": by_method,
    }
    if random:
        metrics["weights_note"] = f"{', '.join(random)}: {RANDOM_NOTE}"
    return metrics


def write_metrics(path: str | Path, metrics: Mapping[str, Any]) -> None:
    with atomic_output(path, "w") as fh:
        json.dump(metrics, fh, indent=2)
        fh.write("\n")
