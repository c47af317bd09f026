"""The applications' pipeline: the one place that knows the order of the stages.

::

    input video / image ──probe──► Source (frames, exact times, audio)
      │  └─ or a `vsode invert` latents file (--latents) in place of the inversion
      ├─ inversion (vsode.invert, cached; aligns the face) ──► content code z_C (n × D), track
      └─ dynamics frames: the same face crops, in batches ► features ► ConvGRU ► z_d0 (C × h × w)
    VideoCode(z_C, z_d0) ──one odeint call for every output time──► states table (rows × C × h × w)
    per batch of output frames: rows ► tokens ► modulation + mapper ► W+ ► generator
      ► [paste back into the source frames] ► VideoWriter(s)

Memory is bounded by the batch, not by the video: frames are decoded, encoded and written a batch
at a time; what grows with the length is one feature map per input frame, the W+ per input frame
and one ODE state per distinct output time (16 KB each for the demo model, 64 KB for ffhq).
Tokens are made per batch from the states, and several outputs of the same video (one per prompt)
share one solve and one pass over the batches.

Faces are processed as FFHQ-aligned crops (:mod:`vsode.align`), the same crops for the inversion
and the dynamics: the alignment track comes from the inversion (or the latents file), and inputs
that are not inverted (a driver, the second video of a blend) are tracked on their own. Without a
track (``align="off"``, encoders that need none, no face found) the centre square is used. When
the output's frames are an aligned input's frames (edit, animate, blend-motion), the generated
crops are pasted back into them (full resolution); otherwise, or with ``crop_only``, the crop is
written.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from .checkpoints.cache import sha256_file
from .device import resolve_device
from .errors import InputError, VsodeError
from .fileio import atomic_path, check_output_path
from .invert import (
    InversionModels,
    InvertOptions,
    Latents,
    alignment_track,
    center_square,
    invert_video,
    load_latents,
)
from .model import VideoCode, VidStyleODE, load_model
from .options import IMAGE_SUFFIXES, EditOptions, FrameTimes, RenderOptions
from .progress import Progress, Stage, ensure
from .video import VideoInfo, VideoWriter, WriteResult, probe, read_frames

# Containers the default output keeps from the input; anything else becomes .mp4.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm")
_CODECS = {".webm": "libvpx-vp9"}  # libx264 elsewhere


# --- inputs --------------------------------------------------------------------------------------


@dataclass
class Source:
    """One input as the pipeline reads it: its file (frames and audio), what probe found, its face
    crops (an alignment track, else the centre square ``crop``), and the W+ latents when a latents
    file replaces the inversion."""

    path: Path
    info: VideoInfo
    crop: tuple[int, int, int, int]
    latents: Latents | None = None
    role: str = "input"
    track: Any = None  # vsode.align.Track of the face, None: the centre square ``crop``
    tracked: bool = False  # whether the alignment was decided (the track may still be None)

    @property
    def times(self) -> tuple[Fraction, ...]:
        return self.info.timestamps

    @property
    def fps(self) -> Fraction:
        return self.info.fps

    @property
    def frame_count(self) -> int:
        return self.info.frame_count

    @property
    def is_still(self) -> bool:
        return self.info.is_image

    def frame_times(self) -> FrameTimes:
        """The source's own frames: what edit, animate and blend-motion write."""
        return FrameTimes(self.times, self.fps)


