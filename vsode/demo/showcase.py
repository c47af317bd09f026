"""`vsode demo`: the whole product on the embedded demo world, offline, with scores.

It renders a source clip (with a speech-like audio track that follows the mouth), a driver clip
and a portrait from the procedural world, writes them through the streaming video encoder, inverts
the source with the shipped tiny pSp encoder and renders the reconstruction, checks the tiny
CLIP's zero-shot reading of the source's attributes, and writes a contact sheet and a JSON report
whose scores are measured against the renderer's ground truth.
"""

from __future__ import annotations

import json
import math
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..fileio import atomic_write_bytes, check_output_path
from ..progress import Progress, ensure
from ..video import VideoWriter, probe
from .world import EYE_COLOURS, HAIR_COLOURS, SKIN_TONES, VideoParams, render_times, sample_params

DEMO_ENCODER = "psp-demo"
DEMO_CLIP = "clip-demo"
SAMPLE_RATE = 16000
SHEET_COLUMNS = 8


@dataclass(frozen=True)
class DemoOptions:
    """What `vsode demo` renders.

    Attributes:
        seconds: length of the source and driver clips.
        fps: their frame rate (exact rational).
        size: side of the rendered videos (the models work at 64 px).
        seed: picks the faces and their motion.
        force: overwrite existing files in the output folder.
        device: where the models run.
    """

    seconds: float = 3.0
    fps: Fraction = Fraction(24)
    size: int = 128
    seed: int = 0
    force: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0.25 <= self.seconds <= 60:
            raise InputError(f"--seconds {self.seconds} must be between 0.25 and 60")
        if self.fps <= 0 or self.fps > 120:
            raise InputError(f"--fps {self.fps} must be in (0, 120]")
        if self.size not in (64, 128, 256):
            raise InputError(f"--size {self.size} must be 64, 128 or 256")
        if self.seed < 0:
            raise InputError(f"--seed {self.seed} must be 0 or more")

    @property
    def times(self) -> list[Fraction]:
        count = max(1, math.floor(Fraction(self.seconds) * self.fps))
        return [Fraction(i) / self.fps for i in range(count)]


OUTPUTS = (
    "source.mp4",
    "driver.mp4",
    "portrait.png",
    "source.latents.pt",
    "source_recon.mp4",
    "contact_sheet.png",
    "report.json",
)


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


