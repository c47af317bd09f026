"""`vsode demo`: the whole product on the embedded demo world, offline, with scores.

It renders a source clip (with a speech-like audio track that follows the mouth), the same source
at 8 fps and at 3 fps, a driver clip and a portrait from the procedural world, and writes them
through the streaming video encoder. Then it inverts the source with the shipped tiny pSp encoder, checks the
tiny CLIP's zero-shot reading of the source's attributes, and runs every application with a
trained VidStyleODE (``--model``):

- edit (two prompts: a hair and an eye colour the source does not have; the source is described
  by its own caption and each target by that caption with the colour changed, as in training),
- animate (the portrait moved by the driver),
- interpolate (the 8 fps source to 24 fps, and the sparse case: the 3 fps source to 24 fps),
- extrapolate (the source continued for 1 s),
- blend-motion (the driver's motion in the mouth region of the source),
- animate again, rendered with the restyled generator ``stylegan2-demo-poster`` (``--generator``:
  the same W+ in the posterised style; its driver correlations are compared with the unswapped
  animate's, its motion readings are correlated with the unswapped animate's, and its style is
  scored by the palette distance),
- generate (two new videos sampled from the model's prior; scored for how many distinct looks the
  demo CLIP reads and for their motion energy against the real source and driver clips).

Beside every output it writes its ground truth (``<output>.truth.json``,
:class:`vsode.demo.evaluate.Truth`, naming the input video the output was made from), scores the
output against it exactly as ``vsode eval`` would (interpolation and extrapolation beside
baselines built from that decoded input, the same built from the true frames as upper bounds, and
the model-free control with the ODE gain over it), and writes a contact sheet (rows: inputs and
applications, columns: time) and ``report.json`` with every score.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
import time
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..errors import InputError, ModelMissingError
from ..fileio import atomic_write_bytes, check_output_path
from ..options import ANCHOR_MODES, DEFAULT_MODEL, region_mask
from ..progress import Progress, ensure
from ..video import VideoWriter, probe
from . import scores as S
from .evaluate import Readers, Truth, evaluate, read_output, write_truth
from .world import (
    POSTER_LEVELS,
    VideoParams,
    caption,
    render_times,
    sample_params,
    with_appearance,
    with_motion,
)

DEMO_ENCODER = "psp-demo"
DEMO_CLIP = "clip-demo"
SAMPLE_RATE = 16000
SHEET_COLUMNS = 10
INTERPOLATE_FROM = Fraction(8)  # the rate the source is given to interpolate at...
INTERPOLATE_TO = Fraction(24)  # ...and the rate it is asked for
SPARSE_FROM = Fraction(3)  # the sparse case: lerping between inputs is weak, the dynamics have room
EXTRAPOLATE_SECONDS = 1
# α of the edits: the demo model's edit branch was trained at TrainOptions.for_preset("demo").strength
# (2.0); at the released face default of 1.3 its hair edits do not land.
EDIT_STRENGTH = 2.0
BLEND_REGION = "mouth"
RESTYLED_GENERATOR = "stylegan2-demo-poster"  # stylegan2-demo fine-tuned to the posterised world
GENERATED = ("generate-1.mp4", "generate-2.mp4")  # `vsode generate --seed SEED --count 2`
# Edit targets, in order of preference: the first one the source does not already have.
HAIR_TARGETS = ("blonde", "red", "black", "grey", "brown")
EYE_TARGETS = ("blue", "green", "brown", "grey")
CRF = 18  # the apps' default x264 quality; the truth files record it

# Application outputs: file name -> truth kind (the truth file is <stem>.truth.json).
APPS = {
    "edit-hair.mp4": "edit",
    "edit-eyes.mp4": "edit",
    "animate.mp4": "animate",
    "interpolate.mp4": "interpolate",
    "interpolate-sparse.mp4": "interpolate",
    "extrapolate.mp4": "extrapolate",
    "blend-motion.mp4": "blend",
    "animate-poster.mp4": "animate",
}


def truth_name(output: str) -> str:
    """``edit-hair.mp4`` → ``edit-hair.truth.json``."""
    return output.rsplit(".", 1)[0] + ".truth.json"


OUTPUTS = (
    "source.mp4",
    "source-8fps.mp4",
    "source-3fps.mp4",
    "driver.mp4",
    "portrait.png",
    "source.latents.pt",
    "source_recon.mp4",
    *APPS,
    *(truth_name(name) for name in APPS),
    *GENERATED,
    "contact_sheet.png",
    "report.json",
)
# With --tune: the inputs of the applications that invert them, each inverted and tuned once
# (tuned_latents_name), the latents file and its tuned weights beside it.
TUNED_INPUTS = ("source.mp4", "source-8fps.mp4", "source-3fps.mp4", "portrait.png")


def tuned_latents_name(video: str, steps: int) -> str:
    """``source.mp4``, 100 → ``source.tune100.latents.pt`` (its tuned weights: ``….latents.tuned.pt``)."""
    return f"{video.rsplit('.', 1)[0]}.tune{steps}.latents.pt"


def tuned_outputs(steps: int) -> tuple[str, ...]:
    """The files --tune adds to the demo's folder."""
    from ..invert import tuned_path

    names = [tuned_latents_name(v, steps) for v in TUNED_INPUTS] if steps else []
    return tuple(n for name in names for n in (name, tuned_path(name).name))