def open_source(
    path: str | Path | None,
    *,
    latents: str | Path | None = None,
    role: str = "input",
    min_frames: int = 1,
) -> Source:
    """Probe an input (and check a latents file against it) before any model is loaded.

    ``path`` may be omitted when ``latents`` is given: the video the latents were made from is
    used for the frames and the audio.
    """
    lat = None
    if latents is not None:
        try:
            lat = load_latents(latents)
        except InputError as err:
            raise InputError(f"--latents {latents} is not a latents file from `vsode invert` ({err})") from None
    if path is None:
        if lat is None:
            raise InputError(f"give the {role} video (or --latents FILE from `vsode invert`)")
        path = Path(str(lat.source.get("path", "")))
        if not path.is_file():
            raise InputError(
                f"latents file {latents} was made from {path}, which is not there; give the video as the {role}"
            )
    path = Path(path)
    info = probe(path)
    if info.frame_count < min_frames:
        raise InputError(
            f"{role} {path} has {info.frame_count} frame; it must be a video of at least {min_frames} frames"
        )
    crop = center_square(info)
    if lat is not None:
        if lat.frame_count != info.frame_count or list(lat.times) != list(info.timestamps) or \
                tuple(lat.size) != (info.width, info.height):
            raise InputError(
                f"latents file {latents} ({lat.frame_count} frames of {lat.size[0]}x{lat.size[1]}) was not made "
                f"from {path} ({info.frame_count} frames of {info.width}x{info.height}); "
                f"run `vsode invert {path}` or give the video it was made from"
            )
        recorded = lat.source.get("sha256")
        if recorded and sha256_file(path) != recorded:
            raise InputError(
                f"latents file {latents} was made from {lat.source.get('path')}, not from {path} (their contents "
                f"differ); give that video, or run `vsode invert {path}` and pass its latents"
            )
        x, y, w, h = lat.crop
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > info.width or y + h > info.height:
            raise InputError(f"latents file {latents} has a crop {lat.crop} outside the video; invert it again")
        crop = tuple(lat.crop)  # type: ignore[assignment]
    source = Source(path, info, crop, lat, role)
    if lat is not None:
        source.track = _track_of(lat, info, f"latents file {latents}")
        source.tracked = True
    return source


def _track_of(latents: Latents, info: VideoInfo, origin: str) -> Any:
    """The alignment track a latents file carries (None: it was centre-cropped)."""
    if latents.alignment is None:
        return None
    from .align import Track

    track = Track.from_dict(latents.alignment, origin=origin)
    track.check(info, origin=origin)
    return track


# --- outputs -------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class OutputSpec:
    """One video to write: where, and the style token (1 × clip_dim) it is decoded with."""

    path: Path
    style: torch.Tensor
    prompt: str | None = None


@dataclass(frozen=True)
class AudioSpec:
    """The audio to copy: from ``path``, starting ``start`` seconds into it."""

    path: Path
    start: Fraction


@dataclass(frozen=True)
class OutputVideo:
    """A written output: its file, frame count, exact rate and duration, size, audio."""

    path: Path
    frames: int
    fps: Fraction
    duration: Fraction
    width: int
    height: int
    audio: bool
    prompt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "frames": self.frames,
            "fps": f"{self.fps.numerator}/{self.fps.denominator}",
            "duration": f"{self.duration.numerator}/{self.duration.denominator}",
            "seconds": round(float(self.duration), 6),
            "width": self.width,
            "height": self.height,
            "audio": self.audio,
            "prompt": self.prompt,
        }


def _exact_cfr(fps: Fraction) -> bool:
    """Whether ffmpeg keeps this constant rate exact without explicit timestamps: a rate whose
    terms pass 65535 (120000/1001) is otherwise rounded by the encoder's time base (to 120)."""
    return fps.numerator <= 65535 and fps.denominator <= 65535


class _StillWriter:
    """Writes a one-frame result as an image (PNG, JPEG...), atomically; VideoWriter's interface."""

    def __init__(self, path: Path, *, fps: Fraction, force: bool) -> None:
        self.path, self.fps = path, fps
        self._atomic = atomic_path(path, force=force)
        self._tmp = self._atomic.__enter__()
        self._frame: torch.Tensor | None = None
        self._result: WriteResult | None = None

    def write(self, frames: torch.Tensor) -> None:
        if self._frame is not None or frames.shape[0] != 1:
            raise VsodeError(f"{self.path} is an image: it takes exactly one frame")
        self._frame = frames[0]

    def close(self) -> WriteResult:
        if self._result is not None:
            return self._result
        from PIL import Image

        if self._frame is None:
            self.abort()
            raise VsodeError(f"no frame was written to {self.path}")
        pixels = self._frame.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        try:
            Image.fromarray(pixels).save(self._tmp, format=Image.registered_extensions()[self.path.suffix.lower()])
            self._atomic.__exit__(None, None, None)
        except BaseException as err:
            with contextlib.suppress(BaseException):
                self._atomic.__exit__(type(err), err, None)
            raise
        h, w = pixels.shape[:2]
        self._result = WriteResult(self.path, 1, self.fps, 1 / self.fps, w, h, False, False)
        return self._result

    def abort(self) -> None:
        if self._result is None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()


