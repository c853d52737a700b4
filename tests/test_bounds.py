"""Bounds from what a file is, not what it claims: a tiny file that decodes as 6 hours, a clip whose
header says 0.002 fps, a truncated clip, and a media step stopped by SIGTERM."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
import wave
from pathlib import Path

import numpy as np
import pytest

from avvp.clips.ffmpeg import MediaInfo, ffmpeg_exe, probe
from avvp.clips.media import write_audio
from avvp.clips.records import read_records
from avvp.parsing.parse import NO_AUDIO_NOTE, parse_videos
from media_helpers import make_clip, truncated_copy

SRC = Path(__file__).parents[1] / "src"
DISK_LIMIT = 50 * 2**20  # bytes a bounded run may write; also the children's RLIMIT_FSIZE
TIME_LIMIT_S = 60


def _tiny(path: Path, rate: str, seconds: float) -> Path:
    """A 32x32 H.264 mp4 of a few frames `rate` apart that really decodes as `seconds` (~1.5 KB)."""
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=s=32x32:r={rate}:d={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def six_hours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 frames an hour apart: decodes (not only claims) 6 hours; its (LLP) name asks for 6 hours too."""
    path = _tiny(tmp_path_factory.mktemp("six") / "sixhoursxxx_0_21600.mp4", "1/3600", 21600)
    assert path.stat().st_size < 5000 and probe(path).duration == 21600
    return path


def _avvp(args: list[str], cwd: Path, timeout: float = TIME_LIMIT_S) -> tuple[subprocess.CompletedProcess, float]:
    """A real `avvp` process that may write no file over DISK_LIMIT (else SIGXFSZ kills it)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (DISK_LIMIT, DISK_LIMIT))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", "import sys; from avvp.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit)
    return proc, time.monotonic() - started


def _bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _records(path: Path, names: list[str]) -> Path:
    path.write_text("filename\tvideo_id\tstatus\treason\n" + "".join(f"{n}\t{n[:11]}\tok\t\n" for n in names))
    return path


def test_a_file_that_decodes_as_six_hours_is_refused_by_the_media_step(six_hours: Path, tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    os.link(six_hours, tmp_path / "videos" / six_hours.name)
    proc, took = _avvp(["media", "--records", str(_records(tmp_path / "in.tsv", [six_hours.stem])),
                        "--videos-dir", "videos", "--audio-dir", "audio", "--frames-dir", "frames",
                        "--out-records", "out.tsv"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert took < TIME_LIMIT_S and _bytes_under(tmp_path) < DISK_LIMIT
    [rec] = read_records(tmp_path / "out.tsv")
    assert rec.status == "unavailable"
    assert "too long to process: 21600.00 s decode, over the limit of 60 s" in rec.reason
    assert "note: implausible frame rate: the header says 0.0003 fps" in rec.reason
    assert "implausible frame rate" in proc.stderr
    assert not list((tmp_path / "frames").glob("*")) and not list((tmp_path / "audio").glob("*"))


def test_a_file_that_decodes_as_six_hours_is_refused_by_avvp_parse(six_hours: Path, tmp_path: Path) -> None:
    import torch

    from avvp.model.checkpoint import save_checkpoint
    from avvp.model.han import HAN

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "model.pt", HAN(2), ["Red", "Blue"])
    proc, took = _avvp(["parse", str(six_hours), "--checkpoint", "model.pt", "--out", "parsed", "--device", "cpu",
                        "--no-progress"], tmp_path, timeout=2 * TIME_LIMIT_S)
    assert proc.returncode == 1, proc.stderr
    assert took < 2 * TIME_LIMIT_S and _bytes_under(tmp_path) < DISK_LIMIT  # (torch's import included)
    assert "too long to process: 21600.00 s decode, over the limit of 14400 s" in proc.stderr
    assert "1 of 1 videos failed" in proc.stderr
    assert not list((tmp_path / "parsed").glob("*"))  # no outputs, no work folder left


def test_writing_a_long_silence_never_holds_it_in_memory(tmp_path: Path) -> None:
    """30 minutes without audio: a 115 MB WAV written in blocks (the old code built it whole)."""
    info = MediaInfo(path="x.mp4", duration=1800.0, container_duration=1800.0, has_video=True, has_audio=False)
    tracemalloc.start()
    try:
        assert write_audio(info, tmp_path / "x.wav") == "no_audio"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
    with wave.open(str(tmp_path / "x.wav"), "rb") as fh:
        assert (fh.getnframes(), fh.getframerate(), fh.getnchannels()) == (1800 * 16000, 16000, 2)
        fh.setpos(fh.getnframes() - 1000)
        assert not any(fh.readframes(1000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]


class BlindModel:
    """Probabilities of zero for every window; reads none of the windows' media."""

    classes = ["Red", "Blue"]

    def __call__(self, v, work_dir):
        return np.zeros((v.n_windows, 2)), np.zeros((v.n_windows, 10, 2, 2)), {}

    def describe(self):
        return {"model": "blind (test)"}


