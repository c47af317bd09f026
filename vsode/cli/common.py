"""What every subcommand shares: option aliases, the stderr console, error handling, JSON output.

Commands follow one shape: parse options, open a :func:`session`, make one library call, render
its result with :meth:`Ui.result`. Library code raises :class:`vsode.errors.VsodeError`; the
session turns it into one line on stderr and the error's exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress as RichBar,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import EXIT_FAILURE, EXIT_INTERRUPTED, VsodeError
from ..progress import Progress, Stage

# Shared options, declared once (STYLE habit 11).
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON result on stdout (progress stays on stderr).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or messages; errors only.")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="More messages, and tracebacks for errors.")
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="Compute device: auto, cpu, cuda or cuda:N.", metavar="DEVICE")
]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed every random generator.")]
ForceOpt = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing output files.")]
CacheDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--cache-dir",
        help="Model cache folder (default: $VSODE_CACHE_DIR or the user cache dir).",
        metavar="DIR",
    ),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never touch the network (same as VSODE_OFFLINE=1).")
]


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


class RichProgress(Progress):
    """Draws one rich progress bar per stage on stderr."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        super().__init__()
        self.console = console
        # Bars only on a terminal (or when forced, for tests): scripts get clean logs.
        self.enabled = enabled and (console.is_terminal or bool(os.environ.get("VSODE_FORCE_PROGRESS")))
        self._bar: RichBar | None = None
        self._ids: dict[int, Any] = {}
        self.verbose = False

    def _ensure_bar(self) -> RichBar:
        if self._bar is None:
            self._bar = RichBar(
                SpinnerColumn(),
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.start()
        return self._bar

    def _on_start(self, stage: Stage, unit: str) -> None:
        if self.enabled:
            self._ids[id(stage)] = self._ensure_bar().add_task(stage.name, total=stage.total)

    def _on_advance(self, stage: Stage, n: float) -> None:
        task = self._ids.get(id(stage))
        if task is not None and self._bar is not None:
            self._bar.advance(task, n)

    def _on_total(self, stage: Stage, total: float | None) -> None:
        task = self._ids.get(id(stage))
        if task is not None and self._bar is not None:
            self._bar.update(task, total=total)

    def _on_close(self, stage: Stage) -> None:
        task = self._ids.pop(id(stage), None)
        if task is not None and self._bar is not None:
            self._bar.update(task, completed=stage.completed, total=stage.total or stage.completed)

    def log(self, message: str) -> None:
        if self.verbose:
            self.console.print(message, markup=False, highlight=False)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class Ui:
    """The run's view of the terminal: stderr console, progress, and the stdout result."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, json_out: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose and not quiet
        self.json_out = json_out
        self.console = Console(stderr=True, no_color=_no_color(), highlight=False, soft_wrap=True)
        self.progress = RichProgress(self.console, enabled=not quiet)
        self.progress.verbose = self.verbose

    def info(self, message: str) -> None:
        """A human message on stderr (hidden by -q)."""
        if not self.quiet:
            self.console.print(message, markup=False)

    def debug(self, message: str) -> None:
        if self.verbose:
            self.console.print(message, markup=False, style="dim")

    def result(self, data: dict[str, Any], human: str | None = None) -> None:
        """The command's result: JSON on stdout with --json, else ``human`` (on stdout)."""
        self.progress.stop()
        if self.json_out:
            payload = dict(data)
            if self.progress.timings and "timings" not in payload:
                payload["timings"] = {k: round(v, 4) for k, v in self.progress.timings.items()}
            sys.stdout.write(json.dumps(payload, default=_json_default) + "\n")
            sys.stdout.flush()
        elif human is not None:
            sys.stdout.write(human.rstrip("\n") + "\n")
            sys.stdout.flush()


def _json_default(obj: Any) -> Any:
    from fractions import Fraction

    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Fraction):
        return f"{obj.numerator}/{obj.denominator}"
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def session(*, quiet: bool = False, verbose: bool = False, json_out: bool = False) -> Iterator[Ui]:
    """Run a command body: user errors become one stderr line and their exit code.

    SIGTERM is treated like Ctrl-C so that temporary files are cleaned up on the way out.
    """
    ui = Ui(quiet=quiet, verbose=verbose, json_out=json_out)
    previous = None
    with contextlib.suppress(ValueError):  # not in the main thread (tests running commands)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    code = 0
    try:
        yield ui
    except VsodeError as err:
        ui.progress.stop()
        if ui.verbose:
            ui.console.print(traceback.format_exc(), markup=False)
        _error_line(ui, str(err))
        code = err.exit_code
    except KeyboardInterrupt:
        ui.progress.stop()
        _error_line(ui, "interrupted; no partial output was kept")
        code = EXIT_INTERRUPTED
    except typer.Exit:
        raise
    except Exception as err:  # an internal bug: say so in one line, traceback with -v
        ui.progress.stop()
        if ui.verbose:
            ui.console.print(traceback.format_exc(), markup=False)
        _error_line(
            ui,
            f"internal error: {type(err).__name__}: {err} (run with -v for the traceback and report it)",
        )
        code = EXIT_FAILURE
    finally:
        ui.progress.stop()
        if previous is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, previous)
    if code:
        raise typer.Exit(code)


def _error_line(ui: Ui, message: str) -> None:
    line = " ".join(message.split("\n"))
    ui.console.print(f"vsode: error: {line}", markup=False, style="bold red", soft_wrap=True)
