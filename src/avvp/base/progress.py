"""Progress a person sees: a bar on a terminal, and in a log file (a workflow job's) a line at a
steady rate instead, `extract res152: 120 of 450 clips (26.7 %), 3 min 12 s`, so that a long job
is never silent for minutes."""
from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

LINE_INTERVAL_S = 30.0


class ProgressLines:
    """tqdm's `update` and context-manager interface, writing a line to stderr at most every
    `interval` seconds and once at the end."""

    def __init__(self, total: int, desc: str, unit: str, interval: float = LINE_INTERVAL_S) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.done = 0
        self.started = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        if time.monotonic() - self.last >= self.interval:
            self._line()

    def _line(self) -> None:
        self.last = time.monotonic()
        share = f" ({100 * self.done / self.total:.1f} %)" if self.total else ""
        minutes, seconds = divmod(int(self.last - self.started), 60)
        print(f"{self.desc}: {self.done} of {self.total} {self.unit}s{share}, {minutes} min {seconds} s",
              file=sys.stderr, flush=True)

    def __enter__(self) -> ProgressLines:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None and self.total:
            self._line()


def progress(total: int, desc: str, unit: str, bar: bool | None = None) -> Any:
    """A tqdm bar where `bar` (None: when stderr is a terminal), else `ProgressLines`."""
    from tqdm import tqdm

    if bar is None:
        bar = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit) if bar else ProgressLines(total, desc, unit)
