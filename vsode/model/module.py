"""The VidStyleODE module and the one encode → solve → decode path every application runs.

A video is a content code ``z_C`` (W+, the mean of its frames' inversions) plus the initial state
``z_d0`` of a latent ODE of its motion. For any frame time ``t`` the model solves the ODE to
``z_d(τ)``, lifts it to dynamics tokens, conditions the style code on them
(:class:`vsode.modulation.Modulation`) and maps ``z_C`` to ``w(τ) = z_C + 0.01·Δ(τ)``
(:class:`vsode.modulation.Mapper`); a frozen StyleGAN2 renders ``w``.

Time. ``τ = (t − t₀) / time_unit`` with ``t`` in seconds, ``t₀`` the first observed frame and
``time_unit = video_length / nominal_fps`` stored in the config (the released code's "video_length"
frames, at the dataset's frame rate), so a model behaves the same on any input frame rate.

The path: :meth:`VidStyleODE.encode_video` (frames, streamed in batches, → :class:`VideoCode`),
:meth:`VidStyleODE.trajectory` (one ``odeint`` call for every output time → :class:`Trajectory`,
one state per distinct time) and :meth:`VidStyleODE.decode_many` (per batch of output frames:
tokens, modulation and mapper → W+ per style). :meth:`VidStyleODE.solve` and
:meth:`VidStyleODE.decode` are the same path for a single style.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ..dynamics import Dynamics
from ..errors import InputError
from ..modulation import Mapper, Modulation
from ..progress import Progress, Stage, ensure
from .anchor import Anchor, rows_read
from .config import BACKBONE_KINDS, CONTENT_MODES, ModelConfig
from .prior import Prior

# --- the model -------------------------------------------------------------------------------------


@dataclasses.dataclass
class VideoCode:
    """What :meth:`VidStyleODE.encode_video` keeps of a video: enough to decode any frame time.

    content_code: n_latent × D (z_C). z_d0: C × h × w, the dynamics state at ``t0``.
    t0: seconds of the first observed frame. times: every observed time (seconds).
    """

    content_code: torch.Tensor
    z_d0: torch.Tensor
    t0: float
    times: tuple[float, ...]

    @property
    def duration(self) -> float:
        return self.times[-1] - self.times[0]


def content_code(wplus: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """z_C of a video from its frames' W+ (T × n × D): their mean, or the first frame's with
    ``mode="first"`` (released: the mean over the clip)."""
    if mode not in CONTENT_MODES:
        raise InputError(f"content mode {mode!r}: use one of {', '.join(CONTENT_MODES)}")
    if wplus.ndim != 3 or wplus.shape[0] < 1:
        raise InputError(f"W+ latents must be T×n×D with T ≥ 1, got {tuple(wplus.shape)}")
    return wplus.mean(0) if mode == "mean" else wplus[0]


_content_code = content_code  # VidStyleODE.encode_video's parameter hides the name


@dataclasses.dataclass
class Trajectory:
    """A solved video: the ODE states at each distinct τ (``rows × 1 × C × h × w``; row 0 is
    ``z_d0``) and, per requested time, its row. Memory grows with the distinct times, not with
    the tokens or W+ of every frame, which are made a batch at a time."""

    table: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return int(self.index.numel())

    def states(self, frames: slice) -> torch.Tensor:
        """States of a run of requested times, ``1 × b × C × h × w``."""
        rows = self.index[frames].to(self.table.device)
        return self.table.index_select(0, rows).transpose(0, 1)


class VidStyleODE(nn.Module):
    """The trainable VidStyleODE (released: the ``VidStyleODE`` LightningModule's ``bVAE_enc``,
    ``modulation_network`` and ``style_mapper``), with optional frozen backbones attached.

    ``dynamics`` encodes frames to ``z_d0`` and solves the ODE; ``modulation`` turns the style
    token and the dynamics tokens into three condition vectors; ``mapper`` maps ``z_C`` under
    them to W+. The generator and CLIP are attached with :meth:`attach` and are not part of the
    state dict.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.dynamics = Dynamics(config.dynamics)
        self.modulation = Modulation(config.modulation)
        self.mapper = Mapper(config.mapper)
        self._backbones: dict[str, Any] = {}
        self.backbone_refs: dict[str, dict[str, Any] | None] = {k: None for k in BACKBONE_KINDS}
        self.prior: Prior | None = None  # what `vsode generate` samples (fitted after training; not weights)

    # -- backbones (frozen, not saved) --

    def attach(self, **backbones: Any) -> "VidStyleODE":
        """Attach frozen backbones: ``generator=``, ``encoder=``, ``clip=``, ``dino=``."""
        for kind, module in backbones.items():
            if kind not in BACKBONE_KINDS:
                raise InputError(f"unknown backbone {kind!r}; one of {', '.join(BACKBONE_KINDS)}")
            if module is not None:
                module.requires_grad_(False).eval()
            self._backbones[kind] = module
        generator = self._backbones.get("generator")
        if generator is not None and getattr(generator, "n_latent", self.config.n_latent) != self.config.n_latent:
            raise InputError(
                f"generator gives {generator.n_latent} W+ rows, the model expects {self.config.n_latent}"
            )
        return self

    def backbone(self, kind: str) -> Any:
        module = self._backbones.get(kind)
        if module is None:
            raise InputError(f"this VidStyleODE has no {kind} attached; load it with load_model or attach({kind}=...)")
        return module

    def require_prior(self, label: str = "this model") -> Prior:
        """The model's :class:`~vsode.model.prior.Prior`, or an error naming the command that fits one."""
        if self.prior is None:
            raise InputError(
                f"{label} has no prior to sample motion from; fit one with `vsode fit-prior MODEL DATA -o OUT.pt` "
                "on its prepared training folder, or give --motion VIDEO"
            )
        return self.prior

    @property
    def generator(self) -> Any:
        return self.backbone("generator")

    @property
    def clip(self) -> Any:
        return self.backbone("clip")

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "VidStyleODE":  # .to()/.cuda() move backbones too
        super()._apply(fn, *args, **kwargs)
        for module in self._backbones.values():
            if module is not None:
                module._apply(fn, *args, **kwargs)
        return self

    # -- time --

    def normalise_times(self, seconds: Any, t0: float) -> torch.Tensor:
        """τ = (t − t0) / time_unit as a float64 tensor."""
        t = torch.as_tensor(seconds, dtype=torch.float64).reshape(-1)
        return (t - float(t0)) / self.config.time_unit

    # -- stages --

    @torch.no_grad()
    def style_code(
        self,
        content_code: torch.Tensor,
        *,
        source: str | Sequence[str] | None = None,
        target: str | Sequence[str] | None = None,
        strength: float = 1.0,
        image_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``z_S = CLIP_I(G(z_C)) + α·(CLIP_T(target) − CLIP_T(source))`` (un-normalised).

        content_code: B × n_latent × D. Without ``target`` the text term is zero.
        ``image_features`` reuses a computed ``CLIP_I(G(z_C))``. Returns B × clip_dim.
        """
        if content_code.dim() == 2:
            content_code = content_code[None]
        if image_features is None:
            image = self.generator.synthesize(content_code, noise="const")
            image_features = self.clip.encode_image(image).float()
        if target is None:
            return image_features
        if source is None:
            raise InputError("a text edit needs a source description as well as the target")
        direction = self.clip.encode_text(target).float() - self.clip.encode_text(source).float()
        return image_features + strength * direction.to(image_features.device)

    def decode_w(self, tokens: torch.Tensor, content_code: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Dynamics tokens ((Tq·B) × hw × D, time-major), z_C (B × n × D) and z_S (B × D) →
        W+ ((Tq·B) × n × D, time-major)."""
        batch = content_code.shape[0]
        if tokens.shape[0] % batch or style.shape[0] != batch:
            raise InputError(f"{tokens.shape[0]} token rows do not tile {batch} videos of content/style")
        repeats = tokens.shape[0] // batch
        content = content_code.repeat(repeats, 1, 1)  # row t*B + b holds video b
        style = style.reshape(batch, -1).repeat(repeats, 1)
        conds = self.modulation(style, tokens)
        return self.mapper(content, conds)

    def forward(
        self,
        frames: torch.Tensor,
        times: torch.Tensor,
        query: torch.Tensor,
        content_code: torch.Tensor,
        style: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training forward: frames B×T×3×H×W in [0,1] observed at normalised ``times`` (T),
        W+ at the normalised ``query`` times, (Tq·B) × n × D time-major."""
        z_d0 = self.dynamics.encode(frames, times, mask)
        _, tokens = self.dynamics.solve(z_d0, query)
        return self.decode_w(tokens, content_code, style)

    # -- the application API: the one encode → solve → decode path --

    def check_blend_mask(self, mask: Any) -> torch.Tensor:
        """A blend mask as an h×w tensor of weights in [0, 1] on the dynamics grid."""
        h, w = self.config.dynamics.grid
        mask = torch.as_tensor(mask, dtype=self.dynamics.state_dtype)
        if tuple(mask.shape) != (h, w):
            raise InputError(f"blend mask is {tuple(mask.shape)}; this model's dynamics grid is {h}x{w}")
        if mask.numel() and (mask.min() < 0 or mask.max() > 1):
            raise InputError("blend mask weights must lie in [0, 1]")
        return mask

    @torch.no_grad()
    def encode_video(
        self,
        frames: torch.Tensor | Iterable[torch.Tensor],
        times: Sequence[float] | torch.Tensor,
        *,
        latents: torch.Tensor | None = None,
        content_code: torch.Tensor | None = None,
        content: str = "mean",
        mask: torch.Tensor | None = None,
        stage: Stage | None = None,
        features: bool = False,
    ) -> VideoCode:
        """Encode one video's content and dynamics once.

        frames: T×3×H×W in [0, 1], or an iterable of such batches (streamed: only one feature
        map per frame is kept); any size, resized to the dynamics encoder's. times: their
        timestamps in seconds, strictly increasing. latents: T×n×D W+ inversions (the content
        code is :func:`content_code` of them), or give ``content_code`` (n×D) directly, e.g.
        from a single image. mask: T of 0/1, frames the ODE-GRU skips. stage: a progress stage
        advanced by each batch's frame count. features: the batches are already
        :meth:`Dynamics.features` maps (b×C×h×w), computed while the frames streamed past.
        """
        stamps = [float(t) for t in torch.as_tensor(times, dtype=torch.float64).reshape(-1)]
        n = len(stamps)
        if torch.is_tensor(frames):
            if frames.dim() != 4:
                raise InputError(f"frames must be T×3×H×W, got {tuple(frames.shape)}")
            if frames.shape[0] != n:
                raise InputError(f"{frames.shape[0]} frames but {n} timestamps")
        if content_code is None:
            if latents is None:
                raise InputError("encode_video needs the frames' W+ latents or a content code")
            if latents.shape[0] != n:
                raise InputError(f"{latents.shape[0]} latent rows for {n} frames")
            content_code = _content_code(latents, content)
        elif content not in CONTENT_MODES:
            raise InputError(f"content mode {content!r}: use one of {', '.join(CONTENT_MODES)}")
        if content_code.shape != (self.config.n_latent, self.config.style_dim):
            raise InputError(
                f"content code of shape {tuple(content_code.shape)}; this model takes "
                f"{self.config.n_latent}×{self.config.style_dim}"
            )
        device = next(self.parameters()).device
        batches = [frames] if torch.is_tensor(frames) else frames
        feats, done = None, 0
        for batch in batches:
            if batch.dim() != 4:
                raise InputError(f"frames must be T×3×H×W, got {tuple(batch.shape)}")
            f = batch[None] if features else self.dynamics.features(batch[None].to(device, torch.float32))  # 1 b C h w
            if done + f.shape[1] > n:
                raise InputError(f"more frames than the {n} timestamps")
            if feats is None:
                feats = f.new_empty((1, n, *f.shape[2:]))
            feats[:, done : done + f.shape[1]] = f
            done += f.shape[1]
            if stage is not None:
                stage.advance(f.shape[1])
        if feats is None or done != n:
            raise InputError(f"{done} frames but {n} timestamps")
        tau = self.normalise_times(stamps, stamps[0]).to(device)
        m = None if mask is None else torch.as_tensor(mask, device=device).reshape(-1)
        z_d0 = self.dynamics.encode_features(feats, tau.tolist(), m)[0]  # C h w
        grid = self.config.dynamics.grid
        assert tuple(z_d0.shape) == (self.dynamics.config.state_channels, *grid), tuple(z_d0.shape)
        return VideoCode(content_code.to(device).float(), z_d0, stamps[0], tuple(stamps))

    def trajectory(self, code: VideoCode, times: Sequence[float] | torch.Tensor) -> Trajectory:
        """The dynamics states at every requested time (seconds on the video's clock), from one
        ``odeint`` call forwards (and one backwards for times before the first frame).

        τ = (t − t0) / time_unit; equal τ (in the state dtype) share a row, τ = 0 is ``z_d0``."""
        dyn = self.dynamics
        dtype = dyn.state_dtype
        device = code.z_d0.device
        tau = self.normalise_times(times, code.t0).to(dtype).tolist()
        z0 = code.z_d0[None].to(device, dtype)  # 1 C h w
        pos = sorted({t for t in tau if t > 0})
        neg = sorted({t for t in tau if t < 0}, reverse=True)
        table = [z0[None]]  # row 0: τ = 0, then the τ > 0, then the τ < 0
        for part in (pos, neg):
            if part:
                grid = torch.tensor([0.0, *part], dtype=dtype, device=device)
                table.append(dyn.integrate(z0, grid)[1:])  # G 1 C h w
        row = {0.0: 0} | {t: 1 + k for k, t in enumerate(pos)} | {t: 1 + len(pos) + k for k, t in enumerate(neg)}
        table_t = table[0] if len(table) == 1 else torch.cat(table)
        return Trajectory(table_t, torch.tensor([row[t] for t in tau], dtype=torch.long))

    def tokens(self, trajectory: Trajectory, frames: slice,
               blend: tuple[Trajectory, torch.Tensor] | None = None) -> torch.Tensor:
        """Dynamics tokens of a run of requested times (b × hw × D); with ``blend=(other, mask)``
        the other trajectory's states inside the h×w mask: ``M·z_d^other + (1 − M)·z_d``."""
        states = trajectory.states(frames)  # 1 b C h w
        if blend is not None:
            other, mask = blend
            states = mask.to(states.device) * other.states(frames) + (1 - mask.to(states.device)) * states
        return self.dynamics.tokens(states)

    @torch.no_grad()
    def decode_many(
        self,
        code: VideoCode,
        times: Sequence[float] | torch.Tensor,
        styles: Sequence[torch.Tensor],
        *,
        blend: tuple[VideoCode, Any] | None = None,
        anchor: Anchor | None = None,
        batch_size: int = 16,
        dtype: torch.dtype | None = None,
        progress: Progress | None = None,
    ) -> Iterator[tuple[slice, list[torch.Tensor]]]:
        """W+ at ``times`` (seconds) for each style token (1 × clip_dim), a batch of frames at a
        time: yields ``(frames, [b × n × D per style])``.

        The ODE is solved once for all times (``blend=(other, mask)`` solves ``other`` too, its τ
        counted from its own first frame, and takes its motion inside the h×w mask); tokens are
        made once per batch and shared by the styles; the modulation network and mapper run per
        batch and style. ``anchor`` (an :class:`Anchor` of this video, made by :meth:`anchor`)
        turns each W+ into ``w̃(t) + W(t) − M̃(t)``; at an anchor frame of ``code``'s own anchor,
        without a blend, ``M̃`` is the anchor style's W+ from the same batch, so the unedited
        output there is the frame's inversion exactly. ``dtype``: run the modulation network and
        mapper under autocast to it (``torch.bfloat16``: the applications' ``--precision bf16``; W+
        within 2e-2 of fp32, relative to W+ − z_C, tested); the W+ are float32 either way.
        ``progress`` times the ``solve``, ``tokens``, ``modulation+mapper`` and ``anchor`` stages.
        """
        if batch_size < 1:
            raise InputError(f"batch size {batch_size} must be at least 1")
        progress = ensure(progress)
        seconds = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
        n = int(seconds.numel())
        with progress.stage("solve", frames=n):
            trajectory = self.trajectory(code, seconds)
            mixing = None
            if blend is not None:
                other, mask = blend
                mixing = (self.trajectory(other, seconds), self.check_blend_mask(mask).to(code.z_d0.device))
        content = code.content_code[None]  # 1 n D
        cfg = self.config
        for start in range(0, n, batch_size):
            frames = slice(start, min(start + batch_size, n))
            count = frames.stop - frames.start
            with progress.timed("tokens", count):
                tokens = self.tokens(trajectory, frames, mixing)
            out = []
            for style in styles:
                with progress.timed("modulation+mapper", count), self._autocast(dtype, tokens.device):
                    w = self.decode_w(tokens, content, style.reshape(1, -1).to(tokens.device)).float()
                assert tuple(w.shape) == (count, cfg.n_latent, cfg.style_dim), tuple(w.shape)
                out.append(w)
            if anchor is not None:
                with progress.timed("anchor", count), self._autocast(dtype, tokens.device):
                    own = blend is None and anchor.code is code  # the anchored video itself
                    out = self._anchored(out, styles, anchor, seconds[frames], tokens, content, own)
            yield frames, out

    @staticmethod
    def _autocast(dtype: torch.dtype | None, device: torch.device) -> Any:
        """Autocast to ``dtype`` on ``device`` (none for None or float32)."""
        enabled = dtype is not None and dtype != torch.float32
        return torch.autocast(device.type, dtype=dtype if enabled else None, enabled=enabled)

    def _anchored(self, out: list[torch.Tensor], styles: Sequence[torch.Tensor], anchor: Anchor,
                  seconds: torch.Tensor, tokens: torch.Tensor, content: torch.Tensor,
                  own_motion: bool) -> list[torch.Tensor]:
        """``w̃ + W − M̃`` for each style's W+ of one batch, its motion scaled and limited by the
        anchor's ``gain`` and ``limit`` where it has them (see :mod:`vsode.model.anchor`)."""
        device = out[0].device
        w_inv, m_anchor, hit = (x.to(device) for x in anchor.at(seconds))
        if own_motion and bool(hit.any()):  # the anchored video itself: M̃ at its frames is M, here
            same = [k for k, style in enumerate(styles) if style is anchor.style]
            m_here = out[same[0]] if same else \
                self.decode_w(tokens, content, anchor.style.reshape(1, -1).to(device)).float()
            m_anchor = torch.where(hit[:, None, None], m_here, m_anchor)
        return [w_inv + anchor.scaled(w - m_anchor) for w in out]  # gain 1, no limit: w − M̃ bit for bit

    @torch.no_grad()
    def anchor(self, code: VideoCode, wplus: torch.Tensor, seconds: Sequence[float] | torch.Tensor,
               style: torch.Tensor, *, at: Sequence[float] | torch.Tensor | None = None,
               batch_size: int = 16, dtype: torch.dtype | None = None) -> Anchor:
        """The :class:`Anchor` of a video: its inversions ``wplus`` (K × n × D) at its frame times
        ``seconds`` and the model's own W+ there under ``style`` (the unedited style token).

        ``at``: the times a render of this video itself (no blend) will ask for; the model's W+
        are then decoded only at the anchor frames that render reads (none for an edit, whose
        times are all anchor frames). Without ``at``, at every anchor frame. ``dtype`` as
        :meth:`decode_many`'s."""
        seconds = torch.as_tensor(seconds, dtype=torch.float64).reshape(-1)
        if wplus.shape[0] != seconds.numel():
            raise InputError(f"{wplus.shape[0]} inversions for {seconds.numel()} anchor times")
        device = code.z_d0.device
        rows = torch.arange(seconds.numel()) if at is None else \
            rows_read(seconds, torch.as_tensor(at, dtype=torch.float64))
        if not rows.numel():  # an edit: no row is read, so none is held (one zero row, expanded)
            model = torch.zeros((1, *wplus.shape[1:]), dtype=torch.float32, device=device).expand(wplus.shape)
        else:
            model = torch.zeros(wplus.shape, dtype=torch.float32, device=device)
            model[rows.to(device)] = torch.cat(
                [w for _, (w,) in self.decode_many(code, seconds[rows], [style], batch_size=batch_size, dtype=dtype)])
        return Anchor(seconds, wplus.to(device, model.dtype), model, style, code)

    @torch.no_grad()
    def solve(
        self,
        code: VideoCode,
        times: Sequence[float] | torch.Tensor,
        *,
        blend: tuple[VideoCode, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Dynamics tokens ((Tq) × hw × D) at ``times`` (seconds on the video's own clock), from
        :meth:`trajectory` (one ODE solve for all times). ``blend=(other, mask)`` takes
        ``other``'s motion inside the h×w cell mask: ``z_d = M·z_d^other + (1 − M)·z_d^self``."""
        trajectory = self.trajectory(code, times)
        mixing = None
        if blend is not None:
            other, mask = blend
            mixing = (self.trajectory(other, times), self.check_blend_mask(mask).to(code.z_d0.device))
        return self.tokens(trajectory, slice(None), mixing)

    @torch.no_grad()
    def decode(
        self,
        code: VideoCode,
        times: Sequence[float] | torch.Tensor,
        *,
        style: torch.Tensor | None = None,
        blend: tuple[VideoCode, torch.Tensor] | None = None,
        batch_size: int = 16,
    ) -> Iterator[torch.Tensor]:
        """W+ codes at ``times`` (seconds), yielded in batches of ``batch_size`` frames (b × n × D):
        :meth:`decode_many` with one style, ``CLIP_I(G(z_C))`` by default."""
        if style is None:
            style = self.style_code(code.content_code[None])
        for _, (w,) in self.decode_many(code, times, [style], blend=blend, batch_size=batch_size):
            yield w
