"""HAN: shapes, exactness of pre-pooling, agreement with an official-style forward, and loading
the checkpoint files of the released HAN, MA-MMIL and JoMoLD code."""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avvp.evaluation.annotations import read_classes
from avvp.model.checkpoint import load_han, read_checkpoint, save_checkpoint
from avvp.model.han import HAN, load_han_state
from released_formats import FORMATS, han_state, jomold_checkpoint, ma_mmil_state, save_released, with_numpy1_names

CLASSES = [f"c{i}" for i in range(25)]
LLP_CLASSES = Path(__file__).resolve().parents[1] / "data" / "llp" / "classes.txt"


def inputs(batch: int = 3, frames: int = 80, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 10, 128, generator=g), torch.rand(batch, frames, 2048, generator=g),
            torch.rand(batch, 10, 512, generator=g))


def official_style_forward(m: HAN, audio, frames, clips):
    """The published forward written as the released code does it: sequence-first attention,
    fc_v on all 80 frames then an 8-frame average pool, both streams from the layer's inputs."""
    x1 = m.fc_a(audio)
    vid_s = m.fc_v(frames).permute(0, 2, 1).unsqueeze(-1)
    vid_s = F.avg_pool2d(vid_s, (8, 1)).squeeze(-1).permute(0, 2, 1)
    x2 = m.fc_fusion(torch.cat((vid_s, m.fc_st(clips)), dim=-1))
    layer = m.hat_encoder.layers[0]

    def han_layer(q, v):
        q, v = q.permute(1, 0, 2), v.permute(1, 0, 2)
        w = layer.cm_attn
        cross = F.multi_head_attention_forward(q, v, v, 512, 1, w.in_proj_weight, w.in_proj_bias, None, None,
                                               False, 0.0, w.out_proj.weight, w.out_proj.bias, training=False)[0]
        w = layer.self_attn
        self_ = F.multi_head_attention_forward(q, q, q, 512, 1, w.in_proj_weight, w.in_proj_bias, None, None,
                                               False, 0.0, w.out_proj.weight, w.out_proj.bias, training=False)[0]
        q = layer.norm1(q + cross + self_)
        q = layer.norm2(q + layer.linear2(F.relu(layer.linear1(q))))
        return q.permute(1, 0, 2)

    x1, x2 = han_layer(x1, x2), han_layer(x2, x1)
    x = torch.cat([x1.unsqueeze(-2), x2.unsqueeze(-2)], dim=-2)
    frame_prob = torch.sigmoid(m.fc_prob(x))
    frame_att = torch.softmax(m.fc_frame_att(x), dim=1)
    av_att = torch.softmax(m.fc_av_att(x), dim=2)
    temporal = frame_att * frame_prob
    return ((temporal * av_att).sum(dim=2).sum(dim=1), temporal[:, :, 0, :].sum(dim=1),
            temporal[:, :, 1, :].sum(dim=1), frame_prob)


@pytest.fixture(scope="module")
def model() -> HAN:
    torch.manual_seed(0)
    return HAN(25).eval()


def test_output_shapes_and_ranges(model: HAN) -> None:
    g, a, v, f = model(*inputs())
    assert g.shape == a.shape == v.shape == (3, 25) and f.shape == (3, 10, 2, 25)
    for t in (g, a, v, f):
        assert ((t >= 0) & (t <= 1)).all()


def test_global_probability_is_clipped_at_one() -> None:
    """Audio attends to segment 0 and visual to segment 1, and the modality attention favours
    each where it attends: the unclipped global score is 2 (the demo's random features hit this)."""
    model = HAN(1).eval()
    with torch.no_grad():
        for layer in (model.fc_prob, model.fc_frame_att, model.fc_av_att):
            layer.weight.zero_()
            layer.bias.zero_()
            layer.weight[0, 0] = 50.0
        model.fc_prob.bias.fill_(50.0)  # every frame probability is 1
        audio, visual = torch.zeros(1, 10, 512), torch.zeros(1, 10, 512)
        audio[0, 0, 0] = visual[0, 1, 0] = 1.0
        g, a, v, _ = model.head(audio, visual)
    assert a.item() == pytest.approx(1.0) and v.item() == pytest.approx(1.0)
    assert g.item() == 1.0


