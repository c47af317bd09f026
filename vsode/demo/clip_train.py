"""Training the demo world's CLIP: a small open_clip model, contrastive on renders and captions.

The product uses CLIP as a frozen backbone (:mod:`vsode.clip`); offline, the demo world supplies
one trained here from scratch. Frames are rendered on the fly (random videos at random times, so
mouth, blinks and head pose vary) into a ring buffer that a few new videos refresh every step.
Captions name a random non-empty subset of hair, eyes and skin, in random order, in one of a few
templates (the canonical :func:`~vsode.demo.caption_for` sentence among them). Many images in a
batch share a caption's attributes, so the InfoNCE loss has several positives per row and column:
an image and a caption match when the image has every attribute the caption names.

Size: the text tower keeps CLIP's real BPE tokenizer (49,408 ids, 77 tokens), but the captions
use only a few dozen ids. Training runs on a compact embedding of exactly those ids (remapped in
ascending order, so the end-of-text token stays the largest id that open_clip pools at); the
checkpoint stores those rows alone (``sparse_rows``), and every other token embeds as zero.

Held-out evaluation: demo seeds in :data:`HELD_OUT_SEEDS` are never trained on.
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..clip import ClipModel, Preprocess, build_clip, load_clip, preprocess_images
from ..errors import InputError
from ..fileio import atomic_write_bytes, check_output_path
from ..options import PROMPT_TEMPLATE
from ..progress import Progress, ensure
from .world import (
    EYE_COLOURS,
    HAIR_COLOURS,
    SKIN_TONES,
    caption_for,
    region_masks,
    render_times,
    sample_params,
)

# The architecture: a ViT on 64x64 renders (8x8 patches -> 64 tokens + CLS) and a 3-layer text
# transformer, both 128 wide (4 heads of 32), embedding 128: 1.47 M trained parameters, ~3 MB in fp16.
DEMO_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "quick_gelu": False,
    "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 128, "layers": 4, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}
DEMO_PREPROCESS = Preprocess(image_size=64)  # OpenAI mean/std, bicubic, center crop: the paper's recipe
DEMO_CLIP_NAME = "clip-demo"

NAMED = {"hair": tuple(HAIR_COLOURS), "eyes": tuple(EYE_COLOURS), "skin": tuple(SKIN_TONES)}
HELD_OUT_SEEDS = range(1_000_000, 2_000_000)  # evaluation and tests draw here; training never does
_TRAIN_SEEDS = (2_000_000, 2**31 - 1)
_TEMPLATES = (
    PROMPT_TEMPLATE,  # "a photo of a person with {}"
    "a person with {}",
    "a face with {}",
    "a picture of someone with {}",
    "a close-up photo of a person with {}",
)
_SUBSET_SIZES = (1, 2, 3)
_SUBSET_PROBS = (0.4, 0.3, 0.3)
_MAX_TIME = 20.0  # seconds: renders at random times in [0, 20)


@dataclasses.dataclass(frozen=True)
class DemoClipOptions:
    """Training settings of :func:`train_demo_clip` (defaults reproduce the shipped weights).

    seed: seeds torch and every draw (videos, times, captions, batches).
    steps, batch_size, lr, weight_decay, warmup: AdamW with linear warm-up then cosine decay.
    pool_videos, frames_per_video: the render ring buffer, ``pool_videos × frames_per_video``
        frames; ``refresh_videos`` new videos replace the oldest every step.
    precision: "fp32", or "bf16" autocast for the towers' forward passes.
    eval_renders: held-out renders scored after training (one random time per video).
    """

    seed: int = 0
    steps: int = 800
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 40
    pool_videos: int = 1024
    frames_per_video: int = 8
    refresh_videos: int = 4
    precision: str = "fp32"
    eval_renders: int = 600

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "pool_videos", "frames_per_video", "eval_renders")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, not {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"--seed must be a non-negative integer, not {self.seed!r}")
        if self.refresh_videos < 0 or self.warmup < 0:
            raise InputError("--refresh-videos and --warmup must be >= 0")
        if not (self.lr > 0 and self.weight_decay >= 0):
            raise InputError("--lr must be > 0 and --weight-decay >= 0")
        if self.batch_size < 2:
            raise InputError("--batch-size must be at least 2 (a contrastive loss needs negatives)")
        if self.precision not in ("fp32", "bf16"):
            raise InputError(f"--precision {self.precision!r}; use fp32 or bf16")


# -- captions ---------------------------------------------------------------------------------


def sample_caption(rng: np.random.Generator, attrs: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """A random caption for ``attrs`` and the attribute names it mentions.

    A random non-empty subset of hair/eyes/skin in random order, joined as "x, y and z" or
    "x and y and z", in one of the templates; one caption in four is :func:`caption_for`'s.
    """
    k = int(rng.choice(_SUBSET_SIZES, p=_SUBSET_PROBS))
    names = tuple(str(n) for n in rng.permutation(list(NAMED))[:k])
    if rng.random() < 0.25:
        return caption_for({n: attrs[n] for n in names}), names
    nouns = {"hair": "hair", "eyes": "eyes", "skin": "skin"}
    parts = [f"{attrs[n]} {nouns[n]}" for n in names]
    if len(parts) > 1 and rng.random() < 0.5:
        text = " and ".join(parts)
    else:
        text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template.format(text), names


def zero_shot_prompts(attribute: str) -> list[str]:
    """The zero-shot prompts for one attribute, in vocabulary order: "a photo of a person with
    {value} hair" and so on (:func:`caption_for`)."""
    return [caption_for({attribute: value}) for value in NAMED[attribute]]


