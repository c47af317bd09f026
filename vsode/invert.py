"""Video → W+ latents: the encoder pass, optional refinement, the latents file and its cache.

A latents file is self-describing (STYLE habit 2) and loads with ``weights_only=True``::

    {"format": "vsode/latents@1",
     "wplus": T×n_latent×512 float32, "times": [[num, den], ...] seconds, "fps": "num/den",
     "frame_count": T, "size": [w, h] (source display size), "crop": [x, y, w, h],
     "source": {"path", "sha256"}, "encoder": {"name", "kind", "sha256"},
     "generator": {"name", "sha256"}, "refine": {"steps", "lr"}, "alignment": None}

Faces are FFHQ-aligned first (:mod:`vsode.align`: MTCNN landmarks, a smoothed per-frame quad)
and the latents file keeps the track in ``alignment`` so later stages crop and paste back the
same way. ``align="off"`` (``--no-align``) centre-crops a square instead, which is right for
footage that is already aligned; ``"auto"`` (the default) aligns unless the encoder is one whose
world needs none (the demo built-ins), and falls back to the centre square, saying so, when no
face is found in any frame.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .checkpoints.cache import Cache, resolve, sha256_file
from .checkpoints.load import safe_load
from .checkpoints.registry import REGISTRY
from .device import resolve_device, use_bf16
from .encoders import Encoder, load_encoder, preprocess
from .align.faces import center_square, face_batches, face_track, shares_decode
from .align.options import AlignOptions
from .align.track import Track
from .errors import InputError
from .options import ALIGN_MODES, DEFAULT_ENCODER, PRECISIONS, FrameTimes
from .fileio import check_output_path, save_torch
from .memory import EVERY as RELEASE_EVERY  # batches between two release() calls
from .memory import release
from .progress import Progress, ensure
from .stylegan2 import Generator, load_generator
from .tune import BATCH as TUNE_BATCH
from .tune import DEFAULT_LR as DEFAULT_TUNE_LR
from .tune import TuneSettings, apply_tuned, fingerprint, pivot_indices, tune_generator, tuned_checkpoint
from .video import VideoInfo, VideoWriter, probe

LATENTS_FORMAT = "vsode/latents@1"
# Bumped when the frames handed to the encoder change for the same input (crop policy, resize).
_PREPROCESS_VERSION = 2


@dataclass(frozen=True)
class InvertOptions:
    """How to invert a video; validated on construction (STYLE habit 7).

    Attributes:
        encoder: registry name or path of a pSp/e4e checkpoint.
        generator: registry name or path of a StyleGAN2 checkpoint for refinement and previews;
            ``None`` uses the encoder checkpoint's own decoder.
        batch_size: frames per encoder/generator batch; bounds memory.
        refine: latent-optimisation steps per frame after the encoder (0 = none).
        refine_lr: Adam learning rate of the refinement.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32`` (reference), ``bf16`` (autocast fast path) or ``auto`` (bf16 on CUDA).
        use_cache: reuse and store latents in the cache, keyed by input hash and models.
        cache_dir: cache root (default ``$VSODE_CACHE_DIR`` or the user cache folder).
        align: ``auto``, ``on`` (fail when no face is found) or ``off`` (centre square).
        face_index: which face to follow when there are several (0 = the largest).
        sigma_center, sigma_scale: temporal smoothing of the alignment track (frames).
        track: a saved alignment track (``vsode align --save-track``) to use instead of detecting.
        tune: pivotal-tuning steps after the inversion (0 = none): a copy of the generator is
            fine-tuned around the frames' codes (:mod:`vsode.tune`) and stored with the latents.
        tune_lr: its Adam learning rate.
        seed: seeds tuning's sampling of frames and codes (None: 0).
    """

    encoder: str = DEFAULT_ENCODER
    generator: str | None = None
    batch_size: int = 8
    refine: int = 0
    refine_lr: float = 0.01
    device: str = "auto"
    precision: str = "fp32"
    use_cache: bool = True
    cache_dir: Path | None = None
    align: str = "auto"
    face_index: int = 0
    sigma_center: float = 1.0
    sigma_scale: float = 3.0
    track: Path | None = None
    tune: int = 0
    tune_lr: float = DEFAULT_TUNE_LR
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.align not in ALIGN_MODES:
            raise InputError(f"align {self.align!r} is not one of {', '.join(ALIGN_MODES)}")
        if self.face_index < 0:
            raise InputError(f"--face-index {self.face_index} must be 0 (largest) or more")
        if self.sigma_center < 0 or self.sigma_scale < 0:
            raise InputError("--sigma-center and --sigma-scale must be 0 or more frames")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size} must be at least 1")
        if self.refine < 0:
            raise InputError(f"--refine {self.refine} must be 0 or more steps")
        if not self.refine_lr > 0:
            raise InputError(f"--refine-lr {self.refine_lr} must be positive")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        self.tune_settings()  # --tune's own checks

    def tune_settings(self) -> TuneSettings:
        """The pivotal tuning these options ask for (``steps`` 0: none)."""
        return TuneSettings(steps=self.tune, lr=self.tune_lr, batch_size=min(self.batch_size, TUNE_BATCH),
                            seed=self.seed or 0)


@dataclass
class Latents:
    """Per-frame W+ codes of a video and everything needed to map them back to it."""

    wplus: torch.Tensor  # T n_latent 512, float32 on the CPU
    times: list[Fraction]
    fps: Fraction
    size: tuple[int, int]
    crop: tuple[int, int, int, int]
    source: dict[str, Any]
    encoder: dict[str, Any]
    generator: dict[str, Any]
    refine: dict[str, Any] = field(default_factory=lambda: {"steps": 0, "lr": 0.0})
    track: Track | None = None  # the face's alignment; None: the centre square ``crop``
    # Pivotal tuning: the record stored in the file (settings, PSNRs, ``file`` and ``sha256`` of
    # the tuned weights beside it), or None; ``tuned`` holds those weights' checkpoint once read.
    tuning: dict[str, Any] | None = None
    tuned: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.track, dict):  # the serialised form, from a file or a worker process
            self.track = Track.from_dict(self.track, origin="latents")
        if self.wplus.ndim != 3 or self.wplus.shape[0] != len(self.times):
            raise InputError(
                f"latents hold {tuple(self.wplus.shape)} codes for {len(self.times)} times; "
                "the file is inconsistent, invert the video again"
            )

    @property
    def frame_count(self) -> int:
        return int(self.wplus.shape[0])

    @property
    def alignment(self) -> dict[str, Any] | None:
        """The track as the file stores it (``vsode/track@1``), None for the centre square."""
        return None if self.track is None else self.track.to_dict()

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "format": LATENTS_FORMAT,
            "wplus": self.wplus.detach().to("cpu", torch.float32).contiguous(),
            "times": [[t.numerator, t.denominator] for t in self.times],
            "fps": f"{self.fps.numerator}/{self.fps.denominator}",
            "frame_count": self.frame_count,
            "size": list(self.size),
            "crop": list(self.crop),
            "source": dict(self.source),
            "encoder": dict(self.encoder),
            "generator": dict(self.generator),
            "refine": dict(self.refine),
            "alignment": self.alignment,
            "tuning": None if self.tuning is None else dict(self.tuning),
        }

    @classmethod
    def from_checkpoint(cls, ckpt: Any, *, origin: str = "latents") -> "Latents":
        if not isinstance(ckpt, dict) or ckpt.get("format") != LATENTS_FORMAT:
            found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
            raise InputError(
                f"{origin} is not a vsode latents file (format {found!r}, expected {LATENTS_FORMAT}); "
                "make one with `vsode invert VIDEO -o FILE`"
            )
        try:
            return cls(
                wplus=ckpt["wplus"].float(),
                times=[Fraction(int(n), int(d)) for n, d in ckpt["times"]],
                fps=Fraction(ckpt["fps"]),
                size=(int(ckpt["size"][0]), int(ckpt["size"][1])),
                crop=tuple(int(v) for v in ckpt["crop"]),  # type: ignore[arg-type]
                source=dict(ckpt["source"]),
                encoder=dict(ckpt["encoder"]),
                generator=dict(ckpt["generator"]),
                refine=dict(ckpt.get("refine") or {"steps": 0, "lr": 0.0}),
                track=None if ckpt.get("alignment") is None else Track.from_dict(ckpt["alignment"], origin=origin),
                tuning=None if ckpt.get("tuning") is None else dict(ckpt["tuning"]),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
            raise InputError(f"{origin} is a damaged latents file ({err}); invert the video again") from err

    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Write the latents file atomically; refuses to overwrite without ``force``. Tuned
        weights are written first, beside it (``<stem>.tuned.pt``), and the file names them
        with their SHA-256."""
        path = Path(path)
        if self.tuning is not None:
            if self.tuned is None:
                raise InputError(f"latents of {self.source.get('path')} were tuned but their tuned weights "
                                 "were not read; invert again with --tune")
            beside = tuned_path(path)
            check_output_path(path, force=force)
            save_torch(self.tuned, beside, force=True)  # owned by the latents file written next
            self.tuning = {**self.tuning, "file": beside.name, "sha256": sha256_file(beside)}
        return save_torch(self.to_checkpoint(), path, force=force)

    def tuned_generator(self, generator: Generator) -> Generator:
        """``generator`` with these latents' tuned weights (exit 2 if they were tuned from
        another generator, naming both hashes), or ``generator`` itself when not tuned."""
        if self.tuning is None:
            return generator
        assert self.tuned is not None
        return apply_tuned(generator, self.tuned, origin=f"the tuned weights of {self.source.get('path')}")

    def summary(self) -> dict[str, Any]:
        """JSON-safe description (no tensors) for ``--json`` results."""
        d = self.to_checkpoint()
        d.pop("wplus")
        d.pop("times")
        d["n_latent"] = int(self.wplus.shape[1])
        track = d.pop("alignment")
        d["aligned"] = track is not None
        if track is not None:  # the whole track is in the file; the summary names the gaps
            d["faceless_frames"] = [i for i, lm in enumerate(track.get("landmarks", [])) if lm is None]
            d["face_index"] = track.get("face_index", 0)
        d["duration"] = float(self.times[-1] - self.times[0] + 1 / self.fps) if self.times else 0.0
        return d


