"""DINO ViT-B/16 as VidStyleODE's frozen structure/appearance feature extractor (design §9.1–§9.2).

The released code loads ``torch.hub.load('facebookresearch/dino:main', 'dino_vitb16')`` and
hooks every block on every call; vsode builds the same network itself (no hub code from the
network, design part 1 §9) and computes only what the Splicing-ViT losses read, for a whole batch
at once (§15 item 17):

* ``keys``: the key third of block ``structure_layer``'s (11, the last) fused qkv projection,
  heads side by side, CLS token included: ``B×tokens×dim``;
* ``cls``: the CLS token of block ``cls_layer``'s (8) output, before the final LayerNorm:
  ``B×dim``.

Images in [0, 1] are preprocessed as the released losses do: the shorter side resized to
``resize`` (244, sic; bilinear, antialiased, aspect kept, as torchvision's tensor ``Resize``),
ImageNet mean/std, no crop; the learned position table is resampled to the patch grid exactly as
DINO's ``interpolate_pos_encoding`` does. Example: 256×192 → 325×244 → 20×15 patches + CLS = 301.

Checkpoint layouts (:func:`load_dino`, always ``weights_only``):

* DINO's backbone state dict ``dino_vitbase16_pretrain.pth`` (``cls_token``, ``pos_embed``,
  ``patch_embed.proj.*``, ``blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*``,
  ``norm.*``), the architecture read from the tensor shapes;
* timm's ``vit_base_patch16_224.dino`` state dict (``.bin``/``.pth`` or ``.safetensors``): the same
  names; a classifier ``head.*`` or pooled-feature ``fc_norm.*`` is ignored (neither feeds the
  features), any other unknown key is an error naming it;
* ``vsode/dino@1``: ``{"format", "config", "state_dict"}``, self-describing (tiny test models;
  written by :meth:`Dino.checkpoint` / :func:`save_dino`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError

FORMAT = "vsode/dino@1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LN_EPS = 1e-6
# Keys of timm/DINO files that are no part of the features: timm's classifier and its norm of
# average-pooled tokens. Everything else must map one to one.
IGNORED_KEYS = ("head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias")
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")


@dataclasses.dataclass(frozen=True)
class DinoConfig:
    """Architecture and feature choice of a :class:`Dino` (defaults: DINO ViT-B/16 as released).

    patch_size: side of the square patches (the patch-embedding conv's kernel and stride).
    dim: token width. depth: number of blocks. heads: attention heads (``dim % heads == 0``).
    mlp_ratio: MLP hidden width / dim. image_size: the training resolution, which fixes the
    learned position table (``(image_size/patch_size)² + 1`` rows).
    resize: the shorter image side after preprocessing (the released 244).
    structure_layer: block whose qkv keys give the structure self-similarity (0-based; 11).
    cls_layer: block whose output's CLS token is the appearance descriptor (0-based; 8).
    """

    patch_size: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4
    image_size: int = 224
    resize: int = 244
    structure_layer: int = 11
    cls_layer: int = 8

    def __post_init__(self) -> None:
        problems = []
        for name in ("patch_size", "dim", "depth", "heads", "image_size", "resize"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} {value!r} must be a positive integer")
        for name in ("structure_layer", "cls_layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{name} {value!r} must be an integer block index")
        if isinstance(self.mlp_ratio, bool) or not isinstance(self.mlp_ratio, (int, float)) or not self.mlp_ratio > 0:
            problems.append(f"mlp_ratio {self.mlp_ratio!r} must be a positive number")
        if problems:
            raise InputError("bad DINO config: " + "; ".join(problems))
        if self.dim % self.heads:
            problems.append(f"dim {self.dim} is not a multiple of heads {self.heads}; pick heads dividing dim")
        if self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.resize < self.patch_size:
            problems.append(f"resize {self.resize} is smaller than one patch ({self.patch_size})")
        for name in ("structure_layer", "cls_layer"):
            value = getattr(self, name)
            if not 0 <= value < self.depth:
                problems.append(f"{name} {value} is not a block index 0..{self.depth - 1}; pass {name}=")
        if problems:
            raise InputError("bad DINO config: " + "; ".join(problems))

    @property
    def grid(self) -> int:
        """Side of the learned position grid (14 for ViT-B/16 at 224)."""
        return self.image_size // self.patch_size

    @property
    def hidden(self) -> int:
        """MLP hidden width, ``int(dim·mlp_ratio)`` as DINO's ``Block``."""
        return int(self.dim * self.mlp_ratio)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DinoConfig":
        """Inverse of :meth:`to_dict`; unknown or malformed fields are an :class:`InputError`."""
        if not isinstance(data, Mapping):
            raise InputError(f"a DINO config is a dict, not a {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise InputError(f"DINO config has unknown fields {unknown}; known: {sorted(fields)}")
        return cls(**data)


class DinoFeatures(NamedTuple):
    """What the Splicing-ViT losses read: ``keys`` B×tokens×dim, ``cls`` B×dim."""

    keys: torch.Tensor
    cls: torch.Tensor


class PatchEmbed(nn.Module):
    """DINO ``PatchEmbed``: a stride-``p`` conv, tokens in row-major order."""

    def __init__(self, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # B hw D


class Attention(nn.Module):
    """DINO ``Attention``: fused qkv projection (q | k | v, each heads × head_dim), softmax
    attention with scale head_dim^-½ (through ``scaled_dot_product_attention``), output proj."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """The attention output (after ``proj``) from this layer's own qkv output ``B×T×3D``."""
        b, t, three_d = qkv.shape
        d = three_d // 3
        q, k, v = qkv.view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3× B H T hd
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(self.qkv(x))


class Mlp(nn.Module):
    """DINO ``Mlp``: fc1 → exact GELU → fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """DINO ``Block``: pre-LN residual attention then pre-LN residual MLP (no drop-path at eval)."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Dino(nn.Module):
    """A frozen DINO ViT: the released code's ``dino_vitb16`` hub model (DINO's
    ``VisionTransformer``) as Splice's ``VitExtractor`` reads it.

    Parameter names equal DINO's, so its state dict loads as is. Weights have
    ``requires_grad=False`` and the module is in eval mode; gradients still flow to the images.
    """

    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.patch_embed = PatchEmbed(c.dim, c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, c.grid * c.grid + 1, c.dim))
        self.blocks = nn.ModuleList(Block(c.dim, c.heads, c.hidden) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim, eps=LN_EPS)
        # DINO's initialisation (truncated normal, std 0.02) so a fresh model is a sensible test net
        for p in (self.pos_embed, self.cls_token):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.cls_token.device

    def preprocess(self, images01: torch.Tensor) -> torch.Tensor:
        """``B×3×H×W`` in [0, 1] → the network input: shorter side to ``config.resize``
        (torchvision's rule for the longer side; bilinear, antialiased; skipped when it already
        is), then ImageNet normalisation. Differentiable; float32."""
        if images01.ndim != 4 or images01.shape[1] != 3:
            raise InputError(f"DINO takes B×3×H×W images in [0, 1]; got shape {tuple(images01.shape)}")
        x = images01.to(self.device, torch.float32)
        size = self.config.resize
        h, w = x.shape[-2:]
        short, long = (w, h) if w <= h else (h, w)
        if short != size:
            new_long = int(size * long / short)
            new_hw = (new_long, size) if w <= h else (size, new_long)
            x = F.interpolate(x, size=new_hw, mode="bilinear", align_corners=False, antialias=True)
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (x - mean) / std

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """The position table for an input of ``height×width`` pixels: ``1×(1+gh·gw)×dim``.

        DINO's ``interpolate_pos_encoding``: the stored table when the image is square with the
        native patch count; otherwise the patch part resampled bicubically with scale factors
        ``(g_out + 0.1)/g`` (DINO's guard against flooring), CLS row kept.
        """
        p, g, dim = self.config.patch_size, self.config.grid, self.config.dim
        gh, gw = height // p, width // p
        if gh * gw == g * g and height == width:
            return self.pos_embed
        grid = self.pos_embed[:, 1:].reshape(1, g, g, dim).permute(0, 3, 1, 2)  # 1 D g g
        grid = F.interpolate(grid, scale_factor=((gh + 0.1) / g, (gw + 0.1) / g), mode="bicubic")
        assert grid.shape[-2:] == (gh, gw), (tuple(grid.shape), gh, gw)
        return torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, dim)], dim=1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Network input ``B×3×H×W`` (preprocessed) → ``B×(1+gh·gw)×dim`` input tokens."""
        patches = self.patch_embed(x)  # B hw D
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding(*x.shape[-2:])

    def features(self, images01: torch.Tensor) -> DinoFeatures:
        """Structure keys and appearance CLS of a batch of images.

        Args:
            images01: ``B×3×H×W`` in [0, 1] (any size, one size per batch).

        Returns:
            :class:`DinoFeatures` ``(keys, cls)``: ``keys`` ``B×tokens×dim`` (block
            ``structure_layer``'s qkv keys, heads concatenated, CLS first) and ``cls`` ``B×dim``
            (CLS of block ``cls_layer``'s output, pre final norm). Blocks past the deepest one
            needed are not run; of block ``structure_layer`` only the qkv projection runs when no
            later output is needed.
        """
        c = self.config
        x = self.tokens(self.preprocess(images01))  # B T D
        keys = cls = None
        last = max(c.structure_layer, c.cls_layer)
        for i, block in enumerate(self.blocks[: last + 1]):
            qkv = block.attn.qkv(block.norm1(x))  # B T 3D: q | k | v, heads inside each
            if i == c.structure_layer:
                keys = qkv[..., c.dim : 2 * c.dim]
                if i == last and i != c.cls_layer:
                    break
            x = x + block.attn.attend(qkv)
            x = x + block.mlp(block.norm2(x))
            if i == c.cls_layer:
                cls = x[:, 0]
        assert keys is not None and cls is not None
        return DinoFeatures(keys, cls)

    def forward(self, images01: torch.Tensor) -> DinoFeatures:
        return self.features(images01)

    def final_tokens(self, images01: torch.Tensor) -> torch.Tensor:
        """All blocks and the final norm: ``B×tokens×dim`` (DINO's ``get_intermediate_layers``
        with n=1; not used by the losses)."""
        x = self.tokens(self.preprocess(images01))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def checkpoint(self, *, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
        """This model as a ``vsode/dino@1`` dict (plain types; :func:`load_dino` reads it back)."""
        state = {k: v.detach().to("cpu", dtype).clone() for k, v in self.state_dict().items()}
        return {"format": FORMAT, "config": self.config.to_dict(), "state_dict": state}


def save_dino(model: Dino, path: str | os.PathLike, *, dtype: torch.dtype = torch.float32, force: bool = True) -> Path:
    """Write ``model`` as a ``vsode/dino@1`` file (temp file + rename)."""
    from .fileio import save_torch

    return save_torch(model.checkpoint(dtype=dtype), path, force=force)


def load_dino(
    source: str | os.PathLike | Mapping[str, Any],
    *,
    device: str | torch.device = "cpu",
    heads: int | None = None,
    resize: int | None = None,
    structure_layer: int | None = None,
    cls_layer: int | None = None,
) -> Dino:
    """Load a DINO ViT strictly and return it frozen, in eval mode, float32, on ``device``.

    Args:
        source: a file path (``weights_only``; ``.safetensors`` through safetensors) or the dict
            ``torch.load`` gives: DINO's backbone state dict, timm's ``vit_*.dino`` state dict,
            or a ``vsode/dino@1`` checkpoint.
        device: where the model lives.
        heads: attention heads of a plain state dict, which the shapes cannot show; default
            ``dim // 64`` (DINO's ViT-S and ViT-B: head width 64). Must agree with a
            ``vsode/dino@1`` config.
        resize, structure_layer, cls_layer: override the feature settings (defaults: 244; the
            last block; block 8, or the checkpoint's own for ``vsode/dino@1``).

    Raises:
        InputError: missing or unreadable file, unknown layout, unknown / missing / misshapen
            keys (named), a config that does not fit.
        UnsafeCheckpointError: a pickle that would import code.
    """
    label, ckpt = _read(source)
    if not isinstance(ckpt, Mapping):
        raise InputError(f"{label}: a DINO checkpoint is a dict; this one is a {type(ckpt).__name__}")
    overrides = {
        k: v for k, v in (("resize", resize), ("structure_layer", structure_layer), ("cls_layer", cls_layer))
        if v is not None
    }
    if "format" in ckpt:
        if ckpt["format"] != FORMAT:
            raise InputError(f"{label}: format {ckpt['format']!r} is not a DINO checkpoint ({FORMAT})")
        if not isinstance(ckpt.get("config"), Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
            raise InputError(f"{label}: a {FORMAT} checkpoint needs the dicts config and state_dict")
        config = DinoConfig.from_dict(ckpt["config"])
        if heads is not None and heads != config.heads:
            raise InputError(f"{label}: heads={heads} contradicts the checkpoint's config (heads {config.heads})")
        config = dataclasses.replace(config, **overrides)
        state = dict(ckpt["state_dict"])
    elif isinstance(ckpt.get("cls_token"), torch.Tensor) and isinstance(ckpt.get("pos_embed"), torch.Tensor):
        state = {k: v for k, v in ckpt.items() if k not in IGNORED_KEYS}
        config = infer_config(state, label=label, heads=heads, **overrides)
    else:
        keys = [k for k in ckpt if isinstance(k, str)]
        hint = ""
        if "teacher" in ckpt or "student" in ckpt:
            hint = "; this is a DINO training checkpoint: extract the teacher's 'backbone.' weights first"
        raise InputError(
            f"{label}: neither a {FORMAT} checkpoint nor a DINO/timm ViT state dict (no cls_token/pos_embed; "
            f"top-level keys {_names(keys)}){hint}"
        )
    from .checkpoints.load import check_layout

    model = Dino(config)
    check_layout(model.state_dict(), state, f"{label}: the weights do not fit the DINO ViT")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.to(device)


def infer_config(
    state: Mapping[str, torch.Tensor],
    *,
    label: str = "checkpoint",
    heads: int | None = None,
    **overrides: Any,
) -> DinoConfig:
    """The :class:`DinoConfig` of a DINO/timm ViT state dict, read from its shapes.

    ``heads`` (not visible in the shapes) defaults to ``dim // 64``; ``structure_layer`` to the
    last block; other ``overrides`` are passed to the config.
    """
    need = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")
    missing = [k for k in need if not isinstance(state.get(k), torch.Tensor)]
    if missing:
        raise InputError(f"{label}: not a DINO ViT state dict: missing {_names(missing)}")
    cls, pos, patch = state["cls_token"], state["pos_embed"], state["patch_embed.proj.weight"]
    if cls.ndim != 3 or cls.shape[:2] != (1, 1):
        raise InputError(f"{label}: cls_token has shape {tuple(cls.shape)}; expected 1×1×dim")
    dim = int(cls.shape[-1])
    if patch.ndim != 4 or patch.shape[:2] != (dim, 3) or patch.shape[2] != patch.shape[3]:
        raise InputError(f"{label}: patch_embed.proj.weight has shape {tuple(patch.shape)}; expected dim×3×p×p")
    p = int(patch.shape[-1])
    n = pos.shape[1] - 1 if pos.ndim == 3 else -1
    g = math.isqrt(n) if n > 0 else 0
    if pos.ndim != 3 or pos.shape[0] != 1 or pos.shape[2] != dim or g * g != n:
        raise InputError(f"{label}: pos_embed has shape {tuple(pos.shape)}; expected 1×(1+g²)×{dim} with CLS")
    indices = sorted({int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))})
    if indices != list(range(len(indices))):
        raise InputError(f"{label}: blocks are not numbered 0..n-1: found {indices}")
    if heads is None:
        if dim % 64:
            raise InputError(f"{label}: dim {dim} is not a multiple of 64; pass heads= (not visible in the weights)")
        heads = dim // 64
    hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
    ratio = hidden // dim if hidden % dim == 0 else hidden / dim
    overrides.setdefault("structure_layer", len(indices) - 1)
    return DinoConfig(
        patch_size=p, dim=dim, depth=len(indices), heads=heads, mlp_ratio=ratio, image_size=g * p, **overrides
    )


def _read(source: str | os.PathLike | Mapping[str, Any]) -> tuple[str, Any]:
    if isinstance(source, Mapping):
        return "checkpoint", source
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"load_dino takes a path or a checkpoint dict, not {type(source).__name__}")
    path = Path(source)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise InputError(f"checkpoint file {path} does not exist")
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise InputError(f"{path}: reading .safetensors needs the safetensors package") from None
        try:
            return str(path), load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise InputError(f"cannot read checkpoint {path}: {exc}") from None
    from .checkpoints.load import safe_load

    return str(path), safe_load(path, map_location="cpu")


def _names(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


class ClipViTFeatures(nn.Module):
    """The DINO losses' features taken from a CLIP image tower instead (an open_clip ViT).

    The demo world has no DINO; its tiny CLIP's vision transformer stands in, giving the same two
    descriptors as :meth:`Dino.features`: the keys of block ``structure_layer``'s attention
    (computed from that block's ``ln_1`` input, CLS included) and the CLS token after block
    ``cls_layer``. Images in [0, 1] get CLIP's own preprocessing. Frozen, eval mode.
    """

    def __init__(self, clip: Any, *, structure_layer: int = -1, cls_layer: int | None = None) -> None:
        super().__init__()
        from .clip import ClipModel

        if not isinstance(clip, ClipModel) or not hasattr(clip.clip.visual, "transformer"):
            raise InputError("ClipViTFeatures needs a vsode ClipModel with a ViT image tower")
        self.visual = clip.clip.visual
        self.preprocess_config = clip.preprocess
        depth = len(self.visual.transformer.resblocks)
        self.structure_layer = structure_layer % depth
        self.cls_layer = (depth // 2 if cls_layer is None else cls_layer) % depth
        self.requires_grad_(False).eval()

    def features(self, images01: torch.Tensor) -> DinoFeatures:
        """B×3×H×W in [0, 1] → (keys B×tokens×width, cls B×width)."""
        from .clip import preprocess_images

        x = self.visual._embeds(preprocess_images(images01 * 2 - 1, self.preprocess_config))  # B N D
        keys = cls = None
        for i, block in enumerate(self.visual.transformer.resblocks):
            if i == self.structure_layer:
                width = x.shape[-1]
                attn = block.attn
                keys = F.linear(block.ln_1(x), attn.in_proj_weight[width : 2 * width], attn.in_proj_bias[width : 2 * width])
            x = block(x)
            if i == self.cls_layer:
                cls = x[:, 0]
            if keys is not None and cls is not None:
                break
        return DinoFeatures(keys, cls)

    forward = features
