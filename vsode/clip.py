"""CLIP through open_clip: loading, the paper's image preprocessing, text, zero-shot scores.

VidStyleODE uses CLIP ViT-B/32 as a frozen feature extractor (design §2, §9.1): the style code
``z_S = CLIP_I(G(z_C)) + α·(CLIP_T(target) − CLIP_T(source))`` takes *un-normalised* embeddings,
images arrive in [-1, 1] and are preprocessed as ``(x+1)/2`` → resize the shorter side (bicubic)
→ center crop → normalise with the checkpoint's mean/std; text goes through CLIP's BPE tokenizer
(77 tokens). :class:`ClipModel` does exactly that around an ``open_clip.CLIP`` built from a config.

Two checkpoint layouts load (:func:`load_clip`), always with ``weights_only=True``:

* ``vsode/clip@1``, self-describing: ``{"format", "name", "config" (open_clip model config),
  "preprocess", "state_dict", "sparse_rows"}``. ``sparse_rows`` holds parameters stored as a
  few rows (``{"rows": int64[n], "values": [n, ...]}``, all other rows zero): the demo CLIP keeps
  only the token-embedding rows its captions use, not all 49,408. Tensors may be stored in
  float16; the model always computes in float32.
* open_clip's plain state dict (``open_clip_pytorch_model.bin``), e.g. the OpenAI ViT-B/32
  weights, for which the layout alone does not say GELU or QuickGELU: ``model_name`` names the
  open_clip config (``ViT-B-32-quickgelu`` by default, the paper's model).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError

FORMAT = "vsode/clip@1"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_MODEL_NAME = "ViT-B-32-quickgelu"  # what open_clip calls OpenAI's ViT-B/32 (QuickGELU)
_RESIZE_MODES = ("bicubic", "bilinear")
_CROP_MODES = ("center",)


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """How images become CLIP input; travels with the weights.

    ``image_size``: side of the square the tower sees (the shorter side is resized to it, then
    center-cropped). ``mean``/``std``: per-channel normalisation of [0, 1] RGB. ``resize``:
    interpolation (antialiased, as torchvision's tensor ``Resize``). ``crop``: only "center".
    """

    image_size: int
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    resize: str = "bicubic"
    crop: str = "center"

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, int) or self.image_size < 1:
            raise InputError(f"CLIP preprocess image_size {self.image_size!r} must be a positive integer")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 3 or not all(
                isinstance(v, (int, float)) for v in value
            ):
                raise InputError(f"CLIP preprocess {name} {value!r} must be three numbers (RGB)")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if min(self.std) <= 0:
            raise InputError(f"CLIP preprocess std {self.std} must be positive")
        if self.resize not in _RESIZE_MODES:
            raise InputError(f"CLIP preprocess resize {self.resize!r}; use one of {', '.join(_RESIZE_MODES)}")
        if self.crop not in _CROP_MODES:
            raise InputError(f"CLIP preprocess crop {self.crop!r}; use one of {', '.join(_CROP_MODES)}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}


def preprocess_images(images: torch.Tensor, pp: Preprocess) -> torch.Tensor:
    """The paper's CLIP preprocessing (design §9.1) of ``B×3×H×W`` images in [-1, 1].

    ``(x+1)/2``; resize so the shorter side is ``pp.image_size`` (torchvision's rule for the
    longer side, antialiased; skipped when it already is); center crop; ``(x − mean)/std``.
    Differentiable. Returns float32 ``B×3×S×S``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"CLIP takes B×3×H×W images in [-1, 1]; got shape {tuple(images.shape)}")
    x = (images.float() + 1) / 2
    size = pp.image_size
    h, w = x.shape[-2:]
    short, long = (w, h) if w <= h else (h, w)
    if short != size:
        new_long = int(size * long / short)
        new_hw = (new_long, size) if w <= h else (size, new_long)
        x = F.interpolate(x, size=new_hw, mode=pp.resize, align_corners=False, antialias=True)
        h, w = new_hw
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    x = x[..., top : top + size, left : left + size]
    mean = x.new_tensor(pp.mean).view(1, 3, 1, 1)
    std = x.new_tensor(pp.std).view(1, 3, 1, 1)
    return (x - mean) / std  # B 3 S S


@functools.lru_cache(maxsize=4)
def _tokenizer(context_length: int) -> Any:
    import open_clip

    return open_clip.SimpleTokenizer(context_length=context_length)