def tuned_path(latents_path: str | os.PathLike) -> Path:
    """Where a latents file's tuned weights go: ``clip.latents.pt`` → ``clip.latents.tuned.pt``."""
    path = Path(latents_path)
    if not path.suffix:
        return path.with_name(path.name + ".tuned")
    return path.with_name(path.name[: -len(path.suffix)] + ".tuned" + path.suffix)


def load_latents(path: str | os.PathLike) -> Latents:
    """Read a latents file written by :meth:`Latents.save` (``weights_only`` loading), with its
    tuned weights when it was tuned (checked against the SHA-256 it records)."""
    latents = Latents.from_checkpoint(safe_load(path), origin=str(path))
    if latents.tuning is not None:
        beside = Path(path).parent / str(latents.tuning.get("file", ""))
        if not beside.is_file():
            raise InputError(f"latents file {path} was tuned but its tuned weights {beside} are not there; "
                             "keep them beside it or invert again with --tune")
        if sha256_file(beside) != latents.tuning.get("sha256"):
            raise InputError(f"tuned weights {beside} do not match the SHA-256 latents file {path} records; "
                             "invert again with --tune")
        latents.tuned = safe_load(beside)
    return latents


# --- models ------------------------------------------------------------------------------------


@dataclass
class InversionModels:
    """The encoder and generator an inversion runs with, and their identities."""

    encoder: Encoder
    generator: Generator
    encoder_ref: dict[str, Any]
    generator_ref: dict[str, Any]


