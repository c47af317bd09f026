"""Options of the applications (edit, animate, interpolate, extrapolate, blend-motion), checked here.

Every option dataclass is frozen and validated on construction (STYLE habit 7): a bad value is an
:class:`~vsode.errors.InputError` (exit 2) whose message names the option and the fix. The CLI
flags are these fields one for one.

Also here, because they are what those options mean:

- :func:`parse_rate` and :class:`FrameTimes`: output frame times as exact fractions of a second,
  with the exact nominal rate (``30000/1001``, never 29.97).
- Region masks for ``blend-motion``: :func:`parse_region` checks a region's spelling,
  :func:`region_mask` turns it into a weight per cell of a model's dynamics grid.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import InputError

if TYPE_CHECKING:  # torch is imported where a mask is made, so that the CLI starts without it
    import torch

PRECISIONS = ("fp32", "bf16", "auto")  # vsode.device.use_bf16 decides what each means on a device
CONTENT_MODES = ("mean", "first")
ALIGN_MODES = ("auto", "on", "off")
# What an application's W+ are anchored on (vsode.model.anchor): the inputs' own inversions, or
# nothing (the paper's z_C + 0.01·Δ(t)).
ANCHOR_MODES = ("inversion", "none")
# Where a driver's motion is measured from when it moves another face (animate, generate --motion;
# vsode.model.anchor.motion_reference): its pose nearest the face's, or its first frame.
MOTION_REFERENCES = ("matched", "first")
# What interpolate and blend-motion add to the rendered frames: nothing, or the input's own detail
# that its inversions miss (vsode.pipeline.InputDetail).
DETAIL_MODES = ("none", "input")
DEFAULT_MODEL = "vidstyleode-demo"
# `vsode edit`'s default --model: the published face weights with --optimize where they are
# installed, else DEFAULT_MODEL (vsode.model.free.resolve_auto)
AUTO_MODEL = "auto"
# The encoder DEFAULT_MODEL was trained with (its checkpoint's backbones record it; a test holds
# the two together): `vsode invert`'s default, so that its latents fit the apps' default model.
DEFAULT_ENCODER = "psp-demo"
# How the training captions were written (the demo world's captions, the released
# RAVDESS descriptions); ``--raw-prompt`` uses the prompt as it is.
PROMPT_TEMPLATE = "a photo of a person with {}"
DEFAULT_SOURCE = "a photo of a person"
DEFAULT_STRENGTH = 1.3  # α of the released appearance script
# Output frames above which a command refuses to start unless told (--max-frames): 100,000 frames
# are 55 minutes at 30 fps, far beyond a re-timed or continued clip, and about what a typo in a
# rate or length (--fps 1000000000) asks for first.
MAX_FRAMES = 100_000
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
# Decimal rates that mean the NTSC family: "29.97" is 30000/1001, not 2997/100.
_NTSC_BASES = (24, 30, 48, 60, 120, 240)


# --- frame rates and frame times -----------------------------------------------------------------


def parse_rate(value: Fraction | int | float | str, what: str = "--fps") -> Fraction:
    """An exact, positive frame rate from ``"60000/1001"``, ``60``, ``"59.94"`` or ``23.976``.

    Decimal spellings of the NTSC rates (23.976, 23.98, 29.97, 47.952, 59.94, 119.88, 239.76)
    become their exact ``N·1000/1001`` fractions; any other decimal is taken exactly.
    """
    try:
        if isinstance(value, Fraction):
            rate, decimal = value, False
        elif isinstance(value, bool):
            raise ValueError
        elif isinstance(value, int):
            rate, decimal = Fraction(value), False
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError
            rate, decimal = Fraction(value).limit_denominator(1_000_000), True
        else:
            text = str(value).strip()
            rate, decimal = Fraction(text), "." in text or "e" in text.lower()
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        raise InputError(f"{what} {value!r} is not a frame rate; write it like 60, 59.94 or 60000/1001") from None
    if rate <= 0:
        raise InputError(f"{what} {value!r} must be positive; write a rate like 60 or 60000/1001")
    if decimal and rate.denominator != 1:
        for base in _NTSC_BASES:
            ntsc = Fraction(base * 1000, 1001)
            if abs(rate - ntsc) < Fraction(1, 100):
                return ntsc
    return rate


def format_rate(rate: Fraction) -> str:
    """``60``, ``59.94`` or ``12.5``: a short human spelling of a rate (for file names)."""
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def parse_time(text: str, what: str = "time") -> Fraction:
    """Seconds, exactly: ``1.5``, ``3/2`` or ``1001/30000``."""
    try:
        return Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise InputError(f"{what} {text!r} is not a number of seconds like 1.5 or 1001/30000") from None


def read_times(path: str | os.PathLike) -> tuple[Fraction, ...]:
    """Timestamps for ``interpolate --times``: seconds, one or more per line (spaces or commas),
    ``#`` starts a comment. They must be >= 0 and strictly increasing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--times file {path} does not exist; give a text file of timestamps in seconds")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"--times file {path} cannot be read as text ({err}); give one timestamp per line") from None
    times = []
    for number, line in enumerate(text.splitlines(), 1):
        for token in re.split(r"[\s,;]+", line.split("#", 1)[0].strip()):
            if token:
                times.append(parse_time(token, f"{path}:{number}:"))
    if not times:
        raise InputError(f"--times file {path} holds no timestamps; write one number of seconds per line")
    return check_times(times, f"--times file {path}")


