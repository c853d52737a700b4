"""Extraction as a pipeline: worker processes decode while the network runs.

The features must not depend on how inputs were decoded (in-process threads or worker processes),
a clip that cannot be decoded is recorded and the others are extracted, and a killed extraction
leaves only complete feature files under their final names.
"""
from __future__ import annotations

import os
import pickle
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
from avvp.clips.demo import plan_clips, write_clip
from avvp.extractors import PUBLISHED, feature_kind
from avvp.features import networks
from avvp.features.extract import FAILED_NAME, RECORD_NAME, extract_features, output_id, read_failures
from avvp.features.pipeline import Decoder, DecodeFailure, default_workers, loader_threads
from avvp.clips.media import extract_audio, extract_frames
from extractor_helpers import make_frames
from media_helpers import make_clip

TOLERANCE = 1e-5


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, list[Path]]:
    """Frames folders and WAVs of 2 demo clips and of the media tests' awkward clips."""
    root = tmp_path_factory.mktemp("media")
    videos = []
    for clip in plan_clips(10, seed=0)[:2]:
        videos.append(root / "videos" / f"{clip.filename}.mp4")
        write_clip(clip, videos[-1])
    odd = root / "my clips ü 名前"
    odd.mkdir()
    videos += [
        make_clip(root / "short.mp4", seconds=3),  # 24 frames: picks repeat; audio padded
        make_clip(root / "noaudio.mp4", seconds=10, audio=False, fps=60),  # silence; 60 fps source
        make_clip(odd / "-portrait: été 100%.mp4", seconds=1, size=(1080, 1920), fps=5),  # 8 tall frames
    ]
    frames, wavs = [], []
    for video in videos:
        frames.append(root / "frames" / video.stem)
        wavs.append(root / "audio" / f"{video.stem}.wav")
        extract_frames(video, frames[-1])
        extract_audio(video, wavs[-1])
    return {"frames": frames, "audio": wavs}


@pytest.fixture(scope="module")
def state_file(tmp_path_factory):
    """kind -> its random (seed 0) weights as a state-dict file, calibrated once per module."""
    root = tmp_path_factory.mktemp("weights")
    files: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in files:
            model, _ = networks.load_network(feature_kind(kind), "random", seed=0)
            files[kind] = root / f"{kind}.pth"
            torch.save(model.state_dict(), files[kind])
        return files[kind]

    yield get
    shutil.rmtree(root)  # 0.6 GB of random weights, of no use once the module is done


@pytest.mark.slow
@pytest.mark.parametrize("kind", PUBLISHED)
def test_pipelined_features_equal_in_process_on_demo_and_awkward_media(kind, media, state_file, tmp_path):
    spec = feature_kind(kind)
    inputs = media["audio" if spec.medium == "audio" else "frames"]
    if kind == "res152":  # the slowest network on a CPU: a demo clip and the portrait one
        inputs = [inputs[0], inputs[4]]
    batch = {"vggish": 7, "res152": 48, "r2plus1d_18": 6}[kind]  # batches that straddle clips
    outs = {}
    for workers in (0, 2):
        outs[workers] = tmp_path / f"workers{workers}"
        extract_features(kind, inputs, outs[workers], weights=str(state_file(kind)), device="cpu",
                         batch_size=batch, progress=False, workers=workers)
    expected = sorted([f"{output_id(p)}.npy" for p in inputs] + [RECORD_NAME])
    assert listing(outs[0]) == listing(outs[2]) == expected
    assert (outs[0] / RECORD_NAME).read_text() == (outs[2] / RECORD_NAME).read_text()
    for path in inputs:
        name = f"{output_id(path)}.npy"
        ours, reference = np.load(outs[2] / name), np.load(outs[0] / name)
        assert ours.shape == reference.shape == spec.shape and ours.dtype == np.float32
        assert np.abs(ours - reference).max() <= TOLERANCE * max(1.0, float(np.abs(reference).max()))


