"""`avvp extract`: WAV files or frames folders -> FEATS/<kind>/<id>.npy in the released layout."""
from __future__ import annotations

import argparse
from pathlib import Path

from avvp.features import STREAMS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="extract VGGish, ResNet-152 or R(2+1)D-18 features")
    p.add_argument("--kind", choices=tuple(STREAMS), required=True)
    p.add_argument("--weights", default="random",
                   help="pretrained (cached download), random (seeded) or a state-dict file (default: random)")
    p.add_argument("--out-dir", type=Path, required=True, help="features go to OUT_DIR/<kind>/<id>.npy")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, help="network inputs per forward pass (default: by device)")
    p.add_argument("--seed", type=int, default=0, help="seed of random weights (default: 0)")
    p.add_argument("--vggish-pca", metavar="PCA",
                   help="apply the official VGGish post-processor: pretrained or a PCA parameter file")
    p.add_argument("--inputs-from", type=Path, metavar="LIST",
                   help="a file listing inputs, one path per line (relative to the current directory)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("inputs", nargs="*", type=Path, metavar="INPUT",
                   help="a WAV file (vggish) or a folder of JPEG frames (res152, r2plus1d_18)")
    p.set_defaults(func=run)


def read_input_list(path: Path) -> list[Path]:
    """Paths listed one per line; blank lines and lines starting with # are skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"input list {path} not found")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Path(line) for line in lines if line and not line.startswith("#")]


def run(args: argparse.Namespace) -> None:
    from avvp.extract import extract_features

    inputs = list(args.inputs) + (read_input_list(args.inputs_from) if args.inputs_from else [])
    if not inputs:
        raise ValueError("no inputs: give INPUT paths or --inputs-from LIST")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    record = extract_features(args.kind, inputs, args.out_dir / args.kind, weights=args.weights,
                              device=args.device, batch_size=args.batch_size, seed=args.seed,
                              progress=not args.no_progress, vggish_pca=args.vggish_pca)
    print(f"{args.kind} features of {len(inputs)} inputs in {args.out_dir / args.kind} "
          f"(weights {record['weights']}, sha256 {record['sha256'][:12]})")