def check_times(times: Sequence[Fraction | int | float | str], what: str = "times") -> tuple[Fraction, ...]:
    """Exact, non-negative, strictly increasing times (floats snap to 1/1e6 ratios)."""
    out = []
    for t in times:
        if isinstance(t, str):
            out.append(parse_time(t, what))
        elif isinstance(t, float):
            if not math.isfinite(t):
                raise InputError(f"{what}: {t} is not a finite number of seconds")
            out.append(Fraction(t).limit_denominator(1_000_000))
        else:
            out.append(Fraction(t))
    if not out:
        raise InputError(f"{what} is empty; give at least one timestamp")
    if out[0] < 0:
        raise InputError(f"{what}: {float(out[0])} s is before the video starts; timestamps must be >= 0")
    for a, b in zip(out, out[1:]):
        if b <= a:
            raise InputError(f"{what}: {float(b)} s does not come after {float(a)} s; timestamps must strictly increase")
    return tuple(out)


@dataclass(frozen=True)
class FrameTimes:
    """The frames of an output video: their times on the source's clock, and the nominal rate.

    ``times`` are exact seconds, strictly increasing, measured like the source's timestamps (its
    first frame at 0), so a time names the same instant of the source in every application. The
    written file starts at ``times[0]``; ``fps`` is its nominal rate (the last frame lasts 1/fps).
    """

    times: tuple[Fraction, ...]
    fps: Fraction

    def __post_init__(self) -> None:
        object.__setattr__(self, "times", check_times(self.times, "frame times"))
        object.__setattr__(self, "fps", parse_rate(self.fps, "frame rate"))

    # constructors

    @classmethod
    def regular(cls, count: int, fps: Fraction, start: Fraction = Fraction(0)) -> "FrameTimes":
        """``count`` frames at ``start + k/fps``."""
        fps = parse_rate(fps, "frame rate")
        if count < 1:
            raise InputError(f"{count} frames: an output needs at least one")
        return cls(tuple(start + Fraction(k) / fps for k in range(count)), fps)

    @classmethod
    def resample(cls, duration: Fraction, fps: Fraction) -> "FrameTimes":
        """A new rate over the same duration: ``round(duration·fps)`` frames from 0, so the output
        lasts within half a frame of ``duration`` (exactly, when ``duration·fps`` is whole)."""
        fps = parse_rate(fps)
        return cls.regular(max(1, round(Fraction(duration) * fps)), fps)

    @classmethod
    def subdivide(cls, times: Sequence[Fraction], fps: Fraction, factor: int) -> "FrameTimes":
        """``factor`` evenly spaced frames per source interval, the source frames among them at
        their own times (the last one's interval is 1/fps); the rate is ``factor·fps``."""
        times = check_times(times, "source times")
        out = []
        for i, t in enumerate(times):
            step = (times[i + 1] - t if i + 1 < len(times) else 1 / Fraction(fps)) / factor
            out.extend(t + j * step for j in range(factor))
        return cls(tuple(out), Fraction(fps) * factor)

    @classmethod
    def continuation(cls, times: Sequence[Fraction], fps: Fraction, count: int, *, keep_source: bool) -> "FrameTimes":
        """``count`` frames after the last source time at the source rate, after the source frames
        themselves unless ``keep_source`` is false."""
        fps = Fraction(fps)
        last = times[-1]
        new = tuple(last + Fraction(k) / fps for k in range(1, count + 1))
        return cls((tuple(times) if keep_source else ()) + new, fps)

    # views

    def __len__(self) -> int:
        return len(self.times)

    @property
    def start(self) -> Fraction:
        return self.times[0]

    @property
    def duration(self) -> Fraction:
        """Seconds from the first frame to the end of the last (which lasts 1/fps)."""
        return self.times[-1] - self.times[0] + 1 / self.fps

    def offsets(self) -> tuple[Fraction, ...]:
        """Times relative to the first frame: the written file's timestamps."""
        return tuple(t - self.times[0] for t in self.times)

    @property
    def is_regular(self) -> bool:
        """The frames sit exactly on ``start + k/fps`` (constant frame rate)."""
        return all(t == k / self.fps for k, t in enumerate(self.offsets()))

    def seconds(self) -> list[float]:
        return [float(t) for t in self.times]


