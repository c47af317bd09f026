"""The applications' pipeline: the one place that knows the order of the stages.

::

    input video / image ──open_source (vsode.source)──► Source (frames, exact times, audio)
      │  └─ or a `vsode invert` latents file (--latents) in place of the inversion
      ├─ face crops (vsode.align.face_batches: the aligned track, else the centre square)
      │    ├─► inversion (vsode.invert, cached) ──► W+ per frame ──► content code z_C
      │    └─► dynamics features, one map per frame (the same decode as the inversion's)
    VideoCode(z_C, z_d0) = VidStyleODE.encode_video
    VidStyleODE.decode_many: one odeint call for every output time (Trajectory), then per batch
      of output frames: tokens ► modulation + mapper ► W+ per style
    ► generator ► [paste back into the source frames] ► VideoWriter / StillWriter per output

Passes over each input file (decodes by ffmpeg):

- an input that is inverted: one hash pass; with ``align`` on, one landmark pass (the track);
  one crop pass that feeds both the encoder and the dynamics encoder (two when the inversion is
  cached, the input was given as latents, or a centre square must be resized to two sizes);
- a driver or blend-motion's second video: the landmark pass and one crop pass;
- an output pasted back into its source's frames: one more decode of those frames;
- interpolate or blend-motion with the input's own detail (``--detail input``, their default): one
  more crop pass of the input (A), in step with the output times (:class:`InputDetail`).

Memory is bounded by the batch, not by the video: frames are decoded, encoded and written a batch
at a time; what grows with the length is one feature map per input frame, the W+ per input frame
and one ODE state per distinct output time (16 KB each for the demo model, 64 KB for ffhq).
Tokens are made per batch from the states, and several outputs of the same video (one per prompt)
share one solve and one pass over the batches.

When the output's frames are an input's frames (edit, animate, blend-motion) the generated crops
are put back into them at full resolution: through the inverse warp of an aligned face, or into
the centre square of one that is not aligned; ``crop_only`` writes the crop. Re-timed outputs
(interpolate, extrapolate) have no source frame at their new times and are always the crop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from .align import PasteOptions, face_batches, paste_back, paste_square
from .device import resolve_device
from .errors import InputError, VsodeError
from .invert import InversionModels, InvertOptions, Latents, alignment_track, invert_video
from .memory import EVERY as RELEASE_EVERY  # batches between two release() calls
from .memory import release
from .model import Anchor, VideoCode, VidStyleODE, content_code, load_model
from .model.free import NONE as NO_MODEL
from .model.free import load_free
from .options import DEFAULT_ENCODER, IMAGE_SUFFIXES, EditOptions, FrameTimes, RenderOptions
from .progress import Progress, ensure
from .source import Source
from .video import VideoWriter, read_frames
from .video.still import StillWriter

_CODECS = {".webm": "libvpx-vp9"}  # libx264 elsewhere
# The inputs whose inversion is tuned with --tune: the one the content comes from (edit,
# interpolate, extrapolate, blend-motion's A; animate's image). Drivers and B only lend motion.
TUNED_ROLES = ("input", "image")


def encoder_name(model: Any) -> str:
    """The encoder a VidStyleODE model inverts its inputs with: the one its file references, else
    its config's."""
    ref = model.backbone_refs.get("encoder") or {}
    return ref.get("name") or model.config.backbones.encoder or "encoder"
# Below this reconstruction PSNR of a first frame the demo world's encoder is not looking at the
# demo world (Pipeline.note_real_face)
DEMO_WORLD_DB = 20.0


@dataclass(frozen=True)
class OutputSpec:
    """One video to write: where, the style token (1 × clip_dim) it is decoded with, and the W+
    offset an optimised edit adds (:mod:`vsode.optimize`)."""

    path: Path
    style: torch.Tensor
    prompt: str | None = None
    offset: torch.Tensor | None = None  # n_latent × D added to every W+ (edit --optimize)


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


