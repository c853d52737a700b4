"""The Snakemake workflow: the demo end to end (once per session, in a fresh copy of the workflow),
then its caching (dry runs after config changes), more seeds and the HTML report (in headless
Chromium), missing clips, a killed run, the LLP job graph and the released-features entry."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from avvp.reporting.leaderboard import coverage_note
from browser import CHROMIUM, WINDOW, Chromium, inside
from conftest import DEMO_BUDGET_S, REPO, DemoRun
from workflow_helpers import (
    Job,
    annotations,
    copy_workflow,
    environment,
    finished_jobs,
    job_blocks,
    load_config,
    planned_jobs,
    rule_counts,
    run_snakemake,
    shard_of,
    small_demo_dataset,
    snakemake_command,
    write_random_features,
    write_config,
)

KINDS = ("vggish", "res152", "r2plus1d_18")
SPLITS = ("train", "val", "test")
TEN_KEYS = ("audio", "visual", "audio_visual", "type_at_av", "event_at_av")
# Whatever runs after training, and after packing (the model side of the graph).
AFTER_TRAIN = Counter({"train": 1, "predict": 1, "evaluate": 1, "metrics": 1})
AFTER_PACK = AFTER_TRAIN + Counter({"pack": 3})


def override(workdir: Path, name: str, data: dict) -> list[str]:
    """Arguments that lay `data` over the default config (snakemake merges --configfile)."""
    return [f"--configfile={write_config(workdir / name, data)}"]


# --- the demo run itself -------------------------------------------------------------------------

@pytest.mark.slow
def test_the_readmes_demo_table_is_what_the_demo_gives(demo_run: DemoRun) -> None:
    """scripts/docs_tables.py regenerates the README's table from a run: the fresh demo's numbers are
    those the README shows (the demo is seeded and its CPU training repeatable)."""
    shown = re.search(r"<!-- table:demo -->\n(.*?)<!-- /table:demo -->", (REPO / "README.md").read_text(), re.S)
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "docs_tables.py"), "demo",
                           str(demo_run.workdir / "results/metrics.json")], capture_output=True, text=True, check=True)
    assert made.stdout == shown.group(1)


@pytest.mark.slow
def test_demo_writes_metrics_with_coverage_and_weights(demo_run: DemoRun) -> None:
    """metrics.json matches its shipped schema; one seed: its scores, no mean or sd; coverage once;
    provenance names the commit of the code and the config as resolved."""
    from avvp.evaluation.aggregate import validate_metrics
    from avvp.clips.ffmpeg import ffmpeg_record

    metrics = demo_run.read_json("results/metrics.json")
    validate_metrics(metrics)
    stage = demo_run.workdir / "results/runs/han/seed1/han"
    assert (stage / "model.pt").is_file() and not (stage / "last.pt").exists()  # train.keep_last: false
    han = metrics["methods"]["han"]
    assert list(han["seeds"]) == ["1"] and not {"mean", "sd"} & set(han)
    for level in ("segment_level", "event_level"):
        assert all(0 <= han["seeds"]["1"][level][k] <= 100 for k in TEN_KEYS)
    config = load_config(demo_run.workdir)
    coverage = metrics["coverage"]
    assert sum(coverage[s]["total"] for s in SPLITS) == config["dataset"]["demo"]["n_videos"]
    assert coverage["test"]["scored"] == coverage["test"]["total"] and coverage["test"]["not_scored"] == {}
    assert metrics["random_weights"] == sorted(KINDS) and "RANDOM" in metrics["weights_note"]
    provenance = metrics["provenance"]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert provenance["code"]["commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert provenance["config"]["dataset"]["demo"] == config["dataset"]["demo"]
    assert provenance["config"]["stages"]["han"]["batch_size"] == config["stages"]["han"]["batch_size"]
    assert provenance["stages"]["han"]["han"]["batch_size"] == config["stages"]["han"]["batch_size"]
    assert set(provenance["checkpoints"]) == {"results/runs/han/seed1/han/model.pt"}
    assert len(provenance["annotations"]) == 6 and provenance["packages"]["torch"]
    assert provenance["ffmpeg"] == [ffmpeg_record()]  # the ffmpeg that made the frames
    for kind in KINDS:
        assert provenance["feature_weights"][kind]["weights"] == "random"
        assert provenance["feature_weights"][kind]["kind"] == kind


@pytest.mark.slow
def test_demo_learns_time_aligned_events(demo_run: DemoRun) -> None:
    """Random backbones keep global colour and pitch; HAN must still place events in time."""
    scores = demo_run.read_json("results/metrics.json")["methods"]["han"]["seeds"]["1"]
    assert scores["segment_level"]["type_at_av"] >= 50


@pytest.mark.slow
def test_demo_features_sit_in_the_shard_of_their_id(demo_run: DemoRun) -> None:
    manifest = (demo_run.workdir / "results/manifest.tsv").read_text().splitlines()
    ids = {line.split("\t")[1] for line in manifest[1:]}
    n_shards = load_config(demo_run.workdir)["dataset"]["n_shards"]
    for shard in demo_run.shards():
        for kind in KINDS:
            for path in (demo_run.workdir / "results/features" / shard / kind).glob("*.npy"):
                assert path.stem in ids and shard_of(path.stem, n_shards) == int(shard)


@pytest.mark.slow
def test_media_lists_each_usable_clip_once_per_medium(demo_run: DemoRun) -> None:
    """The extractors' input lists: the WAVs, the frames folders and the clips themselves (CLAP's)."""
    listed = 0
    for shard in demo_run.shards():
        lists = {medium: (demo_run.workdir / f"results/shards/{shard}/{medium}.txt").read_text().split()
                 for medium in ("audio", "frames", "video")}
        names = [Path(path).stem for path in lists["audio"]]
        assert [Path(path).name for path in lists["frames"]] == names
        assert lists["video"] == [f"results/videos/{shard}/{name}.mp4" for name in names]
        assert all((demo_run.workdir / path).is_file() for path in lists["video"])
        listed += len(names)
    assert listed > 0


@pytest.mark.slow
def test_second_run_has_nothing_to_do(demo_run: DemoRun) -> None:
    assert planned_jobs(demo_run.workdir) == []


# --- config changes rerun exactly what they touch -------------------------------------------------

@pytest.mark.slow
def test_training_change_reruns_training_and_after(demo_run: DemoRun) -> None:
    jobs = planned_jobs(demo_run.workdir, *override(demo_run.workdir, "train.yaml", {"stages": {"han": {"epochs": 41}}}))
    assert rule_counts(jobs) == AFTER_TRAIN


@pytest.mark.slow
def test_protocol_changes_rerun_evaluation_and_metrics_only(demo_run: DemoRun) -> None:
    """A protocol added or defined is one more evaluation per run and the metrics; one that
    calibrates on the validation split adds its prediction and calibration; nothing retrains."""
    added = {"evaluate": {"protocols": ["avvp", "as_published"]}}
    jobs = planned_jobs(demo_run.workdir, *override(demo_run.workdir, "eval.yaml", added))
    assert rule_counts(jobs) == Counter({"evaluate": 1, "metrics": 1})
    assert {j.get("protocol") for j in jobs if j.rule == "evaluate"} == {"as_published"}
    defined = {"evaluate": {"protocols": ["avvp", "lower"], "define": {"lower": {"frame_threshold": 0.4}}}}
    jobs = planned_jobs(demo_run.workdir, *override(demo_run.workdir, "lower.yaml", defined))
    assert rule_counts(jobs) == Counter({"evaluate": 1, "metrics": 1})
    calibrated = {"evaluate": {"protocols": ["avvp", "cmpae_as_published"]}}
    jobs = planned_jobs(demo_run.workdir, *override(demo_run.workdir, "cmpae.yaml", calibrated))
    assert rule_counts(jobs) == Counter({"predict": 1, "calibrate": 1, "evaluate": 1, "metrics": 1})
    assert [j.get("split") for j in jobs if j.rule == "predict"] == ["val"]


@pytest.mark.slow
def test_extractor_change_reruns_that_extractor_only(demo_run: DemoRun) -> None:
    jobs = planned_jobs(demo_run.workdir, *override(demo_run.workdir, "res.yaml", {"features": {"res152": {"seed": 7}}}))
    extract = sorted((j.get("shard"), j.get("kind")) for j in jobs if j.rule == "extract")
    assert extract == [(shard, "res152") for shard in demo_run.shards()]
    assert rule_counts(jobs) == AFTER_PACK + Counter({"extract": len(extract)})


@pytest.mark.slow
def test_one_more_clip_touches_only_its_shard(demo_run: DemoRun) -> None:
    from avvp.evaluation.annotations import video_id
    from avvp.clips.demo import plan_clips

    config = load_config(demo_run.workdir)["dataset"]
    n, seed = config["demo"]["n_videos"], config["demo"]["seed"]
    new_clip = plan_clips(n + 1, seed)[-1].filename
    shard = f"{shard_of(video_id(new_clip), config['n_shards']):03d}"
    jobs = planned_jobs(demo_run.workdir, *override(demo_run.workdir, "more.yaml", {"dataset": {"demo": {"n_videos": n + 1}}}))
    per_shard = [j for j in jobs if j.get("shard") is not None]
    assert {j.get("shard") for j in per_shard} == {shard}
    assert rule_counts(per_shard) == Counter({"shard_list": 1, "demo_videos": 1, "download": 1, "media": 1,
                                              "extract": 3})
    assert rule_counts(jobs) == rule_counts(per_shard) + AFTER_PACK + Counter({"demo_annotations": 1, "manifest": 1})


# --- other ways in -----------------------------------------------------------------------------

def test_llp_dry_run_builds_hundreds_of_jobs_quickly(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "llp")
    start = time.monotonic()
    jobs = planned_jobs(workdir, "--configfile=config/llp.yaml", target="results/llp/metrics.json")
    seconds = time.monotonic() - start
    counts = rule_counts(jobs)
    n_shards = load_config(workdir, "config/llp.yaml")["dataset"]["n_shards"]
    assert seconds < 30, f"dry run took {seconds:.1f} s"
    assert 100 <= len(jobs) < 1000
    assert counts["download"] == counts["media"] == n_shards  # 11,849 clips fill every shard
    assert counts["extract"] == 3 * n_shards
    assert "demo_videos" not in counts
    # the shards' clip names are in files, not on the printed command lines (~90 names each)
    printed = run_snakemake(workdir, "-n", "--configfile=config/llp.yaml").stdout
    commands = [line for line in printed.splitlines() if line.startswith("Shell command:")]
    assert commands and max(len(line) for line in commands) < 600


def test_workflow_lints_clean(tmp_path: Path) -> None:
    """`snakemake --lint` finds nothing (it exits non-zero on any lint), for every shipped config."""
    workdir = copy_workflow(tmp_path / "lint")
    run_snakemake(workdir, "--lint")
    run_snakemake(workdir, "--lint", "--configfile=config/llp.yaml")
    run_snakemake(workdir, "--lint", "--configfile=config/compare.yaml")
    run_snakemake(workdir, "--lint", "--configfile=config/valor.yaml")


def test_printed_commands_are_real_commands(tmp_path: Path) -> None:
    """With the profile's printshellcmds, shell rules print their command and script rules print
    nothing (Snakemake itself would print "Shell command: None" for each)."""
    workdir = copy_workflow(tmp_path / "printed")
    output = run_snakemake(workdir, "results/metrics.json", "-n", "-p", "--cores", "1").stdout
    assert "Shell command: avvp evaluate" in output and "rule metrics:" in output
    assert "Shell command: None" not in output


@pytest.mark.slow
def test_released_features_go_straight_to_training(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "released")
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 12, "val": 4, "test": 4})
    missing = next(name for name, clip in chosen.items() if clip.split == "test")
    write_random_features(workdir / "released", [name for name in chosen if name != missing])
    config = {"dataset": {"name": "released-like", "mode": "features", "annotations": annotations("data/mini"),
                          "features_dir": "released"},
              "stages": {"han": {"epochs": 2}}}
    args = override(workdir, "released.yaml", config)
    planned = rule_counts(planned_jobs(workdir, *args))
    assert planned == AFTER_PACK
    # 3 of 4 test videos: below the default minimum coverage, the run stops at the pack, writing nothing
    refused = subprocess.run(snakemake_command("--cores", "2", *args, "results/packed/test"), cwd=workdir,
                             env=environment(), text=True, capture_output=True, timeout=900)
    log = (workdir / "results/logs/pack/test.log").read_text()
    assert refused.returncode != 0 and not (workdir / "results/packed/test").exists()
    assert "only 3 of 4 videos (75.0 %) have features in released" in log and "dataset.min_coverage" in log
    config["dataset"]["min_coverage"] = 0.7  # the explicit setting allows partial data
    args = override(workdir, "released.yaml", config)
    run_snakemake(workdir, "--cores", "2", *args, "results/metrics.json")
    metrics = json.loads((workdir / "results/metrics.json").read_text())
    assert coverage_note(metrics["coverage"]).startswith("PARTIAL DATA: test 3 of 4 videos (75.0 %)")
    assert metrics["coverage"]["test"]["scored"] == 3
    assert list(metrics["coverage"]["test"]["not_scored"]) == [missing]
    reason = metrics["coverage"]["test"]["not_scored"][missing]
    assert "features" in reason and missing[:11] in reason
    assert metrics["provenance"]["feature_weights"]["vggish"]["weights"] == "unknown"
    assert metrics["random_weights"] == []


# --- missing clips and a killed run --------------------------------------------------------------

def run_until(workdir: Path, args: list[str], log: Path, enough) -> str:
    """Start snakemake, SIGKILL it (and its jobs) once `enough(output so far)` holds; the output."""
    with log.open("w") as fh:
        proc = subprocess.Popen(snakemake_command(*args), cwd=workdir, env=environment(), text=True,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while proc.poll() is None and not enough(log.read_text()):
            time.sleep(0.5)
        assert proc.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return log.read_text()


@pytest.mark.slow
def test_missing_clips_are_recorded_and_a_killed_run_redoes_no_finished_shard(tmp_path: Path) -> None:
    from avvp.clips.demo import write_clip

    workdir = copy_workflow(tmp_path / "local")
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 2, "val": 1, "test": 2})
    gone = next(name for name, clip in chosen.items() if clip.split == "train")
    broken = next(name for name, clip in chosen.items() if clip.split == "test")
    clips = workdir / "clips"
    for name, clip in chosen.items():
        if name != gone:
            write_clip(clip, clips / f"{name}.mp4")
    data = (clips / f"{broken}.mp4").read_bytes()
    (clips / f"{broken}.mp4").write_bytes(data[: len(data) // 3])  # a truncated download
    config = {"dataset": {"mode": "local", "n_shards": 2, "annotations": annotations("data/mini"),
                          "local_dir": "clips"},
              "stages": {"han": {"epochs": 1}}}
    args = ["--cores", "2", *override(workdir, "local.yaml", config), "results/metrics.json"]

    first = run_until(workdir, args, tmp_path / "first.log",
                      lambda out: any(j.rule == "extract" for j in finished_jobs(out)))
    done = [j for j in finished_jobs(first) if j.rule in SHARD_OUTPUTS]
    stamps = {j: snapshot(workdir, j) for j in done}
    run_snakemake(workdir, "--unlock", *args[2:])
    second = run_snakemake(workdir, *args, timeout=1800).stdout

    rerun = set(job_blocks(second).values())
    assert not rerun & set(done), f"finished jobs ran again: {rerun & set(done)}"
    assert all(snapshot(workdir, j) == stamps[j] for j in done)
    manifest = {line.split("\t")[0]: line.split("\t")[2:] for line in
                (workdir / "results/manifest.tsv").read_text().splitlines()[1:]}
    assert manifest[gone][0] == "unavailable" and "not in" in manifest[gone][1]
    assert manifest[broken][0] == "unavailable" and manifest[broken][1]
    metrics = json.loads((workdir / "results/metrics.json").read_text())
    assert metrics["coverage"]["train"]["not_used"] == {gone: manifest[gone][1]}
    assert metrics["coverage"]["test"]["not_scored"] == {broken: manifest[broken][1]}
    assert metrics["coverage"]["test"]["scored"] == 1


SHARD_OUTPUTS = {"download": ["results/shards/{shard}/download.tsv", "results/videos/{shard}"],
                 "media": ["results/shards/{shard}/media.tsv", "results/audio/{shard}", "results/frames/{shard}"],
                 "extract": ["results/features/{shard}/{kind}"]}


def snapshot(workdir: Path, job: Job) -> dict[str, int]:
    """Modification times of a shard job's output files (what a rerun would rewrite)."""
    roots = [root.format(shard=job.get("shard"), kind=job.get("kind")) for root in SHARD_OUTPUTS[job.rule]]
    stamps = {}
    for root in roots:
        path = workdir / root
        for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
            stamps[str(item)] = item.stat().st_mtime_ns
    return stamps


