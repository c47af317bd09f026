"""Options shared by the five applications (edit, animate, interpolate, extrapolate, blend-motion),
declared once, and the one-line report of what they wrote.

The options the applications share with invert, align and prepare (--batch-size, --precision,
--align, --face-index, --no-audio, --no-cache) are in :mod:`.common`. Every default is the field's
default in :mod:`vsode.options`, and :func:`.common.build_options` turns the parsed parameters
into the options dataclass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help="Trained VidStyleODE: a registry name or a checkpoint file. It names the generator, encoder and CLIP it uses. `vsode edit --optimize N` also takes 'none': published weights alone (--encoder, --clip), the way to edit real faces.", metavar="NAME|PATH"),
]
LatentsOpt = Annotated[
    Optional[Path],
    typer.Option("--latents", help="Latents file from `vsode invert` of the (first) input, used instead of inverting it; the input video may then be left out.", metavar="FILE"),
]
OutputOpt = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Video to write (default: beside the input, named after it and the command).", metavar="FILE"),
]
OutputsOpt = Annotated[
    Optional[list[Path]],
    typer.Option("--output", "-o", help="Video to write, once per output in --prompt order (default: beside the input, named after it and the prompt).", metavar="FILE"),
]
ContentOpt = Annotated[
    str, typer.Option("--content", help="Content code: mean of the frames' inversions, or the first frame's.", metavar="mean|first")
]
CrfOpt = Annotated[int, typer.Option("--crf", help="x264 quality: 0 lossless, 18 visually lossless, 51 worst.")]
CropOnlyOpt = Annotated[
    bool,
    typer.Option("--crop-only", help="Write the generated face crop instead of putting it back into the full frames (an aligned face through its inverse warp, any other into its centre square). Re-timed outputs are always the crop."),
]
PromptsOpt = Annotated[
    list[str],
    typer.Option("--prompt", "-p", help="Attribute to give the face, e.g. 'blue eyes' (repeat for several outputs).", metavar="TEXT"),
]
SourceOpt = Annotated[str, typer.Option(
    "--source", metavar="TEXT",
    help="Description of the unedited video. The edit is CLIP's difference between the target text and this one, "
         "so naming what the prompt replaces (e.g. 'a photo of a person with green eyes' for --prompt 'blue eyes') "
         "makes edits land more often than the generic default.")]
StrengthOpt = Annotated[float, typer.Option("--strength", help="Edit strength α in CLIP_I(G(z_C)) + α·(CLIP_T(target) − CLIP_T(source)).")]
RawPromptOpt = Annotated[
    bool, typer.Option("--raw-prompt", help="Use --prompt as the whole target text instead of 'a photo of a person with PROMPT'.")
]


def report(result: Any) -> str:
    """One line per written file."""
    lines = []
    for out in result.outputs:
        fps = out.fps if out.fps.denominator != 1 else out.fps.numerator
        audio = ", with audio" if out.audio else ""
        lines.append(f"wrote {out.path}: {out.frames} frames at {fps} fps, {float(out.duration):.3f} s{audio}")
    for r in getattr(result, "optimize", ()):
        end = "stopped: CLIP reads the target" if r["stopped"] else "no more steps"
        clean = f" + {r['refine_steps']} clean-up" if r.get("refine_steps") else ""
        lines.append(f"optimize {r['prompt']!r}: {r['steps']} steps ({end}){clean}; target read on "
                     f"{r['target_share_before']:.0%} → {r['target_share_after']:.0%} of frames, CLIP direction "
                     f"{r['clip_direction_before']:.2f} → {r['clip_direction_after']:.2f}")
    return "\n".join(lines)


MaxFramesOpt = Annotated[int, typer.Option(
    "--max-frames", min=1, metavar="N",
    help="Refuse to start when the output would have more frames than this (a mistyped rate or length); "
         "raise it to write longer outputs.")]

AnchorOpt = Annotated[str, typer.Option(
    "--anchor", metavar="inversion|none",
    help="What the output's W+ are anchored on: 'inversion' keeps each input frame's own W+ and adds the model's "
         "change (an edit's new style, new times, another motion); 'none' renders the paper's z_C + 0.01·Δ(t) alone.")]

DetailOpt = Annotated[Optional[str], typer.Option(
    "--detail", metavar="none|input", show_default=False,
    help="'input' adds the input's own detail that its inversions miss (each frame's crop minus its inversion's "
         "render; interpolate lerps it between the input frames around each output time, blend-motion adds A's "
         "outside the region), so input frames come out as themselves; 'none' renders the codes alone. "
         "Default: input, or none with --anchor none or --generator.")]

ReferenceOpt = Annotated[Optional[str], typer.Option(
    "--reference", metavar="matched|first", show_default=False,
    help="Where the driver's motion is measured from when it moves another face: 'matched' (default) its pose "
         "nearest the face's, so the face is not first moved into the driver's starting pose; 'first' its first "
         "frame, so the first frame is the face exactly.")]

TuneSeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seeds --tune's sampling of frames and codes.")]
EditSeedOpt = Annotated[int, typer.Option(
    "--seed", min=0, help="Seeds --tune's sampling of frames and codes and --optimize's generator faces.")]
OptimizeOpt = Annotated[int, typer.Option(
    "--optimize", min=0, metavar="N",
    help="Test-time optimisation: at most N steps moving one W+ offset per prompt (one vector per row of --layers) until CLIP reads the target "
         "text on the frames, guided by CLIP over the frames and a population of generator faces (0 = none). "
         "With --model none it is the whole edit.")]
RefineOpt = Annotated[int, typer.Option(
    "--refine", min=0, metavar="K",
    help="After --optimize's search stops (CLIP reads the target), K clean-up steps that keep the edit and give back "
         "the pixel change CLIP does not need (0 = none).")]
LayersOpt = Annotated[str, typer.Option(
    "--layers", metavar="coarse|medium|fine|all",
    help="The W+ rows --optimize moves: coarse (0-3: pose, shape), medium (4-7: features), fine (8 on: colour, "
         "texture) or all.")]
FreeEncoderOpt = Annotated[Optional[str], typer.Option(
    "--encoder", metavar="NAME|PATH",
    help="With --model none: the pSp/e4e encoder, whose own decoder renders (default: e4e-ffhq-encode or "
         "psp-ffhq-encode if installed, else psp-demo).")]
FreeClipOpt = Annotated[Optional[str], typer.Option(
    "--clip", metavar="NAME|PATH",
    help="With --model none: the CLIP that guides --optimize (default clip-vit-b-32, or clip-demo with psp-demo).")]
GeneratorOpt = Annotated[Optional[str], typer.Option(
    "--generator", metavar="NAME|PATH",
    help="Render with this StyleGAN2 instead of the model's own: a generator fine-tuned from the model's "
         "(same W+ rows and width) keeps the content and motion in its style, e.g. stylegan2-demo-poster.")]