@dataclass(frozen=True)
class DemoOptions:
    """What `vsode demo` renders and runs.

    Attributes:
        seconds: length of the source and driver clips.
        fps: their frame rate (exact rational).
        size: side of the rendered videos (the models work at 64 px).
        seed: picks the faces and their motion.
        model: the trained VidStyleODE the applications run (registry name or checkpoint path).
        force: overwrite existing files in the output folder.
        device: where the models run.
        threads: torch CPU threads while the demo runs (restored after). The models are tiny: one
            thread is the fastest, many times over on a busy machine. 0 keeps torch's setting.
        anchor: what the applications anchor their W+ on (``inversion`` or ``none``, the paper's
            reconstruction alone; :data:`vsode.options.ANCHOR_MODES`).
        tune: pivotal-tuning steps for the applications' content inputs (``--tune``; 0: none).
        detail: interpolate's and blend-motion's ``--detail`` (``none`` or ``input``: the input's
            own detail added to the render; :data:`vsode.options.DETAIL_MODES`); None: their
            default.
    """

    seconds: float = 3.0
    fps: Fraction = Fraction(24)
    size: int = 128
    seed: int = 0
    model: str = DEFAULT_MODEL
    force: bool = False
    device: str = "cpu"
    threads: int = 1
    anchor: str = "inversion"
    tune: int = 0
    detail: str | None = None

    def __post_init__(self) -> None:
        if not 0.25 <= self.seconds <= 60:
            raise InputError(f"--seconds {self.seconds} must be between 0.25 and 60")
        if self.fps <= 0 or self.fps > 120:
            raise InputError(f"--fps {self.fps} must be in (0, 120]")
        if self.size not in (64, 128, 256):
            raise InputError(f"--size {self.size} must be 64, 128 or 256")
        if self.seed < 0:
            raise InputError(f"--seed {self.seed} must be 0 or more")
        if not str(self.model).strip():
            raise InputError("--model is empty; give a registry name or a VidStyleODE checkpoint path")
        if self.anchor not in ANCHOR_MODES:
            raise InputError(f"--anchor {self.anchor!r} is not one of {', '.join(ANCHOR_MODES)}")
        if isinstance(self.tune, bool) or not isinstance(self.tune, int) or self.tune < 0:
            raise InputError(f"--tune {self.tune} must be a whole number of steps, 0 (no tuning) or more")
        _retime_detail(self)  # interpolate's own checks of --detail
        if self.threads < 0:
            raise InputError(f"--threads {self.threads} must be 1 or more (0: torch's default)")
        if math.floor(Fraction(self.seconds) * SPARSE_FROM) < 2:
            raise InputError(f"--seconds {self.seconds} is too short to interpolate from {SPARSE_FROM} fps: "
                             f"give at least {math.ceil(200 / SPARSE_FROM) / 100:g} s")

    @property
    def times(self) -> list[Fraction]:
        return _grid(self.seconds, self.fps)


def _grid(seconds: float, fps: Fraction) -> list[Fraction]:
    count = max(1, math.floor(Fraction(seconds) * fps))
    return [Fraction(i) / fps for i in range(count)]


