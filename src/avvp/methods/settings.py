"""A training stage's settings: the schedule, HAN's options and the checkpoint choice.

`LoopSettings` holds what every training stage sets; `TrainSettings` adds the paper's HAN recipe
(PROTOCOL §4: Adam, step schedule, smoothed visual target), VALOR's settings (`avvp.methods.valor`)
its own optimiser and schedule. Each stage's spec (`avvp.methods.stages`) holds its own published
defaults as a settings value, the single source of every default:
the command line and the workflow's config schema are generated from these fields. The seed, the
device and the feature set belong to the run, not to a stage.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Which epoch becomes model.pt: the best validation segment Type@AV (a tie replaces the kept epoch),
# the same keeping the earliest of tied epochs (VALOR's rule), the best event-level audio F, the final one.
KEEP = ("type_at_av", "type_at_av_first", "event_audio", "mean_of_ten", "final")
# The rules that can score validation during training (avvp's protocols; calibrated gates at their default).
VALIDATION_RULES = ("avvp", "cmpae_as_published", "coleaf_as_published")


def option_flag(name: str) -> str:
    """The command-line option of a setting or stage input: batch_size -> --batch-size (the one rule,
    used by the CLI's stage options, `StageInput.flag` and the workflow's config-to-options)."""
    return "--" + name.replace("_", "-")


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None, minimum: float | None = None,
            maximum: float | None = None, below: float | None = None, path: bool = False) -> Any:
    """A settings field with the help text (and constraints) that the CLI and the config schema show;
    `minimum`/`maximum` bound the value inclusively, `below` exclusively; `path`: the value names a
    file, which the workflow makes an input of the stage's jobs (so an edit of the file reruns them)."""
    return field(default=default, metadata={"help": help, "choices": choices, "minimum": minimum,
                                            "maximum": maximum, "below": below, "path": path})


def probability(default: float | None, help: str) -> Any:
    """A setting that is a probability or a fraction (dropout, smoothing, a threshold): in [0, 1], so
    the config schema refuses a mistake at start rather than the job that uses it."""
    return setting(default, help, minimum=0, maximum=1)


@dataclass(frozen=True)
class LoopSettings:
    """What every training stage sets: the length of training, the base learning rate, the batch,
    HAN's options and which epoch to keep. Subclasses add the optimiser and its schedule."""

    epochs: int = setting(40, "training epochs", minimum=1)
    lr: float = setting(3e-4, "learning rate (where the schedule warms up: its peak)", minimum=0)
    batch_size: int = setting(16, "videos per training batch", minimum=1)
    dropout: float = probability(0.1, "dropout inside the attention layer")
    cross_modal: bool = setting(True, "cross-modal attention (off: each stream attends only to itself)")
    visual_dropout: float = probability(0.0, "dropout on the visual stream before the classifier")
    keep: str = setting("type_at_av", "the epoch kept as model.pt: best validation segment Type@AV (type_at_av: "
                        "a tie replaces the kept epoch; type_at_av_first: the earliest stays), best validation "
                        "event-level audio F, the best mean of the ten numbers (mean_of_ten, a tie replaces), or "
                        "the final one", choices=KEEP)
    frame_threshold: float = probability(0.5, "segment threshold of the validation scores that choose the kept "
                                         "epoch (validation_rule avvp)")
    global_threshold: float = probability(0.5, "video threshold of the validation scores (validation_rule avvp)")
    validation_rule: str = setting("avvp", "the evaluation protocol of the validation scores: avvp (the seed's "
                                   "rule at frame_threshold and global_threshold) or a method's own (its "
                                   "calibrated gates at their default)", choices=VALIDATION_RULES)

    # Whether the stage's network may read rows averaged to segments (packs made without --unpooled).
    pooled_inputs = True

    def __post_init__(self) -> None:
        check_values(self)

    def model_options(self) -> dict[str, Any]:
        """HAN's constructor options that training settings decide."""
        return {"dropout": self.dropout, "cross_modal": self.cross_modal, "visual_dropout": self.visual_dropout}

    def validation_protocol(self) -> Any:
        """The `avvp.evaluation.protocols.Protocol` that scores validation epochs."""
        from avvp.evaluation.protocols import BUILT_IN

        if self.validation_rule == "avvp":
            return BUILT_IN["avvp"].with_parts(frame_threshold=(self.frame_threshold,) * 2,
                                               gate_threshold=(self.global_threshold,) * 2)
        return BUILT_IN[self.validation_rule]

    def optimizer(self, params: Any) -> Any:
        """The torch optimiser of `params`."""
        raise NotImplementedError(f"{type(self).__name__} names no optimiser")

    def scheduler(self, optimizer: Any) -> Any:
        """The torch learning-rate scheduler, stepped once after each epoch."""
        raise NotImplementedError(f"{type(self).__name__} names no learning-rate schedule")

    def max_grad_norm(self) -> float | None:
        """The gradient-norm clip of every step (None: no clipping)."""
        return None