# --- timing --------------------------------------------------------------------------------------


class _Prefixed(Progress):
    """A view of a Progress that names its stages ``prefix + name`` (``invert encode``)."""

    def __init__(self, parent: Progress, prefix: str) -> None:
        super().__init__()
        self.parent, self.prefix = parent, prefix
        self.timings = parent.timings

    def stage(self, name: str, total: float | None = None, *, unit: str = "") -> Stage:
        return self.parent.stage(self.prefix + name, total, unit=unit)

    def log(self, message: str) -> None:
        self.parent.log(message)


@dataclass
class Clock:
    """Seconds and frames per pipeline stage (``frames / seconds`` is the stage's throughput)."""

    cuda: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, name: str, frames: int = 0) -> Iterator[None]:
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.frames[name] = self.frames.get(name, 0) + frames

    def to_dict(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, seconds in self.seconds.items():
            frames = self.frames.get(name, 0)
            out[name] = {"seconds": round(seconds, 4), "frames": frames}
            if frames and seconds > 0:
                out[name]["fps"] = round(frames / seconds, 2)
        return out


# --- the pipeline --------------------------------------------------------------------------------


@dataclass
class Trajectory:
    """A solved video: the ODE states at each distinct output τ (``rows × 1 × C × h × w``) and,
    per output frame, its row."""

    table: torch.Tensor
    index: torch.Tensor

    def states(self, frames: slice) -> torch.Tensor:
        """States of a run of output frames, ``1 × b × C × h × w``."""
        rows = self.index[frames].to(self.table.device)
        return self.table.index_select(0, rows).transpose(0, 1)


class Pipeline:
    """A loaded model and the stages that run it; one per application call.

    Build it with :meth:`load`. Stages: :meth:`content_code` (inversion), :meth:`encode`
    (dynamics), :meth:`solve`, :meth:`styles` and :meth:`render`.
    """

    def __init__(self, model: VidStyleODE, options: RenderOptions, device: torch.device,
                 progress: Progress | None = None) -> None:
        self.model = model
        self.options = options
        self.device = device
        self.progress = ensure(progress)
        self.clock = Clock(cuda=device.type == "cuda")
        self.bf16 = options.precision == "bf16" or (options.precision == "auto" and device.type == "cuda")
        self.nfe = 0

    @classmethod
    def load(cls, options: RenderOptions, *, need_encoder: bool, progress: Progress | None = None) -> "Pipeline":
        """Load ``options.model`` and the backbones its checkpoint names (the encoder only when an
        input still has to be inverted)."""
        progress = ensure(progress)
        device = resolve_device(options.device)
        kinds = ("generator", "clip") + (("encoder",) if need_encoder else ())
        clock = Clock(cuda=device.type == "cuda")
        with progress.stage("load model"), clock("load model"):
            model = load_model(options.model, device=device, cache_dir=options.cache_dir, backbones=kinds)
        for kind in kinds:
            try:
                model.backbone(kind)
            except InputError:
                fix = ("invert the input with `vsode invert --encoder NAME` and pass --latents"
                       if kind == "encoder" else f"it must name its {kind}; retrain or re-save it")
                raise InputError(f"model {options.model} names no {kind}; {fix}") from None
        pipe = cls(model, options, device, progress)
        pipe.clock.seconds.update(clock.seconds)
        return pipe

    @property
    def grid(self) -> tuple[int, int]:
        return self.model.config.dynamics.grid

    # --- content ---------------------------------------------------------------------------------

    def invert(self, source: Source) -> Latents:
        """Per-frame W+ of a source with the model's encoder (through the latents cache)."""
        model = self.model
        encoder = model.backbone("encoder")
        ref = model.backbone_refs.get("encoder") or {}
        name = self._encoder_name()
        gen_ref = model.backbone_refs.get("generator") or {}
        models = InversionModels(
            encoder=encoder,
            generator=model.generator,
            encoder_ref={"name": name, "sha256": ref.get("sha256") or name, "kind": encoder.kind},
            generator_ref={"name": gen_ref.get("name"), "sha256": gen_ref.get("sha256")},
        )
        with self.clock("invert", source.frame_count):
            latents = invert_video(source.path, self._invert_options(), models=models, info=source.info,
                                   progress=_Prefixed(self.progress, "invert "))
        source.track = _track_of(latents, source.info, f"the inversion of {source.path}")
        source.tracked = True
        return latents

    def _encoder_name(self) -> str:
        ref = self.model.backbone_refs.get("encoder") or {}
        return ref.get("name") or self.model.config.backbones.encoder or "encoder"

    def _invert_options(self) -> InvertOptions:
        options = self.options
        return InvertOptions(
            encoder=self._encoder_name(), batch_size=options.batch_size, device=str(self.device),
            precision="fp32", use_cache=options.use_cache, cache_dir=options.cache_dir,
            align=options.align, face_index=options.face_index,
        )

    def align(self, source: Source) -> None:
        """Track the face of a source that is not inverted (a driver, blend-motion's B), as the
        inversion would have (same mode, same encoder rules)."""
        if source.tracked:
            return
        with self.clock("align", source.frame_count):
            source.track = alignment_track(source.path, source.info, self._invert_options(),
                                           size=self.model.config.data_size[0],
                                           progress=_Prefixed(self.progress, f"align {source.role} "))
        source.tracked = True

    def content_code(self, source: Source) -> torch.Tensor:
        """z_C (n_latent × D) of a source: the mean (or first) of its frames' W+."""
        latents = source.latents if source.latents is not None else self.invert(source)
        cfg = self.model.config
        wplus = latents.wplus
        if wplus.ndim != 3 or tuple(wplus.shape[1:]) != (cfg.n_latent, cfg.style_dim):
            raise InputError(
                f"the latents of {source.path} are {tuple(wplus.shape[1:])} W+ codes but model "
                f"{self.options.model} takes {cfg.n_latent}x{cfg.style_dim}; invert it with the model's encoder "
                f"({cfg.backbones.encoder or 'see vsode models'})"
            )
        if source.latents is not None:
            want = (self.model.backbone_refs.get("encoder") or {}).get("sha256")
            if want and latents.encoder.get("sha256") not in (None, want):
                self.progress.log(f"note: {source.path}'s latents come from encoder {latents.encoder.get('name')}, "
                                  "not the one the model was trained with")
        code = wplus.mean(0) if self.options.content == "mean" else wplus[0]
        return code.to(self.device, torch.float32)

    # --- dynamics --------------------------------------------------------------------------------

    def encode(self, source: Source, content_code: torch.Tensor) -> VideoCode:
        """The VideoCode of a source: its dynamics encoded from its frames (the same crop as its
        inversion, at the training frames' size), streamed a batch at a time."""
        self.align(source)
        model, dyn = self.model, self.model.dynamics
        height, width = model.config.data_size
        n = source.frame_count
        seconds = [float(t) for t in source.times]
        feats = None
        done = 0
        with self.progress.stage(f"dynamics {source.role}", total=n, unit="frame") as stage, \
                self.clock("dynamics", n), torch.no_grad():
            with contextlib.closing(self._crops(source, (width, height))) as batches:
                for batch in batches:
                    frames = batch.frames.to(self.device, torch.float32) / 255  # b 3 H W in [0, 1]
                    f = dyn.features(frames[None])  # 1 b C h w
                    if feats is None:
                        feats = f.new_empty((1, n, *f.shape[2:]))
                    feats[:, done : done + f.shape[1]] = f
                    done += f.shape[1]
                    stage.advance(f.shape[1])
            if feats is None or done != n:
                raise VsodeError(f"{source.path}: decoded {done} of {n} frames for the dynamics")
            tau = model.normalise_times(seconds, seconds[0]).tolist()
            z_d0 = dyn.encode_features(feats, tau)[0]  # C h w
        assert tuple(z_d0.shape) == (dyn.config.state_channels, *self.grid), tuple(z_d0.shape)
        return VideoCode(content_code, z_d0, seconds[0], tuple(seconds))

    def _crops(self, source: Source, size: tuple[int, int]) -> Iterator[Any]:
        """Batches of the source's face crops (uint8): the aligned ones, else the centre square."""
        batch = self.options.batch_size
        if source.track is not None:
            from .align import crop_video

            return crop_video(source.path, source.track, size=size[1], batch_size=batch, info=source.info)
        return read_frames(source.path, batch_size=batch, size=size, crop=source.crop, info=source.info)

    def solve(self, code: VideoCode, times: FrameTimes) -> Trajectory:
        """The dynamics states at every output time, from one ``odeint`` call.

        τ = (t − t0) / time_unit with t on the video's clock; equal τ (in the state dtype) share a
        row. The apps only ask for times at or after the first frame (τ >= 0).
        """
        dyn = self.model.dynamics
        dtype = dyn.state_dtype
        tau = self.model.normalise_times(times.seconds(), code.t0).to(dtype).tolist()
        if min(tau) < 0:
            raise VsodeError(f"output time {float(times.start)} s is before the video's first frame")
        grid = sorted(set(tau) - {0.0})
        z0 = code.z_d0[None].to(self.device, dtype)  # 1 C h w
        before = dyn.nfe
        with self.progress.stage("solve"), self.clock("solve", len(times)), torch.no_grad():
            if grid:
                t = torch.tensor([0.0, *grid], dtype=dtype, device=self.device)
                table = dyn.integrate(z0, t)  # (1+G) 1 C h w; row 0 is z0 itself
            else:
                table = z0[None]
        self.nfe += dyn.nfe - before
        row = {0.0: 0} | {t: k + 1 for k, t in enumerate(grid)}
        return Trajectory(table, torch.tensor([row[t] for t in tau], dtype=torch.long))

    def tokens(self, trajectory: Trajectory, frames: slice,
               blend: tuple[Trajectory, torch.Tensor] | None = None) -> torch.Tensor:
        """Dynamics tokens of a run of output frames (b × hw × D); with ``blend=(other, mask)``
        the other trajectory's states inside the h×w mask: ``M·z_d^other + (1 − M)·z_d``."""
        states = trajectory.states(frames)  # 1 b C h w
        if blend is not None:
            other, mask = blend
            states = mask * other.states(frames) + (1 - mask) * states
        return self.model.dynamics.tokens(states)

    # --- style and rendering ---------------------------------------------------------------------

    def styles(self, content_code: torch.Tensor, options: EditOptions | None = None) -> list[torch.Tensor]:
        """One style token (1 × clip_dim) per prompt of ``options`` (or the unedited one):
        ``CLIP_I(G(z_C)) + α·(CLIP_T(target) − CLIP_T(source))``."""
        model = self.model
        with self.clock("style"), torch.no_grad():
            image = model.style_code(content_code[None])
            if options is None or not options.prompts:
                return [image]
            return [
                model.style_code(content_code[None], source=options.source, target=options.target(p),
                                 strength=options.strength, image_features=image)
                for p in options.prompts
            ]

    def audio(self, source: Source, times: FrameTimes) -> AudioSpec | None:
        """The source's audio lined up with the output's first frame (none past its end)."""
        if not self.options.keep_audio or not source.info.audio or times.start >= source.info.duration:
            return None
        return AudioSpec(source.path, source.info.start_time + times.start)

    def render(
        self,
        code: VideoCode,
        times: FrameTimes,
        outputs: Sequence[OutputSpec],
        *,
        blend: tuple[VideoCode, torch.Tensor] | None = None,
        audio: AudioSpec | None = None,
        canvas: Source | None = None,
    ) -> list[OutputVideo]:
        """Decode ``code`` at ``times`` into every output, one batch of frames at a time.

        ``blend=(other, mask)`` takes ``other``'s motion inside the mask (h×w weights in [0, 1]),
        ``code``'s elsewhere, at every time (its τ also counted from its own first frame).
        ``canvas``: the source whose frames the output's are (``times`` = its frame times); when
        it was aligned and ``crop_only`` is off, the crops are pasted back into its frames. All
        outputs are written or none is: on any error every file is removed.
        """
        model, options = self.model, self.options
        trajectory = self.solve(code, times)
        mixing = None
        if blend is not None:
            other, mask = blend
            h, w = self.grid
            mask = torch.as_tensor(mask, dtype=model.dynamics.state_dtype)
            if tuple(mask.shape) != (h, w):
                raise InputError(f"blend mask is {tuple(mask.shape)}; this model's dynamics grid is {h}x{w}")
            mixing = (self.solve(other, times), mask.to(self.device))
        generator = model.generator
        content = code.content_code[None].to(self.device)  # 1 n D
        dtype = torch.bfloat16 if self.bf16 else None
        n, batch = len(times), options.batch_size
        paste = self.pastes(canvas)
        if paste:
            assert canvas is not None and times.times == canvas.times, "paste-back needs the canvas's own frame times"
            size = (canvas.info.width, canvas.info.height)
        else:
            size = (generator.width, generator.resolution)
        writers: list[Any] = []
        done: list[Path] = []
        backgrounds = None
        try:
            for spec in outputs:
                writers.append(self._writer(spec.path, times, size, audio))
            if paste:
                backgrounds = read_frames(canvas.path, batch_size=batch, info=canvas.info)  # type: ignore[union-attr]
            with self.progress.stage("render", total=n * len(outputs), unit="frame") as stage, torch.no_grad():
                for start in range(0, n, batch):
                    frames = slice(start, min(start + batch, n))
                    count = frames.stop - frames.start
                    with self.clock("tokens", count):
                        tokens = self.tokens(trajectory, frames, mixing)
                    if backgrounds is not None:
                        with self.clock("paste", count):
                            background = next(backgrounds).frames  # b 3 H W uint8
                            assert background.shape[0] == count
                    for spec, writer in zip(outputs, writers):
                        with self.clock("modulation+mapper", count):
                            w = model.decode_w(tokens, content, spec.style.to(self.device))
                            assert tuple(w.shape) == (count, model.config.n_latent, model.config.style_dim)
                        with self.clock("synthesize", count):
                            images = generator.synthesize(w, noise="const", dtype=dtype).float()
                            images = ((images.clamp(-1, 1) + 1) / 2).cpu()
                        if backgrounds is not None:
                            from .align import PasteOptions, paste_back

                            with self.clock("paste", count):
                                quads = canvas.track.quads[frames]  # type: ignore[union-attr]
                                images = paste_back(background, images, quads, PasteOptions())
                        with self.clock("write", count):
                            writer.write(images)
                        stage.advance(count)
            if backgrounds is not None:
                backgrounds.close()
            results = []
            with self.clock("write"):
                for spec, writer in zip(outputs, writers):
                    results.append(writer.close())
                    done.append(spec.path)
        except BaseException:
            if backgrounds is not None:
                backgrounds.close()
            for writer in writers:
                with contextlib.suppress(Exception):
                    writer.abort()
            for path in done:
                path.unlink(missing_ok=True)
            raise
        return [
            OutputVideo(r.path, r.frames, r.fps, r.duration, r.width, r.height, r.audio, spec.prompt)
            for r, spec in zip(results, outputs)
        ]

    def pastes(self, canvas: Source | None) -> bool:
        """Whether outputs on ``canvas``'s frames are pasted back into them."""
        return canvas is not None and canvas.track is not None and not self.options.crop_only

    def _writer(self, path: Path, times: FrameTimes, size: tuple[int, int], audio: AudioSpec | None) -> Any:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return _StillWriter(path, fps=times.fps, force=self.options.force)
        return VideoWriter(
            path,
            fps=times.fps,
            width=size[0],
            height=size[1],
            timestamps=None if times.is_regular and _exact_cfr(times.fps) else times.offsets(),
            crf=self.options.crf,
            codec=_CODECS.get(path.suffix.lower(), "libx264"),
            audio_from=audio.path if audio else None,
            audio_start=audio.start if audio else 0,
            force=self.options.force,
        )
