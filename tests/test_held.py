"""What the bad-input issue holds, where no other test covers it: pickles that would run code, markup
in names, leading-dash and `../` names, two Snakemakes at once, read-only disks and a 20-minute video.

Covered elsewhere: a SIGKILLed `avvp extract` leaves only complete feature files
(test_extraction_pipeline.py::test_a_killed_extraction_leaves_only_complete_feature_files), and hostile
config paths through a real run (test_workflow_quoting.py::test_hostile_annotation_and_feature_paths_run_to_metrics).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp.cli import main
from extractor_helpers import make_frames, tone, write_wav
from media_helpers import make_clip
from workflow_helpers import (
    annotations,
    copy_workflow,
    environment,
    run_snakemake,
    small_demo_dataset,
    snakemake_command,
    write_random_features,
    write_config,
)

TESTS = Path(__file__).resolve().parent


def avvp(*args: str | Path) -> tuple[int, str]:
    """`avvp ARGS` in this process: its exit status and what it said on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def one_error(command: str, stderr: str) -> str:
    """The single `avvp COMMAND: error:` line of `stderr`; any other line must be a warning."""
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith(f"avvp {command}: error: ")]
    assert len(errors) == 1 and all(line in errors or line.startswith("WARNING: ") for line in lines), stderr
    return errors[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small LLP-format data set with random features, its packed training split, a HAN checkpoint
    of it, a 10-second clip and a frames folder."""
    root = tmp_path_factory.mktemp("held")
    small_demo_dataset(root / "data", {"train": 4, "val": 2, "test": 2})
    chosen = [line.split("\t")[0] for name in ("train", "val", "test")
              for line in (root / "data" / f"{name}.csv").read_text().splitlines()[1:]]
    write_random_features(root / "features", chosen)
    assert avvp("pack", "--split-csv", root / "data/train.csv", "--features", root / "features",
                "--out-dir", root / "pack")[0] == 0
    from avvp.evaluation.annotations import read_classes
    from avvp.model.checkpoint import save_checkpoint
    from avvp.model.han import HAN

    torch.manual_seed(0)
    classes = list(read_classes(root / "data/classes.txt").classes)
    save_checkpoint(root / "model.pt", HAN(len(classes), features=("vggish", "r2plus1d_18")), classes)
    return {"root": root, "data": root / "data", "features": root / "features", "pack": root / "pack",
            "checkpoint": root / "model.pt", "clip": make_clip(root / "clipxxxxxxx_0_10.mp4", seconds=10, size=(32, 24)),
            "frames": make_frames(root / "frames", 10, size="32x24")}


def train_args(data: dict[str, Path], out: Path) -> list[str | Path]:
    d = data["data"]
    return ["train", "--features", data["features"], "--train-csv", d / "train.csv", "--val-csv", d / "val.csv",
            "--audio-csv", d / "eval_audio.csv", "--visual-csv", d / "eval_visual.csv", "--out-dir", out,
            "--epochs", "1", "--no-progress"]


# ----------------------------------------------------------------------------- (1) pickles


class RunsCode:
    """A pickle whose loading runs a shell command: what a malicious checkpoint holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch '{self.marker}'",)


def test_pickles_that_would_run_code_never_run(data: dict[str, Path], tmp_path: Path) -> None:
    """Every path avvp loads weights from (a checkpoint for predict, parse, pass and extract, extractor
    weights, PCA parameters, a last.pt to resume, a model folder): the command fails in one line naming
    the file, and the pickle's command never runs."""
    marker = tmp_path / "PICKLE_RAN"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"fc_a.weight": RunsCode(marker)}}, evil)
    torch.load(evil, weights_only=False)  # the payload is live: an unrestricted load runs it
    assert marker.exists()
    marker.unlink()
    npz = tmp_path / "evil.npz"
    np.savez(npz, pca_eigen_vectors=np.array([RunsCode(marker)], dtype=object), pca_means=np.zeros(128))
    folder = tmp_path / "model folder"
    folder.mkdir()
    from transformers import CLIPConfig

    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    CLIPConfig(vision_config={**tower, "patch_size": 32}, text_config=tower).save_pretrained(folder)
    shutil.copy(evil, folder / "pytorch_model.bin")
    stage = tmp_path / "stage"
    stage.mkdir()
    shutil.copy(evil, stage / "last.pt")
    d, out = data["data"], tmp_path / "out"
    cases = {
        "predict": (["predict", "--checkpoint", evil, "--features", data["features"], "--split-csv",
                     d / "test.csv", "--out", out / "p.npz", "--device", "cpu"], evil),
        "parse": (["parse", data["clip"], "--checkpoint", evil, "--out", out, "--device", "cpu"], evil),
        "pass": (["pass", "--stage", "ma_mmil_refine", "--checkpoint", evil, "--train-pack", data["pack"],
                  "--out-dir", out / "refine", "--device", "cpu"], evil),
        "extract --checkpoint": (["extract", "--kind", "r2plus1d_18", "--checkpoint", evil, "--out-dir", out,
                                  "--no-progress", data["frames"]], evil),
        "extract --weights": (["extract", "--kind", "r2plus1d_18", "--weights", evil, "--out-dir", out,
                               "--no-progress", data["frames"]], evil),
        "extract --postprocess": (["extract", "--kind", "vggish", "--postprocess", evil, "--out-dir", out,
                                   "--no-progress", data["root"] / "tone.wav"], evil),
        "extract --postprocess npz": (["extract", "--kind", "vggish", "--postprocess", npz, "--out-dir", out,
                                       "--no-progress", data["root"] / "tone.wav"], npz),
        "extract model folder": (["extract", "--kind", "clip", "--weights", folder, "--out-dir", out,
                                  "--no-progress", data["frames"]], folder),
        "train --resume": ([*train_args(data, stage), "--resume"], stage / "last.pt"),
    }
    write_wav(data["root"] / "tone.wav", tone(440))
    for name, (args, named) in cases.items():
        code, err = avvp(*args)
        line = one_error(args[0], err)
        assert code == 1 and str(named) in line, (name, err)
        assert ("weights-only" in line or "allow_pickle" in line) and not marker.exists(), (name, err)
    # The workflow's `--resume auto` sets such a last.pt aside, saying why, and trains afresh.
    code, err = avvp(*train_args(data, stage), "--resume", "auto")
    assert code == 0 and f"{stage / 'last.pt'}: not a readable checkpoint (refused by a weights-only load" in err
    assert torch.load(stage / "last.pt", weights_only=True)["epoch"] == 1
    assert not marker.exists() and not (Path.cwd() / "PICKLE_RAN").exists()


