"""The stages registry: one spec per training stage or pass, one id for it everywhere.

A stage's id names its config section (`stages.<id>`), its folder under
`results/runs/<run>/seed<N>/`, its log and benchmark files and its command-line choice
(`avvp train --stage ID`, `avvp pass --stage ID`). Its spec holds its published defaults (the
only copy of each number), what it needs from earlier stages (`StageInput`), and what it does: a
`TrainingStage` builds the objective of the shared training loop (`avvp.methods.training`) and,
optionally, per-modality targets; a `Pass` trains nothing: it writes its folder from the packed
training split (some passes with the frozen model of an earlier stage, such as MA-MMIL's refined
labels, others without one, such as VALOR's zero-shot labels). A `Method` is an ordered list of
stage ids; its result is the model of its last training stage.

Specs are plain data (importing this module and the method modules loads neither torch nor the
training loop). Built-in methods live in `avvp.methods.han`, `.ma_mmil` and `.jomold`; others are
registered with `register_stage` / `register_method` in your own code, or through the entry point
group `avvp.methods` (a callable that registers them), which every avvp process picks up.
docs/EXTENDING.md walks through adding one.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from avvp.base.registry import Registry
from avvp.methods.settings import option_flag

BUILTIN_MODULES = ("avvp.methods.han", "avvp.methods.ma_mmil", "avvp.methods.jomold", "avvp.methods.cmpae",
                   "avvp.methods.coleaf", "avvp.methods.valor", "avvp.methods.uwav")
ENTRY_POINTS = "avvp.methods"


@dataclass(frozen=True)
class StageInput:
    """A file or folder that an earlier stage of the same run wrote, handed to this stage by name
    (`--<name>` on the command line)."""

    name: str
    stage: str
    file: str = ""  # inside the stage's folder; "" = the folder itself
    help: str = ""

    @property
    def flag(self) -> str:
        return option_flag(self.name)


@dataclass(frozen=True)
class ValidationData:
    """The validation split a pass chooses something on (UWAV's class-wise thresholds): its pack, its
    weak labels and the annotation files of its segment-level ground truth."""

    pack: Path
    split_csv: Path
    audio_csv: Path
    visual_csv: Path


@dataclass(frozen=True)
class PassJob:
    """What a pass is given: its settings, its inputs by name, the packed training split, the folder
    to fill, the run's seed and device, the model options its spec fixes (`Pass.model_options`, set
    by `avvp.methods.passes.run_pass`) and, for a pass that reads it, the validation split."""

    settings: Any
    inputs: Mapping[str, Path]
    train_pack: Path | None  # None for a pass that reads none (`Pass.reads_train_pack`)
    out_dir: Path
    seed: int
    device: str
    model_options: Mapping[str, Any] = field(default_factory=dict)
    validation: ValidationData | None = None

    def frozen_model(self) -> tuple[Any, Any, Any, dict[str, Any]]:
        """(model, packed training split, device, checkpoint payload) of the `checkpoint` input, the
        model built with the checkpoint's options and those the job fixes, in eval mode on the job's
        device."""
        from avvp.model.checkpoint import load_han
        from avvp.base.device import resolve_device
        from avvp.features.store import load_packed

        packed = load_packed(self.train_pack)
        if len(packed) == 0:
            raise ValueError(f"{self.train_pack}: no videos")
        device = resolve_device(self.device)
        model, _, payload = load_han(self.inputs["checkpoint"], packed.classes, device, self.model_options)
        return model, packed, device, payload


@dataclass(frozen=True)
class TrainingStage:
    """A stage that trains HAN from scratch with the shared loop.

    `objective(settings, inputs, classes)` returns the loss (`avvp.methods.objectives.Objective`);
    `targets(inputs, train_pack)`, when given, the per-modality labels that replace the weak ones
    in the audio and visual terms (`avvp.methods.training.ModalityTargets`).
    """

    id: str
    description: str
    defaults: Any
    objective: Callable[[Any, Mapping[str, Path], Sequence[str]], Any]
    targets: Callable[[Mapping[str, Path], Any], Any] | None = None
    inputs: tuple[StageInput, ...] = ()

    trains = True
    per_seed = True  # training depends on the seed


@dataclass(frozen=True)
class Pass:
    """A stage that trains nothing: `run(job)` writes the stage's folder from the packed training
    split and returns a summary line. With `model_of`, it runs the frozen model of that earlier
    training stage (its model.pt is the input `checkpoint`); `model_options` are the HAN options the
    method fixes for the pass, over those the checkpoint stores (a released checkpoint stores none).
    `kinds` are feature kinds the pass reads from the training pack besides the model's (VALOR's
    zero-shot embeddings); the workflow extracts and packs them too, and fills the settings of
    `from_features` (setting -> (kind, key)) that its config leaves unset from `features.<kind>.<key>`,
    so the pass knows which weights made them. `per_seed=False`: the pass reads no earlier stage and
    not the run's seed (VALOR's zero-shot labels), so the workflow runs it once for all of a run's
    seeds. `explain(folder)`, when given, reads the pass's folder for what a reader of the scores
    must know (JoMoLD's ratios that drop every label of a modality), or None. `needs` are inputs
    from earlier stages besides the frozen model (a seedless pass may need only seedless ones, such
    as UWAV's labels the pretrained generator); `validation=True` gives the job the validation
    split (`PassJob.validation`); `reads_train_pack=False`, a pass that reads no packed training split
    (UWAV's pretraining on a data set of its own), gets none, so a change of that split does not rerun it.
    `demo_data` (setting -> path inside the demo's dense-label set: `avvp demo --dense` with its clip
    and clap_windows features) is what the workflow fills in demo mode where the config leaves it unset."""

    id: str
    description: str
    defaults: Any
    run: Callable[[PassJob], str]
    model_of: str | None = None
    model_options: Mapping[str, Any] = field(default_factory=dict)
    kinds: tuple[str, ...] = ()
    from_features: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    per_seed: bool = True
    explain: Callable[[Path], str | None] | None = None
    needs: tuple[StageInput, ...] = ()
    validation: bool = False
    reads_train_pack: bool = True
    demo_data: Mapping[str, str] = field(default_factory=dict)

    trains = False

    def __post_init__(self) -> None:
        if not self.per_seed and self.model_of is not None:
            raise ValueError(f"pass {self.id} runs the model of {self.model_of}, which differs per seed: "
                             "it must run per seed")

    @property
    def inputs(self) -> tuple[StageInput, ...]:
        if self.model_of is None:
            return self.needs
        return (StageInput("checkpoint", self.model_of, "model.pt", "model.pt of the stage whose model the pass runs"),
                *self.needs)


Stage = TrainingStage | Pass


@dataclass(frozen=True)
class Method:
    """A method: its stages in order; its result is the model of its last training stage."""

    name: str
    label: str
    stages: tuple[str, ...]

    @property
    def final_stage(self) -> str:
        return [s for s in self.stages if stage(s).trains][-1]


@functools.cache
def _load() -> None:
    """The built-in methods, then plug-ins (run once, on the first look-up)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for point in entry_points(group=ENTRY_POINTS):
        point.load()()


_STAGES: Registry[Stage] = Registry("stage", _load)
_METHODS: Registry[Method] = Registry("method", _load)


def register_stage(spec: Stage, replace: bool = False) -> Stage:
    return _STAGES.register(spec.id, spec, replace)


def register_method(method: Method, replace: bool = False) -> Method:
    """Register a method whose stages are registered and whose inputs come from earlier stages."""
    for i, stage_id in enumerate(method.stages):
        for needed in stage(stage_id).inputs:
            if needed.stage not in method.stages[:i]:
                raise ValueError(f"method {method.name}: stage {stage_id} needs {needed.stage}, "
                                 f"which does not come before it")
            if not stage(stage_id).per_seed and stage(needed.stage).per_seed:
                raise ValueError(f"method {method.name}: stage {stage_id}, run once for all seeds, needs "
                                 f"{needed.stage}, which differs per seed")
    if not any(stage(s).trains for s in method.stages):
        raise ValueError(f"method {method.name} has no training stage")
    return _METHODS.register(method.name, method, replace)


def unregister(name: str) -> None:
    """Forget a stage or method registered in this process (tests, notebooks)."""
    _STAGES.unregister(name)
    _METHODS.unregister(name)


def stages() -> dict[str, Stage]:
    return _STAGES.all()


def methods() -> dict[str, Method]:
    return _METHODS.all()


def stage(stage_id: str) -> Stage:
    return _STAGES.get(stage_id)


def method(name: str) -> Method:
    return _METHODS.get(name)


def pass_notes(passes: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """Method -> the notes its runs' passes give (`Pass.explain` of [run, seed, stage, folder]), each
    once, with the seeds it holds for."""
    seeds: dict[tuple[str, str], list[str]] = {}
    for run, seed, stage_id, folder in passes:
        text = stage(stage_id).explain(Path(folder))
        if text:
            seeds.setdefault((run, f"{stage(stage_id).id}: {text}"), []).append(seed)
    notes: dict[str, list[str]] = {}
    for (run, text), which in seeds.items():
        label = "seed" if len(which) == 1 else "seeds"
        notes.setdefault(run, []).append(f"{label} {', '.join(which)}, {text}")
    return notes
