"""UWAV through the workflow, in features mode on a small data set (random features of every kind it
reads, a dense-label pretraining set in UnAV-100's form): the generator is pretrained once and the
labels made once for all seeds, each seed trains UWAV's HAN, and the scores reach metrics.json; a
`stages.uwav_train` change reruns that stage and what follows only; a further seed reuses the
generator and the labels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import write_random_features
from test_uwav_stages import write_dense_set
from workflow_helpers import (
    annotations,
    copy_workflow,
    planned_jobs,
    rule_counts,
    run_snakemake,
    small_demo_dataset,
    write_config,
)

SHAPES = {"vggish": (10, 128), "res152": (80, 2048), "r2plus1d_18": (10, 512), "clip": (10, 768),
          "clap_windows": (10, 512)}


def uwav_config(workdir: Path) -> dict:
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 8, "val": 4, "test": 4})
    write_random_features(workdir / "feats", [name[:11] for name in chosen], shapes=SHAPES)
    (workdir / "dense").mkdir()
    dense = {k: str(v.relative_to(workdir)) for k, v in write_dense_set(workdir / "dense").items()}
    rng = np.random.default_rng(3)
    n_classes = len((workdir / "data/mini/classes.txt").read_text().split())
    for modality, width in (("audio", 512), ("visual", 768)):
        np.save(workdir / f"llp_{modality}_text.npy", rng.normal(size=(n_classes, width)).astype(np.float32))
    small = {"hidden": 32, "ff": 8, "layers": 1}
    return {"dataset": {"mode": "features", "annotations": annotations("data/mini"), "features_dir": "feats"},
            "train": {"methods": ["uwav"], "seeds": [1, 2]},
            "features": {"clip": {"weights": "random"}, "clap_windows": {"weights": "random"}},
            "stages": {"uwav_pretrain": {"annotations": dense["annotations"], "clap_features": dense["clap"],
                                         "clip_features": dense["clip"], "audio_text": dense["audio_text"],
                                         "visual_text": dense["visual_text"], "epochs": 2, "batch_size": 4, **small},
                       "uwav_labels": {"audio_text": "llp_audio_text.npy", "visual_text": "llp_visual_text.npy"},
                       "uwav_train": {"epochs": 2, "batch_size": 4, "heads": 2, **small}}}


@pytest.mark.slow
def test_uwav_runs_once_per_run_where_it_can_and_reruns_only_what_a_change_touches(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "wf")
    config = uwav_config(workdir)
    args = [f"--configfile={write_config(workdir / 'uwav.yaml', config)}"]
    run_snakemake(workdir, "--cores", "2", *args, timeout=1200)
    runs = workdir / "results/runs/uwav"
    assert sorted(p.name for p in (runs / "all_seeds").iterdir()) == ["uwav_labels", "uwav_pretrain"]
    assert all((runs / f"seed{s}/uwav_train/model.pt").is_file() for s in (1, 2))
    metrics = json.loads((workdir / "results/metrics.json").read_text())
    assert sorted(metrics["methods"]["uwav"]["seeds"]) == ["1", "2"]
    assert metrics["methods"]["uwav"]["notes"] == [
        "seeds 1, 2, uwav_pretrain: weak + external dense pretraining: the pseudo-label generator learned from "
        "segment-level labels (6 videos of dense/annotations.json), so this method is not purely weakly supervised"]
    assert planned_jobs(workdir, *args) == []

    config["stages"]["uwav_train"]["epochs"] = 3
    jobs = planned_jobs(workdir, f"--configfile={write_config(workdir / 'uwav.yaml', config)}")
    counts = rule_counts(jobs)
    assert counts["train"] == 2 and counts["run_pass_all_seeds"] == 0 and counts["pack"] == 0

    config["stages"]["uwav_train"]["epochs"] = 2
    config["train"]["seeds"] = [1, 2, 3]
    jobs = planned_jobs(workdir, f"--configfile={write_config(workdir / 'uwav.yaml', config)}")
    assert [(j.rule, j.get("seed")) for j in jobs if j.rule in ("train", "run_pass_all_seeds")] == [("train", "3")]
