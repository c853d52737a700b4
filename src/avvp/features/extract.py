"""Batch feature extraction into the released layout: one `<id>.npy` per input, plus `weights.json`.

Generic over feature kinds: what differs between kinds comes from their `Extractor`. One network
load per call. Extraction is a pipeline of three stages that overlap:

1. **Decoding.** The kind's `load` turns each input (a frames folder or a WAV) into its network rows
   (uint8 frames, float32 log-mel examples), in input order. With `workers=0` this happens in this
   process: in background threads on a GPU (PIL and numpy release the GIL), in line between
   forward passes on the CPU (`loader_threads`); with `workers=N` in N worker
   processes of a torch `DataLoader` (one torch thread each, at most 2 x N inputs decoded ahead, so
   memory stays bounded), which start before the network is loaded. On CUDA the rows arrive in
   pinned memory and are copied to the device with `non_blocking`.
2. **The network.** The rows of consecutive inputs (frames, 8-frame clips or 0.96 s audio
   examples) are packed into forward batches of `batch_size`, so a batch may hold parts of several
   clips. In eval mode every row is computed on its own, so a clip's features do not depend on its
   neighbours, on the batch size or on the number of workers. Normalisation runs on the device
   (`prepare`). On CUDA, TF32 is switched off for the call: features must stay float32-exact.
3. **Writing.** Each input's features are written to a temporary name and moved into place
   (`avvp.base.atomic`), so a killed extraction leaves no partial `.npy` under a final name; an input
   whose output exists is skipped, so a rerun only does what is missing.

How many workers: `default_workers` (the `threads` CPUs of the job, by default those this process
may run on). On CUDA every CPU but the one that feeds the GPU decodes; on the CPU the network is
the bottleneck by far (decoding is a few percent of a clip's time) and worker processes or threads
only take cores from it, so decoding stays in line, as before the pipeline (measured:
docs/BENCHMARKS.md, "Extraction as a pipeline"). Worker processes use the platform's start method (fork on Linux); with spawn or
forkserver a kind's `load` must be picklable (a module-level function, as the built-in kinds' are).

Bad inputs: an input that cannot be decoded (an unreadable JPEG or WAV: `load` raises `ValueError`
or `OSError`) is recorded, never fatal: its reason goes to `<out_dir>/failed.tsv` (columns id,
input, reason; rows of inputs that later succeed are dropped, the file is removed when none is
left), it gets no `.npy`, and the other inputs are extracted (packing with `--on-missing skip`
leaves it out). `strict=True` raises on the first such input instead. Inputs that are not there at
all (a missing WAV or folder, a folder without JPEGs) and two inputs with one output name are
errors of the input list, raised before the network is built.

A folder's `weights.json` must agree with the weights of a later call into the same folder
(features from different weights never mix silently).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from avvp.evaluation.annotations import video_id
from avvp.base.atomic import atomic_output
from avvp.base.files import VIDEO_SUFFIXES
from avvp.base.device import resolve_device
from avvp.extractors import AUDIO, FRAMES, Extractor, FeatureKind, feature_kind
from avvp.extractors.parts.frames import frame_files
from avvp.features.networks import load_network
from avvp.features.weights import RECORD_NAME, WeightsRecord, read_record

FAILED_NAME = "failed.tsv"
FAILED_COLUMNS = ("id", "input", "reason")
MAX_LOADER_THREADS = 8  # in-process decoding threads (workers=0)

T = TypeVar("T")


def available_cpus() -> int:
    """CPUs this process may run on (a SLURM job's allocation, not the whole node)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(device_type: str, threads: int) -> int:
    """Decoding processes for a job of `threads` CPUs: on CUDA all but the one feeding the GPU (at
    least 1); on the CPU none (decoding stays in-process, see the module's docstring)."""
    return max(1, threads - 1) if device_type == "cuda" else 0


def loader_threads(device_type: str, threads: int) -> int:
    """In-process decoding threads when there are no worker processes: on the CPU none (each input
    is decoded in line, between forward passes: a decoding thread beside torch's threads stalls
    every parallel operation of the network for longer than the decoding takes); otherwise up to
    MAX_LOADER_THREADS, leaving one CPU to the network."""
    return 0 if device_type == "cpu" else max(1, min(MAX_LOADER_THREADS, threads - 1))


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


# ----------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class DecodeFailure:
    """Why one input could not be decoded (what its `load` raised)."""

    reason: str


def decode(load: Callable[[Path], Any], path: Path) -> torch.Tensor | DecodeFailure:
    """One input's network rows as a tensor, or the reason it cannot be decoded."""
    try:
        return torch.as_tensor(np.ascontiguousarray(load(path)))
    except (OSError, ValueError) as err:
        return DecodeFailure(str(err) or type(err).__name__)


class _Inputs(Dataset):
    """Item i: (i, decoded input i); what a worker process runs (picklable when `load` is)."""

    def __init__(self, load: Callable[[Path], Any], items: Sequence[Path]) -> None:
        self.load, self.items = load, list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | DecodeFailure]:
        return i, decode(self.load, self.items[i])


