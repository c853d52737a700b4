"""The conda environments of the workflow's rules (envs/*.yaml) pin the versions that constraints.txt
(the versions the tests ran with) holds, so the two cannot drift apart."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# conda's name of a package -> pip's, where they differ.
CONDA_TO_PIP = {"pytorch": "torch", "matplotlib-base": "matplotlib", "py-opencv": "opencv-python"}
# Pinned in the environments but not pip packages of the venv (so not in constraints.txt): each must
# have one version across all environments (python's: the "Python X.Y" of constraints.txt's header).
NOT_IN_CONSTRAINTS = {"python", "pip", "ffmpeg"}
_PIP_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)$")
_CONDA_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==?\s*([^\s=]+)(?:=\S+)?$")


def normalise(name: str) -> str:
    """PEP 503: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints() -> tuple[dict[str, str], str]:
    """(package -> version, the "Python X.Y" of the header) of constraints.txt."""
    pins: dict[str, str] = {}
    python = ""
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            python = python or next(iter(re.findall(r"Python (\d+\.\d+)", line)), "")
            continue
        if line.strip():
            found = _PIP_PIN.match(line.strip())
            assert found, f"constraints.txt: not a pin: {line!r}"
            pins[normalise(found.group(1))] = found.group(2)
    return pins, python


def env_pins(path: Path) -> list[tuple[str, str | None, str]]:
    """(package, version or None when unpinned, "conda" or "pip") of one environment file; pip's
    options (`-e ../..`) are not packages."""
    pins: list[tuple[str, str | None, str]] = []
    for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["dependencies"]:
        if isinstance(entry, dict):
            for spec in entry.get("pip", []):
                if spec.startswith("-"):
                    continue
                found = _PIP_PIN.match(spec.strip())
                pins.append((normalise(found.group(1)), found.group(2), "pip") if found
                            else (normalise(re.split(r"[\s<>=!~\[;]", spec, maxsplit=1)[0]), None, "pip"))
            continue
        spec = str(entry).split("::")[-1].strip()  # channel::name=version
        found = _CONDA_PIN.match(spec)
        name = found.group(1) if found else re.split(r"[\s<>=!~]", spec, maxsplit=1)[0]
        name = normalise(CONDA_TO_PIP.get(name.lower(), name))
        pins.append((name, found.group(2) if found else None, "conda"))
    return pins


def test_environment_pins_agree_with_constraints() -> None:
    pinned, python = constraints()
    assert python and pinned, "constraints.txt: no header naming the Python version, or no pins"
    problems = []
    others: dict[str, set[str]] = {}
    files = sorted((REPO / "envs").glob("*.yaml"))
    assert files
    for path in files:
        for name, version, where in env_pins(path):
            place = f"envs/{path.name} ({where}) {name}"
            if version is None:
                problems.append(f"{place}: not pinned to one version")
            elif name in NOT_IN_CONSTRAINTS:
                others.setdefault(name, set()).add(version)
                if name == "python" and not (version == python or version.startswith(python + ".")):
                    problems.append(f"{place}={version}: constraints.txt is for Python {python}")
            elif name not in pinned:
                problems.append(f"{place}={version}: not in constraints.txt (add it, or to NOT_IN_CONSTRAINTS)")
            elif version != pinned[name]:
                problems.append(f"{place}={version}: constraints.txt has {pinned[name]}")
    problems += [f"{name}: different versions across envs/*.yaml: {sorted(versions)}"
                 for name, versions in others.items() if len(versions) > 1]
    assert not problems, "\n".join(problems)


def test_pins_are_read_from_both_formats(tmp_path: Path) -> None:
    """The parser itself: conda's `=` and `==`, channel prefixes and build strings, pip sections,
    extras, pip options and unpinned names."""
    env = tmp_path / "env.yaml"
    env.write_text("channels: [conda-forge]\ndependencies:\n  - python=3.11.10\n  - conda-forge::pytorch==2.14.1\n"
                   "  - ffmpeg=5.1.2=h1234_0\n  - tqdm\n  - pip:\n      - Pillow==11.3.0\n"
                   "      - huggingface_hub[cli]==2.4.0\n      - -e ../..\n      - numpy>=2\n", encoding="utf-8")
    assert env_pins(env) == [("python", "3.11.10", "conda"), ("torch", "2.14.1", "conda"),
                             ("ffmpeg", "5.1.2", "conda"), ("tqdm", None, "conda"), ("pillow", "11.3.0", "pip"),
                             ("huggingface-hub", "2.4.0", "pip"), ("numpy", None, "pip")]
