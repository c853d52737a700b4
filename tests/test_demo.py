"""The demo data set: deterministic, LLP-parsable, real H.264/AAC clips whose content is the answer."""
from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from avvp.clips import demo
from avvp.evaluation.annotations import ground_truth, read_classes, read_dense, read_weak
from avvp.cli import main
from avvp.clips.ffmpeg import ffmpeg_exe, input_arg, probe
from avvp.base.protocol import STREAMS

N_VIDEOS = 10  # two clips per split: enough for every class in every split
FILES = ("classes.txt", "train.csv", "val.csv", "test.csv", "eval_audio.csv", "eval_visual.csv")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--n-videos", str(N_VIDEOS), "--seed", "3"]) == 0
    return out


def decode_video(path: Path) -> np.ndarray:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", input_arg(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, demo.HEIGHT, demo.WIDTH, 3)


def decode_audio(path: Path) -> np.ndarray:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", input_arg(path), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32).reshape(-1, 2)


def test_same_seed_same_data_set(demo_dir: Path, tmp_path: Path) -> None:
    """Annotations byte for byte, and clips that decode to the same frames and samples."""
    clips = demo.plan_clips(N_VIDEOS, seed=3)
    demo.write_annotations(clips, tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (demo_dir / name).read_bytes(), name
    assert sorted(p.stem for p in (demo_dir / "videos").iterdir()) == sorted(c.filename for c in clips)
    for clip in clips[:2]:
        first, second = demo_dir / "videos" / f"{clip.filename}.mp4", tmp_path / f"{clip.filename}.mp4"
        demo.write_clip(clip, second)
        assert np.array_equal(decode_video(first), decode_video(second))
        assert np.array_equal(decode_audio(first), decode_audio(second))
    assert not [p for p in tmp_path.rglob(".*")], "temporary files left behind"


def test_regenerating_leaves_identical_files_untouched(demo_dir: Path) -> None:
    """Same bytes, same file: a rerun of the demo does not make later steps look out of date."""
    clip = demo.plan_clips(N_VIDEOS, seed=3)[0]
    paths = [demo_dir / "videos" / f"{clip.filename}.mp4"] + [demo_dir / name for name in FILES]
    before = [p.stat().st_mtime_ns for p in paths]
    demo.write_clip(clip, paths[0])
    demo.write_annotations(demo.plan_clips(N_VIDEOS, seed=3), demo_dir)
    assert [p.stat().st_mtime_ns for p in paths] == before
    assert not [p for p in demo_dir.rglob(".*")], "temporary files left behind"


def test_plan_is_seeded_and_grows_by_appending() -> None:
    assert demo.plan_clips(12, seed=5) == demo.plan_clips(12, seed=5)
    assert demo.plan_clips(12, seed=5)[:7] == demo.plan_clips(7, seed=5)
    assert demo.plan_clips(12, seed=5) != demo.plan_clips(12, seed=6)
    with pytest.raises(ValueError, match="at least 5"):
        demo.plan_clips(4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_are_long_whole_seconds_and_splits_cover_every_class_and_modality(seed: int) -> None:
    clips = demo.plan_clips(40, seed)
    assert len({c.filename for c in clips}) == 40
    covered = Counter()
    for clip in clips:
        assert 1 <= len(clip.events) <= 3
        assert len({e.class_index for e in clip.events}) == len(clip.events), clip
        for e in clip.events:
            assert isinstance(e.onset, int) and isinstance(e.offset, int)
            assert 0 <= e.onset < e.offset <= demo.DURATION_S
            assert e.offset - e.onset >= demo.MIN_EVENT_S
            covered[clip.split, e.class_index, e.modality] += 1
    every = {(c, m) for c in range(len(demo.CLASSES)) for m in STREAMS}
    for split in demo.SPLITS:
        assert {(c, m) for s, c, m in covered if s == split} == every, split
    modality_counts = Counter(m for (_, _, m), n in covered.items() for _ in range(n))
    assert modality_counts["audio_visual"] >= modality_counts["audio"] + modality_counts["visual"]
    for split in demo.SPLITS:  # two clips per split already hold every class
        first = [c for c in clips[:10] if c.split == split]
        assert {e.class_index for c in first for e in c.events} == set(range(len(demo.CLASSES)))


def test_files_parse_and_dense_rows_agree_with_weak_labels(demo_dir: Path) -> None:
    vocab = read_classes(demo_dir / "classes.txt")
    assert vocab.classes == demo.class_names()
    audio = read_dense(demo_dir / "eval_audio.csv", vocab)
    visual = read_dense(demo_dir / "eval_visual.csv", vocab)
    all_files = set()
    for split in demo.SPLITS:
        weak = read_weak(demo_dir / f"{split}.csv", vocab)
        assert weak.labels.any(axis=0).all(), f"{split} lacks a class"
        all_files |= set(weak.filenames)
        gt = ground_truth(weak, audio, visual)
        dense_classes = gt.audio.any(axis=2) | gt.visual.any(axis=2)
        assert np.array_equal(dense_classes, weak.labels.astype(bool))
        assert gt.report.off_label_rows == {"audio": 0, "visual": 0}
        assert gt.report.zero_length_rows == {"audio": 0, "visual": 0}
    assert all_files == {p.stem for p in (demo_dir / "videos").glob("*.mp4")}
    for events in (audio, visual):
        assert set(events.filenames) <= all_files
        assert np.array_equal(events.onset, np.round(events.onset))
        assert np.array_equal(events.offset, np.round(events.offset))
        assert ((0 <= events.onset) & (events.onset < events.offset) & (events.offset <= 10)).all()


def test_clips_are_h264_aac_at_the_promised_rates(demo_dir: Path) -> None:
    video = next((demo_dir / "videos").glob("*.mp4"))
    info = probe(video)
    assert (info.width, info.height, info.fps, info.sample_rate) == (320, 240, 25.0, 44100)
    assert info.duration == pytest.approx(10.0, abs=0.05)
    assert info.video_frames == 250
    header = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", input_arg(video)],
                            capture_output=True, text=True).stderr
    assert re.search(r"Video: h264\b", header), header
    assert re.search(r"Audio: aac\b.*44100 Hz, stereo", header), header


BAND_MARGIN_HZ = {"tone": 50.0, "beeps": 50.0, "chirp": 0.0, "hiss": 0.0}  # around audio_hz


def _band_shares(second: np.ndarray) -> np.ndarray:
    """Share of the second's spectral energy inside each class's audio band."""
    power = np.abs(np.fft.rfft(second.mean(axis=1))) ** 2
    freqs = np.fft.rfftfreq(len(second), 1 / demo.SAMPLE_RATE)
    shares = []
    for cls in demo.CLASSES:
        low, high = cls.audio_hz
        margin = BAND_MARGIN_HZ[cls.audio]
        shares.append(power[(freqs >= low - margin) & (freqs <= high + margin)].sum() / power.sum())
    return np.array(shares)


def test_decoded_content_is_the_annotated_answer(demo_dir: Path) -> None:
    """Every second of every clip: the mean colour of each band names the class shown there (or the
    background), and the sound's energy sits in the bands of the audible classes (or is the faint
    noise floor)."""
    palette = np.array([demo.BACKGROUND_RGB] + [
        (np.array(c.dark_rgb) + np.array(c.bright_rgb)) / 2 for c in demo.CLASSES])
    for clip in demo.plan_clips(N_VIDEOS, seed=3):
        path = demo_dir / "videos" / f"{clip.filename}.mp4"
        frames, sound = decode_video(path), decode_audio(path)
        assert len(sound) == pytest.approx(10 * demo.SAMPLE_RATE, abs=2048)
        for s in range(demo.DURATION_S):
            where = f"{clip.filename} second {s}"
            shown = frames[s * demo.FPS:(s + 1) * demo.FPS]
            layout = demo.visual_layout(clip, s) or [(None, 0, demo.HEIGHT)]
            assert layout[0][1] == 0 and layout[-1][2] == demo.HEIGHT
            for event, top, bottom in layout:
                inner = shown[:, top + 2:bottom - 2].reshape(demo.FPS, -1, 3).mean(axis=1)
                nearest = np.linalg.norm(inner[:, None, :] - palette[None], axis=2).argmin(axis=1)
                expected = 0 if event is None else event.class_index + 1
                assert (nearest == expected).all(), f"{where}, rows {top}-{bottom}: colours {nearest}"
            audible = [e.class_index for e in clip.events if e.audible and e.onset <= s < e.offset]
            second = sound[s * demo.SAMPLE_RATE:(s + 1) * demo.SAMPLE_RATE]
            if not audible:
                assert np.sqrt(np.mean(second**2)) < 0.01, f"{where}: not quiet"
                continue
            shares = _band_shares(second)
            assert shares[audible].sum() > 0.9, f"{where}: {shares.round(3)} for {audible}"
            assert (shares[audible] > 0.5 / len(audible)).all(), f"{where}: {shares.round(3)} for {audible}"


def test_cli_rejects_too_few_videos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path / "d"), "--n-videos", "2"]) == 1
    assert "at least 5" in capsys.readouterr().err


