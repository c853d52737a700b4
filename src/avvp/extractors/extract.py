"""Batch feature extraction into the released layout: one `<id>.npy` per input, plus `weights.json`.

Generic over feature kinds: what differs between kinds comes from their `Extractor`. One network
load per call. Inputs are decoded in background threads (PIL and numpy release the
GIL) while the network runs; the rows of consecutive inputs (frames, 8-frame clips or 0.96 s audio
examples) are packed into forward batches of `batch_size`, so a batch may hold parts of several
clips. In eval mode every row is computed on its own, so a clip's features do not depend on its
neighbours. On CUDA, TF32 is switched off for the call: features must stay float32-exact.

Outputs are written to a temporary name and moved into place; an input whose output exists is
skipped, so a rerun after an interruption only does what is missing. A folder's `weights.json`
must agree with the weights of a later call into the same folder (features from different weights
never mix silently).
"""
from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from tqdm import tqdm

from avvp.annotations import video_id
from avvp.atomic import atomic_output
from avvp.device import resolve_device
from avvp.extractors import AUDIO, FeatureKind, feature_kind
from avvp.extractors.frames import frame_files
from avvp.extractors.weights import WeightsRecord, load_network

RECORD_NAME = "weights.json"
# Decoding threads: on a GPU node, decoding JPEGs is the bottleneck; on a small CPU, leave the cores
# to the network.
LOADER_THREADS = max(1, min(8, (os.cpu_count() or 2) - 1))

T = TypeVar("T")


def output_id(path: str | Path) -> str:
    """The feature file's name: the YouTube id when the stem is an LLP filename, else the stem."""
    stem = Path(path).stem if Path(path).suffix.lower() == ".wav" else Path(path).name
    try:
        return video_id(stem)
    except ValueError:
        return stem


def _prefetched(load: Callable[[Path], T], items: Sequence[Path], threads: int) -> Iterator[tuple[Path, T]]:
    """(item, load(item)) in order, with up to 2 x threads items being loaded ahead."""
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        it = iter(items)
        ahead = deque((item, pool.submit(load, item)) for item in islice(it, 2 * threads))
        while ahead:
            item, future = ahead.popleft()
            for nxt in islice(it, 1):
                ahead.append((nxt, pool.submit(load, nxt)))
            yield item, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _batched(items: Iterable[tuple[T, np.ndarray]], forward: Callable[[np.ndarray], np.ndarray],
             batch_size: int) -> Iterator[tuple[T, np.ndarray]]:
    """Run `forward` on the rows of consecutive items, batch_size rows at a time; yield per item."""
    waiting: deque[tuple[T, int]] = deque()
    inputs: list[np.ndarray] = []
    outputs: list[np.ndarray] = []

    def run(n: int) -> None:
        rows = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        outputs.append(forward(rows[:n]))
        inputs[:] = [rows[n:]] if n < len(rows) else []

    def finished() -> Iterator[tuple[T, np.ndarray]]:
        if not outputs:
            return
        done = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
        while waiting and waiting[0][1] <= len(done):
            key, n = waiting.popleft()
            yield key, done[:n]
            done = done[n:]
        outputs[:] = [done]

    for key, rows in items:
        waiting.append((key, len(rows)))
        inputs.append(rows)
        while sum(map(len, inputs)) >= batch_size:
            run(batch_size)
        yield from finished()
    if inputs:
        run(sum(map(len, inputs)))
        yield from finished()


@contextmanager
def _exact_fp32() -> Iterator[None]:
    """No TF32 on CUDA while extracting: it rounds conv and matmul inputs to 10 mantissa bits."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _read_record(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: unreadable weights record ({err})") from err


def _check_inputs(kind: FeatureKind, inputs: Sequence[Path]) -> list[str]:
    ids: dict[str, Path] = {}
    for path in inputs:
        if kind.medium == AUDIO and not path.is_file():
            raise FileNotFoundError(f"audio file {path} not found")
        if kind.medium != AUDIO and not path.is_dir():
            raise FileNotFoundError(f"frames folder {path} not found")
        if kind.medium != AUDIO:
            frame_files(path)  # fail before the model is built when a folder has no frames
        key = output_id(path)
        if key in ids:
            raise ValueError(f"inputs {ids[key]} and {path} both map to features {key}.npy")
        ids[key] = path
    return list(ids)


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
) -> dict:
    """Write `<out_dir>/<id>.npy` for each input (a WAV or a frames folder, by the kind's medium).

    Each file has the kind's shape, float32. Returns the weights record that is also written to
    `<out_dir>/weights.json`. `postprocess` applies the kind's official post-processor where it
    has one (VGGish: `pretrained` or a PCA parameter file).
    """
    spec = feature_kind(kind)
    network = spec.network()
    if postprocess is not None and network.postprocessor is None:
        raise ValueError(f"feature kind {kind} has no post-processor")
    paths = [Path(p) for p in inputs]
    ids = _check_inputs(spec, paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(key, path) for key, path in zip(ids, paths) if not (out / f"{key}.npy").exists()]
    record_path = out / RECORD_NAME
    existing = _read_record(record_path)
    if not todo and existing and (existing.get("kind"), existing.get("weights"), existing.get("seed")) == (
            kind, weights if weights in ("random", "pretrained") else str(Path(weights)), seed):
        return existing

    torch_device = resolve_device(device)
    model, record = load_network(spec, weights, seed)
    finish = None
    if postprocess is not None:
        finish, how = network.postprocessor(postprocess)
        record = WeightsRecord(**{**record.as_dict(), "how": f"{record.how}; {how}"})
    if existing is not None and any(existing.get(k) != v for k, v in record.as_dict().items()
                                    if k in ("kind", "sha256", "how")):
        raise ValueError(f"{out} holds {existing.get('kind')} features made with weights "
                         f"{existing.get('weights')!r} (sha256 {existing.get('sha256')}); these would be made with "
                         f"{record.weights!r} (sha256 {record.sha256}); use another output folder")
    with atomic_output(record_path, "w") as fh:
        fh.write(json.dumps(record.as_dict(), indent=2) + "\n")

    net = network.features(model, torch_device)
    layout = network.memory_format()
    rows = batch_size or spec.default_batch.get(torch_device.type, spec.default_batch["cpu"])

    def forward(batch: np.ndarray) -> np.ndarray:
        x = network.prepare(torch.from_numpy(batch).to(torch_device))
        x = x.contiguous(memory_format=layout) if layout is not None else x
        return net(x).float().cpu().numpy()

    key_of = {path: key for key, path in todo}
    with _exact_fp32(), torch.inference_mode(), tqdm(total=len(todo), desc=f"{kind} features", unit="clip",
                                                     disable=not progress) as bar:
        loaded = _prefetched(network.load, list(key_of), LOADER_THREADS)
        for path, features in _batched(loaded, forward, rows):
            if finish is not None:
                features = finish(features)
            features = features.reshape(-1, features.shape[-1])  # a network row may give several (CLAP's maps)
            if features.shape != spec.shape:
                raise RuntimeError(f"{path}: {kind} features came out {features.shape}, expected {spec.shape}")
            with atomic_output(out / f"{key_of[path]}.npy") as fh:
                np.save(fh, np.ascontiguousarray(features, dtype=np.float32))
            bar.update(1)
    return record.as_dict()
