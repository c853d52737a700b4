"""Config paths reach the shell quoted: for every shipped config, every path of the config (annotation
files, local_dir, features_dir, extractor weights, stage files such as VALOR's prompts, parse.videos_dir)
is set to a real file or folder whose name holds a space, a command substitution, backticks, quotes and
a semicolon; every command a dry run prints must parse back (shlex) with each such path as one whole
word, and nothing may have been executed."""
from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from workflow_helpers import copy_workflow, load_config, run_snakemake, small_demo_dataset, write_config

MARKER = "QUOTING_MARKER"  # what the hostile names would create if a shell ran them
ANNOTATION_KEYS = ("classes", "train", "val", "test", "eval_audio", "eval_visual")
SHIPPED = ("config/config.yaml", "config/compare.yaml", "config/valor.yaml", "config/llp.yaml")
PREFIX = "Shell command: "


def hostile(name: str) -> str:
    """A folder name that an unquoted shell command splits, runs or chokes on."""
    return f"{name} dir $(touch {MARKER}) `touch {MARKER}` it's; \"{name}\" & x"


def merged_config(workdir: Path, shipped: str) -> dict:
    """The shipped config laid over config/config.yaml (as --configfile does; two levels suffice)."""
    config = load_config(workdir)
    if shipped != "config/config.yaml":
        for key, value in load_config(workdir, shipped).items():
            config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    return config


def shipped_modes() -> list[tuple[str, str]]:
    """Each shipped config in its own mode, and in local and features mode (the paths of each)."""
    cases = []
    for shipped in SHIPPED:
        own = yaml.safe_load((Path(__file__).resolve().parents[1] / shipped).read_text()).get("dataset", {})
        for mode in dict.fromkeys([own.get("mode", "demo"), "local", "features"]):
            cases.append((shipped, mode))
    return cases


def hostile_overlay(workdir: Path, shipped: str, mode: str) -> tuple[dict, set[str], set[str]]:
    """A config overlay naming hostile copies of every path; those paths, and those some shell
    command must get."""
    from avvp.extractors import feature_kinds
    from avvp.methods.stages import method, stages

    config = merged_config(workdir, shipped)
    dataset = {"mode": mode}
    expected: set[str] = set()
    paths: set[str] = set()
    if mode != "demo":
        folder = hostile("annotations")
        named = config["dataset"].get("annotations")
        if named:  # the files the shipped config names, copied
            (workdir / folder).mkdir()
            annotations = {}
            for key in ANNOTATION_KEYS:
                annotations[key] = f"{folder}/{Path(named[key]).name}"
                shutil.copy(workdir / named[key], workdir / annotations[key])
        else:  # a demo config names none: a small data set in the LLP format
            small_demo_dataset(workdir / folder, {"train": 6, "val": 3, "test": 3})
            annotations = {key: f"{folder}/{key}.{'txt' if key == 'classes' else 'csv'}" for key in ANNOTATION_KEYS}
        dataset["annotations"] = annotations
        dataset["n_shards"] = config["dataset"]["n_shards"] if named else 4
        expected |= set(annotations.values())
    if mode == "local":
        dataset["local_dir"] = hostile("clips")
        (workdir / dataset["local_dir"]).mkdir()
        (workdir / dataset["local_dir"] / "clip.mp4").write_bytes(b"")
        expected.add(dataset["local_dir"])
    if mode == "features":
        import numpy as np

        dataset["features_dir"] = hostile("features")
        for kind in feature_kinds():
            (workdir / dataset["features_dir"] / kind).mkdir(parents=True)
            np.save(workdir / dataset["features_dir"] / kind / "aaaaaaaaaaa.npy", np.zeros(1, np.float32))
        expected.add(dataset["features_dir"])
    overlay: dict = {"dataset": dataset}

    # Extractor weights: a state-dict file of each configured kind (extract runs outside features mode).
    weights = hostile("weights")
    (workdir / weights).mkdir()
    overlay["features"] = {}
    for kind in config.get("features", {}):
        path = f"{weights}/{kind}.pt"
        (workdir / path).write_bytes(b"")
        overlay["features"][kind] = {"weights": path}
        paths.add(path)
        if mode != "features":
            expected.add(path)

    # Files named in stage settings (VALOR's prompts): hostile copies of those the config names.
    variants = config.get("variants", {})
    run_stages = {sid for run in config["train"]["methods"]
                  for sid in method(variants.get(run, {}).get("method", run)).stages}
    overlay["stages"] = {}
    for sid, spec in stages().items():
        for field in dataclasses.fields(spec.defaults):
            value = (config.get("stages", {}).get(sid) or {}).get(field.name)
            if field.metadata.get("path") and value:
                path = f"{hostile('stage files')}/{sid}_{Path(value).name}"
                (workdir / path).parent.mkdir(exist_ok=True)
                shutil.copy(workdir / value, workdir / path)
                overlay["stages"][sid] = {field.name: path}
                paths.add(path)
                if sid in run_stages:
                    expected.add(path)

    videos = hostile("videos")
    (workdir / videos).mkdir()
    (workdir / videos / "clip.mp4").write_bytes(b"")
    overlay["parse"] = {"videos_dir": videos}
    return overlay, paths | expected | {videos}, expected


