"""Extraction as a pipeline: per-clip decode and network seconds, how much decoding is hidden, LLP time.

Inputs: demo clips (`avvp.clips.demo.plan_clips` + `write_clip`, 320x240), scaled to `--frame-size`
(default 640x360: LLP's downloads are at most 360p, and decoding cost follows the pixels), made
into 8 fps JPEG frames and 16 kHz WAVs by the package's media steps (`avvp.clips.media`); kinds of medium
`video` (CLAP's) read the scaled clips themselves (44.1 kHz stereo AAC). Weights:
`random` (seed 0) of each kind, saved once to a state-dict file that every run loads (model-folder
kinds, CLIP's and CLAP's, are seeded again in each run).

What is measured, per kind (seconds per clip):

- decode: the kind's `load` (JPEG decoding, resize and crop; or the VGGish front end) over every
  clip, one after the other in this process, one thread: the CPU seconds one core spends per clip.
- network: the same clips' rows, decoded beforehand, through the shipped batching (`batched`) and
  forward (`batch_forward`: to the device, `prepare`, the network, back), after one warm-up batch.
- pipelined, for each `--workers` value: `extract_features` itself (decoding in line for 0 on the CPU,
  worker processes otherwise; writing the `.npy` files included) on the N clips into a fresh
  folder; seconds per clip = (time the last `.npy` appeared - time the first appeared) / (N - 1)
  (the files' modification times), the steady state without the job's start-up (network load,
  worker start, the first clip's latency), which is shown apart: "start-up" = time to the first
  file - one clip.
- hidden: (decode + network - pipelined) / min(decode, network), clipped to [0, 1]: the fraction of
  the shorter of the two stages that ran in the shadow of the other (1: the pipeline is as fast as
  its slower stage alone; 0: no better than one stage after the other).

Projection for LLP on one node: 11,849 clips x the best pipelined seconds per clip of each kind,
summed over the kinds (the kinds' jobs run one after the other on the node's one device), plus the
start-up of each job: `--shards` jobs per kind (config/llp.yaml: 128) x that kind's start-up.

Rounds (`--rounds`) repeat every timing, interleaved (each round measures everything once, in
turn, so that all meet the same machine load); the best counts. Run:

    PYTHONPATH=src python benchmarks/bench_extraction_pipeline.py [--clips 6] [--workers 0 1 2]
        [--device cpu|cuda] [--kinds vggish res152 r2plus1d_18] [--threads N] [--rounds 1]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from avvp.clips.demo import plan_clips, write_clip
from avvp.base.device import resolve_device
from avvp.extractors import AUDIO, FRAMES, VIDEO, feature_kind
from avvp.features.extract import extract_features
from avvp.features.pipeline import available_cpus, batch_forward, batched, decode, default_workers, exact_fp32
from avvp.features.networks import load_network
from avvp.clips.ffmpeg import ffmpeg_exe, input_arg
from avvp.clips.media import extract_audio, extract_frames

LLP_CLIPS = 11_849
LLP_SHARDS = 128


def make_inputs(root: Path, n: int, size: str, jobs: int) -> dict[str, list[Path]]:
    """Each medium's inputs of the first n demo clips (frames folders, WAVs, the clips), scaled to `size`."""
    clips = plan_clips(max(n, 10), seed=0)[:n]

    def one(clip) -> tuple[Path, Path, Path]:
        video = root / "videos" / f"{clip.filename}.mp4"
        write_clip(clip, video)
        scaled = root / "scaled" / video.name
        scaled.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", input_arg(video),
                        "-vf", f"scale={size.replace('x', ':')}", "-c:v", "libx264", "-preset", "veryfast",
                        "-crf", "18", "-threads", "1", "-c:a", "copy", input_arg(scaled)], check=True)
        frames, wav = root / "frames" / clip.filename, root / "audio" / f"{clip.filename}.wav"
        extract_frames(scaled, frames)
        extract_audio(scaled, wav)
        return frames, wav, scaled

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        made = list(pool.map(one, clips))
    return {medium: [paths[i] for paths in made] for i, medium in enumerate((FRAMES, AUDIO, VIDEO))}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_kind(kind: str, inputs: list[Path], work: Path, device: torch.device, workers: list[int],
               threads: int, rounds: int) -> dict:
    spec = feature_kind(kind)
    network = spec.network()
    model, _ = load_network(spec, "random", seed=0)
    if network.from_folder is None:
        state = work / f"{kind}.pth"
        torch.save(model.state_dict(), state)
        weights = str(state)
    else:  # a model-folder kind (CLIP, CLAP): seeded again in each run (its start-up includes that)
        weights = "random"
    n = len(inputs)
    rows_per_batch = spec.default_batch.get(device.type, spec.default_batch["cpu"])

    # Every round measures everything once, in turn, so that all meet the same machine load.
    decode(network.load, inputs[0])  # warm the file cache
    forward = batch_forward(network, model, device)
    best_decode = best_network = float("inf")
    pipelined: dict[int, float] = {}
    startup: dict[int, float] = {}
    for round_ in range(rounds):
        # decode: one core, one clip after the other
        decoded: list = []
        best_decode = min(best_decode, timed(lambda: decoded.extend(decode(network.load, p) for p in inputs)))
        # network: the decoded rows through the shipped batching and forward
        with exact_fp32(), torch.inference_mode():
            forward(decoded[0][:rows_per_batch])  # warm-up (oneDNN primitives, CUDA kernels)
            best_network = min(best_network, timed(
                lambda: list(batched(((i, r) for i, r in enumerate(decoded)), forward, rows_per_batch))))
        del decoded
        # pipelined: extract_features itself; the steady state from the times its files appeared
        for w in workers[round_ % len(workers):] + workers[:round_ % len(workers)]:  # a new order each round
            out = work / f"{kind}-out"
            start = time.time_ns()
            extract_features(kind, inputs, out, weights=weights, device=str(device), progress=False,
                             workers=w, threads=threads)
            written = sorted(p.stat().st_mtime_ns for p in out.glob("*.npy"))
            shutil.rmtree(out)
            per_clip = (written[-1] - written[0]) / 1e9 / (n - 1)
            if per_clip < pipelined.get(w, float("inf")):
                pipelined[w], startup[w] = per_clip, (written[0] - start) / 1e9 - per_clip
    del model, forward
    decode_s, network_s = best_decode / n, best_network / n
    hidden = {w: min(1.0, max(0.0, (decode_s + network_s - p) / min(decode_s, network_s)))
              for w, p in pipelined.items()}
    return {"kind": kind, "decode": decode_s, "network": network_s, "pipelined": pipelined,
            "startup": startup, "hidden": hidden}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6, help="at least 2")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="the job's CPUs (default: all available)")
    parser.add_argument("--kinds", nargs="+", default=["vggish", "res152", "r2plus1d_18"])
    parser.add_argument("--frame-size", default="640x360")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--shards", type=int, default=LLP_SHARDS, help="jobs per kind for LLP")
    parser.add_argument("--work", type=Path, help="keep inputs here (reused when present)")
    args = parser.parse_args()
    if args.clips < 2:
        parser.error("--clips must be at least 2")
    device = resolve_device(args.device)
    threads = args.threads or available_cpus()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_pipeline."))
    load_before = os.getloadavg()
    started = time.perf_counter()
    try:
        inputs = make_inputs(work / "inputs", args.clips, args.frame_size, threads)
        made = time.perf_counter() - started
        rows = [bench_kind(kind, inputs[feature_kind(kind).medium], work, device, args.workers, threads, args.rounds)
                for kind in args.kinds]
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    print(f"\n{args.clips} demo clips, frames {args.frame_size}; device {device} ({gpu}); "
          f"{platform.processor() or platform.machine()}, {available_cpus()} CPUs available, threads {threads}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); inputs made in {made:.0f} s; "
          f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; best of {args.rounds}; "
          f"default workers here: {default_workers(device.type, threads)}\n")
    print("| kind | decode s/clip (1 core) | network s/clip | "
          + " | ".join(f"pipelined, {w} workers" for w in args.workers)
          + " | hidden (" + "/".join(map(str, args.workers)) + ") | start-up s (" + "/".join(map(str, args.workers)) + ") |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in args.workers) + " | ---: | ---: |")
    for row in rows:
        print(f"| {row['kind']} | {row['decode']:.3f} | {row['network']:.3f} | "
              + " | ".join(f"{row['pipelined'][w]:.3f}" for w in args.workers)
              + " | " + " / ".join(f"{row['hidden'][w]:.2f}" for w in args.workers)
              + " | " + " / ".join(f"{row['startup'][w]:.1f}" for w in args.workers) + " |")
    best = {row["kind"]: min(row["pipelined"], key=row["pipelined"].get) for row in rows}
    clips_s = sum(LLP_CLIPS * row["pipelined"][best[row["kind"]]] for row in rows)
    jobs_s = sum(args.shards * max(0.0, row["startup"][best[row["kind"]]]) for row in rows)
    print(f"\nLLP on one such node ({LLP_CLIPS} clips; best workers per kind: "
          + ", ".join(f"{k} {w}" for k, w in best.items())
          + f"): {clips_s / 60:.1f} min of clips + {jobs_s / 60:.1f} min of job start-up "
          f"({args.shards} shards per kind) = {(clips_s + jobs_s) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
