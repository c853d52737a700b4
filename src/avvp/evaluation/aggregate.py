"""results/metrics.json: per method, evaluation protocol and seed the ten test-split numbers and
per-class F-scores, each method's mean and sample sd where it has several seeds, the protocols'
definitions, how many clips of each split were used and scored (once), what the evaluation checked
in the annotation files (per annotation version), and a `provenance` block saying what produced
the numbers.

The layout is the JSON schema `avvp/schemas/metrics.schema.json` (explained in docs/METRICS.md);
`build_metrics` validates what it builds against it.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from avvp.base.atomic import atomic_output
from avvp.base.protocol import LEVELS
from avvp.base.random_weights import random_weight_kinds

FORMAT = "avvp-metrics/3"
RANDOM_NOTE = ("features made with RANDOM backbone weights: these numbers show that the pipeline "
               "works end to end; they are not comparable with published results")
SD_OF = "sample standard deviation over seeds (n - 1 denominator)"
SCORE_KEYS = (*LEVELS, "per_class", "dataset_level")
SEED_KEYS = ("n_seeds", "seeds", "mean", "sd", "sd_of")  # a method's scores under one protocol
# What every evaluation must agree on: all score the same test split's videos.
SHARED_KEYS = ("n_videos", "unscored")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON file ({err})") from None


def metrics_schema() -> dict:
    """The JSON schema of metrics.json, shipped with the package."""
    return json.loads(resources.files("avvp").joinpath("schemas/metrics.schema.json").read_text(encoding="utf-8"))


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample sd of the values that exist (a per-class F is None where it is undefined)."""
    known = [v for v in values if v is not None]
    if not known:
        return None, None
    return statistics.mean(known), statistics.stdev(known) if len(known) > 1 else None


def aggregate(scores: Sequence[Mapping[str, Any]]) -> tuple[dict, dict]:
    """Mean and sd, key by key, of several runs' segment_level, event_level and per_class."""
    mean: dict = {}
    sd: dict = {}

    def walk(parts: list, m: dict, d: dict) -> None:
        for key, first in parts[0].items():
            column = [p.get(key) for p in parts]
            if isinstance(first, dict):
                walk(column, m.setdefault(key, {}), d.setdefault(key, {}))
            else:
                m[key], d[key] = mean_sd(column)

    walk([{k: s[k] for k in SCORE_KEYS if k in s} for s in scores], mean, sd)
    return mean, sd


def per_method(runs: Sequence[tuple[str, int]], bodies: Sequence[Mapping[str, Any]],
               methods: Mapping[str, Mapping[str, Any]]) -> dict:
    """method -> {label, final_stage, features, n_seeds, seeds: {seed: scores}}, plus mean, sd and
    sd_of when the method has several seeds; `methods` gives each method's label, final_stage and
    features (the kinds its model was trained on, in order)."""
    grouped: dict[str, dict[str, dict]] = {}
    for (method, seed), body in zip(runs, bodies):
        grouped.setdefault(method, {})[str(seed)] = {k: body[k] for k in SCORE_KEYS if k in body}
    out = {}
    for method, seeds in grouped.items():
        about = methods[method]
        entry = {"label": about["label"], "final_stage": about["final_stage"], "features": list(about["features"]),
                 "n_seeds": len(seeds), "seeds": seeds}
        if len(seeds) > 1:
            entry["mean"], entry["sd"] = aggregate(list(seeds.values()))
            entry["sd_of"] = SD_OF
        out[method] = entry
    return out


