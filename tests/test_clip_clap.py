"""The `clip`, `clap` and `clap_windows` kinds: VALOR's sampling and preprocessing, features equal to
the transformers model's own forward (small configurations, seeded), 48 kHz audio equal to VALOR's
librosa.load of real clips, model folders and offline `pretrained`."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms

from avvp.clips.audio_track import read_track
from avvp.extractors import clap, clip, feature_kind, register, unregister
from avvp.features.extract import extract_features
from avvp.extractors.parts.frames import frame_files, pick_frame_indices
from avvp.features.networks import load_network
from avvp.clips.ffmpeg import ffmpeg_exe
from avvp.parsing.windows import prepare_windows
from extractor_helpers import make_frames
from media_helpers import make_clip

SMALL_CLIP = {
    "projection_dim": 768,
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "patch_size": 32, "image_size": 224, "projection_dim": 768},
    "text_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                    "max_position_embeddings": 77, "vocab_size": 49408, "projection_dim": 768,
                    "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1},
}
SMALL_CLAP = {
    "projection_dim": 512,
    "audio_config": {"enable_fusion": True, "hidden_size": 768, "depths": [1, 1, 1, 1],
                     "num_attention_heads": [1, 1, 1, 2], "patch_embeds_hidden_size": 96, "spec_size": 256,
                     "num_mel_bins": 64, "window_size": 8, "patch_size": 4, "patch_stride": [4, 4],
                     "projection_dim": 512},
    "text_config": {"vocab_size": 300, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                    "intermediate_size": 32, "max_position_embeddings": 80, "type_vocab_size": 1, "pad_token_id": 1,
                    "bos_token_id": 0, "eos_token_id": 2, "projection_dim": 512},
}


@pytest.fixture()
def small_kinds():
    """The three kinds with small random networks (same shapes, registered under test names)."""
    networks = {
        "clip": dataclasses.replace(clip.EXTRACTOR, random=lambda seed: clip.random_clip(seed, SMALL_CLIP)),
        "clap": dataclasses.replace(clap.MAPS, random=lambda seed: clap.random_clap(seed, SMALL_CLAP)),
        "clap_windows": dataclasses.replace(clap.WINDOWS, random=lambda seed: clap.random_clap(seed, SMALL_CLAP)),
    }
    names = {}
    for name, network in networks.items():
        kind = dataclasses.replace(feature_kind(name), name=f"small_{name}", han_layer=f"fc_small_{name}",
                                   extractor=network)
        register(kind)
        names[name] = kind.name
    yield names
    for name in names.values():
        unregister(name)


def test_clip_frame_choice_is_valors() -> None:
    """round(linspace(0, n - 1, 10)) of VALOR's clip_preprocess.py, for 80 and 81 frames."""
    assert pick_frame_indices(80, 10).tolist() == [0, 9, 18, 26, 35, 44, 53, 61, 70, 79]
    assert pick_frame_indices(81, 10).tolist() == [0, 9, 18, 27, 36, 44, 53, 62, 71, 80]


def test_clip_features_are_the_models_normalised_image_embeddings(tmp_path, small_kinds) -> None:
    frames = make_frames(tmp_path / "clip1", 81)
    record = extract_features(small_kinds["clip"], [frames], tmp_path / "out", "random", "cpu", seed=3, progress=False)
    got = np.load(tmp_path / "out" / "clip1.npy")
    assert got.shape == (10, 768) and record["weights"] == "random"
    # VALOR's per-frame transform (ToTensor, Resize((224, 224)) without crop, CLIP mean/std) on its 10 frames.
    valor = transforms.Compose([transforms.ToTensor(), transforms.Resize((224, 224), antialias=False),
                                transforms.Normalize(clip.CLIP_MEAN, clip.CLIP_STD)])
    files = frame_files(frames)
    from PIL import Image
    pixels = torch.stack([valor(Image.open(files[i]).convert("RGB")) for i in [0, 9, 18, 27, 36, 44, 53, 62, 71, 80]])
    model, _ = clip.random_clip(3, SMALL_CLIP)
    with torch.inference_mode():
        expected = model.get_image_features(pixel_values=pixels).pooler_output
    expected = (expected / expected.norm(dim=-1, keepdim=True)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)
    assert not np.allclose(got[0], got[5])  # different frames, different embeddings


def test_clap_windows_follow_valors_rule() -> None:
    assert clap.window_bounds(480000) == [(48000 * i, 48000 * (i + 1)) for i in range(10)]
    # N = 480003: starts round(linspace(0, N, 11)) = 0, 48000.3 -> 48000, ..., length N // 10 = 48000
    bounds = clap.window_bounds(480003)
    assert [a for a, _ in bounds] == np.round(np.linspace(0, 480003, 11)).astype(int)[:10].tolist()
    assert {b - a for a, b in bounds} == {48000}
    picked = clap.ten_seconds(np.arange(480003, dtype=np.float32))
    assert len(picked) == 480000 and picked[0] == 0 and picked[-1] == 480002
    assert clap.int16_round_trip(np.array([1.5, -1.0, 0.5, 1e-5], np.float32)).tolist() == pytest.approx(
        [1.0, -1.0, 16383 / 32767, 0.0])


