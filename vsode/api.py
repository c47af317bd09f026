"""The applications as functions: inputs + an options dataclass in, an :class:`AppResult` out.

::

    import vsode
    from vsode.options import EditOptions
    result = vsode.edit("clip.mp4", EditOptions(prompts=("blue eyes", "red hair")))
    for out in result.outputs:
        print(out.path, out.frames, out.fps, out.duration)

Each verb checks its inputs and outputs before loading anything, then runs the stages of
:mod:`vsode.pipeline`. Every input video may be replaced by the latents file ``vsode invert``
wrote for it (``latents=``): the inversion is then skipped and the video the file names is read
for the motion and the audio. Outputs default to ``<input stem>.<verb>-<tag><suffix>`` beside the
input and are never overwritten without ``force``.

Faces are FFHQ-aligned (``options.align``) the same way for the inversion and the motion, or
taken from the centre square when they are not aligned. When the output's frames are an input's
(edit, animate, blend-motion) the generated face is put back into them at full resolution (through
the alignment's inverse warp, or into the centre square), so the output keeps the input's frame
size, unless ``crop_only``. Re-timed outputs (interpolate, extrapolate) have no source frame at
their new times and are always the crop.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from .errors import InputError
from .options import (
    AnimateOptions,
    BlendOptions,
    EditOptions,
    ExtrapolateOptions,
    FrameTimes,
    GenerateOptions,
    InterpolateOptions,
    RenderOptions,
    as_dict,
    format_rate,
    region_mask,
)
from .fileio import check_output_path
from .invert import InvertOptions
from .options import IMAGE_SUFFIXES
from .model import VideoCode
from .model.free import free_anchor, resolve_auto
from .pipeline import OutputSpec, OutputVideo, Pipeline
from .progress import Progress, ensure
from .source import Source, open_source

PathLike = str | os.PathLike

# Containers the default output keeps from the input; anything else becomes .mp4.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm")


@dataclass(frozen=True)
class AppResult:
    """What an application wrote and how it went.

    Attributes:
        command: ``edit``, ``animate``, ``interpolate``, ``extrapolate``, ``blend-motion`` or
            ``generate``.
        inputs: role → file (``input``, ``driver``, ``motion``, ``latents``).
        outputs: the written files with their frame counts, exact rates and durations.
        source_frames, source_fps: the (content) input's frames and exact rate.
        crop: the centre square processed, (x, y, w, h) in display pixels, when the (content)
            input was not aligned; None when it was.
        aligned: role → whether that input's face was FFHQ-aligned (else its centre square).
        nfe: evaluations of the dynamics ODE (all solves of the call).
        timings: per stage, ``{"seconds", "frames", "fps"}``.
        options: the options used.
        paste_back: whether the generated crops were pasted back into the full frames.
        anchor: what the W+ were anchored on (``inversion``: the inputs' own per-frame W+, see
            :mod:`vsode.model.anchor`; ``none``: the paper's reconstruction alone).
        tuning: with ``--tune`` (or tuned ``--latents``): the steps, frames, reconstruction PSNR of
            the tuned frames before and after (dB) and seconds per step; None otherwise.
        samples: ``generate`` only: per video its seed and where its content and motion came from.
        optimize: ``edit --optimize`` only: per prompt, how its optimisation went
            (:class:`vsode.optimize.OptimizeReport`: steps, loss and CLIP direction score before and
            after, the share of frames CLIP reads as the target, seconds per step).
        detail: ``interpolate`` and ``blend-motion`` only: the detail its frames got (``input`` or
            ``none``; :attr:`vsode.options.InterpolateOptions.detail_mode`).
    """

    command: str
    inputs: dict[str, str]
    outputs: tuple[OutputVideo, ...]
    source_frames: int
    source_fps: Fraction
    crop: tuple[int, int, int, int] | None
    aligned: dict[str, bool]
    nfe: int
    timings: dict[str, dict[str, float]]
    options: dict[str, Any] = field(default_factory=dict)
    paste_back: bool = False
    anchor: str = "none"
    tuning: dict[str, Any] | None = None
    samples: tuple[dict[str, Any], ...] = ()
    optimize: tuple[dict[str, Any], ...] = ()
    detail: str | None = None

    @property
    def output(self) -> OutputVideo:
        """The first (for most verbs the only) output."""
        return self.outputs[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "inputs": dict(self.inputs),
            "outputs": [o.to_dict() for o in self.outputs],
            "source_frames": self.source_frames,
            "source_fps": f"{self.source_fps.numerator}/{self.source_fps.denominator}",
            "crop": None if self.crop is None else list(self.crop),
            "aligned": dict(self.aligned),
            "paste_back": self.paste_back,
            "anchor": self.anchor,
            "tuning": self.tuning,
            "nfe": self.nfe,
            "timings": self.timings,
            "options": self.options,
            **({"samples": [dict(x) for x in self.samples]} if self.samples else {}),
            **({"optimize": [dict(x) for x in self.optimize]} if self.optimize else {}),
            **({"detail": self.detail} if self.detail is not None else {}),
        }


# --- output naming ---------------------------------------------------------------------------------


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe tag: ``"Blue eyes!"`` → ``blue-eyes``."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return out or "x"


def default_output(source: Source, tag: str, *, timing: Source | None = None) -> Path:
    """``<input stem>.<tag><suffix>`` beside the input: ``clip.edit-blue-eyes.mp4``. The suffix is
    the container of ``timing`` (the input whose frames the output has; default ``source``): a
    still image gives ``.png``, a container vsode does not write ``.mp4``."""
    timing = timing or source
    if timing.is_still:
        suffix = ".png"
    else:
        suffix = timing.path.suffix.lower() if timing.path.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
    return source.path.with_name(f"{source.path.stem}.{tag}{suffix}")


def check_outputs(paths: Sequence[Path], frames: int, sources: Sequence[Source], *, force: bool) -> None:
    """Fail before any work on outputs that exist (without force), repeat, overwrite an input, or
    are still images for a result of several frames."""
    seen: set[Path] = set()
    inputs = {s.path.resolve() for s in sources}
    for path in paths:
        check_output_path(path, force=force)
        real = path.resolve()
        if real in seen:
            raise InputError(f"output {path} is given twice; give each output its own -o")
        if real in inputs:
            raise InputError(f"output {path} is an input; choose another -o")
        seen.add(real)
        if path.suffix.lower() in IMAGE_SUFFIXES and frames != 1:
            raise InputError(f"output {path} is an image but the result has {frames} frames; use a .mp4 name")


def _paths(given: PathLike | Sequence[PathLike] | None, defaults: Sequence[Path]) -> list[Path]:
    if given is None:
        return list(defaults)
    paths = [Path(given)] if isinstance(given, (str, os.PathLike)) else [Path(p) for p in given]
    if len(paths) != len(defaults):
        raise InputError(f"{len(paths)} output names (-o) for {len(defaults)} outputs; give one -o per output or none")
    return paths


def _unique(tags: list[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        candidate, k = tag, 2
        while candidate in out:
            candidate, k = f"{tag}-{k}", k + 1
        out.append(candidate)
    return out


def _inputs(*sources: Source) -> dict[str, str]:
    out = {s.role: str(s.path) for s in sources}
    for s in sources:
        if s.latents is not None:
            out[f"{s.role} latents"] = "given"
    return out


def _result(command: str, pipe: Pipeline, source: Source, outputs: list[OutputVideo], options: RenderOptions,
            *others: Source, canvas: Source | None = None, detail: str | None = None) -> AppResult:
    return AppResult(
        command=command,
        inputs=_inputs(source, *others),
        outputs=tuple(outputs),
        source_frames=source.frame_count,
        source_fps=source.fps,
        crop=None if source.track is not None else tuple(source.crop),  # type: ignore[arg-type]
        aligned={s.role: s.track is not None for s in (source, *others)},
        nfe=pipe.nfe,
        timings=pipe.progress.report(),
        options=as_dict(options),
        paste_back=pipe.pastes(canvas),
        anchor=options.anchor,
        tuning=pipe.tuning,
        detail=detail,
    )


def _note_crops(pipe: Pipeline, *sources: Source) -> None:
    for s in sources:
        if s.track is None:
            pipe.progress.log(f"{s.role} {s.path}: not aligned, its centre square {s.crop} is used")


# --- the verbs -----------------------------------------------------------------------------------


def edit(
    video: PathLike | None,
    options: EditOptions,
    *,
    latents: PathLike | None = None,
    outputs: Sequence[PathLike] | None = None,
    progress: Progress | None = None,
) -> AppResult:
    """Change a video's appearance by text, keeping its motion: one output per prompt.

    Args:
        video: the input video (or image: the output is then an image). May be None with
            ``latents``.
        options: :class:`EditOptions` (prompts, source, strength, raw_prompt, ...).
        latents: a ``vsode invert`` latents file of the input, instead of inverting it.
        outputs: one path per prompt (default ``<stem>.edit-<prompt>.mp4`` beside the input).
        progress: receives the stages.

    Returns an :class:`AppResult` with one output per prompt, each with the input's frame times,
    rate and audio.
    """
    progress = ensure(progress)
    options = resolve_auto(options)
    source = open_source(video, latents=latents)
    times = source.frame_times()
    tags = _unique([f"edit-{slug(p)}" for p in options.prompts])
    paths = _paths(outputs, [default_output(source, t) for t in tags])
    check_outputs(paths, len(times), [source], force=options.force)
    pipe = Pipeline.load(options, need_encoder=source.latents is None, progress=progress)
    if pipe.free:  # --model none: the inversions, moved by the optimised offsets alone
        latents = source.latents or pipe.invert(source)
        seconds = [float(t) for t in source.times]
        code = VideoCode(pipe.content_code(source, latents), torch.zeros(0), seconds[0], tuple(seconds))
        anchor = free_anchor(latents.wplus.to(pipe.device, torch.float32), seconds)
        styles = [torch.zeros(1, 1) for _ in options.prompts]
    else:
        code = pipe.encode(source)
        pipe.note_real_face(source)
        styles = pipe.styles(code.content_code, options)
        anchor = pipe.source_anchor(code, source, at=times)
    _note_crops(pipe, source)
    optimised: list[tuple[Any, dict[str, Any]]] = []
    if options.optimize:
        assert anchor is not None, "EditOptions refuses --optimize with --anchor none"
        optimised = pipe.optimise(code, source, styles, anchor, options)
    offsets = [o for o, _ in optimised] or [None] * len(styles)
    specs = [OutputSpec(p, s, prompt, offset) for p, s, prompt, offset in zip(paths, styles, options.prompts, offsets)]
    written = pipe.render(code, times, specs, anchor=anchor, audio=pipe.audio(source, times), canvas=source)
    result = _result("edit", pipe, source, written, options, canvas=source)
    return dataclasses.replace(result, optimize=tuple(r for _, r in optimised)) if optimised else result


def animate(
    image: PathLike | None,
    driver: PathLike,
    options: AnimateOptions | None = None,
    *,
    latents: PathLike | None = None,
    outputs: Sequence[PathLike] | None = None,
    progress: Progress | None = None,
) -> AppResult:
    """Make the face of an image move like the driver video.

    The content code is the image's single inversion (a video given as the image contributes the
    mean, or first, of its frames); the dynamics, the frame times, the rate and the audio are the
    driver's. With prompts, one edited output per prompt; without, one output.

    Args:
        image: still image (or video) giving the appearance; may be None with ``latents``.
        driver: the video whose motion is used (at least two frames).
        options: :class:`AnimateOptions`.
        latents: a latents file of ``image`` instead of inverting it.
        outputs: one path per output (default ``<image stem>.animate-<driver stem>.mp4``).
    """
    options = options or AnimateOptions()
    progress = ensure(progress)
    source = open_source(image, latents=latents, role="image")
    drive = open_source(driver, role="driver", min_frames=2)
    times = drive.frame_times()
    base = f"animate-{slug(drive.path.stem)}"
    tags = _unique([f"{base}-{slug(p)}" for p in options.prompts] or [base])
    paths = _paths(outputs, [default_output(source, t, timing=drive) for t in tags])
    check_outputs(paths, len(times), [source, drive], force=options.force)
    anchored = options.anchor != "none"
    pipe = Pipeline.load(options, need_encoder=source.latents is None or anchored, progress=progress)
    content = pipe.content_code(source)
    if anchored:  # the driver is inverted too: its own motion goes on the portrait (Pipeline.motion_anchor)
        code = dataclasses.replace(pipe.encode(drive), content_code=content)
    else:  # the paper's animate: the portrait's content with the driver's dynamics
        code = pipe.encode(drive, content)
    _note_crops(pipe, source, drive)
    styles = pipe.styles(content, options)
    prompts: Sequence[str | None] = options.prompts or (None,)
    specs = [OutputSpec(p, s, prompt) for p, s, prompt in zip(paths, styles, prompts)]
    anchor = pipe.motion_anchor(code, drive, at=times, reference=options.reference)
    written = pipe.render(code, times, specs, anchor=anchor, audio=pipe.audio(drive, times), canvas=drive)
    return _result("animate", pipe, source, written, options, drive, canvas=drive)


def interpolate(
    video: PathLike | None,
    options: InterpolateOptions,
    *,
    latents: PathLike | None = None,
    output: PathLike | None = None,
    progress: Progress | None = None,
) -> AppResult:
    """Re-time a video: a new frame rate over the same duration, a whole factor more frames, or
    explicit timestamps. The input's frames are reproduced at their own times (a factor keeps
    every one; a new rate keeps those that fall on its grid): as themselves with the input's own
    detail (``options.detail_mode`` ``input``, the default when anchored), else as their
    inversions. The audio is the input's.

    Args:
        video: the input video (at least two frames); may be None with ``latents``.
        options: :class:`InterpolateOptions` with exactly one of ``fps``, ``factor``, ``times``.
        output: default ``<stem>.interpolate-<60fps|x2|times>.mp4``.
    """
    progress = ensure(progress)
    source = open_source(video, latents=latents, min_frames=2)
    if options.fps is not None:  # counted before the frame times are built
        options.check_frame_count(max(1, round(source.info.duration * options.fps)))
    elif options.factor is not None:
        options.check_frame_count(source.frame_count * options.factor)
    else:
        options.check_frame_count(len(options.times))  # type: ignore[arg-type]
    if options.fps is not None:
        times, tag = FrameTimes.resample(source.info.duration, options.fps), f"{format_rate(options.fps)}fps"
    elif options.factor is not None:
        times, tag = FrameTimes.subdivide(source.times, source.fps, options.factor), f"x{options.factor}"
    else:
        times, tag = FrameTimes(options.times, source.fps), "times"  # type: ignore[arg-type]
    return _retime("interpolate", source, times, f"interpolate-{tag}", output, options, progress)


def extrapolate(
    video: PathLike | None,
    options: ExtrapolateOptions,
    *,
    latents: PathLike | None = None,
    output: PathLike | None = None,
    progress: Progress | None = None,
) -> AppResult:
    """Continue a video past its last frame at its own rate.

    By default the output is the reconstruction of the whole input followed by the continuation,
    with the input's audio over its duration; ``only_new`` writes the continuation alone (no
    audio: the source has none there).

    Args:
        video: the input video (at least two frames); may be None with ``latents``.
        options: :class:`ExtrapolateOptions` with ``seconds`` or ``frames``.
        output: default ``<stem>.extrapolate-<2s|48f>.mp4``.
    """
    progress = ensure(progress)
    source = open_source(video, latents=latents, min_frames=2)
    count = options.new_frames(source.fps)
    options.check_frame_count(count + (0 if options.only_new else source.frame_count))
    times = FrameTimes.continuation(source.times, source.fps, count, keep_source=not options.only_new)
    amount = f"{options.frames}f" if options.frames is not None else f"{float(options.seconds):g}s"
    tag = f"extrapolate-{slug(amount)}" + ("-new" if options.only_new else "")
    return _retime("extrapolate", source, times, tag, output, options, progress)


def _retime(command: str, source: Source, times: FrameTimes, tag: str, output: PathLike | None,
            options: RenderOptions, progress: Progress) -> AppResult:
    """Interpolate's and extrapolate's common part: the source's own motion and appearance at new
    frame times, written as the crop with the source's audio where it has some."""
    paths = _paths(output, [default_output(source, tag)])
    check_outputs(paths, len(times), [source], force=options.force)
    pipe = Pipeline.load(options, need_encoder=source.latents is None, progress=progress)
    code = pipe.encode(source)
    _note_crops(pipe, source)
    mode = getattr(options, "detail_mode", None)  # interpolate's (input by default when anchored)
    detail = pipe.input_detail(source, mode or "none")
    written = pipe.render(code, times, [OutputSpec(paths[0], pipe.styles(code.content_code)[0])],
                          anchor=pipe.source_anchor(code, source, at=times), audio=pipe.audio(source, times),
                          detail=detail)
    return _result(command, pipe, source, written, options, detail=mode)