def check_model(name: str) -> tuple[Path, Any]:
    """The VidStyleODE checkpoint ``--model`` names and its config, checked before any work.

    Raises ModelMissingError (exit 3) naming ``--model`` when the built-in demo model is not part
    of this vsode or not installed, InputError (exit 2) for a missing file or a file that is not a
    VidStyleODE checkpoint.
    """
    from ..checkpoints.cache import resolve
    from ..model import load_model

    try:
        config = load_model(name, backbones=False).config  # names --model when the built-in is missing
        path = resolve(name)
    except ModelMissingError as err:
        raise ModelMissingError(f"{err}; or pass --model PATH of another VidStyleODE checkpoint") from None
    return path, config


def _speech_audio(params: VideoParams, seconds: float, path: Path) -> None:
    """A voice-like buzz whose loudness follows the clip's mouth opening (16-bit mono WAV)."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    envelope = np.clip(params.motion(t)["mouth_open"], 0.0, 1.0)
    pitch = 140 + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in (1, 2, 3, 4))
    samples = (0.25 * envelope * voice / 2.1 * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(samples.tobytes())


def _write_clip(path: Path, frames: torch.Tensor, fps: Fraction, *, audio: Path | None, force: bool) -> dict:
    with VideoWriter(path, fps=fps, width=frames.shape[-1], height=frames.shape[-2],
                     audio_from=audio, force=force) as writer:
        for i in range(0, frames.shape[0], 16):
            writer.write(frames[i : i + 16])
    return writer.close().to_dict()


def _png_bytes(image: torch.Tensor | Any) -> bytes:
    from PIL import Image

    if isinstance(image, torch.Tensor):
        pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    if frames.shape[-1] == size:
        return frames
    return torch.nn.functional.interpolate(frames, size=(size, size), mode="bilinear",
                                           align_corners=False, antialias=True)


def _zero_shot(clip_model: Any, frames: torch.Tensor, params: VideoParams) -> dict[str, float]:
    """Share of frames whose attribute CLIP reads is the true one, per attribute."""
    read = S.read_attributes(clip_model, frames)
    return {a: float(np.mean([v == params.attributes[a] for v in read[a]])) for a in S.NAMED}


def _first_other(choices: tuple[str, ...], current: str) -> str:
    return next(c for c in choices if c != current)


@dataclass
class _Row:
    """One row of the contact sheet: a label and frames at their times (seconds)."""

    label: str
    frames: torch.Tensor
    times: list[float]


def run_demo(out_dir: str | Path, options: DemoOptions | None = None, *,
             progress: Progress | None = None) -> dict[str, Any]:
    """Render the demo clips, run every application on them, score, write the sheet and the report.

    Returns the report (also written to ``out_dir/report.json``).

    Raises ModelMissingError (exit 3) when ``options.model`` is not installed, before any work.
    """
    options = options or DemoOptions()
    with _torch_threads(options.threads):
        return _run_demo(Path(out_dir), options, ensure(progress))


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _retime_detail(options: DemoOptions) -> str:
    """The detail the demo's interpolations get: interpolate's own rule for ``--detail`` (the
    default: ``input`` when anchored)."""
    from ..options import InterpolateOptions

    return InterpolateOptions(factor=1, detail=options.detail, anchor=options.anchor).detail_mode


def _run_demo(out: Path, options: DemoOptions, progress: Progress) -> dict[str, Any]:
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} is a file; give a folder name")
    if out.is_dir():
        for name in (*OUTPUTS, *tuned_outputs(options.tune)):
            check_output_path(out / name, force=options.force)
    model_path, config = check_model(options.model)
    out.mkdir(parents=True, exist_ok=True)

    source = sample_params(options.seed)
    driver = sample_params(options.seed + 1, motion_seed=options.seed + 101)
    portrait = sample_params(options.seed + 2)
    times = options.times
    t = np.array([float(x) for x in times])
    slow = np.array([float(x) for x in _grid(options.seconds, INTERPOLATE_FROM)])
    sparse = np.array([float(x) for x in _grid(options.seconds, SPARSE_FROM)])
    report: dict[str, Any] = {
        "seed": options.seed,
        "fps": f"{options.fps.numerator}/{options.fps.denominator}",
        "frames": len(times),
        "model": {"name": options.model, "path": str(model_path)},
        "threads": torch.get_num_threads(),
        "anchor": options.anchor,
        "tune": options.tune,
        "detail": _retime_detail(options),
        "source": {"attributes": source.attributes},
        "driver": {"attributes": driver.attributes},
        "portrait": {"attributes": portrait.attributes},
    }

    with progress.stage("render", total=5) as stage:
        src_frames = render_times(source, t, size=options.size)
        stage.advance()
        slow_frames = render_times(source, slow, size=options.size)
        stage.advance()
        sparse_frames = render_times(source, sparse, size=options.size)
        stage.advance()
        drv_frames = render_times(driver, t, size=options.size)
        stage.advance()
        still = render_times(portrait, np.array([0.0]), size=options.size)[0]
        stage.advance()

    with progress.stage("encode video"), tempfile.TemporaryDirectory() as tmp:
        seconds = float(len(times) / options.fps)
        clips = ((source, src_frames, options.fps, "source", "source.mp4"),
                 (source, slow_frames, INTERPOLATE_FROM, "source_8fps", "source-8fps.mp4"),
                 (source, sparse_frames, SPARSE_FROM, "source_3fps", "source-3fps.mp4"),
                 (driver, drv_frames, options.fps, "driver", "driver.mp4"))
        for params, frames, fps, key, name in clips:
            wav = Path(tmp) / f"{key}.wav"
            _speech_audio(params, seconds, wav)
            video = _write_clip(out / name, frames, fps, audio=wav, force=options.force)
            report.setdefault(key, {})["video"] = video
        atomic_write_bytes(out / "portrait.png", _png_bytes(still), force=options.force)
    report["source"]["probe"] = probe(out / "source.mp4").to_dict()

    rows = [_Row("source", src_frames, t.tolist()),
            _Row("invert", _invert_and_score(out, options, src_frames, report, progress), t.tolist())]
    readers = Readers(device=options.device)
    with progress.stage("clip"):
        report["clip_zero_shot"] = _zero_shot(readers.clip, src_frames, source)

    prompts = {
        "edit-hair.mp4": ("hair", _first_other(HAIR_TARGETS, source.attributes["hair"])),
        "edit-eyes.mp4": ("eyes", _first_other(EYE_TARGETS, source.attributes["eyes"])),
    }
    mask = tuple(map(tuple, region_mask(BLEND_REGION, config.dynamics.grid).tolist()))
    truths = _run_apps(out, options, prompts, mask, (source, driver, portrait), report, progress)

    report["scores"] = {}
    shown: dict[str, torch.Tensor] = {}
    for name, truth in truths.items():
        write_truth(out / truth_name(name), truth, force=options.force)
        frames = read_output(out / name)
        shown[name] = frames
        with progress.stage(f"score {name}"):
            report["scores"][name.rsplit(".", 1)[0]] = evaluate(frames, truth, readers, folder=out)
    for name in ("animate", "animate-poster"):
        report["scores"][name]["style"] = {"palette_distance": round(S.palette_distance(shown[f"{name}.mp4"],
                                                                                        POSTER_LEVELS), 4)}
    # motion kept, read directly: per channel, r between the swapped animate's readings and the unswapped one's
    plain, poster = (readers.regressor.measure(shown[f"{name}.mp4"]) for name in ("animate", "animate-poster"))
    report["scores"]["animate-poster"]["vs_unswapped"] = S.trajectory_correlation(poster, plain)
    generated = _generate(out, options, report, readers, (src_frames, drv_frames), shown["animate.mp4"], progress)
    report["summary"] = summarise(report["scores"])
    tuned = {name: app["tuning"] for name, app in report["apps"].items() if app.get("tuning")}
    if tuned:  # the frames' reconstruction PSNR (at the output size) before and after --tune
        edit = tuned.get("edit") or next(iter(tuned.values()))
        report["summary"]["tuning"] = {
            "steps": edit["steps"], "edit_psnr_before_db": edit["psnr_before_db"],
            "edit_psnr_after_db": edit["psnr_after_db"],
            "edit_gain_db": round(edit["psnr_after_db"] - edit["psnr_before_db"], 3),
            "mean_gain_db": round(sum(t["psnr_after_db"] - t["psnr_before_db"] for t in tuned.values()) / len(tuned), 3),
            "seconds_per_step": round(sum(t["seconds_per_step"] for t in tuned.values()) / len(tuned), 4)}

    seconds_of = {name: [float(x) for x in truths[name].times] for name in truths}
    for name, label in (("edit-hair.mp4", f"edit: {prompts['edit-hair.mp4'][1]} hair"),
                        ("edit-eyes.mp4", f"edit: {prompts['edit-eyes.mp4'][1]} eyes")):
        rows.append(_Row(label, shown[name], seconds_of[name]))
    rows += [
        _Row("portrait", still[None], [0.0]),
        _Row("driver", drv_frames, t.tolist()),
        _Row("animate", shown["animate.mp4"], seconds_of["animate.mp4"]),
        _Row("source at 8 fps", slow_frames, slow.tolist()),
        _Row("interpolate 8 to 24 fps", shown["interpolate.mp4"], seconds_of["interpolate.mp4"]),
        _Row("source at 3 fps", sparse_frames, sparse.tolist()),
        _Row("interpolate 3 to 24 fps", shown["interpolate-sparse.mp4"], seconds_of["interpolate-sparse.mp4"]),
        _Row(f"extrapolate +{EXTRAPOLATE_SECONDS} s", shown["extrapolate.mp4"], seconds_of["extrapolate.mp4"]),
        _Row(f"blend-motion ({BLEND_REGION})", shown["blend-motion.mp4"], seconds_of["blend-motion.mp4"]),
        _Row("animate, poster generator", shown["animate-poster.mp4"], seconds_of["animate-poster.mp4"]),
        *(_Row(f"generate (seed {seed})", frames, t.tolist()) for seed, frames in generated),
    ]
    span = float(seconds) + EXTRAPOLATE_SECONDS
    columns = [round(i * span / SHEET_COLUMNS, 6) for i in range(SHEET_COLUMNS)]
    return _finish(out, options, report, rows, columns, progress)


def _finish(out: Path, options: DemoOptions, report: dict[str, Any], rows: list, columns: list[float],
            progress: Progress) -> dict[str, Any]:
    """The contact sheet and report.json."""
    sheet = _sheet(rows, columns, options.size)
    atomic_write_bytes(out / "contact_sheet.png", _png_bytes(sheet), force=options.force)
    report["sheet"] = {"rows": [r.label for r in rows], "times": columns, "cell": options.size,
                       "label_width": LABEL_WIDTH, "header": HEADER, "gap": GAP}
    report["outputs"] = {name: str(out / name) for name in OUTPUTS if (out / name).exists()}
    report["timings"] = {k: round(v, 3) for k, v in progress.timings.items()}
    atomic_write_bytes(out / "report.json", (json.dumps(report, indent=2) + "\n").encode(), force=options.force)
    return report


def _run_apps(out: Path, options: DemoOptions, prompts: dict[str, tuple[str, str]],
              mask: tuple[tuple[float, ...], ...], videos: tuple[VideoParams, VideoParams, VideoParams],
              report: dict, progress: Progress) -> dict[str, Truth]:
    """Run the five applications into ``out`` (interpolate twice: from 8 and from 3 fps); returns the
    ground truth of each output, naming the input it was made from."""
    from .. import api
    from ..options import AnimateOptions, BlendOptions, EditOptions, ExtrapolateOptions, InterpolateOptions

    source, driver, portrait = videos

    common = dict(model=options.model, device=options.device, force=options.force, use_cache=False,
                  batch_size=16, crf=CRF, anchor=options.anchor, tune=options.tune)
    src, slow, drv = out / "source.mp4", out / "source-8fps.mp4", out / "driver.mp4"
    src_times = probe(src).timestamps
    report["apps"] = {}
    truths: dict[str, Truth] = {}

    inverted: dict[Path, Path] = {}
    if options.tune:  # the encoder the applications would invert their inputs with
        from ..model import load_model
        from ..pipeline import encoder_name

        tune_encoder = encoder_name(load_model(options.model, backbones=False))

    def latents_of(given: Path) -> Path | None:
        """With --tune: ``given`` inverted and tuned once (:func:`tuned_latents_name` and its tuned
        weights beside the outputs), as its application would, and given to it (and named by its truth, so
        the like-for-like baselines render with the same tuned generator). None without --tune: the
        application inverts its input itself."""
        if not options.tune:
            return None
        if given not in inverted:
            from ..invert import InvertOptions

            path = out / tuned_latents_name(given.name, options.tune)
            invert = InvertOptions(encoder=tune_encoder, batch_size=16, device=options.device, use_cache=False,
                                   tune=options.tune, seed=0)
            started = time.perf_counter()
            api.invert(given, invert, output=path, force=options.force, progress=progress)
            report.setdefault("tuned_inputs", {})[given.name] = {"latents": path.name,
                                                                 "seconds": round(time.perf_counter() - started, 3)}
            inverted[given] = path
        return inverted[given]

    def named(path: Path | None) -> str | None:
        return None if path is None else path.name

    def ran(name: str, result: Any, started: float, **extra: Any) -> tuple[Fraction, ...]:
        report["apps"][name] = {"seconds": round(time.perf_counter() - started, 3), "nfe": result.nfe,
                                "outputs": [o.to_dict() for o in result.outputs], "tuning": result.tuning, **extra}
        return probe(result.outputs[0].path).timestamps

    started = time.perf_counter()
    names = list(prompts)
    texts = [f"{value} {attr}" for attr, value in prompts.values()]
    # Described as the training captions were: the source's own caption, and as target the same
    # caption with one colour changed (`vsode edit --source TEXT --raw-prompt --prompt TEXT`).
    edited = {name: with_appearance(source, **{attr: value}) for name, (attr, value) in prompts.items()}
    described = caption(source)
    targets = [caption(params) for params in edited.values()]
    result = api.edit(src, EditOptions(prompts=tuple(targets), source=described, raw_prompt=True,
                                       strength=EDIT_STRENGTH, **common),
                      latents=latents_of(src), outputs=[out / n for n in names], progress=progress)
    ran("edit", result, started, prompts=texts, source_text=described, target_texts=targets,
        strength=EDIT_STRENGTH)
    for name, (attr, value) in prompts.items():
        truths[name] = Truth("edit", src_times, edited[name], source=source, target={attr: value},
                             prompt=f"{value} {attr}", crf=CRF, input=src.name, latents=named(latents_of(src)))

    started = time.perf_counter()
    result = api.animate(out / "portrait.png", drv, AnimateOptions(**common), latents=latents_of(out / "portrait.png"),
                         outputs=[out / "animate.mp4"], progress=progress)
    truths["animate.mp4"] = Truth("animate", ran("animate", result, started), with_motion(portrait, driver),
                                  driver=driver, crf=CRF, input="portrait.png",
                                  latents=named(latents_of(out / "portrait.png")))

    started = time.perf_counter()
    # a swapped generator renders the portrait's plain inversion (tuning is of the model's own generator)
    result = api.animate(out / "portrait.png", drv, AnimateOptions(**{**common, "generator": RESTYLED_GENERATOR,
                                                                      "tune": 0}),
                         outputs=[out / "animate-poster.mp4"], progress=progress)
    truths["animate-poster.mp4"] = Truth("animate", ran("animate-poster", result, started, generator=RESTYLED_GENERATOR),
                                         with_motion(portrait, driver), driver=driver, crf=CRF)

    for name, given in (("interpolate.mp4", slow), ("interpolate-sparse.mp4", out / "source-3fps.mp4")):
        started = time.perf_counter()
        retime = InterpolateOptions(fps=INTERPOLATE_TO, detail=options.detail, **common)
        result = api.interpolate(given, retime, latents=latents_of(given), output=out / name, progress=progress)
        truths[name] = Truth("interpolate", ran(name.rsplit(".", 1)[0], result, started, input=given.name), source,
                             source=source, source_times=probe(given).timestamps, crf=CRF, input=given.name,
                             latents=named(latents_of(given)), detail=retime.detail_mode)

    started = time.perf_counter()
    result = api.extrapolate(src, ExtrapolateOptions(seconds=EXTRAPOLATE_SECONDS, **common), latents=latents_of(src),
                             output=out / "extrapolate.mp4", progress=progress)
    truths["extrapolate.mp4"] = Truth("extrapolate", ran("extrapolate", result, started), source, source=source,
                                      source_times=src_times, crf=CRF, input=src.name, latents=named(latents_of(src)))

    started = time.perf_counter()
    blend = BlendOptions(region=BLEND_REGION, detail=options.detail, **common)
    result = api.blend_motion(src, drv, blend, latents=latents_of(src), output=out / "blend-motion.mp4",
                              progress=progress)
    truths["blend-motion.mp4"] = Truth("blend", ran("blend-motion", result, started, region=BLEND_REGION), source,
                                       source=source, driver=driver, mask=mask, crf=CRF, input=src.name,
                                       latents=named(latents_of(src)))
    return truths


def _generate(out: Path, options: DemoOptions, report: dict, readers: Readers, real: tuple[torch.Tensor, ...],
              animated: torch.Tensor, progress: Progress) -> list[tuple[int, torch.Tensor]]:
    """`vsode generate` of two videos from the model's prior, scored: the looks the demo CLIP reads
    on each and how many are distinct, their motion energy over the real clips' (the source's and
    the driver's, at the model's size), and over the animate output's (the model's own motion of a
    real driver, rendered the same way). Skipped, with a note, for a model without a prior."""
    from .. import api
    from ..model import load_model
    from ..options import GenerateOptions

    if load_model(options.model, backbones=False).prior is None:
        report["scores"]["generate"] = {"skipped": f"model {options.model} has no prior; fit one with `vsode fit-prior`"}
        return []
    seed = options.seed
    started = time.perf_counter()
    result = api.generate(GenerateOptions(seconds=options.seconds, fps=options.fps, seed=seed, count=len(GENERATED),
                                          model=options.model, device=options.device, force=options.force,
                                          use_cache=False, batch_size=16, crf=CRF, anchor=options.anchor),
                          output=[out / name for name in GENERATED], progress=progress)
    report["apps"]["generate"] = {"seconds": round(time.perf_counter() - started, 3), "nfe": result.nfe,
                                  "outputs": [o.to_dict() for o in result.outputs], "samples": list(result.samples)}
    with progress.stage("score generate"):
        clips = [read_output(out / name) for name in GENERATED]
        reads = [S.read_attributes(readers.clip, frames) for frames in clips]
        size = clips[0].shape[-1]
        report["scores"]["generate"] = {
            "looks": [S.majority(r) for r in reads],
            "distinct_looks": S.distinct_looks(reads),
            "energy_ratio": round(S.energy_ratio(clips, [_resize(r, size) for r in real]), 4),
            "energy_ratio_vs_animate": round(S.energy_ratio(clips, [_resize(animated, size)]), 4),
        }
    return [(seed + k, frames) for k, frames in enumerate(clips)]


def summarise(scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers of every application's scores (what ``vsode demo`` prints)."""
    out: dict[str, Any] = {}
    for name in ("edit-hair", "edit-eyes"):
        s = scores[name]
        out[name] = {"prompt": s["prompt"], "accuracy": s["edit"]["accuracy"],
                     "others_unchanged": s["edit"]["others_unchanged"], "flip_rate": s["temporal"]["flip_rate"],
                     "frame_diff_ratio": s["temporal"]["frame_diff_ratio"], "psnr_db": s["psnr_db"],
                     "clip_direction": s["direction"]["cosine"], "true_clip_direction": s["direction"]["reference"],
                     # the judge CLIP cannot fool: pixels, and PSNR beside the unedited inversion's
                     "pixel_accuracy": s["pixels"]["accuracy"], "pixel_others_unchanged": s["pixels"]["others_unchanged"],
                     "inversion_psnr_db": s.get("inversion_psnr_db"), "landed": s.get("landed")}
    a = scores["animate"]
    out["animate"] = {**{f"r_{k}": v for k, v in a["correlation"].items()},
                      "portrait_attributes": a["attributes"]["all"],
                      "portrait_pixel_attributes": a["pixels"]["all"], "psnr_db": a["psnr_db"],
                      "still_portrait_psnr_db": a.get("still_portrait_psnr_db")}
    for name in ("interpolate", "interpolate-sparse"):
        out[name] = _versus_baselines(scores[name]["interpolation"])
    out["extrapolate"] = _versus_baselines(scores["extrapolate"]["extrapolation"])
    if "animate-poster" in scores:
        p = scores["animate-poster"]
        change = [abs(p["correlation"][k] - a["correlation"][k]) for k in a["correlation"]
                  if p["correlation"][k] is not None and a["correlation"][k] is not None]
        kept = [v for v in p.get("vs_unswapped", {}).values() if v is not None]
        out["animate-poster"] = {**{f"r_{k}": v for k, v in p["correlation"].items()},
                                 "r_change_max": round(max(change), 4) if change else None,
                                 "r_vs_unswapped_min": round(min(kept), 4) if kept else None,
                                 "palette_distance": p["style"]["palette_distance"],
                                 "unswapped_palette_distance": a["style"]["palette_distance"]}
    if "generate" in scores and "skipped" not in scores["generate"]:
        g = scores["generate"]
        out["generate"] = {k: g[k] for k in ("distinct_looks", "energy_ratio", "energy_ratio_vs_animate")}
    b = scores["blend-motion"]["blend"]
    out["blend-motion"] = {"inside_corr_b": b["inside"]["corr_b"], "inside_corr_a": b["inside"]["corr_a"],
                           "outside_corr_a": b["outside"]["corr_a"], "outside_corr_b": b["outside"]["corr_b"],
                           "outside_psnr_db": scores["blend-motion"].get("outside_psnr_db"),
                           **{f"outside_{k}_psnr_db": v for k, v in
                              (scores["blend-motion"].get("outside_baselines_psnr_db") or {}).items()}}
    return out


