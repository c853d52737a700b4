"""Per-clip seconds of the three extractors against a baseline written like the published scripts.

Clips: 10 s ffmpeg lavfi videos (640x360, 30 fps, with a tone), turned into 8 fps JPEG frames and
16 kHz WAVs by the package's own media steps. Weights: `random` (seed 0) for each network, saved
once to a state-dict file that both sides load, so both run the same weights.

Baseline, as the published extraction scripts: frames loaded one by one with PIL and torchvision
transforms per frame, fp32 NCHW, `torch.no_grad`, one forward over all 80 frames (ResNet-152) or
all 10 clips (R(2+1)D-18); VGGish: the official front end then one NCHW forward over the examples.
Ours: `avvp.features.extract.extract_features` (one call for all clips, into a fresh folder).

Each side runs once on 1 clip and once on all N clips (one model load each time); seconds per clip
= (T(N) - T(1)) / (N - 1), so model loading cancels out and is shown apart (T(1) minus a clip).
Rounds alternate baseline and ours so both meet the same machine load; the best time counts.
Relative difference = max |ours - baseline| / max |baseline| over each clip's features.

Run: .venv/bin/python benchmarks/bench_extractors.py [--clips N] [--rounds R] [--kinds ...]
"""
from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from avvp.extractors import feature_kind, vggish
from avvp.features.extract import extract_features, output_id
from avvp.extractors.r2plus1d_18 import KINETICS_MEAN, KINETICS_STD
from avvp.extractors.res152 import IMAGENET_MEAN, IMAGENET_STD
from avvp.features.networks import load_network
from avvp.clips.ffmpeg import ffmpeg_exe
from avvp.clips.media import extract_audio, extract_frames

SOURCES = ("testsrc2", "mandelbrot", "cellauto=rule=110", "life=mold=10")  # moving pictures
RES152_MIN_SPEEDUP = 2.5
TOLERANCE = 1e-4


def make_clips(root: Path, n: int) -> list[tuple[Path, Path]]:
    """n (frames folder, wav) pairs from distinct lavfi sources, via the pipeline's media steps."""
    clips = []
    for i in range(n):
        source = SOURCES[i % len(SOURCES)]
        video = root / f"clip{i:02d}.mp4"
        subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y",
                        "-f", "lavfi", "-i", f"{source}{':' if '=' in source else '='}size=640x360:rate=30",
                        "-f", "lavfi", "-i", f"sine=frequency={300 + 200 * i}:sample_rate=44100",
                        "-t", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(video)],
                       check=True)
        frames, wav = root / "frames" / video.stem, root / "audio" / f"{video.stem}.wav"
        extract_frames(video, frames)
        extract_audio(video, wav)
        clips.append((frames, wav))
    return clips


def baseline_res152(state: Path, folders: list[Path]) -> list[np.ndarray]:
    model = torchvision.models.resnet152()
    model.load_state_dict(torch.load(state, weights_only=True))
    model.fc = torch.nn.Identity()
    model.eval()
    transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                    transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    out = []
    for folder in folders:
        files = sorted(folder.glob("*.jpg"))
        samples = np.round(np.linspace(0, len(files) - 1, 80))
        images = torch.zeros((80, 3, 224, 224))
        for i, sample in enumerate(samples):
            images[i] = transform(Image.open(files[int(sample)]).convert("RGB"))
        with torch.no_grad():
            out.append(model(images).numpy())
    return out


