"""CUDA path check and GPU throughput: the three extractors and HAN training, CUDA vs CPU.

Runs where a GPU is present (it exits with a message otherwise). Inputs are synthetic (frames
written with PIL, tones written with the `wave` module), so neither ffmpeg nor moviepy is needed.
It checks that CUDA features equal CPU features (float32; TF32 off) and that a CUDA training run
gives validation numbers close to the CPU run's, and prints per-clip and per-epoch seconds.

    PYTHONPATH=src python3 benchmarks/gpu_check.py [--clips 24] [--train-videos 10000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from avvp.evaluation.annotations import Vocabulary, WeakSplit, ground_truth, DenseEvents
from avvp.extractors import PUBLISHED, feature_kind
from avvp.features.extract import extract_features
from avvp.features.store import pack_split, released_source
from avvp.methods.settings import TrainSettings
from avvp.methods.training import train


def synthetic_inputs(root: Path, n: int) -> tuple[list[Path], list[Path]]:
    """n frame folders (82 JPEGs of 320x240 moving colour fields) and n 10-s 16 kHz WAVs."""
    rng = np.random.default_rng(0)
    frames, wavs = [], []
    yy, xx = np.mgrid[0:240, 0:320]
    for i in range(n):
        folder = root / "frames" / f"clip{i:06d}x_0_10"
        folder.mkdir(parents=True)
        hue = rng.random(3) * 255
        for t in range(82):
            field = (np.sin((xx + 4 * t) / (10 + i)) * 60 + np.cos(yy / 17) * 40)[..., None] + hue
            Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).save(folder / f"{t + 1:06d}.jpg")
        frames.append(folder)
        wav = root / "audio" / f"clip{i:06d}x_0_10.wav"
        wav.parent.mkdir(exist_ok=True)
        tone = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * np.arange(160000) / 16000)
        with wave.open(str(wav), "wb") as fh:
            fh.setnchannels(1)
            fh.setsampwidth(2)
            fh.setframerate(16000)
            fh.writeframes((tone * 32767).astype(np.int16).tobytes())
        wavs.append(wav)
    return frames, wavs


def check_extractors(root: Path, n: int) -> list[str]:
    frames, wavs = synthetic_inputs(root / "inputs", n)
    rows = []
    for kind, inputs in (("vggish", wavs), ("res152", frames), ("r2plus1d_18", frames)):
        few = inputs[:2]
        start = time.perf_counter()
        extract_features(kind, few, root / "cpu" / kind, device="cpu", progress=False)
        cpu = (time.perf_counter() - start) / len(few)
        extract_features(kind, few, root / "warm" / kind, device="cuda", progress=False)  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        extract_features(kind, inputs, root / "cuda" / kind, device="cuda", progress=False)
        torch.cuda.synchronize()
        gpu = (time.perf_counter() - start) / len(inputs)
        worst = 0.0
        for path in few:
            a = np.load(root / "cpu" / kind / f"{path.stem[:11]}.npy")
            b = np.load(root / "cuda" / kind / f"{path.stem[:11]}.npy")
            worst = max(worst, float(np.abs(a - b).max() / (np.abs(a).max() + 1e-12)))
        rows.append(f"| {kind} | {cpu:.2f} | {gpu:.3f} | {cpu / gpu:.0f}x | {worst:.1e} |")
    return rows


def check_training(root: Path, n_train: int) -> list[str]:
    rng = np.random.default_rng(0)
    vocab = Vocabulary(tuple(f"class{i}" for i in range(25)))
    names = [f"v{i:010d}_0_10" for i in range(n_train + 600)]
    feats = root / "features"
    for kind in PUBLISHED:
        shape = feature_kind(kind).shape
        (feats / kind).mkdir(parents=True)
        for name in names:
            np.save(feats / kind / f"{name[:11]}.npy", rng.random(shape, dtype=np.float32))
    labels = (rng.random((len(names), 25)) < 0.1).astype(np.float32)
    labels[np.arange(len(names)), rng.integers(0, 25, len(names))] = 1
    split = WeakSplit(root, vocab, tuple(names), labels)
    tr = pack_split(split.subset(np.arange(len(names)) < n_train), released_source(feats), root / "pack_train")
    va_split = split.subset(np.arange(len(names)) >= n_train)
    va = pack_split(va_split, released_source(feats), root / "pack_val")
    rows_v = np.flatnonzero(va_split.labels)
    dense = DenseEvents(root, np.array([va_split.filenames[i // 25] for i in rows_v]), np.zeros(len(rows_v)),
                        np.full(len(rows_v), 10.0), rows_v % 25, np.arange(len(rows_v)))
    gt = ground_truth(va_split, dense, dense)
    rows = []
    results = {}
    for device in ("cpu", "cuda"):
        start = time.perf_counter()
        summary = train(tr, va, gt, root / f"run_{device}", TrainSettings(epochs=2), device=device, progress=False)
        seconds = (time.perf_counter() - start) / 2
        results[device] = summary["best_val_type_at_av"]
        rows.append(f"| {device} | {seconds:.1f} | {summary['best_val_type_at_av']:.2f} |")
    cpu, gpu = (torch.load(root / f"run_{d}" / "last.pt", weights_only=True)["state_dict"] for d in ("cpu", "cuda"))
    drift = max(float((cpu[k] - gpu[k].cpu()).abs().max()) for k in cpu)
    rows.append(f"| CPU vs CUDA after 2 epochs | max weight diff {drift:.1e} | "
                f"Type@AV diff {abs(results['cpu'] - results['cuda']):.3f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--train-videos", type=int, default=10000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check")
        return 1
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("\n| extractor | CPU s/clip | CUDA s/clip | speed-up | max rel. diff CUDA vs CPU |")
        print("| --- | --- | --- | --- | --- |")
        for row in check_extractors(root / "extract", args.clips):
            print(row, flush=True)
        print(f"\n| HAN training, {args.train_videos} videos + 600 val | s/epoch | val Type@AV after 2 epochs |")
        print("| --- | --- | --- |")
        for row in check_training(root / "train", args.train_videos):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
