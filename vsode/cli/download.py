"""``vsode download``: fetch registered checkpoints into the cache, or import a local copy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..checkpoints import DownloadOptions, InstallResult, install_many
from ..errors import VsodeError
from .common import CacheDirOpt, JsonOpt, OfflineOpt, QuietOpt, VerboseOpt, session
from .models import human_size


def download(
    names: Annotated[
        Optional[list[str]],
        typer.Argument(help="Model names (see `vsode models`).", metavar="NAME", show_default=False),
    ] = None,
    all_models: Annotated[
        bool, typer.Option("--all", help="Every registered model that is not shipped with vsode.")
    ] = False,
    from_file: Annotated[
        Optional[Path],
        typer.Option(
            "--from-file",
            metavar="PATH",
            help="Import this local copy (e.g. fetched by hand from Google Drive) instead of "
            "downloading; checked like a download. Needs exactly one NAME.",
        ),
    ] = None,
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Allow models with no published SHA-256; the computed hash is recorded and "
            "checked by `vsode models --verify`.",
        ),
    ] = False,
    mirror: Annotated[
        Optional[str],
        typer.Option(
            "--mirror",
            envvar="VSODE_MIRROR",
            metavar="URL",
            help="Base URL tried first, as URL/<file name>.",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Connect and read timeout per request.")
    ] = 30.0,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            metavar="N",
            help="Retries per URL after a network error, with exponential backoff from 1 s.",
        ),
    ] = 4,
    force: Annotated[
        bool,
        typer.Option("--force", "-f", help="Download (or import) again even if the model is installed."),
    ] = False,
    cache_dir: CacheDirOpt = None,
    offline: OfflineOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Download models into the cache, verified by size and SHA-256 (interrupted downloads resume)."""
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        options = DownloadOptions(
            timeout=timeout,
            retries=retries,
            allow_unverified=allow_unverified,
            force=force,
            offline=offline,
            mirror=mirror or None,
        )
        results = install_many(
            names or [],
            all_models=all_models,
            from_file=from_file,
            cache_dir=cache_dir,
            options=options,
            progress=ui.progress,
        )
        for r in results:
            for warning in r.warnings:
                ui.info(f"vsode: warning: {warning}")
        done = [_line(r) for r in results if r.status != "failed"]
        ui.result({"models": [r.to_dict() for r in results]}, human="\n".join(done) if done else None)
        failed = [r for r in results if r.status == "failed"]
        if len(failed) == 1 and len(results) == 1:
            raise VsodeError(failed[0].error or "failed", exit_code=failed[0].exit_code)
        if failed:
            raise VsodeError(
                f"{len(failed)} of {len(results)} models failed: "
                + "; ".join(r.error or r.name for r in failed),
                exit_code=failed[0].exit_code,
            )


def _line(r: InstallResult) -> str:
    digest = f"sha256 {r.sha256[:12]}..." if r.sha256 else "no sha256"
    return f"{r.name}: {r.status} {r.path} ({human_size(r.size)}, {digest}, hash {r.hash_status})"
