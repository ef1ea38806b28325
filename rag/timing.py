"""A stopwatch for the pipeline's stage times (seconds), kept out of the orchestration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.times: dict[str, float] = {}  # stages may also be written here directly

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0

    def mark(self, name: str, since: float) -> None:
        """Record ``name`` as the time from ``since`` (a ``time.perf_counter()``) until now."""
        self.times[name] = time.perf_counter() - since

    def result(self) -> dict[str, float]:
        """The stage times and the total so far, rounded to milliseconds."""
        out = {**self.times, "total": time.perf_counter() - self.started}
        return {k: round(v, 3) for k, v in out.items()}