def model_ref(name_or_path: str, path: Path, cache_dir: Path | None) -> dict[str, Any]:
    """Name + SHA-256 of a checkpoint: from the install record for registry names, else hashed."""
    if name_or_path in REGISTRY:
        entry = REGISTRY.get(name_or_path)
        record = Cache.open(cache_dir).read_record(entry) or {}
        digest = record.get("sha256") or entry.sha256 or sha256_file(path)
        return {"name": entry.name, "sha256": digest}
    return {"name": path.name, "path": str(path.resolve()), "sha256": sha256_file(path)}


def load_models(options: InvertOptions, device: torch.device) -> InversionModels:
    """Resolve (no network) and load the encoder and generator the options name."""
    enc_path = resolve(options.encoder, cache_dir=options.cache_dir)
    encoder = load_encoder(enc_path).to(device).eval()
    enc_ref = model_ref(options.encoder, enc_path, options.cache_dir) | {"kind": encoder.kind}
    if options.generator is None:
        generator = encoder.generator
        gen_ref = {"name": f"{enc_ref['name']}:decoder", "sha256": enc_ref["sha256"]}
    else:
        gen_path = resolve(options.generator, cache_dir=options.cache_dir)
        generator = load_generator(gen_path).to(device).eval().requires_grad_(False)
        gen_ref = model_ref(options.generator, gen_path, options.cache_dir)
    if generator.n_latent != encoder.n_styles:
        raise InputError(
            f"generator {gen_ref['name']} takes {generator.n_latent} W+ rows but encoder "
            f"{enc_ref['name']} gives {encoder.n_styles}; pick a matching pair"
        )
    return InversionModels(encoder, generator, enc_ref, gen_ref)


