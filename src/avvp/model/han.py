"""HAN: the hybrid attention network with attentive MMIL pooling (Tian, Li, Xu, ECCV 2020).

Module and parameter names follow the official checkpoint (`MMIL_Net.pt`), so its state dict loads
as is, as do the weights of the released MA-MMIL and JoMoLD networks (their unused modules are
dropped by name). The class count comes from the data set's vocabulary, the input layers from the
feature set (`avvp.extractors`): each kind has its own linear layer (the published kinds keep the
official names `fc_a`, `fc_v`, `fc_st`); a modality fed by several kinds concatenates their outputs
and fuses them with one more linear layer (`fc_fusion` for the visual stream, as published;
`fc_fusion_audio` for audio). With the published set this is exactly the paper's network.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from avvp.extractors import PUBLISHED, FeatureKind, feature_set
from avvp.base.protocol import MODALITIES, SEGMENTS

D_MODEL = 512
# HAN's published architecture; `HAN.options()` stores a value only where a model departs from it, so
# checkpoints of the published network keep the options they always had.
ARCHITECTURE = {"hidden": D_MODEL, "heads": 1, "ff": 512, "layers": 1, "audio_first": False}
FUSION_LAYERS = {"audio": "fc_fusion_audio", "visual": "fc_fusion"}


def _names(prefix: str, modules: Sequence[str], params: Sequence[str] = ("weight", "bias")) -> frozenset[str]:
    """The parameter names `prefix + module + "." + param` of every module and parameter."""
    return frozenset(f"{prefix}{module}.{param}" for module in modules for param in params)


def _transformer_layer(prefix: str) -> frozenset[str]:
    """The parameters of a one-head transformer layer (torch's TransformerEncoderLayer, HAN's CMTLayer)."""
    attention = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
    return _names(prefix, ("self_attn",), attention) | _names(prefix, ("linear1", "linear2", "norm1", "norm2"))


def _two_input_attention(prefix: str) -> frozenset[str]:
    """The parameters of MA-MMIL's MultiHeadAttention2 (its own LayerNorm names them gamma/beta)."""
    return _names(prefix, ("w_qs", "w_ks", "w_vs", "fc")) | _names(prefix, ("layer_norm",), ("gamma", "beta"))


# The released HAN network's modules that its forward pass never uses, by name (44 parameters). Each is
# ignored on its own: JoMoLD's network keeps only hat_encoder.norm1/2 of them.
UNUSED_OFFICIAL_KEYS = (_names("hat_encoder.", ("norm1", "norm2")) | _names("cmt_encoder.", ("norm1", "norm2"))
                        | _transformer_layer("cmt_encoder.layers.0.") | _transformer_layer("audio_encoder.layers.0.")
                        | _transformer_layer("visual_encoder.layers.0."))
# All unused modules of MA-MMIL's network: HAN's and its own 24 (68 parameters). Its own are ignored only
# when all of these are there (the layout of MA-MMIL's checkpoints), never as stray keys of another network.
MA_MMIL_UNUSED_KEYS = (UNUSED_OFFICIAL_KEYS | _two_input_attention("t_att.") | _two_input_attention("t_att2.")
                       | _names("", ("fc1", "fc2")))


