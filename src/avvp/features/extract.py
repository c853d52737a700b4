"""Batch feature extraction into the released layout: one `<id>.npy` per input, plus `weights.json`.

Generic over feature kinds: what differs between kinds comes from their `Extractor`. One network
load per call. Extraction is a pipeline of three stages that overlap:

1. **Decoding.** The kind's `load` turns each input (by the kind's medium: an audio WAV, a frames
   folder or a video file) into its network rows, in input order, in threads or worker processes
   that start before the network is loaded (`avvp.features.pipeline`, which also says how many).
2. **The network.** The rows of consecutive inputs are packed into forward batches of
   `batch_size`; a clip's features do not depend on its neighbours, on the batch size or on the
   number of workers. On CUDA, TF32 is switched off for the call: features must stay float32-exact.
3. **Writing.** Each input's features are written to a temporary name and moved into place
   (`avvp.base.atomic`), so a killed extraction leaves no partial `.npy` under a final name; an input
   whose output exists is skipped, so a rerun only does what is missing.

Bad inputs: an input that cannot be decoded (an unreadable JPEG or WAV: `load` raises `ValueError`
or `OSError`) is recorded, never fatal: its reason goes to `<out_dir>/failed.tsv` (columns id,
input, reason; rows of inputs that later succeed are dropped, the file is removed when none is
left), it gets no `.npy`, and the other inputs are extracted (packing with `--on-missing skip`
leaves it out). `strict=True` raises on the first such input instead. Inputs that are not there at
all (a missing WAV, video or folder, a folder without JPEGs) and two inputs with one output name are
errors of the input list, raised before the network is built.

A folder's `weights.json` must agree with the weights of a later call into the same folder
(features from different weights never mix silently).
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avvp.evaluation.annotations import video_id
from avvp.base.atomic import atomic_output
from avvp.base.progress import progress as progress_display
from avvp.base.files import VIDEO_SUFFIXES
from avvp.base.device import resolve_device
from avvp.extractors import AUDIO, FRAMES, Extractor, FeatureKind, feature_kind
from avvp.extractors.parts.frames import frame_files
from avvp.features.networks import load_network
from avvp.features.pipeline import (DecodeFailure, Decoder, available_cpus, batch_forward, batched, default_workers,
                                    exact_fp32, loader_threads, torch_threads)
from avvp.features.weights import RECORD_NAME, WeightsRecord, read_record

FAILED_NAME = "failed.tsv"
FAILED_COLUMNS = ("id", "input", "reason")


FILE_SUFFIXES = (".wav", *VIDEO_SUFFIXES)  # inputs named as files


def output_id(path: str | Path) -> str:
    """The feature file's name: the YouTube id when the stem is an LLP filename, else the stem."""
    path = Path(path)
    is_file = path.is_file() or path.suffix.lower() in FILE_SUFFIXES  # else a frames folder, dots and all
    stem = path.stem if is_file else path.name
    try:
        return video_id(stem)
    except ValueError:
        return stem


# ----------------------------------------------------------------------------- records


def read_failures(out_dir: str | Path) -> dict[str, tuple[str, str]]:
    """id -> (input, reason) of the inputs of a features folder that could not be decoded."""
    path = Path(out_dir) / FAILED_NAME
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as fh:
        return {row["id"]: (row["input"], row["reason"]) for row in csv.DictReader(fh, delimiter="\t")}


def _write_failures(out: Path, tried: Iterable[str], failed: dict[str, tuple[str, str]]) -> None:
    """Merge this call's outcomes into failed.tsv: ids tried now are replaced by their outcome,
    ids whose features exist are dropped; no failure left, no file."""
    tried = set(tried)
    rows = {key: value for key, value in read_failures(out).items()
            if key not in tried and not (out / f"{key}.npy").exists()}
    rows.update(failed)
    path = out / FAILED_NAME
    if not rows:
        path.unlink(missing_ok=True)
        return
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\n")
    writer.writerow(FAILED_COLUMNS)
    for key in sorted(rows):
        writer.writerow([key, *(re.sub(r"\s+", " ", field) for field in rows[key])])
    with atomic_output(path, "w") as fh:
        fh.write(text.getvalue())


def _check_inputs(kind: FeatureKind, inputs: Sequence[Path]) -> list[str]:
    ids: dict[str, Path] = {}
    for path in inputs:
        if kind.medium != FRAMES and not path.is_file():
            raise FileNotFoundError(f"{'audio' if kind.medium == AUDIO else 'video'} file {path} not found")
        if kind.medium == FRAMES:
            if not path.is_dir():
                raise FileNotFoundError(f"frames folder {path} not found")
            frame_files(path)  # fail before the model is built when a folder has no frames
        key = output_id(path)
        if key in ids:
            raise ValueError(f"inputs {ids[key]} and {path} both map to features {key}.npy")
        ids[key] = path
    return list(ids)


# ----------------------------------------------------------------------------- extraction


def _check_settings(kind: str, network: Extractor, postprocess: str | None, workers: int | None,
                    threads: int | None) -> None:
    if postprocess is not None and network.postprocessor is None:
        raise ValueError(f"feature kind {kind} has no post-processor")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")


def _up_to_date(existing: dict | None, kind: str, weights: str, seed: int) -> bool:
    """Whether a folder's weights record is that of this call's choice of weights."""
    chosen = weights if weights in ("random", "pretrained") else str(Path(weights))
    return bool(existing) and (existing.get("kind"), existing.get("weights"), existing.get("seed")) == (
        kind, chosen, seed)


