"""Command-line options of the registered stages: each settings field and each stage input once.

Options default to None, which means "the stage's own default" (its spec's published value); the
help of each option lists those defaults per stage. An option that the chosen stage does not have
is an error naming the stage.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from avvp.methods.settings import field_type, option_flag, with_overrides
from avvp.methods.stages import Stage


def add_stage_args(parser: argparse.ArgumentParser, specs: Iterable[Stage], default: str | None = None) -> None:
    """--stage (required unless a default is given), every settings field of `specs` and every stage
    input, once each."""
    specs = list(specs)
    parser.add_argument("--stage", choices=[s.id for s in specs], default=default, required=default is None,
                        help="; ".join(f"{s.id}: {s.description}" for s in specs)
                        + (f" (default: {default})" if default else ""))
    fields: dict[str, tuple[dataclasses.Field, dict[str, Any]]] = {}
    for spec in specs:
        for f in dataclasses.fields(spec.defaults):
            fields.setdefault(f.name, (f, {}))[1][spec.id] = getattr(spec.defaults, f.name)
    group = parser.add_argument_group("stage settings (default: the chosen stage's published value)")
    for name, (f, defaults) in fields.items():
        value_type, _ = field_type(f)
        per_stage = ", ".join(f"{stage} {value}" for stage, value in defaults.items())
        help_text = f"{f.metadata.get('help', '')} (defaults: {per_stage})"
        if value_type is bool:
            group.add_argument(option_flag(name), action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            group.add_argument(option_flag(name), type=value_type, default=None, choices=f.metadata.get("choices"),
                               help=help_text)
    inputs = {i.name: i for spec in specs for i in spec.inputs}
    if inputs:
        group = parser.add_argument_group("outputs of earlier stages")
        for needed in inputs.values():
            owners = ", ".join(s.id for s in specs if any(i.name == needed.name for i in s.inputs))
            group.add_argument(needed.flag, type=Path, help=f"{needed.help} ({owners})")


def stage_settings(spec: Stage, args: argparse.Namespace, specs: Iterable[Stage]) -> Any:
    """The chosen stage's settings: its defaults with the options given on the command line."""
    own = {f.name for f in dataclasses.fields(spec.defaults)}
    given = {f.name: getattr(args, f.name) for s in specs for f in dataclasses.fields(s.defaults)
             if getattr(args, f.name) is not None}
    foreign = sorted(set(given) - own)
    if foreign:
        raise ValueError(f"stage {spec.id} has no setting(s) {[option_flag(n) for n in foreign]}")
    return with_overrides(spec.defaults, given)


def stage_inputs(spec: Stage, args: argparse.Namespace, specs: Iterable[Stage]) -> dict[str, Path]:
    """The chosen stage's inputs from their options; a missing one, or one it does not take, fails."""
    own = {i.name for i in spec.inputs}
    given = {i.name: getattr(args, i.name) for s in specs for i in s.inputs if getattr(args, i.name) is not None}
    foreign = sorted(set(given) - own)
    if foreign:
        raise ValueError(f"stage {spec.id} takes no {[option_flag(n) for n in foreign]}")
    missing = [i.flag for i in spec.inputs if i.name not in given]
    if missing:
        raise ValueError(f"stage {spec.id} needs {missing} ({'; '.join(i.help for i in spec.inputs)})")
    return given
