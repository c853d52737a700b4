"""CMPAE's network (Gao, Chen, Xu, CVPR 2023, "Collecting Cross-Modal Presence-Absence Evidence").

HAN's attention encoder with an evidential head: each probability is a Beta-style evidence ratio
p = alpha_present / (alpha_present + alpha_absent), alpha = exp(clamp(logit, -10, 10) / 0.8) + 1,
whose total evidence also gives an uncertainty u = 2 / (alpha_present + alpha_absent). The
"presence" logit of a segment comes from its own stream (`fc_prob`), the "absence" logit from the
stream enriched by the other modality (`v2a`, `a2v`, then `fc_prob_beta`); attentive MMIL pooling
weighs both logits per segment (`fc_frame_att`, two outputs per class). The video probability is
a separate mutual-learning branch on the streams before attention (`classifier1`, `classifier2`).
Input layers end in an ELU, so features go through them row by row before segments are averaged
(`pools_first` is False: ResNet-152's 8 frames per segment must reach the network unpooled).
With cross-modal attention on, the encoder's output is 0.8 x (with) + 0.2 x (without), as the
released network hard-codes. Module names are the released ones (nets/net_audiovisual.py), so its
checkpoints load as they are; its unused `fc_global` is dropped by name.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from avvp.extractors import PUBLISHED
from avvp.model.han import HAN, Streams, _names

ENCODER_MIX = 0.8  # the with-attention encoder's weight in the released forward (ratio = 0.8)
EVIDENCE_TEMPERATURE = 0.8
EVIDENCE_CLAMP = 10.0


def evidence(logit: Tensor) -> Tensor:
    """exp(clamp(logit, -10, 10) / 0.8): the non-negative evidence behind a logit."""
    return torch.exp(logit.clamp(-EVIDENCE_CLAMP, EVIDENCE_CLAMP) / EVIDENCE_TEMPERATURE)


def presence(logits: Tensor) -> tuple[Tensor, Tensor]:
    """(..., 2) present/absent logits -> (probability of presence, uncertainty), each (...)."""
    alpha = evidence(logits) + 1
    total = alpha.sum(dim=-1)
    return alpha[..., 0] / total, 2 / total


class Evidence(NamedTuple):
    """Everything CMPAE's head gives: the four MMIL outputs and the uncertainties its loss weighs."""

    global_prob: Tensor  # (B, C) mutual-learning branch
    a_prob: Tensor  # (B, C)
    v_prob: Tensor
    frame_prob: Tensor  # (B, T, 2, C)
    global_uct: Tensor  # (B,)
    a_uct: Tensor  # (B, C)
    v_uct: Tensor


class CMPAENet(HAN):
    """HAN's options and feature sets with CMPAE's input layers, encoder mix and evidential head.
    Its defaults are the released network's: visual dropout 0.5 before the head (`cls_dropout`)."""

    released_unused = _names("fc_global.", ("0", "2"))
    pools_first = False

    def __init__(self, n_classes: int, features: Sequence[str] = PUBLISHED, dropout: float = 0.1,
                 cross_modal: bool = True, visual_dropout: float = 0.5, **architecture: object) -> None:
        super().__init__(n_classes, features, dropout, cross_modal, visual_dropout, **architecture)
        hidden = self.architecture["hidden"]
        del self.fc_av_att
        self.fc_frame_att = nn.Linear(hidden, 2 * n_classes)
        self.fc_prob_beta = nn.Linear(hidden, n_classes)
        self.v2a = nn.Sequential(nn.Linear(hidden, hidden), nn.Dropout(0.2), nn.LeakyReLU(0.2))
        self.a2v = nn.Sequential(nn.Linear(hidden, hidden), nn.Dropout(0.2), nn.LeakyReLU(0.2))
        self.classifier1 = nn.Sequential(nn.Linear(hidden, hidden), nn.LeakyReLU(0.2))
        self.classifier2 = nn.Linear(hidden, n_classes)

    @staticmethod
    def input_layer(width: int, hidden: int) -> nn.Module:
        return nn.Sequential(nn.Linear(width, hidden), nn.ELU())

    def options(self) -> dict[str, object]:
        return {**super().options(), "network": "cmpae"}

    def encode(self, *inputs: Tensor, cross_modal: bool | None = None) -> Streams:
        """Both streams before and after attention; with cross-modal attention, the released mix of
        the encoder run with and without it."""
        a_in, v_in = self.embed(*inputs)
        use = self.hat_encoder.layers[0].cross_modal if cross_modal is None else cross_modal
        if not use:
            return Streams(a_in, v_in, *self.hat_encoder(a_in, v_in, False))
        a_off, v_off = self.hat_encoder(a_in, v_in, False)
        a_on, v_on = self.hat_encoder(a_in, v_in, True)
        return Streams(a_in, v_in, ENCODER_MIX * a_on + (1 - ENCODER_MIX) * a_off,
                       ENCODER_MIX * v_on + (1 - ENCODER_MIX) * v_off)

    def evidence(self, streams: Streams) -> Evidence:
        """The evidential head on encoded streams (visual dropout applies here, in training mode)."""
        mutual = self.classifier2(self.classifier1(streams.audio_in) + self.classifier1(streams.visual_in))
        global_prob = torch.sigmoid(mutual).mean(dim=1)
        global_uct = self.n_classes / (evidence(mutual.mean(dim=1)) + 1).sum(dim=-1)
        audio, visual = streams.audio, self.visual_dropout(streams.visual)
        x = torch.stack((audio, visual), dim=2)  # (B, T, 2, d)
        batch, segments = x.shape[:2]
        absent = torch.stack((self.fc_prob_beta(audio + self.v2a(audio + visual)),
                              self.fc_prob_beta(visual + self.a2v(audio + visual))), dim=2)
        frame_logit = torch.stack((self.fc_prob(x), absent), dim=-1)  # (B, T, 2, C, 2)
        attention = torch.softmax(self.fc_frame_att(x).reshape(batch, segments, 2, self.n_classes, 2), dim=1)
        pooled = (attention * frame_logit).sum(dim=1)  # (B, 2, C, 2)
        a_prob, a_uct = presence(pooled[:, 0])
        v_prob, v_uct = presence(pooled[:, 1])
        return Evidence(global_prob, a_prob, v_prob, presence(frame_logit)[0], global_uct, a_uct, v_uct)

    def classify(self, streams: Streams) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return tuple(self.evidence(streams)[:4])

    def frame_logits(self, audio: Tensor, visual: Tensor) -> Tensor:
        raise NotImplementedError("CMPAE's segment probabilities are evidence ratios, not sigmoids of logits")
