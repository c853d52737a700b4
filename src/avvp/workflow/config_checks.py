"""Checks of the workflow's config that a schema cannot make: the folders and files it names exist
and hold what the data set's mode needs. Run when the workflow is parsed, before any job, so a
mistake fails at once with the key and the path instead of inside a job hours later.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avvp.base.files import VIDEO_SUFFIXES


class ConfigError(ValueError):
    """A config value that names a missing or unusable file or folder; the message says which key."""


def _folder(key: str, value: Any) -> Path:
    if not value:
        raise ConfigError(f"{key} is empty: name a folder")
    path = Path(value)
    if not path.is_dir():
        raise ConfigError(f"{key}: folder {path} does not exist")
    return path


def check_dataset(dataset: Mapping[str, Any], kinds: Sequence[str]) -> None:
    """The annotation files exist; local mode: `local_dir` holds at least one video; features mode:
    `features_dir` has a folder with `.npy` files for each kind of the feature set."""
    mode = dataset["mode"]
    for name, value in dataset.get("annotations", {}).items() if mode != "demo" else ():
        if not Path(value).is_file():
            raise ConfigError(f"dataset.annotations.{name}: file {value} does not exist")
    if mode == "local":
        folder = _folder("dataset.local_dir", dataset.get("local_dir"))
        if not any(p.suffix.lower() in VIDEO_SUFFIXES for p in folder.iterdir()):
            raise ConfigError(f"dataset.local_dir: {folder} holds no video ({', '.join(VIDEO_SUFFIXES)})")
    if mode == "features":
        root = _folder("dataset.features_dir", dataset.get("features_dir"))
        for kind in kinds:
            folder = root / kind
            if not folder.is_dir() or next(folder.glob("*.npy"), None) is None:
                raise ConfigError(f"dataset.features_dir: {folder} holds no {kind} features (<video id>.npy); "
                                  f"model.features needs them")


def check_parse(parse: Mapping[str, Any]) -> None:
    """`parse.videos_dir`, when set, is a folder holding at least one video."""
    if parse.get("videos_dir") is None:
        return
    folder = _folder("parse.videos_dir", parse["videos_dir"])
    if not any(p.suffix.lower() in VIDEO_SUFFIXES for p in folder.iterdir()):
        raise ConfigError(f"parse.videos_dir: {folder} holds no video ({', '.join(VIDEO_SUFFIXES)})")


def check_variants(methods: Sequence[str], variants: Mapping[str, Any]) -> None:
    """Every name under train.methods is a registered method or a variant, and no variant takes the
    name of a registered method (its runs' folders would be that method's)."""
    from avvp.methods.stages import methods as registered

    known = registered()
    for name in variants:
        if name in known:
            raise ConfigError(f"variants.{name}: a registered method has that name; give the variant another")
    for name in methods:
        if name not in known and name not in variants:
            raise ConfigError(f"train.methods: {name!r} is neither a registered method ({', '.join(known)}) "
                              f"nor a name under variants")


def check_feature_sets(model_features: Sequence[str], variants: Mapping[str, Any]) -> None:
    """`model.features` and each variant's feature set hold an audio and a visual kind: HAN has a
    stream of each, so a set without one could only fail in its training job."""
    check_feature_set("model.features", model_features)
    for name, variant in variants.items():
        if variant.get("features"):
            check_feature_set(f"variants.{name}.features", variant["features"])


def check_feature_set(key: str, names: Sequence[str]) -> None:
    """The kinds `names` (known to the schema) feed each of HAN's modalities."""
    from avvp.base.protocol import MODALITIES
    from avvp.extractors import feature_kind

    have = {feature_kind(name).modality for name in names}
    for modality in MODALITIES:
        if modality not in have:
            raise ConfigError(f"{key}: feature set {list(names)} has no {modality} kind (HAN needs an audio "
                              f"and a visual kind)")


def check_weights(features: Mapping[str, Mapping[str, Any]]) -> None:
    """Each `features.<kind>.weights` that names a path (not `pretrained` or `random`) exists, so a
    typo fails now rather than in the extraction job of every shard."""
    for kind, section in features.items():
        weights = section.get("weights", "pretrained")
        if weights not in ("pretrained", "random") and not Path(weights).exists():
            raise ConfigError(f"features.{kind}.weights: {weights} does not exist (pretrained, random or "
                              f"the path of a weights file or model folder)")


def check_protocols(evaluate: Mapping[str, Any]) -> None:
    """Every name under evaluate.protocols is known (built in, `as_published`, or defined), and every
    definition under evaluate.define makes a usable rule; refused at start, naming the key."""
    from avvp.evaluation.protocols import AS_PUBLISHED, BUILT_IN, protocol

    defined = evaluate.get("define", {})
    for name in defined:
        if name in BUILT_IN or name == AS_PUBLISHED:
            raise ConfigError(f"evaluate.define.{name}: a built-in protocol has that name; give yours another")
        try:
            protocol(name, defined=defined)
        except ValueError as err:
            raise ConfigError(f"evaluate.define.{name}: {err}") from None
    for name in evaluate["protocols"]:
        try:
            protocol(name, method="han", defined=defined)
        except ValueError as err:
            raise ConfigError(f"evaluate.protocols: {err}") from None
