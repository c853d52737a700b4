"""The workflow's methods and seeds: every (method, seed) is a run of cached stages; metrics.json
gives each seed's numbers and each method's mean and sd; a later stage's setting reruns that stage
and what follows only. Runs on random released-like features (no extraction)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from workflow_helpers import (
    Job,
    annotations,
    copy_workflow,
    planned_jobs,
    run_snakemake,
    small_demo_dataset,
    write_random_features,
    write_config,
)

METHODS = ["han", "ma_mmil", "jomold"]
SEEDS = [1, 2]
TEN_KEYS = ("audio", "visual", "audio_visual", "type_at_av", "event_at_av")
LEVELS = ("segment_level", "event_level")
# Stages of one seed of each method (stage -> jobs of rule train or run_pass), and what every run has
# after training.
STAGES = {"han": Counter({"han": 1}),
          "ma_mmil": Counter({"ma_mmil_stage1": 1, "ma_mmil_refine": 1, "ma_mmil_stage3": 1}),
          "jomold": Counter({"jomold_estimator": 1, "jomold_ratios": 1, "jomold_denoise": 1})}
# Three protocols: the seed's rule, each paper's own, and CMPAE's, which calibrates on the validation
# split (its predictions too) before it scores the test split.
PROTOCOLS = ["avvp", "as_published", "cmpae_as_published"]
PER_RUN = Counter({"predict": 2, "calibrate": 1, "evaluate": len(PROTOCOLS)})
# metrics.json feeds the table, every method's per-class bars and the summary; rule all closes.
AFTER_METRICS = Counter({"metrics": 1, "metrics_table": 1, "per_class": len(METHODS), "summary": 1, "all": 1})
# Few epochs per stage: these tests are about the graph and the files, not the scores.
SETTINGS = {"train": {"methods": METHODS, "seeds": SEEDS}, "evaluate": {"protocols": PROTOCOLS},
            "stages": {"han": {"epochs": 2}, "ma_mmil_stage1": {"epochs": 1}, "ma_mmil_stage3": {"epochs": 2},
                       "jomold_estimator": {"epochs": 1}, "jomold_denoise": {"epochs": 2}}}


def released_like(workdir: Path) -> Path:
    """A small demo-format data set with random features in the released layout; its config file.

    20 training clips: with fewer, some demo clip shares a class with every other one and MA-MMIL
    has no partner video to draw for it.
    """
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 20, "val": 4, "test": 4})
    write_random_features(workdir / "released", list(chosen))
    config = {"dataset": {"name": "released-like", "mode": "features", "annotations": annotations("data/mini"),
                          "features_dir": "released"}, **SETTINGS}
    return write_config(workdir / "methods.yaml", config)


def stage_counts(jobs: list[Job]) -> Counter:
    """Jobs per rule, with the training and pass jobs counted by their stage."""
    return Counter(job.get("stage") or job.rule for job in jobs)


def configfiles(*paths: Path) -> list[str]:
    """One --configfile option for all files (merged in order; a second option would replace it)."""
    return ["--configfile", *map(str, paths)]


@dataclass(frozen=True)
class MethodsRun:
    workdir: Path
    config: Path

    def plan(self, name: str, change: dict) -> Counter:
        """The jobs of target all once `change` is laid over the run's config."""
        args = configfiles(self.config, write_config(self.workdir / name, change))
        return stage_counts(planned_jobs(self.workdir, *args, target="all"))


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory: pytest.TempPathFactory) -> MethodsRun:
    """All three methods, seeds 1 and 2, on random features: `snakemake --cores 2` (target all)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("methods"))
    config = released_like(workdir)
    run_snakemake(workdir, "--cores", "2", *configfiles(config), timeout=1200)
    return MethodsRun(workdir, config)


def test_every_method_and_seed_is_a_run_of_its_stages(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "plan")
    jobs = planned_jobs(workdir, *configfiles(released_like(workdir)), target="all")
    expected = Counter({"pack": 3, "curves": len(METHODS)}) + AFTER_METRICS
    for method in METHODS:
        for _ in SEEDS:
            expected += STAGES[method] + PER_RUN
    assert stage_counts(jobs) == expected  # no timelines: features mode has no videos
    runs = {(j.get("run"), j.get("seed"), j.get("protocol")) for j in jobs if j.rule == "evaluate"}
    assert runs == {(m, str(s), p) for m in METHODS for s in SEEDS for p in PROTOCOLS}


def test_bad_method_is_refused_by_the_schema(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "bad")
    path = write_config(workdir / "bad.yaml", {"train": {"methods": ["han", "mmil"]}})
    with pytest.raises(AssertionError, match="mmil"):
        planned_jobs(workdir, f"--configfile={path}")


@pytest.mark.slow
def test_metrics_hold_each_seed_and_the_mean_and_sd(methods_run: MethodsRun) -> None:
    metrics = json.loads((methods_run.workdir / "results/metrics.json").read_text())
    assert list(metrics["methods"]) == METHODS
    for method, run in metrics["methods"].items():
        assert list(run["seeds"]) == [str(s) for s in SEEDS] and run["n_seeds"] == len(SEEDS)
        assert "sample" in run["sd_of"]
        for level in LEVELS:
            for key in TEN_KEYS:
                values = [run["seeds"][str(s)][level][key] for s in SEEDS]
                assert run["mean"][level][key] == pytest.approx(sum(values) / 2)
                assert run["sd"][level][key] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
        assert set(run["seeds"]["1"]["per_class"]["segment_level"]) >= {"audio", "visual"}
    assert metrics["coverage"]["test"]["scored"] == 4
    assert list(metrics["protocols"]) == PROTOCOLS and metrics["evaluation"]["primary_protocol"] == "avvp"
    published = {m: rule["name"] for m, rule in metrics["protocols"]["as_published"]["rules"].items()}
    assert published == {m: f"{m}_as_published" for m in METHODS}
    for method, run in metrics["methods"].items():
        assert list(run["by_protocol"]) == PROTOCOLS
        assert run["by_protocol"]["avvp"]["seeds"] == run["seeds"]  # the primary protocol's scores
        cmpae = json.loads((methods_run.workdir / f"results/runs/{method}/seed1/evaluation/cmpae_as_published/"
                                                   "test.json").read_text())["protocol"]
        classes = set(run["seeds"]["1"]["per_class"]["segment_level"]["audio"])
        assert cmpae["forward"] == "mix" and set(cmpae["calibrated_thresholds"]["visual"]) == classes
    # the demo data set has no legacy annotation file: the papers' rules scored the current one, and say so
    assert set(metrics["evaluation"]["annotation_checks"]) == {"2024", "current (no legacy file given)"}
    report = methods_run.workdir / "results/report"
    assert sorted(p.name for p in (report / "curves").iterdir()) == sorted(f"{m}.png" for m in METHODS)
    assert not (report / "timelines").exists()


@pytest.mark.slow
def test_second_run_has_nothing_to_do(methods_run: MethodsRun) -> None:
    assert methods_run.plan("same.yaml", {}) == Counter()


@pytest.mark.slow
def test_stage3_change_reruns_stage3_and_after_only(methods_run: MethodsRun) -> None:
    counts = methods_run.plan("stage3.yaml", {"stages": {"ma_mmil_stage3": {"lr": 0.001}}})
    assert counts == Counter({"ma_mmil_stage3": 2, "curves": 1}) + PER_RUN + PER_RUN + AFTER_METRICS


@pytest.mark.slow
def test_faithful_ma_mmil_reruns_stage3_only(methods_run: MethodsRun) -> None:
    counts = methods_run.plan("faithful.yaml", {"stages": {"ma_mmil_stage3": {"faithful": True}}})
    assert counts == Counter({"ma_mmil_stage3": 2, "curves": 1}) + PER_RUN + PER_RUN + AFTER_METRICS


@pytest.mark.slow
def test_denoise_change_reruns_denoised_training_and_after_only(methods_run: MethodsRun) -> None:
    counts = methods_run.plan("denoise.yaml", {"stages": {"jomold_denoise": {"batch_size": 8}}})
    assert counts == Counter({"jomold_denoise": 2, "curves": 1}) + PER_RUN + PER_RUN + AFTER_METRICS


@pytest.mark.slow
def test_han_change_leaves_the_other_methods_alone(methods_run: MethodsRun) -> None:
    counts = methods_run.plan("han.yaml", {"stages": {"han": {"epochs": 3}}})
    assert counts == Counter({"han": 2, "curves": 1}) + PER_RUN + PER_RUN + AFTER_METRICS


@pytest.mark.slow
def test_one_more_seed_trains_that_seed_only(methods_run: MethodsRun) -> None:
    counts = methods_run.plan("seeds.yaml", {"train": {"seeds": [*SEEDS, 3]}})
    expected = Counter({"curves": len(METHODS)}) + AFTER_METRICS
    for method in METHODS:
        expected += STAGES[method] + PER_RUN
    assert counts == expected