def _clip_with_audio(path: Path, rate: int, channels: int, seconds: float = 10.0) -> Path:
    """A real H.264/AAC clip whose track has content up to 12 kHz (above the 16 kHz WAV's 8 kHz)."""
    sources = ["0.3*sin(2*PI*(200+400*t)*t)", "0.2*sin(2*PI*12000*t)"][:channels]
    if channels == 1:
        sources = ["0.3*sin(2*PI*(200+400*t)*t)+0.2*sin(2*PI*12000*t)"]
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=64x48:rate=25:duration={seconds}", "-f", "lavfi", "-i",
                    f"aevalsrc={'|'.join(sources)}:s={rate}:d={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-shortest", str(path)], check=True)
    return path


@pytest.fixture()
def librosa_load(tmp_path, monkeypatch):
    """VALOR's loader, `librosa.load(path, sr=48000)`, reading video files through audioread, which
    runs `ffmpeg` from PATH: here the ffmpeg avvp runs."""
    import librosa

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ffmpeg").symlink_to(ffmpeg_exe())
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def load(path: Path) -> np.ndarray:
        with warnings.catch_warnings():  # librosa 0.10 warns that audioread is deprecated
            warnings.simplefilter("ignore")
            wave, rate = librosa.load(str(path), sr=48000)
        assert rate == 48000
        return wave

    return load


@pytest.mark.parametrize("rate, channels", [(44100, 2), (48000, 1), (32000, 2)])
def test_clap_audio_is_valors_librosa_load_of_the_clip(tmp_path, librosa_load, rate, channels) -> None:
    """The clip's own track at 48 kHz, bit for bit what VALOR's librosa.load gives (44.1 kHz stereo
    is YouTube's usual AAC; 48 kHz is passed through; 441,000 samples become librosa's 480,001)."""
    clip_file = _clip_with_audio(tmp_path / "clip.mp4", rate, channels)
    ours, valors = clap.audio_48k(clip_file), librosa_load(clip_file)
    assert ours.dtype == np.float32 and ours.shape == valors.shape
    np.testing.assert_array_equal(ours, valors)
    spectrum = np.abs(np.fft.rfft(ours[48000:96000]))  # 1 Hz bins: the 12 kHz tone is there
    assert spectrum[11990:12010].max() > 100 * np.median(spectrum[8500:11500])


def test_clap_inputs_are_valors_windows_and_ten_seconds_of_a_real_clip(tmp_path, librosa_load) -> None:
    """Segment boundaries and the 10-s map input on a real clip, written as VALOR's
    clap_preprocess.py writes them, from librosa's wave (quantised as laion_clap does)."""
    clip_file = _clip_with_audio(tmp_path / "clip.mp4", 44100, 2)
    wave = librosa_load(clip_file)

    def quantised(x: np.ndarray) -> np.ndarray:  # laion_clap's int16_to_float32(float32_to_int16(x))
        return ((np.clip(x, a_min=-1., a_max=1.) * 32767.).astype(np.int16) / 32767.).astype(np.float32)

    samples, step = np.round(np.linspace(0, len(wave), 11)).astype(np.int32), len(wave) // 10
    windows = [quantised(wave[samples[i]:samples[i] + step]) for i in range(10)]
    whole = quantised(wave[np.round(np.linspace(0, len(wave) - 1, 480000)).astype(np.int32)])
    np.testing.assert_array_equal(clap.load_window_inputs(clip_file), clap.mel_input(windows))
    np.testing.assert_array_equal(clap.load_map_input(clip_file), clap.mel_input([whole]))


def test_a_clip_without_audio_gives_ten_seconds_of_silence(tmp_path) -> None:
    silent = make_clip(tmp_path / "silent.mp4", seconds=4, audio=False)
    assert np.array_equal(clap.audio_48k(silent), np.zeros(480000, np.float32))


def test_parse_windows_cut_the_track_at_its_own_rate(tmp_path) -> None:
    """Parsing gives CLAP per window a WAV of the track at its own rate: samples [10 R w, 10 R (w+1)),
    silence past the end, decoded exactly as the track itself."""
    video = make_clip(tmp_path / "long.mp4", seconds=25, sample_rate=44100)
    windows = prepare_windows(video, tmp_path / "work", "long").inputs("video")
    track, rate = read_track(video)
    assert rate == 44100 and len(windows) == 3
    padded = np.concatenate([track, np.zeros((3 * 441000 - len(track), track.shape[1]), track.dtype)])
    for w, wav in enumerate(windows):
        cut, cut_rate = read_track(wav)
        assert cut_rate == rate
        np.testing.assert_array_equal(cut, padded[441000 * w:441000 * (w + 1)])