# ----------------------------------------------------------------------------- (3) names


def test_leading_dash_ids_go_through_download_media_and_parse(data: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """YouTube ids may start with `-`: such a clip is taken, decoded and parsed under its own name,
    given on the command line as a relative path after `--`, with its features found by its id."""
    name = "-3M-k4nIYIM_0_10"
    (tmp_path / "local").mkdir()
    shutil.copy(data["clip"], tmp_path / "local" / "-3M-k4nIYIM.mp4")
    monkeypatch.chdir(tmp_path)
    assert avvp("download", "--out-dir", "videos", "--records", "got.tsv", "--local-dir", "local", "--", name)[0] == 0
    assert avvp("media", "--records", "got.tsv", "--videos-dir", "videos", "--audio-dir", "audio", "--frames-dir",
                "frames", "--out-records", "media.tsv")[0] == 0
    assert "\tok\t" in (tmp_path / "media.tsv").read_text()
    assert (tmp_path / "audio" / f"{name}.wav").is_file() and len(list((tmp_path / "frames" / name).glob("*.jpg"))) >= 80
    write_random_features(tmp_path / "features", ["-3M-k4nIYIM"])
    monkeypatch.chdir(tmp_path / "videos")
    code, err = avvp("parse", "--checkpoint", data["checkpoint"], "--out", tmp_path / "parsed", "--device", "cpu",
                     "--no-progress", "--weights", "random", "--allow-weights-mismatch", "--features",
                     tmp_path / "features", "--", f"{name}.mp4")
    assert code == 0, err
    parsed = json.loads((tmp_path / "parsed" / f"{name}.json").read_text())
    assert all(source["reused"].endswith("/-3M-k4nIYIM.npy") for source in parsed["features"].values())


def test_names_reaching_outside_their_folder_are_refused(data: dict[str, Path], tmp_path: Path) -> None:
    """`../` in a clip list or a records file is refused in one line before anything is written; the
    media step would otherwise write beside its folders, or remove a folder above them for a failed
    clip named `..`."""
    keep = tmp_path / "work" / "keep.txt"  # what sits beside the output folders
    keep.parent.mkdir()
    keep.write_text("mine")
    videos = tmp_path / "work" / "videos"
    code, err = avvp("download", "--out-dir", videos, "--records", tmp_path / "got.tsv", "--local-dir",
                     data["root"], "../clipxxxxxxx_0_10")
    assert code == 1 and "'../clipxxxxxxx_0_10'" in one_error("download", err)
    for name in ("..", "../escapedxxx_0_10", "x/../../escapedxxx_0_10"):
        records = tmp_path / "records.tsv"
        records.write_text(f"filename\tvideo_id\tstatus\treason\n{name}\tescapedxxx\tok\t\n")
        code, err = avvp("media", "--records", records, "--videos-dir", videos, "--audio-dir",
                         tmp_path / "work" / "audio", "--frames-dir", tmp_path / "work" / "frames", "--out-records",
                         tmp_path / "out.tsv")
        line = one_error("media", err)
        assert code == 1 and f"{records}:2: {name!r} is not a clip filename" in line, err
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["keep.txt"] and keep.read_text() == "mine"
    assert not list(tmp_path.glob("escaped*")) and not (tmp_path / "out.tsv").exists()


# ----------------------------------------------------------------------------- (6) read-only disks


@pytest.fixture
def read_only(tmp_path: Path):
    """An empty read-only file system (a tmpfs mounted ro): root ignores permission bits, not this."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here (mounting needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_read_only_disk_is_one_line_naming_the_path(data: dict[str, Path], tmp_path: Path, read_only: Path) -> None:
    """Every writing command, with its output folder on a read-only disk (or inside one): one error
    line naming the output it was asked for (not a temporary name), and no clip is blamed for it."""
    d, ro, clip = data["data"], read_only, data["clip"]
    assert avvp("predict", "--checkpoint", data["checkpoint"], "--features", data["features"], "--split-csv",
                d / "test.csv", "--out", tmp_path / "p.npz", "--device", "cpu")[0] == 0
    assert avvp("download", "--out-dir", tmp_path / "videos", "--records", tmp_path / "got.tsv", "--local-dir",
                data["root"], clip.stem)[0] == 0
    cases = {
        "download": (["--out-dir", ro, "--records", tmp_path / "r.tsv", "--local-dir", data["root"], clip.stem],
                     ro / clip.name),
        "media": (["--records", tmp_path / "got.tsv", "--videos-dir", tmp_path / "videos", "--audio-dir", ro,
                   "--frames-dir", tmp_path / "frames", "--out-records", tmp_path / "m.tsv"], ro / f"{clip.stem}.wav"),
        "audio": ([clip, ro / "a.wav"], ro / "a.wav"),
        "frames": ([clip, ro / "frames"], ro / "frames"),
        "extract": (["--kind", "vggish", "--out-dir", ro, "--no-progress", clip], ro / "vggish"),
        "pack": (["--split-csv", d / "train.csv", "--features", data["features"], "--out-dir", ro / "packed"],
                 ro / "packed"),
        "train": (train_args(data, ro)[1:], ro / "train.lock"),
        "predict": (["--checkpoint", data["checkpoint"], "--features", data["features"], "--split-csv",
                     d / "test.csv", "--out", ro / "p.npz", "--device", "cpu"], ro / "p.npz"),
        "evaluate": (["--predictions", tmp_path / "p.npz", "--split-csv", d / "test.csv", "--audio-csv",
                      d / "eval_audio.csv", "--visual-csv", d / "eval_visual.csv", "--out", ro / "m.json"],
                     ro / "m.json"),
        "parse": ([clip, "--checkpoint", data["checkpoint"], "--out", ro, "--device", "cpu", "--no-progress",
                   "--weights", "random", "--allow-weights-mismatch"], ro),
    }
    for command, (args, named) in cases.items():
        code, err = avvp(command, *args)
        assert code == 1 and one_error(command, err).endswith(f": error: {named}: Read-only file system"), err
    assert not (tmp_path / "m.tsv").exists()  # the media step stopped: no record blames the clip


# ----------------------------------------------------------------------------- (2) markup in the report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
# In the page: how many elements the names' markup made, and whether the names show as written.
INJECTED_JS = """
(async () => {
  for (let i = 0; i < 100 && !document.querySelector('#app .prose table.metrics'); i++)
    await new Promise(r => setTimeout(r, 100));
  const text = document.body.innerText;
  return {tables: document.querySelectorAll('#app .prose table.metrics').length,
          injected: document.querySelectorAll('[id^="avvp-injected"]').length,
          name: text.includes(NAME), label: text.includes(LABEL)};
})()
"""


@pytest.mark.slow
def test_markup_in_names_and_labels_is_text_in_the_report(tmp_path: Path) -> None:
    """A data set name, a variant label and a class name holding HTML: `snakemake --report` shows
    them as written, and none of their markup becomes an element of the page."""
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH (Debian package `chromium`) to open the report")
    workdir = copy_workflow(tmp_path / "wf")
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 4, "val": 2, "test": 2})
    write_random_features(workdir / "features", list(chosen))
    classes = (workdir / "data/mini/classes.txt").read_text().splitlines()
    markup_class = f"<img id=avvp-injected-class src=x>{classes[0]}"  # no comma, tab or quote: a legal name
    for path in (workdir / "data/mini").iterdir():  # the class renamed wherever it is named
        path.write_text(path.read_text().replace(classes[0], markup_class))
    name, label = '<b id="avvp-injected-name">mini</b> & co', "<i id='avvp-injected-label'>HAN</i> <script>1</script>"
    config = {"dataset": {"name": name, "mode": "features", "annotations": annotations("data/mini"),
                          "features_dir": "features"},
              "train": {"methods": ["mine"]}, "variants": {"mine": {"method": "han", "label": label}},
              "stages": {"han": {"epochs": 1}}}
    args = [f"--configfile={write_config(workdir / 'markup.yaml', config)}"]
    run_snakemake(workdir, "--cores", "2", *args)
    assert json.loads((workdir / "results/metrics.json").read_text())["methods"]["mine"]["label"] == label
    run_snakemake(workdir, "--report", "results/report.html", *args)
    from browser import Chromium

    with Chromium(CHROMIUM, 1400, 900) as browser:
        browser.open((workdir / "results/report.html").as_uri())
        page = browser.evaluate(INJECTED_JS.replace("NAME", json.dumps(name)).replace("LABEL", json.dumps(label)))
    assert page == {"tables": 1, "injected": 0, "name": True, "label": True}


# ----------------------------------------------------------------------------- (5) two Snakemakes


@pytest.mark.slow
def test_a_second_snakemake_on_the_same_folder_is_refused_by_the_lock(tmp_path: Path) -> None:
    """While one run trains, a second run of the same targets stops at once on Snakemake's lock,
    saying so, and the first goes on."""
    workdir = copy_workflow(tmp_path / "wf")
    chosen = small_demo_dataset(workdir / "data/mini", {"train": 4, "val": 2, "test": 2})
    write_random_features(workdir / "features", list(chosen))
    config = {"dataset": {"mode": "features", "annotations": annotations("data/mini"), "features_dir": "features"},
              "stages": {"han": {"epochs": 100000}}}  # trains until killed
    command = snakemake_command("--cores", "1", f"--configfile={write_config(workdir / 'long.yaml', config)}",
                                "results/metrics.json")
    first = subprocess.Popen(command, cwd=workdir, env=environment(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(workdir.glob("results/runs/han/seed1/han/log.csv")):  # locked, and training
            assert first.poll() is None and time.monotonic() < deadline, "the first run never started training"
            time.sleep(0.2)
        second = subprocess.run(command, cwd=workdir, env=environment(), capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and "Directory cannot be locked" in second.stdout + second.stderr
        assert "--unlock" in second.stdout + second.stderr  # says how to clear a stale lock
        assert first.poll() is None  # the first goes on
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()


# ----------------------------------------------------------------------------- (7) a 20-minute video

# `avvp parse` with the two kinds of the checkpoint (vggish, r2plus1d_18) keeping their real decoding
# (WAV -> log-mel examples, JPEG frames -> 112x112 clips) but with a tiny network each: the real ones
# cost seconds per 10-s window on a CPU, and what a long video may not do is hold its media in memory.
CHEAP_PARSE = """
import dataclasses, sys
import torch
from torch import nn
from avvp.cli import main
from avvp.extractors import Extractor, feature_kind, register

def tiny(pool, n_in, n_out):
    build = lambda: nn.Sequential(pool, nn.Flatten(), nn.Linear(n_in, n_out))
    def random(seed):
        torch.manual_seed(seed)
        return build().eval(), "a tiny test network"
    return build, random

for name, pool, n_in, n_out in (("vggish", nn.AdaptiveAvgPool2d(4), 16, 128),
                                ("r2plus1d_18", nn.AdaptiveAvgPool3d((1, 4, 4)), 48, 512)):
    kind = feature_kind(name)
    build, random = tiny(pool, n_in, n_out)
    real = kind.network()
    cheap = Extractor(build=build, random=random, features=lambda model, device: model.eval().to(device),
                      load=real.load, prepare=real.prepare)
    register(dataclasses.replace(kind, extractor=cheap), replace=True)
sys.exit(main(sys.argv[1:]))
"""
# Runs its arguments as a child and prints the child's peak resident memory (KiB; its ffmpegs included).
PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")


def peak_parse_kib(video: Path, data: dict[str, Path], out: Path) -> int:
    """Peak resident memory of one `avvp parse` process (CHEAP_PARSE) of `video`."""
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-c", CHEAP_PARSE, "parse", str(video),
                           "--checkpoint", str(data["checkpoint"]), "--out", str(out), "--device", "cpu",
                           "--no-progress", "--weights", "random", "--allow-weights-mismatch"],
                          env=environment(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(proc.stdout.splitlines()[-1])


@pytest.mark.slow
def test_a_twenty_minute_video_parses_in_the_memory_of_a_ten_second_one(data: dict[str, Path], tmp_path: Path) -> None:
    """120 windows take little more memory than one: the audio is cut window by window, frames go
    through files, features are pooled per window (holding the 20 minutes' 112x112 frames would take
    1.4 GB, its 44.1 kHz float samples 0.8 GB)."""
    from avvp.clips.ffmpeg import ffmpeg_exe

    videos = {}
    for seconds in (10, 1200):
        videos[seconds] = tmp_path / f"long{seconds}.mp4"
        subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"testsrc=s=32x24:r=8:d={seconds}",
                        "-f", "lavfi", "-i", f"sine=f=440:r=16000:d={seconds}", "-c:v", "libx264", "-preset",
                        "ultrafast", "-pix_fmt", "yuv420p", "-g", "80", "-c:a", "aac", "-b:a", "24k",
                        str(videos[seconds])], check=True)
    short, long = (peak_parse_kib(videos[s], data, tmp_path / "parsed") for s in (10, 1200))
    parsed = json.loads((tmp_path / "parsed" / "long1200.json").read_text())
    assert parsed["n_windows"] == 120 and parsed["duration"] == pytest.approx(1200, abs=0.1)
    assert long - short < 128 * 1024, f"peak RSS {short // 1024} MiB for 10 s, {long // 1024} MiB for 20 min"
    assert sorted(p.name for p in (tmp_path / "parsed").iterdir() if p.suffix != ".png") == [
        "index.html", "long10.csv", "long10.json", "long1200.csv", "long1200.json"]  # the viewer, no work folder
