"""Progress in a log file: a line at a steady rate (a long job is never silent), and at the end."""
from __future__ import annotations

import time

import pytest

from avvp.base.progress import ProgressLines, progress


def test_lines_come_at_the_interval_and_at_the_end(capsys: pytest.CaptureFixture) -> None:
    with ProgressLines(4, "extract res152", "clip", interval=0.05) as bar:
        bar.update(1)  # before the interval: silent
        time.sleep(0.06)
        bar.update(1)
        bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == ["extract res152: 2 of 4 clips (50.0 %)",
                                                      "extract res152: 3 of 4 clips (75.0 %)"]
    assert lines[-1].endswith("0 min 0 s")


def test_a_terminal_gets_a_bar_and_a_file_gets_lines() -> None:
    assert not isinstance(progress(3, "x", "clip", bar=True), ProgressLines)
    assert isinstance(progress(3, "x", "clip", bar=False), ProgressLines)
