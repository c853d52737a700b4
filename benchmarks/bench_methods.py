"""CPU time of every stage of HAN, MA-MMIL and JoMoLD: one epoch (or one pass) over 10,000
LLP-shaped random feature sets, each training epoch followed by validation on 649.

The packed splits are written directly with numpy (the `avvp pack` layout, pre-pooled, the real LLP
train and validation labels, random features), then each stage runs through the same library
calls as its `avvp train` / `avvp pass` command, in workflow order, each on the previous stage's
output.

    .venv/bin/python benchmarks/bench_methods.py [--n-train 10000] [--workdir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from avvp.evaluation.annotations import WeakSplit, ground_truth, read_classes, read_dense, read_weak
from avvp.model.checkpoint import load_han
from avvp.base.device import resolve_device
from avvp.extractors import PUBLISHED, feature_kind
from avvp.features.store import load_packed
from avvp.methods.jomold import RATIOS_FILE, estimate_noise_ratios, write_noise_ratios
from avvp.methods.ma_mmil import refine_labels, write_refinement
from avvp.methods.settings import with_overrides
from avvp.methods.stages import stage
from avvp.methods.training import train
from avvp.model.han import HAN
from avvp.base.protocol import SEGMENTS

ROOT = Path(__file__).resolve().parents[1]
LLP = ROOT / "data" / "llp"
CHUNK = 500


def write_pack(split: WeakSplit, n: int, out_dir: Path, rng: np.random.Generator) -> None:
    """The first n videos of `split` as a packed folder with random features, written in chunks."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in PUBLISHED:
        rows, dim = SEGMENTS, feature_kind(kind).dim
        array = np.lib.format.open_memmap(out_dir / f"{kind}.npy", mode="w+", dtype=np.float32, shape=(n, rows, dim))
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            array[start:stop] = rng.random((stop - start, rows, dim), dtype=np.float32)
        array.flush()
        del array
    np.save(out_dir / "labels.npy", split.labels[:n])
    index = {"filenames": list(split.filenames[:n]), "classes": list(split.vocab.classes), "kinds": list(PUBLISHED),
             "skipped": {}, "pooled": True}
    (out_dir / "index.json").write_text(json.dumps(index), encoding="utf-8")


def timed(fn: Callable[[], Any]) -> tuple[tuple[float, float], Any]:
    """((wall seconds, process CPU seconds), fn's result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return (time.perf_counter() - wall, time.process_time() - cpu), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--workdir", type=Path, help="where the packed arrays go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="avvp-bench-methods-"))
    vocab = read_classes(LLP / "classes.txt")
    train_split = read_weak(LLP / "AVVP_train.csv", vocab)
    val_split = read_weak(LLP / "AVVP_val_pd.csv", vocab)
    n_train = min(args.n_train, len(train_split.filenames))
    rng = np.random.default_rng(0)
    if not (work / "val" / "index.json").is_file():
        write_pack(train_split, n_train, work / "train", rng)
        write_pack(val_split, len(val_split.filenames), work / "val", rng)
    train_pack, val_pack = load_packed(work / "train"), load_packed(work / "val")
    gt = ground_truth(val_split, read_dense(LLP / "AVVP_eval_audio.csv", vocab),
                      read_dense(LLP / "AVVP_eval_visual.csv", vocab))
    device = resolve_device(args.device)
    if device.type == "cuda":  # CUDA and cuBLAS initialise on first use: keep that out of the first stage
        warm = HAN(len(vocab)).to(device)
        warm(*(torch.rand(16, 10, d, device=device) for d in (128, 2048, 512)))[0].sum().backward()
        torch.cuda.synchronize()

    def training_stage(stage_id: str, **inputs: Path) -> Callable[[], dict[str, Any]]:
        spec = stage(stage_id)
        settings = with_overrides(spec.defaults, {"epochs": 1})
        objective = spec.objective(settings, inputs, train_pack.classes)
        targets = spec.targets(inputs, train_pack) if spec.targets else None
        return lambda: train(train_pack, val_pack, gt, work / stage_id, settings, device=str(device), progress=False,
                             objective=objective, targets=targets)

    rows: list[tuple[str, str, tuple[float, float]]] = []

    def record(name: str, what: str, seconds: tuple[float, float]) -> None:
        rows.append((name, what, seconds))
        print(f"{name}: {seconds[0]:.1f} s wall, {seconds[1]:.1f} s CPU", file=sys.stderr, flush=True)

    def run_training(name: str, stage_id: str, **inputs: Path) -> None:
        seconds, _ = timed(training_stage(stage_id, **inputs))
        record(name, f"{stage_id}: 1 epoch, batch {stage(stage_id).defaults.batch_size}, + validation", seconds)

    run_training("HAN", "han")
    run_training("MA-MMIL stage 1", "ma_mmil_stage1")

    def ma_mmil_refine() -> None:
        model, _, _ = load_han(work / "ma_mmil_stage1" / "model.pt", train_pack.classes, device)
        refinement = refine_labels(model, train_pack, 1, device)
        write_refinement(work / "refined", train_pack, refinement, 1)

    seconds, _ = timed(ma_mmil_refine)
    record("MA-MMIL stage 2", "refine: partner draw + 3 forward passes + judgment", seconds)
    run_training("MA-MMIL stage 3", "ma_mmil_stage3", refined=work / "refined")
    run_training("JoMoLD noise estimator", "jomold_estimator")

    def jomold_ratios() -> None:
        model, _, _ = load_han(work / "jomold_estimator" / "model.pt", train_pack.classes, device)
        ratios = estimate_noise_ratios(model, train_pack, device)
        write_noise_ratios(work / "ratios" / RATIOS_FILE, ratios)

    seconds, _ = timed(jomold_ratios)
    record("JoMoLD noise ratios", "one forward pass + class rules", seconds)
    run_training("JoMoLD denoised training", "jomold_denoise", ratios=work / "ratios")

    print(f"\n{n_train} training videos, {len(val_pack)} validation videos, device {device}, "
          f"torch threads: {torch.get_num_threads()}\n")
    print("| stage | what runs | wall s | CPU s |")
    print("| --- | --- | --- | --- |")
    for name, what, (wall, cpu) in rows:
        print(f"| {name} | {what} | {wall:.1f} | {cpu:.1f} |")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
