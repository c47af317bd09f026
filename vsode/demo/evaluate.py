"""Scoring an output against the demo world's ground truth: the truth file and the evaluator.

``vsode demo`` writes, beside every output, a truth file (``vsode/demo-truth@1`` JSON, a
:class:`Truth`): which kind of output it is, the time of each of its frames, the renderer's
parameters of what it should show, and what the scores need besides (the prompt's attribute, the
input's frame times, the blend mask...). :func:`evaluate_file` (``vsode eval``) reads an output and
its truth, and :func:`evaluate` computes the scores of :mod:`vsode.demo.scores` with the demo's
readers (:class:`Readers`: the ``clip-demo`` CLIP, the motion regressor, and the ``psp-demo``
encoder with the ``stylegan2-demo`` generator for the latent baselines).

Interpolation's and extrapolation's baselines come twice. Like-for-like, from what the application
received: the input video the truth file names (``input``, relative to the truth file's folder),
decoded, through the same encoder, at the output size. And as upper bounds, from the true frames
rendered directly at the output size (the coded input alone is 31-32.5 dB from them at 64 px, so
a method that starts from the input begins behind these). Beside them the model-free control
(the inversions of the decoded inputs lerped between input frames, or the last one held) and the
ODE gain, the output's PSNR minus the control's. Truth files without ``input`` have only the
upper bounds.

Baselines are coded like the output (the same x264 quality, 4:2:0) before they are scored, so the
codec's loss is shared and the comparison is fair.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..fileio import atomic_write_bytes
from ..options import DETAIL_MODES
from ..progress import Progress, ensure
from . import scores as S
from .regressor import true_motion
from .world import VideoParams, caption, render_times

TRUTH_FORMAT = "vsode/demo-truth@1"
KINDS = ("edit", "animate", "interpolate", "extrapolate", "blend")
DEMO_CLIP = "clip-demo"
DEMO_ENCODER = "psp-demo"
DEMO_GENERATOR = "stylegan2-demo"


@dataclass(frozen=True)
class Truth:
    """The ground truth of one output.

    Attributes:
        kind: one of :data:`KINDS`.
        times: each output frame's time in seconds, on the clock of ``expected``.
        expected: the renderer's parameters of what the output should show (for ``blend``, A:
            its appearance everywhere and its motion outside the mask).
        source: the input whose motion the output keeps: the unedited video (edit), the input
            (interpolate, extrapolate), A (blend); None for animate.
        source_times: the input's frame times (interpolate, extrapolate).
        target: the attribute(s) an edit's prompt asks for, e.g. ``{"hair": "blonde"}``.
        prompt: the edit's prompt as given.
        driver: the video whose motion is used (animate: the driver; blend: B, inside the mask).
        mask: blend: weight per cell of the dynamics grid, top row first (1 = B's motion).
        crf: the x264 quality the output was written with (baselines are coded alike); None for
            uncoded baselines.
        input: the file the application read the source from (interpolate, extrapolate: the
            video whose frames are at ``source_times``; edit, blend: the source video; animate:
            the portrait), relative to the truth file's folder; the like-for-like baselines are
            built from it. None: only the upper bounds.
        latents: the latents file the application rendered ``input`` from when it was tuned
            (``--tune``; relative to the truth file's folder): the like-for-like baselines that go
            through the generator (W+ lerp, content code, the control, the unedited inversion, A's
            inversion outside a blend's region) then
            take its W+ and render them with its tuned generator, as the output was. None: the
            input is inverted with the demo encoder and rendered with the demo generator.
        detail: interpolate: ``input`` when the output carries the input's own detail
            (``vsode interpolate --detail input``); the control then carries it too.
    """

    kind: str
    times: tuple[Fraction, ...]
    expected: VideoParams
    source: VideoParams | None = None
    source_times: tuple[Fraction, ...] = ()
    target: dict[str, str] = field(default_factory=dict)
    prompt: str | None = None
    driver: VideoParams | None = None
    mask: tuple[tuple[float, ...], ...] = ()
    crf: int | None = 18
    input: str | None = None
    latents: str | None = None
    detail: str = "none"

    def __post_init__(self) -> None:
        object.__setattr__(self, "times", tuple(Fraction(t) for t in self.times))
        object.__setattr__(self, "source_times", tuple(Fraction(t) for t in self.source_times))
        object.__setattr__(self, "mask", tuple(tuple(float(v) for v in row) for row in self.mask))
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.times:
            problems.append("it lists no frame times")
        needs = {
            "edit": ("source", "target"), "animate": ("driver",), "interpolate": ("source", "source_times"),
            "extrapolate": ("source", "source_times"), "blend": ("source", "driver", "mask"),
        }.get(self.kind, ())
        problems += [f"a {self.kind} truth needs {name}" for name in needs if not getattr(self, name)]
        if self.detail not in DETAIL_MODES:
            problems.append(f"detail {self.detail!r} is not one of {', '.join(DETAIL_MODES)}")
        elif self.detail != "none" and self.kind != "interpolate":
            problems.append(f"detail {self.detail!r} is interpolate's; a {self.kind} truth has none")
        if self.latents is not None and self.input is None:
            problems.append("latents name the inversion of an input, but it names no input")
        if self.kind == "interpolate" and len(self.source_times) < 2:
            problems.append("interpolation needs at least two input frame times")
        unknown = [a for a in self.target if a not in S.NAMED]
        if unknown:
            problems.append(f"edit target names {unknown}; use {', '.join(S.NAMED)}")
        if problems:
            raise InputError("bad demo truth: " + "; ".join(problems))

    def seconds(self) -> np.ndarray:
        return np.array([float(t) for t in self.times])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (times as exact ``"n/d"`` strings)."""
        def params(p: VideoParams | None) -> Any:
            return None if p is None else p.to_dict()

        return {
            "format": TRUTH_FORMAT,
            "kind": self.kind,
            "times": [_frac(t) for t in self.times],
            "expected": params(self.expected),
            "source": params(self.source),
            "source_times": [_frac(t) for t in self.source_times],
            "target": dict(self.target),
            "prompt": self.prompt,
            "driver": params(self.driver),
            "mask": [list(row) for row in self.mask],
            "crf": self.crf,
            "input": self.input,
            "latents": self.latents,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "truth") -> "Truth":
        if not isinstance(data, Mapping) or data.get("format") != TRUTH_FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise InputError(f"{origin} is not a demo truth file ({TRUTH_FORMAT}; found {found!r}); "
                             "`vsode demo` writes one beside each output")

        def params(key: str) -> VideoParams | None:
            value = data.get(key)
            return None if value is None else VideoParams.from_dict(value)

        try:
            return cls(
                kind=str(data["kind"]),
                times=tuple(Fraction(str(t)) for t in data["times"]),
                expected=VideoParams.from_dict(data["expected"]),
                source=params("source"),
                source_times=tuple(Fraction(str(t)) for t in data.get("source_times") or ()),
                target={str(k): str(v) for k, v in (data.get("target") or {}).items()},
                prompt=data.get("prompt"),
                driver=params("driver"),
                mask=tuple(tuple(row) for row in data.get("mask") or ()),
                crf=data.get("crf"),
                input=None if data.get("input") is None else str(data["input"]),
                latents=None if data.get("latents") is None else str(data["latents"]),
                detail=str(data.get("detail") or "none"),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
            raise InputError(f"{origin} is not a valid demo truth file ({err!r})") from None


def _frac(t: Fraction) -> str:
    return f"{t.numerator}/{t.denominator}"


def write_truth(path: str | os.PathLike, truth: Truth, *, force: bool = False) -> Path:
    """Write ``truth`` as JSON (temp file + rename)."""
    return atomic_write_bytes(path, (json.dumps(truth.to_dict(), indent=1) + "\n").encode(), force=force)


def read_truth(path: str | os.PathLike) -> Truth:
    """Read a truth file :func:`write_truth` wrote."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--truth file {path} does not exist; `vsode demo` writes <output>.truth.json files")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"--truth file {path} is not JSON ({err})") from None
    return Truth.from_dict(data, origin=f"--truth file {path}")


# --- the readers -----------------------------------------------------------------------------------


class Readers:
    """The models the scores read outputs with, loaded on first use and kept.

    ``clip`` (attributes, ``clip-demo``), ``regressor`` (motion, the shipped regressor), ``encoder``
    (``psp-demo``) and ``generator`` (``stylegan2-demo``) for the inversion baselines.
    """

    def __init__(self, *, device: str | torch.device = "cpu", regressor: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None) -> None:
        self.device = torch.device(device)
        self.regressor_path = regressor
        self.cache_dir = cache_dir
        self._loaded: dict[str, Any] = {}

    def _get(self, name: str) -> Any:
        if name not in self._loaded:
            from ..checkpoints import resolve

            if name == "clip":
                from ..clip import load_clip

                model = load_clip(resolve(DEMO_CLIP, cache_dir=self.cache_dir), device=self.device)
            elif name == "regressor":
                from .regressor import load_regressor

                model = load_regressor(self.regressor_path, device=self.device)
            elif name == "encoder":
                from ..encoders import load_encoder

                model = load_encoder(resolve(DEMO_ENCODER, cache_dir=self.cache_dir)).to(self.device).eval()
            else:
                from ..stylegan2 import load_generator

                model = load_generator(resolve(DEMO_GENERATOR, cache_dir=self.cache_dir)).to(self.device).eval()
            self._loaded[name] = model
        return self._loaded[name]

    @property
    def clip(self) -> Any:
        return self._get("clip")

    @property
    def regressor(self) -> Any:
        return self._get("regressor")

    @torch.no_grad()
    def invert(self, frames: torch.Tensor) -> torch.Tensor:
        """W+ codes (``N×n×D``) of frames in [0, 1] with the demo encoder."""
        from .regressor import resize

        encoder = self._get("encoder")
        out = [encoder.encode(resize(frames[i : i + 64].to(self.device) * 2 - 1, encoder.input_size))
               for i in range(0, frames.shape[0], 64)]
        return torch.cat(out).cpu()

    def inverted(self, path: str | os.PathLike) -> tuple[torch.Tensor, Any]:
        """A latents file's W+ (``N×n×D``) and the generator to render them with: the demo
        generator with the file's tuned weights when it was tuned (``--tune``), else the demo
        generator itself. Kept per file (path, size and modification time)."""
        stat = Path(path).stat()
        key = f"latents:{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if key not in self._loaded:
            from ..invert import load_latents

            latents = load_latents(path)
            base = self._get("generator")
            generator = latents.tuned_generator(base).to(self.device).eval() if latents.tuning else base
            self._loaded[key] = (latents.wplus.float(), generator)
        return self._loaded[key]

    @torch.no_grad()
    def synthesize(self, wplus: torch.Tensor, size: int, generator: Any = None) -> torch.Tensor:
        """Frames in [0, 1] (``N×3×size×size``) of W+ codes with ``generator`` (default: the demo
        generator)."""
        from ..invert import synthesize_at

        generator = generator if generator is not None else self._get("generator")
        out = [synthesize_at(generator, wplus[i : i + 64].to(self.device), size).clamp(-1, 1).cpu()
               for i in range(0, wplus.shape[0], 64)]
        return (torch.cat(out) + 1) / 2


# --- evaluation ------------------------------------------------------------------------------------


def read_output(path: str | os.PathLike) -> torch.Tensor:
    """An output's frames, ``T×3×H×W`` float in [0, 1] (a video, or an image as one frame)."""
    from ..video import read_all

    path = Path(path)
    if not path.is_file():
        raise InputError(f"output {path} does not exist; give a video `vsode demo` (or an app) wrote")
    return read_all(path, dtype="float32").frames


def evaluate_file(output: str | os.PathLike, truth: str | os.PathLike | Truth, *, kind: str | None = None,
                  readers: Readers | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Score the video ``output`` against ``truth`` (a truth file or a :class:`Truth`).

    Args:
        kind: the kind of output expected (None: the truth's); a mismatch is an error.
        readers: models to reuse (default: loaded on demand on the CPU).

    The truth's ``input`` is looked for beside the truth file (beside the output for a
    :class:`Truth`). Returns the scores of :func:`evaluate`, with ``output`` and ``kind``.
    """
    t = truth if isinstance(truth, Truth) else read_truth(truth)
    folder = Path(output if isinstance(truth, Truth) else truth).parent
    if kind is not None and kind != t.kind:
        raise InputError(f"--kind {kind}: the truth file is for an output of kind {t.kind}; "
                         f"pass --kind {t.kind} or leave --kind out")
    frames = read_output(output)
    return {"output": str(output), **evaluate(frames, t, readers, folder=folder, progress=progress)}


def evaluate(frames: torch.Tensor, truth: Truth, readers: Readers | None = None, *,
             folder: str | os.PathLike | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Every score of ``frames`` (an output, ``T×3×S×S`` in [0, 1]) against ``truth``.

    Always: ``attributes`` (:func:`~vsode.demo.scores.attribute_agreement` with the expected
    video's attributes) and ``temporal`` (:func:`~vsode.demo.scores.temporal_consistency` against
    the source's own motion, for animate the driver's). Then per kind: ``edit`` the edit accuracy,
    the CLIP direction of its change (and of the true edit's) and PSNR vs the edited ground truth;
    ``animate`` the trajectory correlations (and the regressor's reading of the ground truth as
    ``reference``) and attribute preservation; ``interpolate`` PSNR at held-out times with its
    baselines (frame blend, W+ lerp, and the motionless mean W+ of the inputs, VidStyleODE's
    content code alone; per-frame inversion among the upper bounds, and at the input's own times
    among the like-for-like ones); ``extrapolate`` PSNR over the first 0.5 s past the end vs
    repeating the last frame; for both, the baselines built from the decoded input
    (``baselines_psnr_db``) and from the true frames (``upper_bounds_psnr_db``), the model-free
    control (``control_psnr_db``) and ``ode_gain_db``; ``blend`` the motion energies and the
    trajectories' correlations with A and B. Non-finite numbers become strings (``"inf"``).

    Args:
        folder: where ``truth.input`` lies (the truth file's folder; None: the current folder).
    """
    readers = readers or Readers()
    progress = ensure(progress)
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[-2] != frames.shape[-1]:
        raise InputError(f"demo outputs are square RGB videos; got frames of {tuple(frames.shape)}")
    n, size = frames.shape[0], frames.shape[-1]
    if n != len(truth.times):
        raise InputError(f"the output has {n} frames but its truth lists {len(truth.times)} frame times; "
                         "is it the output the truth file was written for?")
    seconds = truth.seconds()
    with progress.stage(f"score {truth.kind}"):
        expected = render_times(truth.expected, seconds, size=size)
        visible = {"eyes": S.eyes_visible(truth.expected, seconds)}
        read = S.read_attributes(readers.clip, frames)
        # the video whose motion the output keeps (the driver's for animate), rendered once
        reference = truth.driver if truth.kind == "animate" else truth.source
        ref_frames = render_times(reference, seconds, size=size) if reference is not None else expected
        result: dict[str, Any] = {
            "kind": truth.kind,
            "frames": n,
            "attributes": S.attribute_agreement(read, {a: truth.expected.attributes[a] for a in S.NAMED}, visible),
            "temporal": S.temporal_consistency(read, frames, ref_frames, visible, expected),
        }
        if truth.kind in ("edit", "animate"):
            result["psnr_db"] = _psnr(frames, expected)
        result.update(_KIND_SCORES[truth.kind](frames, truth, readers, read, visible, expected, ref_frames,
                                               Path(folder or ".")))
    return _plain(result)


def _edit(frames, truth, readers, read, visible, expected, reference, folder) -> dict[str, Any]:
    assert truth.source is not None
    seconds, size = truth.seconds(), frames.shape[-1]
    # the captions name hair and eyes, and skin where the edit changes it
    texts = tuple(caption(p, skin="skin" in truth.target) for p in (truth.source, truth.expected))
    # The judge CLIP cannot fool: the colours of the renderer's own regions, and PSNR against the
    # edited truth beside the unedited inversion's (built from the input the edit received).
    pixels = S.read_pixels(frames, truth.source, seconds)
    out = {"prompt": truth.prompt, "target": dict(truth.target),
           "edit": S.edit_accuracy(read, truth.target, truth.source.attributes, visible),
           "pixels": S.edit_accuracy(pixels, truth.target, truth.source.attributes, visible),
           # the edit's frame changes against the captions' direction in CLIP; the true edit's beside it
           "direction": {"cosine": _round(S.clip_direction(readers.clip, frames, reference, *texts)),
                         "reference": _round(S.clip_direction(readers.clip, expected, reference, *texts))}}
    received = _received(truth, folder, size, count=len(truth.times))
    if received is not None:
        codes, generator = _inversion(truth, folder, readers, received)
        inversion = _coded(readers.synthesize(codes, size, generator), truth.crf)
        out["inversion_psnr_db"] = _psnr(inversion, expected)
        out["inversion_pixels"] = S.edit_accuracy(S.read_pixels(inversion, truth.source, seconds), truth.target,
                                                  truth.source.attributes, visible)
    out["landed"] = S.edit_landed(out["pixels"], _psnr(frames, expected), out.get("inversion_psnr_db"))
    return out


def _animate(frames, truth, readers, read, visible, expected, reference, folder) -> dict[str, Any]:
    seconds = truth.seconds()
    motion = true_motion(truth.expected, seconds)
    pixels = S.read_pixels(frames, truth.expected, seconds)
    out = {
        "correlation": S.trajectory_correlation(readers.regressor.measure(frames), motion),
        "reference_correlation": S.trajectory_correlation(readers.regressor.measure(expected), motion),
        # the portrait's colours read from the pixels where the truth paints them (the judge CLIP
        # cannot fool; it also needs the face where the driver's motion puts it)
        "pixels": S.attribute_agreement(pixels, {a: truth.expected.attributes[a] for a in S.NAMED}, visible),
    }
    portrait = _received(truth, folder, frames.shape[-1], count=1)
    if portrait is not None:  # the like-for-like baseline: the portrait's inversion, held still
        codes, generator = _inversion(truth, folder, readers, portrait)
        still = _coded(readers.synthesize(codes, frames.shape[-1], generator), truth.crf)
        out["still_portrait_psnr_db"] = _psnr(still.expand_as(expected), expected)
    return out


def _interpolate(frames, truth, readers, read, visible, expected, reference, folder) -> dict[str, Any]:
    assert truth.source is not None
    size = frames.shape[-1]
    held, before, weight = S.held_out(truth.times, truth.source_times)
    if not held:
        raise InputError("no output frame lies between two input frames; nothing to score for interpolation")
    truth_held = expected[held]
    on_grid = [k for k, t in enumerate(truth.times) if t in set(truth.source_times)]
    grid_inputs = [truth.source_times.index(truth.times[k]) for k in on_grid]

    def baselines(inputs: torch.Tensor, codes: torch.Tensor, generator: Any = None) -> dict[str, torch.Tensor]:
        """Frame blend, W+ lerp and the content code (the inputs' mean W+: no motion) of these
        input frames, whose W+ are ``codes`` (rendered with ``generator``)."""
        still = readers.synthesize(codes.mean(0, keepdim=True), size, generator)
        return {"frame_blend": S.blend_neighbours(inputs, before, weight),
                "wplus_lerp": readers.synthesize(S.blend_neighbours(codes, before, weight), size, generator),
                "content_code": still.expand(len(held), *still.shape[1:])}

    true_inputs = render_times(truth.source, [float(t) for t in truth.source_times], size=size)
    upper = baselines(true_inputs, readers.invert(true_inputs))
    upper["inversion"] = readers.synthesize(readers.invert(truth_held), size)
    received = _received(truth, folder, size)
    fair, at_inputs = {}, None
    control = None
    if received is not None:
        codes, generator = _inversion(truth, folder, readers, received)
        raw = baselines(received, codes, generator)
        # the model-free control is the like-for-like W+ lerp: the inputs' own inversions, lerped; with
        # the input's detail in the output, the control gets it too (each input frame minus its
        # inversion's render, lerped the same way)
        control = raw["wplus_lerp"]
        if truth.detail == "input":  # the input's crops decoded at the output size as the application does
            crops = _crops(folder / truth.input, size)  # type: ignore[operator]
            renders = readers.synthesize(codes, size, generator)
            control = (control + S.blend_neighbours(crops - renders, before, weight)).clamp(0, 1)
        fair = {k: _coded(v, truth.crf) for k, v in raw.items()}
        control = _coded(control, truth.crf)
        if on_grid:  # the per-frame inversion is defined at the input's own times only
            at_inputs = _coded(readers.synthesize(codes[grid_inputs], size, generator), truth.crf)
    scores = S.interpolation_scores(frames[held], truth_held, fair,
                                    upper_bounds={k: _coded(v, truth.crf) for k, v in upper.items()},
                                    control=control)
    scores["at_input_times_psnr_db"] = _psnr(frames[on_grid], expected[on_grid]) if on_grid else None
    scores["at_input_times_inversion_psnr_db"] = None if at_inputs is None else _psnr(at_inputs, expected[on_grid])
    scores["input"] = truth.input
    return {"interpolation": scores}


def _extrapolate(frames, truth, readers, read, visible, expected, reference, folder) -> dict[str, Any]:
    assert truth.source is not None
    size = frames.shape[-1]
    last = max(truth.source_times)
    new = [k for k, t in enumerate(truth.times) if t > last]
    window = [k for k in new if truth.times[k] <= last + S.EXTRAPOLATION_WINDOW]
    if not window:
        raise InputError("no output frame lies past the input's last frame; nothing to score for extrapolation")
    upper = {"repeat_last": _coded(render_times(truth.source, [float(last)], size=size), truth.crf)[0]}
    received = _received(truth, folder, size)
    fair, control = {}, None
    if received is not None:
        index = truth.source_times.index(last)
        fair = {"repeat_last": _coded(received[index][None], truth.crf)[0]}
        # the model-free control: the last input frame's inversion, held
        codes, generator = _inversion(truth, folder, readers, received)
        control = _coded(readers.synthesize(codes[index][None], size, generator), truth.crf)[0]

    def scored(k: list[int]) -> dict[str, Any]:
        return S.extrapolation_scores(frames[k], expected[k], fair, upper_bounds=upper, control=control)

    scores = scored(window)
    scores["window_s"] = float(S.EXTRAPOLATION_WINDOW)
    scores["all_new"] = scored(new)
    old = [k for k, t in enumerate(truth.times) if t <= last]
    scores["reconstruction_psnr_db"] = _psnr(frames[old], expected[old]) if old else None
    scores["input"] = truth.input
    return {"extrapolation": scores}


def _inversion(truth: Truth, folder: Path, readers: Readers, received: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """The W+ of the input the application received and the generator to render them with, for
    the like-for-like baselines: the truth's latents file and its (tuned) generator when it names
    one, else the demo encoder's inversion of ``received`` and the demo generator (None)."""
    if truth.latents is None:
        return readers.invert(received), None
    path = folder / truth.latents
    if not path.is_file():
        raise InputError(f"the truth names the latents {truth.latents}, but {path} does not exist; keep the "
                         "output, its truth file and its input's latents in one folder as `vsode demo` wrote them")
    codes, generator = readers.inverted(path)
    if codes.shape[0] != received.shape[0]:
        raise InputError(f"the latents {path} hold {codes.shape[0]} frames but the input {truth.input} has "
                         f"{received.shape[0]}; are they the inversion the output was made from?")
    return codes, generator


def _crops(path: Path, size: int) -> torch.Tensor:
    """A video's centre squares decoded at ``size`` × ``size`` (ffmpeg's scaler, as the applications'
    crops are made; frames in [0, 1]), for the residual detail an interpolation adds."""
    from ..align import face_batches
    from ..video import probe

    return torch.cat([crops.float() / 255 for _, (crops,) in
                      face_batches(path, probe(path), None, sizes=[(size, size)], batch_size=64)])


def _received(truth: Truth, folder: Path, size: int, count: int | None = None) -> torch.Tensor | None:
    """The input video the truth names, decoded (``count×3×size×size`` in [0, 1]; ``count``
    defaults to the number of input frame times), or None when the truth names none."""
    if truth.input is None:
        return None
    from .regressor import resize

    path = folder / truth.input
    if not path.is_file():
        raise InputError(f"the truth names the input {truth.input}, but {path} does not exist; keep the "
                         "output, its truth file and its input in one folder as `vsode demo` wrote them")
    frames = read_output(path)
    count = len(truth.source_times) if count is None else count
    if frames.shape[0] != count:
        raise InputError(f"the input {path} has {frames.shape[0]} frames but the truth lists "
                         f"{count} input frame times; is it the input the output was made from?")
    return resize(frames, size)


def _blend(frames, truth, readers, read, visible, expected, reference, folder) -> dict[str, Any]:
    assert truth.source is not None and truth.driver is not None
    seconds, size = truth.seconds(), frames.shape[-1]
    a, b = reference, render_times(truth.driver, seconds, size=size)
    mask = S.grid_to_pixels(truth.mask, size)
    measured = readers.regressor.measure(frames)
    motion_a, motion_b = true_motion(truth.source, seconds), true_motion(truth.driver, seconds)
    trajectories = {
        c: {"a": S.trajectory_correlation(measured, motion_a, [c])[c],
            "b": S.trajectory_correlation(measured, motion_b, [c])[c]}
        for c in ("mouth_open", "head_x", "head_y", "eye_open")
    }
    out: dict[str, Any] = {"blend": S.blend_scores(frames, a, b, mask), "trajectories": trajectories}
    # outside the region the output should be A: PSNR there against A's truth, beside the input
    # itself (coded again, as the output was) and its inversion (what the output is without A's detail)
    keep = (1 - mask.to(frames.dtype))[None, None].expand_as(frames)
    out["outside_psnr_db"] = _masked_psnr(frames, expected, keep)
    received = _received(truth, folder, size, count=len(truth.times))
    if received is not None:
        codes, generator = _inversion(truth, folder, readers, received)
        out["outside_baselines_psnr_db"] = {
            "input": _masked_psnr(_coded(received, truth.crf), expected, keep),
            "inversion": _masked_psnr(_coded(readers.synthesize(codes, size, generator), truth.crf), expected, keep)}
    return out


def _masked_psnr(output: torch.Tensor, truth: torch.Tensor, weight: torch.Tensor) -> float:
    """PSNR over the pixels ``weight`` covers (soft weights in [0, 1], same shape)."""
    error = float(((output.double() - truth.double()) ** 2 * weight).sum() / weight.double().sum().clamp_min(1e-12))
    return round(10 * math.log10(1 / max(error, 1e-12)), 3)


_KIND_SCORES = {"edit": _edit, "animate": _animate, "interpolate": _interpolate, "extrapolate": _extrapolate,
                "blend": _blend}


def _psnr(output: torch.Tensor, truth: torch.Tensor) -> float:
    return round(S.psnr(output, truth), 3)


def _coded(frames: torch.Tensor, crf: int | None) -> torch.Tensor:
    """``frames`` after the round trip through x264 at ``crf`` (4:2:0) that outputs take."""
    if crf is None:
        return frames
    from ..video import VideoWriter, read_all

    with tempfile.TemporaryDirectory(prefix="vsode-eval-") as tmp:
        path = Path(tmp) / "baseline.mp4"
        with VideoWriter(path, fps=Fraction(24), width=frames.shape[-1], height=frames.shape[-2], crf=crf) as writer:
            writer.write(frames.clamp(0, 1))
        return read_all(path, dtype="float32").frames


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, non-finite floats to strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    return value


__all__ = ["KINDS", "TRUTH_FORMAT", "Readers", "Truth", "evaluate", "evaluate_file", "read_output", "read_truth",
           "write_truth"]