# --- several seeds on the demo, and the HTML report ----------------------------------------------

SEEDS = [1, 2, 3]
FIGURE = re.compile(r'<img class="figure" src="data:image/png;base64,[A-Za-z0-9+/=]{100}')


@dataclass(frozen=True)
class SeedsRun:
    workdir: Path
    args: list[str]
    planned: list[Job]


@pytest.fixture(scope="module")
def three_seeds(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> SeedsRun:
    """A copy of the finished demo (times kept), rerun with seeds 1, 2, 3 (target all: the report's
    figures too)."""
    workdir = tmp_path_factory.mktemp("seeds") / "demo"
    shutil.copytree(demo_run.workdir, workdir, symlinks=True)
    args = override(workdir, "seeds.yaml", {"train": {"seeds": SEEDS}})
    planned = planned_jobs(workdir, *args, target="all")
    run_snakemake(workdir, "--cores", "2", *args, timeout=DEMO_BUDGET_S)
    return SeedsRun(workdir, args, planned)


@pytest.mark.slow
def test_hans_three_seeds_are_the_compare_tables(three_seeds: SeedsRun) -> None:
    """HAN's rows of docs/BENCHMARKS.md's compare table (config/compare.yaml, seeds 1-3, made by
    scripts/docs_tables.py) are what seeds 1-3 of the demo give again: the runs repeat themselves."""
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "docs_tables.py"), "compare",
                           str(three_seeds.workdir / "results/metrics.json")], capture_output=True, text=True,
                          check=True).stdout
    rows = [line for line in made.splitlines() if line.startswith("| HAN | avvp |")]
    documented = (REPO / "docs" / "BENCHMARKS.md").read_text()
    assert len(rows) == 2 and all(row in documented for row in rows), "\n".join(rows)