def blend_motion(
    video_a: PathLike | None,
    video_b: PathLike,
    options: BlendOptions,
    *,
    latents: PathLike | None = None,
    output: PathLike | None = None,
    progress: Progress | None = None,
) -> AppResult:
    """A's appearance and A's motion, except inside ``options.region`` where B's motion is used.
    Frame times, rate and audio are A's; each video's τ is counted from its own first frame, and B
    is extrapolated past its end if shorter.

    Anchored (``options.anchor="inversion"``, the default) both videos are inverted: outside the
    region the output is A anchored on its inversions; inside, B's inversions with A's content put
    in by the model, ``w_B(t) + M(z_A, s_A, z_d^B, t) − M(z_B, s_A, z_d^B, t)`` (B's anchor, A's
    style), laid over A with the region's mask upsampled to pixels (bilinear: soft over a cell).
    ``anchor="none"`` is the paper's blend in the dynamics state, ``z_d(τ) = M·z_d^B(τ) + (1 −
    M)·z_d^A(τ)`` per cell of the grid, without inverting B.

    Args:
        video_a: the video giving the appearance and the motion outside the region; may be None
            with ``latents``.
        video_b: the video whose motion is taken inside the region.
        options: :class:`BlendOptions` with the region.
        latents: a latents file of A instead of inverting it.
        output: default ``<A stem>.blend-<B stem>-<region>.mp4``.
    """
    progress = ensure(progress)
    source = open_source(video_a, latents=latents, min_frames=2)
    motion = open_source(video_b, role="motion", min_frames=2)
    times = source.frame_times()
    region = options.parsed_region
    assert region is not None
    label = "-".join(region.names) if region.names else (region.image.stem if region.image else "mask")
    paths = _paths(output, [default_output(source, f"blend-{slug(motion.path.stem)}-{slug(label)}")])
    check_outputs(paths, len(times), [source, motion], force=options.force)
    anchored = options.anchor != "none"
    pipe = Pipeline.load(options, need_encoder=source.latents is None or anchored, progress=progress)
    mask = region_mask(region, pipe.grid)
    code = pipe.encode(source)
    spec = [OutputSpec(paths[0], pipe.styles(code.content_code)[0])]
    if anchored:
        # A anchored on its inversions outside the region; inside it, B's inversions with A's content
        # put in by the model (w_B(t) + M(z_A, z_d^B, t) − M(z_B, z_d^B, t)), over A in pixels
        own = pipe.encode(motion)  # B's content and its inversions too
        inside = dataclasses.replace(own, content_code=code.content_code)
        _note_crops(pipe, source, motion)
        detail = pipe.input_detail(source, options.detail_mode)  # A's own pixels outside the region
        written = pipe.render(code, times, spec, anchor=pipe.source_anchor(code, source, at=times),
                              inset=(inside, pipe.source_anchor(own, motion), pipe.pixel_mask(mask)),
                              audio=pipe.audio(source, times), canvas=source, detail=detail)
    else:  # the paper's way: B's motion state inside the region of the dynamics grid
        other = pipe.encode(motion, code.content_code)
        _note_crops(pipe, source, motion)
        written = pipe.render(code, times, spec, blend=(other, mask), audio=pipe.audio(source, times),
                              canvas=source)
    return _result("blend-motion", pipe, source, written, options, motion, canvas=source,
                   detail=options.detail_mode)


