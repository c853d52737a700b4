"""ResNet-152 and R(2+1)D-18 extraction, the weights choices and their record, and `avvp extract`.

Real torchvision networks on real ffmpeg-made JPEG frames. The reference computations are written
like the published extraction scripts: PIL per frame, torchvision transforms, one plain NCHW forward.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from avvp.cli import main
from avvp.base.files import file_sha256
from avvp.extractors import feature_kind, res152
from avvp.extractors.parts import calibration, downloads
from avvp.features import networks
from avvp.features.extract import extract_features, output_id
from avvp.extractors.parts.frames import normalise_frames, pick_frame_indices
from extractor_helpers import make_frames, tone, write_wav

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
KINETICS = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))


def frames_of(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"))


def max_relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("frames")
    return {
        "a": make_frames(root / "abcdefghijk_30_40", 3, "testsrc"),
        "b": make_frames(root / "b clip é", 2, "mandelbrot"),
        "one": make_frames(root / "one", 1, "smptebars"),
    }


# ----------------------------------------------------------------------------- small parts


def test_pick_frame_indices_spreads_80_picks_over_the_frames():
    np.testing.assert_array_equal(pick_frame_indices(80), np.arange(80))
    picks = pick_frame_indices(82)
    assert len(picks) == 80 and picks[0] == 0 and picks[-1] == 81 and (np.diff(picks) >= 1).all()
    few = pick_frame_indices(3)
    assert few.tolist() == sorted(few.tolist()) and set(few.tolist()) == {0, 1, 2}
    # Nearest-frame picks: the end frames own half a step each, the middle one a whole step.
    assert np.abs(np.bincount(few) - 80 * np.array([0.25, 0.5, 0.25])).max() <= 1
    with pytest.raises(ValueError):
        pick_frame_indices(0)


def test_output_id_uses_the_youtube_id_of_llp_names():
    assert output_id(Path("x/abcdefghijk_30_40.wav")) == "abcdefghijk"
    assert output_id(Path("x/abcdefghijk_30_40")) == "abcdefghijk"
    assert output_id(Path("x/my clip.wav")) == "my clip"
    assert output_id(Path("x/frames.of.a.clip")) == "frames.of.a.clip"
    assert output_id(Path("x/abcdefghijk_30_40.mp4")) == "abcdefghijk"  # the clip itself (medium video)


def test_zero_frames_and_missing_inputs_are_clear_errors(tmp_path):
    empty = tmp_path / "empty_clip"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    with pytest.raises(ValueError, match="empty_clip: no JPEG frames"):
        extract_features("r2plus1d_18", [empty], tmp_path / "out", progress=False)
    assert not list((tmp_path / "out").glob("*.npy"))
    with pytest.raises(FileNotFoundError, match="missing_clip"):
        extract_features("res152", [tmp_path / "missing_clip"], tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="unknown feature kind"):
        extract_features("vgg", [], tmp_path / "out", progress=False)


# ----------------------------------------------------------------------------- ResNet-152


def res152_inputs(*folders: Path) -> torch.Tensor:
    frames = np.stack([res152.res152_frame(f) for folder in folders for f in frames_of(folder)])
    return normalise_frames(torch.from_numpy(frames), *IMAGENET).contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_res152_random_weights_are_well_scaled_deterministic_and_batch_independent(clips):
    # Two independent builds (each recalibrating its batch norm); clip a's frames once in a batch
    # with clip b's, once alone.
    first, record1 = networks.load_network(feature_kind("res152"), "random", seed=0)
    second, record2 = networks.load_network(feature_kind("res152"), "random", seed=0)
    assert record1 == record2 and "re-estimated" in record1.how and "1/sqrt(blocks)" in record1.how
    with torch.inference_mode():
        mixed = res152.feature_network(first, torch.device("cpu"))(res152_inputs(clips["b"], clips["a"]))
        alone = res152.feature_network(second, torch.device("cpu"))(res152_inputs(clips["a"]))
    assert mixed.shape == (5, 2048) and torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed[2:], alone, rtol=1e-5, atol=1e-6)
    assert 0.05 < mixed.abs().mean() < 20  # untrained batch-norm statistics would give ~1e7
    a, b = alone.mean(0), mixed[:2].mean(0)
    assert float((a - b).abs().max() / a.abs().max()) > 0.05  # different pictures, different features


@pytest.mark.slow
def test_res152_state_dict_file_matches_the_published_style_pipeline(clips, tmp_path):
    torch.manual_seed(1)
    reference_net = torchvision.models.resnet152()
    path = tmp_path / "resnet152.pth"
    torch.save(reference_net.state_dict(), path)
    record = extract_features("res152", [clips["one"]], tmp_path / "out", weights=str(path), progress=False)
    ours = np.load(tmp_path / "out" / "one.npy")
    # The published script: PIL, Resize(256) + CenterCrop(224) + ToTensor + Normalize, NCHW forward.
    transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                    transforms.Normalize(*IMAGENET)])
    frame = transform(Image.open(frames_of(clips["one"])[0]).convert("RGB"))
    reference_net.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = reference_net.eval()(frame[None]).numpy()
    assert max_relative(ours, np.repeat(expected, 80, axis=0)) < 1e-4
    assert record["sha256"] == file_sha256(path) and record["weights"] == str(path)


# ----------------------------------------------------------------------------- R(2+1)D-18


def test_r2plus1d_state_dict_file_matches_the_published_style_pipeline(clips, tmp_path):
    torch.manual_seed(2)
    reference_net = torchvision.models.video.r2plus1d_18()
    path = tmp_path / "r2plus1d_18.pth"
    torch.save(reference_net.state_dict(), path)
    extract_features("r2plus1d_18", [clips["a"]], tmp_path / "out", weights=str(path), progress=False)
    ours = np.load(tmp_path / "out" / "abcdefghijk.npy")
    transform = transforms.Compose([transforms.Resize((112, 112)), transforms.ToTensor(),
                                    transforms.Normalize(*KINETICS)])
    files = frames_of(clips["a"])
    picked = torch.stack([transform(Image.open(files[i]).convert("RGB")) for i in pick_frame_indices(len(files))])
    clip_batch = picked.reshape(10, 8, 3, 112, 112).permute(0, 2, 1, 3, 4)
    reference_net.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = reference_net.eval()(clip_batch).numpy()
    assert ours.shape == (10, 512) and ours.dtype == np.float32
    assert max_relative(ours, expected) < 1e-4


def test_r2plus1d_random_features_are_well_scaled_and_batch_independent(clips, tmp_path):
    first = extract_features("r2plus1d_18", [clips["b"], clips["a"]], tmp_path / "x", batch_size=7, progress=False)
    second = extract_features("r2plus1d_18", [clips["a"]], tmp_path / "y", batch_size=10, progress=False)
    x, y = np.load(tmp_path / "x" / "abcdefghijk.npy"), np.load(tmp_path / "y" / "abcdefghijk.npy")
    assert x.shape == (10, 512) and np.isfinite(x).all()
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert 0.05 < np.abs(x).mean() < 20
    assert first == second and json.loads((tmp_path / "x" / "weights.json").read_text()) == first
    # Idempotent: outputs that exist are kept as they are, without building the network again.
    before = (tmp_path / "x" / "abcdefghijk.npy").stat().st_mtime_ns
    assert extract_features("r2plus1d_18", [clips["a"]], tmp_path / "x", progress=False) == first
    assert (tmp_path / "x" / "abcdefghijk.npy").stat().st_mtime_ns == before


def test_a_state_dict_of_the_other_network_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="is not a r2plus1d_18 state dict"):
        networks.load_network(feature_kind("r2plus1d_18"), str(path))


# ----------------------------------------------------------------------------- weights choices


def test_offline_pretrained_names_the_url_and_the_cache_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("AVVP_OFFLINE", "1")
    wav = write_wav(tmp_path / "clip.wav", tone(440))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "vggish-10086976.pth"
    with pytest.raises(RuntimeError) as caught:
        extract_features("vggish", [wav], tmp_path / "out", weights="pretrained", progress=False)
    assert feature_kind("vggish").pretrained.url in str(caught.value) and str(expected) in str(caught.value)
    assert not expected.exists()
    # A file put there by hand is then used, offline, and recorded by its checksum.
    expected.parent.mkdir(parents=True)
    torch.save(feature_kind("vggish").network().build().state_dict(), expected)
    record = extract_features("vggish", [wav], tmp_path / "out", weights="pretrained", progress=False)
    assert record["weights"] == "pretrained" and record["sha256"] == file_sha256(expected)
    assert (tmp_path / "out" / "clip.npy").is_file()


def test_failed_download_names_the_url_and_the_cache_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("AVVP_OFFLINE", raising=False)
    with socket.socket() as sock:  # a port on this machine that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/weights-0123abcd.pth"
    with pytest.raises(RuntimeError, match="could not download") as caught:
        downloads.fetch(url)
    assert url in str(caught.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "weights-0123abcd.pth") in str(caught.value)
    assert not list((tmp_path / "torch" / "hub" / "checkpoints").iterdir())


def test_random_weights_depend_on_the_seed_and_mixing_is_refused(tmp_path):
    wav = write_wav(tmp_path / "clip.wav", tone(440))
    other = write_wav(tmp_path / "other.wav", tone(660))
    first = extract_features("vggish", [wav], tmp_path / "out", seed=0, progress=False)
    again = networks.load_network(feature_kind("vggish"), "random", seed=0)[1]
    assert again.sha256 == first["sha256"]
    with pytest.raises(ValueError, match="use another output folder"):
        extract_features("vggish", [other], tmp_path / "out", seed=1, progress=False)
    assert not (tmp_path / "out" / "other.npy").exists()


def test_calibration_set_is_seeded_and_natural_image_like():
    one = res152.calibration_images(0)
    assert one.shape == (16, 3, 224, 224)
    assert torch.equal(one, res152.calibration_images(0))
    assert not torch.equal(one, res152.calibration_images(1))
    images = calibration.dead_leaves(np.random.default_rng(0), 2, 64, 64)
    assert images.shape == (2, 64, 64, 3) and 0.0 <= images.min() and images.max() <= 1.0
    # Natural-image-like: neighbouring pixels strongly correlated (white noise would give ~0).
    centred = images - images.mean(axis=(1, 2), keepdims=True)
    assert np.corrcoef(centred[:, :, :-1].ravel(), centred[:, :, 1:].ravel())[0, 1] > 0.8
    clips = calibration.drifting_clips(np.random.default_rng(0), 2, 8, 32)
    assert clips.shape == (2, 8, 32, 32, 3) and not np.array_equal(clips[:, 0], clips[:, 7])


# ----------------------------------------------------------------------------- command line


def test_cli_extract_end_to_end(clips, tmp_path, capsys):
    wavs = [write_wav(tmp_path / "abcdefghijk_0_10.wav", tone(440)),
            write_wav(tmp_path / "lmnopqrstuv_5_15.wav", tone(2000, seconds=8.0))]
    assert main(["extract", "--kind", "vggish", "--weights", "random", "--out-dir", str(tmp_path / "feats"),
                 "--no-progress", *map(str, wavs)]) == 0
    for vid in ("abcdefghijk", "lmnopqrstuv"):
        features = np.load(tmp_path / "feats" / "vggish" / f"{vid}.npy")
        assert features.shape == (10, 128) and features.dtype == np.float32
    listing = tmp_path / "frames.txt"
    listing.write_text(f"# two clips\n{clips['a']}\n\n{clips['b']}\n")
    assert main(["extract", "--kind", "r2plus1d_18", "--out-dir", str(tmp_path / "feats"), "--seed", "4",
                 "--batch-size", "3", "--no-progress", "--inputs-from", str(listing)]) == 0
    names = sorted(p.name for p in (tmp_path / "feats" / "r2plus1d_18").iterdir())
    assert names == ["abcdefghijk.npy", "b clip é.npy", "weights.json"]
    assert json.loads((tmp_path / "feats" / "r2plus1d_18" / "weights.json").read_text())["seed"] == 4
    assert "sha256" in capsys.readouterr().out
    assert main(["extract", "--kind", "vggish", "--out-dir", str(tmp_path / "feats")]) == 1
    assert "no inputs" in capsys.readouterr().err


def test_fused_resnet_equals_the_eager_network():
    """Batch norm folded into the convolutions, ReLU and residual addition fused: same features."""
    from avvp.extractors.parts.fused_resnet import FusedResNet, can_fuse

    torch.manual_seed(0)
    net = torchvision.models.ResNet(torchvision.models.resnet.Bottleneck, [1, 2, 1, 1])
    for module in net.modules():  # non-trivial statistics, so that folding matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    fused_net = res152.feature_network(net, torch.device("cpu"))  # classifier dropped from `net` itself
    assert isinstance(fused_net, FusedResNet) and isinstance(net.fc, torch.nn.Identity) and not net.training
    assert can_fuse(net, torch.device("cpu")) and not can_fuse(net, torch.device("cuda"))
    assert not can_fuse(torchvision.models.resnet18(), torch.device("cpu"))  # basic blocks: not handled
    x = torch.randn(3, 3, 96, 96)
    with torch.inference_mode():
        expected, fused = net(x), fused_net(x)
    assert fused.shape == expected.shape == (3, 2048)
    assert max_relative(fused.numpy(), expected.numpy()) < 1e-5