def swap_generator(model: VidStyleODE, name: str, *, label: str, cache_dir: Any = None,
                   progress: Progress | None = None) -> Any:
    """The StyleGAN2 ``name`` (registry name or file) to render ``model``'s W+ with, checked to take
    the same W+ layout (rows × width; the resolution may differ). A registered fine-tune of another
    base generator than the model's is used with a note."""
    from .checkpoints import REGISTRY
    from .model import load_backbone

    generator = load_backbone("generator", name, cache_dir=cache_dir)
    cfg = model.config
    own = model.generator
    if (generator.n_latent, generator.style_dim) != (cfg.n_latent, cfg.style_dim):
        base = (model.backbone_refs.get("generator") or {}).get("name") or cfg.backbones.generator
        raise InputError(
            f"generator {name} has a {generator.n_latent}×{generator.style_dim} W+ layout "
            f"({generator.resolution}×{generator.width} px) but model {label} renders {cfg.n_latent}×{cfg.style_dim} "
            f"W+ ({base}, {own.resolution}×{own.width} px); give a generator fine-tuned from {base}"
        )
    if name in REGISTRY:
        entry = REGISTRY.get(name)
        base = (model.backbone_refs.get("generator") or {}).get("name") or cfg.backbones.generator
        if entry.base is not None and base is not None and entry.base != base:
            ensure(progress).note(f"note: generator {name} was fine-tuned from {entry.base}, not from {base}, "
                                 "the model's; its W space may differ")
    return generator.eval()


def _exact_cfr(fps: Fraction) -> bool:
    """Whether ffmpeg keeps this constant rate exact without explicit timestamps: a rate whose
    terms pass 65535 (120000/1001) is otherwise rounded by the encoder's time base (to 120)."""
    return fps.numerator <= 65535 and fps.denominator <= 65535


# --- the pipeline --------------------------------------------------------------------------------