class ClipModel(nn.Module):
    """A frozen CLIP with its preprocessing and tokenizer: the released code's
    ``clip.load("ViT-B/32")`` model as ``CLIPLoss`` uses it (``encode_image`` after its
    Normalize/Resize/CenterCrop composition, ``encode_text`` of ``clip.tokenize``).

    Attributes: ``clip`` (the ``open_clip.CLIP``), ``preprocess`` (:class:`Preprocess`), ``name``,
    ``embed_dim``, ``image_size``, ``context_length``, ``config`` (the open_clip model config).
    Weights have ``requires_grad=False``; gradients still flow to the *inputs* of
    :meth:`encode_image` (the CLIP losses need them).
    """

    def __init__(self, clip: nn.Module, preprocess: Preprocess, *, name: str, config: Mapping[str, Any]):
        super().__init__()
        self.clip = clip
        self.preprocess = preprocess
        self.name = name
        self.config = dict(config)
        self.embed_dim = int(config["embed_dim"])
        self.image_size = preprocess.image_size
        self.context_length = int(clip.context_length)
        self.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.clip.logit_scale.device

    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        """CLIP BPE token ids, ``B×context_length`` int64 on the model's device (truncated to fit,
        ending in the end-of-text token)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise InputError("CLIP text input must be a non-empty list of strings")
        return _tokenizer(self.context_length)(texts).to(self.device)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``B×3×H×W`` images in [-1, 1] (any size) → ``B×embed_dim`` float32, not normalised."""
        x = preprocess_images(images.to(self.device), self.preprocess)
        return self.clip.encode_image(x).float()

    def encode_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Prompts → ``B×embed_dim`` float32, not normalised."""
        return self.clip.encode_text(self.tokenize(texts)).float()

    @torch.no_grad()
    def zero_shot(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``B×P`` probabilities: softmax over prompts of ``logit_scale · cos(image, prompt)``."""
        img = F.normalize(self.encode_image(images), dim=-1)
        txt = F.normalize(self.encode_text(prompts), dim=-1)
        logits = self.clip.logit_scale.exp().float() * img @ txt.T  # B P
        return logits.softmax(dim=-1)

    def checkpoint(self, *, dtype: torch.dtype = torch.float16, sparse: Sequence[str] = ()) -> dict[str, Any]:
        """This model as a ``vsode/clip@1`` dict (plain types; :func:`load_clip` reads it back).

        ``dtype``: storage of floating tensors. ``sparse``: parameter names stored as their
        non-zero rows only (e.g. ``["token_embedding.weight"]``).
        """
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in self.clip.state_dict().items()}
        state = {k: v.clone() for k, v in state.items()}  # own storage, never views of the live model
        sparse_rows = {}
        for key in sparse:
            full = state.pop(key)
            rows = full.flatten(1).ne(0).any(dim=1).nonzero().flatten()
            sparse_rows[key] = {"rows": rows, "values": full[rows].clone()}
        return {
            "format": FORMAT,
            "name": self.name,
            "config": _plain(self.config),
            "preprocess": self.preprocess.to_dict(),
            "state_dict": state,
            "sparse_rows": sparse_rows,
        }


def build_clip(config: Mapping[str, Any], *, meta: bool = False) -> nn.Module:
    """An ``open_clip.CLIP`` from a model config dict (as in open_clip's ``model_configs/*.json``).

    Only open_clip's own towers are allowed (no timm or Hugging Face models: those would fetch
    weights). ``meta`` builds it without memory, to compare shapes.
    """
    import open_clip

    if not isinstance(config, Mapping) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(config):
        raise InputError("a CLIP config needs embed_dim, vision_cfg and text_cfg (an open_clip model config)")
    vision, text = config["vision_cfg"], config["text_cfg"]
    if not isinstance(vision, Mapping) or not isinstance(text, Mapping):
        raise InputError("CLIP config vision_cfg and text_cfg must be dicts")
    if vision.get("timm_model_name") or text.get("hf_model_name") or text.get("hf_tokenizer_name"):
        raise InputError("CLIP config names a timm/Hugging Face tower; vsode builds open_clip's own only")
    vocab = text.get("vocab_size", 49408)
    if vocab != _tokenizer(77).vocab_size:
        raise InputError(f"CLIP config vocab_size {vocab}: CLIP's BPE tokenizer (vsode's) needs 49408")
    try:
        with torch.device("meta" if meta else "cpu"):
            return open_clip.CLIP(**config)
    except (TypeError, ValueError, AssertionError) as exc:
        raise InputError(f"invalid open_clip model config: {exc}") from None


