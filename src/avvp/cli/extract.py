"""`avvp extract`: WAV files, frames folders or clips -> OUT_DIR/<kind>/<id>.npy in the released layout.

One network load per call; inputs whose features exist are skipped, so an interrupted call can
simply be run again. OUT_DIR/<kind>/weights.json records which weights made the features. Inputs
that cannot be decoded are listed in OUT_DIR/<kind>/failed.tsv with the reason and the others are
extracted (exit status 0; the count is printed). Decoding runs in `--workers` processes beside the
network (default: from `--threads` and the device, `avvp.features.pipeline.default_workers`). With
`--checkpoint`, the weights default to those its training features were made with.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avvp.features.weights import WeightsChoice

HELP = "features of clips (WAV files, frames folders or the clips themselves) with one feature kind's network"
MEDIUM_HELP = {"audio": "a 16 kHz WAV file", "frames": "a folder of 8 fps JPEG frames",
               "video": "the clip's video file (its audio track is read at its own rate)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from avvp.extractors import feature_kinds

    kinds = feature_kinds()
    parser.add_argument("--kind", choices=tuple(kinds), required=True,
                        help="; ".join(f"{k.name}: {k.description}" for k in kinds.values()))
    folders = ", ".join(k.name for k in kinds.values() if k.pretrained is not None and k.pretrained.files)
    parser.add_argument("--weights",
                        help=f"pretrained (cached download), random (seeded), or a local copy: a state-dict file, "
                             f"or a saved model folder for {folders} (default: the --checkpoint's, else random)")
    parser.add_argument("--checkpoint", type=Path,
                        help="a model these features are for: its training features' weights are the default, "
                             "and other weights are refused unless --allow-weights-mismatch")
    parser.add_argument("--allow-weights-mismatch", action="store_true",
                        help="extract with other weights than the --checkpoint's")
    parser.add_argument("--out-dir", type=Path, required=True, help="features go to OUT_DIR/<kind>/<id>.npy")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-size", type=int, help="network inputs per forward pass (default: by device)")
    parser.add_argument("--seed", type=int, help="seed of random weights (default: the --checkpoint's, else 0)")
    parser.add_argument("--postprocess", metavar="SPEC",
                        help="the kind's official post-processor (vggish: PCA parameters, pretrained or a file)")
    parser.add_argument("--inputs-from", type=Path, metavar="LIST",
                        help="a file listing inputs, one path per line (relative to the current directory)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPUs this call may use (default: those this process may run on)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="decoding processes beside the network; 0 decodes in this process "
                             "(default: on CUDA threads - 1, on the CPU 0)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar: a line every 30 s instead (for a log file)")
    by_medium = {medium: [k.name for k in kinds.values() if k.medium == medium] for medium in MEDIUM_HELP}
    parser.add_argument("inputs", nargs="*", type=Path, metavar="INPUT",
                        help="what the kind reads: " + "; ".join(f"{MEDIUM_HELP[m]} ({', '.join(names)})"
                                                                  for m, names in by_medium.items() if names))


def read_input_list(path: Path) -> list[Path]:
    """Paths listed one per line; blank lines and lines starting with # are skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"input list {path} not found")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Path(line) for line in lines if line and not line.startswith("#")]


def weights_for(args: argparse.Namespace) -> WeightsChoice:
    """--weights and --seed, defaulting to the --checkpoint's record of this kind (see avvp.features.weights)."""
    from avvp.features.weights import WeightsChoice, resolve_weights

    if args.checkpoint is None:
        return WeightsChoice(args.weights or "random", args.seed or 0)
    from avvp.model.checkpoint import read_checkpoint

    trained = read_checkpoint(args.checkpoint).get("feature_weights")
    chosen = {args.kind: args.weights} if args.weights else {}
    choices, _ = resolve_weights([args.kind], trained, chosen, args.seed, args.allow_weights_mismatch, args.checkpoint)
    return choices[args.kind]


def run(args: argparse.Namespace) -> None:
    import sys

    from avvp.features.extract import FAILED_NAME, extract_features, output_id, read_failures

    inputs = list(args.inputs) + (read_input_list(args.inputs_from) if args.inputs_from else [])
    if not inputs:
        raise ValueError("no inputs: give INPUT paths or --inputs-from LIST")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    choice = weights_for(args)
    out = args.out_dir / args.kind
    record = extract_features(args.kind, inputs, out, weights=choice.weights,
                              device=args.device, batch_size=args.batch_size, seed=choice.seed,
                              progress=not args.no_progress, postprocess=args.postprocess,
                              workers=args.workers, threads=args.threads)
    failures = read_failures(out)
    failed = [failures[key] for key in dict.fromkeys(map(output_id, inputs)) if key in failures]
    for path, reason in failed:
        print(f"could not decode {path}: {reason}", file=sys.stderr)
    print(f"{args.kind} features of {len(inputs) - len(failed)} of {len(inputs)} inputs in {out} "
          f"(weights {record['weights']}, sha256 {record['sha256'][:12]})"
          + (f"; {len(failed)} could not be decoded, listed in {out / FAILED_NAME}" if failed else ""))