def _one_thread(_: int) -> None:
    """Worker start: one torch thread, so that N workers use N cores."""
    torch.set_num_threads(1)


def _as_is(item: T) -> T:
    return item


class Decoder:
    """Decoded inputs in input order, as (path, rows or DecodeFailure); decoding starts at creation.

    workers=0, threads=0: each input decoded in line, when the caller asks for it (no overlap).
    workers=0, threads=N: N background threads of this process, up to 2 x N inputs ahead.
    workers=N: N DataLoader worker processes, up to 2 x N inputs ahead, rows pinned when `pin`.
    Use as a context manager (or call close()) so that threads or processes stop on errors.
    """

    def __init__(self, load: Callable[[Path], Any], items: Sequence[Path], workers: int = 0, threads: int = 1,
                 pin: bool = False) -> None:
        self.items, self._load = list(items), load
        self._pool: ThreadPoolExecutor | None = None
        self._batches: Iterator | None = None
        if workers > 0 and self.items:
            loader = DataLoader(_Inputs(load, self.items), batch_size=None, shuffle=False,
                                num_workers=min(workers, len(self.items)), collate_fn=_as_is,
                                pin_memory=pin, worker_init_fn=_one_thread, prefetch_factor=2)
            self._batches = iter(loader)  # the workers start and decode from here on
        elif threads > 0:
            self._pool = ThreadPoolExecutor(max_workers=threads)
            ahead = islice(self.items, 2 * threads)
            self._ahead = deque(self._pool.submit(decode, load, item) for item in ahead)
            self._next = len(self._ahead)

    def __iter__(self) -> Iterator[tuple[Path, torch.Tensor | DecodeFailure]]:
        if self._batches is not None:
            for i, rows in self._batches:
                yield self.items[i], rows
            return
        if self._pool is None:
            for item in self.items:
                yield item, decode(self._load, item)
            return
        for item in self.items:
            future = self._ahead.popleft()
            if self._next < len(self.items):
                self._ahead.append(self._pool.submit(decode, self._load, self.items[self._next]))
                self._next += 1
            yield item, future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._batches is not None:
            shutdown = getattr(self._batches, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            self._batches = None

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- batching


def _cat(parts: list) -> Any:
    if len(parts) == 1:
        return parts[0]
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)


def _batched(items: Iterable[tuple[T, Any]], forward: Callable[[Any], np.ndarray],
             batch_size: int) -> Iterator[tuple[T, np.ndarray]]:
    """Run `forward` on the rows (arrays or tensors) of consecutive items, batch_size rows at a time;
    yield each item's outputs as soon as they are all computed."""
    waiting: deque[tuple[T, int]] = deque()
    inputs: list = []
    outputs: list[np.ndarray] = []

    def run(n: int) -> None:
        rows = _cat(inputs)
        outputs.append(forward(rows[:n]))
        inputs[:] = [rows[n:]] if n < len(rows) else []

    def finished() -> Iterator[tuple[T, np.ndarray]]:
        if not outputs:
            return
        done = _cat(outputs)
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


