"""VGGish: the official front end on analytic signals, the port's state-dict names, the post-processor."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avvp.extractors import feature_kind, vggish
from avvp.features.extract import extract_features
from avvp.features.networks import load_network
from extractor_helpers import tone, write_wav

SILENCE = math.log(0.01)

# The PyTorch port's parameter names and shapes (harritaylor/torchvggish, vggish-10086976.pth).
PORT_SHAPES = {
    "features.0.weight": (64, 1, 3, 3), "features.0.bias": (64,),
    "features.3.weight": (128, 64, 3, 3), "features.3.bias": (128,),
    "features.6.weight": (256, 128, 3, 3), "features.6.bias": (256,),
    "features.8.weight": (256, 256, 3, 3), "features.8.bias": (256,),
    "features.11.weight": (512, 256, 3, 3), "features.11.bias": (512,),
    "features.13.weight": (512, 512, 3, 3), "features.13.bias": (512,),
    "embeddings.0.weight": (4096, 12288), "embeddings.0.bias": (4096,),
    "embeddings.2.weight": (4096, 4096), "embeddings.2.bias": (4096,),
    "embeddings.4.weight": (128, 4096), "embeddings.4.bias": (128,),
}


def expected_band(freq: float) -> int:
    """The band whose centre is nearest `freq` on the HTK mel scale, from PROTOCOL's numbers alone."""
    mel = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731
    centres = np.linspace(mel(125.0), mel(7500.0), 66)[1:-1]
    return int(np.argmin(np.abs(centres - mel(freq))))


# ----------------------------------------------------------------------------- front end


def test_ten_seconds_give_ten_examples_and_the_tail_is_dropped():
    assert vggish.waveform_to_examples(tone(1000), 16000).shape == (10, 96, 64)
    # 9.6 s: 1 + (153600 - 400) // 160 = 958 frames, one short of a 10th example of 96.
    nine = vggish.waveform_to_examples(tone(1000, seconds=9.6), 16000)
    assert nine.shape == (9, 96, 64) and nine.dtype == np.float32


@pytest.mark.parametrize("freq", [1000.0, 3000.0])
def test_a_pure_tone_lands_in_its_mel_band(freq):
    log_mel = vggish.waveform_to_examples(tone(freq), 16000).reshape(-1, 64)
    profile = log_mel.mean(axis=0)
    assert int(np.argmax(profile)) == expected_band(freq)
    far = np.abs(np.arange(64) - expected_band(freq)) > 6
    assert profile[far].max() < profile.max() - 3.0  # energy stays local


def test_higher_tone_lands_in_a_higher_band():
    low = vggish.waveform_to_examples(tone(1000), 16000).mean(axis=(0, 1)).argmax()
    high = vggish.waveform_to_examples(tone(3000), 16000).mean(axis=(0, 1)).argmax()
    assert high - low > 10


def test_silence_is_log_of_the_offset():
    examples = vggish.waveform_to_examples(np.zeros(160000), 16000)
    np.testing.assert_allclose(examples, SILENCE, rtol=1e-6)


def test_frames_start_at_sample_zero_with_a_periodic_hann_window():
    # An impulse at sample 200 sits at the centre of frame 0 (samples 0-399, window value 1) and at
    # offset 40 of frame 1 (samples 160-559); no later frame sees it. Its spectrum is flat, so a band
    # receives the sum of its mel weights times the window value.
    signal = np.zeros(16000)
    signal[200] = 1.0
    log_mel = vggish.log_mel_spectrogram(signal)
    weights = vggish.mel_matrix().sum(axis=0)
    periodic_40 = 0.5 - 0.5 * math.cos(2 * math.pi * 40 / 400)
    np.testing.assert_allclose(log_mel[0], np.log(weights + 0.01), rtol=1e-9)
    np.testing.assert_allclose(log_mel[1], np.log(periodic_40 * weights + 0.01), rtol=1e-9)
    np.testing.assert_allclose(log_mel[2:], SILENCE, rtol=1e-12)
    assert len(log_mel) == 1 + (16000 - 400) // 160


def test_mel_matrix_leaves_out_dc_and_has_64_triangles():
    matrix = vggish.mel_matrix()
    assert matrix.shape == (257, 64)
    assert not matrix[0].any()
    assert (matrix <= 1.0).all() and (matrix >= 0.0).all()
    peaks = matrix.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] > peaks[0]
    bin_hz = np.linspace(0, 8000, 257)
    assert not matrix[bin_hz < 125.0].any() and not matrix[bin_hz > 7500.0].any()


