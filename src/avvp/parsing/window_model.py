"""The model step of parsing: a video's windows -> HAN's probabilities.

`parse.parse_videos` takes any `WindowModel`; `HANWindowModel` is the real one: each window's
features with the checkpoint's own extractor weights (or features extracted before, for a
10-second clip), then HAN.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from avvp.base.protocol import SEGMENTS
from avvp.base.random_weights import random_weight_kinds, random_weights_text
from avvp.parsing.windows import VideoWindows, segment_count


class WindowModel(Protocol):
    """The windows of one video -> probabilities: global (W, C) and frame (W, 10, 2, C), and per
    feature kind where its features came from (written into the video's JSON)."""

    classes: Sequence[str]

    def __call__(self, video: VideoWindows, work_dir: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]: ...

    def describe(self) -> dict[str, Any]:
        """What produces the probabilities, known before the first video (written into each video's
        JSON; a folder's outputs made by another description are parsed again)."""
        ...


def feature_id(video: Path) -> str:
    """The name `avvp extract` gives the features of a clip: its YouTube id for an LLP filename."""
    from avvp.features.extract import output_id

    return output_id(video.with_suffix(".wav"))


class HANWindowModel:
    """The real model: the features of every window (the checkpoint's feature set), then HAN.

    `weights` maps a feature kind to `pretrained`, `random` or a state-dict path, `seed` is the seed
    of random weights; kinds not named, and a seed not given, come from the checkpoint's record of
    its training features (`avvp.features.weights`: pretrained for a released checkpoint), and a
    choice that differs from it is refused unless `allow_mismatch`. `features` are roots in the
    released layout (`<root>/<kind>/<id>.npy`, e.g. each shard folder of `results/features`): a
    10-second video whose features are there is not decoded and no network runs for it; their
    `weights.json` must agree with the weights too. Random weights give meaningless events and are
    flagged in every output.
    """

    def __init__(self, checkpoint: str | Path, classes: Sequence[str] | None = None,
                 weights: Mapping[str, str] | None = None, seed: int | None = None, device: str = "auto",
                 batch_size: int | None = None, progress: bool = False, features: Sequence[str | Path] = (),
                 allow_mismatch: bool = False) -> None:
        from avvp.model.checkpoint import load_han
        from avvp.base.device import resolve_device
        from avvp.extractors import feature_kind
        from avvp.base.files import file_sha256
        from avvp.features.weights import WeightsMismatch, agrees, read_record, resolve_weights

        for kind in weights or {}:
            feature_kind(kind)
        self.device = resolve_device(device)
        self.checkpoint = Path(checkpoint)
        self.han, self.classes, payload = load_han(checkpoint, classes, self.device)
        self.trained = payload.get("feature_weights")
        self.weights, mismatched = resolve_weights(self.han.features, self.trained, weights or {}, seed,
                                                   allow_mismatch, checkpoint)
        self.folders = {kind: [Path(root) / kind for root in features if (Path(root) / kind).is_dir()]
                        for kind in self.weights}
        for kind, folders in self.folders.items():
            for folder in folders:
                if not agrees(self.weights[kind], record := read_record(folder)) and not allow_mismatch:
                    raise WeightsMismatch(f"{folder} holds {kind} features of weights "
                                          f"{record.get('weights') if record else 'pretrained (no weights.json)'}, "
                                          f"not {self.weights[kind]}; pass --allow-weights-mismatch to use them")
                if not agrees(self.weights[kind], record):
                    mismatched.append(kind)
        self.mismatched = sorted(set(mismatched))
        self.sha256 = file_sha256(self.checkpoint)
        self.batch_size, self.progress = batch_size, progress

    def _found(self, kind: str, video: VideoWindows) -> Path | None:
        """The already extracted features of a 10-second video: only then are a clip's features
        (`avvp extract` of the whole clip) exactly those of its one window (module rules)."""
        if video.n_windows != 1 or segment_count(video.duration) != SEGMENTS:
            return None
        name = f"{feature_id(video.video)}.npy"
        return next((folder / name for folder in self.folders[kind] if (folder / name).is_file()), None)

    def __call__(self, video: VideoWindows, work_dir: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        import torch

        from avvp.extractors import feature_kind
        from avvp.features.extract import extract_features, output_id
        from avvp.features.weights import read_record
        from avvp.features.store import load_feature, pool_segments

        arrays, sources = [], {}
        # Rows averaged to segments at once where the network allows it (HAN: same result, less memory).
        pool = pool_segments if self.han.pools_first else (lambda rows, _: rows)
        for kind, choice in self.weights.items():
            found = self._found(kind, video)
            if found is not None:
                arrays.append(pool(load_feature(found, kind), kind)[None])
                sources[kind] = {"reused": str(found), "weights": read_record(found.parent)}
                continue
            inputs = video.inputs(feature_kind(kind).medium)
            out = Path(work_dir) / "features" / kind
            record = extract_features(kind, inputs, out, choice.weights, str(self.device), self.batch_size,
                                      choice.seed, self.progress, strict=True)
            arrays.append(np.stack([pool(np.load(out / f"{output_id(p)}.npy"), kind) for p in inputs]))
            sources[kind] = {"extracted": True, "weights": record}
        with torch.inference_mode():
            global_prob, _, _, frame_prob = self.han(*(torch.from_numpy(a).to(self.device) for a in arrays))
        return global_prob.float().cpu().numpy(), frame_prob.float().cpu().numpy(), sources

    def describe(self) -> dict[str, Any]:
        return {"model": type(self.han).__name__, "checkpoint": str(self.checkpoint), "checkpoint_sha256": self.sha256,
                "feature_weights": {kind: choice.as_dict() for kind, choice in self.weights.items()},
                "trained_feature_weights": self.trained, "weights_mismatch": self.mismatched}


def random_weights_warning(description: Mapping[str, Any]) -> str | None:
    """The warning every output of a model that ran on random extractor weights carries."""
    kinds = random_weight_kinds(description.get("feature_weights", {}))
    return random_weights_text(kinds, "these events are not meaningful")
