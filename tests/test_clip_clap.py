"""The `clip`, `clap` and `clap_windows` kinds: VALOR's sampling and preprocessing, features equal to
the transformers model's own forward (small configurations, seeded), model folders and offline
`pretrained`."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms

from avvp.extractors import FeatureKind, clap, clip, feature_kind, register, unregister
from avvp.extractors.extract import extract_features
from avvp.extractors.frames import frame_files, pick_frame_indices
from avvp.extractors.weights import load_network
from extractor_helpers import make_frames, tone, write_wav

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


def test_audio_is_resampled_to_48k_keeping_its_frequency(tmp_path) -> None:
    wav = write_wav(tmp_path / "a.wav", np.stack([tone(1000.0), tone(1000.0)], axis=1))
    wave = clap.audio_48k(wav)
    assert wave.shape == (480000,) and wave.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(wave[48000:96000]))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over one second
    assert abs(np.abs(wave[48000:-48000]).max() - 0.5) < 0.01


def test_clap_features_are_the_models_forward(tmp_path, small_kinds) -> None:
    wav = write_wav(tmp_path / "clip1.wav", np.stack([tone(440.0), tone(3000.0)], axis=1))
    extract_features(small_kinds["clap"], [wav], tmp_path / "maps", "random", "cpu", seed=1, progress=False)
    extract_features(small_kinds["clap_windows"], [wav], tmp_path / "win", "random", "cpu", seed=1, progress=False)
    maps, windows = np.load(tmp_path / "maps" / "clip1.npy"), np.load(tmp_path / "win" / "clip1.npy")
    assert maps.shape == (64, 768) and windows.shape == (10, 512)
    model, _ = clap.random_clap(1, SMALL_CLAP)
    whole = torch.from_numpy(clap.mel_input([clap.int16_round_trip(clap.ten_seconds(clap.audio_48k(wav)))]))
    wave = clap.audio_48k(wav)
    parts = torch.from_numpy(clap.mel_input([clap.int16_round_trip(wave[48000 * i:48000 * (i + 1)]) for i in range(10)]))
    assert whole.shape == (1, 4, 1001, 64) and torch.equal(whole[:, 0], whole[:, 3])  # fusion input, 4 equal mels
    with torch.inference_mode():
        state = model.audio_model(input_features=whole, is_longer=torch.zeros(1, 1, dtype=torch.bool)).last_hidden_state
        embeds = model.get_audio_features(input_features=parts, is_longer=torch.zeros(10, 1, dtype=torch.bool))
    assert state.shape == (1, 768, 2, 32)
    np.testing.assert_allclose(maps, state.flatten(2).transpose(1, 2)[0].numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(windows, embeds.pooler_output.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(windows, axis=1), 1.0, atol=1e-5)


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