@pytest.mark.slow
def test_more_seeds_train_only_the_new_ones_and_give_mean_and_sd(three_seeds: SeedsRun) -> None:
    trained = sorted(j.get("seed") for j in three_seeds.planned if j.rule == "train")
    assert trained == ["2", "3"]
    assert not {"demo_videos", "extract", "pack"} & set(rule_counts(three_seeds.planned))
    metrics = json.loads((three_seeds.workdir / "results/metrics.json").read_text())
    han = metrics["methods"]["han"]
    assert list(han["seeds"]) == [str(s) for s in SEEDS] and han["n_seeds"] == 3
    for level in ("segment_level", "event_level"):
        for key in TEN_KEYS:
            values = [han["seeds"][str(s)][level][key] for s in SEEDS]
            assert han["mean"][level][key] == pytest.approx(statistics.mean(values))
            assert han["sd"][level][key] == pytest.approx(statistics.stdev(values))
    assert len(metrics["provenance"]["checkpoints"]) == 3


@pytest.mark.slow
def test_parse_target_parses_the_demo_test_clips(demo_run: DemoRun) -> None:
    """`snakemake results/parsed/videos.tsv`: every demo test clip as events (JSON, CSV) and a timeline,
    made with the run's model and the weights it records, from the features extracted for training
    (10-second clips), the demo's ground truth beside them."""
    log = demo_run.workdir / "results/logs/parse.log"
    targets = ("results/parsed/videos.tsv", "results/parsed/index.html")  # the folder and its viewer
    run_snakemake(demo_run.workdir, "--cores", "2", *targets, timeout=DEMO_BUDGET_S)
    rows = (demo_run.workdir / "results/demo/test.csv").read_text(encoding="utf-8").splitlines()[1:]
    names = [row.split("\t")[0] for row in rows]
    out = demo_run.workdir / "results/parsed"
    assert sorted(p.stem for p in out.glob("*.json")) == sorted(names)
    for name in names:
        body = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        assert body["duration"] == pytest.approx(10, abs=0.1) and body["n_windows"] == 1
        assert body["ground_truth"] and "RANDOM" in body["warning"] and body["model"]["weights_mismatch"] == []
        assert all("reused" in source for source in body["features"].values())
        for event in body["events"]:
            assert event["modality"] in ("audio", "visual", "audio_visual")
            assert 0 <= event["onset"] < event["offset"] <= 10
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.png").stat().st_size > 10_000
    assert not list(out.glob(".parse-work-*"))  # no working files left behind
    assert log.read_text(encoding="utf-8").count("features reused") == len(names)
    from avvp.parsing.viewer.data import page_data

    links = sorted(v["src"] for v in page_data(out)["videos"])  # the page's links: the clips where they are
    assert (out / "index.html").is_file() and len(links) == len(names)
    assert all(src.startswith("../demo/videos/") and Path(src).stem in names for src in links)
    assert "Nothing to be done" in run_snakemake(demo_run.workdir, "--cores", "2", *targets).stdout