def _network(spec: FeatureKind, network: Extractor, weights: str, seed: int,
             postprocess: str | None) -> tuple[torch.nn.Module, WeightsRecord, Callable[[Any], Any] | None]:
    """The kind's network, its weights record and its post-processor (None without `postprocess`)."""
    model, record = load_network(spec, weights, seed)
    finish = None
    if postprocess is not None:
        finish, how = network.postprocessor(postprocess)
        record = WeightsRecord(**{**record.as_dict(), "how": f"{record.how}; {how}"})
    return model, record, finish


def _write_record(out: Path, existing: dict | None, record: WeightsRecord) -> None:
    """`<out>/weights.json`, refused when the folder holds features of other weights."""
    if existing is not None and any(existing.get(k) != v for k, v in record.as_dict().items()
                                    if k in ("kind", "sha256", "how")):
        raise ValueError(f"{out} holds {existing.get('kind')} features made with weights "
                         f"{existing.get('weights')!r} (sha256 {existing.get('sha256')}); these would be "
                         f"made with {record.weights!r} (sha256 {record.sha256}); use another output folder")
    with atomic_output(out / RECORD_NAME, "w") as fh:
        fh.write(json.dumps(record.as_dict(), indent=2) + "\n")


@dataclass
class _Outcomes:
    """What became of the inputs this call tried: features written under `out`, or a failure."""

    out: Path
    key_of: dict[Path, str]
    tried: list[str] = field(default_factory=list)
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)

    def fail(self, path: Path, reason: str) -> None:
        self.tried.append(self.key_of[path])
        self.failed[self.key_of[path]] = (str(path), reason)

    def save(self, path: Path, features: np.ndarray) -> None:
        with atomic_output(self.out / f"{self.key_of[path]}.npy") as fh:
            np.save(fh, np.ascontiguousarray(features, dtype=np.float32))
        self.tried.append(self.key_of[path])

    def write_failures(self) -> None:
        if self.tried or (self.out / FAILED_NAME).exists():
            _write_failures(self.out, self.tried, self.failed)


def _decoded(decoder: Decoder, outcomes: _Outcomes, bar: Any, strict: bool,
             device: torch.device) -> Iterator[tuple[Path, torch.Tensor]]:
    """The decoded inputs on `device`; a failure is recorded (raised with `strict`) and counted."""
    for path, item in decoder:
        if isinstance(item, DecodeFailure):
            if strict:
                raise ValueError(f"{path}: {item.reason}")
            outcomes.fail(path, item.reason)
            bar.update(1)
            continue
        # pinned rows on CUDA: the copy overlaps with the batch being computed
        yield path, item.to(device, non_blocking=True)


def _finished(kind: str, spec: FeatureKind, path: Path, features: np.ndarray,
              finish: Callable[[Any], Any] | None) -> np.ndarray:
    """One input's network outputs as its features, post-processed, checked against the kind's shape."""
    if finish is not None:
        features = finish(features)
    features = features.reshape(-1, features.shape[-1])  # one row may give several (clap)
    if features.shape != spec.shape:
        raise RuntimeError(f"{path}: {kind} features came out {features.shape}, "
                           f"expected {spec.shape}")
    return features


def extract_features(
    kind: str,
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    weights: str = "random",
    device: str = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
    *,
    postprocess: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    strict: bool = False,
) -> dict:
    """Write `<out_dir>/<id>.npy` for each input (a WAV, a frames folder or a video file, by the
    kind's medium).

    Each file has the kind's shape, float32. Returns the weights record that is also written to
    `<out_dir>/weights.json`. `postprocess` applies the kind's official post-processor where it
    has one (VGGish: `pretrained` or a PCA parameter file). `threads`: the CPUs the call may use
    (when given, also torch's threads during the call; default: those this process may run on);
    `workers`: decoding processes (default `default_workers(device, threads)`; 0 decodes in this
    process). Inputs that cannot be decoded are listed in `<out_dir>/failed.tsv`
    (`read_failures`), or raise with `strict`. `progress`: a bar, or (False) a line every 30 s for a log.
    """
    spec = feature_kind(kind)
    network = spec.network()
    _check_settings(kind, network, postprocess, workers, threads)
    paths = [Path(p) for p in inputs]
    ids = _check_inputs(spec, paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(key, path) for key, path in zip(ids, paths) if not (out / f"{key}.npy").exists()]
    existing = read_record(out)
    if not todo and _up_to_date(existing, kind, weights, seed):
        return existing

    torch_device = resolve_device(device)
    cpus = threads or available_cpus()
    n_workers = default_workers(torch_device.type, cpus) if workers is None else workers
    outcomes = _Outcomes(out, {path: key for key, path in todo})
    decoder = Decoder(network.load, list(outcomes.key_of), n_workers,
                      threads=loader_threads(torch_device.type, cpus), pin=torch_device.type == "cuda")
    with decoder, torch_threads(threads):  # decoding runs while the network loads
        model, record, finish = _network(spec, network, weights, seed, postprocess)
        _write_record(out, existing, record)
        forward = batch_forward(network, model, torch_device)
        rows = batch_size or spec.default_batch.get(torch_device.type, spec.default_batch["cpu"])
        try:
            with exact_fp32(), torch.inference_mode(), progress_display(len(todo), f"{kind} features", "clip",
                                                                        progress) as bar, \
                    closing(_decoded(decoder, outcomes, bar, strict, torch_device)) as usable:
                for path, features in batched(usable, forward, rows):
                    outcomes.save(path, _finished(kind, spec, path, features, finish))
                    bar.update(1)
        finally:
            outcomes.write_failures()
    return record.as_dict()