def central_scores(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a figure draws for one method of metrics.json: its mean over seeds, or its one seed's scores."""
    return entry["mean"] if "mean" in entry else next(iter(entry["seeds"].values()))


def shared_evaluation(scores: Sequence[str | Path], bodies: Sequence[Mapping[str, Any]]) -> dict:
    """What all evaluations agree on (the scored clips); one that differs was scored on another
    split, which is an error."""
    first = {k: bodies[0][k] for k in SHARED_KEYS}
    for path, body in zip(scores[1:], bodies[1:]):
        differs = [k for k in SHARED_KEYS if body[k] != first[k]]
        if differs:
            raise ValueError(f"{path}: {', '.join(differs)} differ from {scores[0]}'s; every run must be "
                             "scored on the same test split")
    return first


def annotation_checks(scores: Sequence[str | Path], bodies: Sequence[Mapping[str, Any]]) -> dict:
    """What the evaluations found in the annotation files, per annotation version scored (the
    legacy audio file has orphan rows the 2024 one does not); evaluations of one version that
    disagree read other files, which is an error."""
    out: dict[str, dict] = {}
    first: dict[str, str | Path] = {}
    for path, body in zip(scores, bodies):
        version = body["protocol"]["annotations_scored"]
        found = out.setdefault(version, body["annotation_warnings"])
        first.setdefault(version, path)
        if found != body["annotation_warnings"]:
            raise ValueError(f"{path}: its annotation checks differ from {first[version]}'s; every evaluation of "
                             f"the {version} annotations must read the same files")
    return out


def by_protocol(runs: Sequence[tuple[str, int]], scores: Sequence[str | Path], methods: Mapping[str, Mapping[str, Any]],
                protocols: Mapping[str, Mapping[str, Any]]) -> dict:
    """method -> its `per_method` entry under the first protocol, with `by_protocol`: protocol ->
    n_seeds, seeds, mean, sd under each (`scores` protocol-major, then in `runs` order)."""
    if len(scores) != len(runs) * len(protocols):
        raise ValueError(f"{len(scores)} evaluation files for {len(runs)} runs x {len(protocols)} protocols")
    blocks = {}
    for index, entry in enumerate(protocols):
        paths = scores[index * len(runs):(index + 1) * len(runs)]
        blocks[entry] = per_method(runs, [read_json(p) for p in paths], methods)
    primary = blocks[next(iter(protocols))]
    return {method: {**entry, "by_protocol": {p: {k: block[method][k] for k in SEED_KEYS if k in block[method]}
                                              for p, block in blocks.items()}}
            for method, entry in primary.items()}


def split_coverage(pack_dir: str | Path) -> dict:
    """Clips of a split that made it into its pack, and the reason for each one that did not."""
    index = read_json(Path(pack_dir) / "index.json")
    used, skipped = index["filenames"], index["skipped"]
    return {"total": len(used) + len(skipped), "used": len(used), "not_used": skipped}


def coverage(packs: Sequence[str | Path], evaluation: Mapping[str, Any]) -> dict:
    """split -> total, used (packed), not_used; the test split also scored and not_scored."""
    out = {Path(p).name: split_coverage(p) for p in packs}
    test = out["test"]
    test.update(scored=evaluation["n_videos"], not_scored={
        name: test["not_used"].get(name, "no prediction") for name in evaluation["unscored"]})
    return out


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
    return sorted(random_weight_kinds(weights))


def build_metrics(scores: Sequence[str | Path], runs: Sequence[tuple[str, int]],
                  methods: Mapping[str, Mapping[str, Any]], packs: Sequence[str | Path], dataset: Mapping[str, Any],
                  provenance: Mapping[str, Any], protocols: Mapping[str, Mapping[str, Any]],
                  notes: Mapping[str, Sequence[str]] | None = None) -> dict:
    """The metrics.json body from each evaluation file (protocol-major, then in `runs` order) and
    the split packs; `methods` as in `per_method`; `protocols`: entry -> title and each run's rule,
    in the config's order (the first is the primary one); `provenance` (avvp.reporting.provenance)
    holds the feature weights records among the rest; `notes`: method -> what its runs' passes say
    a reader must know (`avvp.methods.stages.pass_notes`)."""
    bodies = [read_json(path) for path in scores]
    evaluation = shared_evaluation(scores, bodies)
    random = random_kinds(provenance["feature_weights"])
    metrics = {
        "format": FORMAT,
        "dataset": dict(dataset),
        "split": "test",
        "random_weights": random,
        **({"weights_note": f"{', '.join(random)}: {RANDOM_NOTE}"} if random else {}),
        "coverage": coverage(packs, evaluation),
        "evaluation": {"primary_protocol": next(iter(protocols)), "annotation_checks": annotation_checks(scores, bodies)},
        "protocols": {entry: dict(about) for entry, about in protocols.items()},
        "methods": {m: {**entry, **({"notes": list(notes[m])} if notes and notes.get(m) else {})}
                    for m, entry in by_protocol(runs, scores, methods, protocols).items()},
        "provenance": dict(provenance),
    }
    validate_metrics(metrics)
    return metrics


def validate_metrics(metrics: Mapping[str, Any], where: str = "metrics.json") -> None:
    """Check `metrics` against the shipped schema; the error names the first place that differs."""
    try:
        jsonschema.validate(metrics, metrics_schema())
    except jsonschema.ValidationError as err:
        at = "/".join(str(p) for p in err.absolute_path) or "(top)"
        raise ValueError(f"{where}: does not match avvp's metrics schema at {at}: {err.message}") from None


def write_metrics(path: str | Path, metrics: Mapping[str, Any]) -> None:
    with atomic_output(path, "w") as fh:
        json.dump(metrics, fh, indent=2)
        fh.write("\n")