@dataclass(frozen=True)
class TrainSettings(LoopSettings):
    """Every hyper-parameter of a HAN-recipe stage; the defaults are the paper's: Adam, the learning
    rate multiplied by `gamma` every `step_size` epochs, label-smoothed visual targets."""

    step_size: int = setting(10, "epochs between learning-rate steps", minimum=1)
    gamma: float = setting(0.1, "learning-rate factor at each step", minimum=0)
    visual_smoothing: float = probability(0.1, "label smoothing s of the visual target (1 - s) y + s / 2")

    def optimizer(self, params: Any) -> Any:
        import torch

        return torch.optim.Adam(params, lr=self.lr)

    def scheduler(self, optimizer: Any) -> Any:
        import torch

        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.step_size, gamma=self.gamma)


@dataclass(frozen=True)
class FaithfulSettings(TrainSettings):
    """A stage that can also follow the released code where it departs from its paper."""

    faithful: bool = setting(False, "reproduce the released code where it departs from the paper")


def check_values(settings: Any) -> None:
    """Each field holds one of its choices and lies within its bounds (the command line's values meet
    the same constraints as the config schema's)."""
    for f in dataclasses.fields(settings):
        value, meta = getattr(settings, f.name), f.metadata
        if meta.get("choices") and value not in meta["choices"]:
            raise ValueError(f"{f.name} must be one of {list(meta['choices'])}, not {value!r}")
        if value is None or isinstance(value, (bool, str)):
            continue
        problem = _out_of_bounds(value, meta)
        if problem:
            raise ValueError(f"{f.name} must be {problem}, not {value!r}")


def _out_of_bounds(value: float, meta: Any) -> str | None:
    """Which bound of a field's metadata `value` breaks, as words ("at most 1"); None if none."""
    if meta.get("minimum") is not None and value < meta["minimum"]:
        return f"at least {meta['minimum']}"
    if meta.get("maximum") is not None and value > meta["maximum"]:
        return f"at most {meta['maximum']}"
    if meta.get("below") is not None and value >= meta["below"]:
        return f"below {meta['below']}"
    return None


def with_overrides(defaults: Any, overrides: dict[str, Any]) -> Any:
    """`defaults` with the given fields replaced; None means "keep the default"; unknown keys fail."""
    names = {f.name for f in dataclasses.fields(defaults)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for {type(defaults).__name__}; known: {sorted(names)}")
    settings = dataclasses.replace(defaults, **{k: v for k, v in overrides.items() if v is not None})
    check_values(settings)  # also the passes' settings, which have no __post_init__
    return settings


TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def field_type(f: dataclasses.Field) -> tuple[type, bool]:
    """A settings field's value type and whether it may be None (from its annotation)."""
    names = [part.strip() for part in str(f.type).split("|")]
    nullable = "None" in names
    kinds = [TYPES[name] for name in names if name != "None"]
    if len(kinds) != 1:
        raise TypeError(f"settings field {f.name}: unsupported type {f.type!r}")
    return kinds[0], nullable