class InputDetail:
    """The input's own per-frame detail that its inversions miss, ``R_k = crop_k − G(w_inv,k)``
    (frames in [0, 1] at the generator's size, rendered by the pipeline's renderer, tuned or not),
    lerped in time between the input frames around each output time and held past the ends
    (:func:`vsode.model.anchor.neighbours`). Added to an anchored render, an input frame comes out
    as itself at its own time, and the frames between carry the detail of their neighbours.

    Streamed: the crops are decoded in order as the output times ask for them, and only the
    frames still ahead are kept, so memory does not grow with the video (output times increase).
    """

    def __init__(self, pipe: "Pipeline", source: Source, wplus: torch.Tensor) -> None:
        if wplus.shape[0] != source.frame_count:
            raise VsodeError(f"{source.path}: {wplus.shape[0]} inversions for {source.frame_count} frames")
        self._pipe = pipe
        self._wplus = wplus
        self._seconds = torch.tensor([float(t) for t in source.times], dtype=torch.float64)
        self._dtype = torch.bfloat16 if pipe.bf16 else None
        generator = pipe.renderer
        pipe.align(source)
        self._batches = face_batches(source.path, source.info, source.track,
                                     sizes=[(generator.width, generator.resolution)],
                                     batch_size=pipe.options.batch_size)
        self._kept: dict[int, torch.Tensor] = {}
        self._decoded = 0

    def _decode(self, upto: int) -> None:
        while self._decoded <= upto:
            batch, (crops,) = next(self._batches)
            index = list(batch.indices)
            with torch.no_grad():
                renders = self._pipe._synthesize(self._wplus[index].to(self._pipe.device, torch.float32), self._dtype)
            images = crops.float() / 255
            if images.shape != renders.shape:
                raise VsodeError(f"--detail input: the input's crops are {tuple(images.shape[1:])} but the generator "
                                 f"renders {tuple(renders.shape[1:])}; use a square generator or --detail none")
            for j, k in enumerate(index):
                self._kept[k] = images[j] - renders[j]
            self._decoded = index[-1] + 1

    def at(self, seconds: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """``R̃(t)`` at each of ``seconds`` (increasing from call to call): b × 3 × H × W."""
        from .model.anchor import neighbours

        left, right, weight, _ = neighbours(self._seconds, torch.as_tensor(seconds, dtype=torch.float64))
        self._decode(int(right.max()))
        for k in [k for k in self._kept if k < int(left.min())]:
            del self._kept[k]
        return torch.stack([(1 - a) * self._kept[int(i)] + a * self._kept[int(j)]
                            for i, j, a in zip(left, right, weight.float().tolist())])

    def close(self) -> None:
        self._batches.close()  # type: ignore[attr-defined]
        self._kept.clear()


class Pipeline:
    """A loaded model and the stages that run it; one per application call.

    Build it with :meth:`load`. Stages: :meth:`content_code` (inversion), :meth:`encode`
    (content code and dynamics from one crop pass), :meth:`styles` and :meth:`render` (the
    model's decode, synthesis, paste-back and writing). ``progress`` is the call's own view:
    its :meth:`~vsode.progress.Progress.report` is the result's per-stage timings.
    """

    def __init__(self, model: VidStyleODE, options: RenderOptions, device: torch.device,
                 progress: Progress | None = None) -> None:
        from .device import use_bf16

        self.model = model
        self.options = options
        self.device = device
        self.progress = ensure(progress)  # the call's own view (Progress.scoped), made by load
        if device.type == "cuda":
            self.progress.synchronize = torch.cuda.synchronize
        self.bf16 = use_bf16(options.precision, device)
        self.nfe = 0
        self._base_styles: dict[tuple, torch.Tensor] = {}
        # what renders the output's W+: the model's generator, the one --generator swaps in, or a
        # copy of the model's tuned on the content input (--tune); the style code and the
        # inversions always use the model's own
        self.renderer = model.generator
        self.tuning: dict[str, Any] | None = None  # the tuning report of a tuned renderer
        self._first_crop: torch.Tensor | None = None  # 1 × 3 × h × w uint8: the first face crop encoded

    @classmethod
    def load(cls, options: RenderOptions, *, need_encoder: bool, progress: Progress | None = None) -> "Pipeline":
        """Load ``options.model`` and the backbones its checkpoint names (the encoder only when an
        input still has to be inverted)."""
        device = resolve_device(options.device)
        kinds = ("generator", "clip") + (("encoder",) if need_encoder else ())
        scope = ensure(progress).scoped()
        label = options.model
        if options.model == NO_MODEL:  # published weights alone (vsode.model.free): edit --optimize
            if not getattr(options, "optimize", 0) or not getattr(options, "prompt_required", False):
                raise InputError("--model none runs only `vsode edit --optimize N` (the other commands need a "
                                 "VidStyleODE model's dynamics); give --model NAME")
            with scope.stage("load model"):
                model: Any = load_free(getattr(options, "encoder", None), getattr(options, "clip", None),
                                       device=device, cache_dir=options.cache_dir)
            label = "none (the encoder's decoder)"
        else:
            with scope.stage("load model"):
                model = load_model(options.model, device=device, cache_dir=options.cache_dir, backbones=kinds)
            for kind in kinds:
                try:
                    model.backbone(kind)
                except InputError:
                    fix = ("invert the input with `vsode invert --encoder NAME` and pass --latents (a driver, "
                           "blend-motion's B or generate's --motion is inverted unless --anchor none)"
                           if kind == "encoder" else f"it must name its {kind}; retrain or re-save it")
                    raise InputError(f"model {options.model} names no {kind}; {fix}") from None
        pipe = cls(model, options, device, scope)
        if options.generator is not None:
            with scope.stage("load generator"):
                pipe.renderer = swap_generator(model, options.generator, label=label,
                                               cache_dir=options.cache_dir, progress=scope).to(device)
        return pipe

    @property
    def free(self) -> bool:
        """Whether no VidStyleODE runs (``--model none``): the W+ are the inversions themselves."""
        return self.options.model == NO_MODEL

    @property
    def grid(self) -> tuple[int, int]:
        return self.model.config.dynamics.grid

    # --- faces and content -----------------------------------------------------------------------

    def invert(self, source: Source, also: Any = None) -> Latents:
        """Per-frame W+ of a source with the model's encoder (through the latents cache); ``also``
        as :func:`vsode.invert.invert_video`'s."""
        model = self.model
        encoder = model.backbone("encoder")
        ref = model.backbone_refs.get("encoder") or {}
        gen_ref = model.backbone_refs.get("generator") or {}
        models = InversionModels(
            encoder=encoder,
            generator=model.generator,
            encoder_ref={"name": self._encoder_name(), "sha256": ref.get("sha256"), "kind": encoder.kind},
            generator_ref={"name": gen_ref.get("name"), "sha256": gen_ref.get("sha256")},
        )
        with self.progress.stage("invert", frames=source.frame_count):
            latents = invert_video(source.path, self._invert_options(tune=source.role in TUNED_ROLES), models=models,
                                   info=source.info, progress=self.progress.scoped("invert "), also=also)
        source.set_track(latents.track, f"the inversion of {source.path}")
        source.inversion = latents
        return latents

    def _encoder_name(self) -> str:
        return encoder_name(self.model)

    def _invert_options(self, tune: bool = False) -> InvertOptions:
        options = self.options
        return InvertOptions(
            encoder=self._encoder_name(), batch_size=options.batch_size, device=str(self.device),
            # the encoder's bf16 fast path keeps W+ within 5e-2 (relative L2) of fp32: tests/test_invert.py
            precision=options.precision, use_cache=options.use_cache, cache_dir=options.cache_dir,
            align=options.align, face_index=options.face_index, tune=options.tune if tune else 0,
            seed=options.seed,
        )

    def align(self, source: Source) -> None:
        """Track the face of a source that is not inverted (a driver, blend-motion's B), as the
        inversion would have (same mode, same encoder rules)."""
        if source.tracked:
            return
        with self.progress.stage("align", frames=source.frame_count):
            track = alignment_track(source.path, source.info, self._invert_options(),
                                    size=self.model.config.data_size[0],
                                    progress=self.progress.scoped(f"align {source.role} "))
        source.set_track(track, f"the alignment of {source.path}")

    def content_code(self, source: Source, latents: Latents | None = None) -> torch.Tensor:
        """z_C (n_latent × D) of a source: the mean (or first) of its frames' W+ (``latents``, else
        the source's latents file, else its inversion)."""
        latents = latents or source.latents or self.invert(source)
        cfg = self.model.config
        wplus = latents.wplus
        if wplus.ndim != 3 or tuple(wplus.shape[1:]) != (cfg.n_latent, cfg.style_dim):
            raise InputError(
                f"the latents of {source.path} are {tuple(wplus.shape[1:])} W+ codes but model "
                f"{self.options.model} takes {cfg.n_latent}x{cfg.style_dim}; invert it with the model's encoder "
                f"({cfg.backbones.encoder or 'see vsode models'})"
            )
        if source.role in TUNED_ROLES:
            self._use_tuning(source, latents)
        if source.latents is not None:
            want = (self.model.backbone_refs.get("encoder") or {}).get("sha256")
            if want and latents.encoder.get("sha256") not in (None, want):
                self.progress.note(f"note: {source.path}'s latents come from encoder {latents.encoder.get('name')}, "
                                  "not the one the model was trained with")
        return content_code(wplus, self.options.content).to(self.device, torch.float32)

    def _use_tuning(self, source: Source, latents: Latents) -> None:
        """Render with the generator tuned on the content input, when its latents carry tuning."""
        if latents.tuning is None:
            if self.options.tune and source.latents is not None:
                self.progress.note(f"note: --tune is not applied to --latents {source.path}; "
                                  "tune with `vsode invert --tune N` and pass that file")
            return
        if self.options.generator is not None:
            raise InputError(f"--generator {self.options.generator} cannot render a tuned inversion (the tuning is of "
                             "the model's own generator); drop --tune (or the tuned --latents) or --generator")
        self.renderer = latents.tuned_generator(self.model.generator).to(self.device)
        self.tuning = {k: latents.tuning.get(k) for k in ("steps", "frames", "psnr_before_db", "psnr_after_db",
                                                          "seconds_per_step")}

    # --- dynamics --------------------------------------------------------------------------------

    def encode(self, source: Source, content: torch.Tensor | None = None) -> VideoCode:
        """The VideoCode of a source: ``content`` (default: the source's own content code) and its
        dynamics, encoded from its face crops at the training frames' size a batch at a time.

        When the source is inverted here, the inversion's decode also feeds the dynamics encoder,
        so the input is decoded once for both; otherwise one crop pass of its own."""
        height, width = self.model.config.data_size
        size = (width, height)
        n = source.frame_count
        batches: list[torch.Tensor] = []  # dynamics features, one map per frame (no frames kept)
        dyn = self.model.dynamics
        with self.progress.stage(f"dynamics {source.role}", total=n, unit="frame", frames=n) as stage, \
                torch.no_grad():
            def features(crops: torch.Tensor) -> None:
                if self._first_crop is None:
                    self._first_crop = crops[:1].clone()  # for note_real_face, without another decode
                with self.progress.timed("dynamics", crops.shape[0]):
                    frames = crops.to(self.device, torch.float32) / 255  # b 3 H W in [0, 1]
                    batches.append(dyn.features(frames[None])[0])  # b C h w
                stage.advance(frames.shape[0])

            if content is None:
                latents = source.latents
                if latents is None:
                    latents = self.invert(source, also=(size, features))
                content = self.content_code(source, latents)
            if sum(b.shape[0] for b in batches) != n:  # not shared: a crop pass of its own
                batches.clear()
                self.align(source)
                for _, (crops,) in face_batches(source.path, source.info, source.track, sizes=[size],
                                                batch_size=self.options.batch_size):
                    features(crops)
            done = sum(b.shape[0] for b in batches)
            if done != n:
                raise VsodeError(f"{source.path}: decoded {done} of {n} frames for the dynamics")
            seconds = [float(t) for t in source.times]
            with self.progress.timed("dynamics"):
                code = self.model.encode_video(iter(batches), seconds, content_code=content, features=True)
        batches.clear()
        release()  # the feature maps and the ODE-GRU's transients (vsode.memory)
        return code

    # --- style and rendering ---------------------------------------------------------------------

    def base_style(self, content_code: torch.Tensor) -> torch.Tensor:
        """The unedited style token of a content code, ``CLIP_I(G(z_C))`` (1 × clip_dim), made once."""
        key = (content_code.data_ptr(), tuple(content_code.shape))
        if key not in self._base_styles:
            with self.progress.timed("style"), torch.no_grad():
                self._base_styles[key] = self.model.style_code(content_code[None])
        return self._base_styles[key]

    def styles(self, content_code: torch.Tensor, options: EditOptions | None = None) -> list[torch.Tensor]:
        """One style token (1 × clip_dim) per prompt of ``options`` (or the unedited one):
        ``CLIP_I(G(z_C)) + α·(CLIP_T(target) − CLIP_T(source))``."""
        model = self.model
        image = self.base_style(content_code)
        if options is None or not options.prompts:
            return [image]
        with self.progress.timed("style"), torch.no_grad():
            return [
                model.style_code(content_code[None], source=options.source, target=options.target(p),
                                 strength=options.strength, image_features=image)
                for p in options.prompts
            ]

    def anchor(self, code: VideoCode, wplus: torch.Tensor, seconds: Sequence[float], *,
               at: FrameTimes | None = None) -> Anchor | None:
        """The :class:`~vsode.model.Anchor` of ``code`` on the inversions ``wplus`` at ``seconds``
        (its frames' times), or None with ``anchor="none"`` (the paper's reconstruction). ``at``:
        the output times when ``code`` itself is rendered with it (see ``VidStyleODE.anchor``)."""
        if self.options.anchor == "none":
            return None
        with self.progress.stage("anchor", frames=len(seconds)):
            return self.model.anchor(code, wplus.to(self.device, torch.float32), seconds,
                                     self.base_style(code.content_code),
                                     at=None if at is None else at.seconds(), batch_size=self.options.batch_size,
                                     dtype=torch.bfloat16 if self.bf16 else None)

    def input_detail(self, source: Source, mode: str) -> InputDetail | None:
        """The :class:`InputDetail` of an inverted source for :meth:`render` when ``mode`` (an
        options' ``detail_mode``) is ``input``, else None."""
        if mode != "input":
            return None
        latents = source.known_latents
        if latents is None:
            raise VsodeError(f"{source.path} has no per-frame W+ to take its detail against")
        return InputDetail(self, source, latents.wplus)

    def source_anchor(self, code: VideoCode, source: Source, *, at: FrameTimes | None = None) -> Anchor | None:
        """The anchor of a source's own code on its own per-frame W+ (``at`` as :meth:`anchor`'s)."""
        latents = source.known_latents
        if latents is None:
            raise VsodeError(f"{source.path} has no per-frame W+ to anchor on")
        return self.anchor(code, latents.wplus, [float(t) for t in source.times], at=at)

    def motion_anchor(self, code: VideoCode, driver: Source, *, at: FrameTimes,
                      reference: str | None = None) -> Anchor | None:
        """The anchor that moves ``code``'s content (animate's portrait) as ``driver`` moves: its
        inversions' offsets from a reference pose, in the W+ rows the dynamics drive (coarse and
        medium; the fine rows hold colour and texture and stay the portrait's), put on the
        portrait's code. Rendered with it, ``w'(t) = z_P + w_D(t) − r_D + M(s_out, t) − M(s_P, t)``:
        the driver's own motion, and an edit's change of style from the model (none unedited).
        ``reference`` (:func:`vsode.model.anchor.motion_reference`; None: ``matched``) picks
        ``r_D``: the driver's pose nearest the portrait's, or its first frame (the first frame
        unedited is then the portrait's code exactly). None with ``anchor="none"`` (the paper's
        animate, the model's motion alone). ``at``: the output times (the driver's frames)."""
        from .model.anchor import motion_reference

        if self.options.anchor == "none":
            return None
        latents = driver.known_latents
        if latents is None:
            raise VsodeError(f"{driver.path} has no per-frame W+ to anchor on")
        wplus = latents.wplus.to(self.device, torch.float32)
        content = code.content_code.to(self.device, torch.float32)
        fine = set(self.model.config.mapper.group_rows()[2])
        moving = [r for r in range(wplus.shape[1]) if r not in fine]
        offsets = wplus - motion_reference(wplus, content, moving, reference or "matched")[None]
        offsets[:, sorted(fine)] = 0  # fine rows: the portrait's own
        return self.anchor(code, content[None] + offsets, [float(t) for t in driver.times], at=at)

    def optimise(self, code: VideoCode, source: Source, styles: Sequence[torch.Tensor], anchor: Anchor,
                 options: Any) -> list[tuple[torch.Tensor, dict[str, Any]]]:
        """``edit --optimize``: per prompt of ``options`` (an EditOptions), the W+ offset
        (n_latent × D) that moves the edit towards its text, found by :func:`vsode.optimize.optimise_edit`
        on the source's frames as they would be rendered (its inversions, plus the model's edit),
        with the generator that renders them; and its report."""
        from .optimize import frame_indices, optimise_edit

        latents = source.known_latents
        if latents is None:
            raise VsodeError(f"{source.path} has no per-frame W+ to optimise an edit on")
        picks = frame_indices(latents.wplus.shape[0])
        reference = latents.wplus[picks].to(self.device, torch.float32)  # K n D: the unedited frames
        seconds = [float(source.times[int(k)]) for k in picks]
        if self.free:
            starts = [reference for _ in styles]
        else:  # the model's anchored edit of the same frames (all anchor frames: exact)
            with torch.no_grad():
                batches = list(self.model.decode_many(code, seconds, styles, anchor=anchor, batch_size=len(seconds)))
            starts = [torch.cat([ws[k] for _, ws in batches]) for k in range(len(styles))]
        clip = self.model.clip
        out = []
        for prompt, start in zip(options.prompts, starts):
            with torch.enable_grad():
                report = optimise_edit(self.renderer, clip, start, options.source, options.target(prompt),
                                       steps=options.optimize, layers=options.layers, seed=options.seed,
                                       refine=options.refine,
                                       reference=reference, dtype=torch.bfloat16 if self.bf16 else None,
                                       progress=self.progress, label=f"optimize {prompt}")
            out.append((report.wplus_offset(self.renderer.n_latent), {"prompt": prompt, **report.to_dict()}))
        return out

    def note_real_face(self, source: Source) -> bool:
        """With the demo world's encoder (the demo model), note on a source that looks like real
        footage: the encoder reconstructs its first frame below :data:`DEMO_WORLD_DB` (demo clips
        reconstruct at 29-31 dB, a photograph at 8-12 dB) and a face detector finds a face in it.
        The note names the real-face path. Returns whether it was given. Reads the first crop the
        dynamics encoder saw (no decode) and, only below that PSNR, decodes the first frame for the
        detector."""
        if self.free or self._encoder_name() != DEFAULT_ENCODER or source.known_latents is None:
            return False
        generator = self.model.generator
        side = generator.resolution
        crops = self._first_crop
        if crops is None:
            crops = next(face_batches(source.path, source.info, source.track, sizes=[(side, side)], batch_size=1))[1][0]
        from .tune import psnr_db

        with torch.no_grad():
            w = source.known_latents.wplus[:1].to(self.device, torch.float32)
            image = generator.synthesize(w, noise="const").clamp(-1, 1).cpu()  # [-1, 1]
        crop = torch.nn.functional.interpolate(crops.float() / 255, size=image.shape[-2:], mode="area") * 2 - 1
        psnr = psnr_db(image, crop)
        if psnr >= DEMO_WORLD_DB:
            return False
        try:
            from .align.landmarks import MTCNNLandmarker

            frame = next(read_frames(source.path, batch_size=1, info=source.info)).frames
            faces = MTCNNLandmarker("cpu").detect(frame)[0]
        except VsodeError:  # no detector installed: say nothing
            return False
        if not faces:
            return False
        self.progress.note(f"note: {source.path} shows a real face, which the demo model cannot render (its inversion "
                          f"reconstructs at {psnr:.1f} dB); edit real faces with `vsode edit --model none --optimize 12` "
                          "after `vsode download e4e-ffhq-encode` and `vsode download clip-vit-b-32 --allow-unverified`")
        return True

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
        anchor: Anchor | None = None,
        inset: tuple[VideoCode, Anchor | None, torch.Tensor] | None = None,
        audio: AudioSpec | None = None,
        canvas: Source | None = None,
        detail: InputDetail | None = None,
    ) -> list[OutputVideo]:
        """Decode ``code`` at ``times`` into every output, one batch of frames at a time.

        ``blend=(other, mask)`` takes ``other``'s motion inside the mask (h×w weights in [0, 1]),
        ``code``'s elsewhere, at every time (its τ also counted from its own first frame).
        ``anchor``: the W+ are anchored on it (:meth:`anchor`). ``inset=(other, its anchor,
        mask)``: ``other`` is rendered too, with the same styles, and put over each frame with the
        pixel ``mask`` (the generator's H×W weights in [0, 1]; blend-motion's anchored form).
        ``canvas``: the source whose frames the output's are (``times`` = its frame times); unless
        ``crop_only``, the crops are pasted back into its frames. ``detail``: the input's own
        detail (:class:`InputDetail`) added to every rendered frame (with an ``inset``, outside its
        mask only). All outputs are written or
        none is: on any error every file is removed (and ``detail`` is closed either way).
        """
        model, options = self.model, self.options
        if self.model.normalise_times([float(times.start)], code.t0)[0] < 0:
            raise VsodeError(f"output time {float(times.start)} s is before the video's first frame")
        generator = self.renderer
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
        nfe = model.dynamics.nfe
        try:
            for spec in outputs:
                writers.append(self._writer(spec.path, times, size, audio))
            if paste:
                backgrounds = read_frames(canvas.path, batch_size=batch, info=canvas.info)  # type: ignore[union-attr]
            styles = [spec.style.to(self.device) for spec in outputs]
            offsets = [None if spec.offset is None else spec.offset.to(self.device, torch.float32) for spec in outputs]
            decoded = model.decode_many(code, times.seconds(), styles, blend=blend, anchor=anchor,
                                        batch_size=batch, dtype=dtype, progress=self.progress)
            insets = None
            if inset is not None:
                inset_code, inset_anchor, inset_mask = inset
                insets = model.decode_many(inset_code, times.seconds(), styles, anchor=inset_anchor,
                                           batch_size=batch, dtype=dtype, progress=self.progress)
            with contextlib.closing(decoded), contextlib.closing(insets) if insets else contextlib.nullcontext(), \
                    self.progress.stage("render", total=n * len(outputs), unit="frame") as stage, torch.no_grad():
                for k, (frames, ws) in enumerate(decoded):
                    count = frames.stop - frames.start
                    if k % RELEASE_EVERY == 0:
                        release()  # what the solve, the last stage or the last batches freed (vsode.memory)
                    inset_ws = next(insets)[1] if insets is not None else [None] * len(ws)
                    if backgrounds is not None:
                        with self.progress.timed("paste", count):
                            background = next(backgrounds).frames  # b 3 H W uint8
                            assert background.shape[0] == count
                    residual = None
                    if detail is not None:
                        with self.progress.timed("detail", count):
                            residual = detail.at(times.seconds()[frames])
                    for w, w_inset, writer, offset in zip(ws, inset_ws, writers, offsets):
                        if offset is not None:
                            w = w + offset
                        with self.progress.timed("synthesize", count):
                            images = self._synthesize(w, dtype)
                            if w_inset is not None:
                                m = inset_mask.to(images.dtype)  # type: ignore[union-attr]
                                images = m * self._synthesize(w_inset, dtype) + (1 - m) * images
                            if residual is not None:  # with an inset, outside it only (blend-motion: A's own)
                                keep = 1 - inset_mask.to(images.dtype) if w_inset is not None else 1  # type: ignore[union-attr]
                                images = (images + keep * residual).clamp(0, 1)
                        if backgrounds is not None:
                            with self.progress.timed("paste", count):
                                images = self._paste(canvas, background, images, frames)  # type: ignore[arg-type]
                        with self.progress.timed("write", count):
                            writer.write(images)
                        stage.advance(count)
            if backgrounds is not None:
                backgrounds.close()
            results = []
            with self.progress.timed("write"):
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
        finally:
            self.nfe += model.dynamics.nfe - nfe
            if detail is not None:
                detail.close()
        return [
            OutputVideo(r.path, r.frames, r.fps, r.duration, r.width, r.height, r.audio, spec.prompt)
            for r, spec in zip(results, outputs)
        ]

    def _synthesize(self, w: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        """G(W+) as frames in [0, 1] on the CPU."""
        images = self.renderer.synthesize(w, noise="const", dtype=dtype).float()
        return ((images.clamp(-1, 1) + 1) / 2).cpu()

    def pixel_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """A mask on the dynamics grid as the generator's H×W pixel weights (bilinear, so its edges
        fall off over a cell)."""
        g = self.renderer
        grid = self.model.check_blend_mask(mask).float()[None, None]
        return torch.nn.functional.interpolate(grid, size=(g.resolution, g.width), mode="bilinear",
                                               align_corners=False)[0, 0].clamp(0, 1)

    def pastes(self, canvas: Source | None) -> bool:
        """Whether outputs on ``canvas``'s frames are pasted back into them (always, unless
        ``crop_only``: an aligned face through its track, any other into its centre square)."""
        return canvas is not None and not self.options.crop_only

    @staticmethod
    def _paste(canvas: Source, background: torch.Tensor, images: torch.Tensor, frames: slice) -> torch.Tensor:
        if canvas.track is None:
            return paste_square(background, images, canvas.crop)
        return paste_back(background, images, canvas.track.quads[frames], PasteOptions())

    def _writer(self, path: Path, times: FrameTimes, size: tuple[int, int], audio: AudioSpec | None) -> Any:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return StillWriter(path, fps=times.fps, force=self.options.force)
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
