"""Progress reporting for library code that must not print.

Library functions take an optional :class:`Progress`; the CLI passes one that draws rich bars on
stderr. Every stage's wall time is recorded in :attr:`Progress.timings` so ``--json`` results can
report timings per stage.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Stage:
    """One named unit of work with an optional total. Use as a context manager."""

    def __init__(self, owner: "Progress", name: str, total: float | None) -> None:
        self.owner = owner
        self.name = name
        self.total = total
        self.completed = 0.0
        self._start = time.perf_counter()
        self._closed = False

    def advance(self, n: float = 1) -> None:
        self.completed += n
        self.owner._on_advance(self, n)

    def update_total(self, total: float | None) -> None:
        self.total = total
        self.owner._on_total(self, total)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        elapsed = time.perf_counter() - self._start
        self.owner.timings[self.name] = self.owner.timings.get(self.name, 0.0) + elapsed
        self.owner._on_close(self)

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Progress:
    """A silent progress sink that only records timings; subclass to display."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def stage(self, name: str, total: float | None = None, *, unit: str = "") -> Stage:
        """Start a stage called ``name`` (also its key in :attr:`timings`)."""
        stage = Stage(self, name, total)
        self._on_start(stage, unit)
        return stage

    def log(self, message: str) -> None:
        """A short status line; silent here, shown by the CLI with ``-v``."""

    # Hooks for displaying subclasses.
    def _on_start(self, stage: Stage, unit: str) -> None: ...

    def _on_advance(self, stage: Stage, n: float) -> None: ...

    def _on_total(self, stage: Stage, total: float | None) -> None: ...

    def _on_close(self, stage: Stage) -> None: ...


class LineProgress(Progress):
    """Plain timestamped lines for unattended runs (the scripts that train the demo models): a
    line when a stage starts, one each time it passes a tenth of its total, and every log line,
    on ``stream`` (stderr by default), so a log file shows where a long run is."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream

    def _line(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.stream or sys.stderr, flush=True)

    def _on_start(self, stage: Stage, unit: str) -> None:
        self._line(f"{stage.name} ...")

    def _on_advance(self, stage: Stage, n: float) -> None:
        if stage.total and int(10 * stage.completed / stage.total) != int(10 * (stage.completed - n) / stage.total):
            self._line(f"{stage.name} {stage.completed:.0f}/{stage.total:.0f}")

    def log(self, message: str) -> None:
        self._line(message)


def ensure(progress: Progress | None) -> Progress:
    """Return ``progress`` or a silent one."""
    return progress if progress is not None else Progress()