@pytest.fixture(scope="module")
def odd_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd")
    ten = make_clip(folder / "ten.mp4", seconds=10, size=(32, 24))
    truncated = truncated_copy(ten, folder / "trunc.mp4", 0.3)  # ~2.2 of 10 s decode
    named = folder / f"truncatedxx_0_{probe(truncated).duration:.2f}.mp4"  # an LLP name asking for what decodes
    truncated.rename(named)
    return {"slow": _tiny(folder / "slow_0_10.mp4", "0.002", 1000), "truncated": named}


def test_odd_clips_are_warned_about_by_avvp_parse(odd_clips: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    parsed = parse_videos(list(odd_clips.values()), BlindModel(), tmp_path / "out")
    err = capsys.readouterr().err
    assert f"{odd_clips['slow']}: WARNING: implausible frame rate: the header says 0.002 fps" in err
    assert f"{odd_clips['truncated']}: WARNING: truncated: " in err and "the container says 10.00 s" in err
    assert [p.duration for p in parsed][0] == 1000.0
    notes = {p.video.stem: json.loads(p.json_path.read_text())["media_warnings"] for p in parsed}
    assert notes["slow_0_10"] == ["implausible frame rate: the header says 0.002 fps (expected 1 to 240)",
                                  NO_AUDIO_NOTE]  # a picture only
    assert notes[odd_clips["truncated"].stem][0].startswith("truncated: ")


def test_odd_clips_are_noted_in_the_media_records(odd_clips: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    from avvp.cli import main

    names = [p.stem for p in odd_clips.values()]
    for p in odd_clips.values():
        os.link(p, tmp_path / p.name)
    assert main(["media", "--records", str(_records(tmp_path / "in.tsv", names)), "--videos-dir", str(tmp_path),
                 "--audio-dir", str(tmp_path / "a"), "--frames-dir", str(tmp_path / "f"),
                 "--out-records", str(tmp_path / "out.tsv")]) == 0
    slow, truncated = read_records(tmp_path / "out.tsv")
    assert slow.status == "unavailable" and "1000.00 s decode" in slow.reason
    assert "note: implausible frame rate: the header says 0.002 fps" in slow.reason
    assert truncated.status == "ok" and truncated.reason.startswith("note: truncated: ")
    err = capsys.readouterr().err
    assert "warning: implausible frame rate" in err and "warning: truncated" in err


@pytest.mark.parametrize("during", ["audio", "frames"])
def test_sigterm_during_the_media_step_leaves_no_partial_output(tmp_path: Path, during: str) -> None:
    """SIGTERM as soon as a temporary WAV or frames folder appears: the command stops, removing it
    (the old code died at once and left it), and what has a final name is complete."""
    videos = tmp_path / "videos"
    videos.mkdir()
    names = [f"sigtermclp{i}_0_20" for i in range(3)]  # LLP names (11-character ids) asking for 20 s
    for name in names:
        make_clip(videos / f"{name}.mp4", seconds=20, size=(320, 240))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    audio, frames = tmp_path / "audio", tmp_path / "frames"
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from avvp.cli import main; sys.exit(main(sys.argv[1:]))",
                             "media", "--records", str(_records(tmp_path / "in.tsv", names)), "--videos-dir",
                             str(videos), "--audio-dir", str(audio), "--frames-dir", str(frames),
                             "--out-records", str(tmp_path / "out.tsv")], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        watched = audio if during == "audio" else frames
        if watched.is_dir() and list(watched.glob(".*")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the media step ended before a temporary output appeared"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    time.sleep(0.5)  # a child left running would go on writing
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob(".*")) == []
    assert not (tmp_path / "out.tsv").exists()
    for wav in audio.glob("*.wav"):
        with wave.open(str(wav), "rb") as fh:
            assert fh.getnframes() >= 20 * 16000 - 1600
    for folder in frames.iterdir() if frames.is_dir() else ():
        assert len(list(folder.glob("*.jpg"))) >= 160
