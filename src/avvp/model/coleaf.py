"""CoLeaF's networks (Sardari et al., ECCV 2024, "A Contrastive-Collaborative Learning Framework").

The main network is CMPAE's (CoLeaF's code grew from CMPAE's): its released state dict adds two class
tokens per attention layer that its forward never uses (`cls_tokens_a`, `cls_tokens_v`), dropped by
name on loading. Training adds one single-modality branch per modality (`ModalityBranch`, the
released `Self_Audio_Net` / `Self_Video_Net`): the modality's features and one learned token per
class through a self-attention layer; the tokens give class probabilities (sigmoid of their mean
feature), the segments attentive MMIL pooling. The branches only train (`avvp.methods.collaborative`):
they are not part of the model a run keeps.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from avvp.extractors import FeatureKind
from avvp.model.cmpae import CMPAENet
from avvp.model.han import D_MODEL, HybridAttentionLayer, _names, add_input_layers, embed_inputs


class CoLeaFNet(CMPAENet):
    """CMPAE's network under CoLeaF's released parameter names."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        tokens = frozenset(f"hat_encoder.layers.{i}.cls_tokens_{m}" for i in range(len(self.hat_encoder.layers))
                           for m in "av")
        self.released_unused = CMPAENet.released_unused | tokens

    def options(self) -> dict[str, object]:
        return {**super().options(), "network": "coleaf"}


class BranchOutput(NamedTuple):
    """One branch's outputs (the released order): video-level and segment probabilities, the class
    tokens' probabilities and the L2-normalised segment features."""

    prob: Tensor  # (B, C)
    frame_prob: Tensor  # (B, T, C)
    token_prob: Tensor  # (B, C)
    features: Tensor  # (B, T, d)


class ModalityBranch(nn.Module):
    """A one-modality network: input layers (linear, as HAN's), `n_classes` learned tokens before the
    segments, self-attention layers, a classifier with dropout (the visual branch drops before its
    temporal attention too, the audio branch only before the classifier, as released)."""

    def __init__(self, modality: str, kinds: Sequence[FeatureKind], n_classes: int, layers: int = 1,
                 hidden: int = D_MODEL, dropout: float = 0.1, classifier_dropout: float = 0.5) -> None:
        super().__init__()
        self.modality, self.kinds, self.n_classes = modality, tuple(kinds), n_classes
        self.fusion = add_input_layers(self, self.kinds, hidden, nn.Linear)
        self.hat_encoder = nn.Module()
        self.hat_encoder.layers = nn.ModuleList(HybridAttentionLayer(hidden, 1, 512, dropout, cross_modal=False)
                                                for _ in range(layers))
        self.register_parameter(f"cls_tokens_{modality[0]}", nn.Parameter(torch.zeros(1, n_classes, hidden)))
        self.fc_prob = nn.Linear(hidden, n_classes)
        self.fc_frame_att = nn.Linear(hidden, n_classes)
        self.dropout = nn.Dropout(classifier_dropout)

    def forward(self, *inputs: Tensor) -> BranchOutput:
        x = embed_inputs(self, self.kinds, inputs, self.fusion, pools_first=True)[self.modality]
        tokens = getattr(self, f"cls_tokens_{self.modality[0]}").expand(len(x), -1, -1)
        x = torch.cat((tokens, x), dim=1)
        for layer in self.hat_encoder.layers:
            x = layer(x, x, cross_modal=False)
        token_prob = torch.sigmoid(x[:, :self.n_classes].mean(dim=-1))
        x = x[:, self.n_classes:]
        features = nn.functional.normalize(x, dim=-1)
        dropped = self.dropout(x)
        frame_prob = torch.sigmoid(self.fc_prob(dropped))
        attention = torch.softmax(self.fc_frame_att(dropped if self.modality == "visual" else x), dim=1)
        return BranchOutput((attention * frame_prob).sum(dim=1), frame_prob, token_prob, features)


# The released branches' modules that their forward never uses.
BRANCH_UNUSED = _names("hat_encoder.", ("norm1", "norm2"))