def _png_bytes(image: torch.Tensor) -> bytes:
    import io

    from PIL import Image

    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1]."""
    mse = torch.mean((a.float() - b.float()) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def _resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    if frames.shape[-1] == size:
        return frames
    return torch.nn.functional.interpolate(frames, size=(size, size), mode="bilinear",
                                           align_corners=False, antialias=True)


def _zero_shot(clip_model: Any, frames: torch.Tensor, params: VideoParams) -> dict[str, float]:
    """Share of frames whose attribute CLIP reads is the true one, per attribute."""
    vocab = {"hair": HAIR_COLOURS, "eyes": EYE_COLOURS, "skin": SKIN_TONES}
    truth = params.attributes
    scores = {}
    images = frames * 2 - 1
    for attr, values in vocab.items():
        names = list(values)
        prompts = [f"a photo of a person with {v} {attr}" for v in names]
        probs = clip_model.zero_shot(images, prompts)
        picked = probs.argmax(dim=-1)
        scores[attr] = float((picked == names.index(truth[attr])).float().mean())
    return scores


def run_demo(out_dir: str | Path, options: DemoOptions | None = None, *,
             progress: Progress | None = None) -> dict[str, Any]:
    """Render the demo clips, run the models on them, write the sheet and the report.

    Returns the report (also written to ``out_dir/report.json``).
    """
    options = options or DemoOptions()
    progress = ensure(progress)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} is a file; give a folder name")
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        check_output_path(out / name, force=options.force)

    source = sample_params(options.seed)
    driver = sample_params(options.seed + 1, motion_seed=options.seed + 101)
    portrait = sample_params(options.seed + 2)
    times = options.times
    t = np.array([float(x) for x in times])
    report: dict[str, Any] = {
        "seed": options.seed,
        "fps": f"{options.fps.numerator}/{options.fps.denominator}",
        "frames": len(times),
        "source": {"attributes": source.attributes},
        "driver": {"attributes": driver.attributes},
        "portrait": {"attributes": portrait.attributes},
    }

    with progress.stage("render", total=3) as stage:
        src_frames = render_times(source, t, size=options.size)
        stage.advance()
        drv_frames = render_times(driver, t, size=options.size)
        stage.advance()
        still = render_times(portrait, np.array([0.0]), size=options.size)[0]
        stage.advance()

    with progress.stage("encode video"), tempfile.TemporaryDirectory() as tmp:
        seconds = float(len(times) / options.fps)
        for params, frames, name in ((source, src_frames, "source"), (driver, drv_frames, "driver")):
            wav = Path(tmp) / f"{name}.wav"
            _speech_audio(params, seconds, wav)
            report[name]["video"] = _write_clip(out / f"{name}.mp4", frames, options.fps,
                                                audio=wav, force=options.force)
        atomic_write_bytes(out / "portrait.png", _png_bytes(still), force=options.force)
    report["source"]["probe"] = probe(out / "source.mp4").to_dict()

    rows = [src_frames]
    if _has_demo_encoder():
        rows.append(_invert_and_score(out, options, src_frames, report, progress))
    else:
        report["inversion"] = {"skipped": f"this vsode has no built-in {DEMO_ENCODER} encoder"}
    rows.append(drv_frames)
    _clip_scores(options, src_frames, source, report, progress)

    atomic_write_bytes(out / "contact_sheet.png", _png_bytes(_sheet(rows, options.size)), force=options.force)
    report["outputs"] = {name: str(out / name) for name in OUTPUTS if (out / name).exists()}
    report["timings"] = {k: round(v, 3) for k, v in progress.timings.items()}
    atomic_write_bytes(out / "report.json", (json.dumps(report, indent=2) + "\n").encode(), force=options.force)
    return report


def _has_demo_encoder() -> bool:
    from ..checkpoints.registry import REGISTRY

    return DEMO_ENCODER in REGISTRY


def _invert_and_score(out: Path, options: DemoOptions, src_frames: torch.Tensor,
                      report: dict, progress: Progress) -> torch.Tensor:
    from ..invert import InvertOptions, invert_video, load_models, render_preview

    inv_opts = InvertOptions(encoder=DEMO_ENCODER, device=options.device, batch_size=16, use_cache=False)
    with progress.stage("load models"):
        models = load_models(inv_opts, torch.device(options.device))
    latents = invert_video(out / "source.mp4", inv_opts, models=models, progress=progress)
    latents.save(out / "source.latents.pt", force=options.force)
    preview = render_preview(latents, models.generator, out / "source_recon.mp4", size=options.size,
                             batch_size=16, audio_from=out / "source.mp4", force=options.force,
                             device=options.device, progress=progress)
    with torch.no_grad():
        from ..invert import synthesize_at

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
        "psnr_db": round(psnr(recon, truth), 2),
        "preview": preview.to_dict(),
    }
    return _resize(recon, options.size)


def _clip_scores(options: DemoOptions, src_frames: torch.Tensor, source: VideoParams,
                 report: dict, progress: Progress) -> None:
    from ..checkpoints import resolve
    from ..clip import load_clip

    with progress.stage("clip"):
        model = load_clip(resolve(DEMO_CLIP), device=options.device)
        report["clip_zero_shot"] = _zero_shot(model, src_frames, source)


def _sheet(rows: list[torch.Tensor], size: int) -> torch.Tensor:
    """Rows of frames at evenly spaced times, side by side, 2 px gaps."""
    n = rows[0].shape[0]
    cols = [round(i * (n - 1) / max(1, SHEET_COLUMNS - 1)) for i in range(min(SHEET_COLUMNS, n))]
    gap = 2
    height = len(rows) * size + (len(rows) + 1) * gap
    width = len(cols) * size + (len(cols) + 1) * gap
    sheet = torch.ones(3, height, width)
    for r, frames in enumerate(rows):
        for c, idx in enumerate(cols):
            y, x = gap + r * (size + gap), gap + c * (size + gap)
            sheet[:, y : y + size, x : x + size] = frames[min(idx, frames.shape[0] - 1)]
    return sheet
