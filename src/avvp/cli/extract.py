"""`avvp extract`: WAV files or frames folders -> OUT_DIR/<kind>/<id>.npy in the released layout.

One network load per call; inputs whose features exist are skipped, so an interrupted call can
simply be run again. OUT_DIR/<kind>/weights.json records which weights made the features. Inputs
that cannot be decoded are listed in OUT_DIR/<kind>/failed.tsv with the reason and the others are
extracted (exit status 0; the count is printed). Decoding runs in `--workers` processes beside the
network (default: from `--threads` and the device, `avvp.extractors.extract.default_workers`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "features of clips (WAV files or frames folders) with one feature kind's network"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from avvp.extractors import feature_kinds

    kinds = feature_kinds()
    parser.add_argument("--kind", choices=tuple(kinds), required=True,
                        help="; ".join(f"{k.name}: {k.description}" for k in kinds.values()))
    parser.add_argument("--weights", default="random",
                        help="pretrained (cached download), random (seeded) or a state-dict file (default: random)")
    parser.add_argument("--out-dir", type=Path, required=True, help="features go to OUT_DIR/<kind>/<id>.npy")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-size", type=int, help="network inputs per forward pass (default: by device)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random weights (default: 0)")
    parser.add_argument("--postprocess", metavar="SPEC",
                        help="the kind's official post-processor (vggish: PCA parameters, pretrained or a file)")
    parser.add_argument("--inputs-from", type=Path, metavar="LIST",
                        help="a file listing inputs, one path per line (relative to the current directory)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPUs this call may use (default: those this process may run on)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="decoding processes beside the network; 0 decodes in this process "
                             "(default: on CUDA threads - 1, on the CPU 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("inputs", nargs="*", type=Path, metavar="INPUT",
                        help="a WAV file (audio kinds) or a folder of JPEG frames (visual kinds)")


def read_input_list(path: Path) -> list[Path]:
    """Paths listed one per line; blank lines and lines starting with # are skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"input list {path} not found")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Path(line) for line in lines if line and not line.startswith("#")]


def run(args: argparse.Namespace) -> None:
    import sys

    from avvp.extractors.extract import FAILED_NAME, extract_features, output_id, read_failures

    inputs = list(args.inputs) + (read_input_list(args.inputs_from) if args.inputs_from else [])
    if not inputs:
        raise ValueError("no inputs: give INPUT paths or --inputs-from LIST")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    out = args.out_dir / args.kind
    record = extract_features(args.kind, inputs, out, weights=args.weights,
                              device=args.device, batch_size=args.batch_size, seed=args.seed,
                              progress=not args.no_progress, postprocess=args.postprocess,
                              workers=args.workers, threads=args.threads)
    failures = read_failures(out)
    failed = [failures[key] for key in dict.fromkeys(map(output_id, inputs)) if key in failures]
    for path, reason in failed:
        print(f"could not decode {path}: {reason}", file=sys.stderr)
    print(f"{args.kind} features of {len(inputs) - len(failed)} of {len(inputs)} inputs in {out} "
          f"(weights {record['weights']}, sha256 {record['sha256'][:12]})"
          + (f"; {len(failed)} could not be decoded, listed in {out / FAILED_NAME}" if failed else ""))
