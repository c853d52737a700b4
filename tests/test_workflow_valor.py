"""VALOR in the workflow: VALOR (model.features) and VALOR++ (a variant with its own feature set and
settings) from one config, the pass's kinds packed whatever HAN is trained on, and caching: a
threshold change reruns the pseudo-label pass and what follows only, a variant's setting its own run
only. One real run on random released-like features (1 epoch), then dry runs."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from workflow_helpers import annotations, copy_workflow, planned_jobs, run_snakemake, small_demo_dataset, write_config

SHAPES = {"vggish": (10, 128), "res152": (80, 2048), "r2plus1d_18": (10, 512), "clip": (10, 768),
          "clap": (64, 768), "clap_windows": (10, 512)}
RANDOM = {"weights": "random", "seed": 0}
AFTER_RUNS = Counter({"metrics": 1})


@pytest.fixture(scope="module")
def valor_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    workdir = copy_workflow(tmp_path_factory.mktemp("valor"))
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 12, "val": 4, "test": 4})
    rng = np.random.default_rng(0)
    for kind, shape in SHAPES.items():
        (workdir / "released" / kind).mkdir(parents=True)
        for name in chosen:
            np.save(workdir / "released" / kind / f"{name[:11]}.npy", rng.random(shape, dtype=np.float32))
    config = {"dataset": {"name": "released-like", "mode": "features", "annotations": annotations("data/mini"),
                          "features_dir": "released"},
              "features": {"clip": RANDOM, "clap_windows": RANDOM}}
    base = write_config(workdir / "base.yaml", config)
    overlay = write_config(workdir / "short.yaml", {"stages": {"valor_train": {"epochs": 1}}})
    args = ("--configfile", str(base), "config/valor.yaml", str(overlay))
    run_snakemake(workdir, "results/metrics.json", "--cores", "2", *args, timeout=900)
    return workdir, args


def plan(valor_run: tuple[Path, Path], name: str, change: dict) -> Counter:
    workdir, args = valor_run
    jobs = planned_jobs(workdir, *args, str(write_config(workdir / name, change)))
    return Counter(job.get("stage") or job.rule for job in jobs)


@pytest.mark.slow
def test_valor_and_valor_pp_from_one_config(valor_run: tuple[Path, Path]) -> None:
    workdir, _ = valor_run
    metrics = json.loads((workdir / "results/metrics.json").read_text(encoding="utf-8"))
    assert list(metrics["methods"]) == ["valor", "valor_pp"]
    assert [entry["features"] for entry in metrics["methods"].values()] == [["vggish", "res152", "r2plus1d_18"],
                                                                            ["clap", "clip", "r2plus1d_18"]]
    runs = workdir / "results/runs"
    standard = torch.load(runs / "valor/seed1/valor_train/model.pt", weights_only=True)["model_options"]
    plus = torch.load(runs / "valor_pp/seed1/valor_train/model.pt", weights_only=True)["model_options"]
    assert standard["features"] == ["vggish", "res152", "r2plus1d_18"] and "hidden" not in standard
    assert plus["features"] == ["clap", "clip", "r2plus1d_18"] and (plus["hidden"], plus["layers"]) == (256, 4)
    index = json.loads((workdir / "results/packed/train/index.json").read_text(encoding="utf-8"))
    assert set(SHAPES) <= set(json.dumps(index).replace('"', " ").split())  # every run's kinds are packed
    labels = json.loads((runs / "valor/all_seeds/valor_labels/labels.json").read_text(encoding="utf-8"))
    assert labels["weights"] == {"clip": "random", "clap_windows": "random"} and labels["meaningful"] is False


@pytest.mark.slow
def test_nothing_to_do_on_a_second_run(valor_run: tuple[Path, Path]) -> None:
    assert plan(valor_run, "same.yaml", {}) == Counter()


@pytest.mark.slow
def test_threshold_change_reruns_the_pass_and_after_only(valor_run: tuple[Path, Path]) -> None:
    workdir, _ = valor_run
    prompts = json.loads((workdir / "config/valor_demo_prompts.json").read_text(encoding="utf-8"))
    for entry in prompts["classes"].values():
        entry["visual_threshold"] = 0.5
    (workdir / "mine.json").write_text(json.dumps(prompts), encoding="utf-8")
    counts = plan(valor_run, "thresholds.yaml", {"stages": {"valor_labels": {"prompts": "mine.json"}}})
    assert counts == Counter({"valor_labels": 2, "valor_train": 2, "predict": 2, "evaluate": 2}) + AFTER_RUNS


@pytest.mark.slow
def test_more_seeds_reuse_each_runs_pseudo_labels(valor_run: tuple[Path, Path]) -> None:
    """The zero-shot labels depend on neither the seed nor an earlier stage: one pass per run
    (results/runs/<run>/all_seeds/valor_labels) serves every seed."""
    counts = plan(valor_run, "seeds.yaml", {"train": {"seeds": [1, 2]}})
    assert counts == Counter({"valor_train": 2, "predict": 2, "evaluate": 2}) + AFTER_RUNS


@pytest.mark.slow
def test_variant_setting_reruns_its_own_run_only(valor_run: tuple[Path, Path]) -> None:
    counts = plan(valor_run, "variant.yaml", {"variants": {"valor_pp": {"stages": {"valor_train": {"layers": 2}}}}})
    assert counts == Counter({"valor_train": 1, "predict": 1, "evaluate": 1}) + AFTER_RUNS


def test_unknown_run_name_is_refused(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "bad")
    path = write_config(workdir / "bad.yaml", {"train": {"methods": ["valor", "valor_plus"]}})
    with pytest.raises(AssertionError, match="'valor_plus' is neither a registered method"):
        planned_jobs(workdir, f"--configfile={path}")


def test_each_kind_reads_its_medium_from_the_media_step(tmp_path: Path) -> None:
    """On the demo's own clips (a dry run): CLAP's kinds read the clips themselves (their audio track
    at its own rate, as VALOR does), VGGish the 16 kHz WAVs, the visual kinds the frames."""
    workdir = copy_workflow(tmp_path / "media")
    output = run_snakemake(workdir, "results/valor/metrics.json", "-n", "-p", "--cores", "1",
                           "--configfile", "config/valor.yaml").stdout
    read = {}
    for kind, listing in re.findall(r"avvp extract --kind (\w+) .*?--inputs-from results/valor/shards/\d+/(\w+)\.txt", output):
        read.setdefault(kind, set()).add(listing)
    assert read == {"vggish": {"audio"}, "res152": {"frames"}, "r2plus1d_18": {"frames"}, "clip": {"frames"},
                    "clap": {"video"}, "clap_windows": {"video"}}
