"""The `avvp` command line: weakly-supervised audio-visual video parsing, from clips to the ten
LLP numbers and event timelines.

Each command is a module of this package with `HELP` (its line in `avvp --help`), `add_arguments`
and `run`. Only the chosen command's arguments are built, and every heavy import waits for `run`,
so `avvp --help` and the light commands (evaluate, leaderboard) never load torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from avvp import __version__

COMMANDS = (
    "demo", "download", "audio", "frames", "media", "extract",
    "pack", "train", "pass", "predict", "calibrate", "evaluate", "evaluate-checkpoint", "leaderboard", "parse",
    "view",
)
# A command whose module is not named after it (`pass` is a Python keyword), and the former names
# a command still answers to (argparse aliases: the same parser under each name).
MODULES = {"pass": "run_pass", "evaluate-checkpoint": "evaluate_checkpoint"}
ALIASES = {"pass": ("refine",)}


def canonical(command: str | None) -> str | None:
    """A command's own name, for one of its aliases (anything else unchanged)."""
    return next((name for name, aliases in ALIASES.items() if command in aliases), command)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s own arguments are added (all commands are listed)."""
    parser = argparse.ArgumentParser(
        prog="avvp",
        description="Weakly-supervised audio-visual video parsing: clips -> features -> HAN and its "
                    "refinements -> the ten LLP numbers, and any video -> an event timeline.",
        epilog="Run `avvp COMMAND --help` for a command's options. The Snakemake workflow "
               "(`snakemake --cores 8 results/metrics.json`) chains these commands with caching.",
    )
    parser.add_argument("--version", action="version", version=f"avvp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = canonical(command)
    for name in COMMANDS:
        module = importlib.import_module(f"avvp.cli.{MODULES.get(name, name)}")
        command_parser = sub.add_parser(name, aliases=ALIASES.get(name, ()), help=module.HELP,
                                        description=module.__doc__,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == command:
            module.add_arguments(command_parser)
            command_parser.set_defaults(func=module.run)
    return parser


def _command(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv)).parse_args(argv)
    from avvp.base.atomic import exit_on_sigterm

    exit_on_sigterm()  # a stopped command removes its temporary outputs and work folders
    try:
        result = args.func(args)
    except (ValueError, RuntimeError) as err:
        print(f"avvp {args.command}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk, a missing permission: one line that names the path
        where = f"{err.filename}: " if err.filename else ""
        print(f"avvp {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