def _versus_baselines(scores: dict[str, Any]) -> dict[str, Any]:
    """Interpolation's or extrapolation's headline: the output's PSNR, each like-for-like baseline's
    (``<name>_psnr_db``), each upper bound's (``<name>_upper_bound_psnr_db``), the control's and the
    ODE gain."""
    return {"psnr_db": scores["psnr_db"],
            **{f"{k}_psnr_db": v for k, v in scores["baselines_psnr_db"].items()},
            **{f"{k}_upper_bound_psnr_db": v for k, v in scores["upper_bounds_psnr_db"].items()},
            "control_psnr_db": scores.get("control_psnr_db"), "ode_gain_db": scores.get("ode_gain_db")}


def _invert_and_score(out: Path, options: DemoOptions, src_frames: torch.Tensor,
                      report: dict, progress: Progress) -> torch.Tensor:
    from ..invert import InvertOptions, invert_video, load_models, render_preview, synthesize_at

    inv_opts = InvertOptions(encoder=DEMO_ENCODER, device=options.device, batch_size=16, use_cache=False)
    with progress.stage("load models"):
        models = load_models(inv_opts, torch.device(options.device))
    latents = invert_video(out / "source.mp4", inv_opts, models=models, progress=progress)
    latents.save(out / "source.latents.pt", force=options.force)
    preview = render_preview(latents, models.generator, out / "source_recon.mp4", size=options.size,
                             batch_size=16, audio_from=out / "source.mp4", force=options.force,
                             device=options.device, progress=progress)
    with torch.no_grad():
        size = models.generator.resolution
        recon = torch.cat([
            (synthesize_at(models.generator, latents.wplus[i : i + 16].to(options.device), size)
             .clamp(-1, 1).cpu() + 1) / 2
            for i in range(0, latents.frame_count, 16)
        ])
    # Scored against the renderer's ground truth at the models' resolution.
    truth = _resize(src_frames, size)
    report["inversion"] = {
        "encoder": latents.encoder,
        "psnr_db": round(S.psnr(recon, truth), 2),
        "preview": preview.to_dict(),
    }
    return recon


