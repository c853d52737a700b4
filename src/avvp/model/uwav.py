"""UWAV's temporal pseudo-label generator (Lai et al., CVPR 2025): one transformer per modality over
a video's one-second CLAP (audio) and CLIP (visual) segment embeddings, scored against the frozen
text embeddings of the class prompts.

Per modality: a 2-layer MLP (ReLU) from the input embedding to `hidden` (its inner width 2 x hidden),
a stack of post-norm transformer encoder layers (ReLU feed-forward), and a 2-layer MLP back to the
width of the text embeddings (512 for CLAP, 768 for CLIP). A segment's logit for a class is a fixed
scale times the dot product of that output with the class's text embedding: no normalisation of
either side and no exp() of the scale (3.2912 audio, 4.6052 visual, as released). Pretrained on
UnAV-100 with audio-visual labels, it then labels the target data set's segments.

Module and buffer names are the released ones (model/TemporalTransformer.py), so the released
generator's `state_dict()` loads as it is, the logit scales included; the text embeddings are not in
that file (the released code passes them to the constructor) and are buffers left out of ours too.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

AUDIO_LOGIT_SCALE = 3.2912
VISUAL_LOGIT_SCALE = 4.6052
# The released recipe (scripts/train_transformer.sh, pseudo_label_generation.sh).
ARCHITECTURE = {"hidden": 1024, "heads": 16, "ff": 2048, "layers": 5, "dropout": 0.3}
# Additive attention mask of padded positions: large but finite, so that a padded query row, whose keys
# are all masked, stays a plain (uniform) softmax instead of NaN, as released.
MASKED = -1e10


class ProjectionMLP(nn.Module):
    """Linear, ReLU, Linear: `layers.0` and `layers.1`, the released MLP's names."""

    def __init__(self, width_in: int, inner: int, width_out: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList((nn.Linear(width_in, inner), nn.Linear(inner, width_out)))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers[1](torch.relu(self.layers[0](x)))


class TemporalEncoder(nn.Module):
    """Post-norm transformer encoder layers (no final norm) under the released name `encoder`.

    It runs time-first, as released: batch-first inference takes torch's fused fast path, whose
    results differ from the released ones by about 1e-6."""

    def __init__(self, hidden: int, heads: int, ff: int, layers: int, dropout: float) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=ff, dropout=dropout)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, T, hidden); mask: (B x heads, T, T) additive, or None."""
        return self.encoder(x.transpose(0, 1), mask=mask).transpose(0, 1)


def attention_mask(valid: Tensor, heads: int) -> Tensor:
    """(B, T) bool -> (B x heads, T, T) additive mask: a pair of segments attends only where both are
    valid, the released (B, T, T) mask repeated per head, batch-major."""
    pairs = valid[:, :, None] & valid[:, None, :]
    return ((~pairs).float() * MASKED).repeat_interleave(heads, dim=0)


class UWAVGenerator(nn.Module):
    """The audio and visual generators of UWAV, scoring segments against fixed class-prompt embeddings.

    audio_text: (C, 512) CLAP text embeddings of "This is the sound of <class>"; visual_text: (C, 768)
    CLIP text embeddings of "A photo of <class>". They are used as given (the released files hold
    L2-normalised ones) and may change with the data set; the trained weights do not depend on C.
    """

    def __init__(self, audio_text: Tensor, visual_text: Tensor, audio_dim: int = 512, visual_dim: int = 768,
                 hidden: int = ARCHITECTURE["hidden"], heads: int = ARCHITECTURE["heads"],
                 ff: int = ARCHITECTURE["ff"], layers: int = ARCHITECTURE["layers"],
                 dropout: float = ARCHITECTURE["dropout"]) -> None:
        super().__init__()
        if audio_text.ndim != 2 or visual_text.ndim != 2 or len(audio_text) != len(visual_text):
            raise ValueError(f"text embeddings must be (C, d) with the same C, got {tuple(audio_text.shape)} "
                             f"and {tuple(visual_text.shape)}")
        self.heads = heads
        self.proj_a = ProjectionMLP(audio_dim, 2 * hidden, hidden)
        self.proj_v = ProjectionMLP(visual_dim, 2 * hidden, hidden)
        self.a_transformer = TemporalEncoder(hidden, heads, ff, layers, dropout)
        self.v_transformer = TemporalEncoder(hidden, heads, ff, layers, dropout)
        self.register_buffer("a_logit_scale", torch.tensor(AUDIO_LOGIT_SCALE, dtype=torch.float32))
        self.register_buffer("v_logit_scale", torch.tensor(VISUAL_LOGIT_SCALE, dtype=torch.float32))
        self.register_buffer("audio_text", audio_text.detach().float().clone(), persistent=False)
        self.register_buffer("visual_text", visual_text.detach().float().clone(), persistent=False)
        text_a, text_v = audio_text.shape[1], visual_text.shape[1]
        self.final_proj_a = ProjectionMLP(hidden, text_a, text_a)
        self.final_proj_v = ProjectionMLP(hidden, text_v, text_v)

    @property
    def n_classes(self) -> int:
        return len(self.audio_text)

    @classmethod
    def from_released(cls, state: Mapping[str, Tensor], audio_text: Tensor, visual_text: Tensor,
                      heads: int = ARCHITECTURE["heads"], dropout: float = ARCHITECTURE["dropout"]) -> UWAVGenerator:
        """The generator a released state dict describes (its widths and depth read from the weights; the
        head count, which no weight shape shows, as released), with its weights loaded strictly."""
        layers = {key.split(".")[3] for key in state if key.startswith("a_transformer.encoder.layers.")}
        model = cls(audio_text, visual_text, audio_dim=state["proj_a.layers.0.weight"].shape[1],
                    visual_dim=state["proj_v.layers.0.weight"].shape[1], hidden=state["proj_a.layers.1.weight"].shape[0],
                    heads=heads, ff=state["a_transformer.encoder.layers.0.linear1.weight"].shape[0],
                    layers=len(layers), dropout=dropout)
        model.load_state_dict(state, strict=True)
        return model

    def forward(self, audio: Tensor, visual: Tensor, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """audio (B, T, audio_dim), visual (B, T, visual_dim), valid (B, T) bool where videos of different
        lengths are padded (None: every segment is real) -> audio and visual logits, each (B, T, C)."""
        mask = None if valid is None else attention_mask(valid, self.heads)
        a = self.final_proj_a(self.a_transformer(self.proj_a(audio), mask))
        v = self.final_proj_v(self.v_transformer(self.proj_v(visual), mask))
        return a @ self.audio_text.T * self.a_logit_scale, v @ self.visual_text.T * self.v_logit_scale
