"""Style + dynamics → per-group condition vectors → W+ offsets: the modulation network and mapper.

Two trainable stages of VidStyleODE (design part 2, §3 and §4), re-implemented with the
parameter names of the released code so that a state dict trained with it maps onto ours by a
prefix rename (``modulation_network.`` → ``modulation.``, ``style_mapper.`` → ``mapper.``):

- :class:`Modulation` (released ``src/modules/minigpt.py`` ``CrossAttentionModulation``): self
  attention among the dynamics tokens of each frame, then two cross-attention branches in which
  the single style token queries those tokens. It returns three condition vectors: coarse and
  medium carry the dynamics, fine is a LayerNorm + linear map of the style token alone.
- :class:`Mapper` (released ``src/modules/mapper.py`` ``AttentionAttributeMapper``): per layer
  group of the content code, a PixelNorm over the *layer* axis and a stack of FiLM-like modulation
  modules (HairCLIP's ``ModulationModule``), each ending in LeakyReLU(0.01); the result Δ is added
  as ``w = z_C + delta_weight·Δ``.

The quirks of the released code are kept on purpose (design §15 item 25): no causal mask in the
"causal" self attention, PixelNorm along the layer axis, the group LayerNorm joint over all rows
and channels without affine parameters, the positive bias of Δ from the final LeakyReLU.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` (``impl="fast"``,
the default through ``"auto"``); ``impl="reference"`` is the plain ``softmax(QKᵀ/√d)·V`` the
released code writes out, which the tests hold the fast path to.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError

IMPLS = ("auto", "reference", "fast")
GROUP_NAMES = ("coarse", "medium", "fine")
PIXEL_NORM_EPS = 1e-8
LEAKY_SLOPE = 0.01


def resolve_impl(impl: str) -> str:
    """Map ``"auto"`` to the attention implementation used (``"fast"``); reject unknown names."""
    if impl not in IMPLS:
        raise InputError(f"attention impl={impl!r} is not one of {', '.join(IMPLS)}")
    return "fast" if impl == "auto" else impl


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _config_from_dict(cls: type, data: Mapping[str, Any], label: str, tuples: Sequence[str] = ()) -> Any:
    """Build a frozen config dataclass from plain JSON types, turning lists back into tuples."""
    if not isinstance(data, Mapping):
        raise InputError(f"{label} is a {type(data).__name__}, not a dict")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{label} has unknown fields {unknown}; known: {sorted(known)}")
    kwargs = dict(data)
    for name in tuples:
        if isinstance(kwargs.get(name), list):
            kwargs[name] = tuple(kwargs[name])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"{label} is malformed ({exc})") from None


# --- modulation network ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModulationConfig:
    """Sizes of the modulation network (released ``CrossAttentionModulation``; defaults = both
    released configs except ``n_tokens``: 64 for RAVDESS' 8×8 grid, 48 for Fashion's 8×6).

    Parameters
    ----------
    n_embd: width of the style and dynamics tokens and of every block (released ``n_embd``).
    n_head: attention heads; must divide ``n_embd``.
    n_self_layers: self-attention blocks over the dynamics tokens (released ``dyn_attn_n_layer``).
    n_cross_layers: cross-attention depth of the coarse and the medium branch (``n_layer``).
    n_tokens: rows of the dynamics position embedding (``dyn_block_size``); the number of
        dynamics tokens of a frame may not exceed it (only the first ones are used).
    self_mlp_ratio / cross_mlp_ratio: hidden width of the block MLPs over ``n_embd`` (4 and 2).
    out_dim: width of the three condition vectors (the heads' output).
    init_std: standard deviation of the Linear weights at construction (released minGPT: 0.02).
        A small model trained briefly may want more: at 0.02 and width 128 the style token's
        attention starts nearly uniform, reading little more than the mean of the dynamics
        tokens, in which a translated face looks much the same (see
        ``scripts/diagnose_demo_motion.py``).
    """

    n_embd: int = 512
    n_head: int = 8
    n_self_layers: int = 6
    n_cross_layers: int = 8
    n_tokens: int = 64
    self_mlp_ratio: int = 4
    cross_mlp_ratio: int = 2
    out_dim: int = 512
    init_std: float = 0.02

    def __post_init__(self) -> None:
        problems = []
        std = self.init_std
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not 0 < std < math.inf:
            problems.append(f"init_std {std!r} must be a positive number")
        for name in ("n_embd", "n_head", "n_tokens", "self_mlp_ratio", "cross_mlp_ratio", "out_dim"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append(f"{name} {value!r} must be an integer ≥ 1")
        for name in ("n_self_layers", "n_cross_layers"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                problems.append(f"{name} {value!r} must be an integer ≥ 0")
        if not problems and self.n_embd % self.n_head:
            problems.append(f"n_head {self.n_head} does not divide n_embd {self.n_embd}; pick a divisor")
        if problems:
            raise InputError("bad modulation config: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModulationConfig":
        """Inverse of :meth:`to_dict`; unknown or malformed fields are an :class:`InputError`."""
        return _config_from_dict(cls, data, "modulation config")


class Attention(nn.Module):
    """Multi-head attention with separate key/query/value/output projections and no mask.

    Released ``CausalSelfAttention`` (self blocks; despite the name, unmasked) and
    ``MultiHeadAttention`` (cross blocks): the same parameters, queries from ``x``, keys and
    values from ``y``.
    """

    def __init__(self, dim: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        # Declaration order = the released state-dict order.
        self.key = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        n, length, dim = t.shape
        return t.view(n, length, self.n_head, dim // self.n_head).transpose(1, 2)  # N H T d

    def forward(self, x: torch.Tensor, y: torch.Tensor, impl: str = "auto") -> torch.Tensor:
        n, t_q, dim = x.shape
        q = self._heads(self.query(x))
        k = self._heads(self.key(y))
        v = self._heads(self.value(y))
        if resolve_impl(impl) == "reference":
            att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1]), dim=-1)
            out = att @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)  # default scale 1/√d, no mask
        return self.proj(out.transpose(1, 2).reshape(n, t_q, dim))


def _mlp(dim: int, ratio: int) -> nn.Sequential:
    # Released: Linear, GELU (exact), Linear, Dropout(0); the keys are mlp.0 and mlp.2.
    return nn.Sequential(nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))


class Block(nn.Module):
    """Pre-LN self-attention block (released ``minigpt.Block``): x += attn(ln1 x); x += mlp(ln2 x)."""

    def __init__(self, dim: int, n_head: int, mlp_ratio: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.attn = Attention(dim, n_head)
        self.mlp = _mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, impl: str = "auto") -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, impl)
        return x + self.mlp(self.ln2(x))


class CrossBlock(nn.Module):
    """Pre-LN cross-attention block (released ``minigpt.CrossBlock``): the queries come from
    ``x_ln1(x)``, keys and values from ``y_ln1(y)``; then x += mlp(ln2 x)."""

    def __init__(self, dim: int, n_head: int, mlp_ratio: int) -> None:
        super().__init__()
        self.x_ln1 = nn.LayerNorm(dim)
        self.y_ln1 = nn.LayerNorm(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.attn = Attention(dim, n_head)
        self.mlp = _mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, y: torch.Tensor, impl: str = "auto") -> torch.Tensor:
        x = x + self.attn(self.x_ln1(x), self.y_ln1(y), impl)
        return x + self.mlp(self.ln2(x))


class Modulation(nn.Module):
    """The modulation network (released ``CrossAttentionModulation`` with
    ``shared_attn_params=False``, ``content_block_size=1``, dropouts 0).

    ``attend(tokens)`` adds the dynamics position embedding and runs the self blocks: it depends
    on the dynamics only, so a caller may cache it per driver video. ``cross(style, attended)``
    runs the two cross-attention branches (coarse = ``blocks[ℓ][0]``, medium = ``blocks[ℓ][1]``)
    with the style token as the only query, and reads the three condition vectors from it; the
    fine one never sees the dynamics. ``forward`` is both.

    State-dict keys equal the released ``modulation_network.*`` sub-keys, in the same order.
    Initialisation as released: Linear weights N(0, ``init_std`` = 0.02) and zero biases,
    LayerNorms 1/0, both position embeddings zero.
    """

    def __init__(self, config: ModulationConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ModulationConfig()
        d = config.n_embd
        self.content_pos_emd = nn.Parameter(torch.zeros(1, 1, d))  # released spelling
        self.dyn_pos_emb = nn.Parameter(torch.zeros(1, config.n_tokens, d))
        self.slf_blocks = nn.ModuleList(
            Block(d, config.n_head, config.self_mlp_ratio) for _ in range(config.n_self_layers)
        )
        self.blocks = nn.ModuleList(
            nn.ModuleList(CrossBlock(d, config.n_head, config.cross_mlp_ratio) for _ in range(2))
            for _ in range(config.n_cross_layers)
        )
        self.ln_f = nn.ModuleList(nn.LayerNorm(d) for _ in GROUP_NAMES)
        self.head = nn.ModuleList(nn.Linear(d, config.out_dim, bias=False) for _ in GROUP_NAMES)
        self.apply(lambda module: _gpt_init(module, float(config.init_std)))

    def attend(self, tokens: torch.Tensor, *, impl: str = "auto") -> torch.Tensor:
        """Self attention among each frame's dynamics tokens.

        tokens: ``N × HW × n_embd`` (one row per frame and batch item, HW ≤ ``n_tokens``).
        Returns ``N × HW × n_embd``. There is no attention across frames (rows of N).
        """
        cfg = self.config
        if tokens.ndim != 3 or tokens.shape[-1] != cfg.n_embd:
            raise InputError(f"modulation tokens must be N×HW×{cfg.n_embd}; got {tuple(tokens.shape)}")
        hw = tokens.shape[1]
        if not 1 <= hw <= cfg.n_tokens:
            raise InputError(
                f"modulation got {hw} dynamics tokens per frame; the model has n_tokens={cfg.n_tokens} "
                "(use a dynamics grid with at most that many cells, or a config with more n_tokens)"
            )
        resolve_impl(impl)
        y = tokens + self.dyn_pos_emb[:, :hw]  # N HW D
        for block in self.slf_blocks:
            y = block(y, impl)
        return y

    def cross(self, style: torch.Tensor, attended: torch.Tensor, *, impl: str = "auto") -> list[torch.Tensor]:
        """The three condition vectors from the style token and :meth:`attend`'s output.

        style: ``N × n_embd`` or ``N × 1 × n_embd`` (the style code z_S, one per row of N).
        attended: ``N × HW × n_embd``.
        Returns ``[c_coarse, c_medium, c_fine]``, each ``N × out_dim``.
        """
        cfg = self.config
        if style.ndim == 2:
            style = style[:, None]
        if style.ndim != 3 or style.shape[1:] != (1, cfg.n_embd):
            raise InputError(
                f"modulation style must be N×{cfg.n_embd} or N×1×{cfg.n_embd}; got {tuple(style.shape)}"
            )
        hw = attended.shape[1] if attended.ndim == 3 else 0
        if attended.ndim != 3 or attended.shape[-1] != cfg.n_embd or not 1 <= hw <= cfg.n_tokens:
            raise InputError(
                f"modulation attended tokens must be N×HW×{cfg.n_embd} with 1 ≤ HW ≤ {cfg.n_tokens}; "
                f"got {tuple(attended.shape)}"
            )
        if style.shape[0] != attended.shape[0]:
            raise InputError(
                f"modulation got {style.shape[0]} style rows for {attended.shape[0]} token rows; "
                "repeat the style code to one row per frame"
            )
        resolve_impl(impl)
        s = style + self.content_pos_emd  # N 1 D
        x_coarse = x_medium = s
        for coarse_block, medium_block in self.blocks:
            x_coarse = coarse_block(x_coarse, attended, impl)
            x_medium = medium_block(x_medium, attended, impl)
        return [
            self.head[i](self.ln_f[i](x[:, 0])) for i, x in enumerate((x_coarse, x_medium, s))
        ]  # 3 × N out_dim

    def forward(self, style: torch.Tensor, tokens: torch.Tensor, *, impl: str = "auto") -> list[torch.Tensor]:
        """``cross(style, attend(tokens))``: style ``N × D`` (or ``N × 1 × D``), tokens ``N × HW × D``
        → ``[c_coarse, c_medium, c_fine]``, each ``N × out_dim``."""
        return self.cross(style, self.attend(tokens, impl=impl), impl=impl)


def _gpt_init(module: nn.Module, std: float = 0.02) -> None:
    """The released minGPT ``_init_weights`` (its std is 0.02)."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# --- latent mapper -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MapperConfig:
    """Sizes of the latent mapper (released ``AttentionAttributeMapper``; defaults = both released
    configs).

    Parameters
    ----------
    style_dim: width of a W+ row.
    cond_dim: width of the condition vectors (the modulation network's ``out_dim``).
    groups: W+ rows of the coarse, medium and fine groups (released ``inversion_layer_num``,
        default 4/6/8 = rows 0–3, 4–9, 10–17; the paper's split is 4/4/10). Their sum is the
        number of W+ rows the mapper takes.
    n_modules: modulation modules stacked per group (released ``num_of_layers``).
    delta_weight: scale of Δ in ``w = z_C + delta_weight·Δ`` (released ``delta_inversion_weight``).
    final_leaky: whether the last module of each group ends in LeakyReLU(0.01), as released.
        With it Δ can hardly go negative: a small model that first learns to cancel Δ's positive
        start drives every output below zero, where the 0.01 slope leaves Δ ≈ 0 and too little
        gradient to learn motion (``scripts/diagnose_demo_motion.py``); ``False`` drops it.
    """

    style_dim: int = 512
    cond_dim: int = 512
    groups: tuple[int, int, int] = (4, 6, 8)
    n_modules: tuple[int, int, int] = (7, 5, 5)
    delta_weight: float = 0.01
    final_leaky: bool = True

    def __post_init__(self) -> None:
        problems = []
        for name in ("style_dim", "cond_dim"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append(f"{name} {value!r} must be an integer ≥ 1")
        for name in ("groups", "n_modules"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 3 or not all(
                _is_int(v) and v >= 1 for v in value
            ):
                problems.append(f"{name} {value!r} must be three integers ≥ 1 (coarse, medium, fine)")
            else:
                object.__setattr__(self, name, tuple(value))
        weight = self.delta_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            problems.append(f"delta_weight {weight!r} must be a finite number")
        else:
            object.__setattr__(self, "delta_weight", float(weight))
        if not isinstance(self.final_leaky, bool):
            problems.append(f"final_leaky {self.final_leaky!r} must be true or false")
        if problems:
            raise InputError("bad mapper config: " + "; ".join(problems))

    @property
    def n_latent(self) -> int:
        """W+ rows the mapper takes (the sum of the groups)."""
        return sum(self.groups)

    def group_rows(self) -> tuple[range, range, range]:
        """The W+ rows of the coarse, medium and fine groups (fine = the last ``groups[2]`` rows)."""
        c, m, f = self.groups
        n = self.n_latent
        return range(0, c), range(c, c + m), range(n - f, n)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "groups": list(self.groups), "n_modules": list(self.n_modules)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MapperConfig":
        """Inverse of :meth:`to_dict`; unknown or malformed fields are an :class:`InputError`."""
        return _config_from_dict(cls, data, "mapper config", tuples=("groups", "n_modules"))


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Released ``mapper.PixelNorm`` on ``N × L × D``: ``x / sqrt(mean over dim 1 of x² + 1e-8)``.

    Dim 1 is the W+ *layer* axis here, so each channel is normalised across the group's rows
    (a quirk inherited from StyleCLIP/HairCLIP, kept for fidelity).
    """
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)


def _film(cond_dim: int, dim: int) -> nn.Sequential:
    # Keys .0, .1, .3 (the LeakyReLU at .2 has no parameters).
    return nn.Sequential(
        nn.Linear(cond_dim, dim), nn.LayerNorm(dim), nn.LeakyReLU(LEAKY_SLOPE), nn.Linear(dim, dim)
    )


class ModulationModule(nn.Module):
    """One modulation step (released ``mapper.ModulationModule``, from HairCLIP).

    ``h = LayerNorm_(L, D), no affine (fc(x))``, ``γ = gamma_function(c)``, ``β = beta_function(c)``,
    ``out = LeakyReLU_0.01(h·(1 + γ) + β)``. The condition ``c`` (``N × 1 × C``) is broadcast
    over the L rows, which equals the released repeat. With ``leaky=False`` the LeakyReLU is
    left out (``MapperConfig.final_leaky``).
    """

    def __init__(self, rows: int, dim: int, cond_dim: int, *, leaky: bool = True) -> None:
        super().__init__()
        self.rows = rows
        self.leaky = leaky
        self.fc = nn.Linear(dim, dim)
        self.gamma_function = _film(cond_dim, dim)
        self.beta_function = _film(cond_dim, dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        h = F.layer_norm(h, (self.rows, h.shape[-1]))  # joint over the group's rows and channels
        out = h * (1 + self.gamma_function(cond)) + self.beta_function(cond)
        return F.leaky_relu(out, LEAKY_SLOPE) if self.leaky else out


class GroupMapper(nn.Module):
    """PixelNorm over the rows, then the stacked modules (released ``AttributeMapperModule``)."""

    def __init__(self, rows: int, dim: int, cond_dim: int, n_modules: int, *, final_leaky: bool = True) -> None:
        super().__init__()
        self.modulation_module_list = nn.ModuleList(
            ModulationModule(rows, dim, cond_dim, leaky=final_leaky or i < n_modules - 1)
            for i in range(n_modules)
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(x)
        for module in self.modulation_module_list:
            x = module(x, cond)
        return x


class GroupMapping(nn.Module):
    """One group's slot (released ``AttributeMapperSubModule`` with a single condition vector):
    holds its :class:`GroupMapper` as ``mapper`` and broadcasts the condition over the rows."""

    def __init__(self, rows: int, dim: int, cond_dim: int, n_modules: int, *, final_leaky: bool = True) -> None:
        super().__init__()
        self.mapper = GroupMapper(rows, dim, cond_dim, n_modules, final_leaky=final_leaky)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.mapper(x, cond[:, None])  # N L D, cond N 1 C


class Mapper(nn.Module):
    """The latent mapper (released ``AttentionAttributeMapper`` with one condition vector per group:
    ``use_*_mapper=[True, False, False]``, no cut flags, ``predict_delta=True``).

    State-dict keys equal the released ``style_mapper.*`` sub-keys, in the same order. PyTorch's
    default initialisation, as released.
    """

    def __init__(self, config: MapperConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MapperConfig()
        for name, rows, k in zip(GROUP_NAMES, config.groups, config.n_modules):
            setattr(self, f"{name}_mapping", GroupMapping(
                rows, config.style_dim, config.cond_dim, k, final_leaky=config.final_leaky
            ))

    def delta(self, content: torch.Tensor, conds: Sequence[torch.Tensor]) -> torch.Tensor:
        """The offset Δ.

        content: the content code z_C as ``N × L × style_dim`` (L = the sum of the groups).
        conds: ``[c_coarse, c_medium, c_fine]``, each ``N × cond_dim`` (``N × 1 × cond_dim`` is
        accepted too).
        Returns Δ, ``N × L × style_dim``: the groups' outputs concatenated along the rows.
        """
        cfg = self.config
        if content.ndim != 3 or content.shape[1:] != (cfg.n_latent, cfg.style_dim):
            raise InputError(
                f"mapper content must be N×{cfg.n_latent}×{cfg.style_dim} (W+ rows = sum of groups "
                f"{list(cfg.groups)}); got {tuple(content.shape)}"
            )
        if isinstance(conds, torch.Tensor) or len(conds) != 3:
            raise InputError("mapper conds must be a list of three tensors (coarse, medium, fine)")
        flat = []
        for name, c in zip(GROUP_NAMES, conds):
            if c.ndim == 3 and c.shape[1] == 1:
                c = c[:, 0]
            if c.ndim != 2 or c.shape != (content.shape[0], cfg.cond_dim):
                raise InputError(
                    f"mapper {name} condition must be N×{cfg.cond_dim} with N={content.shape[0]} "
                    f"(the content rows); got {tuple(c.shape)}"
                )
            flat.append(c)
        parts = []
        for name, rows, c in zip(GROUP_NAMES, cfg.group_rows(), flat):
            x = content[:, rows.start : rows.stop]  # N L_g D
            parts.append(getattr(self, f"{name}_mapping")(x, c))
        return torch.cat(parts, dim=1)  # N L D

    def forward(self, content: torch.Tensor, conds: Sequence[torch.Tensor]) -> torch.Tensor:
        """``w = content + delta_weight·Δ`` (``N × L × style_dim``); see :meth:`delta`."""
        return content + self.config.delta_weight * self.delta(content, conds)
