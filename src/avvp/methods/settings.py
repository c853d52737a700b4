"""A training stage's settings: the schedule, HAN's options and the checkpoint choice.

The field defaults are the paper's HAN recipe (PROTOCOL §4); each stage's spec (`avvp.methods.stages`)
holds its own published defaults as a `TrainSettings` value, the single source of every default:
the command line and the workflow's config schema are generated from these fields. The seed, the
device and the feature set belong to the run, not to a stage.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

KEEP = ("type_at_av", "event_audio", "final")  # which epoch becomes model.pt


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None, minimum: float | None = None) -> Any:
    """A settings field with the help text (and constraints) that the CLI and the config schema show."""
    return field(default=default, metadata={"help": help, "choices": choices, "minimum": minimum})


@dataclass(frozen=True)
class TrainSettings:
    """Every hyper-parameter of a training stage; the defaults are the paper's HAN recipe."""

    epochs: int = setting(40, "training epochs", minimum=1)
    lr: float = setting(3e-4, "Adam learning rate", minimum=0)
    batch_size: int = setting(16, "videos per training batch", minimum=1)
    step_size: int = setting(10, "epochs between learning-rate steps", minimum=1)
    gamma: float = setting(0.1, "learning-rate factor at each step", minimum=0)
    visual_smoothing: float = setting(0.1, "label smoothing s of the visual target (1 - s) y + s / 2", minimum=0)
    dropout: float = setting(0.1, "dropout inside the attention layer", minimum=0)
    cross_modal: bool = setting(True, "cross-modal attention (off: each stream attends only to itself)")
    visual_dropout: float = setting(0.0, "dropout on the visual stream before the classifier", minimum=0)
    keep: str = setting("type_at_av", "the epoch kept as model.pt: best validation segment Type@AV, best "
                        "validation event-level audio F, or the final one", choices=KEEP)
    frame_threshold: float = setting(0.5, "segment threshold of the validation scores that choose the kept epoch",
                                     minimum=0)
    global_threshold: float = setting(0.5, "video threshold of the validation scores", minimum=0)

    def __post_init__(self) -> None:
        check_choices(self)

    def model_options(self) -> dict[str, Any]:
        """HAN's constructor options that training settings decide."""
        return {"dropout": self.dropout, "cross_modal": self.cross_modal, "visual_dropout": self.visual_dropout}


@dataclass(frozen=True)
class FaithfulSettings(TrainSettings):
    """A stage that can also follow the released code where it departs from its paper."""

    faithful: bool = setting(False, "reproduce the released code where it departs from the paper")


def check_choices(settings: Any) -> None:
    """A field with choices must hold one of them."""
    for f in dataclasses.fields(settings):
        choices = f.metadata.get("choices")
        if choices and getattr(settings, f.name) not in choices:
            raise ValueError(f"{f.name} must be one of {list(choices)}, not {getattr(settings, f.name)!r}")


def with_overrides(defaults: Any, overrides: dict[str, Any]) -> Any:
    """`defaults` with the given fields replaced; None means "keep the default"; unknown keys fail."""
    names = {f.name for f in dataclasses.fields(defaults)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for {type(defaults).__name__}; known: {sorted(names)}")
    return dataclasses.replace(defaults, **{k: v for k, v in overrides.items() if v is not None})


TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def field_type(f: dataclasses.Field) -> tuple[type, bool]:
    """A settings field's value type and whether it may be None (from its annotation)."""
    names = [part.strip() for part in str(f.type).split("|")]
    nullable = "None" in names
    kinds = [TYPES[name] for name in names if name != "None"]
    if len(kinds) != 1:
        raise TypeError(f"settings field {f.name}: unsupported type {f.type!r}")
    return kinds[0], nullable
