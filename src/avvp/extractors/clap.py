"""LAION-CLAP (HTSAT-tiny audio tower, fusion model) as VALOR (Lai et al., NeurIPS 2023) uses it.

Two kinds, from one network (VALOR's `utils/clap_preprocess.py` and `utils/clap_utils.py`):
- `clap`: the per-clip audio feature maps that VALOR++ trains HAN on, (64, 768): the clip at 48 kHz
  forced to exactly 480,000 samples by nearest-index picking, an int16 round trip, one log-mel of
  1001 x 64 (stacked 4 times, the fusion model's input, no fusion used), and the audio tower's
  last hidden state (768, 2 frequency groups, 32 time tokens) with row f * 32 + t. HAN reaches
  its 10 segments as VALOR's network does (bicubic up-sampling of the 32 tokens to 1024, mean over
  the 2 groups, adaptive average pooling to 10), all weighted means: `segment_weights`.
- `clap_windows`: the L2-normalised projected embeddings (10, 512) of ten one-second windows (rows
  `round(linspace(0, N, 11))[i]` to that plus N // 10), each int16 round-tripped and repeat-padded
  to 10 s: what VALOR's zero-shot audio pseudo labels compare with the class prompts
  (`zero_shot_logits`: logit_scale_a x audio @ text.T).

Audio: the clip's own audio track as VALOR's `librosa.load(mp4, sr=48000)` reads it (decoded at
its own rate, channel mean, soxr HQ to 48 kHz: `avvp.clips.audio_track.load_track`, equal bit for bit),
so the kinds' medium is the clip file itself, not the pipeline's 16 kHz WAV (which holds nothing
above 8 kHz; CLAP's mel bands reach 14 kHz). A clip without audio gives silence. Every window
goes through the tower without the fusion branch; VALOR's laion_clap sends one randomly chosen
window of each clip through it (an unseeded random flip), which is not reproducible and is left
out.
Weights: `laion/clap-htsat-fused` on the Hugging Face Hub; see docs/PROTOCOL.md §VALOR for how it
relates to the `630k-fusion-best.pt` that VALOR loads.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avvp.clips.audio_track import load_track
from avvp.extractors import Extractor
from avvp.extractors.parts.hf_models import ByteTokens, load_model, seeded_model, tokenizer_for
from avvp.base.protocol import SEGMENTS

RATE = 48000
CLIP_SAMPLES = 480000  # 10 s at 48 kHz: HTSAT-tiny's clip_samples
MAP_ROWS = 64  # 2 frequency groups x 32 time tokens
# The audio front end of laion/clap-htsat-fused (its preprocessor_config.json = laion's HTSAT-tiny).
FRONT_END = {"feature_size": 64, "sampling_rate": RATE, "fft_window_size": 1024, "hop_length": 480,
             "frequency_min": 50, "frequency_max": 14000, "max_length_s": 10, "truncation": "fusion",
             "padding": "repeatpad", "top_db": None}
# laion/clap-htsat-fused's published configuration (HTSAT-tiny + RoBERTa-base), for random weights.
HTSAT_FUSED = {
    "projection_dim": 512,
    "logit_scale_init_value": 14.285714285714285,
    "audio_config": {"enable_fusion": True, "hidden_size": 768, "depths": [2, 2, 6, 2],
                     "num_attention_heads": [4, 8, 16, 32], "patch_embeds_hidden_size": 96, "spec_size": 256,
                     "num_mel_bins": 64, "window_size": 8, "patch_size": 4, "patch_stride": [4, 4],
                     "projection_dim": 512},
    "text_config": {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "intermediate_size": 3072, "max_position_embeddings": 514, "type_vocab_size": 1,
                    "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "projection_dim": 512},
}
RANDOM_TOKENS = ByteTokens(bos=0, eos=2, pad=1, offset=3, length=77)


def config(values: dict = HTSAT_FUSED):
    from transformers import ClapConfig

    return ClapConfig(**values)


def _model_class():
    from transformers import ClapModel

    return ClapModel


def random_clap(seed: int, values: dict = HTSAT_FUSED) -> tuple[nn.Module, str]:
    """A seeded CLAP of the published configuration (no training, no download)."""
    return seeded_model(_model_class(), config(values), seed), "seeded initialisation of CLAP HTSAT-tiny fused (untrained)"


@functools.cache
def front_end():
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(**FRONT_END)


def audio_48k(path: Path) -> np.ndarray:
    """The clip's audio as float32 mono at 48 kHz, as VALOR loads it (module docstring)."""
    return load_track(path, RATE)