def to_segments(kind: FeatureKind, x: Tensor) -> Tensor:
    """(B, rows, d) -> (B, 10, d): the kind's own pooling, or the mean of each segment's rows."""
    batch, rows, dim = x.shape
    if rows == SEGMENTS:
        return x
    if kind.pooling:
        return torch.einsum("sr,brd->bsd", torch.from_numpy(kind.segment_weights()).to(x), x)
    return x.reshape(batch, SEGMENTS, rows // SEGMENTS, dim).mean(dim=2)


def add_input_layers(module: nn.Module, kinds: Sequence[FeatureKind], hidden: int,
                     make_layer: Callable[[int, int], nn.Module]) -> dict[str, str]:
    """Give `module` each kind's input layer (named `kind.han_layer`) and, for a modality fed by several
    kinds, the layer that fuses their concatenation (`FUSION_LAYERS`); the fused modalities' layer names."""
    for kind in kinds:
        module.add_module(kind.han_layer, make_layer(kind.dim, hidden))
    fusion: dict[str, str] = {}
    for modality in MODALITIES:
        width = sum(kind.modality == modality for kind in kinds)
        if width > 1:
            fusion[modality] = FUSION_LAYERS[modality]
            module.add_module(FUSION_LAYERS[modality], make_layer(width * hidden, hidden))
    return fusion


def embed_inputs(module: nn.Module, kinds: Sequence[FeatureKind], inputs: Sequence[Tensor], fusion: Mapping[str, str],
                 pools_first: bool) -> dict[str, Tensor]:
    """Each modality's (B, 10, hidden) stream from its kinds' features through `add_input_layers`'
    layers: rows averaged to segments before each kind's layer (`pools_first`) or after it."""
    parts: dict[str, list[Tensor]] = {}
    for kind, x in zip(kinds, inputs):
        layer = getattr(module, kind.han_layer)
        parts.setdefault(kind.modality, []).append(layer(to_segments(kind, x)) if pools_first
                                                   else to_segments(kind, layer(x)))
    return {m: getattr(module, fusion[m])(torch.cat(xs, dim=-1)) if m in fusion else xs[0] for m, xs in parts.items()}


class HybridAttentionLayer(nn.Module):
    """One HAN layer: cross-modal plus self attention, then a feed-forward block.

    For query stream x and context stream y:
    x' = LN1(x + Drop(CrossAttn(x, y, y)) + Drop(SelfAttn(x, x, x))); out = LN2(x' + Drop(FFN(x'))).
    """

    def __init__(self, d_model: int = D_MODEL, n_heads: int = 1, d_ff: int = 512, dropout: float = 0.1,
                 cross_modal: bool = True) -> None:
        super().__init__()
        self.cross_modal = cross_modal
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.cm_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)  # inside the feed-forward block
        self.dropout_cm = nn.Dropout(dropout)
        self.dropout_self = nn.Dropout(dropout)
        self.dropout_ff = nn.Dropout(dropout)

    def forward(self, x: Tensor, context: Tensor, cross_modal: bool | None = None) -> Tensor:
        """x, context: (B, T, d) -> (B, T, d); `cross_modal` overrides the layer's setting for one call."""
        update = self.dropout_self(self.self_attn(x, x, x, need_weights=False)[0])
        use_context = self.cross_modal if cross_modal is None else cross_modal
        if use_context:
            update = update + self.dropout_cm(self.cm_attn(x, context, context, need_weights=False)[0])
        x = self.norm1(x + update)
        ff = self.linear2(self.dropout(torch.relu(self.linear1(x))))
        return self.norm2(x + self.dropout_ff(ff))


class HybridAttentionEncoder(nn.Module):
    """Stacked HAN layers; each layer is shared by both streams. HAN feeds both streams the layer's
    inputs; with `audio_first` (VALOR's encoder) the visual stream attends to the audio stream the
    same layer has just updated."""

    def __init__(self, n_layers: int = 1, audio_first: bool = False, **layer_kwargs) -> None:
        super().__init__()
        self.audio_first = audio_first
        self.layers = nn.ModuleList(HybridAttentionLayer(**layer_kwargs) for _ in range(n_layers))

    def forward(self, audio: Tensor, visual: Tensor, cross_modal: bool | None = None) -> tuple[Tensor, Tensor]:
        for layer in self.layers:
            updated = layer(audio, visual, cross_modal)
            visual = layer(visual, updated if self.audio_first else audio, cross_modal)
            audio = updated
        return audio, visual


class Streams(NamedTuple):
    """Both streams before (`*_in`) and after the attention layer; contrastive terms pair them."""

    audio_in: Tensor
    visual_in: Tensor
    audio: Tensor
    visual: Tensor