def _caption_token_ids(tokenize: Any) -> torch.Tensor:
    """Every token id a caption can contain (pad 0 included), ascending."""
    words = [t.format("") for t in _TEMPLATES] + ["and ,"]
    words += [f"{v} {n}" for n, vocab in NAMED.items() for v in vocab]
    ids = torch.unique(tokenize(words))
    return torch.unique(torch.cat([ids, torch.zeros(1, dtype=ids.dtype)]))


# -- data -------------------------------------------------------------------------------------


class _RenderPool:
    """A ring buffer of uint8 renders and their attribute indices (hair, eyes, skin)."""

    def __init__(self, rng: np.random.Generator, videos: int, frames: int, size: int = 64):
        self.rng, self.frames, self.size = rng, frames, size
        self.images = torch.zeros(videos * frames, 3, size, size, dtype=torch.uint8)
        self.attrs = torch.zeros(videos * frames, 3, dtype=torch.long)
        self.next = 0

    def add_videos(self, n: int) -> None:
        for _ in range(n):
            params = sample_params(int(self.rng.integers(*_TRAIN_SEEDS)))
            times = self.rng.uniform(0.0, _MAX_TIME, self.frames)
            frames = render_times(params, times, size=self.size)  # F 3 S S in [0, 1]
            span = slice(self.next, self.next + self.frames)
            self.images[span] = (frames * 255).round().to(torch.uint8)
            a = params.attributes
            self.attrs[span] = torch.tensor([NAMED[n].index(a[n]) for n in NAMED])
            self.next = (self.next + self.frames) % len(self.images)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(self.rng.choice(len(self.images), n, replace=False))
        return self.images[idx].float() / 255, self.attrs[idx]


