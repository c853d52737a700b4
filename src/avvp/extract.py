"""Batch feature extraction into the released layout: one `<id>.npy` per input, plus `weights.json`.

One network load per call. Inputs are decoded in background threads (PIL and numpy release the
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
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from avvp import vggish, visual_nets
from avvp.annotations import video_id
from avvp.atomic import atomic_output
from avvp.device import resolve_device
from avvp.features import STREAMS
from avvp.fused_resnet import FusedResNet, can_fuse
from avvp.weights import WeightsRecord, check_kind, load_model, pca_params_path

N_FRAMES = 80
RECORD_NAME = "weights.json"
# Rows per forward pass: small batches keep activations in cache on a CPU, big ones fill a GPU.
DEFAULT_BATCH = {
    "cpu": {"vggish": 10, "res152": 16, "r2plus1d_18": 5},
    "cuda": {"vggish": 200, "res152": 160, "r2plus1d_18": 40},
}
# Decoding threads: on a GPU node, decoding JPEGs is the bottleneck; on a small CPU, leave the cores
# to the network.
LOADER_THREADS = max(1, min(8, (os.cpu_count() or 2) - 1))

T = TypeVar("T")


def pick_frame_indices(n: int, k: int = N_FRAMES) -> np.ndarray:
    """round(linspace(0, n - 1, k)) as the published scripts did (numpy's round: halves to even).

    With fewer than k frames some indices repeat; zero frames is an error for the caller to name.
    """
    if n < 1:
        raise ValueError(f"cannot pick {k} frames out of {n}")
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


def output_id(path: str | Path) -> str:
    """The feature file's name: the YouTube id when the stem is an LLP filename, else the stem."""
    stem = Path(path).stem if Path(path).suffix.lower() == ".wav" else Path(path).name
    try:
        return video_id(stem)
    except ValueError:
        return stem


def frame_files(folder: Path) -> list[Path]:
    """The JPEG frames of a folder in name order (ffmpeg's %06d.jpg)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise ValueError(f"{folder}: no JPEG frames in this folder")
    return files


def load_frames(folder: Path, load_one: Callable[[Path], np.ndarray]) -> np.ndarray:
    """(80, H, W, 3) uint8: the picked frames of a folder, each file decoded once."""
    files = frame_files(folder)
    picks = pick_frame_indices(len(files))
    decoded = {i: load_one(files[i]) for i in np.unique(picks)}
    return np.stack([decoded[i] for i in picks])


@dataclass(frozen=True)
class _Pipeline:
    """How one kind turns an input path into network rows, and a batch of rows into a network input."""

    load: Callable[[Path], np.ndarray]
    prepare: Callable[[torch.Tensor], torch.Tensor]
    memory_format: torch.memory_format


def _pipeline(kind: str) -> _Pipeline:
    if kind == "vggish":
        return _Pipeline(vggish.clip_examples, lambda x: x.unsqueeze(1), torch.channels_last)
    if kind == "res152":
        return _Pipeline(
            lambda folder: load_frames(folder, visual_nets.res152_frame),
            lambda x: visual_nets.normalise_frames(x, visual_nets.IMAGENET_MEAN, visual_nets.IMAGENET_STD),
            torch.channels_last,
        )
    clip = visual_nets.CLIP_FRAMES

    def prepare_clips(x: torch.Tensor) -> torch.Tensor:
        frames = x.reshape(-1, *x.shape[2:])
        normalised = visual_nets.normalise_frames(frames, visual_nets.KINETICS_MEAN, visual_nets.KINETICS_STD)
        return visual_nets.frames_to_clips(normalised)

    return _Pipeline(
        lambda folder: load_frames(folder, visual_nets.r2plus1d_frame).reshape(-1, clip, 112, 112, 3),
        prepare_clips,
        torch.channels_last_3d,
    )


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


def _check_inputs(kind: str, inputs: Sequence[Path]) -> list[str]:
    ids: dict[str, Path] = {}
    for path in inputs:
        if kind == "vggish" and not path.is_file():
            raise FileNotFoundError(f"audio file {path} not found")
        if kind != "vggish" and not path.is_dir():
            raise FileNotFoundError(f"frames folder {path} not found")
        if kind != "vggish":
            frame_files(path)  # fail before the model is built when a folder has no frames
        key = output_id(path)
        if key in ids:
            raise ValueError(f"inputs {ids[key]} and {path} both map to features {key}.npy")
        ids[key] = path
    return list(ids)


def _inference_model(kind: str, model: nn.Module, device: torch.device, memory_format: torch.memory_format) -> nn.Module:
    net = model if kind == "vggish" else visual_nets.feature_network(model)
    if can_fuse(net, device):
        return FusedResNet(net)
    return net.to(device=device, memory_format=memory_format).eval()


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
    vggish_pca: str | None = None,
) -> dict:
    """Write `<out_dir>/<id>.npy` for each input (WAV for vggish, frames folder otherwise).

    Shapes (10, 128) / (80, 2048) / (10, 512), float32. Returns the weights record that is also
    written to `<out_dir>/weights.json`. `vggish_pca` (`pretrained` or a PCA parameter file)
    applies the official post-processor; its uint8 values are stored as float32.
    """
    check_kind(kind)
    if vggish_pca is not None and kind != "vggish":
        raise ValueError("vggish_pca applies to vggish features only")
    paths = [Path(p) for p in inputs]
    ids = _check_inputs(kind, paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(key, path) for key, path in zip(ids, paths) if not (out / f"{key}.npy").exists()]
    record_path = out / RECORD_NAME
    existing = _read_record(record_path)
    if not todo and existing and (existing.get("kind"), existing.get("weights"), existing.get("seed")) == (
            kind, weights if weights in ("random", "pretrained") else str(Path(weights)), seed):
        return existing

    torch_device = resolve_device(device)
    pipeline = _pipeline(kind)
    model, record = load_model(kind, weights, seed)
    pca = None
    if vggish_pca is not None:
        pca_path = pca_params_path(vggish_pca)
        pca = vggish.load_pca_params(pca_path)
        record = WeightsRecord(**{**record.as_dict(), "how": f"{record.how}; official post-processor with "
                                  f"PCA parameters {pca_path.name} (uint8 values stored as float32)"})
    if existing is not None and any(existing.get(k) != v for k, v in record.as_dict().items()
                                    if k in ("kind", "sha256", "how")):
        raise ValueError(f"{out} holds {existing.get('kind')} features made with weights "
                         f"{existing.get('weights')!r} (sha256 {existing.get('sha256')}); these would be made with "
                         f"{record.weights!r} (sha256 {record.sha256}); use another output folder")
    with atomic_output(record_path, "w") as fh:
        fh.write(json.dumps(record.as_dict(), indent=2) + "\n")

    net = _inference_model(kind, model, torch_device, pipeline.memory_format)
    expected = STREAMS[kind]
    rows = batch_size or DEFAULT_BATCH[torch_device.type][kind]

    def forward(batch: np.ndarray) -> np.ndarray:
        x = pipeline.prepare(torch.from_numpy(batch).to(torch_device))
        return net(x.contiguous(memory_format=pipeline.memory_format)).float().cpu().numpy()

    key_of = {path: key for key, path in todo}
    with _exact_fp32(), torch.inference_mode(), tqdm(total=len(todo), desc=f"{kind} features", unit="clip",
                                                     disable=not progress) as bar:
        loaded = _prefetched(pipeline.load, list(key_of), LOADER_THREADS)
        for path, features in _batched(loaded, forward, rows):
            if pca is not None:
                features = vggish.postprocess(features, *pca).astype(np.float32)
            if features.shape != expected:
                raise RuntimeError(f"{path}: {kind} features came out {features.shape}, expected {expected}")
            with atomic_output(out / f"{key_of[path]}.npy") as fh:
                np.save(fh, np.ascontiguousarray(features, dtype=np.float32))
            bar.update(1)
    return record.as_dict()