# --- regions of the dynamics grid ----------------------------------------------------------------

# (top, bottom, left, right) as fractions of the (FFHQ-aligned) crop; a grid cell belongs to the
# region when its centre lies inside. Left and right are the image's (the person's right is on
# the image's left). FFHQ alignment puts the eyes at ~47% of the height (x ≈ 36% and 64%) and
# the mouth at ~75%, so on the 8×8 face grid (cells of 1/8):
#   eyes  = rows 2–3, columns 1–6 (brows to lower lids, both eyes);
#   mouth = rows 5–6, columns 2–5 (lips and chin motion);
# other grids take the cells whose centres fall in the same boxes.
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "top": (0.0, 0.5, 0.0, 1.0),
    "bottom": (0.5, 1.0, 0.0, 1.0),
    "left": (0.0, 1.0, 0.0, 0.5),
    "right": (0.0, 1.0, 0.5, 1.0),
    "top-left": (0.0, 0.5, 0.0, 0.5),
    "top-right": (0.0, 0.5, 0.5, 1.0),
    "bottom-left": (0.5, 1.0, 0.0, 0.5),
    "bottom-right": (0.5, 1.0, 0.5, 1.0),
    "eyes": (0.25, 0.5, 0.125, 0.875),
    "mouth": (0.625, 0.875, 0.25, 0.75),
    "all": (0.0, 1.0, 0.0, 1.0),
}
_GRID_CHARS = re.compile(r"^[01]+(?:[/,\s]+[01]+)*$")


@dataclass(frozen=True)
class Region:
    """A parsed ``--region``: named regions (a union), a 0/1 grid string, or a mask image."""

    spec: str
    names: tuple[str, ...] = ()
    rows: tuple[str, ...] = ()
    image: Path | None = None


def parse_region(spec: str | os.PathLike) -> Region:
    """Check a ``--region`` value: ``mouth``, ``eyes+mouth``, ``"00000000/.../00011000"`` (one
    row of 0/1 per grid row, top first, separated by ``/``), or the path of a mask image."""
    text = os.fspath(spec).strip()
    if not text:
        raise InputError("--region is empty; give a name (" + ", ".join(REGIONS) + "), a 0/1 grid or a mask PNG")
    path = Path(text).expanduser()
    if path.suffix.lower() in IMAGE_SUFFIXES or path.is_file():
        if not path.is_file():
            raise InputError(f"--region mask image {path} does not exist; check the path")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            rows = path.read_text().strip()
            if not _GRID_CHARS.match(rows):
                raise InputError(f"--region file {path} is not a 0/1 grid (rows like 00011000 separated by / or lines)")
            return Region(text, rows=tuple(re.split(r"[/,\s]+", rows)))
        return Region(text, image=path)
    if _GRID_CHARS.match(text) and ("/" in text or len(text) > 1 and set(text) <= {"0", "1"}):
        return Region(text, rows=tuple(re.split(r"[/,\s]+", text)))
    names = tuple(n.strip().lower() for n in re.split(r"[+,]", text) if n.strip())
    unknown = [n for n in names if n not in REGIONS]
    if unknown or not names:
        raise InputError(
            f"--region {text!r}: unknown region {', '.join(unknown) or text!r}; use one of "
            f"{', '.join(REGIONS)} (join with +), a 0/1 grid like 00000000/.../00011000, or a mask PNG"
        )
    return Region(text, names=names)


def region_mask(region: Region | str, grid: tuple[int, int]) -> torch.Tensor:
    """The region as weights in [0, 1] per cell of an ``h×w`` dynamics grid (float32 ``h×w``).

    Raises InputError when a grid string or mask image does not fit the grid.
    """
    import torch

    region = region if isinstance(region, Region) else parse_region(region)
    h, w = grid
    if region.names:
        mask = torch.zeros(h, w)
        ys = (torch.arange(h) + 0.5) / h
        xs = (torch.arange(w) + 0.5) / w
        for name in region.names:
            top, bottom, left, right = REGIONS[name]
            inside_y = (ys >= top) & (ys < bottom)
            inside_x = (xs >= left) & (xs < right)
            mask[inside_y[:, None] & inside_x[None, :]] = 1.0
        return mask
    if region.rows:
        rows = region.rows
        if len(rows) != h or any(len(r) != w for r in rows):
            found = f"{len(rows)} rows of {'/'.join(sorted({str(len(r)) for r in rows}))}"
            raise InputError(
                f"--region grid has {found} cells; this model's dynamics grid is {h}x{w}: give {h} rows "
                f"of {w} 0/1 characters separated by /, e.g. {'/'.join(['0' * w] * (h - 1) + ['1' * w])}"
            )
        return torch.tensor([[float(c) for c in r] for r in rows])
    return _mask_image(region.image, grid)  # type: ignore[arg-type]