def test_clap_features_are_the_models_forward(tmp_path, small_kinds) -> None:
    video = _clip_with_audio(tmp_path / "clip1.mp4", 44100, 2)
    extract_features(small_kinds["clap"], [video], tmp_path / "maps", "random", "cpu", seed=1, progress=False)
    extract_features(small_kinds["clap_windows"], [video], tmp_path / "win", "random", "cpu", seed=1, progress=False)
    maps, windows = np.load(tmp_path / "maps" / "clip1.npy"), np.load(tmp_path / "win" / "clip1.npy")
    assert maps.shape == (64, 768) and windows.shape == (10, 512)
    model, _ = clap.random_clap(1, SMALL_CLAP)
    wave = clap.audio_48k(video)
    whole = torch.from_numpy(clap.mel_input([clap.int16_round_trip(clap.ten_seconds(wave))]))
    parts = torch.from_numpy(clap.mel_input([clap.int16_round_trip(wave[a:b]) for a, b in clap.window_bounds(len(wave))]))
    assert whole.shape == (1, 4, 1001, 64) and torch.equal(whole[:, 0], whole[:, 3])  # fusion input, 4 equal mels
    with torch.inference_mode():
        state = model.audio_model(input_features=whole, is_longer=torch.zeros(1, 1, dtype=torch.bool)).last_hidden_state
        embeds = model.get_audio_features(input_features=parts, is_longer=torch.zeros(10, 1, dtype=torch.bool))
    assert state.shape == (1, 768, 2, 32)
    np.testing.assert_allclose(maps, state.flatten(2).transpose(1, 2)[0].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(windows, embeds.pooler_output.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(windows, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_cli_extracts_clap_from_the_clips_themselves(tmp_path) -> None:
    """`avvp extract --kind clap` (full-size random network) takes the clip files, named by their
    YouTube ids; a clip without audio gives the features of silence, not a failure."""
    from avvp.cli import main

    clips = [_clip_with_audio(tmp_path / "abcdefghijk_0_10.mp4", 44100, 2),
             make_clip(tmp_path / "lmnopqrstuv_5_15.mp4", seconds=10, audio=False)]
    assert main(["extract", "--kind", "clap", "--weights", "random", "--out-dir", str(tmp_path / "feats"),
                 "--no-progress", *map(str, clips)]) == 0
    out = tmp_path / "feats" / "clap"
    assert sorted(p.name for p in out.iterdir()) == ["abcdefghijk.npy", "lmnopqrstuv.npy", "weights.json"]
    heard, silent = np.load(out / "abcdefghijk.npy"), np.load(out / "lmnopqrstuv.npy")
    assert heard.shape == silent.shape == (64, 768) and np.isfinite(heard).all() and not np.allclose(heard, silent)


def test_clap_pooling_equals_valors_network_path() -> None:
    """Pooling the 64 rows first, then the linear layer, equals VALOR's bicubic up-sampling, linear
    layer, mean over the 2 groups and adaptive pooling to 10."""
    torch.manual_seed(0)
    maps = torch.randn(3, 64, 768, dtype=torch.float64)
    fc = torch.nn.Linear(768, 16).double()
    x = maps.permute(0, 2, 1).reshape(3, 768, 2, 32)
    up = F.interpolate(x, size=(2, 1024), mode="bicubic")
    valor = F.adaptive_avg_pool1d(fc(up.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).mean(dim=2), 10).permute(0, 2, 1)
    weights = torch.from_numpy(feature_kind("clap").segment_weights()).double()
    ours = fc(torch.einsum("sr,brd->bsd", weights, maps))
    torch.testing.assert_close(ours, valor, rtol=0, atol=1e-5)


def test_weights_from_a_saved_model_folder(tmp_path) -> None:
    model, _ = clip.random_clip(5, SMALL_CLIP)
    model.save_pretrained(tmp_path / "clip_folder")
    loaded, record = load_network(feature_kind("clip"), str(tmp_path / "clip_folder"))
    assert record.weights == str(tmp_path / "clip_folder")
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        load_network(feature_kind("clip"), str(tmp_path / "missing"))


@pytest.mark.parametrize("name", ["clip", "clap"])
def test_offline_pretrained_names_the_files_and_where_they_go(tmp_path, monkeypatch, name) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AVVP_OFFLINE", "1")
    kind = feature_kind(name)
    with pytest.raises(RuntimeError) as err:
        load_network(kind, "pretrained")
    message = str(err.value)
    assert kind.pretrained.url in message and "config.json" in message and "model.safetensors" in message
    assert str(tmp_path / "torch" / "hub" / "huggingface") in message and "--weights PATH" in message
