"""UWAV's HAN (Lai et al., CVPR 2025, "Uncertainty-weighted Weakly-supervised Audio-Visual Video Parsing").

UWAV trains a wider, deeper HAN than the paper's: five layers of width 512 with 16 heads and a
feed-forward width of 2048, the visual stream attending to the audio its layer has just updated
(`audio_first`, as VALOR's encoder). Its input layers differ from HAN's: a modality's features are
averaged to segments and concatenated, then go through one perceptron per modality, ReLU between
its linear layers and 2 x hidden wide inside: two layers for audio (`fc_a`), `proj_layers` for the
visual stream (`fc_fusion`; the released script's 1, a single linear layer on ResNet-152 + R(2+1)D).
The MMIL attention layers are one-layer perceptrons, i.e. linear layers. Module names are the
released ones (model/HAN.py: `fc_a.layers.0`, `fc_fusion.layers.0`, `fc_frame_att.layers.0`, ...),
so a released state dict loads as it is; the encoder's final LayerNorms, which only pre-norm layers
use (the released layers are post-norm), are dropped by name. HAN's head clips the global score at
1, which the released one does not: the loss clamps it at 1 - 1e-7 first and the decisions compare
it with 0.5, so neither changes.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from avvp.base.protocol import MODALITIES
from avvp.extractors import PUBLISHED
from avvp.model.han import HAN, _names, to_segments

AUDIO_LAYERS = 2  # the released audio perceptron's depth, fixed in its code


class Perceptron(nn.Module):
    """`depth` linear layers from `width` to `out`, the inner ones `inner` wide, ReLU between them."""

    def __init__(self, width: int, inner: int, out: int, depth: int) -> None:
        super().__init__()
        widths = [width] + [inner] * (depth - 1) + [out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))

    def forward(self, x: Tensor) -> Tensor:
        *inner, last = self.layers
        for layer in inner:
            x = torch.relu(layer(x))
        return last(x)


class UwavHAN(HAN):
    """HAN with UWAV's input layers and released names; its defaults are the released script's
    (scripts/train_han.sh). `options()` stores every architecture value, so a checkpoint rebuilds it
    whatever the defaults."""

    released_unused = _names("hat_encoder.", ("final_norm_a", "final_norm_v"))

    def __init__(self, n_classes: int, features: Sequence[str] = PUBLISHED, dropout: float = 0.1,
                 cross_modal: bool = True, visual_dropout: float = 0.0, hidden: int = 512, heads: int = 16,
                 ff: int = 2048, layers: int = 5, audio_first: bool = True, proj_layers: int = 1) -> None:
        super().__init__(n_classes, features, dropout, cross_modal, visual_dropout, hidden, heads, ff, layers,
                         audio_first)
        for name in {kind.han_layer for kind in self.kinds} | set(self.fusion.values()):
            delattr(self, name)  # HAN's per-kind and fusion layers: UWAV's perceptrons replace them
        self.fusion = {}
        self.proj_layers = proj_layers
        width = {m: sum(kind.dim for kind in self.kinds if kind.modality == m) for m in MODALITIES}
        self.fc_a = Perceptron(width["audio"], 2 * hidden, hidden, AUDIO_LAYERS)
        self.fc_fusion = Perceptron(width["visual"], 2 * hidden, hidden, proj_layers)
        self.fc_frame_att = Perceptron(hidden, 2 * hidden, n_classes, 1)
        self.fc_av_att = Perceptron(hidden, 2 * hidden, n_classes, 1)

    def options(self) -> dict[str, object]:
        return {**super().options(), **self.architecture, "proj_layers": self.proj_layers, "network": "uwav"}

    def embed(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Each modality's kinds averaged to segments, concatenated, through its perceptron."""
        if len(inputs) != len(self.kinds):
            raise ValueError(f"UWAV's HAN takes {len(self.kinds)} inputs ({', '.join(self.features)}), "
                             f"got {len(inputs)}")
        parts: dict[str, list[Tensor]] = {m: [] for m in MODALITIES}
        for kind, x in zip(self.kinds, inputs):
            parts[kind.modality].append(to_segments(kind, x))
        return self.fc_a(torch.cat(parts["audio"], dim=-1)), self.fc_fusion(torch.cat(parts["visual"], dim=-1))
