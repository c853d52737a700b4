"""Which extractor weights made a feature set, carried from the features to the model that uses them.

`avvp extract` writes a `weights.json` record beside every folder of features (kind, weights choice,
sha256, seed, how). Packing copies the record of each kind into the packed split, training copies
it into every checkpoint (`feature_weights`), and parsing or extracting for a checkpoint defaults to
the weights it was trained with, so a model trained on random features is never fed pretrained
ones by accident, nor the reverse. A kind without a record (the released feature files) and a
checkpoint that records nothing (the released `MMIL_Net.pt` and its kin) mean the published
pretrained networks. An explicit choice that differs from the record is refused unless the caller
allows the mismatch.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from avvp.base.files import file_sha256

RECORD_NAME = "weights.json"
Record = Mapping[str, Any]


@dataclass(frozen=True)
class WeightsRecord:
    """What `weights.json` holds: kind, weights choice, sha256, seed, and how they were made."""

    kind: str
    weights: str
    sha256: str
    seed: int
    how: str

    def as_dict(self) -> dict:
        return asdict(self)


def state_dict_sha256(state: Mapping[str, Any]) -> str:
    """A checksum of tensors themselves (names, dtypes, shapes, bytes), independent of file format
    (`state` maps names to torch tensors)."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}|{array.dtype.str}|{array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class WeightsMismatch(ValueError):
    """Features from other weights than the model was trained on (the message says which and how to proceed)."""


@dataclass(frozen=True)
class WeightsChoice:
    """What an extractor runs with: `pretrained`, `random` (seeded) or a state-dict path."""

    weights: str
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "seed": self.seed}

    def __str__(self) -> str:
        return f"random (seed {self.seed})" if self.weights == "random" else self.weights


def read_record(folder: str | Path) -> dict[str, Any] | None:
    """The `weights.json` of a folder of features, None when it has none (e.g. the released files)."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: unreadable weights record ({err})") from None


def combined_record(kind: str, folders: Iterable[str | Path]) -> dict[str, Any] | None:
    """The one record of the folders that supplied a kind's features; folders with different
    weights (by sha256) are an error naming them, since their features cannot be mixed."""
    records = {str(folder): read_record(folder) for folder in sorted({str(f) for f in folders})}
    known = {folder: r for folder, r in records.items() if r is not None}
    if len({r.get("sha256") for r in known.values()}) > 1:
        listed = "; ".join(f"{folder}: {r.get('weights')} (sha256 {r.get('sha256')})" for folder, r in known.items())
        raise ValueError(f"{kind} features come from different weights, which cannot be mixed: {listed}")
    return next(iter(known.values()), None)


def trained_choice(record: Record | None) -> WeightsChoice:
    """The weights a record stands for; no record means the published pretrained network."""
    if record is None:
        return WeightsChoice("pretrained")
    return WeightsChoice(str(record["weights"]), int(record.get("seed", 0)) if record["weights"] == "random" else 0)


def agrees(choice: WeightsChoice, record: Record | None) -> bool:
    """Whether features made with `choice` are those `record` describes. A state-dict file is
    compared by its sha256; against no record (published features) any file is accepted, since
    the published networks' files may be kept anywhere."""
    if record is None:
        return choice.weights != "random"
    if choice.weights == "random" or record["weights"] == "random":
        return choice.weights == record["weights"] == "random" and choice.seed == int(record.get("seed", 0))
    if choice.weights == "pretrained":
        return record["weights"] == "pretrained"
    path = Path(choice.weights)
    if path.is_file() and record.get("sha256"):
        return file_sha256(path) == record["sha256"]
    return str(path) == str(record["weights"])


def resolve_weights(kinds: Sequence[str], trained: Mapping[str, Record | None] | None, chosen: Mapping[str, str],
                    seed: int | None, allow_mismatch: bool, model: str | Path
                    ) -> tuple[dict[str, WeightsChoice], list[str]]:
    """Per kind the weights to extract with, and the kinds whose choice differs from the record.

    `chosen[kind]` (with `seed` for random weights) where given, else the checkpoint's record
    (`trained`: None for a checkpoint that records nothing), with `seed` replacing a recorded random
    seed. A choice that differs from the record raises WeightsMismatch naming `model`, unless
    `allow_mismatch`."""
    out, wrong = {}, []
    for kind in kinds:
        record = (trained or {}).get(kind)
        default = trained_choice(record)
        spec = chosen.get(kind, default.weights)
        choice = WeightsChoice(spec, (default.seed if seed is None else seed) if spec == "random" else 0)
        if not agrees(choice, record):
            wrong.append(f"{kind}: {choice} instead of {default}")
        out[kind] = choice
    if wrong and not allow_mismatch:
        what = "records no feature weights (a released checkpoint: pretrained)" if trained is None else \
            "was trained on features of other weights"
        raise WeightsMismatch(f"{model} {what}: {'; '.join(wrong)}. Its events would be meaningless; leave "
                              "--weights and --weights-seed out to use the checkpoint's own, or pass "
                              "--allow-weights-mismatch to run anyway")
    return out, [w.partition(":")[0] for w in wrong]
