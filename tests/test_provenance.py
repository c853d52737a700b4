"""avvp.reporting.provenance: the code's commit (from a real git checkout, and none outside one), package
versions, stage settings as the stages run them, and file checksums."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from avvp.reporting.provenance import code_version, file_checksums, package_versions, stage_settings

GIT = shutil.which("git")


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_commit_of_a_checkout_and_its_dirty_state(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run([GIT, "-C", str(tmp_path), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    assert code_version(tmp_path) | {"version": None} == {"version": None, "commit": head, "dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_version(tmp_path)["dirty"] is True


def test_no_checkout_gives_no_commit_and_says_why(tmp_path: Path) -> None:
    out = code_version(tmp_path)
    assert out["commit"] is None and out["dirty"] is None and "not imported from a git checkout" in out["commit_note"]


def test_package_versions_and_missing_packages() -> None:
    import torch

    versions = package_versions(("torch", "no-such-package-avvp"))
    assert torch.__version__.startswith(versions["torch"])
    assert versions["no-such-package-avvp"] is None and versions["python"].count(".") == 2


def test_stage_settings_lay_the_config_over_the_published_defaults() -> None:
    settings = stage_settings({"han": {"han": {"batch_size": 4, "lr": None}}})
    assert settings["han"]["han"]["batch_size"] == 4
    assert settings["han"]["han"]["lr"] == 3e-4 and settings["han"]["han"]["epochs"] == 40  # published


def test_file_checksums_and_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"filename\tevent_labels\n")
    assert file_checksums([path]) == {str(path): hashlib.sha256(path.read_bytes()).hexdigest()}
    with pytest.raises(FileNotFoundError, match="gone.csv"):
        file_checksums([tmp_path / "gone.csv"])