# --- generate --------------------------------------------------------------------------------------


def generate(
    options: GenerateOptions | None = None,
    *,
    content: PathLike | str | None = None,
    motion: PathLike | None = None,
    output: PathLike | Sequence[PathLike] | None = None,
    progress: Progress | None = None,
) -> AppResult:
    """New videos: a content code and a motion, sampled or given, decoded like any other video.

    Video k has seed ``options.seed + k``; its content code is

    - ``content="prior"``: a draw from the model's prior over its training clips' content codes;
    - ``"mapping"``: the generator's mapping network, ``w = w̄ + ψ·(mapping(z) − w̄)`` in every row;
    - ``"auto"`` or None: the prior when the model has one, else the mapping network;
    - a path: the content code of that image or video (inverted) or latents file (the same for
      every video);

    and its motion state ``z_d0`` a draw from the model's motion prior, or with ``motion`` the
    dynamics of that video (its rate, length and audio by default). With ``options.anchor``
    ``inversion`` the W+ are anchored on the content code at the first frame: the first frame is
    G(content) and the model's motion is added to it, scaled by ``options.motion_scale`` (by
    default the prior's calibrated ``motion_gain``); with ``motion`` that video is inverted too
    and its own motion is added instead, as animate moves its portrait
    (:meth:`~vsode.pipeline.Pipeline.motion_anchor`).

    Args:
        options: :class:`GenerateOptions` (seconds, fps, seed, count, truncation, generator...).
        content: see above.
        motion: a video whose motion every output has, instead of the prior's.
        output: the video to write; with ``count`` > 1 each video's seed is added to its name
            (``out.mp4`` → ``out-seed3.mp4``), or give one path per video. Default
            ``generate-seed<N>.mp4`` in the current folder.

    Raises InputError (exit 2) for bad options or unreadable inputs, and when the model has no
    prior to sample from (the message names ``vsode fit-prior``).
    """
    import torch

    from .invert import load_latents
    from .model import VideoCode, content_code
    from .model.prior import sample_generator

    options = options or GenerateOptions()
    progress = ensure(progress)
    kind, given, latents = _content_source(content)
    if motion is not None and options.motion_scale is not None:
        raise InputError("--motion-scale scales the motion sampled from the prior; with --motion the video's own "
                         "motion is used as it is: drop one of them")
    if motion is None and options.reference is not None:
        raise InputError("--reference picks where the --motion video's motion is measured from; give --motion VIDEO "
                         "or drop --reference")
    drive = open_source(motion, role="motion", min_frames=2) if motion is not None else None
    times = options.frame_times(drive.info.duration if drive else None, drive.fps if drive else None)
    seeds = [options.seed + k for k in range(options.count)]
    paths = _generate_paths(output, seeds)
    check_outputs(paths, len(times), [s for s in (given, drive) if s is not None], force=options.force)
    anchored_motion = drive is not None and options.anchor != "none"  # the motion video is inverted too
    pipe = Pipeline.load(options, need_encoder=anchored_motion or (given is not None and given.latents is None
                                                                   and latents is None), progress=progress)
    model = pipe.model
    if kind == "auto":
        kind = "prior" if model.prior is not None else "mapping"
    if drive is None or kind == "prior":
        model.require_prior(f"model {options.model}")
    cfg = model.config
    fixed = None
    if latents is not None:
        wplus = load_latents(latents).wplus
        if tuple(wplus.shape[1:]) != (cfg.n_latent, cfg.style_dim):
            raise InputError(f"--content {latents} holds {tuple(wplus.shape[1:])} W+ codes but model {options.model} "
                             f"takes {cfg.n_latent}x{cfg.style_dim}; invert it with the model's encoder")
        fixed = content_code(wplus, options.content)
    elif given is not None:
        fixed = pipe.content_code(given)
    driven = None
    if drive is not None:  # encoded once: anchored, inverted too (its own motion goes on every sample's
        # content); else its dynamics alone, which do not depend on the content code given
        driven = pipe.encode(drive) if anchored_motion else \
            pipe.encode(drive, torch.zeros(cfg.n_latent, cfg.style_dim, device=pipe.device))
        _note_crops(pipe, drive)
    content_name = str(given.path) if given else (str(latents) if latents else kind)
    motion_name = str(drive.path) if drive else "prior"
    scale = None  # the factor on the prior's motion (anchored only): --motion-scale, else the prior's gain
    if drive is None and options.anchor != "none":
        scale = options.motion_scale if options.motion_scale is not None else model.prior.motion_gain  # type: ignore[union-attr]
    written, samples = [], []
    for seed, path in zip(seeds, paths):
        if fixed is not None:
            code_content = fixed
        elif kind == "prior":
            code_content = model.prior.content.sample(sample_generator(seed, 1), options.truncation)  # type: ignore[union-attr]
        else:
            code_content = _mapping_content(model, seed, options.truncation)
        code_content = code_content.to(pipe.device, torch.float32)
        if driven is not None:
            code = dataclasses.replace(driven, content_code=code_content)
        else:
            z_d0 = model.prior.motion.sample(sample_generator(seed, 0))  # type: ignore[union-attr]
            code = VideoCode(code_content, z_d0.to(pipe.device, model.dynamics.state_dtype), 0.0, (0.0,))
        style = pipe.styles(code_content)[0]
        if anchored_motion:  # as animate: the motion video's own motion on the sampled content
            anchor = pipe.motion_anchor(code, drive, at=times, reference=options.reference)  # type: ignore[arg-type]
        else:
            anchor = pipe.anchor(code, code_content[None], [float(times.start)], at=times)
            if anchor is not None and scale is not None:  # replace: the anchor checks them
                anchor = dataclasses.replace(anchor, gain=float(scale), limit=model.prior.motion_limit)  # type: ignore[union-attr]
        written += pipe.render(code, times, [OutputSpec(path, style)], anchor=anchor,
                               audio=pipe.audio(drive, times) if drive else None)
        samples.append({"seed": seed, "content": content_name, "motion": motion_name,
                        "truncation": options.truncation, "motion_scale": scale})
    return AppResult(
        command="generate", inputs={"content": content_name, "motion": motion_name}, outputs=tuple(written),
        source_frames=drive.frame_count if drive else 0, source_fps=drive.fps if drive else times.fps,
        crop=None if drive is None or drive.track is not None else tuple(drive.crop),  # type: ignore[arg-type]
        aligned={s.role: s.track is not None for s in (given, drive) if s is not None},
        nfe=pipe.nfe, timings=pipe.progress.report(), options=as_dict(options), anchor=options.anchor,
        samples=tuple(samples),
    )


