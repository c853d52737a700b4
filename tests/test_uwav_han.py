"""UWAV's HAN (avvp.model.uwav_han) equals the released network (ysiqi0785-ops/UWAV at eb81492,
transcribed in uwav_released.py): a released state dict loads as it is and gives the released
outputs, its options rebuild it, and the uwav_as_published rule decides as the released get_pred."""
from __future__ import annotations

import inspect

import numpy as np
import torch

from avvp.evaluation.protocols import Outputs, decide, protocol
from avvp.model.han import load_han_state
from avvp.model.uwav_han import UwavHAN
from uwav_released import C, T, HybridAttentionNet, batch_data, released_net


def ours_from(net: HybridAttentionNet) -> UwavHAN:
    model = UwavHAN(C, dropout=net.dropout, hidden=net.hidden_dim, heads=net.nhead, ff=net.ff_dim,
                    layers=net.num_han_layers, proj_layers=net.num_proj_layers).double().eval()
    load_han_state(model, net.state_dict())
    return model


def test_uwav_han_loads_a_released_state_dict_and_computes_the_released_forward() -> None:
    """The script's network (5 layers, width 512, 16 heads, ff 2048, 1-layer visual projection): every
    released name but the unused final LayerNorms is ours, and the outputs are the released ones."""
    net = released_net()
    model = ours_from(net)
    defaults = {k: v.default for k, v in inspect.signature(UwavHAN).parameters.items()}
    keys = ("hidden", "heads", "ff", "layers", "audio_first", "proj_layers", "dropout")
    assert {k: defaults[k] for k in keys} == {k: model.options()[k] for k in keys}  # UwavHAN's defaults: the script's
    released_names = set(net.state_dict())
    assert released_names - set(model.state_dict()) == {f"hat_encoder.final_norm_{m}.{p}" for m in "av"
                                                        for p in ("weight", "bias")}
    assert set(model.state_dict()) <= released_names
    data = batch_data(5)
    with torch.no_grad():
        theirs = net(data['audio'], data['video_s'], vis_3d_feat=data['video_st'], attn_mask=data['attn_mask'])
        streams = model.encode(data['audio'], data['video_s'], data['video_st'])
        global_prob, a_prob, v_prob, frame_prob = model.classify(streams)
    for name, ours, ref in (("audio stream", streams.audio, theirs[5]), ("visual stream", streams.visual, theirs[6]),
                            ("global_prob", global_prob, theirs[0].clamp(max=1.0)), ("a_prob", a_prob, theirs[1]),
                            ("v_prob", v_prob, theirs[2]), ("audio frames", frame_prob[:, :, 0], theirs[3].sigmoid()),
                            ("visual frames", frame_prob[:, :, 1], theirs[4].sigmoid())):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10, msg=name)


def test_uwav_as_published_decisions_equal_the_released_get_pred() -> None:
    """get_pred's rule (video prob > 0.5, sigmoid(frame logit) > 0.5, strict) is avvp's
    uwav_as_published protocol, ties at exactly 0.5 included."""
    g = torch.Generator().manual_seed(8)
    video = torch.rand(1, C, generator=g)
    video[0, :4] = 0.5
    frames = [torch.randn(1, T, C, generator=g) for _ in "av"]
    for f in frames:
        f[0, :, :6] = 0.0  # sigmoid(0) = 0.5 exactly
    outputs = (video.clone(), None, None, frames[0].clone(), frames[1].clone(), None, None)
    pred_a, pred_v, _ = HybridAttentionNet.get_pred(None, outputs)
    ours = Outputs(video.numpy(), torch.stack([f.sigmoid() for f in frames], dim=2).numpy())
    audio, visual = decide(protocol("uwav_as_published"), ours)
    assert np.array_equal(audio[0], pred_a.astype(bool)) and np.array_equal(visual[0], pred_v.astype(bool))
    assert pred_a.any() and pred_v.any()


def test_uwav_han_options_rebuild_it() -> None:
    model = UwavHAN(C, hidden=16, heads=2, ff=8, layers=2, proj_layers=2)
    options = model.options()
    assert options["network"] == "uwav" and options["heads"] == 2 and options["proj_layers"] == 2
    rebuilt = UwavHAN(C, **{k: v for k, v in options.items() if k != "network"})
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert "fc_fusion.layers.1.weight" in rebuilt.state_dict() and "fc_v.weight" not in rebuilt.state_dict()

