"""Regenerate the tables of README.md and docs/BENCHMARKS.md that come from a run's metrics.json, so
that the docs say what a run gives (issue: docs that no longer match a run).

    python scripts/docs_tables.py demo results/metrics.json             # print the README's demo table
    python scripts/docs_tables.py compare results/compare/metrics.json --write docs/BENCHMARKS.md

A table lives between `<!-- table:NAME -->` and `<!-- /table:NAME -->` in its document; --write
replaces what is between them (the file is rewritten atomically).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LEVELS = ("segment_level", "event_level")
SCORES = ("audio", "visual", "audio_visual", "type_at_av", "event_at_av")
HEAD = "| audio | visual | audio-visual | Type@AV | Event@AV |"
RIGHT = " ---: |" * len(SCORES)


def _cell(entry: Mapping[str, Any], level: str, score: str) -> str:
    """mean ± sd over seeds, or the one seed's value, one decimal."""
    if "mean" in entry:
        return f"{entry['mean'][level][score]:.1f} ± {entry['sd'][level][score]:.1f}"
    (only,) = entry["seeds"].values()
    return f"{only[level][score]:.1f}"


def demo_table(metrics: Mapping[str, Any]) -> str:
    """The first method's numbers, a row per level (the README's demo table)."""
    entry = next(iter(metrics["methods"].values()))
    rows = [f"| level {HEAD}", f"| --- |{RIGHT}"]
    rows += [f"| {level.split('_')[0]} | " + " | ".join(_cell(entry, level, s) for s in SCORES) + " |"
             for level in LEVELS]
    return "\n".join(rows) + "\n"


def compare_table(metrics: Mapping[str, Any]) -> str:
    """Every method under every protocol, a row per level: mean ± sample sd over seeds."""
    rows = [f"| method (final stage) | protocol | level {HEAD}", f"| --- | --- | --- |{RIGHT}"]
    for protocol in metrics.get("protocols", {"avvp": {}}):
        for level in LEVELS:
            for method, entry in metrics["methods"].items():
                scored = entry.get("by_protocol", {}).get(protocol, entry)
                name = entry["label"] + ("" if entry["final_stage"] == method else f" ({entry['final_stage']})")
                rows.append(f"| {name} | {protocol} | {level.split('_')[0]} | "
                            + " | ".join(_cell(scored, level, s) for s in SCORES) + " |")
    return "\n".join(rows) + "\n"


TABLES = {"demo": demo_table, "compare": compare_table}


def replace_table(text: str, name: str, table: str) -> str:
    """`text` with the table called `name` replaced; ValueError when its markers are missing."""
    pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- /table:{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- table:{name} --> ... <!-- /table:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + table + m.group(2), text, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("metrics", type=Path, help="the run's metrics.json")
    parser.add_argument("--write", type=Path, metavar="DOC", help="replace the table in this document")
    args = parser.parse_args(argv)
    table = TABLES[args.table](json.loads(args.metrics.read_text(encoding="utf-8")))
    if args.write is None:
        print(table, end="")
        return 0
    try:
        text = replace_table(args.write.read_text(encoding="utf-8"), args.table, table)
    except ValueError as err:
        print(f"{args.write}: {err}", file=sys.stderr)
        return 1
    tmp = args.write.with_name(f".{args.write.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.write)
    print(f"{args.table} table -> {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