def test_stereo_44k_wav_is_averaged_and_resampled(tmp_path):
    mono = write_wav(tmp_path / "mono.wav", tone(3000))
    stereo = write_wav(tmp_path / "stereo.wav",
                       np.stack([tone(3000, rate=44100), tone(3000, rate=44100)], axis=1), rate=44100)
    cancel = write_wav(tmp_path / "cancel.wav",
                       np.stack([tone(3000, rate=44100), -tone(3000, rate=44100)], axis=1), rate=44100)
    reference = vggish.clip_examples(mono)
    resampled = vggish.clip_examples(stereo)
    assert resampled.shape == (10, 96, 64)
    band = expected_band(3000)
    np.testing.assert_allclose(resampled[:, :, band], reference[:, :, band], atol=0.02)
    np.testing.assert_allclose(vggish.clip_examples(cancel), SILENCE, rtol=1e-6)


def test_short_clip_is_padded_with_silence_to_ten_examples(tmp_path):
    short = vggish.clip_examples(write_wav(tmp_path / "short.wav", tone(1000, seconds=4.0)))
    assert short.shape == (10, 96, 64)
    assert short[3].max() > 0.0  # 4 s of tone covers examples 0-3 (0.96 s each) ...
    np.testing.assert_allclose(short[5:], SILENCE, rtol=1e-6)  # ... and silence follows
    long = vggish.clip_examples(write_wav(tmp_path / "long.wav", tone(1000, seconds=12.0)))
    assert long.shape == (10, 96, 64)


def test_read_wav_scales_16_bit_samples(tmp_path):
    path = write_wav(tmp_path / "a.wav", np.array([0.0, 0.5, -1.0]))
    samples, rate = vggish.read_wav(path)
    assert rate == 16000
    np.testing.assert_array_equal(samples, np.array([0, 16384, -32767]) / 32768.0)
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    with pytest.raises(ValueError, match="bad.wav"):
        vggish.read_wav(tmp_path / "bad.wav")


# ----------------------------------------------------------------------------- network


def port_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) * (0.5 / math.sqrt(np.prod(shape[1:]) if len(shape) > 1 else 1))
            for name, shape in PORT_SHAPES.items()}


def reference_forward(state: dict[str, torch.Tensor], examples: np.ndarray) -> np.ndarray:
    """VGGish written out op by op from the official graph (TensorFlow's NHWC flatten order)."""
    x = torch.from_numpy(examples)[:, None]
    for index in (0, 3, 6, 8, 11, 13):
        x = F.relu(F.conv2d(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1))
        if index in (0, 3, 8, 13):
            x = F.max_pool2d(x, 2)
    x = x.permute(0, 2, 3, 1).reshape(len(x), -1)
    for index in (0, 2, 4):
        x = F.relu(F.linear(x, state[f"embeddings.{index}.weight"], state[f"embeddings.{index}.bias"]))
    return x.numpy()


def test_network_has_the_port_parameter_names():
    for final_relu in (True, False):
        shapes = {k: tuple(v.shape) for k, v in vggish.VGGish(final_relu).state_dict().items()}
        assert shapes == PORT_SHAPES


def test_state_dict_with_port_names_loads_and_matches_the_official_graph(tmp_path):
    state = port_state_dict()
    path = tmp_path / "vggish-port.pth"
    torch.save(state, path)
    wav = write_wav(tmp_path / "abcdefghijk_0_10.wav", tone(440) + 0.2 * tone(2500))
    record = extract_features("vggish", [wav], tmp_path / "feats", weights=str(path), progress=False)
    features = np.load(tmp_path / "feats" / "abcdefghijk.npy")
    assert features.shape == (10, 128) and features.dtype == np.float32
    expected = reference_forward(state, vggish.clip_examples(wav))
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    assert expected.max() > 0
    assert record["weights"] == str(path) and len(record["sha256"]) == 64


def test_final_relu_is_switchable():
    torch.manual_seed(0)
    with_relu = vggish.VGGish(final_relu=True).eval()
    without = vggish.VGGish(final_relu=False).eval()
    without.load_state_dict(with_relu.state_dict())
    examples = torch.from_numpy(vggish.waveform_to_examples(tone(700), 16000))
    with torch.inference_mode():
        raw, clipped = without(examples), with_relu(examples)
    assert (raw < 0).any()
    torch.testing.assert_close(clipped, raw.clamp_min(0))