def printed_commands(output: str) -> list[str]:
    return [line[len(PREFIX):] for line in output.splitlines() if line.startswith(PREFIX)]


@pytest.mark.parametrize(("shipped", "mode"), shipped_modes())
def test_config_paths_reach_the_shell_as_one_word(tmp_path: Path, shipped: str, mode: str) -> None:
    workdir = copy_workflow(tmp_path / "quoting")
    overlay, paths, expected = hostile_overlay(workdir, shipped, mode)
    hostile_file = write_config(workdir / "hostile.yaml", overlay)
    # rule all (metrics and report) and the parse target; --forceall plans every rule of them
    output = run_snakemake(workdir, "all", "results/parsed/videos.tsv", "-n", "-p", "--forceall", "--cores", "1",
                           "--configfile", shipped, str(hostile_file)).stdout
    commands = printed_commands(output)
    assert any(c.removeprefix("exec ").startswith("avvp train") for c in commands), output[-3000:]
    words: set[str] = set()
    for command in commands:
        try:
            parsed = shlex.split(command)
        except ValueError as err:
            raise AssertionError(f"{err} in the printed command:\n{command}") from None
        stray = [w for w in parsed if MARKER in w and w not in paths]
        assert not stray, f"a config path split or mangled in:\n{command}\nwords: {stray}"
        words.update(parsed)
    missing = expected - words
    assert not missing, f"not one word of any command: {sorted(missing)}"
    assert not list(workdir.rglob(MARKER)) and not (Path.cwd() / MARKER).exists()


@pytest.mark.slow
def test_hostile_annotation_and_feature_paths_run_to_metrics(tmp_path: Path) -> None:
    """A real run, not a dry one: every annotation file and the features folder under a hostile name
    reach metrics.json with scores, and no shell ever ran the names' commands."""
    from workflow_helpers import annotations, write_random_features

    workdir = copy_workflow(tmp_path / "real run")
    chosen = small_demo_dataset(workdir / hostile("annotations"), {"train": 4, "val": 2, "test": 2})
    write_random_features(workdir / hostile("features"), list(chosen))
    config = {"dataset": {"mode": "features", "annotations": annotations(hostile("annotations")),
                          "features_dir": hostile("features")},
              "stages": {"han": {"epochs": 1}}}
    run_snakemake(workdir, "--cores", "2", f"--configfile={write_config(workdir / 'hostile.yaml', config)}",
                  "results/metrics.json")
    metrics = json.loads((workdir / "results/metrics.json").read_text(encoding="utf-8"))
    assert metrics["coverage"]["test"]["scored"] == 2
    scores = [m for entry in metrics["methods"].values() for m in entry["seeds"].values()]
    assert scores and all(0 <= s["segment_level"]["audio"] <= 100 for s in scores)
    for folder in (workdir, Path.cwd(), Path("/tmp")):
        assert not (folder / MARKER).exists(), folder
    assert not list(workdir.rglob(MARKER))
