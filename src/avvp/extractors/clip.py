"""CLIP ViT-L/14 image embeddings (`clip`), as VALOR (Lai et al., NeurIPS 2023) extracts them.

VALOR's `utils/clip_preprocess.py`: 10 of the 8 fps frames, picked by round(linspace(0, n-1, 10));
each RGB frame -> ToTensor -> Resize((224, 224)) (no crop; bilinear on the float tensor, without
antialiasing as in its torchvision 0.13) -> CLIP's mean/std; `get_image_features` (the projected
pooled output), L2-normalised: (10, 768) per clip. The same embeddings give its zero-shot visual
pseudo labels (`zero_shot_logits`: 100 x cosine with the prompts' text embeddings).
Weights: `openai/clip-vit-large-patch14` on the Hugging Face Hub (the checkpoint VALOR loads).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch import nn
from torchvision.transforms import InterpolationMode

from avvp.extractors import Extractor
from avvp.extractors.parts.frames import load_frames, normalise_frames, open_rgb
from avvp.extractors.parts.hf_models import ByteTokens, load_model, seeded_model, tokenizer_for

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FRAMES = 10
SIZE = 224
# openai/clip-vit-large-patch14's published configuration (its config.json), for random weights.
VIT_L14 = {
    "projection_dim": 768,
    "logit_scale_init_value": 2.6592,
    "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                      "num_attention_heads": 16, "patch_size": 14, "image_size": 224, "projection_dim": 768,
                      "hidden_act": "quick_gelu"},
    "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                    "num_attention_heads": 12, "max_position_embeddings": 77, "vocab_size": 49408,
                    "projection_dim": 768, "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1,
                    "hidden_act": "quick_gelu"},
}
RANDOM_TOKENS = ByteTokens(bos=49406, eos=49407, pad=49407, offset=0)


def config(values: dict = VIT_L14):
    from transformers import CLIPConfig

    return CLIPConfig(**values)


def random_clip(seed: int, values: dict = VIT_L14) -> tuple[nn.Module, str]:
    """A seeded CLIP of the published configuration (no training, no download)."""
    return seeded_model(_model_class(), config(values), seed), "seeded initialisation of CLIP ViT-L/14 (untrained)"


def _model_class():
    from transformers import CLIPModel

    return CLIPModel


def clip_frame(path: Path) -> np.ndarray:
    """(224, 224, 3) float32 in [0, 1]: ToTensor, then Resize((224, 224)) bilinear without antialias."""
    image = TF.to_tensor(open_rgb(path))
    resized = TF.resize(image, [SIZE, SIZE], InterpolationMode.BILINEAR, antialias=False)
    return resized.permute(1, 2, 0).numpy()


def load_clip_frames(folder: Path) -> np.ndarray:
    """(10, 224, 224, 3) float32: VALOR's 10 picked frames of a folder."""
    return load_frames(folder, clip_frame, FRAMES)


def prepare(frames: torch.Tensor) -> torch.Tensor:
    """(N, 224, 224, 3) float in [0, 1] -> (N, 3, 224, 224) CLIP-normalised."""
    return normalise_frames(frames, CLIP_MEAN, CLIP_STD).contiguous()


class ImageEmbeddings(nn.Module):
    """CLIP's projected image embeddings, L2-normalised (VALOR's features)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        embeds = self.model.get_image_features(pixel_values=pixel_values).pooler_output
        return embeds / embeds.norm(p=2, dim=-1, keepdim=True)


def feature_network(model: nn.Module, device: torch.device) -> nn.Module:
    return ImageEmbeddings(model).eval().to(device)


@torch.inference_mode()
def prompt_embeddings(model: nn.Module, weights: str, prompts: Sequence[str]) -> torch.Tensor:
    """(C, D) unit-length text embeddings of the prompts, padded to the longest, as VALOR's processor
    pads them."""
    tokens = tokenizer_for("clip", weights, RANDOM_TOKENS, padding=True)(prompts)
    text = model.get_text_features(**tokens).pooler_output
    return text / text.norm(p=2, dim=-1, keepdim=True)


@torch.inference_mode()
def zero_shot_logits(model: nn.Module, weights: str, image_embeds: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
    """(..., C) = logit_scale.exp() x cosine(image, prompt), VALOR's `logits_per_image`."""
    text = prompt_embeddings(model, weights, prompts)
    images = torch.tensor(np.asarray(image_embeds, np.float32))
    images = images / images.norm(p=2, dim=-1, keepdim=True)
    return (model.logit_scale.exp() * images @ text.T).numpy()


EXTRACTOR = Extractor(
    build=lambda: _model_class()(config()),
    random=random_clip,
    features=feature_network,
    load=load_clip_frames,
    prepare=prepare,
    from_folder=lambda folder: load_model(_model_class(), folder),
)
