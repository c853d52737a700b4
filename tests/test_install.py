"""The install contract: pyproject.toml declares compatible ranges, constraints.txt the exact tested
versions, and the two agree (a pin outside its range would make `make setup` fail on a fresh machine)."""
from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    rows = [line.split("==") for line in lines if line.strip() and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in rows}


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_every_dependency_is_pinned_inside_its_declared_range() -> None:
    pinned = pins()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is a dependency but constraints.txt does not pin it"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pinned[name]}, outside pyproject's {requirement.specifier}")


def test_torch_is_a_range_so_a_cluster_keeps_its_own_build() -> None:
    ranges = {canonicalize_name(r.name): r.specifier for r in declared()}
    for name in ("torch", "torchvision"):
        assert not any(spec.operator == "==" for spec in ranges[name]), f"{name} is pinned exactly in pyproject"