def int16_round_trip(wave: np.ndarray) -> np.ndarray:
    """laion_clap's quantisation: clip to [-1, 1], x 32767 to int16 (truncating), / 32767."""
    return (np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0


def window_bounds(n: int) -> list[tuple[int, int]]:
    """VALOR's ten windows of n samples: start round(linspace(0, n, 11))[i], length n // 10."""
    starts = np.round(np.linspace(0, n, SEGMENTS + 1)).astype(np.int32)
    return [(int(starts[i]), int(starts[i]) + n // SEGMENTS) for i in range(SEGMENTS)]


def ten_seconds(wave: np.ndarray) -> np.ndarray:
    """VALOR's feature-map input: exactly 480,000 samples picked by round(linspace(0, n-1, 480000))."""
    return wave[np.round(np.linspace(0, len(wave) - 1, CLIP_SAMPLES)).astype(np.int32)]


def mel_input(waves: Sequence[np.ndarray]) -> np.ndarray:
    """(len(waves), 4, 1001, 64) float32: CLAP's fusion input (repeat-padded to 10 s)."""
    return front_end()(list(waves), sampling_rate=RATE, return_tensors="np")["input_features"].astype(np.float32)


def load_map_input(path: Path) -> np.ndarray:
    """(1, 4, 1001, 64): the clip's whole 10 s as one network row."""
    return mel_input([int16_round_trip(ten_seconds(audio_48k(path)))])


def load_window_inputs(path: Path) -> np.ndarray:
    """(10, 4, 1001, 64): the clip's ten one-second windows."""
    wave = audio_48k(path)
    return mel_input([int16_round_trip(wave[a:b]) for a, b in window_bounds(len(wave))])


class FeatureMaps(nn.Module):
    """The audio tower's last hidden state as (B, 64, 768) rows, no fusion branch."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.audio = model.audio_model

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        longer = torch.zeros(len(mels), 1, dtype=torch.bool, device=mels.device)
        state = self.audio(input_features=mels, is_longer=longer).last_hidden_state  # (B, 768, 2, 32)
        return state.flatten(2).transpose(1, 2)


class WindowEmbeddings(nn.Module):
    """Projected, L2-normalised audio embeddings (B, 512), no fusion branch."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        longer = torch.zeros(len(mels), 1, dtype=torch.bool, device=mels.device)
        return self.model.get_audio_features(input_features=mels, is_longer=longer).pooler_output


def segment_weights(rows: int = MAP_ROWS) -> np.ndarray:
    """(10, 64): VALOR's way from the 2 x 32 token map to 10 segments, as weights on the rows."""
    import torch.nn.functional as F

    if rows != MAP_ROWS:
        raise ValueError(f"CLAP feature maps have {MAP_ROWS} rows, not {rows}")
    basis = torch.eye(MAP_ROWS, dtype=torch.float64).reshape(1, MAP_ROWS, 2, MAP_ROWS // 2)
    upsampled = F.interpolate(basis, size=(2, 1024), mode="bicubic").mean(dim=2)  # (1, 64 rows, 1024)
    return F.adaptive_avg_pool1d(upsampled, SEGMENTS)[0].T.float().numpy()


@torch.inference_mode()
def prompt_embeddings(model: nn.Module, weights: str, prompts: Sequence[str]) -> torch.Tensor:
    """(C, D) text embeddings of the prompts (CLAP's projection output), padded to 77 tokens as VALOR's
    processor pads them."""
    tokens = tokenizer_for("clap", weights, RANDOM_TOKENS, padding="max_length", max_length=77)(prompts)
    return model.get_text_features(**tokens).pooler_output


@torch.inference_mode()
def zero_shot_logits(model: nn.Module, weights: str, audio_embeds: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
    """(..., C) = logit_scale_a.exp() x audio @ text.T, VALOR's audio logits."""
    text = prompt_embeddings(model, weights, prompts)
    audio = torch.tensor(np.asarray(audio_embeds, np.float32))
    return (model.logit_scale_a.exp() * audio @ text.T).numpy()


def _from_folder(folder: Path) -> nn.Module:
    return load_model(_model_class(), folder)


def _extractor(network: type[nn.Module], load: Callable[[Path], np.ndarray]) -> Extractor:
    """CLAP's audio tower as one of its two kinds: the same model, each with its own input and output."""
    return Extractor(
        build=lambda: _model_class()(config()),
        random=random_clap,
        features=lambda model, device: network(model).eval().to(device),
        load=load,
        prepare=lambda mels: mels.float(),
        from_folder=_from_folder,
    )


MAPS = _extractor(FeatureMaps, load_map_input)
WINDOWS = _extractor(WindowEmbeddings, load_window_inputs)
