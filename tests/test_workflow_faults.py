"""Faults a real run meets, reproduced on small data: a shard with no usable clip, a repaired
feature file, and config mistakes that must fail before any job, naming the key and the path."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from workflow_helpers import (
    annotations,
    copy_workflow,
    environment,
    planned_jobs,
    rule_counts,
    run_snakemake,
    shard_of,
    small_demo_dataset,
    snakemake_command,
    write_random_features,
    write_config,
)


def dry_run_error(workdir: Path, config: dict) -> str:
    """The output of a dry run that must fail at once (before any job) with this config laid over."""
    import subprocess

    path = write_config(workdir / "bad.yaml", config)
    proc = subprocess.run(snakemake_command("-n", "--cores", "1", f"--configfile={path}", "results/metrics.json"),
                          cwd=workdir, env=environment(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stdout[-2000:]
    return proc.stdout + proc.stderr


def test_config_mistakes_fail_before_any_job_naming_key_and_path(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "wf")
    small_demo_dataset(workdir / "data/mini", {"train": 2, "val": 1, "test": 1})
    local = {"mode": "local", "annotations": annotations("data/mini")}
    out = dry_run_error(workdir, {"dataset": {**local, "local_dir": "no/such/folder"}})
    assert "dataset.local_dir: folder no/such/folder does not exist" in out
    out = dry_run_error(workdir, {"dataset": {**local, "local_dir": ""}})
    assert "local_dir" in out and ("should be non-empty" in out or "is too short" in out)
    (workdir / "empty").mkdir()
    out = dry_run_error(workdir, {"dataset": {**local, "local_dir": "empty"}})
    assert "dataset.local_dir: empty holds no video" in out
    released = workdir / "released"
    write_random_features(released, ["x" * 11])
    (released / "res152" / ("x" * 11 + ".npy")).unlink()
    out = dry_run_error(workdir, {"dataset": {"mode": "features", "annotations": annotations("data/mini"),
                                              "features_dir": "released"}})
    assert f"dataset.features_dir: released{os.sep}res152 holds no res152 features" in out
    out = dry_run_error(workdir, {"parse": {"videos_dir": "no/videos"}})
    assert "parse.videos_dir: folder no/videos does not exist" in out and "Traceback" not in out
    # a target after --configfile is read as a config file: the run says where the target belongs
    (workdir / "results").mkdir(exist_ok=True)
    (workdir / "results/metrics.json").write_text('{"format": "avvp-metrics/3", "coverage": {}}')
    proc = subprocess.run(snakemake_command("-n", "--configfile", str(workdir / "bad.yaml"), "results/metrics.json"),
                          cwd=workdir, env=environment(), capture_output=True, text=True, timeout=300)
    assert "results/metrics.json was read as a config file: put the target before --configfile" in proc.stdout + proc.stderr
    (workdir / "results/metrics.json").unlink()
    out = dry_run_error(workdir, {"train": {"device": "cdua"}})
    assert "'cdua' does not match" in out and "device" in out
    out = dry_run_error(workdir, {"dataset": {**local, "local_dir": "empty",
                                              "annotations": {**annotations("data/mini"), "test": "data/nope.csv"}}})
    assert "dataset.annotations.test: file data/nope.csv does not exist" in out


@pytest.mark.slow
def test_a_shard_without_usable_clips_is_an_empty_result_to_the_metrics(tmp_path: Path) -> None:
    """Local mode, two shards; every clip of one shard is missing from the folder: its media,
    extraction and packing are empty, the workflow reaches metrics.json, and the manifest says why."""
    from avvp.clips.demo import write_clip

    workdir = copy_workflow(tmp_path / "wf")
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 4, "val": 3, "test": 3})
    shard = {name: shard_of(name[:11], 2) for name in chosen}
    # The shard to lose: every split keeps a clip in the other one (training needs some).
    empty = next(s for s in (0, 1) if all(any(shard[n] != s for n, c in chosen.items() if c.split == split)
                                          for split in ("train", "val", "test")))
    gone = [name for name, s in shard.items() if s == empty]
    assert gone, shard
    for name, clip in chosen.items():
        if name not in gone:
            write_clip(clip, workdir / "clips" / f"{name}.mp4")
    config = {"dataset": {"mode": "local", "n_shards": 2, "annotations": annotations("data/mini"),
                          "local_dir": "clips"}, "stages": {"han": {"epochs": 1}}}
    args = [f"--configfile={write_config(workdir / 'local.yaml', config)}"]
    run_snakemake(workdir, "--cores", "2", *args, "results/metrics.json", timeout=1800)
    label = f"{empty:03d}"
    def listing(folder: Path) -> set[str]:
        return {p.name for p in folder.iterdir() if not p.name.startswith(".")}  # not Snakemake's own marker

    assert listing(workdir / "results/audio" / label) == set()
    assert listing(workdir / "results/frames" / label) == {"ffmpeg.json"}
    assert list((workdir / "results/features" / label / "res152").glob("*.npy")) == []
    manifest = (workdir / "results/manifest.tsv").read_text().splitlines()[1:]
    assert {line.split("\t")[0] for line in manifest if line.split("\t")[2] == "unavailable"} == set(gone)
    metrics = json.loads((workdir / "results/metrics.json").read_text())
    assert metrics["coverage"]["test"]["scored"] == sum(1 for n, c in chosen.items() if c.split == "test" and n not in gone)


@pytest.mark.slow
def test_features_mode_notices_a_repaired_feature_file(tmp_path: Path) -> None:
    """A truncated feature file is skipped (recorded) where the config accepts partial data
    (`min_coverage: 0`); restoring it reruns its split's pack and what follows, nothing else."""
    workdir = copy_workflow(tmp_path / "wf")
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 6, "val": 2, "test": 2})
    write_random_features(workdir / "released", list(chosen))
    config = {"dataset": {"mode": "features", "annotations": annotations("data/mini"), "features_dir": "released",
                          "min_coverage": 0},
              "stages": {"han": {"epochs": 1}}}
    args = [f"--configfile={write_config(workdir / 'features.yaml', config)}"]
    test_clip = next(name for name, clip in chosen.items() if clip.split == "test")
    damaged = workdir / "released" / "vggish" / f"{test_clip[:11]}.npy"
    backup = damaged.read_bytes()
    damaged.write_bytes(backup[: len(backup) // 2])  # a cut-off copy
    run_snakemake(workdir, "--cores", "2", *args, "results/metrics.json")
    metrics = json.loads((workdir / "results/metrics.json").read_text())
    assert test_clip in metrics["coverage"]["test"]["not_scored"]
    assert planned_jobs(workdir, *args) == []
    time.sleep(1)
    damaged.write_bytes(backup)  # restored from the backup
    jobs = planned_jobs(workdir, *args)
    assert [j.get("split") for j in jobs if j.rule == "pack"] == ["test"]
    printed = run_snakemake(workdir, "-n", *args, "results/metrics.json").stdout
    assert "rule pack:" in printed and "released/vggish/" not in printed  # no job lists every feature file
    assert rule_counts(jobs)["train"] == 0 and rule_counts(jobs)["evaluate"] == 1


def test_out_of_range_settings_and_unusable_feature_sets_fail_before_any_job(tmp_path: Path) -> None:
    """Probabilities outside [0, 1], a feature set without an audio or a visual kind and a missing
    weights file are refused by a dry run, naming the key, instead of failing in their job."""
    workdir = copy_workflow(tmp_path / "wf")
    out = dry_run_error(workdir, {"stages": {"han": {"dropout": 2.0}}})
    assert "stages.han.dropout" in out and "maximum" in out
    out = dry_run_error(workdir, {"stages": {"han": {"visual_smoothing": 7}}})
    assert "stages.han.visual_smoothing" in out
    out = dry_run_error(workdir, {"model": {"features": ["res152", "r2plus1d_18"]}})
    assert "model.features" in out and "no audio kind" in out
    out = dry_run_error(workdir, {"train": {"methods": ["mine"]},
                                  "variants": {"mine": {"method": "han", "features": ["vggish", "clap"]}}})
    assert "variants.mine.features" in out and "no visual kind" in out
    out = dry_run_error(workdir, {"features": {"vggish": {"weights": "no/such/vggish.pth"}}})
    assert "features.vggish.weights: no/such/vggish.pth does not exist" in out