def chromium(*args: str) -> str:
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=5000", *args], text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def report_page(three_seeds: SeedsRun) -> Path:
    """`snakemake --report results/report.html` of the three-seed demo."""
    run_snakemake(three_seeds.workdir, "--report", "results/report.html", *three_seeds.args)
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH (Debian package `chromium`) to open the report")
    return three_seeds.workdir / "results/report.html"


@pytest.mark.slow
def test_report_opens_in_chromium_with_table_and_figures(three_seeds: SeedsRun, report_page: Path) -> None:
    """One self-contained page whose front page shows the random-weights warning, the leaderboard,
    the metrics table and every figure (inline PNGs)."""
    dom = chromium("--dump-dom", report_page.as_uri())
    assert dom.count('<table class="leaderboard">') == 1 and dom.count('<table class="metrics">') == 1
    assert "seed 3" in dom and "mean ± sd (3 runs)" in dom
    assert "RANDOM backbone weights" in dom
    timelines = sorted((three_seeds.workdir / "results/report/timelines").glob("*.png"))
    assert len(timelines) == load_config(three_seeds.workdir)["report"]["timelines"]
    assert len(FIGURE.findall(dom)) == 2 + len(timelines)  # curves, per-class bars, the timelines


@pytest.mark.slow
def test_report_links_the_test_split_viewer_which_opens(three_seeds: SeedsRun, report_page: Path,
                                                        tmp_path: Path) -> None:
    """Target all builds the viewer of every local test clip (ground truth and per-video F each); the
    report's front page links it; it opens from file:// with no error, every test clip listed."""
    viewer = three_seeds.workdir / "results/parsed_test/index.html"
    rows = (three_seeds.workdir / "results/demo/test.csv").read_text(encoding="utf-8").splitlines()[1:]
    names = sorted(row.split("\t")[0] for row in rows)
    parsed = sorted(viewer.parent.glob("*.json"))
    assert [p.stem for p in parsed] == names
    assert all(json.loads(p.read_text(encoding="utf-8"))["ground_truth"] is not None for p in parsed)
    assert 'href="parsed_test/index.html"' in chromium("--dump-dom", report_page.as_uri())
    with Chromium(CHROMIUM, *WINDOW) as browser:
        browser.watch()
        browser.open(viewer.as_uri())
        browser.wait_for("document.body && document.body.dataset.ready === 'true'")
        listed = browser.evaluate("[...document.querySelectorAll('table.videos tbody tr')].map(r => "
                                  "[r.cells[0].textContent, r.cells[3].textContent])")
        playable = browser.wait_for("document.querySelector('video').readyState >= 1")
        browser.screenshot(tmp_path / "viewer.png")
        assert browser.problems() == []
    assert sorted(name for name, _ in listed) == [f"{n}.mp4" for n in names] and playable
    assert all(0 <= float(f) <= 100 for _, f in listed)


