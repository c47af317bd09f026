"""`vsode import-official`: a checkpoint trained with the released VidStyleODE code → a vsode model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import CacheDirOpt, ForceOpt, JsonOpt, QuietOpt, VerboseOpt, session


def import_official(
    ckpt: Annotated[
        Path, typer.Argument(help="Lightning .ckpt written by the released VidStyleODE code (or its state dict).", show_default=False)
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="vsode model checkpoint to write (usable as --model).", metavar="FILE")
    ],
    preset: Annotated[
        str, typer.Option("--preset", help="Architecture of the run: ffhq (the released RAVDESS face configuration) or fashion.")
    ] = "ffhq",
    use_embedded_generator: Annotated[
        bool,
        typer.Option(
            "--use-embedded-generator",
            help="Extract the StyleGAN2 stored in the checkpoint (stylegan_G.G.*) to OUTPUT-STEM.generator.pt and make the model use it instead of the preset's generator.",
        ),
    ] = False,
    cache_dir: CacheDirOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Convert a checkpoint trained with the authors' VidStyleODE code into a vsode model.

    The trainable video encoder, modulation network and mapper are renamed to vsode's layout
    strictly (any key that cannot be mapped, a missing key or a wrong shape is an error naming
    the key); the ODE-ConvGRU keeps the file's dtype (float64 in released runs). The frozen StyleGAN2, CLIP and DINO
    stored in the checkpoint are ignored: the model names the preset's, which `vsode download`
    installs. The file is read without running code from it: objects Lightning pickles besides
    tensors (hyper-parameters, callback states) are read as inert placeholders, never imported.
    """
    with session(quiet=quiet, verbose=verbose, json_out=json_out) as ui:
        from ..official import import_official_checkpoint

        result = import_official_checkpoint(
            ckpt, output, preset=preset, use_embedded_generator=use_embedded_generator, force=force,
            cache_dir=cache_dir, progress=ui.progress,
        )
        if result.replaced:
            ui.debug("read as inert placeholders: " + ", ".join(result.replaced))
        if result.missing_backbones:
            ui.info("the model names backbones that are not installed yet: "
                    + ", ".join(result.missing_backbones) + "; install them with `vsode download NAME`")
        human = f"wrote {result.output} (preset {result.preset}, ODE {result.dtype}"
        if result.epoch is not None:
            human += f", epoch {result.epoch}, step {result.global_step}"
        human += ")" + (f" and {result.generator}" if result.generator else "")
        ui.result(result.to_dict(), human=human)
