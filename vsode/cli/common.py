"""What every subcommand shares: option aliases, the stderr console, error handling, JSON output.

Commands follow one shape: parse options, open a :func:`session`, build the options dataclass
with :func:`build_options`, make one library call, render its result with :meth:`Ui.result`.
Library code raises :class:`vsode.errors.VsodeError`; the session turns it into one line on
stderr and the error's exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import operator
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

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

T = TypeVar("T")

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
TuneOpt = Annotated[int, typer.Option(
    "--tune", min=0, metavar="N",
    help="Pivotal tuning: fine-tune a copy of the generator for N steps around the input's own inversions, so "
         "outputs keep detail the encoder's codes lose (0 = none). The tuned weights are cached with the latents; "
         "about 0.07 s a step for the 64 px demo and 7-8 s at 1024 on 2 CPU cores (see README, Pivotal tuning).")]
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

# Options of every command that reads faces (the apps, invert, align, prepare): one help text and
# one bound each. Their defaults are the options dataclasses' fields (vsode.options.RenderOptions).
BatchOpt = Annotated[
    int, typer.Option("--batch-size", "-b", help="Frames per batch in every stage; bounds memory.", min=1)
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="fp32 (reference), bf16 (the networks' bfloat16 fast path) or auto (bf16 on CUDA).",
        metavar="fp32|bf16|auto",
    ),
]
AlignOpt = Annotated[
    Optional[bool],
    typer.Option(
        "--align/--no-align",
        help="FFHQ-align the faces first (default: yes, unless the encoder needs none; the centre "
        "square when no face is found). --no-align takes the centre square, for already aligned footage.",
        show_default=False,
    ),
]
FaceIndexOpt = Annotated[
    int,
    typer.Option("--face-index", help="Which face to follow when there are several: 0 the largest, 1 the next...", min=0),
]
NoAudioOpt = Annotated[bool, typer.Option("--no-audio", help="Do not copy the input's audio.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor store inversions in the cache.")]
# `train` and `prepare` resume an output folder; starting it over is --restart. Their --force,
# which meant that before, stays as a hidden alias so that scripts keep working.
RestartOpt = Annotated[
    bool,
    typer.Option(
        "--restart",
        help="Start over instead of resuming the output folder, accepting settings other than the ones "
        "recorded there. (-f/--force, its old spelling here, still works but is deprecated.)",
    ),
]
DeprecatedForceOpt = Annotated[
    bool, typer.Option("--force", "-f", hidden=True, help="Deprecated spelling of --restart.")
]


def align_mode(align: bool | None) -> str:
    """``--align/--no-align`` (or neither) as the options' ``align``: ``on``, ``off`` or ``auto``."""
    return "auto" if align is None else ("on" if align else "off")


def restart_flag(ui: Ui, restart: bool, force: bool) -> bool:
    """``--restart``, or its deprecated spelling ``--force`` (with a note on stderr)."""
    if force:
        ui.info("vsode: warning: --force is deprecated here and will be removed; use --restart")
    return restart or force


# CLI spellings of option fields: a negated flag, a repeatable option, a tri-state switch.
_SPELLINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "no_audio": ("keep_audio", operator.not_),
    "no_cache": ("use_cache", operator.not_),
    "align": ("align", align_mode),
    "prompt": ("prompts", tuple),
}
_SESSION_PARAMS = frozenset({"json_out", "quiet", "verbose"})


def build_options(cls: type[T], params: Mapping[str, Any], *, skip: Iterable[str] = (), **given: Any) -> T:
    """An options dataclass from a command's parsed parameters (``ctx.params``), field by field.

    A parameter fills the field of its own name, or of its CLI spelling (``--no-audio`` gives
    ``keep_audio=False``, ``--prompt`` the ``prompts`` tuple, ``--align/--no-align`` ``align``).
    ``given`` fields win over parameters of the same name; ``skip`` names the command's inputs and
    outputs, which are not options. Any other parameter that fills no field is a mistake in the
    command, so it fails here rather than being ignored.
    """
    fields = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    skipped = set(skip) | _SESSION_PARAMS | set(given)
    values: dict[str, Any] = {}
    for name, value in params.items():
        if name in skipped:
            continue
        field, convert = _SPELLINGS.get(name, (name, lambda v: v))
        if field not in fields:
            raise TypeError(f"parameter {name!r} fills no field of {cls.__name__}: skip it or give it")
        values[field] = convert(value)
    return cls(**values, **given)


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


class RichProgress(Progress):
    """Draws one rich progress bar per stage on stderr."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        super().__init__()
        self.console = console
        # Bars only on a terminal (or when forced, for tests): scripts get clean logs.
        self.enabled = enabled and (console.is_terminal or bool(os.environ.get("VSODE_FORCE_PROGRESS")))
        self.quiet = not enabled  # -q: notes too are dropped
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

    def note(self, message: str) -> None:
        if not self.quiet:
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