def test_make_demo_ends_with_the_numbers_the_report_and_the_viewer() -> None:
    """`make demo` builds everything (the viewer too), then the report, then prints the ten numbers
    (`avvp leaderboard`) and the paths of metrics.json and both pages."""
    out = subprocess.run(["make", "-n", "demo"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    run_all = next(i for i, line in enumerate(lines) if line.endswith("snakemake --cores 2 all"))
    report = next(i for i, line in enumerate(lines) if line.endswith("snakemake --report results/report.html"))
    numbers = next(i for i, line in enumerate(lines) if line.endswith("avvp leaderboard results/metrics.json"))
    assert run_all < report < numbers
    for path in ("results/metrics.json", "results/report.html", "results/parsed_test/index.html"):
        assert f"{REPO}/{path}" in "\n".join(lines[numbers:])


# Measured in the page once the report's app has drawn it: the viewport, the front page's first
# heading or paragraph (its top), the leaderboard's header cells and first method row, what lies at
# the title's centre, and each inline figure's natural and drawn width beside the width it has room for.
LAYOUT_JS = """
(async () => {
  for (let i = 0; i < 100 && !document.querySelector('#app .prose table.leaderboard'); i++)
    await new Promise(r => setTimeout(r, 100));
  const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
  const front = document.querySelector('#app .prose');
  const first = front && front.querySelector('h1, h2, h3, p');  // its first heading or paragraph
  const table = document.querySelector('#app .prose table.leaderboard');
  const b = box(first);
  const hit = b && document.elementFromPoint((b.left + Math.min(b.right, innerWidth)) / 2, (b.top + b.bottom) / 2);
  return {
    viewport: [innerWidth, innerHeight],
    title: b, titleText: first ? first.textContent.trim() : null, titleOnTop: !!(hit && first.contains(hit)),
    columns: table ? [...table.querySelectorAll('thead tr:last-child th')].map(box) : [],
    firstRow: box(table && table.querySelector('tbody tr:not(.protocol)')),
    figures: [...document.querySelectorAll('#app .prose img.figure')].map(img => ({
      natural: img.naturalWidth, drawn: img.getBoundingClientRect().width,
      room: img.closest('figure').parentElement.getBoundingClientRect().width})),
  };
})()
"""


def front_page_problems(layout: dict, shot: Path) -> list[str]:
    """What a person at a 1400x900 window would miss on the report's front page (empty: nothing)."""
    from PIL import Image

    width, height = WINDOW
    problems = []
    if layout["viewport"] != list(WINDOW):
        problems.append(f"viewport {layout['viewport']}, not {WINDOW}")
    if not inside(layout["title"], width, height) or not layout["titleOnTop"]:
        problems.append(f"the front page's top ({layout['titleText']!r:.60}) is not in view: {layout['title']}")
    if len(layout["columns"]) != 10 or not all(inside(c, width, height) for c in layout["columns"]):
        problems.append(f"not all ten leaderboard columns are in view: {layout['columns']}")
    if not inside(layout["firstRow"], width, height):
        problems.append(f"the leaderboard's first row is not in view: {layout['firstRow']}")
    for fig in layout["figures"]:
        if fig["drawn"] < min(fig["natural"], fig["room"]) - 1:
            problems.append(f"a figure {fig['natural']} px wide is drawn at {fig['drawn']:.0f} px")
    with Image.open(shot) as image:
        if image.size != WINDOW:
            problems.append(f"screenshot is {image.size}, not {WINDOW}")
        grey = image.convert("L")
        for name in ("title", "firstRow"):  # text there: dark pixels in the screenshot
            box = layout[name]
            if inside(box, width, height):
                region = grey.crop((int(box["left"]), int(box["top"]), int(box["right"]), int(box["bottom"])))
                if sum(region.histogram()[:100]) < 50:
                    problems.append(f"the screenshot shows no text where the {name} is: {box}")
    return problems


def front_page_at_window(page: Path, shot: Path) -> list[str]:
    """Open the report in headless Chromium with a 1400x900 viewport, measure, screenshot, judge."""
    with Chromium(CHROMIUM, *WINDOW) as browser:
        browser.open(page.as_uri())
        layout = browser.evaluate(LAYOUT_JS)
        browser.screenshot(shot)
    return front_page_problems(layout, shot)


@pytest.mark.slow
def test_report_front_page_shows_its_top_at_1400x900(three_seeds: SeedsRun, report_page: Path,
                                                     tmp_path: Path) -> None:
    """What a person sees in a 1400x900 window: the title and the leaderboard's first row in view,
    all ten columns (no published ones on the demo), figures at their own size; checked on a
    screenshot and the page's drawn layout."""
    shot = tmp_path / "front.png"
    assert front_page_at_window(report_page, shot) == []
    keep = os.environ.get("AVVP_REPORT_SHOTS")  # a folder to keep the screenshot and a timeline in
    if keep:
        timeline = sorted((three_seeds.workdir / "results/report/timelines").glob("*.png"))[0]
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
        shutil.copy(timeline, Path(keep) / f"timeline_{timeline.name}")


# --- a training killed mid-way continues where it stopped --------------------------------------

@pytest.mark.slow
def test_a_killed_training_continues_from_its_last_epoch(demo_run: DemoRun, tmp_path: Path) -> None:
    """SIGKILL during HAN's training, `--unlock`, run again: training continues after the last
    finished epoch (last.pt), and metrics.json equals an uninterrupted run's."""
    runs = {}
    for name in ("straight", "killed"):
        runs[name] = tmp_path / name
        shutil.copytree(demo_run.workdir, runs[name], symlinks=True)
    change = {"stages": {"han": {"epochs": 12}}}
    straight = override(runs["straight"], "twelve.yaml", change)
    run_snakemake(runs["straight"], "--cores", "2", *straight, "results/metrics.json", timeout=DEMO_BUDGET_S)

    workdir = runs["killed"]
    args = ["--cores", "2", *override(workdir, "twelve.yaml", change), "results/metrics.json"]
    log_csv = workdir / "results/runs/han/seed1/han/log.csv"
    started = time.time()  # file times are wall-clock times

    def three_epochs_done(_: str) -> bool:
        fresh = log_csv.is_file() and log_csv.stat().st_mtime > started
        return fresh and len(log_csv.read_text().splitlines()) >= 4  # header + 3 epochs

    run_until(workdir, args, tmp_path / "killed.log", three_epochs_done)
    run_snakemake(workdir, "--unlock", *args[2:])
    run_snakemake(workdir, *args, timeout=DEMO_BUDGET_S)
    train_log = (workdir / "results/logs/train/han_seed1_han.log").read_text()
    match = re.search(r"resuming from \S+last\.pt after epoch (\d+)", train_log)
    assert match and 3 <= int(match[1]) < 12, train_log[-2000:]
    ours, theirs = (json.loads((runs[n] / "results/metrics.json").read_text()) for n in ("killed", "straight"))
    assert ours["methods"] == theirs["methods"]