class HAN(nn.Module):
    """Features of the feature set, one (B, rows, dim) tensor per kind in its order -> MMIL outputs.

    With the published set: audio (B,10,128), frame (B,80 or 10,2048) and clip (B,10,512) features.
    Returns (global_prob (B,C), a_prob (B,C), v_prob (B,C), frame_prob (B,10,2,C)), modality
    axis ordered audio, visual. Rows already averaged to 10 segments give the same result as the
    kind's own rows (the mean commutes with its linear layer), cheaper. `cross_modal=False` lets
    each stream attend only to itself and `visual_dropout` drops visual features before the
    classifier (both JoMoLD's); neither adds parameters, so the state dict keeps the official names.
    `hidden`, `heads`, `ff`, `layers` and `audio_first` change the attention encoder (VALOR's: 8 heads,
    feed-forward 1024, the visual stream attending to the updated audio); their defaults are HAN's.
    """

    def __init__(self, n_classes: int, features: Sequence[str] = PUBLISHED, dropout: float = 0.1,
                 cross_modal: bool = True, visual_dropout: float = 0.0, hidden: int = D_MODEL, heads: int = 1,
                 ff: int = 512, layers: int = 1, audio_first: bool = False) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.kinds = feature_set(features)
        self.features = tuple(kind.name for kind in self.kinds)
        self.architecture = {"hidden": hidden, "heads": heads, "ff": ff, "layers": layers, "audio_first": audio_first}
        self.fusion = add_input_layers(self, self.kinds, hidden, self.input_layer)
        self.hat_encoder = HybridAttentionEncoder(layers, audio_first, d_model=hidden, n_heads=heads, d_ff=ff,
                                                  dropout=dropout, cross_modal=cross_modal)
        self.fc_prob = nn.Linear(hidden, n_classes)
        self.fc_frame_att = nn.Linear(hidden, n_classes)
        self.fc_av_att = nn.Linear(hidden, n_classes)
        self.visual_dropout = nn.Dropout(visual_dropout)

    # Released parameters that the forward pass never uses, dropped by name when a released state dict loads.
    released_unused: frozenset[str] = frozenset()
    # HAN's input layers are linear, so rows can be averaged to segments before them (cheaper, same result).
    pools_first = True

    @staticmethod
    def input_layer(width: int, hidden: int) -> nn.Module:
        """The layer that maps a kind's features (or a modality's concatenated kinds) to the stream width."""
        return nn.Linear(width, hidden)

    def options(self) -> dict[str, object]:
        """The constructor's options (checkpoints store them, so loading rebuilds the same model); the
        architecture's only where it departs from HAN's published one."""
        layer = self.hat_encoder.layers[0]
        departures = {k: v for k, v in self.architecture.items() if v != ARCHITECTURE[k]}
        return {"features": list(self.features), "dropout": layer.dropout.p, "cross_modal": layer.cross_modal,
                "visual_dropout": self.visual_dropout.p, **departures}

    def embed(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        """The two (B, 10, hidden) input streams of the attention layer: audio, visual (fused where
        several kinds feed one)."""
        if len(inputs) != len(self.kinds):
            raise ValueError(f"HAN takes {len(self.kinds)} inputs ({', '.join(self.features)}), got {len(inputs)}")
        streams = embed_inputs(self, self.kinds, inputs, self.fusion, self.pools_first)
        return streams["audio"], streams["visual"]

    def head(self, audio: Tensor, visual: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Attentive MMIL pooling over segments and modalities.

        The global score can reach 2 by construction (each modality's temporal attention sums to 1,
        and the modality attention can favour audio where audio attends and visual where visual
        attends), so it is clipped at 1 to stay a probability. Neither the loss (it clamps at
        1 - 1e-7 first) nor any decision (thresholds <= 1) changes.
        """
        x = torch.stack((audio, visual), dim=2)  # (B, T, 2, d)
        frame_prob = torch.sigmoid(self.frame_logits(audio, visual))
        frame_att = torch.softmax(self.fc_frame_att(x), dim=1)
        av_att = torch.softmax(self.fc_av_att(x), dim=2)
        temporal = frame_att * frame_prob
        global_prob = (temporal * av_att).sum(dim=(1, 2)).clamp(max=1.0)
        return global_prob, temporal[:, :, 0].sum(dim=1), temporal[:, :, 1].sum(dim=1), frame_prob

    def frame_logits(self, audio: Tensor, visual: Tensor) -> Tensor:
        """(B, T, 2, C) segment logits of both streams (their sigmoid is `frame_prob`), for losses on logits."""
        return self.fc_prob(torch.stack((audio, visual), dim=2))

    def encode(self, *inputs: Tensor, cross_modal: bool | None = None) -> Streams:
        """Both streams before and after the attention layer (`cross_modal` overrides the model's)."""
        a_in, v_in = self.embed(*inputs)
        return Streams(a_in, v_in, *self.hat_encoder(a_in, v_in, cross_modal))

    def classify(self, streams: Streams) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The MMIL outputs of encoded streams (visual dropout applies here, in training mode)."""
        return self.head(streams.audio, self.visual_dropout(streams.visual))

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.classify(self.encode(*inputs))


def official_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop the unused modules of the released networks by name (HAN's; MA-MMIL's own only where its
    whole layout is there) and a DataParallel `module.` prefix."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    unused = MA_MMIL_UNUSED_KEYS if MA_MMIL_UNUSED_KEYS <= state.keys() else UNUSED_OFFICIAL_KEYS
    return {k: v for k, v in state.items() if k not in unused}


def load_han_state(model: HAN, state: Mapping[str, Tensor]) -> None:
    """Load a state dict in our format or a released network's (HAN, MA-MMIL, JoMoLD, CMPAE); any
    other missing or unexpected key is an error naming it."""
    state = {k: v for k, v in official_state_dict(state).items() if k not in model.released_unused}
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"state dict does not fit {type(model).__name__} on features {list(model.features)}: missing keys "
                         f"{missing}, unexpected keys {unexpected}")
    classes = state["fc_prob.weight"].shape[0]
    if classes != model.n_classes:
        raise ValueError(f"state dict has {classes} classes, the model {model.n_classes}")
    model.load_state_dict(state, strict=True)