# --- the contact sheet -----------------------------------------------------------------------------

LABEL_WIDTH = 150  # pixels left of the first column, for the row names
HEADER = 14  # pixels above the first row, for the column times
GAP = 2


def _sheet(rows: list[_Row], columns: list[float], size: int) -> Any:
    """A PIL image: one row per :class:`_Row` (its label on the left), one column per time; each
    cell is the row's frame nearest that time, or blank where the row has no frame within half a
    frame of it (past its end)."""
    from PIL import Image, ImageDraw

    height = HEADER + len(rows) * size + (len(rows) + 1) * GAP
    width = LABEL_WIDTH + len(columns) * size + (len(columns) + 1) * GAP
    sheet = torch.ones(3, height, width)
    for r, row in enumerate(rows):
        frames = _resize(row.frames.float(), size)
        stamps = np.asarray(row.times)
        step = float(np.median(np.diff(stamps))) if len(stamps) > 1 else 0.0  # a still: column 0 only
        for c, at in enumerate(columns):
            k = int(np.argmin(np.abs(stamps - at)))
            if abs(stamps[k] - at) > step / 2 + 1e-9:
                continue
            y, x = HEADER + GAP + r * (size + GAP), LABEL_WIDTH + GAP + c * (size + GAP)
            sheet[:, y : y + size, x : x + size] = frames[k]
    image = Image.open(io.BytesIO(_png_bytes(sheet)))
    draw = ImageDraw.Draw(image)
    for r, row in enumerate(rows):
        draw.text((6, HEADER + GAP + r * (size + GAP) + size // 2 - 6), row.label, fill=(20, 20, 20))
    for c, at in enumerate(columns):
        draw.text((LABEL_WIDTH + GAP + c * (size + GAP) + 2, 1), f"{at:.1f} s", fill=(90, 90, 90))
    return image


__all__ = ["APPS", "DemoOptions", "GENERATED", "OUTPUTS", "check_model", "run_demo", "summarise", "truth_name"]