def batch_forward(network: Extractor, model: torch.nn.Module,
                  device: torch.device) -> Callable[[torch.Tensor], np.ndarray]:
    """The kind's network on `device` as a function: a batch of rows (any device) -> features (numpy).
    Call it under torch.inference_mode()."""
    net = network.features(model, device)
    layout = network.memory_format()

    def forward(batch: torch.Tensor) -> np.ndarray:
        x = network.prepare(batch.to(device, non_blocking=True))
        x = x.contiguous(memory_format=layout) if layout is not None else x
        return net(x).float().cpu().numpy()

    return forward


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to the job's CPUs (not the machine's) for a block, when given."""
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextmanager
def _exact_fp32() -> Iterator[None]:
    """No TF32 on CUDA while extracting: it rounds conv and matmul inputs to 10 mantissa bits."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


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
    (`read_failures`), or raise with `strict`.
    """
    spec = feature_kind(kind)
    network = spec.network()
    if postprocess is not None and network.postprocessor is None:
        raise ValueError(f"feature kind {kind} has no post-processor")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    paths = [Path(p) for p in inputs]
    ids = _check_inputs(spec, paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(key, path) for key, path in zip(ids, paths) if not (out / f"{key}.npy").exists()]
    record_path = out / RECORD_NAME
    existing = read_record(out)
    if not todo and existing and (existing.get("kind"), existing.get("weights"), existing.get("seed")) == (
            kind, weights if weights in ("random", "pretrained") else str(Path(weights)), seed):
        return existing

    torch_device = resolve_device(device)
    cpus = threads or available_cpus()
    n_workers = default_workers(torch_device.type, cpus) if workers is None else workers
    key_of = {path: key for key, path in todo}
    decoder = Decoder(network.load, list(key_of), n_workers, threads=loader_threads(torch_device.type, cpus),
                      pin=torch_device.type == "cuda")
    with decoder, _torch_threads(threads):  # decoding runs while the network loads
        model, record = load_network(spec, weights, seed)
        finish = None
        if postprocess is not None:
            finish, how = network.postprocessor(postprocess)
            record = WeightsRecord(**{**record.as_dict(), "how": f"{record.how}; {how}"})
        if existing is not None and any(existing.get(k) != v for k, v in record.as_dict().items()
                                        if k in ("kind", "sha256", "how")):
            raise ValueError(f"{out} holds {existing.get('kind')} features made with weights "
                             f"{existing.get('weights')!r} (sha256 {existing.get('sha256')}); these would be "
                             f"made with {record.weights!r} (sha256 {record.sha256}); use another output folder")
        with atomic_output(record_path, "w") as fh:
            fh.write(json.dumps(record.as_dict(), indent=2) + "\n")

        forward = batch_forward(network, model, torch_device)
        rows = batch_size or spec.default_batch.get(torch_device.type, spec.default_batch["cpu"])
        tried: list[str] = []
        failed: dict[str, tuple[str, str]] = {}

        def decoded() -> Iterator[tuple[Path, torch.Tensor]]:
            for path, item in decoder:
                if isinstance(item, DecodeFailure):
                    if strict:
                        raise ValueError(f"{path}: {item.reason}")
                    tried.append(key_of[path])
                    failed[key_of[path]] = (str(path), item.reason)
                    bar.update(1)
                    continue
                # pinned rows on CUDA: the copy overlaps with the batch being computed
                yield path, item.to(torch_device, non_blocking=True)

        try:
            with _exact_fp32(), torch.inference_mode(), tqdm(total=len(todo), desc=f"{kind} features",
                                                             unit="clip", disable=not progress) as bar, \
                    closing(decoded()) as usable:
                for path, features in _batched(usable, forward, rows):
                    if finish is not None:
                        features = finish(features)
                    features = features.reshape(-1, features.shape[-1])  # one row may give several (clap)
                    if features.shape != spec.shape:
                        raise RuntimeError(f"{path}: {kind} features came out {features.shape}, "
                                           f"expected {spec.shape}")
                    with atomic_output(out / f"{key_of[path]}.npy") as fh:
                        np.save(fh, np.ascontiguousarray(features, dtype=np.float32))
                    tried.append(key_of[path])
                    bar.update(1)
        finally:
            if tried or (out / FAILED_NAME).exists():
                _write_failures(out, tried, failed)
    return record.as_dict()
