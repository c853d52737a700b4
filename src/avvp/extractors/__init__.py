"""Feature kinds: everything the pipeline knows about one kind of per-clip features, in one record.

The feature store, packing, HAN's input layers, inference, parsing, the command line and the
workflow read these records; no other module names a kind. A `FeatureKind` is plain data (this
module imports neither numpy nor torch, so `avvp --help` and the workflow's parser stay fast); its
network half, an `Extractor`, is named as `module:attribute` and imported only when features are
extracted.

Adding a kind is one module holding its `Extractor` plus one registration: an entry of
`builtin_kinds.json` for a kind shipped with avvp, `register(FeatureKind(...))` in your own code,
or an entry point of the group `avvp.feature_kinds` (an installed package's `FeatureKind`), which
every avvp process, the workflow's jobs included, picks up. docs/EXTENDING.md walks through it.
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from avvp.base.protocol import MODALITIES, SEGMENTS
from avvp.base.registry import Registry

AUDIO = "audio"  # medium: the clip's 16 kHz WAV file
FRAMES = "frames"  # medium: the clip's folder of 8 fps JPEG frames
VIDEO = "video"  # medium: the clip's own file (for its audio track at the track's own rate)
MEDIA = (AUDIO, FRAMES, VIDEO)
ENTRY_POINTS = "avvp.feature_kinds"


@dataclass(frozen=True)
class Extractor:
    """The network half of a kind: how its network is built, made random, and fed.

    `load` turns one input (by the kind's medium: an audio WAV, a frames folder or a video file) into
    its network rows (a numpy array), in a decoding thread or worker process (a module-level
    function, so that it pickles), raising ValueError or OSError for an input it cannot decode;
    `prepare` turns a batch of rows (a tensor on the device) into the network's input; `features`
    wraps a built network for inference on a device. `random(seed)` returns a seeded network that
    gives usable features without training, and a sentence saying how it was made.
    `postprocessor(spec)`, where a kind has one (VGGish's PCA), returns (function on the features
    of one clip, description). `from_folder(path)`, for a network published as a model folder
    (Hugging Face's `save_pretrained` layout) rather than a state dict, loads one; such a kind's
    `--weights PATH` is that folder.
    """

    build: Callable[[], Any]
    random: Callable[[int], tuple[Any, str]]
    features: Callable[[Any, Any], Any]
    load: Callable[[Path], Any]
    prepare: Callable[[Any], Any]
    memory_format: Callable[[], Any] = lambda: None
    postprocessor: Callable[[str], tuple[Callable[[Any], Any], str]] | None = None
    from_folder: Callable[[Path], Any] | None = None


@dataclass(frozen=True)
class Pretrained:
    """A kind's published weights: a plain state dict at `url`, downloaded once into torch's hub
    cache. `hashed`: the file name carries the first hex digits of its sha256 (torchvision's
    convention), so a download is checked against them. With `files` (name patterns), `url` is a
    Hugging Face Hub model repository whose matching files are downloaded once as a model folder."""

    url: str
    hashed: bool
    holds: str  # what the file is, for messages: e.g. "torchvision's ResNet-152 (ImageNet) state dict"
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeatureKind:
    """One kind of features in the released layout: `<root>/<name>/<video id>.npy`, (rows, dim) float32.

    `rows` is SEGMENTS or a multiple of it (ResNet-152's 80 frames); packing averages each
    rows / SEGMENTS consecutive rows to one segment (exact for HAN, whose first layer is linear).
    A kind whose rows are not laid out that way names its own `pooling` (`module:function`
    returning the (SEGMENTS, rows) matrix of weights, each row summing to 1, that turns its rows
    into segments; also exact for HAN, as any such weighted mean commutes with a linear layer).
    `modality` is the HAN stream the kind feeds, through its own linear layer `han_layer` (the
    published kinds keep the official checkpoint's names). `default_batch`: network rows per
    forward pass by device type.
    """

    name: str
    rows: int
    dim: int
    medium: str
    modality: str
    han_layer: str
    description: str
    extractor: str | Extractor
    pretrained: Pretrained | None = None
    default_batch: Mapping[str, int] = field(default_factory=lambda: {"cpu": 8, "cuda": 64})
    pooling: str = ""

    def __post_init__(self) -> None:
        if self.medium not in MEDIA:
            raise ValueError(f"feature kind {self.name}: medium must be one of {MEDIA}, not {self.medium!r}")
        if self.modality not in MODALITIES:
            raise ValueError(f"feature kind {self.name}: modality must be one of {MODALITIES}")
        if not self.pooling and (self.rows < SEGMENTS or self.rows % SEGMENTS):
            raise ValueError(f"feature kind {self.name}: rows must be a multiple of {SEGMENTS} (or the kind "
                             f"names its pooling), got {self.rows}")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.dim)

    def segment_weights(self) -> Any:
        """(SEGMENTS, rows) float32 numpy matrix of a kind that names its `pooling`: segment s is the
        weighted mean of the rows with the weights of row s."""
        return _attribute(self.pooling)(self.rows)

    def network(self) -> Extractor:
        """The kind's Extractor (its module imported now)."""
        if isinstance(self.extractor, Extractor):
            return self.extractor
        return _attribute(self.extractor)


def _attribute(name: str) -> Any:
    """The object named `module:attribute`, its module imported now."""
    module, _, attribute = name.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _builtin() -> tuple[FeatureKind, ...]:
    """The kinds shipped with avvp, from `builtin_kinds.json` (data, one entry per kind)."""
    entries = json.loads(resources.files("avvp.extractors").joinpath("builtin_kinds.json").read_text("utf-8"))
    return tuple(FeatureKind(**{**entry, "pretrained": _pretrained(entry.get("pretrained"))}) for entry in entries)


def _pretrained(entry: Mapping[str, Any] | None) -> Pretrained | None:
    return Pretrained(**{**entry, "files": tuple(entry.get("files", ()))}) if entry else None


# The published feature set, in the published order (HAN's default inputs).
PUBLISHED = ("vggish", "res152", "r2plus1d_18")


def _load_plugins() -> None:
    for point in entry_points(group=ENTRY_POINTS):
        register(point.load(), replace=True)


_KINDS: Registry[FeatureKind] = Registry("feature kind", _load_plugins)


def register(kind: FeatureKind, replace: bool = False) -> FeatureKind:
    """Make `kind` known to every part of avvp in this process; returns it."""
    if any(k.han_layer == kind.han_layer and k.name != kind.name for k in _KINDS.all().values()):
        raise ValueError(f"feature kind {kind.name}: HAN layer {kind.han_layer!r} belongs to another kind")
    return _KINDS.register(kind.name, kind, replace)


def unregister(name: str) -> None:
    """Forget a kind registered in this process (tests, notebooks)."""
    _KINDS.unregister(name)


def feature_kinds() -> dict[str, FeatureKind]:
    """Every known kind by name: the built-in ones, then plug-ins and kinds registered since."""
    return _KINDS.all()


def feature_kind(name: str) -> FeatureKind:
    """The record of `name`; a clear error naming the known kinds otherwise."""
    return _KINDS.get(name)


def feature_set(names: Iterable[str]) -> tuple[FeatureKind, ...]:
    """The records of a model's feature set: distinct known kinds, at least one per modality."""
    kinds = tuple(feature_kind(n) for n in names)
    if len({k.name for k in kinds}) != len(kinds):
        raise ValueError(f"feature set {[k.name for k in kinds]} names a kind twice")
    for modality in MODALITIES:
        if not any(k.modality == modality for k in kinds):
            raise ValueError(f"feature set {[k.name for k in kinds]} has no {modality} kind")
    return kinds


for _kind in _builtin():
    _KINDS.register(_kind.name, _kind)
