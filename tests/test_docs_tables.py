"""scripts/docs_tables.py: the docs' run tables from a metrics.json, written between their markers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_leaderboard import metrics_body

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "docs_tables.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_compare_table_has_every_method_protocol_and_level_and_is_written_between_markers(tmp_path: Path) -> None:
    body = metrics_body({"han": 3, "jomold": 1})
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(body))
    table = run("compare", str(metrics)).stdout.splitlines()
    assert table[0].startswith("| method (final stage) | protocol | level | audio |") and len(table) == 2 + 2 * 2 * 2
    han = body["methods"]["han"]["by_protocol"]["as_published"]
    row = next(line for line in table if line.startswith("| HAN | as_published | event |"))
    assert f"{han['mean']['event_level']['audio']:.1f} ± {han['sd']['event_level']['audio']:.1f}" in row
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("before\n<!-- table:compare -->\nold\n<!-- /table:compare -->\nafter\n")
    assert run("compare", str(metrics), "--write", str(doc)).returncode == 0
    assert doc.read_text() == "before\n<!-- table:compare -->\n" + "\n".join(table) + "\n<!-- /table:compare -->\nafter\n"
    unmarked = tmp_path / "other.md"
    unmarked.write_text("no markers\n")
    failed = run("compare", str(metrics), "--write", str(unmarked))
    assert failed.returncode == 1 and "no <!-- table:compare -->" in failed.stderr and unmarked.read_text() == "no markers\n"
