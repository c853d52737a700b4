"""The decoding and batching half of feature extraction (`avvp.features.extract`), two stages that
overlap with each other and with the writing of features:

1. **Decoding** (`Decoder`). The kind's `load` turns each input (by the kind's medium: an audio WAV,
   a frames folder or a video file) into its network rows (uint8 frames, float32 log-mel
   examples), in input order. With `workers=0` this happens in this process: in background
   threads on a GPU (PIL and numpy release the GIL), in line between forward passes on the CPU
   (`loader_threads`); with `workers=N` in N worker processes of a torch `DataLoader` (one torch
   thread each, at most 2 x N inputs decoded ahead, so memory stays bounded), which start before
   the network is loaded. On CUDA the rows arrive in pinned memory and are copied to the device
   with `non_blocking`. An input that cannot be decoded comes out as a `DecodeFailure`.
2. **The network** (`batched`, `batch_forward`). The rows of consecutive inputs (frames, 8-frame
   clips or 0.96 s audio examples) are packed into forward batches of `batch_size`, so a batch may
   hold parts of several clips. In eval mode every row is computed on its own, so a clip's
   features do not depend on its neighbours, on the batch size or on the number of workers.
   Normalisation runs on the device (`prepare`). On CUDA, TF32 is switched off while extracting
   (`exact_fp32`): features must stay float32-exact.

How many workers: `default_workers` (the `threads` CPUs of the job, by default those this process
may run on). On CUDA every CPU but the one that feeds the GPU decodes; on the CPU the network is
the bottleneck by far (decoding is a few percent of a clip's time) and worker processes or threads
only take cores from it, so decoding stays in line, as before the pipeline (measured:
docs/BENCHMARKS.md, "Extraction as a pipeline"). Worker processes use the platform's start method (fork on Linux); with spawn or
forkserver a kind's `load` must be picklable (a module-level function, as the built-in kinds' are).
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from avvp.extractors import Extractor

MAX_LOADER_THREADS = 8  # in-process decoding threads (workers=0)

T = TypeVar("T")


# ----------------------------------------------------------------------------- CPUs


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


def batched(items: Iterable[tuple[T, Any]], forward: Callable[[Any], np.ndarray],
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
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to the job's CPUs (not the machine's) for a block, when given."""
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextmanager
def exact_fp32() -> Iterator[None]:
    """No TF32 on CUDA while extracting: it rounds conv and matmul inputs to 10 mantissa bits."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