def _mapping_content(model: Any, seed: int, truncation: float) -> Any:
    """A content code from the generator's mapping network: ``w̄ + ψ·(mapping(z) − w̄)`` in every
    W+ row, z drawn from the seed (``w̄``: the generator's ``latent_avg``, else the mean of 4096
    mapped z)."""
    import torch

    from .model.prior import sample_generator

    generator = model.generator
    device = next(generator.parameters()).device
    z = torch.randn(1, generator.style_dim, generator=sample_generator(seed, 2)).to(device)
    with torch.no_grad():
        w = generator.mapping(z)
        center = generator.latent_avg if generator.latent_avg is not None else generator.mean_latent()
        w = generator.truncate(w, truncation, center.reshape(1, -1))
    return w.expand(model.config.n_latent, -1).clone()  # n D


def _content_source(content: PathLike | str | None) -> tuple[str, Source | None, Path | None]:
    """``(kind, image or video source, latents path)`` of ``--content``, checked before loading."""
    from .invert import load_latents
    from .options import CONTENT_SOURCES

    if content is None or (isinstance(content, str) and content in CONTENT_SOURCES):
        return (content or "auto"), None, None
    path = Path(content)
    if not path.is_file():
        raise InputError(f"--content {path} does not exist; give an image, a video, a latents file "
                         f"or one of {', '.join(CONTENT_SOURCES)}")
    if path.suffix.lower() == ".pt":
        try:
            load_latents(path)
        except InputError as err:
            raise InputError(f"--content {path} is not a latents file from `vsode invert` ({err})") from None
        return "latents", None, path
    return "file", open_source(path, role="content"), None


