"""The `avvp` command line: one module per subcommand, each with `register(subparsers)`.

A subcommand module adds its parser and sets `func` (called with the parsed arguments); heavy
imports stay inside `func`, so `avvp --help` is instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = (
    "demo", "download", "audio", "frames", "media", "extract",
    "pack", "train", "refine", "predict", "evaluate", "parse",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avvp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"avvp.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"avvp.cli.{name}":
                raise
            continue  # subcommand not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"avvp {args.command}: error: {err}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