def test_the_dense_pretraining_set_holds_the_audio_visual_events_of_other_clips(tmp_path) -> None:
    """`avvp demo --dense`: the train and val clips of the plan (no test clip), their events both heard
    and seen in UnAV-100's form, which the pretraining's reader turns back into the clips' seconds."""
    from avvp.cli import main
    from avvp.clips.demo import class_names, plan_clips
    from avvp.evaluation.annotations import video_id
    from avvp.methods.uwav_labels import read_unav_labels, unav_class_names

    assert main(["demo", "--dense", "--out", str(tmp_path), "--n-videos", "10", "--seed", "1"]) == 0
    clips = [c for c in plan_clips(10, 1) if c.split != "test"]
    with_av = [c for c in clips if any(e.audible and e.visible for e in c.events)]
    assert sorted(p.stem for p in (tmp_path / "videos").glob("*.mp4")) == sorted(c.filename for c in with_av)
    path = tmp_path / "annotations.json"
    assert unav_class_names(path) == list(class_names())
    labels = {**read_unav_labels(path, "train", 4), **read_unav_labels(path, "validation", 4)}
    assert set(labels) == {video_id(c.filename) for c in with_av} and len(with_av) < len(clips)
    for clip in with_av:
        expected = np.zeros((10, 4), bool)
        for event in clip.events:
            if event.audible and event.visible:
                expected[event.onset:event.offset, event.class_index] = True
        np.testing.assert_array_equal(labels[video_id(clip.filename)], expected)
