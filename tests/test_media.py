"""Probing, audio and frames on real clips made by ffmpeg, including the bad inputs users bring."""
from __future__ import annotations

import argparse
import json
import os
import re
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avvp.cli import main
from avvp.clips.ffmpeg import MediaError, ffmpeg_exe, ffmpeg_version, probe
from avvp.clips.media import extract_audio, extract_frames, prepare_clips
from avvp.clips.records import ClipRecord, read_records
from media_helpers import make_clip, make_streamless, truncated_copy

ID = "abcdefghijk"


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    """(sample rate, samples (n, channels) int16) of a 16-bit WAV."""
    with wave.open(str(path), "rb") as fh:
        assert fh.getsampwidth() == 2
        data = np.frombuffer(fh.readframes(fh.getnframes()), np.int16)
        return fh.getframerate(), data.reshape(-1, fh.getnchannels())


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    mono = samples.astype(np.float64).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono))
    return float(np.fft.rfftfreq(len(mono), 1 / rate)[spectrum.argmax()])


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary names our writers use; there must be none after any call."""
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One of each kind of clip, made once for the module."""
    d = tmp_path_factory.mktemp("clips")
    zero = d / "zero.mp4"
    zero.write_bytes(b"")
    corrupt = d / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    full = make_clip(d / "full.mp4", seconds=10)
    return {
        "full": full,
        "short": make_clip(d / "short.mp4", seconds=3),
        "noaudio": make_clip(d / "noaudio.mp4", seconds=10, audio=False),
        "audioonly": make_clip(d / "audioonly.mp4", seconds=10, video=False),
        "streamless": make_streamless(d / "streamless.mp4"),
        "truncated": truncated_copy(full, d / "truncated.mp4"),
        "zero": zero,
        "corrupt": corrupt,
    }


def test_ffmpeg_is_found_and_has_a_version() -> None:
    assert Path(ffmpeg_exe()).is_file()
    assert any(ch.isdigit() for ch in ffmpeg_version())


def test_probe_reports_streams_and_decoded_length(clips: dict[str, Path]) -> None:
    info = probe(clips["full"])
    assert (info.has_video, info.has_audio) == (True, True)
    assert (info.width, info.height, info.fps, info.sample_rate) == (64, 48, 25.0, 44100)
    assert info.duration == pytest.approx(10.0, abs=0.05)
    assert info.video_frames == 250 and not info.truncated
    only_audio = probe(clips["audioonly"])
    assert (only_audio.has_video, only_audio.has_audio) == (False, True)
    header = probe(clips["full"], decode=False)
    assert header.duration == pytest.approx(10.0, abs=0.05) and header.video_frames == 0


def test_probe_sees_truncation_that_the_header_hides(clips: dict[str, Path]) -> None:
    info = probe(clips["truncated"])
    assert info.container_duration == pytest.approx(10.0, abs=0.05)
    assert info.duration < 8.0 and info.truncated


@pytest.mark.parametrize("kind, message", [
    ("zero", "empty file"), ("corrupt", "not a readable media file"), ("streamless", "no video or audio stream"),
])
def test_probe_errors_name_the_file(clips: dict[str, Path], kind: str, message: str) -> None:
    with pytest.raises(MediaError, match=message) as err:
        probe(clips[kind])
    assert str(clips[kind]) in str(err.value)
    with pytest.raises(MediaError, match="no such file"):
        probe(clips[kind].with_name("missing.mp4"))