def _augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Colour-preserving augmentation of ``B 3 S S`` in [0, 1]: mirror, mild blur, mild noise
    (a generator's output is softer and noisier than the renderer's)."""
    flip = torch.from_numpy(rng.random(len(x)) < 0.5)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    blur = torch.from_numpy(rng.random(len(x)) < 0.25)
    if blur.any():
        sigma = float(rng.uniform(0.4, 1.0))
        r = torch.arange(-2, 3, dtype=x.dtype)
        k = torch.exp(-(r**2) / (2 * sigma**2))
        k = k / k.sum()
        y = F.pad(x[blur], (2, 2, 2, 2), mode="replicate")
        y = F.conv2d(y, k.view(1, 1, 1, 5).expand(3, 1, 1, 5), groups=3)
        y = F.conv2d(y, k.view(1, 1, 5, 1).expand(3, 1, 5, 1), groups=3)
        x = x.clone()
        x[blur] = y
    noise = torch.from_numpy(rng.uniform(0.0, 0.03, (len(x), 1, 1, 1))).to(x.dtype)
    return (x + noise * torch.from_numpy(rng.standard_normal(x.shape)).to(x.dtype)).clamp(0, 1)


# -- model ------------------------------------------------------------------------------------


def encode_text_trimmed(clip: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``clip.encode_text(tokens)`` computed on the first L positions only, L = last end-of-text + 1.

    Exact: the text mask is causal and open_clip pools at the end-of-text token, so positions
    after it never reach the output. Training captions are ~15 tokens of the 77.
    """
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    x = clip.token_embedding(tokens) + clip.positional_embedding[:length]
    x = clip.transformer(x, attn_mask=clip.attn_mask[:length, :length])
    x = clip.ln_final(x)
    x = x[torch.arange(len(x)), tokens.argmax(dim=-1)]  # B width, at end-of-text
    proj = clip.text_projection
    return proj(x) if isinstance(proj, nn.Linear) else x @ proj