def baseline_r2plus1d(state: Path, folders: list[Path]) -> list[np.ndarray]:
    model = torchvision.models.video.r2plus1d_18()
    model.load_state_dict(torch.load(state, weights_only=True))
    model.fc = torch.nn.Identity()
    model.eval()
    transform = transforms.Compose([transforms.Resize((112, 112)), transforms.ToTensor(),
                                    transforms.Normalize(KINETICS_MEAN, KINETICS_STD)])
    out = []
    for folder in folders:
        files = sorted(folder.glob("*.jpg"))
        samples = np.round(np.linspace(0, len(files) - 1, 80))
        images = torch.zeros((10, 3, 8, 112, 112))
        for i, sample in enumerate(samples):
            images[i // 8, :, i % 8] = transform(Image.open(files[int(sample)]).convert("RGB"))
        with torch.no_grad():
            out.append(model(images).numpy())
    return out


def baseline_vggish(state: Path, wavs: list[Path]) -> list[np.ndarray]:
    model = vggish.VGGish()
    model.load_state_dict(torch.load(state, weights_only=True))
    model.eval()
    out = []
    for wav in wavs:
        examples = torch.from_numpy(vggish.clip_examples(wav))[:, None]
        with torch.no_grad():
            out.append(model(examples).numpy())
    return out


BASELINES = {"res152": baseline_res152, "r2plus1d_18": baseline_r2plus1d, "vggish": baseline_vggish}


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_kind(kind: str, inputs: list[Path], work: Path, rounds: int) -> dict:
    model, _ = load_network(feature_kind(kind), "random", seed=0)
    state = work / f"{kind}-random-seed0.pth"
    torch.save(model.state_dict(), state)
    del model

    def ours(subset: list[Path], out: Path) -> list[np.ndarray]:
        extract_features(kind, subset, out, weights=str(state), device="cpu", progress=False)
        features = [np.load(out / f"{output_id(p)}.npy") for p in subset]
        shutil.rmtree(out)
        return features

    n_all = len(inputs)
    best: dict[tuple[str, int], float] = {}
    for _ in range(rounds):
        for n in (1, n_all):
            seconds, expected = timed(lambda: BASELINES[kind](state, inputs[:n]))
            best["baseline", n] = min(best.get(("baseline", n), np.inf), seconds)
            seconds, got = timed(lambda: ours(inputs[:n], work / f"{kind}-ours"))
            best["ours", n] = min(best.get(("ours", n), np.inf), seconds)
    per_clip = {side: (best[side, n_all] - best[side, 1]) / (n_all - 1) for side in ("baseline", "ours")}
    diff = max(float(np.abs(o - e).max() / np.abs(e).max()) for o, e in zip(got, expected))
    return {"kind": kind, "baseline": per_clip["baseline"], "ours": per_clip["ours"],
            "speedup": per_clip["baseline"] / per_clip["ours"], "max_rel_diff": diff,
            "load_baseline": best["baseline", 1] - per_clip["baseline"],
            "load_ours": best["ours", 1] - per_clip["ours"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3, help="at least 2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", default=["res152", "r2plus1d_18", "vggish"], choices=list(BASELINES))
    args = parser.parse_args()
    if args.clips < 2:
        parser.error("--clips must be at least 2")
    work = Path(tempfile.mkdtemp(prefix="bench_extractors."))
    try:
        clips = make_clips(work, args.clips)
        rows = [bench_kind(kind, [wav if kind == "vggish" else frames for frames, wav in clips], work, args.rounds)
                for kind in args.kinds]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.clips} clips of 10 s (640x360 -> 8 fps JPEG, 16 kHz WAV), best of {args.rounds} rounds; "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| extractor | baseline s/clip | ours s/clip | speed-up | max rel. diff | model load s (baseline / ours) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['kind']} | {row['baseline']:.2f} | {row['ours']:.2f} | {row['speedup']:.2f}x "
              f"| {row['max_rel_diff']:.1e} | {row['load_baseline']:.1f} / {row['load_ours']:.1f} |")
    failed = [r["kind"] for r in rows if r["max_rel_diff"] > TOLERANCE]
    slow = [r["kind"] for r in rows if r["kind"] == "res152" and r["speedup"] < RES152_MIN_SPEEDUP]
    if failed:
        print(f"\nFEATURES DIFFER beyond {TOLERANCE:g} relative: {failed}")
    if slow:
        print(f"\nResNet-152 speed-up below {RES152_MIN_SPEEDUP}x (machine load can cause this; rerun)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
