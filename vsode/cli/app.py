"""The Typer application: registers every subcommand module."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import __version__

app = typer.Typer(
    name="vsode",
    help="Edit faces in video with VidStyleODE: appearance and motion, edited apart.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vsode {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Edit faces in video with VidStyleODE: appearance and motion, edited apart."""


def _register() -> None:
    # Each module defines one command function; registration order is the help order.
    from . import probe

    app.command("probe")(probe.probe)

    from . import download, models

    app.command("download")(download.download)
    app.command("models")(models.models)

    from . import align, invert

    app.command("align")(align.align)
    app.command("invert")(invert.invert)

    from . import prepare, train

    app.command("prepare")(prepare.prepare)
    app.command("train")(train.train)

    from . import fit_prior

    app.command("fit-prior")(fit_prior.fit_prior)

    from . import import_official

    app.command("import-official")(import_official.import_official)

    from . import animate, blend_motion, edit, extrapolate, interpolate

    app.command("edit")(edit.edit)
    app.command("animate")(animate.animate)
    app.command("interpolate")(interpolate.interpolate)
    app.command("extrapolate")(extrapolate.extrapolate)
    app.command("blend-motion")(blend_motion.blend_motion)

    from . import generate

    app.command("generate")(generate.generate)

    from . import demo

    app.command("demo")(demo.demo)

    from . import eval as eval_cmd

    app.command("eval")(eval_cmd.eval_)


_register()


def main() -> None:
    app()
