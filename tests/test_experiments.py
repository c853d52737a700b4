"""One results folder per experiment: configs run one after another leave each other's results,
report and runs intact (results/ for the demo config, results/<experiment>/ for any other)."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from avvp.workflow.config_checks import ConfigError
from avvp.workflow.experiment import RESERVED, check_targets, experiment_folder
from workflow_helpers import (
    REPO,
    annotations,
    copy_workflow,
    environment,
    planned_jobs,
    run_snakemake,
    small_demo_dataset,
    snakemake_command,
    write_config,
    write_random_features,
)

DEFAULT = REPO / "config" / "config.yaml"


def test_the_folder_is_the_experiment_key_else_the_last_config_files_stem(tmp_path: Path) -> None:
    assert experiment_folder(None, [], DEFAULT) == "results"
    assert experiment_folder(None, [DEFAULT], DEFAULT) == "results"  # the demo config named again
    assert experiment_folder(None, ["config/compare.yaml"], DEFAULT) == "results/compare"
    assert experiment_folder(None, [DEFAULT, "base.yaml", "mine.yml"], DEFAULT) == "results/mine"
    assert experiment_folder("ablation-2", ["config/compare.yaml"], DEFAULT) == "results/ablation-2"
    assert experiment_folder("", ["config/compare.yaml"], DEFAULT) == "results"
    with pytest.raises(ConfigError, match=r"'features' \(the name of config file features.yaml\) is a folder of "
                                          r"results/ itself: set `experiment:`"):
        experiment_folder(None, ["features.yaml"], DEFAULT)
    with pytest.raises(ConfigError, match=r"'a b' \(config key experiment\) is not a plain folder name"):
        experiment_folder("a b", [], DEFAULT)
    with pytest.raises(ConfigError, match="'../elsewhere'"):
        experiment_folder("../elsewhere", [], DEFAULT)


def test_a_demo_path_asked_of_another_experiment_is_refused_naming_its_own(tmp_path: Path) -> None:
    check_targets(["-n", "results/metrics.json"], "results")  # the demo's own
    check_targets(["results/compare/metrics.json", "--report", "results/compare/report.html"], "results/compare")
    for argument, own in (("results/metrics.json", "results/compare/metrics.json"),
                          ("--report=results/report.html", "results/compare/report.html"),
                          ("results/runs/han/seed1/han/model.pt", "results/compare/runs/han/seed1/han/model.pt")):
        with pytest.raises(ConfigError, match=f"this config writes into results/compare/ .*; ask for {own}$"):
            check_targets(["--cores", "2", argument], "results/compare")
    workdir = copy_workflow(tmp_path / "wf")
    proc = subprocess.run(snakemake_command("-n", "results/metrics.json", "--configfile", "config/compare.yaml"),
                          cwd=workdir, env=environment(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "ask for results/compare/metrics.json" in proc.stdout + proc.stderr


def dry_run_outputs(workdir: Path, *args: str) -> list[str]:
    """Every output and log path a dry run of `all` prints."""
    printed = run_snakemake(workdir, "all", "-n", "--cores", "1", *args).stdout
    paths = []
    for line in printed.splitlines():
        match = re.match(r"\s+(output|log): (.*)", line)
        if match:
            paths += match.group(2).split(", ")
    return paths


@pytest.mark.parametrize("config", ["compare", "valor", "llp"])
def test_a_shipped_configs_every_output_is_in_its_folder(tmp_path: Path, config: str) -> None:
    workdir = copy_workflow(tmp_path / "wf")
    paths = dry_run_outputs(workdir, f"--configfile=config/{config}.yaml")
    assert paths and all(path.startswith(f"results/{config}/") for path in paths), paths[:20]


def test_a_config_file_whose_stem_is_a_results_folder_is_refused_before_any_job(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "runs.yaml").write_text("train: {seeds: [1]}\n", encoding="utf-8")
    proc = subprocess.run(snakemake_command("-n", "--configfile", "runs.yaml"), cwd=workdir, env=environment(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert re.search(r"experiment 'runs' \(the name of config file \S*runs.yaml\) is a folder of results/ itself",
                     proc.stdout + proc.stderr)


def stamps(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_two_configs_one_after_the_other_leave_both_results_intact(tmp_path: Path) -> None:
    """Config `first.yaml` then `second.yaml` (another run name and label) in one working folder:
    each has its metrics, runs and report in its own folder, the second run changes no file of the
    first, returning to the first has nothing to do, and each report shows its own runs."""
    workdir = copy_workflow(tmp_path / "wf")
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 4, "val": 2, "test": 2})
    write_random_features(workdir / "released", list(chosen))
    dataset = {"mode": "features", "annotations": annotations("data/mini"), "features_dir": "released"}
    configs = {}
    for name, label in (("first", "HAN of the first"), ("second", "HAN of the second")):
        configs[name] = write_config(workdir / f"{name}.yaml", {
            "experiment": None,  # the file's stem names the folder
            "dataset": dataset,
            "train": {"methods": [f"han_{name}"], "seeds": [1]},
            "variants": {f"han_{name}": {"method": "han", "label": label}},
            "stages": {"han": {"epochs": 1}}})
    for name, path in configs.items():
        run_snakemake(workdir, "--cores", "2", f"--configfile={path}", timeout=1200)
        if name == "first":
            before = stamps(workdir / "results/first")
    assert stamps(workdir / "results/first") == before
    assert not (workdir / "results/metrics.json").exists()
    for name, path in configs.items():
        metrics = json.loads((workdir / f"results/{name}/metrics.json").read_text())
        assert list(metrics["methods"]) == [f"han_{name}"]
        assert (workdir / f"results/{name}/runs/han_{name}/seed1/han/model.pt").is_file()
        assert planned_jobs(workdir, f"--configfile={path}", target="all") == []
        report = workdir / f"results/{name}/report.html"
        run_snakemake(workdir, "--report", str(report.relative_to(workdir)), f"--configfile={path}")
        other = "second" if name == "first" else "first"
        text = report.read_text(encoding="utf-8", errors="replace")
        assert f"HAN of the {name}" in text and f"HAN of the {other}" not in text
    after = stamps(workdir / "results/first")
    assert after.pop("report.html") and after == before  # the second's report changed none of the first's


@pytest.mark.slow
def test_every_name_the_demo_writes_into_results_is_reserved(demo_run) -> None:
    """So no experiment's folder can meet a demo output (experiment_folder refuses these names)."""
    written = {path.name for path in (demo_run.workdir / "results").iterdir()}
    assert written <= RESERVED, written - RESERVED