def test_a_clip_that_fails_to_decode_in_a_worker_is_recorded_and_the_rest_completes(tmp_path, capsys,
                                                                                     state_file):
    clips = [make_frames(tmp_path / "in" / name, 12, source) for name, source in
             (("abcdefghijk_0_10", "testsrc"), ("broken clip", "mandelbrot"), ("third", "smptebars"))]
    bad = clips[1] / "000005.jpg"
    good_bytes = bad.read_bytes()
    bad.write_bytes(good_bytes[:200])  # a JPEG cut off mid-way
    out = tmp_path / "feats"
    state = str(state_file("r2plus1d_18"))
    assert main(["extract", "--kind", "r2plus1d_18", "--weights", state, "--out-dir", str(out), "--workers", "1",
                 "--batch-size", "4", "--no-progress", *map(str, clips)]) == 0
    captured = capsys.readouterr()
    assert "2 of 3 inputs" in captured.out and "1 could not be decoded" in captured.out
    assert "000005.jpg" in captured.err
    folder = out / "r2plus1d_18"
    assert listing(folder) == sorted(["abcdefghijk.npy", FAILED_NAME, RECORD_NAME, "third.npy"])
    failures = read_failures(folder)
    assert list(failures) == ["broken clip"] and failures["broken clip"][0] == str(clips[1])
    assert "000005.jpg" in failures["broken clip"][1]
    # strict (avvp parse): the first such clip is an error naming the file
    with pytest.raises(ValueError, match="000005.jpg"):
        extract_features("r2plus1d_18", clips, tmp_path / "strict", state, workers=1, progress=False, strict=True)
    # Repaired: a rerun extracts only that clip and the record of failures goes away.
    bad.write_bytes(good_bytes)
    before = (folder / "third.npy").stat().st_mtime_ns
    extract_features("r2plus1d_18", clips, folder, state, workers=1, progress=False)
    assert listing(folder) == sorted(["abcdefghijk.npy", "broken clip.npy", RECORD_NAME, "third.npy"])
    assert (folder / "third.npy").stat().st_mtime_ns == before


def test_a_killed_extraction_leaves_only_complete_feature_files(tmp_path, state_file):
    clips = [make_frames(tmp_path / "in" / f"clip{i}", 10, source) for i, source in
             enumerate(["testsrc", "mandelbrot", "smptebars", "rgbtestsrc", "testsrc2", "yuvtestsrc"])]
    state = str(state_file("r2plus1d_18"))
    out = tmp_path / "feats"
    command = [sys.executable, "-c", "import sys; from avvp.cli import main; sys.exit(main())", "extract",
               "--kind", "r2plus1d_18", "--weights", state, "--out-dir", str(out), "--workers", "1",
               "--batch-size", "2", "--no-progress", *map(str, clips)]
    folder = out / "r2plus1d_18"
    # Its own process group, so that the kill takes the decoding worker too, as a job's end would.
    job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (folder.is_dir() and list(folder.glob("*.npy"))):
            assert job.poll() is None, job.stderr.read().decode()
            assert time.monotonic() < deadline, "no features written in 300 s"
            time.sleep(0.05)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert job.returncode == -signal.SIGKILL, "the extraction finished before it could be killed"
    written = sorted(folder.glob("*.npy"))
    assert 1 <= len(written) < len(clips)
    for path in written:  # every file under a final name is complete
        features = np.load(path)
        assert features.shape == (10, 512) and np.isfinite(features).all()
    final_names = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    assert final_names == {p.name for p in written} | {RECORD_NAME}
    # A rerun does what is missing.
    kept = {p.name: p.stat().st_mtime_ns for p in written}
    extract_features("r2plus1d_18", clips, folder, state, workers=1, progress=False)
    assert len(list(folder.glob("*.npy"))) == len(clips)
    assert all((folder / name).stat().st_mtime_ns == ns for name, ns in kept.items())


def rows_of(path: Path) -> np.ndarray:
    """A stand-in `load`: rows that tell which input they came from; `bad*` inputs fail."""
    if path.name.startswith("bad"):
        raise ValueError(f"{path}: cannot decode")
    return np.full((int(path.name[-1]) + 1, 2), int(path.name[-1]), dtype=np.uint8)


@pytest.mark.parametrize(("workers", "threads"), [(0, 0), (0, 2), (2, 0)])
def test_decoder_keeps_the_input_order_and_reports_failures(workers, threads):
    items = [Path(f"in{i}") for i in range(7)] + [Path("bad8")] + [Path("last9")]
    with Decoder(rows_of, items, workers=workers, threads=threads) as decoder:
        got = list(decoder)
    assert [path for path, _ in got] == items
    for path, rows in got[:7]:
        assert isinstance(rows, torch.Tensor) and rows.shape == (int(path.name[-1]) + 1, 2)
        assert (rows == int(path.name[-1])).all()
    assert isinstance(got[7][1], DecodeFailure) and "bad8: cannot decode" in got[7][1].reason
    assert got[8][1].shape == (10, 2)


def test_builtin_loads_pickle_for_worker_processes():
    for kind in PUBLISHED:
        load = feature_kind(kind).network().load
        assert pickle.loads(pickle.dumps(load)) is load


def test_default_workers_and_bad_settings(tmp_path):
    assert default_workers("cpu", 2) == default_workers("cpu", 16) == 0
    assert default_workers("cuda", 16) == 15 and default_workers("cuda", 1) == 1
    assert loader_threads("cpu", 16) == 0 and loader_threads("cuda", 16) == 8 and loader_threads("cuda", 1) == 1
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"")
    with pytest.raises(ValueError, match="workers"):
        extract_features("vggish", [wav], tmp_path / "out", workers=-1, progress=False)
    assert main(["extract", "--kind", "vggish", "--out-dir", str(tmp_path), "--threads", "0", str(wav)]) == 1