def _mask_image(path: Path, grid: tuple[int, int]) -> torch.Tensor:
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    h, w = grid
    try:
        with Image.open(path) as image:
            gray = np.asarray(image.convert("L"), dtype=np.float32)
        height, width = gray.shape
        pixels = torch.from_numpy(gray) / 255
    except (OSError, UnidentifiedImageError) as err:
        raise InputError(f"--region mask {path} is not an image PIL can read ({err}); give a PNG") from None
    if width % w or height % h or width // w != height // h:
        raise InputError(
            f"--region mask {path} is {width}x{height}; this model's dynamics grid is {w}x{h} (width x height): "
            f"give a PNG of {w}x{h} pixels or a whole multiple (e.g. {8 * w}x{8 * h}), white = the second video's motion"
        )
    k = width // w
    return torch.nn.functional.avg_pool2d(pixels[None, None], k)[0, 0]  # box average per cell


# --- the options ---------------------------------------------------------------------------------


def _problem_if(condition: bool, problems: list[str], message: str) -> None:
    if condition:
        problems.append(message)


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(frozen=True, kw_only=True)
class RenderOptions:
    """What every application shares.

    Attributes:
        model: trained VidStyleODE: a registry name or a checkpoint path. Its checkpoint names the
            generator, encoder and CLIP it works with.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32`` (reference), ``bf16`` (the generator's convolutions in bfloat16, and
            the inversion through the encoder's bf16 fast path) or ``auto`` (bf16 on CUDA). The
            dynamics ODE always runs in the model's own dtype.
        batch_size: frames per batch in every stage; memory is bounded by it, not the video length.
        content: ``mean`` (the paper's mean of the frames' inversions) or ``first`` frame's.
        crf: x264 quality of the written video (0 lossless, 18 visually lossless, 51 worst).
        keep_audio: copy the source's audio, in sync, into the output.
        use_cache: reuse and store inversions in the cache (keyed by file, encoder and settings).
        cache_dir: model and latents cache (default ``$VSODE_CACHE_DIR`` or the user cache).
        force: overwrite existing outputs.
        align: ``auto`` (FFHQ-align faces unless the model's encoder works on its own world as
            it is, e.g. the demo built-ins; the centre square when no face is found), ``on``
            (no face is an error) or ``off`` (the centre square, for aligned footage).
        face_index: which face to follow when there are several (0 = the largest).
        crop_only: write the generated crop instead of pasting it back into the full frame (an
            aligned face through its inverse warp, any other into its centre square). Outputs at
            new frame times (interpolate, extrapolate) are always the crop.
        max_frames: the most output frames a call may write (:data:`MAX_FRAMES` by default); the
            count is checked before anything is loaded.
        anchor: ``inversion`` (default): keep the per-frame detail of the inputs' inversions,
            rendering ``w_inv(t) + M_out(t) − M(t)`` (:mod:`vsode.model.anchor`); ``none``: the
            paper's reconstruction ``z_C + 0.01·Δ(t)`` alone.
        tune: pivotal-tuning steps on the content input's inversion (0 = none, the default): a copy
            of the generator is fine-tuned around the frames' own codes (:mod:`vsode.tune`), so
            outputs keep detail the encoder's codes lose. Inputs given as ``--latents`` carry the
            tuning they were inverted with.
        seed: seeds the tuning's sampling of frames and codes.
        generator: render the W+ with this StyleGAN2 instead of the model's own (a registry name,
            e.g. a ``stylegan2-finetune`` entry, or a checkpoint file): a generator fine-tuned from
            the model's shares its W space, so the output keeps the content and motion in its style.
            Its W+ layout (rows × width) must be the model's; None renders with the model's own.
    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 8
    content: str = "mean"
    crf: int = 18
    keep_audio: bool = True
    use_cache: bool = True
    cache_dir: Path | None = None
    force: bool = False
    align: str = "auto"
    face_index: int = 0
    crop_only: bool = False
    max_frames: int = MAX_FRAMES
    anchor: str = "inversion"
    tune: int = 0
    seed: int = 0
    generator: str | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        self._check(problems)
        if problems:
            raise InputError("; ".join(problems))

    def _check(self, problems: list[str]) -> None:
        """Append one message per bad field (subclasses extend this: the one place options are checked)."""
        _problem_if(not str(self.model).strip(), problems, "--model is empty; give a registry name or a checkpoint path")
        _problem_if(self.precision not in PRECISIONS, problems,
                    f"--precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        _problem_if(not _whole(self.batch_size, 1), problems,
                    f"--batch-size {self.batch_size} must be a whole number of frames >= 1")
        _problem_if(self.content not in CONTENT_MODES, problems,
                    f"--content {self.content!r} is not one of {', '.join(CONTENT_MODES)}")
        _problem_if(not _whole(self.crf, 0) or self.crf > 51, problems,
                    f"--crf {self.crf} must be a whole number from 0 (lossless) to 51")
        _problem_if(self.align not in ALIGN_MODES, problems,
                    f"align {self.align!r} is not one of {', '.join(ALIGN_MODES)}")
        _problem_if(not _whole(self.face_index, 0), problems,
                    f"--face-index {self.face_index} must be 0 (the largest face) or more")
        _problem_if(self.anchor not in ANCHOR_MODES, problems,
                    f"--anchor {self.anchor!r} is not one of {', '.join(ANCHOR_MODES)}")
        _problem_if(not _whole(self.max_frames, 1), problems,
                    f"--max-frames {self.max_frames} must be a whole number of frames >= 1")
        _problem_if(not _whole(self.tune, 0), problems,
                    f"--tune {self.tune} must be a whole number of steps, 0 (no tuning) or more")
        _problem_if(not _whole(self.seed, 0), problems, f"--seed {self.seed} must be a whole number >= 0")
        if self.generator is not None:
            object.__setattr__(self, "generator", str(self.generator))
            _problem_if(not self.generator.strip(), problems,
                        "--generator is empty; give a registry name or a StyleGAN2 checkpoint file")

    def check_frame_count(self, count: int) -> None:
        """Refuse (exit 2) an output of more than ``max_frames`` frames, before any work."""
        if count > self.max_frames:
            raise InputError(
                f"the output would have {count:,} frames, more than --max-frames {self.max_frames:,}; "
                "check the rate or length asked for, or raise --max-frames if you mean it"
            )


def _check_prompts(prompts: Sequence[str], source: str, strength: float, problems: list[str], *, required: bool) -> None:
    if required and not prompts:
        problems.append("give at least one --prompt, e.g. --prompt 'blue eyes'")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            problems.append("--prompt is empty; give the attribute to add, e.g. --prompt 'blue eyes'")
            break
    _problem_if(not isinstance(source, str) or not source.strip(), problems,
                "--source is empty; give the description of the unedited video, e.g. 'a photo of a person'")
    _problem_if(isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength),
                problems, f"--strength {strength!r} must be a finite number (the released default is 1.3)")


@dataclass(frozen=True, kw_only=True)
class EditOptions(RenderOptions):
    """``vsode edit``: the style code ``CLIP_I(G(z_C)) + strength·(CLIP_T(target) − CLIP_T(source))``.

    Attributes:
        prompts: one output per prompt, all from one inversion and one ODE solve.
        source: the description of the unedited video.
        strength: α (the released appearance script's default, 1.3).
        raw_prompt: use each prompt as the target text as it is, instead of
            ``"a photo of a person with {prompt}"`` (how the training captions were written).
        model: for ``edit``, ``auto`` (the default) is the published face weights with
            ``--optimize`` (``model="none"``) where an FFHQ encoder and CLIP ViT-B/32 are installed,
            else the demo model (:func:`vsode.model.free.resolve_auto`).
        optimize: ``edit`` only: at most this many steps of test-time optimisation of one W+ offset
            per prompt, found with CLIP on the video's frames and a population of generator faces
            (:mod:`vsode.optimize`); 0 (the default) renders the model's edit as it is. With
            ``model="none"`` it is the whole edit.
        layers: the W+ rows the offset moves: ``coarse``, ``medium``, ``fine`` (default) or ``all``.
        refine: ``--optimize``'s clean-up steps once CLIP reads the target (default 8; 0: none), which
            give back the pixel change CLIP does not need (:data:`vsode.optimize.REFINE`).
        encoder, clip: ``model="none"`` only: the encoder (its own decoder renders) and the CLIP;
            default the first installed of e4e-ffhq-encode and psp-ffhq-encode with clip-vit-b-32,
            else psp-demo with clip-demo.
    """

    model: str = AUTO_MODEL
    prompts: tuple[str, ...] = ()
    source: str = DEFAULT_SOURCE
    strength: float = DEFAULT_STRENGTH
    raw_prompt: bool = False
    optimize: int = 0
    layers: str = "fine"
    refine: int = 8
    encoder: str | None = None
    clip: str | None = None
    prompt_required: ClassVar[bool] = True

    def _check(self, problems: list[str]) -> None:
        from .optimize import LAYERS

        object.__setattr__(self, "prompts", (self.prompts,) if isinstance(self.prompts, str) else tuple(self.prompts))
        super()._check(problems)
        _check_prompts(self.prompts, self.source, self.strength, problems, required=self.prompt_required)
        _problem_if(not _whole(self.optimize, 0), problems,
                    f"--optimize {self.optimize} must be a whole number of steps, 0 (none) or more")
        _problem_if(self.layers not in LAYERS, problems, f"--layers {self.layers!r} is not one of {', '.join(LAYERS)}")
        _problem_if(not _whole(self.refine, 0), problems,
                    f"--refine {self.refine} must be a whole number of clean-up steps, 0 (none) or more")
        _problem_if(bool(self.optimize) and self.anchor == "none", problems,
                    "--optimize edits the input's own inversions (and --model none renders them); drop --anchor none")
        if self.model == "none" and self.prompt_required:  # edit's; other verbs refuse it when loading
            _problem_if(not self.optimize, problems,
                        "--model none edits by test-time optimisation alone; add --optimize N (e.g. --optimize 20)")
        elif self.model != AUTO_MODEL:
            for name, value in (("--encoder", self.encoder), ("--clip", self.clip)):
                _problem_if(value is not None, problems,
                            f"{name} is for --model none (a model brings its own); drop {name} or add --model none")

    def target(self, prompt: str) -> str:
        """The target text for ``prompt``."""
        return prompt.strip() if self.raw_prompt else PROMPT_TEMPLATE.format(prompt.strip())


def _check_reference(reference: str | None, anchor: str, problems: list[str]) -> None:
    """``--reference`` (None: the default, ``matched``): one of :data:`MOTION_REFERENCES`, and only
    where the driver is inverted (anchored)."""
    if reference is None:
        return
    _problem_if(reference not in MOTION_REFERENCES, problems,
                f"--reference {reference!r} is not one of {', '.join(MOTION_REFERENCES)}")
    _problem_if(anchor == "none", problems, "--reference picks where the driver's inverted motion is measured "
                                            "from; --anchor none does not invert it: drop one of them")


@dataclass(frozen=True, kw_only=True)
class AnimateOptions(EditOptions):
    """``vsode animate``: the content of an image moved by a driver video; prompts are optional
    (no prompt: one output with the image's own appearance).

    Attributes:
        reference: anchored, where the driver's motion is measured from
            (:data:`MOTION_REFERENCES`, :func:`vsode.model.anchor.motion_reference`); None:
            ``matched``.
    """

    model: str = DEFAULT_MODEL
    prompt_required: ClassVar[bool] = False
    reference: str | None = None

    def _check(self, problems: list[str]) -> None:
        super()._check(problems)
        _check_reference(self.reference, self.anchor, problems)


def _detail_mode(detail: str | None, anchor: str, generator: str | None) -> str:
    """``detail``, or by default ``input`` where it applies: anchored on the inversions, rendered
    by the model's own generator."""
    if detail is not None:
        return detail
    return "input" if anchor != "none" and generator is None else "none"


def _check_detail(detail: str | None, anchor: str, generator: str | None, problems: list[str]) -> None:
    """``--detail``: one of :data:`DETAIL_MODES`, and ``input`` only where it applies."""
    _problem_if(detail is not None and detail not in DETAIL_MODES, problems,
                f"--detail {detail!r} is not one of {', '.join(DETAIL_MODES)}")
    _problem_if(detail == "input" and anchor == "none", problems,
                "--detail input adds the input's detail to its own inversions; --anchor none renders "
                "without them: drop one of them")
    _problem_if(detail == "input" and generator is not None, problems,
                f"--detail input puts the input's own pixels back, which --generator {generator} is there "
                "to restyle: drop one of them")


@dataclass(frozen=True, kw_only=True)
class InterpolateOptions(RenderOptions):
    """``vsode interpolate``: exactly one of

    Attributes:
        fps: a new constant rate over the input's duration (``round(duration·fps)`` frames).
        factor: that many frames per input frame interval (the rate times ``factor``).
        times: explicit output timestamps in seconds on the input's clock (>= 0, increasing).
        detail: ``input`` adds to each output frame the input's own detail that the inversions
            miss, ``crop − G(w_inv)`` of the input frames around it, lerped in time (so an input
            frame is reproduced as itself, not as its inversion); ``none``: the render alone.
            None (default): ``input`` when anchored on the inversions with the model's own
            generator, else ``none`` (:attr:`detail_mode`). ``input`` needs both.
    """

    fps: Fraction | None = None
    factor: int | None = None
    times: tuple[Fraction, ...] | None = None
    detail: str | None = None

    @property
    def detail_mode(self) -> str:
        """The detail the output gets: ``detail``, or by default ``input`` where it applies."""
        return _detail_mode(self.detail, self.anchor, self.generator)

    def _check(self, problems: list[str]) -> None:
        super()._check(problems)
        _check_detail(self.detail, self.anchor, self.generator, problems)
        given = [n for n in ("fps", "factor", "times") if getattr(self, n) is not None]
        if len(given) != 1:
            problems.append("give exactly one of --fps R, --factor K or --times FILE"
                            + (f" (got {', '.join('--' + g for g in given)})" if given else ""))
        if self.fps is not None:
            try:
                object.__setattr__(self, "fps", parse_rate(self.fps))
            except InputError as err:
                problems.append(str(err))
        if self.factor is not None and not _whole(self.factor, 1):
            problems.append(f"--factor {self.factor} must be a whole number >= 1 (2 doubles the frame rate); "
                            "use --fps for other ratios")
        if self.times is not None:
            try:
                object.__setattr__(self, "times", check_times(self.times, "--times"))
            except InputError as err:
                problems.append(str(err))


@dataclass(frozen=True, kw_only=True)
class ExtrapolateOptions(RenderOptions):
    """``vsode extrapolate``: continue past the last frame at the source rate.

    Attributes:
        seconds: how long to continue (``round(seconds·fps)`` frames), or
        frames: how many frames to add (exactly one of the two).
        only_new: write only the continuation, not the source's reconstruction before it.
    """

    seconds: float | Fraction | None = None
    frames: int | None = None
    only_new: bool = False

    def _check(self, problems: list[str]) -> None:
        super()._check(problems)
        if (self.seconds is None) == (self.frames is None):
            problems.append("give exactly one of --seconds S or --frames N")
        if self.seconds is not None:
            ok = not isinstance(self.seconds, bool) and isinstance(self.seconds, (int, float, Fraction)) \
                and math.isfinite(self.seconds) and self.seconds > 0
            _problem_if(not ok, problems, f"--seconds {self.seconds} must be a positive number of seconds, e.g. --seconds 2")
        if self.frames is not None:
            _problem_if(not _whole(self.frames, 1), problems, f"--frames {self.frames} must be a whole number of frames >= 1")

    def new_frames(self, fps: Fraction) -> int:
        """Frames to add at ``fps``."""
        if self.frames is not None:
            return self.frames
        count = round(Fraction(self.seconds).limit_denominator(1_000_000) * fps)  # type: ignore[arg-type]
        if count < 1:
            raise InputError(
                f"--seconds {self.seconds} is less than one frame at {format_rate(fps)} fps; "
                f"give at least {float(1 / fps):.4g} s or use --frames"
            )
        return count


@dataclass(frozen=True, kw_only=True)
class BlendOptions(RenderOptions):
    """``vsode blend-motion``: the second video's motion inside ``region``, the first's elsewhere.

    Attributes:
        region: a name (top, bottom, left, right, top-left, top-right, bottom-left, bottom-right,
            eyes, mouth, all; join with ``+``), a 0/1 grid string with one row per grid row
            (``/``-separated), or a grayscale mask image (white = the second video's motion)
            the size of the grid or a whole multiple of it. See :data:`REGIONS` for the cells.
        detail: ``input`` adds A's own detail that its inversions miss (each frame's crop minus
            its inversion's render) outside the region, so A outside it is A's own frames;
            ``none``: the render alone. None (default): ``input`` when anchored with the model's own
            generator, else ``none`` (:attr:`detail_mode`).
    """

    region: str = ""
    parsed_region: Region | None = field(default=None, repr=False, compare=False)
    detail: str | None = None

    @property
    def detail_mode(self) -> str:
        """The detail the output gets: ``detail``, or by default ``input`` where it applies."""
        return _detail_mode(self.detail, self.anchor, self.generator)

    def _check(self, problems: list[str]) -> None:
        super()._check(problems)
        _check_detail(self.detail, self.anchor, self.generator, problems)
        try:
            object.__setattr__(self, "parsed_region", parse_region(self.region))
        except InputError as err:
            problems.append(str(err))


# `vsode generate`: the length and rate of a sample whose motion comes from the prior.
GENERATE_SECONDS = 2.0
GENERATE_FPS = Fraction(25)
# Where a generated video's content code comes from, besides an image or latents file: the model's
# prior (fitted on its training clips), the generator's mapping network, or ``auto`` (the prior
# when the model has one, else the mapping network).
CONTENT_SOURCES = ("auto", "prior", "mapping")


@dataclass(frozen=True, kw_only=True)
class GenerateOptions(RenderOptions):
    """``vsode generate``: new videos sampled from the model.

    Attributes:
        seconds: length of each video (default :data:`GENERATE_SECONDS`, or the ``--motion``
            video's duration).
        fps: frame rate (default :data:`GENERATE_FPS`, or the ``--motion`` video's rate).
        seed: the first video's seed; video k has seed ``seed + k``, and a seed always gives the
            same video (whatever ``count``).
        count: how many videos to write.
        truncation: ψ in (0, 1]: a sampled content code is ``mean + ψ·(draw − mean)`` (the
            mapping network's ``w`` about its ``latent_avg``, the prior's about its mean).
        motion_scale: the factor on a sampled motion, ``w(t) = z_C + s·(M(t) − M(t0))``; None:
            the prior's calibrated ``motion_gain``. 0 gives a still video. Only for the prior's
            motion, anchored (not with ``--motion`` or ``--anchor none``).
        reference: with ``--motion``, anchored: where that video's motion is measured from
            (:data:`MOTION_REFERENCES`, :func:`vsode.model.anchor.motion_reference`); None:
            ``matched``.
    """

    seconds: float | Fraction | None = None
    fps: Fraction | None = None
    seed: int = 0
    count: int = 1
    truncation: float = 1.0
    motion_scale: float | None = None
    reference: str | None = None

    def _check(self, problems: list[str]) -> None:
        super()._check(problems)
        _check_reference(self.reference, self.anchor, problems)
        if self.seconds is not None:
            ok = not isinstance(self.seconds, bool) and isinstance(self.seconds, (int, float, Fraction)) \
                and math.isfinite(self.seconds) and self.seconds > 0
            _problem_if(not ok, problems, f"--seconds {self.seconds} must be a positive number of seconds, e.g. --seconds 2")
        if self.fps is not None:
            try:
                object.__setattr__(self, "fps", parse_rate(self.fps))
            except InputError as err:
                problems.append(str(err))
        _problem_if(not _whole(self.seed, 0), problems, f"--seed {self.seed} must be a whole number >= 0")
        _problem_if(not _whole(self.count, 1), problems, f"--count {self.count} must be a whole number of videos >= 1")
        psi = self.truncation
        ok = not isinstance(psi, bool) and isinstance(psi, (int, float)) and math.isfinite(psi) and 0 < psi <= 1
        _problem_if(not ok, problems, f"--truncation {psi} must lie in (0, 1]: 1 samples the whole distribution, "
                                      "0.7 stays nearer the average face")
        scale = self.motion_scale
        if scale is not None:
            ok = not isinstance(scale, bool) and isinstance(scale, (int, float)) and math.isfinite(scale) and scale >= 0
            _problem_if(not ok, problems, f"--motion-scale {scale} must be a number >= 0: 1 is the model's own "
                                          "motion, 0 a still video")
            _problem_if(ok and self.anchor == "none", problems,
                        "--motion-scale scales the anchored motion; drop it or --anchor none")

    def frame_times(self, motion_duration: Fraction | None = None, motion_fps: Fraction | None = None) -> FrameTimes:
        """The frames of each video: ``round(seconds·fps)`` (at least 1) from 0."""
        fps = self.fps or motion_fps or GENERATE_FPS
        if self.seconds is not None:
            seconds = Fraction(self.seconds).limit_denominator(1_000_000)
        else:
            seconds = Fraction(motion_duration) if motion_duration is not None else Fraction(GENERATE_SECONDS)
        count = max(1, round(seconds * fps))
        self.check_frame_count(count * self.count)
        return FrameTimes.regular(count, fps)


def as_dict(options: Any) -> dict[str, Any]:
    """A JSON-safe dict of an options dataclass (for ``--json`` results)."""
    import dataclasses

    out = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if f.name == "parsed_region":
            continue
        if isinstance(value, Fraction):
            value = f"{value.numerator}/{value.denominator}"
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [f"{v.numerator}/{v.denominator}" if isinstance(v, Fraction) else v for v in value]
        out[f.name] = value
    return out
