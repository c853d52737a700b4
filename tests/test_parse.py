"""`avvp parse`: windowing, event extraction and outputs.

Clips are made by the real ffmpeg with a known plan: a class is *seen* when the picture turns its
colour and *heard* when its tone plays. A stand-in model reads each window's real frames and audio
and answers from what is there, so the windowing of real media and the event logic are checked
without the (slow) networks; the real model then runs once over the same clips for the shape of
its outputs.
"""
from __future__ import annotations

import csv
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avvp.evaluation.annotations import Vocabulary, read_dense
from avvp.extractors.parts.frames import pick_frame_indices
from avvp.extractors.vggish import clip_examples, read_wav
from avvp.clips.ffmpeg import MediaError, ffmpeg_exe, probe
from avvp.clips.media import extract_audio, extract_frames
from avvp.parsing.parse import VideosFailed, ground_truth_events, parse_videos, parse_windows
from avvp.parsing.windows import leading_copies, prepare_windows, segment_count, window_count, window_frame_indices
from avvp.base.protocol import STREAMS

CLASSES = ("Red", "Blue")
LLP_CLASSES = Path(__file__).resolve().parents[1] / "data" / "llp" / "classes.txt"
COLOUR = {"Red": "red", "Blue": "blue"}
TONE_HZ = {"Red": 440, "Blue": 1500}


@dataclass(frozen=True)
class Plan:
    """A test clip: LLP-style name, length, size, rate, and per class the seen / heard spans."""

    name: str
    seconds: float
    size: tuple[int, int]
    fps: int
    seen: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    heard: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def expected(self, duration: float) -> set[tuple[str, str, float, float]]:
        """(class, modality, onset, offset) the parse must give; spans ending at the end end at `duration`."""
        out = set()
        for modality, spans in (("audio", self.heard), ("visual", self.seen)):
            out |= {(c, modality, a, min(b, duration)) for c, s in spans.items() for a, b in s}
        for c, heard in self.heard.items():
            for a0, a1 in heard:
                for v0, v1 in self.seen.get(c, []):
                    if min(a1, v1) > max(a0, v0):
                        out.add((c, "audio_visual", max(a0, v0), min(a1, v1, duration)))
        return out


PLANS = (
    Plan("tenseconds1_0_10", 10, (32, 24), 25, seen={"Red": [(2, 6)]}, heard={"Red": [(4, 9)]}),
    # Crosses both window edges, and ends with the video in both modalities (padding repeats red).
    Plan("twentyfive1_0_25", 25, (32, 24), 25, seen={"Red": [(8, 13), (22, 25)], "Blue": [(0, 3)]},
         heard={"Red": [(19, 25)], "Blue": [(14, 17)]}),
    Plan("fourseconds_0_4", 4, (32, 24), 25, seen={"Red": [(1, 4)]}, heard={"Blue": [(0, 2)]}),
    # Portrait, 60 fps, a fractional length: the last segment is half real.
    Plan("portrait60f_0_6.5", 6.5, (24, 32), 60, seen={"Blue": [(0, 3)]}, heard={"Red": [(5, 6.5)]}),
)


def _during(spans: list[tuple[float, float]]) -> str:
    return "+".join(f"gte(t,{a})*lt(t,{b})" for a, b in spans)


def make_plan_clip(plan: Plan, folder: Path) -> Path:
    """An H.264/AAC mp4 of the plan: black picture, class colours overlaid, tones mixed."""
    w, h = plan.size
    src = f"s={w}x{h}:r={plan.fps}:d={plan.seconds}"
    chains, last = [f"color=c=black:{src}[v0]"], "v0"
    for i, (cls, spans) in enumerate(plan.seen.items(), start=1):
        chains.append(f"color=c={COLOUR[cls]}:{src}[c{i}];[{last}][c{i}]overlay=enable='{_during(spans)}'[v{i}]")
        last = f"v{i}"
    chains.append(f"[{last}]null")
    tones = "+".join(f"0.4*sin(2*PI*{TONE_HZ[c]}*t)*({_during(s)})" for c, s in plan.heard.items()) or "0"
    path = folder / f"{plan.name}.mp4"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", ";".join(chains),
                    "-f", "lavfi", "-i", f"aevalsrc='{tones}':s=44100:d={plan.seconds}", "-t", str(plan.seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(plan.fps),
                    "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", str(path)], check=True)
    return path