# --- the inversion -----------------------------------------------------------------------------


def _cache_key(source_sha: str, options: InvertOptions, models: InversionModels, track: Any = None) -> str:
    alignment = None if track is None else hashlib.sha256(
        json.dumps(track.to_dict(), sort_keys=True).encode()
    ).hexdigest()
    key = {
        "alignment": alignment,
        "format": LATENTS_FORMAT,
        "preprocess": _PREPROCESS_VERSION,
        "source": source_sha,
        "encoder": models.encoder_ref["sha256"] or models.encoder_ref["name"],  # a model's ref may lack a digest
        # what the encoder ran in: "auto" is bf16 on CUDA
        "precision": "bf16" if use_bf16(options.precision, resolve_device(options.device)) else "fp32",
        "refine": [options.refine, options.refine_lr] if options.refine else 0,
        "generator": models.generator_ref["sha256"] if options.refine or options.tune else None,
        "tune": options.tune_settings().key() if options.tune else 0,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _latents_cache_path(cache_dir: Path | None, key: str) -> Path:
    return Cache.open(cache_dir).root / "latents" / f"{key}.pt"


def _crop_size(track: Track | None, size: int) -> int | None:
    """The crop the encoder's preprocessing starts from: aligned crops at its input size, the
    centre square as decoded (``preprocess`` resizes it)."""
    return size if track is not None else None


def synthesize_at(
    generator: Generator, wplus: torch.Tensor, size: int, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """G(W+) with the stored noise, average-pooled (or resized) to ``size``×``size``."""
    images = generator.synthesize(wplus, noise="const", dtype=dtype).float()
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    if images.shape[-1] % size == 0 and images.shape[-2] % size == 0:
        return F.adaptive_avg_pool2d(images, (size, size))  # pSp's face_pool
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def refine_latents(
    wplus: torch.Tensor,
    target: torch.Tensor,
    models: InversionModels,
    *,
    steps: int,
    lr: float,
) -> torch.Tensor:
    """Optimise W+ for ``steps`` Adam steps so that G(W+) matches ``target`` (B×3×256×256, [-1,1]).

    The loss is pixel MSE plus a perceptual term that runs offline: the distance between the
    encoder's own IR-SE-50 features (its c1, c2, c3 taps) of the render and of the target.
    """
    backbone = models.encoder.encoder
    size = target.shape[-1]
    with torch.no_grad():
        target_feats = backbone.features(target)
    w = wplus.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        render = synthesize_at(models.generator, w, size)
        loss = F.mse_loss(render, target)
        for ours, theirs in zip(backbone.features(render), target_feats):
            loss = loss + F.mse_loss(ours, theirs)
        loss.backward()
        optimiser.step()
    return w.detach()


def _prealigned(encoder: str) -> bool:
    return encoder in REGISTRY and REGISTRY.get(encoder).alignment == "none"


def alignment_track(
    path: str | os.PathLike,
    info: VideoInfo,
    options: InvertOptions,
    *,
    size: int,
    progress: Progress | None = None,
) -> Any:
    """The alignment :class:`vsode.align.Track` the options ask for, or None for the centre square:
    :func:`vsode.align.face_track` with the inversion's settings (``auto`` skips detection for
    encoders whose world is aligned by construction)."""
    align_options = AlignOptions(
        size=size, face_index=options.face_index, sigma_center=options.sigma_center,
        sigma_scale=options.sigma_scale, batch_size=options.batch_size, device=options.device,
    )
    return face_track(path, info, mode=options.align, prealigned=_prealigned(options.encoder),
                      options=align_options, track_file=options.track, progress=progress)


def invert_video(
    path: str | os.PathLike,
    options: InvertOptions | None = None,
    *,
    models: InversionModels | None = None,
    info: VideoInfo | None = None,
    progress: Progress | None = None,
    also: tuple[int, Callable[[torch.Tensor], None]] | None = None,
) -> Latents:
    """Invert every frame of a video (or an image) to W+.

    Args:
        path: video or image file.
        options: :class:`InvertOptions`; defaults if omitted.
        models: already loaded models (else loaded from ``options``).
        info: the input's :func:`vsode.video.probe` result, if already known.
        progress: receives the stages ``load``, ``hash``, ``encode`` and ``refine``.
        also: ``(size, consume)``: hand every batch of face crops at ``size`` (uint8) to
            ``consume`` from the same decode as the encoder's, when one decode can serve both
            (:func:`vsode.align.shares_decode`); the dynamics encoder's crops, so that an input is
            decoded once for both. Not called when the latents come from the cache or when the
            sizes cannot share a decode: count the frames it received.

    Returns:
        :class:`Latents` with one W+ per decoded frame at its exact timestamp. With
        ``options.use_cache`` a previous inversion of the same file with the same models and
        settings is returned from the cache instead.
    """
    options = options or InvertOptions()
    progress = ensure(progress)
    info = info or probe(path)
    device = resolve_device(options.device)
    if models is None:
        with progress.stage("load models"):
            models = load_models(options, device)
    source_sha = sha256_file(Path(path), progress, label="hash input")
    source = {"path": str(Path(path).resolve()), "sha256": source_sha}
    track = alignment_track(path, info, options, size=models.encoder.input_size, progress=progress)
    cache_file = _latents_cache_path(options.cache_dir, _cache_key(source_sha, options, models, track))
    if options.use_cache and cache_file.is_file():
        try:
            cached = load_latents(cache_file)
        except Exception:  # a damaged cache entry is dropped and recomputed
            cache_file.unlink(missing_ok=True)
        else:
            cached.source = source
            progress.log(f"latents from cache {cache_file}")
            return cached

    fast = use_bf16(options.precision, device)
    if options.tune:
        from .tune import check_generator

        check_generator(models.generator, models.generator_ref.get("name") or "the generator")
    # pivotal tuning's targets: a fixed pool of frames spread over the video, kept as they are encoded
    wanted = set(pivot_indices(info.frame_count, options.tune_settings().pool)) if options.tune else set()
    targets: list[torch.Tensor] = []
    seen = 0
    codes: list[torch.Tensor] = []
    times: list[Fraction] = []
    size = models.encoder.input_size
    sizes = [_crop_size(track, size)]
    if also is not None and shares_decode(info, track, [*sizes, also[0]]):
        sizes.append(also[0])
    with progress.stage("encode", total=info.frame_count) as stage:
        for k, (batch, crops) in enumerate(face_batches(path, info, track, sizes=sizes,
                                                       batch_size=options.batch_size)):
            if k % RELEASE_EVERY == RELEASE_EVERY - 1:
                release()  # the encoder's transients, pinned by the codes kept so far (vsode.memory)
            if len(crops) > 1:
                also[1](crops[1])  # type: ignore[index]
            images, stamps = preprocess(crops[0], size).to(device), list(batch.timestamps)
            w = models.encoder.encode(images, impl="fast" if fast else "reference")
            if options.refine:
                w = refine_latents(w, images, models, steps=options.refine, lr=options.refine_lr)
            codes.append(w.float().cpu())
            keep = [i for i in range(len(stamps)) if seen + i in wanted]
            if keep:
                targets.append(images[keep].float().cpu())
            seen += len(stamps)
            times.extend(stamps)
            stage.advance(len(stamps))
    if not codes:
        raise InputError(f"input {path} has no decodable frames; check the file with `vsode probe`")
    latents = Latents(
        wplus=torch.cat(codes),
        times=times,
        fps=info.fps,
        size=(info.width, info.height),
        crop=center_square(info),
        source=source,
        encoder=models.encoder_ref,
        generator=models.generator_ref,
        refine={"steps": options.refine, "lr": options.refine_lr if options.refine else 0.0},
        track=track,
    )
    codes.clear()
    release()  # the encoder's transients, interleaved with the kept codes (vsode.memory)
    if options.tune:
        _tune(latents, torch.cat(targets), sorted(i for i in wanted if i < seen), options, models, progress)
    if options.use_cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        latents.save(cache_file, force=True)
    return latents


def _tune(latents: Latents, targets: torch.Tensor, index: list[int], options: InvertOptions,
          models: InversionModels, progress: Progress) -> None:
    """Tune a copy of the generator on ``targets`` (the frames ``index``) around their codes and
    attach the tuned weights and the report to ``latents``."""
    backbone = getattr(models.encoder, "encoder", None)
    features = getattr(backbone, "features", None)
    device = next(models.generator.parameters()).device
    dtype = torch.bfloat16 if use_bf16(options.precision, device) else None
    tuned, report = tune_generator(models.generator, latents.wplus[index], targets, options.tune_settings(),
                                   features=features, dtype=dtype, progress=progress)
    base = {**models.generator_ref, "weights_sha256": fingerprint(models.generator)}
    latents.tuned = tuned_checkpoint(tuned, base, report)
    latents.tuning = {**report, "base": base}
    progress.log(f"tuned the generator: {report['psnr_before_db']:.2f} -> {report['psnr_after_db']:.2f} dB "
                 f"on {report['frames']} frames, {report['seconds_per_step']:.3f} s/step")


def render_preview(
    latents: Latents,
    generator: Generator,
    output: str | os.PathLike,
    *,
    size: int = 256,
    batch_size: int = 8,
    audio_from: str | os.PathLike | None = None,
    force: bool = False,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    progress: Progress | None = None,
) -> Any:
    """Stream G(W+) of every frame to a video at the latents' own timestamps (audio optional)."""
    progress = ensure(progress)
    device = resolve_device(device) if isinstance(device, str) else device
    dtype = torch.bfloat16 if use_bf16(precision, device) else None
    check_output_path(output, force=force)
    start = latents.times[0] if latents.times else Fraction(0)
    stamps = [t - start for t in latents.times]
    with VideoWriter(
        output,
        fps=latents.fps,
        width=size,
        height=size,
        timestamps=None if FrameTimes(tuple(latents.times), latents.fps).is_regular else stamps,
        audio_from=audio_from,
        force=force,
    ) as writer, progress.stage("preview", total=latents.frame_count) as stage:
        for i in range(0, latents.frame_count, batch_size):
            w = latents.wplus[i : i + batch_size].to(device)
            with torch.no_grad():
                images = synthesize_at(generator, w, size, dtype=dtype)
            writer.write(((images.float().clamp(-1, 1) + 1) / 2).cpu())
            stage.advance(w.shape[0])
    return writer.close()
