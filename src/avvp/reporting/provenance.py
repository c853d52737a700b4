"""What produced a result: the code (avvp's version and git commit), the versions of the packages that
matter for the numbers, the time, and checksums of the files a result depends on.

metrics.json carries this as its `provenance` block so that the file alone says how to reproduce it.
"""
from __future__ import annotations

import dataclasses
import datetime
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import avvp
from avvp.base.files import file_sha256

PACKAGES = ("torch", "torchvision", "numpy", "snakemake")


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (`2025-01-31T12:00:00Z`)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Python's version and each package's installed version (None where it is not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(folder: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def code_version(source: Path | None = None) -> dict[str, str | bool | None]:
    """avvp's version and the git commit of the checkout its code is imported from.

    An installed (non-editable) package has no checkout: `commit` and `dirty` are then None and
    `commit_note` says why. `dirty` is true when tracked files differ from the commit.
    """
    source = Path(avvp.__file__).resolve().parent if source is None else source
    out: dict[str, str | bool | None] = {"version": avvp.__version__, "commit": None, "dirty": None}
    commit = _git(source, "rev-parse", "--verify", "HEAD")
    if commit is None:
        out["commit_note"] = ("avvp is not imported from a git checkout (or git is not installed), "
                              "so no commit is known; the version is the package's")
        return out
    status = _git(source, "status", "--porcelain", "--untracked-files=no")
    out.update(commit=commit, dirty=None if status is None else bool(status))
    return out


def file_checksums(paths: Iterable[str | Path]) -> dict[str, str]:
    """path (as given) -> sha256 of the file's bytes."""
    checksums = {}
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file to checksum for the provenance record")
        checksums[str(path)] = file_sha256(path)
    return checksums


def stage_settings(runs: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict:
    """run -> {stage id -> its settings as the stage runs them}: the stage's published defaults with
    the run's config section for it (`runs`: run -> stage id -> section) laid over them, null values
    keeping the defaults (as `avvp train` and `avvp pass` do)."""
    from avvp.methods.settings import with_overrides
    from avvp.methods.stages import stage

    return {name: {sid: dataclasses.asdict(with_overrides(stage(sid).defaults, dict(section or {})))
                   for sid, section in sections.items()}
            for name, sections in runs.items()}


def provenance_block(config: Mapping[str, Any], stages: Mapping[str, Mapping[str, Any]], checkpoints: Iterable[str | Path],
                     annotations: Iterable[str | Path], feature_weights: Mapping[str, Any],
                     ffmpeg: Sequence[Mapping[str, Any]]) -> dict:
    """metrics.json's `provenance`: when and with which code and packages it was written, the
    config as resolved, each method's stages with their settings (`stage_settings`), and
    checksums of the checkpoints and annotation files; the feature weights records carry their own."""
    return {
        "created_utc": utc_now(),
        "code": code_version(),
        "packages": package_versions(),
        "config": dict(config),
        "stages": dict(stages),
        "checkpoints": file_checksums(checkpoints),
        "annotations": file_checksums(annotations),
        "feature_weights": dict(feature_weights),
        "ffmpeg": list(ffmpeg),
    }