def _generate_paths(output: PathLike | Sequence[PathLike] | None, seeds: list[int]) -> list[Path]:
    if output is None:
        return [Path.cwd() / f"generate-seed{s}.mp4" for s in seeds]
    if isinstance(output, (str, os.PathLike)):
        path = Path(output)
        if len(seeds) == 1:
            return [path]
        return [path.with_name(f"{path.stem}-seed{s}{path.suffix}") for s in seeds]
    return _paths(output, [Path(f"generate-seed{s}.mp4") for s in seeds])


# --- invert ----------------------------------------------------------------------------------------


def invert(
    video: PathLike,
    options: InvertOptions | None = None,
    *,
    output: PathLike | None = None,
    preview: PathLike | None = None,
    preview_size: int = 256,
    save_track: PathLike | None = None,
    seed: int | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Invert every frame of a video to W+ and write the latents file (``vsode invert``).

    Args:
        video: the input video or image.
        options: :class:`~vsode.invert.InvertOptions` (encoder, alignment, refinement...).
        output: the latents file (default ``<stem>.latents.pt`` beside the input).
        preview: also write G(W+) of every frame to this video, with the input's timing and audio.
        preview_size: side of the preview frames.
        save_track: also write the alignment track (JSON), for identical re-runs.
        seed: seeds every RNG first.
        force: overwrite existing outputs.

    Returns the JSON-safe result: ``output``, ``frames``, the latents' summary and ``preview``.
    """
    from .device import resolve_device, seed_everything
    from .invert import invert_video, load_models, render_preview
    from .video import probe

    options = options or InvertOptions()
    progress = ensure(progress)
    video = Path(video)
    out = Path(output) if output is not None else video.with_name(video.stem + ".latents.pt")
    for path in (out, preview, save_track):
        if path is not None:
            check_output_path(path, force=force)
    seed_everything(seed)
    device = resolve_device(options.device)
    info = probe(video)  # bad input is reported before any model is looked for
    with progress.stage("load models"):
        models = load_models(options, device)
    latents = invert_video(video, options, models=models, info=info, progress=progress)
    latents.save(out, force=force)
    if save_track is not None and latents.track is not None:
        latents.track.save(save_track, force=force)
    result: dict[str, Any] = {"output": str(out), "frames": latents.frame_count, **latents.summary()}
    if preview is not None:
        written = render_preview(
            latents, models.generator, preview, size=preview_size, batch_size=options.batch_size,
            audio_from=video, force=force, device=device, precision=options.precision, progress=progress,
        )
        result["preview"] = written.to_dict()
    return result