def write_dense(plans: tuple[Plan, ...], folder: Path) -> tuple[Path, Path]:
    """The plans' annotations as LLP dense files (audio, visual)."""
    paths = []
    for modality, attr in (("audio", "heard"), ("visual", "seen")):
        lines = ["filename\tonset\toffset\tevent_labels"]
        lines += [f"{p.name}\t{a:g}\t{b:g}\t{c}" for p in plans for c, s in getattr(p, attr).items() for a, b in s]
        paths.append(folder / f"eval_{modality}.csv")
        paths[-1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths[0], paths[1]


class ContentModel:
    """Stands in for feature extractors + HAN: per second of each window, the fraction of frames
    showing a class's colour and of 0.1 s audio blocks carrying its tone, with >= 2 of them counting
    as present (probability 1); the global probability is the window's maximum."""

    classes = CLASSES

    def __call__(self, v, work_dir):
        frame_prob = np.zeros((v.n_windows, 10, 2, len(CLASSES)), np.float32)
        for w, (wav, folder) in enumerate(zip(v.audio, v.frames)):
            files = sorted(folder.glob("*.jpg"))
            assert len(files) == 80
            rgb = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float64).mean((0, 1)) for p in files])
            samples, rate = read_wav(wav)
            assert rate == 16000 and len(samples) == 160000
            blocks = samples.mean(axis=1).reshape(10, 10, 1600)  # second, 0.1 s block, samples
            spectrum = np.abs(np.fft.rfft(blocks, axis=-1)) / 800  # 10 Hz bins, amplitude units
            for c, cls in enumerate(CLASSES):
                hue = {"Red": rgb[:, 0] > 150, "Blue": rgb[:, 2] > 150}[cls] & (rgb.min(axis=1) < 80)
                frame_prob[w, :, 1, c] = hue.reshape(10, 8).sum(1) >= 2
                tone = spectrum[..., TONE_HZ[cls] // 10] > 0.1
                frame_prob[w, :, 0, c] = tone.sum(1) >= 2
        return frame_prob.max(axis=(1, 2)), frame_prob, {}

    def describe(self):
        return {"model": "content reader (test)"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {p.name: make_plan_clip(p, folder) for p in PLANS}


@pytest.fixture(scope="module")
def truth(clips) -> tuple[Path, Path]:
    return write_dense(PLANS, next(iter(clips.values())).parent)


# ----------------------------------------------------------------------------- pure windowing


@pytest.mark.parametrize("duration, segments, windows", [
    (10.0, 10, 1), (10.02, 10, 1), (10.2, 11, 2), (4.0, 4, 1), (25.0, 25, 3), (6.5, 7, 1), (0.05, 1, 1), (30.0, 30, 3),
])
def test_segment_and_window_counts(duration, segments, windows):
    assert segment_count(duration) == segments
    assert window_count(duration) == windows


def test_window_frames_keep_time_and_pad_with_the_last_frame():
    assert leading_copies(82, 10.0) == 2 and leading_copies(80, 10.02) == 0 and leading_copies(79, 10.0) == 0
    picks = window_frame_indices(202, 3, lead=2)  # 25 s at 8 fps, two leading copies of frame 0
    assert picks.shape == (3, 80)
    # A full first window keeps the copies and picks as LLP does; later windows hold their own seconds.
    assert (picks[0] == pick_frame_indices(82)).all() and (picks[1] == np.arange(82, 162)).all()
    assert (picks[2, :40] == np.arange(162, 202)).all() and (picks[2, 40:] == 201).all()
    # One window: exactly the LLP rule over all frames (what `avvp extract` picks).
    assert (window_frame_indices(82, 1, lead=2)[0] == pick_frame_indices(82)).all()
    # A partial window drops the copies, so frame 2 (time 0) is its first.
    four = window_frame_indices(34, 1, lead=2)[0]
    assert (four[:32] == np.arange(2, 34)).all() and (four[32:] == 33).all()
    # A picture track that stops early: windows without frames show the last one.
    short = window_frame_indices(50, 2)
    assert (short[0, :50] == np.arange(50)).all() and (short[0, 50:] == 49).all() and (short[1] == 49).all()


def reference_events(decisions: dict[str, np.ndarray], n_seconds: int, duration: float):
    """Runs found by a plain scan over seconds, offsets clipped to `duration`."""
    out = set()
    for modality, mask in decisions.items():
        for c in range(mask.shape[0]):
            t = 0
            while t < n_seconds:
                if mask[c, t]:
                    start = t
                    while t < n_seconds and mask[c, t]:
                        t += 1
                    out.add((CLASSES[c], modality, float(start), min(float(t), duration)))
                t += 1
    return out


def test_parse_windows_matches_a_known_answer_and_ignores_padding():
    rng = np.random.default_rng(7)
    duration, n_windows = 24.6, 3  # 25 real seconds, 5 of padding
    answer = rng.random((n_windows * 10, 2, 2)) < 0.5  # (second, modality, class)
    answer[25:] = True  # the model "sees" everything in the padding
    answer[7:14, 1, 0] = [False, True, True, True, True, True, False]  # 8-13 s, across the first window edge
    frame_prob = np.where(answer, 0.9, 0.1).astype(np.float32).reshape(n_windows, 10, 2, 2)
    global_prob = np.full((n_windows, 2), 0.8, np.float32)
    global_prob[1, 1] = 0.3  # class 1 absent from window 1: its frame decisions there must not count
    events = parse_windows(global_prob, frame_prob, duration, CLASSES)

    gate = np.repeat(global_prob >= 0.5, 10, axis=0)  # (second, class)
    audio, visual = answer[:, 0] & gate, answer[:, 1] & gate
    expected = reference_events({"audio": audio.T, "visual": visual.T, "audio_visual": (audio & visual).T},
                                25, duration)
    assert {(e.label, e.modality, e.onset, e.offset) for e in events} == expected
    assert ("Red", "visual", 8.0, 13.0) in expected
    assert max(e.offset for e in events) == pytest.approx(duration)
    keys = [(e.onset, CLASSES.index(e.label)) for e in events]
    assert keys == sorted(keys)
    for e in events:  # score: mean of p x g over the event's seconds
        c, m = CLASSES.index(e.label), STREAMS.index(e.modality)
        seconds = range(int(e.onset), int(np.ceil(e.offset)))
        flat = frame_prob.reshape(-1, 2, 2)
        p = [flat[t, :, c].min() if m == 2 else flat[t, m, c] for t in seconds]
        g = [global_prob[t // 10, c] for t in seconds]
        assert e.score == pytest.approx(np.mean(np.multiply(p, g)), rel=1e-6)


def test_parse_windows_checks_shapes():
    with pytest.raises(ValueError, match="needs global_prob"):
        parse_windows(np.zeros((1, 2)), np.zeros((1, 10, 2, 2)), 12.0, CLASSES)


def test_ground_truth_events_from_dense_files(tmp_path):
    audio, visual = write_dense(PLANS, tmp_path)
    vocab = Vocabulary(CLASSES)
    dense_a, dense_v = read_dense(audio, vocab), read_dense(visual, vocab)
    for plan in PLANS:
        got = ground_truth_events(plan.name, CLASSES, dense_a, dense_v)
        assert {(e.label, e.modality, e.onset, e.offset) for e in got} == plan.expected(plan.seconds)
    assert ground_truth_events("unknown0000_0_10", CLASSES, dense_a, dense_v) is None


# ----------------------------------------------------------------------------- real media


def test_single_window_inputs_are_those_of_avvp_extract(clips, tmp_path):
    video = clips["tenseconds1_0_10"]
    windows = prepare_windows(video, tmp_path / "work", "k")
    assert windows.n_windows == 1
    extract_audio(video, tmp_path / "whole.wav")
    assert np.array_equal(clip_examples(windows.audio[0]), clip_examples(tmp_path / "whole.wav"))
    n = extract_frames(video, tmp_path / "whole")
    whole = sorted((tmp_path / "whole").glob("*.jpg"))
    picked = sorted(windows.frames[0].glob("*.jpg"))
    assert [p.read_bytes() for p in picked] == [whole[i].read_bytes() for i in pick_frame_indices(n)]


def test_events_land_on_the_right_seconds(clips, truth, tmp_path):
    vocab = Vocabulary(CLASSES)
    parsed = parse_videos(list(clips.values()), ContentModel(), tmp_path, audio_truth=read_dense(truth[0], vocab),
                          visual_truth=read_dense(truth[1], vocab))
    assert not list(tmp_path.glob(".parse-work-*"))
    for plan, result in zip(PLANS, parsed):
        duration = probe(clips[plan.name]).duration
        assert result.duration == duration and duration == pytest.approx(plan.seconds, abs=0.05)
        assert result.n_windows == window_count(duration)
        got = sorted((e.label, e.modality, e.onset, e.offset) for e in result.events)
        want = sorted(plan.expected(duration))
        assert [g[:3] for g in got] == [w[:3] for w in want], plan.name
        assert [g[3] for g in got] == pytest.approx([w[3] for w in want], abs=0.05), plan.name
        assert all(e.offset <= duration for e in result.events)

        body = json.loads(result.json_path.read_text())
        assert body["n_windows"] == result.n_windows and len(body["frame_prob"]) == segment_count(duration)
        assert {(e["class"], e["modality"], e["onset"], e["offset"]) for e in body["events"]} == \
               {(e.label, e.modality, e.onset, e.offset) for e in result.events}
        assert {(e["class"], e["modality"], e["onset"], e["offset"]) for e in body["ground_truth"]} == \
               plan.expected(plan.seconds)
        with result.csv_path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert [(r["class"], r["modality"], float(r["onset"])) for r in rows] == \
               [(e.label, e.modality, e.onset) for e in result.events]
        with Image.open(result.figures[0]) as png:
            assert png.format == "PNG" and png.width >= 600 and 200 <= png.height <= 2000

    # The padding was really there and really looked like the video's end (red frames repeated,
    # silence), so the clipping above removed something: the 4 s clip's window says red until 10 s.
    four = parsed[[p.name for p in PLANS].index("fourseconds_0_4")]
    assert four.frame_prob[0, 4:, 1, 0].min() == 1 and four.frame_prob[0, 4:, 0].max() == 0


def test_bad_inputs_are_named(clips, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        parse_videos([tmp_path / "missing.mp4"], ContentModel(), tmp_path / "out")
    video = next(iter(clips.values()))
    copy = tmp_path / "other" / video.name
    copy.parent.mkdir()
    copy.write_bytes(video.read_bytes())
    with pytest.raises(ValueError, match="both write"):
        parse_videos([video, copy], ContentModel(), tmp_path / "out")
    # Media that cannot be parsed fail their video (named, with the error), not the batch.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    audio_only = tmp_path / "audio_only.m4a"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", str(audio_only)],
                    check=True)
    with pytest.raises(VideosFailed, match=f"2 of 2 videos failed: {broken}, {audio_only}") as failed:
        parse_videos([broken, audio_only], ContentModel(), tmp_path / "out")
    (_, bad), (_, silent) = failed.value.failures
    assert isinstance(bad, MediaError) and "broken.mp4" in str(bad)
    assert isinstance(silent, MediaError) and "no video stream" in str(silent)


def test_weight_choices():
    import dataclasses

    from avvp.cli.parse import weight_choices
    from avvp.extractors import feature_kind, feature_kinds, register, unregister

    assert weight_choices([]) == {}  # the checkpoint's own
    assert weight_choices(["vggish=random"]) == {"vggish": "random"}
    assert weight_choices(["pretrained", "vggish=my/vggish.pth"]) == {
        **{kind: "pretrained" for kind in feature_kinds()}, "vggish": "my/vggish.pth"}
    # Every registered kind gets a choice, not only the published three.
    register(dataclasses.replace(feature_kind("vggish"), name="test_audio", han_layer="fc_test_audio"))
    try:
        assert weight_choices(["random", "test_audio=my/t.pth"]) == {
            **{kind: "random" for kind in feature_kinds()}, "test_audio": "my/t.pth"}
    finally:
        unregister("test_audio")


# ----------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory) -> Path:
    import torch

    from avvp.model.checkpoint import save_checkpoint
    from avvp.model.han import HAN

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, HAN(len(CLASSES)), CLASSES)
    return path


# The real extractors cost ~10 s of CPU per window (ResNet-152 on 80 frames): the multi-window clip
# and the portrait 60 fps one (fractional length) cover the shapes; the others differ only in length.
REAL_MODEL_PLANS = tuple(p for p in PLANS if p.name in ("twentyfive1_0_25", "portrait60f_0_6.5"))


@pytest.mark.slow
def test_cli_with_the_real_model(clips, truth, random_checkpoint, tmp_path, capsys):
    from avvp.cli import main

    out = tmp_path / "parsed"
    videos = [str(clips[p.name]) for p in REAL_MODEL_PLANS]
    code = main(["parse", *videos, "--checkpoint", str(random_checkpoint), "--out", str(out), "--audio-csv",
                 str(truth[0]), "--visual-csv", str(truth[1]), "--no-progress", "--device", "cpu",
                 "--weights", "random", "--allow-weights-mismatch", "--format", "png,svg"])
    assert code == 0
    assert "RANDOM weights" in capsys.readouterr().err
    for plan in REAL_MODEL_PLANS:
        body = json.loads((out / f"{plan.name}.json").read_text())
        duration, n_windows = body["duration"], window_count(body["duration"])
        assert np.shape(body["global_prob"]) == (n_windows, len(CLASSES))
        assert np.shape(body["frame_prob"]) == (segment_count(duration), 2, len(CLASSES))
        assert 0 <= np.min(body["frame_prob"]) and np.max(body["frame_prob"]) <= 1
        assert "RANDOM" in body["warning"]
        assert {r["weights"] for r in body["model"]["feature_weights"].values()} == {"random"}
        assert body["model"]["weights_mismatch"] == sorted(body["model"]["feature_weights"])  # it records none
        for e in body["events"]:
            assert e["modality"] in STREAMS and 0 <= e["onset"] < e["offset"] <= duration
            assert 0.25 <= e["score"] <= 1  # both factors are at least their threshold 0.5
        assert body["ground_truth"] is not None
        assert (out / f"{plan.name}.csv").read_text().startswith("class,modality,onset,offset,score\n")
        with Image.open(out / f"{plan.name}.png") as png:
            assert png.format == "PNG" and png.width >= 600
        assert (out / f"{plan.name}.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.slow
def test_a_video_without_an_audio_track_says_so_and_has_no_audio_events(random_checkpoint, tmp_path, capsys):
    """Nothing is heard: stderr, the JSON and the figure say so, and neither JSON nor CSV holds an
    audio event (the model's output on the silence stays in frame_prob)."""
    from avvp.cli import main

    from media_helpers import make_clip

    video = make_clip(tmp_path / "silent_0_2.mp4", seconds=2.0, audio=False)
    out = tmp_path / "parsed"
    assert main(["parse", str(video), "--checkpoint", str(random_checkpoint), "--out", str(out), "--no-progress",
                 "--device", "cpu", "--weights", "random", "--allow-weights-mismatch", "--frame-threshold", "0",
                 "--global-threshold", "0"]) == 0
    assert "silent_0_2.mp4: WARNING: no audio track" in capsys.readouterr().err
    body = json.loads((out / "silent_0_2.json").read_text())
    assert body["has_audio"] is False and any(w.startswith("no audio track") for w in body["media_warnings"])
    assert "no audio track" in body["warning"]  # the figure's red title
    assert body["events"] and {e["modality"] for e in body["events"]} == {"visual"}  # thresholds 0: all else
    rows = (out / "silent_0_2.csv").read_text().splitlines()[1:]
    assert rows and all(row.split(",")[1] == "visual" for row in rows)


@pytest.mark.slow
def test_the_checkpoints_feature_set_decides_the_extractors(clips, tmp_path):
    """A HAN trained on VGGish and R(2+1)D-18 only: parsing runs those two extractors, not ResNet-152."""
    import torch

    from avvp.model.checkpoint import save_checkpoint
    from avvp.model.han import HAN
    from avvp.parsing.parse import parse_with_checkpoint

    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_checkpoint(path, HAN(len(CLASSES), features=("vggish", "r2plus1d_18")), CLASSES)
    parsed = parse_with_checkpoint([clips["tenseconds1_0_10"]], path, tmp_path / "out", dict.fromkeys(("vggish", "r2plus1d_18"),
                                   "random"), device="cpu", allow_mismatch=True)
    body = json.loads(parsed[0].json_path.read_text())
    assert set(body["model"]["feature_weights"]) == {"vggish", "r2plus1d_18"}
    assert np.shape(body["frame_prob"]) == (10, 2, len(CLASSES)) and "RANDOM" in body["warning"]


def test_cli_names_a_missing_video(random_checkpoint, tmp_path, capsys):
    from avvp.cli import main

    assert main(["parse", str(tmp_path / "nope.mp4"), "--checkpoint", str(random_checkpoint),
                 "--out", str(tmp_path)]) == 1
    assert "nope.mp4" in capsys.readouterr().err


# ----------------------------------------------------------------------------- weights, streaming, reuse

TRAINED_KINDS = ("vggish", "r2plus1d_18")  # the cheaper networks (ResNet-152 costs ~10 s of CPU a clip)
FEATURE_SEED = 3


@dataclass(frozen=True)
class Trained:
    checkpoint: Path
    features: Path  # released layout: <kind>/<id>.npy and weights.json, made by avvp's extraction


@pytest.fixture(scope="module")
def trained(clips, truth, tmp_path_factory) -> Trained:
    """HAN trained for one epoch on the clips' features, extracted with random weights (seed 3)
    through the real media steps, extraction, packing and training."""
    from avvp.evaluation.annotations import ground_truth, read_weak
    from avvp.features.extract import extract_features
    from avvp.features.store import pack_split, released_source
    from avvp.methods.settings import TrainSettings
    from avvp.methods.training import train
    from conftest import write_weak_csv

    root = tmp_path_factory.mktemp("trained")
    wavs, frames = [], []
    for name, video in clips.items():
        extract_audio(video, root / "media" / f"{name}.wav")
        extract_frames(video, root / "media" / name)
        wavs.append(root / "media" / f"{name}.wav")
        frames.append(root / "media" / name)
    features = root / "features"
    for kind, inputs in zip(TRAINED_KINDS, (wavs, frames)):
        extract_features(kind, inputs, features / kind, "random", "cpu", seed=FEATURE_SEED, progress=False)
    vocab = Vocabulary(CLASSES)
    labels = np.array([[c in p.seen or c in p.heard for c in CLASSES] for p in PLANS], np.float32)
    split = read_weak(write_weak_csv(root / "split.csv", [p.name for p in PLANS], labels, CLASSES), vocab)
    packed = pack_split(split, released_source(features, TRAINED_KINDS), root / "packed", TRAINED_KINDS)
    gt = ground_truth(split, read_dense(truth[0], vocab), read_dense(truth[1], vocab))
    train(packed, packed, gt, root / "run", TrainSettings(epochs=1), device="cpu", progress=False,
          features=TRAINED_KINDS)
    return Trained(root / "run" / "model.pt", features)


def parse_cli(*args: str | Path) -> int:
    from avvp.cli import main

    return main(["parse", *map(str, args), "--device", "cpu", "--no-progress"])


@pytest.mark.slow
def test_a_checkpoint_parses_with_the_weights_of_its_training_features(trained, clips, tmp_path, capsys):
    from avvp.model.checkpoint import read_checkpoint

    records = {k: json.loads((trained.features / k / "weights.json").read_text()) for k in TRAINED_KINDS}
    assert {r["weights"] for r in records.values()} == {"random"}
    assert read_checkpoint(trained.checkpoint)["feature_weights"] == records
    videos = [clips["tenseconds1_0_10"], clips["fourseconds_0_4"]]

    # Other weights than those of the training features are refused before anything runs.
    refused = tmp_path / "refused"
    for flags, wrong in ((["--weights", "pretrained"], "vggish: pretrained instead of random (seed 3)"),
                         (["--weights-seed", "4"], "r2plus1d_18: random (seed 4) instead of random (seed 3)")):
        assert parse_cli(*videos, "--checkpoint", trained.checkpoint, "--out", refused, *flags) == 1
        err = capsys.readouterr().err
        assert "was trained on features of other weights" in err and wrong in err, err
        assert "--allow-weights-mismatch" in err and not refused.exists()

    # No flag: the very weights of training (their checksums), and the run says so per video.
    out = tmp_path / "parsed"
    assert parse_cli(*videos, "--checkpoint", trained.checkpoint, "--out", out) == 0
    err = capsys.readouterr().err
    assert "[1/2]" in err and "[2/2]" in err and "features reused" not in err
    bodies = {v.stem: json.loads((out / f"{v.stem}.json").read_text()) for v in videos}
    for body in bodies.values():
        assert body["model"]["feature_weights"] == {k: {"weights": "random", "seed": FEATURE_SEED}
                                                    for k in TRAINED_KINDS}
        assert body["model"]["weights_mismatch"] == [] and "RANDOM" in body["warning"]
        assert {k: v["weights"]["sha256"] for k, v in body["features"].items()} == \
               {k: r["sha256"] for k, r in records.items()}

    # --features: the 10-second clip's features are reused (no decoding, no network: weights that
    # cannot load would fail); the 4-second clip is extracted, as its window is padded unlike a clip.
    again = tmp_path / "again"
    assert parse_cli(videos[0], "--checkpoint", trained.checkpoint, "--out", again, "--features", trained.features,
                     "--weights", str(tmp_path / "no-such-weights.pth"), "--allow-weights-mismatch") == 0
    assert "features reused (r2plus1d_18, vggish)" in capsys.readouterr().err
    reused = json.loads((again / "tenseconds1_0_10.json").read_text())
    assert {k: v["reused"] for k, v in reused["features"].items()} == \
           {k: str(trained.features / k / "tenseconds1.npy") for k in TRAINED_KINDS}
    first = bodies["tenseconds1_0_10"]
    np.testing.assert_allclose(reused["global_prob"], first["global_prob"], atol=1e-5)
    np.testing.assert_allclose(reused["frame_prob"], first["frame_prob"], atol=1e-5)
    assert [(e["class"], e["modality"], e["onset"]) for e in reused["events"]] == \
           [(e["class"], e["modality"], e["onset"]) for e in first["events"]]


def test_a_released_checkpoint_parses_with_llp_classes_and_reused_features(clips, tmp_path, capsys, monkeypatch):
    """HAN's MMIL_Net.pt format (no class list, no weights record) with features in the released
    layout (no weights.json): LLP's classes, pretrained weights by default, and since every network
    would fail to load (offline, empty cache), a parse that succeeds ran none."""
    import torch

    from avvp.model.checkpoint import llp_classes
    from avvp.extractors import PUBLISHED
    from avvp.features.store import pool_segments
    from avvp.model.han import HAN
    from conftest import write_random_features
    from released_formats import save_released

    monkeypatch.setenv("AVVP_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    torch.manual_seed(0)
    han = HAN(25).eval()
    official = save_released(tmp_path / "MMIL_Net.pt", han, "han")
    root = write_random_features(tmp_path / "released", ["tenseconds1"])
    video, out = clips["tenseconds1_0_10"], tmp_path / "parsed"
    assert parse_cli(video, "--checkpoint", official, "--features", root, "--out", out, "--format", "pdf,png") == 0
    assert "features reused (r2plus1d_18, res152, vggish)" in capsys.readouterr().err
    body = json.loads((out / "tenseconds1_0_10.json").read_text())
    assert body["classes"] == llp_classes() == (LLP_CLASSES.read_text().split("\n"))[:25]
    assert body["model"]["feature_weights"] == dict.fromkeys(PUBLISHED, {"weights": "pretrained", "seed": 0})
    assert body["warning"] is None and body["model"]["trained_feature_weights"] is None
    with torch.inference_mode():
        global_prob = han(*(torch.from_numpy(pool_segments(np.load(root / k / "tenseconds1.npy")))[None]
                            for k in PUBLISHED))[0]
    np.testing.assert_allclose(body["global_prob"], global_prob.numpy(), atol=1e-6)
    assert (out / "tenseconds1_0_10.pdf").read_bytes().startswith(b"%PDF")
    # The 4-second clip needs its networks: the offline error names the file to fetch.
    assert parse_cli(clips["fourseconds_0_4"], "--checkpoint", official, "--features", root, "--out", out) == 1
    assert "AVVP_OFFLINE forbids downloads" in capsys.readouterr().err
    # Random features for a checkpoint trained on the published ones: refused.
    assert parse_cli(video, "--checkpoint", official, "--weights", "random", "--out", tmp_path / "x") == 1
    assert "records no feature weights (a released checkpoint: pretrained)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_killed_parse_keeps_finished_videos_and_a_rerun_does_the_rest(trained, clips, tmp_path):
    """A real `avvp parse` process, SIGKILLed once its first video is written."""
    import os
    import signal
    import sys
    import time

    videos = [clips[n] for n in ("tenseconds1_0_10", "fourseconds_0_4", "portrait60f_0_6.5")]
    out = tmp_path / "parsed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", "import sys; from avvp.cli import main; sys.exit(main(sys.argv[1:]))", "parse", *map(str, videos), "--checkpoint", str(trained.checkpoint),
               "--out", str(out), "--device", "cpu", "--no-progress"]
    first = out / f"{videos[0].stem}.json"
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_log = (tmp_path / "killed.log").read_text()
    assert proc.returncode == -signal.SIGKILL, killed_log  # killed, not finished
    assert f"[1/3] {videos[0]}: " in killed_log and "[2/3]" not in killed_log, killed_log
    kept = json.loads(first.read_text())  # complete (written atomically, last)
    assert (out / f"{videos[0].stem}.png").is_file() and kept["events"] is not None
    assert not any((out / f"{v.stem}.json").exists() for v in videos[1:])
    written = first.stat().st_mtime_ns

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"[1/3] {videos[0]}: done before, skipped" in rerun.stderr
    assert f"[2/3] {videos[1]}: " in rerun.stderr and f"[3/3] {videos[2]}: " in rerun.stderr
    assert first.stat().st_mtime_ns == written
    assert all((out / f"{v.stem}.{ext}").is_file() for v in videos for ext in ("json", "csv", "png"))
    assert not list(out.glob(".parse-work-*"))  # the killed run's work folder was cleared


def test_timeline_legend_is_drawn_like_the_bars(tmp_path):
    """In the SVG, every colour a shape is filled with (bars and legend swatches) is a modality's:
    no swatch in a colour no bar uses; the labels stay text, lane names at LANE_FONT points."""
    import re

    from avvp.evaluation.events import Event
    from avvp.parsing.timeline import COLOURS, LANE_FONT, draw_timeline

    events = [Event("Red", m, 1.0, 4.0, 0.5) for m in STREAMS]
    truth = [Event("Red", m, 2.0, 5.0) for m in STREAMS]
    draw_timeline(tmp_path / "t.svg", 10.0, CLASSES, events, truth, title="t", format="svg")
    svg = (tmp_path / "t.svg").read_text()
    fills = {c.lower() for c in re.findall(r"<path [^>]*style=\"[^\"]*fill: (#[0-9a-fA-F]{6})", svg)}
    assert fills - {"#ffffff"} == {c.lower() for c in COLOURS.values()}, fills
    texts = re.findall(r"<text style=\"font-size: ([\d.]+)px[^>]*>([^<]*)<", svg)  # 1 px = 1 pt here
    labels = {t for _, t in texts}
    assert {"predicted (solid)", "ground truth (hatched)", "audio", "visual", "audio-visual", "Red"} <= labels
    assert {float(size) for size, t in texts if t == "audio-visual"} == {LANE_FONT} and LANE_FONT >= 9


@pytest.mark.parametrize("seconds", [4.0, 10.0, 25.0])
def test_timeline_png_draws_nothing_off_its_edges(tmp_path, seconds):
    """What a person sees: the legend and labels lie inside the image (a margin of white on every
    side), for a short clip, one window and several windows with their edge lines."""
    from PIL import Image

    from avvp.evaluation.events import Event
    from avvp.parsing.timeline import draw_timeline

    events = [Event("Red", m, 1.0, 4.0, 0.5) for m in STREAMS]
    truth = [Event("Red", m, 2.0, 3.0) for m in STREAMS]
    draw_timeline(tmp_path / "t.png", seconds, CLASSES, events, truth, title="clip.mp4", n_windows=int(seconds // 10) or 1,
                  warning="features from RANDOM weights (vggish, res152, r2plus1d_18): these events are not meaningful")
    pixels = np.asarray(Image.open(tmp_path / "t.png").convert("L"))
    for name, edge in (("left", pixels[:, :2]), ("right", pixels[:, -2:]), ("top", pixels[:2]),
                       ("bottom", pixels[-2:])):
        assert edge.min() > 240, f"something is drawn across the image's {name} edge"


# ----------------------------------------------------------------------------- batches: shared folders, odd names, failures


class HeldModel(ContentModel):
    """The content reader, held once its windows are decoded into its work folder, until released."""

    def __init__(self) -> None:
        import threading

        self.inside, self.release = threading.Event(), threading.Event()

    def __call__(self, v, work_dir):
        v.audio, v.frames  # decoded now, into the work folder
        self.inside.set()
        assert self.release.wait(300), "never released"
        return super().__call__(v, work_dir)


def test_two_parses_into_one_folder_keep_their_own_work_folders(clips, tmp_path):
    """A second run into the same --out while the first is decoding: both finish, both videos are written."""
    import threading

    out, held, errors = tmp_path / "parsed", HeldModel(), []
    first, second = clips["fourseconds_0_4"], clips["tenseconds1_0_10"]

    def run_first() -> None:
        try:
            parse_videos([first], held, out)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert held.inside.wait(300) and list(out.glob(".parse-work-*"))
        parse_videos([second], ContentModel(), out)
    finally:
        held.release.set()
        thread.join(300)
    assert not errors, errors
    assert all((out / f"{v.stem}.{ext}").is_file() for v in (first, second) for ext in ("json", "csv", "png"))
    assert not list(out.glob(".parse-work-*"))


def test_only_work_folders_of_gone_runs_are_cleared(clips, tmp_path):
    """Dead owner, or its PID now another process's: cleared. Live owner, or no owner yet (fresh): kept."""
    import os
    import sys
    import time

    from avvp.parsing.work import OWNER_FILE, owner_record

    out = tmp_path / "parsed"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    records = {"dead": owner_record(dead.pid), "live": owner_record(os.getpid()),
               "reused": {**owner_record(os.getpid()), "started": "1"}}
    for name, record in records.items():
        (out / f".parse-work-{name}").mkdir(parents=True)
        (out / f".parse-work-{name}" / OWNER_FILE).write_text(json.dumps(record))
    (out / ".parse-work-fresh").mkdir()
    (out / ".parse-work-old").mkdir()
    hours_ago = time.time() - 2 * 3600
    os.utime(out / ".parse-work-old", (hours_ago, hours_ago))
    parse_videos([clips["fourseconds_0_4"]], ContentModel(), out)
    assert sorted(p.name for p in out.glob(".parse-work-*")) == [".parse-work-fresh", ".parse-work-live"]


class OddNamesModel(ContentModel):
    """The content reader under class names holding mathtext."""

    classes = ("Red_$1_$2", r"Blue $\frac{a}{b}$")


@pytest.mark.parametrize("stem", ["my_video_$1_$2", r"frac_$\frac{a}{b}$"])
def test_names_with_dollars_are_drawn_as_written(clips, tmp_path, stem):
    """File and class names are never mathtext: the SVG's text holds them literally."""
    video = tmp_path / f"{stem}.mp4"
    video.write_bytes(clips["fourseconds_0_4"].read_bytes())  # both classes
    parsed = parse_videos([video], OddNamesModel(), tmp_path / "out", formats=("svg", "png"))
    svg = parsed[0].figures[0].read_text(encoding="utf-8")
    assert f">{video.name} · " in svg
    assert {e.label for e in parsed[0].events} == set(OddNamesModel.classes)
    assert all(f">{name}<" in svg for name in OddNamesModel.classes)


def test_a_failed_video_is_named_and_the_batch_goes_on(clips, tmp_path, capsys, monkeypatch):
    """`avvp parse ok corrupt ok`: both good ones are written, the bad one is named with its error, exit 1."""
    from avvp.cli import main

    monkeypatch.setattr("avvp.parsing.parse.HANWindowModel", lambda *args, **kwargs: ContentModel())
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all")
    videos, out = [clips["tenseconds1_0_10"], corrupt, clips["fourseconds_0_4"]], tmp_path / "parsed"
    assert main(["parse", *map(str, videos), "--checkpoint", str(tmp_path / "model.pt"), "--out", str(out),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith(f"[2/3] {corrupt}: failed: ") and "corrupt.mp4" in line for line in err), err
    assert err[-1].endswith(f"1 of 3 videos failed: {corrupt}"), err
    assert all((out / f"{v.stem}.json").is_file() for v in (videos[0], videos[2]))
    assert not (out / "corrupt.json").exists()