def test_state_dict_with_wrong_names_is_refused_clearly(tmp_path):
    state = {name.replace("embeddings", "fc"): value for name, value in port_state_dict().items()}
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"(?s)renamed\.pth is not a vggish state dict.*embeddings\.0\.weight"):
        load_network(feature_kind("vggish"), str(path))


def test_random_vggish_is_well_scaled():
    model, record = load_network(feature_kind("vggish"), "random", seed=3)
    examples = torch.from_numpy(vggish.waveform_to_examples(tone(500) + 0.3 * tone(3100), 16000))
    with torch.inference_mode():
        out = model(examples)
    assert 0.05 < out.abs().mean().item() < 50
    assert record.seed == 3 and "He-normal" in record.how


# ----------------------------------------------------------------------------- post-processor


def test_postprocessor_on_hand_made_pca(tmp_path):
    vectors = 0.5 * np.eye(128)
    means = np.ones(128)
    # Projected value = 0.5 * (x - 1): -3 clips to -2 -> 0; 0 -> 127.5 -> 127 (truncated, not
    # rounded); 1.99 -> 3.99 * 63.75 = 254.36 -> 254; 4 clips to 2 -> 255.
    embeddings = np.ones((1, 128))
    embeddings[0, :4] = [-5.0, 1.0, 4.98, 9.0]
    out = vggish.postprocess(embeddings, vectors, means)
    assert out.dtype == np.uint8
    assert out[0, :4].tolist() == [0, 127, 254, 255]
    np.savez(tmp_path / "pca.npz", pca_eigen_vectors=vectors, pca_means=means)
    torch.save({"pca_eigen_vectors": torch.from_numpy(vectors), "pca_means": torch.from_numpy(means)},
               tmp_path / "pca.pth")
    for name in ("pca.npz", "pca.pth"):
        loaded_vectors, loaded_means = vggish.load_pca_params(tmp_path / name)
        np.testing.assert_array_equal(loaded_vectors, vectors)
        np.testing.assert_array_equal(loaded_means, means)
    np.savez(tmp_path / "wrong.npz", pca_eigen_vectors=np.eye(3), pca_means=np.zeros(3))
    with pytest.raises(ValueError, match="wrong.npz"):
        vggish.load_pca_params(tmp_path / "wrong.npz")


def test_extract_with_post_processor_stores_quantised_values(tmp_path):
    np.savez(tmp_path / "pca.npz", pca_eigen_vectors=np.eye(128), pca_means=np.zeros(128))
    wav = write_wav(tmp_path / "clip.wav", tone(880))
    record = extract_features("vggish", [wav], tmp_path / "q", seed=1, progress=False,
                              postprocess=str(tmp_path / "pca.npz"))
    plain = extract_features("vggish", [wav], tmp_path / "p", seed=1, progress=False)
    quantised, raw = np.load(tmp_path / "q" / "clip.npy"), np.load(tmp_path / "p" / "clip.npy")
    assert quantised.dtype == np.float32
    np.testing.assert_array_equal(quantised, vggish.postprocess(raw, np.eye(128), np.zeros(128)))
    assert "post-processor" in record["how"] and record["sha256"] == plain["sha256"]
    with pytest.raises(ValueError, match="r2plus1d_18 has no post-processor"):
        extract_features("r2plus1d_18", [], tmp_path / "r", progress=False, postprocess=str(tmp_path / "pca.npz"))



# ----------------------------------------------------------------------------- TF checkpoint converter


def test_tf_variables_map_onto_the_port_layout():
    """TF-Slim layouts (kernels HWIO, matrices in x out) built from a port state dict convert back."""
    from avvp.extractors.parts.vggish_tf import LAYERS, convert

    state = port_state_dict(seed=5)
    variables = {}
    for prefix, scope in LAYERS.items():
        weight = state[f"{prefix}.weight"].numpy()
        variables[f"{scope}/weights"] = weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight.T
        variables[f"{scope}/biases"] = state[f"{prefix}.bias"].numpy()
    assert variables["vggish/conv1/weights"].shape == (3, 3, 1, 64)
    assert variables["vggish/fc1/fc1_1/weights"].shape == (12288, 4096)
    converted = convert(variables.__getitem__)
    assert converted.keys() == state.keys()
    for name in state:
        torch.testing.assert_close(converted[name], state[name], rtol=0, atol=0)
