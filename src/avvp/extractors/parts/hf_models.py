"""What the two image/audio-text kinds (`clip`, `clap`) share: their networks are Hugging Face
`transformers` models, published as model folders, and their text towers need a tokenizer.

A tokenizer comes from the model folder (`pretrained`: the cached Hub folder; PATH: the folder).
Random weights have no vocabulary, and avvp downloads nothing for them, so their prompts are
tokenised as UTF-8 bytes: meaningless, as is every answer of a random network.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class ByteTokens:
    """Token ids for a random text tower: `bos`, each UTF-8 byte + `offset`, `eos`; padded with `pad`
    to the longest prompt, or to `length` when given."""

    bos: int
    eos: int
    pad: int
    offset: int
    length: int | None = None

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        rows = [[self.bos, *(b + self.offset for b in text.encode("utf-8")), self.eos] for text in texts]
        width = self.length or max(map(len, rows))
        if any(len(row) > width for row in rows):
            raise ValueError(f"a prompt is longer than {width} tokens")
        ids = torch.tensor([row + [self.pad] * (width - len(row)) for row in rows])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
        return {"input_ids": ids, "attention_mask": mask}


def load_model(cls: Any, folder: Path) -> Any:
    """A transformers model class's model from a local folder, float32, never downloading; a folder
    whose weights are no plain tensors (a pickle naming code) fails in one line naming it."""
    from avvp.base.files import load_refusal

    try:
        return cls.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    except Exception as err:  # a pickle a weights-only load refuses, no weights file, a broken one
        raise ValueError(f"{folder}: not a loadable model folder ({load_refusal(err)})") from None


def seeded_model(cls: Any, config: Any, seed: int) -> Any:
    """A transformers model of `config` with transformers' own initialisation drawn from `seed`."""
    torch.manual_seed(seed)
    return cls(config).eval()


def folder_tokenizer(folder: Path, **options: Any) -> Callable[[Sequence[str]], dict[str, torch.Tensor]]:
    """The tokenizer saved in a model folder (an error naming the folder when it has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"{folder}: no tokenizer files in this model folder ({err}); save the "
                                f"model's tokenizer (or processor) into it") from err
    return lambda texts: dict(tokenizer(list(texts), return_tensors="pt", **options))


def tokenizer_for(kind: str, weights: str, random_tokens: ByteTokens,
                  **options: Any) -> Callable[[Sequence[str]], dict[str, torch.Tensor]]:
    """The tokenizer that goes with `weights` of `kind`: bytes for `random`, else the model folder's."""
    if weights == "random":
        return random_tokens
    from avvp.extractors import feature_kind
    from avvp.extractors.parts.downloads import hub_folder

    return folder_tokenizer(hub_folder(feature_kind(kind)) if weights == "pretrained" else Path(weights), **options)