def test_matches_official_style_forward(model: HAN) -> None:
    x = inputs()
    with torch.no_grad():
        for ours, ref in zip(model(*x), official_style_forward(model, *x)):
            torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_prepooled_frames_give_the_same_outputs(model: HAN) -> None:
    audio, frames, clips = inputs()
    pooled = frames.reshape(3, 10, 8, 2048).mean(dim=2)
    with torch.no_grad():
        for full, pre in zip(model(audio, frames, clips), model(audio, pooled, clips)):
            torch.testing.assert_close(full, pre, atol=1e-5, rtol=1e-5)


def test_class_count_comes_from_the_vocabulary() -> None:
    assert HAN(4)(*inputs(frames=10))[3].shape == (3, 10, 2, 4)


def test_official_state_dict_loads_and_unused_modules_do_not_matter(model: HAN, tmp_path: Path) -> None:
    x = inputs()
    outputs = []
    for seed in (1, 2):
        state = han_state(model, seed)
        assert any(k.startswith("cmt_encoder.") for k in state)
        path = tmp_path / f"MMIL_Net_{seed}.pt"
        torch.save(state, path)
        loaded, classes, _ = load_han(path, CLASSES)
        with torch.no_grad():
            outputs.append(loaded(*x))
    with torch.no_grad():
        expected = model(*x)
    for a, b, c in zip(outputs[0], outputs[1], expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_unknown_or_missing_keys_are_named(model: HAN) -> None:
    state = han_state(model, 0)
    state["fc_extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"unexpected keys \['fc_extra\.weight'\]"):
        load_han_state(HAN(25), state)
    state = han_state(model, 0)
    del state["hat_encoder.layers.0.cm_attn.in_proj_weight"]
    with pytest.raises(ValueError, match=r"missing keys \['hat_encoder\.layers\.0\.cm_attn\.in_proj_weight'\]"):
        load_han_state(HAN(25), state)


@pytest.mark.parametrize("released", FORMATS)
def test_released_checkpoints_load_the_same_network(model: HAN, tmp_path: Path, released: str) -> None:
    path = save_released(tmp_path / f"{released}.pt", model, released)
    loaded, classes, payload = load_han(path, CLASSES)
    assert classes == CLASSES and payload["classes"] is None
    x = inputs()
    with torch.no_grad():
        for ours, theirs in zip(loaded(*x), model(*x)):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_jomold_random_states_load_and_nothing_else_does(model: HAN, tmp_path: Path) -> None:
    """A weights-only load refuses numpy's random state; ours allows exactly its uint32 array, under
    numpy 2's and numpy 1's names, and still refuses any other array or object."""
    payload = jomold_checkpoint(model)
    for path in (save_released(tmp_path / "JoMoLD.pt", model, "jomold"),
                 with_numpy1_names(tmp_path / "JoMoLD_numpy1.pt", payload)):
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
        state = read_checkpoint(path)["state_dict"]
        assert state.keys() == payload["model"].keys()
        assert all(torch.equal(state[k], payload["model"][k]) for k in state)
    for name, value in (("float", np.zeros(3)), ("object", argparse.Namespace(epochs=25))):
        torch.save({**payload, "numpy_rng": value}, tmp_path / f"{name}.pt")
        with pytest.raises(ValueError, match=f"{name}.pt: not a readable PyTorch checkpoint"):
            read_checkpoint(tmp_path / f"{name}.pt")


def test_ma_mmil_layers_are_ignored_only_in_its_layout(model: HAN) -> None:
    full, han = ma_mmil_state(model), han_state(model)
    load_han_state(HAN(25), full)
    fc1 = {k: v for k, v in full.items() if k.startswith("fc1.")}
    with pytest.raises(ValueError, match=r"unexpected keys \['fc1\.bias', 'fc1\.weight'\]"):
        load_han_state(HAN(25), {**han, **fc1})
    own = {k: v for k, v in full.items() if k not in han}  # without HAN's unused modules
    with pytest.raises(ValueError, match=r"unexpected keys \['fc1\.bias', 'fc1\.weight', 'fc2\.bias', 'fc2\.weight', "
                                         r"'t_att\.fc\.bias', 't_att\.fc\.weight', 't_att\.layer_norm\.beta'"):
        load_han_state(HAN(25), {**model.state_dict(), **own})
    with pytest.raises(ValueError, match=r"unexpected keys \['fc3\.weight'\]"):
        load_han_state(HAN(25), {**full, "fc3.weight": torch.zeros(2)})


@pytest.mark.parametrize("layout", ["plain", "jomold", "other keys"])
def test_another_networks_file_fails_naming_its_keys(tmp_path: Path, layout: str) -> None:
    other = nn.Sequential(nn.Linear(4, 2)).state_dict()
    payload, unexpected = {"plain": (other, "'0.bias', '0.weight'"),
                           "jomold": ({"model": other, "epochs": 25}, "'0.bias', '0.weight'"),
                           "other keys": ({"model": other, "args": 3}, "'args', 'model'")}[layout]
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=rf"other.pt: state dict does not fit HAN .* missing keys \['fc_a\.bias', "
                                         rf".*unexpected keys \[{unexpected}\]"):
        load_han(tmp_path / "other.pt", CLASSES)


def test_official_checkpoint_gets_llp_classes(model: HAN, tmp_path: Path) -> None:
    """A released file (25 outputs, no class list) gets LLP's shipped classes; another size needs them."""
    path = tmp_path / "MMIL_Net.pt"
    torch.save(model.state_dict(), path)
    _, classes, _ = load_han(path)
    assert classes == list(read_classes(LLP_CLASSES).classes) and len(classes) == 25
    with pytest.raises(ValueError, match="state dict has 25 classes, the model 3"):
        load_han(path, ["a", "b", "c"])
    torch.save(HAN(3).state_dict(), tmp_path / "small.pt")
    with pytest.raises(ValueError, match="small.pt holds no class list and does not have LLP's 25 outputs"):
        load_han(tmp_path / "small.pt")


def test_our_checkpoint_round_trip(model: HAN, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, [f"c{i}" for i in range(25)], epoch=7)
    loaded, classes, payload = load_han(path)
    assert classes[3] == "c3" and payload["epoch"] == 7
    assert payload["model_options"] == model.options() and loaded.features == model.features
    with pytest.raises(ValueError, match="was trained on classes"):
        load_han(path, ["x"] * 25)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not a readable PyTorch checkpoint"):
        load_han(tmp_path / "junk.pt")


def test_feature_set_decides_the_input_layers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = HAN(4, features=("vggish", "r2plus1d_18")).eval()
    assert model.features == ("vggish", "r2plus1d_18") and not hasattr(model, "fc_fusion")
    audio, _, clips = inputs()
    assert model(audio, clips)[3].shape == (3, 10, 2, 4)
    with pytest.raises(ValueError, match="HAN takes 2 inputs"):
        model(*inputs())
    with pytest.raises(ValueError, match="has no visual kind"):
        HAN(4, features=("vggish",))
    path = tmp_path / "two.pt"
    save_checkpoint(path, model, ["a", "b", "c", "d"])
    loaded, _, _ = load_han(path)
    assert loaded.features == model.features
    with torch.no_grad():
        torch.testing.assert_close(loaded(audio, clips)[0], model(audio, clips)[0], rtol=0, atol=0)
