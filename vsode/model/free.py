"""``--model none``: the applications' stages with published weights alone (an encoder, its StyleGAN2
and a CLIP), no VidStyleODE.

With no dynamics and no style network the W+ of a frame is its inversion, so an edit is the
inversion moved by the W+ offset that :mod:`vsode.optimize` finds for the prompt
(``vsode edit --model none --optimize N``): the way to edit real faces without a model trained
for them. :class:`FreeModel` answers what :class:`vsode.pipeline.Pipeline` asks of a model:
its backbones, the W+ layout, and W+ at output times (the anchor's inversions, interpolated
between frames and held past the ends, as anchored rendering does).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import torch

from ..errors import InputError
from ..progress import Progress, ensure
from .anchor import Anchor

NONE = "none"  # the --model value
# --model none's encoder when --encoder is not given: the first installed of these (e4e's codes
# edit better than pSp's, its paper's point), else the demo world's.
FREE_ENCODERS = ("e4e-ffhq-encode", "psp-ffhq-encode")
DEMO_ENCODER = "psp-demo"
DEMO_CLIP = "clip-demo"
FACE_CLIP = "clip-vit-b-32"


class FreeModel(torch.nn.Module):
    """An encoder, the generator it was trained with and a CLIP, in a model's place.

    No counterpart in the released code (VidStyleODE always has its networks); the nearest is
    StyleCLIP's latent optimisation, which also edits the inversion with CLIP alone.
    """

    def __init__(self, encoder: Any, generator: Any, clip: Any, refs: dict[str, dict[str, Any] | None]) -> None:
        super().__init__()
        self.encoder_module = encoder.requires_grad_(False).eval()
        self.generator_module = generator.requires_grad_(False).eval()
        self.clip_module = clip
        self.backbone_refs = dict(refs)
        name = (refs.get("encoder") or {}).get("name")
        self.config = SimpleNamespace(
            n_latent=generator.n_latent, style_dim=generator.style_dim,
            data_size=(encoder.input_size, encoder.input_size),
            backbones=SimpleNamespace(encoder=name, generator=(refs.get("generator") or {}).get("name"), clip=None),
        )
        self.dynamics = SimpleNamespace(nfe=0)

    def backbone(self, kind: str) -> Any:
        found = {"encoder": self.encoder_module, "generator": self.generator_module, "clip": self.clip_module}.get(kind)
        if found is None:
            raise InputError(f"--model none has no {kind}")
        return found

    @property
    def generator(self) -> Any:
        return self.generator_module

    @property
    def clip(self) -> Any:
        return self.clip_module

    def normalise_times(self, seconds: Any, t0: float) -> torch.Tensor:
        return torch.as_tensor(seconds, dtype=torch.float64).reshape(-1) - t0

    def decode_many(self, code: Any, times: Sequence[float] | torch.Tensor, styles: Sequence[torch.Tensor], *,
                    anchor: Anchor | None = None, batch_size: int = 16, progress: Progress | None = None,
                    **_: Any) -> Iterator[tuple[slice, list[torch.Tensor]]]:
        """The anchor's inversions at ``times``, a batch at a time, once per style (all alike)."""
        if anchor is None:
            raise InputError("--model none renders the input's own inversions; it cannot run with --anchor none")
        progress = ensure(progress)
        seconds = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
        for start in range(0, seconds.numel(), batch_size):
            frames = slice(start, min(start + batch_size, seconds.numel()))
            with progress.timed("anchor", frames.stop - frames.start):
                w = anchor.at(seconds[frames])[0].float()
            yield frames, [w for _ in styles]


def free_anchor(wplus: torch.Tensor, seconds: Sequence[float]) -> Anchor:
    """The anchor of a video's inversions for :class:`FreeModel` (no model W+: M is w_inv)."""
    return Anchor(torch.as_tensor(list(seconds), dtype=torch.float64), wplus, wplus, torch.zeros(1, 1))


def free_backbones(encoder: str | None, clip: str | None, cache_dir: Any = None) -> tuple[str, str]:
    """The encoder and CLIP ``--model none`` runs with: those given, else the first installed
    published face encoder (:data:`FREE_ENCODERS`) with CLIP ViT-B/32, else the demo world's."""
    if encoder is None:
        encoder = _installed(FREE_ENCODERS, cache_dir) or DEMO_ENCODER
    if clip is None:
        clip = DEMO_CLIP if encoder == DEMO_ENCODER else FACE_CLIP
    return encoder, clip


AUTO_STEPS = 12  # --optimize's steps when `vsode edit`'s default model resolves to the face weights


def face_weights(cache_dir: Any = None) -> tuple[str, str] | None:
    """The installed published face encoder and CLIP ``--model none`` would use, or None."""
    encoder = _installed(FREE_ENCODERS, cache_dir)
    if encoder is not None and _installed((FACE_CLIP,), cache_dir):
        return encoder, FACE_CLIP
    return None


def _installed(names: tuple[str, ...], cache_dir: Any) -> str | None:
    """The first of the registry ``names`` installed in the cache, or None."""
    from ..checkpoints import REGISTRY
    from ..checkpoints.cache import Cache

    cache = Cache.open(cache_dir)
    return next((name for name in names if cache.is_installed(REGISTRY.get(name))), None)


def resolve_auto(options: Any) -> Any:
    """``vsode edit``'s default model made concrete: where published face weights are installed
    (an FFHQ e4e/pSp encoder and CLIP ViT-B/32) and no model was named, ``--model none`` on them
    with ``--optimize`` (:data:`AUTO_STEPS` unless given), so a real face gets a real-face edit;
    else the demo model. Options naming a model are returned as they are."""
    import dataclasses

    from ..options import AUTO_MODEL, DEFAULT_MODEL

    if options.model != AUTO_MODEL:
        return options
    found = face_weights(options.cache_dir)
    if found is None and (options.encoder is not None or options.clip is not None):
        raise InputError("--encoder and --clip are for --model none; add --model none")
    if found is None or options.anchor == "none":  # the demo world's model; --anchor none asks for a model
        return dataclasses.replace(options, model=DEFAULT_MODEL)
    encoder, clip = found
    return dataclasses.replace(options, model=NONE, optimize=options.optimize or AUTO_STEPS,
                               encoder=options.encoder or encoder, clip=options.clip or clip)


def load_free(encoder: str | None, clip: str | None, *, device: torch.device, cache_dir: Any = None) -> FreeModel:
    """Resolve (no network) and load ``--model none``'s encoder, its own generator and a CLIP."""
    from ..checkpoints.cache import resolve
    from ..invert import model_ref
    from .io import load_backbone

    encoder, clip = free_backbones(encoder, clip, cache_dir)
    enc = load_backbone("encoder", encoder, cache_dir=cache_dir)
    generator = enc.generator
    if generator is None:
        raise InputError(f"encoder {encoder} holds no generator; --model none renders with the encoder's own decoder")
    clip_model = load_backbone("clip", clip, cache_dir=cache_dir)
    refs = {"encoder": model_ref(encoder, resolve(encoder, cache_dir=cache_dir), cache_dir),
            "generator": None, "clip": {"name": clip}}
    refs["encoder"]["kind"] = enc.kind
    refs["generator"] = {"name": f"{refs['encoder']['name']} decoder", "sha256": refs["encoder"]["sha256"]}
    return FreeModel(enc, generator, clip_model, refs).to(device)
