"""`avvp leaderboard`: every method of a metrics.json under every evaluation protocol, the ten
numbers each (mean ± sample sd over seeds, or the one seed's value), with the published numbers
of each method's paper beside them.

  avvp leaderboard results/metrics.json                   # fixed-width text for the terminal
  avvp leaderboard results/metrics.json --format html     # the report's table (an HTML fragment)

Published numbers are LLP's: they are shown unless metrics.json comes from the demo data set
(`--published` / `--no-published` decide instead).
"""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "the ten numbers of every method and protocol in metrics.json, published numbers beside"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from avvp.reporting.leaderboard import FORMATS

    parser.add_argument("metrics", type=Path, metavar="METRICS_JSON",
                        help="the workflow's metrics file (results/metrics.json)")
    parser.add_argument("--format", choices=list(FORMATS), default="text",
                        help="text: fixed width, for a terminal; markdown: one table per protocol; "
                             "html: the report's table, a fragment styled by class `leaderboard` "
                             "(default: %(default)s)")
    parser.add_argument("--published", action=argparse.BooleanOptionalAction, default=None,
                        help="show the papers' published numbers beside ours (default: unless "
                             "metrics.json comes from the demo data set)")


def run(args: argparse.Namespace) -> None:
    from avvp.evaluation.aggregate import read_json
    from avvp.reporting.leaderboard import build_leaderboard, published_by_method, render

    metrics = read_json(args.metrics)
    if not isinstance(metrics, dict):
        raise ValueError(f"{args.metrics}: not a metrics file (a JSON object with `methods`)")
    demo = metrics.get("dataset", {}).get("mode") == "demo"
    show = not demo if args.published is None else args.published
    try:
        board = build_leaderboard(metrics, published_by_method() if show else None)
    except ValueError as err:
        raise ValueError(f"{args.metrics}: {err}") from None
    print(render(board, args.format), end="")
