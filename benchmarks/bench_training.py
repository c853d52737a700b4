"""One HAN training epoch on 10,000 LLP-shaped random feature sets plus validation on 649:
packed, pre-pooled arrays and the vectorised evaluator vs a baseline written like the published code.

The baseline loads three `.npy` files per sample through a DataLoader (batch 16, shuffled), applies
`fc_v` to all 80 frames before pooling, predicts the validation split one video at a time and scores
it with per-video loops (tests/reference_evaluation.py). Ours packs once (timed separately: it is
cached by the workflow and shared by every epoch and every run), then trains from the memory-mapped
arrays. Both run in one process, alternating, on the same data and the same initial weights.

    .venv/bin/python benchmarks/bench_training.py [--repeats 2] [--workdir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import reference_evaluation as ref  # noqa: E402
from conftest import write_random_features  # noqa: E402

from avvp.evaluation.annotations import ground_truth, read_classes, read_dense, read_weak  # noqa: E402
from avvp.extractors import PUBLISHED  # noqa: E402
from avvp.features.store import pack_split, released_source  # noqa: E402
from avvp.model.han import HAN  # noqa: E402
from avvp.methods.objectives import han_loss  # noqa: E402
from avvp.methods.settings import TrainSettings  # noqa: E402
from avvp.methods.training import validate  # noqa: E402
from avvp.model.inference import batch_tensors, iterate_batches  # noqa: E402

LLP = ROOT / "data" / "llp"


class PerFileDataset(Dataset):
    """The published loader: one np.load per stream and sample."""

    def __init__(self, root: Path, video_ids: list[str], labels: np.ndarray) -> None:
        self.root, self.video_ids, self.labels = root, video_ids, labels

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, i: int):
        vid = self.video_ids[i]
        return tuple(torch.from_numpy(np.load(self.root / k / f"{vid}.npy")) for k in PUBLISHED) + (
            torch.from_numpy(self.labels[i]),)


class BaselineHAN(HAN):
    """HAN as released: fc_v on all 80 frames, then the 8-frame average."""

    def embed(self, audio, frames, clips):
        v = self.fc_v(frames)
        v = v.reshape(v.shape[0], 10, -1, v.shape[-1]).mean(dim=2)
        return self.fc_a(audio), self.fc_fusion(torch.cat((v, self.fc_st(clips)), dim=-1))


def baseline_epoch(model, optimizer, root, train, val, gt_a, gt_v, classes) -> float:
    start = time.perf_counter()
    model.train()
    loader = DataLoader(PerFileDataset(root, list(train.video_ids), train.labels), batch_size=16, shuffle=True)
    for a, v, st, y in loader:
        loss = han_loss(model(a, v, st), y, 0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    g_all, f_all = [], []
    with torch.no_grad():
        for a, v, st, _ in DataLoader(PerFileDataset(root, list(val.video_ids), val.labels), batch_size=1):
            g, _, _, f = model(a, v, st)
            g_all.append(g[0].numpy())
            f_all.append(f[0].numpy())
    ref.reference_evaluate(np.stack(g_all), np.stack(f_all), gt_a, gt_v, classes)
    return time.perf_counter() - start


def our_epoch(model, optimizer, train_pack, val_pack, gt, generator) -> float:
    start = time.perf_counter()
    model.train()
    labels = torch.from_numpy(np.asarray(train_pack.labels))
    device = torch.device("cpu")
    for rows in iterate_batches(len(train_pack), 16, generator):
        loss = han_loss(model(*batch_tensors(train_pack, rows, device, model.features)), labels[rows], 0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    validate(model, val_pack, gt, TrainSettings(), device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="where the 10,649 x 3 feature files go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the feature files for a later run")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="avvp-bench-train-"))
    vocab = read_classes(LLP / "classes.txt")
    train = read_weak(LLP / "AVVP_train.csv", vocab)
    val = read_weak(LLP / "AVVP_val_pd.csv", vocab)
    feats = work / "features"
    if not (feats / "r2plus1d_18" / f"{val.video_ids[-1]}.npy").is_file():
        print(f"writing {len(train.filenames) + len(val.filenames)} random feature sets under {feats} ...")
        write_random_features(feats, list(train.video_ids) + list(val.video_ids))
    gt = ground_truth(val, read_dense(LLP / "AVVP_eval_audio.csv", vocab), read_dense(LLP / "AVVP_eval_visual.csv", vocab))

    start = time.perf_counter()
    train_pack = pack_split(train, released_source(feats), work / "pack_train")
    val_pack = pack_split(val, released_source(feats), work / "pack_val")
    pack_seconds = time.perf_counter() - start

    torch.manual_seed(1)
    ours = HAN(len(vocab))
    baseline = BaselineHAN(len(vocab))
    baseline.load_state_dict(ours.state_dict())
    opt_ours = torch.optim.Adam(ours.parameters(), lr=3e-4)
    opt_base = torch.optim.Adam(baseline.parameters(), lr=3e-4)
    generator = torch.Generator().manual_seed(1)
    times: dict[str, list[float]] = {"baseline": [], "ours": []}
    for _ in range(args.repeats):
        times["baseline"].append(baseline_epoch(baseline, opt_base, feats, train, val, gt.audio, gt.visual,
                                                list(vocab.classes)))
        times["ours"].append(our_epoch(ours, opt_ours, train_pack, val_pack, gt, generator))
    base, mine = statistics.median(times["baseline"]), statistics.median(times["ours"])
    print(f"\nthreads: {torch.get_num_threads()}, repeats: {args.repeats}, packing once: {pack_seconds:.1f} s\n")
    print("| one epoch (10,000 train + 649 val) | seconds (median) |")
    print("| --- | --- |")
    print(f"| baseline (per-file DataLoader, fc on 80 frames, looped evaluation) | {base:.1f} |")
    print(f"| ours (packed memory-mapped, pre-pooled, vectorised evaluation) | {mine:.1f} |")
    print(f"| speed-up | {base / mine:.1f}x |")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
