"""``vsode models``: list the registered checkpoints and what the cache holds; ``--verify`` re-hashes."""

from __future__ import annotations

from typing import Annotated

import typer

from ..checkpoints import Cache, ModelStatus, list_models
from ..errors import ChecksumError
from .common import CacheDirOpt, JsonOpt, QuietOpt, VerboseOpt, session


def models(
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Re-hash every installed model against its registered (or recorded) SHA-256; "
            "exit 1 if any differs.",
        ),
    ] = False,
    cache_dir: CacheDirOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """List known models: kind, size, installed or not, path and licence."""
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        root = Cache.open(cache_dir).root
        statuses = list_models(cache_dir=root, verify=verify, progress=ui.progress)
        ui.result(
            {"cache_dir": str(root), "models": [s.to_dict() for s in statuses]},
            human=_table(statuses),
        )
        bad = [s for s in statuses if s.check == "mismatch"]
        if bad:
            detail = "; ".join(f"{s.entry.name}: {s.problem}" for s in bad)
            names = " ".join(s.entry.name for s in bad)
            raise ChecksumError(
                f"{len(bad)} installed model(s) failed verification ({detail}); "
                f"fetch them again with `vsode download {names} --force`"
            )


def human_size(n: int | None) -> str:
    """``381.5 MB`` style (decimal units); ``?`` when unknown."""
    if n is None:
        return "?"
    if n < 1000:
        return f"{n} B"
    value = n / 1000
    for unit in ("kB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _state(s: ModelStatus) -> str:
    if s.entry.builtin:
        state = "builtin" if s.installed else "MISSING (package)"
    else:
        state = "installed" if s.installed else "missing"
    if s.check is not None:
        state += f", {s.check.upper() if s.check == 'mismatch' else s.check}"
    return state


def _table(statuses: list[ModelStatus]) -> str:
    rows = [("NAME", "KIND", "SIZE", "STATUS", "PATH")]
    for s in statuses:
        size = human_size(s.entry.size or s.installed_size)
        rows.append((s.entry.name, s.entry.kind, size, _state(s), str(s.path)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4])
        if i:
            s = statuses[i - 1]
            about = f"{s.entry.description}; " if s.entry.description else ""
            lines.append(f"    {about}licence: {s.entry.licence}")
            if s.problem:
                lines.append(f"    problem: {s.problem}")
    return "\n".join(lines)