def multi_positive_clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, match: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE where ``match[i, j]`` (bool, ``B_img × B_txt``) marks every positive pair.

    Each row's (column's) target is uniform over its positives; with one positive per row and
    column this is CLIP's loss. Every row and column needs at least one positive.
    """
    logits = logit_scale.exp() * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
    target = match.to(logits.dtype)
    image_to_text = -(target / target.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    text_to_image = -(target / target.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
    return (image_to_text + text_to_image) / 2


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        embedding = name in ("token_embedding.weight", "positional_embedding") or "class_embedding" in name
        (decay if p.ndim >= 2 and not embedding and "positional" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(step: int, opts: DemoClipOptions) -> float:
    if step < opts.warmup:
        return opts.lr * (step + 1) / opts.warmup
    progress = (step - opts.warmup) / max(1, opts.steps - opts.warmup)
    return opts.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _expand_to_full_vocab(compact: nn.Module, token_ids: torch.Tensor) -> ClipModel:
    """The trained compact model as the shipped config: all 49,408 token rows, unused ones zero."""
    full = build_clip(DEMO_CLIP_CONFIG)
    state = compact.state_dict()
    embedding = torch.zeros_like(full.token_embedding.weight)
    embedding[token_ids] = state.pop("token_embedding.weight")
    full.load_state_dict({**state, "token_embedding.weight": embedding}, strict=True)
    return ClipModel(full, DEMO_PREPROCESS, name=DEMO_CLIP_NAME, config=DEMO_CLIP_CONFIG)


# -- evaluation -------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_zero_shot(clip: ClipModel, seeds: Sequence[int], *, time_seed: int = 0) -> dict[str, Any]:
    """Zero-shot attribute accuracy on one render per demo seed (at a random time in [0, 20) s).

    Each attribute is classified among its vocabulary with :func:`zero_shot_prompts`. Returns
    ``{"hair", "eyes", "skin"}`` accuracies, ``all_three`` (every attribute right),
    ``eyes_open`` (eye accuracy on renders whose iris shows at least 3 pixels: a blink hides the
    colour), and the counts ``n`` and ``n_eyes_open``.
    """
    rng = np.random.default_rng([time_seed, 7])
    images, truth, iris = [], [], []
    for seed in seeds:
        params = sample_params(int(seed))
        t = [float(rng.uniform(0.0, _MAX_TIME))]
        images.append(render_times(params, t, size=clip.image_size)[0] * 2 - 1)
        truth.append([NAMED[n].index(params.attributes[n]) for n in NAMED])
        iris.append(float(region_masks(params, t, size=clip.image_size)["iris"].sum()))
    x, truth_t = torch.stack(images), torch.tensor(truth)
    guesses = [clip.zero_shot(x, zero_shot_prompts(name)).argmax(-1) for name in NAMED]
    correct = torch.stack(guesses, dim=1) == truth_t  # N 3
    open_ = torch.tensor(iris) >= 3.0
    def rate(hits: torch.Tensor) -> float:
        return round(float(hits.float().mean()), 4) if len(hits) else float("nan")

    out: dict[str, Any] = {name: rate(correct[:, i]) for i, name in enumerate(NAMED)}
    out["all_three"] = rate(correct.all(dim=1))
    out["eyes_open"] = rate(correct[open_, 1])
    out.update(n=len(seeds), n_eyes_open=int(open_.sum()))
    return out


# -- training ---------------------------------------------------------------------------------


def train_demo_clip(
    out_path: str | Path,
    *,
    seed: int = 0,
    steps: int = DemoClipOptions.steps,
    batch_size: int = DemoClipOptions.batch_size,
    lr: float = DemoClipOptions.lr,
    weight_decay: float = DemoClipOptions.weight_decay,
    warmup: int = DemoClipOptions.warmup,
    pool_videos: int = DemoClipOptions.pool_videos,
    frames_per_video: int = DemoClipOptions.frames_per_video,
    refresh_videos: int = DemoClipOptions.refresh_videos,
    precision: str = DemoClipOptions.precision,
    eval_renders: int = DemoClipOptions.eval_renders,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train the demo CLIP from scratch and write it to ``out_path`` (``vsode/clip@1``, fp16).

    Deterministic for a given seed, torch build and thread count. Parameters: see
    :class:`DemoClipOptions`. The written file is loaded back with :func:`~vsode.clip.load_clip`
    and scored on ``eval_renders`` held-out renders (seeds from :data:`HELD_OUT_SEEDS`).

    Returns:
        metrics: ``zero_shot`` (see :func:`evaluate_zero_shot`), ``final_loss`` (mean of the last
        50 steps), ``history`` (``[step, mean loss]`` every 50 steps), ``parameters``,
        ``stored_token_rows``, ``file_bytes``, ``embedding_norm`` (mean image/text norms on the
        evaluation set), ``seconds`` per stage.
    """
    opts = DemoClipOptions(
        seed=seed, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup=warmup,
        pool_videos=pool_videos, frames_per_video=frames_per_video, refresh_videos=refresh_videos,
        precision=precision, eval_renders=eval_renders,
    )
    if opts.batch_size > opts.pool_videos * opts.frames_per_video:
        raise InputError("--batch-size exceeds the render pool (pool_videos × frames_per_video)")
    progress = ensure(progress)
    out_path = check_output_path(out_path, force=True)  # fail before training, not after
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng([opts.seed, 1])

    import open_clip

    tokenizer = open_clip.SimpleTokenizer(context_length=DEMO_CLIP_CONFIG["text_cfg"]["context_length"])
    token_ids = _caption_token_ids(tokenizer)
    remap = torch.full((tokenizer.vocab_size,), -1, dtype=torch.long)
    remap[token_ids] = torch.arange(len(token_ids))
    text_cfg = {**DEMO_CLIP_CONFIG["text_cfg"], "vocab_size": len(token_ids)}
    compact_cfg = {**DEMO_CLIP_CONFIG, "text_cfg": text_cfg}
    model = open_clip.CLIP(**compact_cfg)
    model.train()
    groups = _param_groups(model, opts.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=opts.lr, betas=(0.9, 0.98), eps=1e-6)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=opts.precision == "bf16")

    with progress.stage("render pool", opts.pool_videos, unit="videos") as stage:
        pool = _RenderPool(rng, opts.pool_videos, opts.frames_per_video)
        for _ in range(opts.pool_videos):
            pool.add_videos(1)
            stage.advance()

    history, window = [], []
    with progress.stage("train", opts.steps, unit="steps") as stage:
        for step in range(opts.steps):
            pool.add_videos(opts.refresh_videos)
            images, attrs = pool.batch(opts.batch_size)  # B 3 64 64, B 3
            images = _augment(images, rng)
            captions, named = zip(*(sample_caption(rng, _attr_dict(a)) for a in attrs.tolist()))
            mask = torch.tensor([[n in names for n in NAMED] for names in named])  # B_txt 3
            same = attrs[:, None, :] == attrs[None, :, :]  # B_img B_txt 3
            match = (same | ~mask[None]).all(-1)  # image i has every attribute caption j names
            tokens = remap[tokenizer(list(captions))]
            assert bool((tokens >= 0).all()), "a caption uses a token outside the caption vocabulary"

            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, opts)
            with autocast:
                image_emb = model.encode_image(preprocess_images(images * 2 - 1, DEMO_PREPROCESS))
                text_emb = encode_text_trimmed(model, tokens)
            loss = multi_positive_clip_loss(image_emb.float(), text_emb.float(), match, model.logit_scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))

            window.append(float(loss.detach()))
            if (step + 1) % 50 == 0 or step + 1 == opts.steps:
                history.append([step + 1, round(float(np.mean(window)), 5)])
                progress.log(f"step {step + 1}/{opts.steps}: loss {history[-1][1]:.4f}")
                window = []
            stage.advance()

    with progress.stage("evaluate"):
        model.eval()
        shipped = _expand_to_full_vocab(model, token_ids)
        ckpt = shipped.checkpoint(dtype=torch.float16, sparse=["token_embedding.weight"])
        clip = load_clip(ckpt)  # score exactly what is written: fp16-rounded, through the loader
        seeds = range(HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.start + opts.eval_renders)
        zero_shot = evaluate_zero_shot(clip, seeds, time_seed=opts.seed)
        norms = _embedding_norms(clip, seeds[:64])

    metrics: dict[str, Any] = {
        "zero_shot": zero_shot,
        "final_loss": history[-1][1],
        "history": history,
        "parameters": sum(p.numel() for p in model.parameters()),
        "stored_token_rows": len(token_ids),
        "embedding_norm": norms,
    }
    ckpt["training"] = {
        "trainer": "vsode.demo.clip_train.train_demo_clip",
        "options": dataclasses.asdict(opts),
        "zero_shot": zero_shot,
        "held_out_seeds": [HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.stop],
        "versions": {"torch": str(torch.__version__), "open_clip": str(open_clip.__version__)},
    }
    # Through a buffer: torch.save names the zip's top folder after the file, and the temporary
    # file's name is random; a buffer's is fixed, so the same weights give the same bytes.
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    atomic_write_bytes(out_path, buffer.getvalue())
    metrics["file_bytes"] = out_path.stat().st_size
    metrics["seconds"] = {k: round(v, 1) for k, v in progress.timings.items()}
    return metrics


def _attr_dict(indices: Sequence[int]) -> dict[str, str]:
    return {name: NAMED[name][i] for name, i in zip(NAMED, indices)}


@torch.no_grad()
def _embedding_norms(clip: ClipModel, seeds: Sequence[int]) -> dict[str, float]:
    images = torch.stack([render_times(sample_params(int(s)), [1.0])[0] * 2 - 1 for s in seeds])
    prompts = [caption_for({"hair": h, "eyes": e}) for h in NAMED["hair"] for e in NAMED["eyes"]]
    return {
        "image": round(float(clip.encode_image(images).norm(dim=-1).mean()), 3),
        "text": round(float(clip.encode_text(prompts).norm(dim=-1).mean()), 3),
    }


__all__ = [
    "DEMO_CLIP_CONFIG", "DEMO_PREPROCESS", "DEMO_CLIP_NAME", "HELD_OUT_SEEDS", "DemoClipOptions",
    "encode_text_trimmed", "evaluate_zero_shot", "multi_positive_clip_loss", "sample_caption",
    "train_demo_clip", "zero_shot_prompts",
]