def load_clip(
    source: str | os.PathLike | Mapping[str, Any],
    *,
    device: str | torch.device = "cpu",
    model_name: str = DEFAULT_MODEL_NAME,
) -> ClipModel:
    """Load a CLIP checkpoint strictly and return a frozen :class:`ClipModel` in eval mode.

    Args:
        source: a file path (read with ``weights_only=True``) or the dict ``torch.load`` gives:
            a ``vsode/clip@1`` checkpoint, or an open_clip state dict (optionally under
            ``"state_dict"`` with ``module.`` prefixes, as open_clip's training saves it).
        device: where the model lives.
        model_name: the open_clip config of a plain state dict (ignored for ``vsode/clip@1``,
            which carries its config): ``ViT-B-32-quickgelu`` for OpenAI's weights,
            ``ViT-B-32`` for GELU ones such as LAION's.

    Raises:
        InputError: missing or unreadable file, unknown layout or config, keys or shapes that
            do not match the model (the message names them).
        UnsafeCheckpointError: a pickle that would import code.
    """
    if isinstance(source, Mapping):
        label, ckpt = "checkpoint", source
    elif isinstance(source, (str, os.PathLike)):
        from .checkpoints.load import safe_load

        label, ckpt = os.fspath(source), safe_load(source, map_location="cpu")
    else:
        raise InputError(f"load_clip takes a path or a checkpoint dict, not {type(source).__name__}")
    if not isinstance(ckpt, Mapping):
        raise InputError(f"{label}: a CLIP checkpoint is a dict; this one is a {type(ckpt).__name__}")

    if "format" in ckpt:
        if ckpt["format"] != FORMAT:
            raise InputError(f"{label}: format {ckpt['format']!r} is not a CLIP checkpoint ({FORMAT})")
        config, state, pp, name = _read_vsode(label, ckpt)
    else:
        config, state, pp, name = _read_open_clip(label, ckpt, model_name)

    if pp.image_size != _tower_image_size(config):
        raise InputError(f"{label}: preprocess image_size {pp.image_size} differs from the vision tower's")
    from .checkpoints.load import check_layout

    check_layout(build_clip(config, meta=True).state_dict(), state, f"{label}: the weights do not fit the CLIP config")
    clip = build_clip(config)
    clip.load_state_dict(state, strict=True)
    return ClipModel(clip.float(), pp, name=name, config=config).to(device)


def _read_vsode(label: str, ckpt: Mapping[str, Any]) -> tuple[dict, dict, Preprocess, str]:
    missing = [k for k in ("config", "preprocess", "state_dict") if not isinstance(ckpt.get(k), Mapping)]
    if missing:
        raise InputError(f"{label}: {FORMAT} checkpoint lacks the dict(s) {', '.join(missing)}")
    try:
        pp = Preprocess(**ckpt["preprocess"])
    except TypeError as exc:
        raise InputError(f"{label}: bad preprocess {dict(ckpt['preprocess'])!r} ({exc})") from None
    state = dict(ckpt["state_dict"])
    sparse = ckpt.get("sparse_rows") or {}
    if not isinstance(sparse, Mapping):
        raise InputError(f"{label}: sparse_rows must be a dict")
    shapes = build_clip(ckpt["config"], meta=True).state_dict()
    for key, table in sparse.items():
        if key in state or key not in shapes:
            raise InputError(f"{label}: sparse_rows key {key!r} is not a model parameter, or is duplicated")
        if not isinstance(table, Mapping):
            table = {}
        rows, values = table.get("rows"), table.get("values")
        full = tuple(shapes[key].shape)
        if (
            not isinstance(rows, torch.Tensor) or not isinstance(values, torch.Tensor)
            or rows.ndim != 1 or rows.dtype != torch.int64 or tuple(values.shape) != (len(rows), *full[1:])
            or (len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= full[0]))
        ):
            raise InputError(
                f"{label}: sparse_rows[{key!r}] must be int64 rows below {full[0]} and values of shape "
                f"[n, {', '.join(map(str, full[1:]))}]"
            )
        dense = torch.zeros(full, dtype=values.dtype)
        dense[rows] = values
        state[key] = dense
    name = ckpt.get("name") if isinstance(ckpt.get("name"), str) else Path(label).stem
    return dict(ckpt["config"]), state, pp, name


def _read_open_clip(
    label: str, ckpt: Mapping[str, Any], model_name: str
) -> tuple[dict, dict, Preprocess, str]:
    import open_clip

    state = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), Mapping) else ckpt
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}  # DDP training checkpoints
    if "visual.conv1.weight" not in state or "token_embedding.weight" not in state:
        keys = [k for k in ckpt if isinstance(k, str)][:8]
        raise InputError(
            f"{label}: neither a {FORMAT} checkpoint nor an open_clip state dict (top-level keys {keys}); "
            "OpenAI's TorchScript ViT-B-32.pt must be converted to a state dict first"
        )
    config = open_clip.get_model_config(model_name)
    if config is None:
        raise InputError(f"unknown open_clip model config {model_name!r}; e.g. {DEFAULT_MODEL_NAME}")
    pp = Preprocess(image_size=_tower_image_size(config))
    return dict(config), dict(state), pp, model_name


def _tower_image_size(config: Mapping[str, Any]) -> int:
    size = config["vision_cfg"].get("image_size", 224)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise InputError(f"CLIP vision image_size {size} is not square; vsode center-crops squares")
        size = size[0]
    return int(size)


def _plain(value: Any) -> Any:
    """Config values as plain lists/dicts/scalars (weights_only-loadable, JSON-ready)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
