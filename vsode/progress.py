"""Progress reporting and stage timing for library code that must not print.

Library functions take an optional :class:`Progress`; the CLI passes one that draws rich bars on
stderr. Every stage's wall time is recorded in :attr:`Progress.timings` (and the frames it handled
in :attr:`Progress.frames`) so ``--json`` results can report seconds and throughput per stage.
:meth:`Progress.timed` times work without showing a bar; :meth:`Progress.scoped` gives one call
(an application run) its own timings while its bars still show on the caller's display.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO


class Stage:
    """One named unit of work with an optional total. Use as a context manager."""

    def __init__(self, owner: "Progress", name: str, total: float | None, *, frames: int = 0) -> None:
        self.owner = owner
        self.name = name
        self.total = total
        self.completed = 0.0
        self.frames = frames  # counted in Progress.frames when the stage closes
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
        self.owner._record(self.name, time.perf_counter() - self._start, self.frames)
        self.owner._on_close(self)

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Progress:
    """A silent progress sink that only records timings; subclass to display."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.frames: dict[str, int] = {}
        # Called before and after each timed block (``torch.cuda.synchronize`` on a GPU), so that
        # asynchronous device work is charged to the stage that queued it.
        self.synchronize: Callable[[], None] | None = None

    def stage(self, name: str, total: float | None = None, *, unit: str = "", frames: int = 0) -> Stage:
        """Start a stage called ``name`` (also its key in :attr:`timings`); ``frames`` is what it
        handles, for the throughput in :meth:`report`."""
        stage = Stage(self, name, total, frames=frames)
        self._on_start(stage, unit)
        return stage

    @contextlib.contextmanager
    def timed(self, name: str, frames: int = 0) -> Iterator[None]:
        """Time a block as stage ``name`` without a bar (the per-batch parts of a render)."""
        if self.synchronize is not None:
            self.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.synchronize is not None:
                self.synchronize()
            self._record(name, time.perf_counter() - start, frames)

    def scoped(self, prefix: str = "") -> "Progress":
        """A view with its own timings whose stages (named ``prefix + name``) and log lines show
        on this progress's display."""
        return _Scoped(self, prefix)

    def report(self) -> dict[str, dict[str, float]]:
        """``{stage: {"seconds", "frames"[, "fps"]}}`` of every stage so far."""
        out: dict[str, dict[str, float]] = {}
        for name, seconds in self.timings.items():
            frames = self.frames.get(name, 0)
            out[name] = {"seconds": round(seconds, 4), "frames": frames}
            if frames and seconds > 0:
                out[name]["fps"] = round(frames / seconds, 2)
        return out

    def log(self, message: str) -> None:
        """A short status line; silent here, shown by the CLI with ``-v``."""

    def note(self, message: str) -> None:
        """A line the user should see (advice, not status); the CLI shows it unless ``-q``."""
        self.log(message)

    def _record(self, name: str, seconds: float, frames: int) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds
        self.frames[name] = self.frames.get(name, 0) + frames

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


class _Scoped(Progress):
    """See :meth:`Progress.scoped`."""

    def __init__(self, parent: Progress, prefix: str) -> None:
        super().__init__()
        self.parent, self.prefix = parent, prefix
        self.synchronize = parent.synchronize

    def stage(self, name: str, total: float | None = None, *, unit: str = "", frames: int = 0) -> Stage:
        return super().stage(self.prefix + name, total, unit=unit, frames=frames)

    def log(self, message: str) -> None:
        self.parent.log(message)

    def note(self, message: str) -> None:
        self.parent.note(message)

    def _record(self, name: str, seconds: float, frames: int) -> None:
        super()._record(name, seconds, frames)
        self.parent._record(name, seconds, frames)

    def _on_start(self, stage: Stage, unit: str) -> None:
        self.parent._on_start(stage, unit)

    def _on_advance(self, stage: Stage, n: float) -> None:
        self.parent._on_advance(stage, n)

    def _on_total(self, stage: Stage, total: float | None) -> None:
        self.parent._on_total(stage, total)

    def _on_close(self, stage: Stage) -> None:
        self.parent._on_close(stage)


def ensure(progress: Progress | None) -> Progress:
    """Return ``progress`` or a silent one."""
    return progress if progress is not None else Progress()