def test_audio_is_16k_and_as_long_as_the_clip(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "a.wav"
    assert extract_audio(clips["full"], out) == "ok"
    rate, samples = read_wav(out)
    assert rate == 16000 and len(samples) == 160000
    assert dominant_hz(samples, rate) == pytest.approx(440, abs=2)
    assert leftovers(tmp_path) == []


def test_audio_matches_moviepy_videofileclip_exactly(clips: dict[str, Path], tmp_path: Path) -> None:
    """We build AudioFileClip directly; PROTOCOL's VideoFileClip(...).audio must give the same bytes."""
    from moviepy import VideoFileClip

    ours = tmp_path / "ours.wav"
    extract_audio(clips["short"], ours, min_seconds=0)
    reference = tmp_path / "reference.wav"
    clip = VideoFileClip(str(clips["short"]))
    clip.audio.write_audiofile(str(reference), fps=16000, logger=None)
    clip.close()
    assert ours.read_bytes() == reference.read_bytes()


def test_short_audio_is_padded_with_trailing_silence(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "short.wav"
    assert extract_audio(clips["short"], out) == "ok"
    rate, samples = read_wav(out)
    assert len(samples) == 10 * rate
    assert dominant_hz(samples[: 3 * rate], rate) == pytest.approx(440, abs=2)
    assert not samples[int(3.1 * rate):].any()


def test_no_audio_track_gives_silence_of_the_clip_length(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "silent.wav"
    assert extract_audio(clips["noaudio"], out) == "no_audio"
    rate, samples = read_wav(out)
    assert rate == 16000 and len(samples) == 160000 and not samples.any()
    longer = make_clip(tmp_path / "long.mp4", seconds=12, audio=False)
    assert extract_audio(longer, tmp_path / "long.wav") == "no_audio"
    assert len(read_wav(tmp_path / "long.wav")[1]) == 12 * 16000


@pytest.mark.parametrize("kind", ["zero", "corrupt", "streamless"])
def test_unreadable_clips_raise_and_leave_nothing(clips: dict[str, Path], tmp_path: Path, kind: str) -> None:
    with pytest.raises(MediaError, match=str(clips[kind].name)):
        extract_audio(clips[kind], tmp_path / "out.wav")
    with pytest.raises(MediaError, match=str(clips[kind].name)):
        extract_frames(clips[kind], tmp_path / "frames")
    assert list(tmp_path.iterdir()) == []


def test_frames_of_a_clip_without_video_raise(clips: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="audioonly.mp4: frame extraction failed"):
        extract_frames(clips["audioonly"], tmp_path / "frames")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", [5, 25, 60])
def test_frames_at_8_fps_whatever_the_source_rate(tmp_path: Path, fps: int) -> None:
    video = make_clip(tmp_path / f"{fps}.mp4", seconds=10, fps=fps, audio=False)
    n = extract_frames(video, tmp_path / "frames")
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert 80 <= n <= 82 and len(names) == n
    assert names[0] == "000001.jpg" and names[-1] == f"{n:06d}.jpg"


def test_portrait_frames_keep_their_size(tmp_path: Path) -> None:
    video = make_clip(tmp_path / "portrait.mp4", seconds=1, size=(1080, 1920), fps=5, audio=False)
    assert extract_frames(video, tmp_path / "frames") == 8
    with Image.open(tmp_path / "frames" / "000001.jpg") as img:
        assert img.size == (1080, 1920)


def test_paths_with_spaces_non_ascii_and_percent(tmp_path: Path) -> None:
    folder = tmp_path / "my clips ü 名前"
    folder.mkdir()
    video = make_clip(folder / "-clip: été 100%.mp4", seconds=1)
    assert probe(video).has_video
    frames = folder / "frames 100% ü"
    assert 8 <= extract_frames(video, frames) == len(list(frames.glob("*.jpg"))) <= 10
    assert extract_audio(video, folder / "son été.wav", min_seconds=0) == "ok"
    assert read_wav(folder / "son été.wav")[1].shape[0] == 16000
    assert leftovers(folder) == []


@pytest.fixture(params=["ffprobe", "ffmpeg alone"])
def probe_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the header read by ffprobe, then by ffmpeg alone (as with imageio-ffmpeg)."""
    import avvp.clips.ffmpeg

    if request.param == "ffprobe" and avvp.clips.ffmpeg.ffprobe_exe() is None:
        pytest.skip("no ffprobe beside this ffmpeg")
    if request.param == "ffmpeg alone":
        monkeypatch.setattr(avvp.clips.ffmpeg, "ffprobe_exe", lambda: None)
    return request.param


@pytest.mark.parametrize("audio", [True, False])
def test_a_newline_in_the_file_name_does_not_fool_probe(tmp_path: Path, probe_path: str, audio: bool) -> None:
    video = make_clip(tmp_path / "two\nlines.mp4", seconds=1, audio=audio)
    for decode in (True, False):
        info = probe(video, decode=decode)
        assert (info.has_video, info.has_audio, info.width, info.height) == (True, audio, 64, 48)
        assert info.duration == pytest.approx(1.0, abs=0.05) and info.path == str(video)
    assert probe(video).video_frames == 25


@pytest.mark.parametrize("name", ["x Stream #0:1(und): Audio: aac, 44100 Hz.mp4",
                                  "x\n  Stream #0:1(und): Audio: aac, 44100 Hz.mp4"])
def test_a_file_name_that_looks_like_a_stream_line_does_not_fool_probe(tmp_path: Path, probe_path: str,
                                                                       name: str) -> None:
    video = make_clip(tmp_path / "silent.mp4", seconds=1, audio=False).rename(tmp_path / name)
    for decode in (True, False):
        info = probe(video, decode=decode)
        assert (info.has_video, info.has_audio, info.sample_rate) == (True, False, None)


def test_errors_name_the_real_file_whatever_its_name(clips: dict[str, Path], tmp_path: Path, probe_path: str) -> None:
    for kind, message in [("corrupt", "not a readable media file"), ("streamless", "no video or audio stream")]:
        odd = tmp_path / f"{kind}\n  Stream #0:0: Video: h264, 64x48, 25 fps.mp4"
        os.link(clips[kind], odd)
        with pytest.raises(MediaError, match=message) as err:
            probe(odd)
        assert str(err.value).startswith(f"{odd}: ") and "/dev/fd/" not in str(err.value)


def test_ffprobe_and_ffmpeg_alone_give_the_same_info(clips: dict[str, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import avvp.clips.ffmpeg

    if avvp.clips.ffmpeg.ffprobe_exe() is None:
        pytest.skip("no ffprobe beside this ffmpeg")
    videos = [clips[kind] for kind in ("full", "noaudio", "audioonly", "truncated")]
    videos += [make_clip(tmp_path / "ntsc.mp4", seconds=1, fps=30000 / 1001, sample_rate=48000),
               make_clip(tmp_path / "portrait.mp4", seconds=1.37, size=(48, 64), fps=8, audio=False)]
    with_ffprobe = [probe(video, decode=decode) for video in videos for decode in (True, False)]
    monkeypatch.setattr(avvp.clips.ffmpeg, "ffprobe_exe", lambda: None)
    assert [probe(video, decode=decode) for video in videos for decode in (True, False)] == with_ffprobe
    assert with_ffprobe[8].fps == 29.97 and with_ffprobe[8].sample_rate == 48000


def test_prepare_clips_takes_a_clip_whose_name_holds_a_newline(tmp_path: Path) -> None:
    videos, audio, frames = tmp_path / "videos", tmp_path / "audio", tmp_path / "frames"
    videos.mkdir()
    name = "new\nline"  # not an LLP name: 10 s are expected
    make_clip(videos / f"{name}.mp4", seconds=10)
    [record] = prepare_clips([_record(name)], videos, audio, frames)
    assert (record.status, record.reason) == ("ok", "")
    assert (audio / f"{name}.wav").is_file() and 80 <= len(list((frames / name).glob("*.jpg"))) <= 82


def test_frames_replace_an_old_folder_whole(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "frames"
    out.mkdir()
    (out / "999999.jpg").write_bytes(b"stale")
    n = extract_frames(clips["short"], out)
    assert 24 <= n <= 26 and sorted(p.name for p in out.iterdir())[-1] == f"{n:06d}.jpg"
    assert not (out / "999999.jpg").exists() and leftovers(tmp_path) == []


def _record(filename: str, status: str = "ok") -> ClipRecord:
    return ClipRecord(filename, filename[:11], status, "" if status == "ok" else "given")


def test_prepare_clips_records_every_outcome(clips: dict[str, Path], tmp_path: Path) -> None:
    videos, audio, frames = tmp_path / "videos", tmp_path / "audio", tmp_path / "frames"
    videos.mkdir()
    kinds = ["full", "noaudio", "short", "audioonly", "truncated", "zero", "corrupt"]
    names = {kind: f"{kind[:3]}{'x' * 8}_0_10" for kind in kinds}
    for kind in kinds:
        os.link(clips[kind], videos / f"{names[kind]}.mp4")
    records = [_record(names[k]) for k in kinds]
    records += [_record("missingclip_0_10"), _record("gonegonegon_0_10", "unavailable")]

    out = {r.filename: r for r in prepare_clips(records, videos, audio, frames)}

    assert [r.filename for r in out.values()] == [r.filename for r in records]
    assert out[names["full"]].status == "ok"
    assert out[names["noaudio"]].status == "no_audio" and "silence" in out[names["noaudio"]].reason
    expected_reasons = {
        "short": r"too short: 3\.0\d s decode, expected 10 s",  # the last digit depends on the ffmpeg build
        "audioonly": "no video stream",
        "truncated": "truncated:",
        "zero": "empty file",
        "corrupt": "not a readable media file",
    }
    for kind, reason in expected_reasons.items():
        assert out[names[kind]].status == "unavailable" and re.search(reason, out[names[kind]].reason), kind
    assert "no such file" in out["missingclip_0_10"].reason
    assert out["gonegonegon_0_10"] == records[-1]
    usable = {names["full"], names["noaudio"]}
    assert {p.stem for p in audio.iterdir()} == usable
    assert {p.name for p in frames.iterdir()} == usable
    assert 80 <= len(list((frames / names["full"]).glob("*.jpg"))) <= 82
    assert leftovers(tmp_path) == []


def test_prepare_clips_skips_done_clips_and_redoes_partial_ones(clips: dict[str, Path], tmp_path: Path) -> None:
    videos, audio, frames = tmp_path / "videos", tmp_path / "audio", tmp_path / "frames"
    videos.mkdir()
    os.link(clips["noaudio"], videos / f"{ID}_0_10.mp4")
    records = [_record(f"{ID}_0_10")]
    first = prepare_clips(records, videos, audio, frames)
    wav = audio / f"{ID}_0_10.wav"
    stamp = wav.stat().st_mtime_ns
    assert prepare_clips(records, videos, audio, frames) == first  # no_audio is seen again
    assert wav.stat().st_mtime_ns == stamp
    wav.unlink()  # a half-done clip (frames but no WAV) is done again
    assert prepare_clips(records, videos, audio, frames) == first and wav.is_file()


def test_cli_audio_frames_and_media(clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["audio", str(clips["noaudio"]), str(tmp_path / "a.wav")]) == 0
    assert capsys.readouterr().out.startswith("no_audio")
    assert main(["frames", str(clips["short"]), str(tmp_path / "f")]) == 0
    n = len(list((tmp_path / "f").glob("*.jpg")))
    assert n >= 24 and capsys.readouterr().out.startswith(f"{n} frames")
    assert main(["frames", str(clips["corrupt"]), str(tmp_path / "g")]) == 1
    assert "corrupt.mp4" in capsys.readouterr().err

    from avvp.cli import media as media_cli
    from avvp.clips.records import write_records

    parser = argparse.ArgumentParser()
    media_cli.add_arguments(parser)
    videos = tmp_path / "videos"
    videos.mkdir()
    os.link(clips["full"], videos / f"{ID}_0_10.mp4")
    write_records([_record(f"{ID}_0_10"), _record("zzzzzzzzzzz_0_10")], tmp_path / "in.tsv")
    args = parser.parse_args(["--records", str(tmp_path / "in.tsv"), "--videos-dir", str(videos),
                              "--audio-dir", str(tmp_path / "A"), "--frames-dir", str(tmp_path / "F"),
                              "--out-records", str(tmp_path / "out.tsv")])
    media_cli.run(args)
    assert [r.status for r in read_records(tmp_path / "out.tsv")] == ["ok", "unavailable"]


@pytest.mark.parametrize("version, warned", [("5.1.6-0+deb12u1", False), ("5.1.2", False), ("9.0", True),
                                             ("7.1-static", True), ("N-112233-gabcdef", True)])
def test_an_ffmpeg_outside_the_5_line_is_warned_about(monkeypatch: pytest.MonkeyPatch, version: str,
                                                      warned: bool) -> None:
    import avvp.clips.ffmpeg

    monkeypatch.setattr(avvp.clips.ffmpeg, "ffmpeg_version", lambda exe=None: version)
    warning = avvp.clips.ffmpeg.fidelity_warning()
    assert (warning is not None) == warned
    if warned:
        assert version in warning and "released LLP frames" in warning and "make setup" in warning


def test_a_shard_records_the_ffmpeg_of_its_frames_and_works_when_empty(tmp_path: Path) -> None:
    from avvp.clips.ffmpeg import ffmpeg_record
    from avvp.clips.media import prepare_shard
    from avvp.clips.records import ClipRecord, write_records

    records = tmp_path / "download.tsv"
    write_records([ClipRecord("aaaaaaaaaaa_0_10", "aaaaaaaaaaa", "unavailable", "gone")], records)
    out = {name: tmp_path / name for name in ("audio", "frames", "media.tsv", "audio.txt", "frames.txt", "video.txt")}
    lists = {medium: out[f"{medium}.txt"] for medium in ("audio", "frames", "video")}
    prepare_shard(records, tmp_path / "videos", out["audio"], out["frames"], out["media.tsv"], lists)
    assert json.loads((out["frames"] / "ffmpeg.json").read_text()) == ffmpeg_record()
    assert list(out["audio"].iterdir()) == [] and out["audio.txt"].read_text() == ""
    assert out["video.txt"].read_text() == ""
