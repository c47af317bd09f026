"""The demo world: procedurally rendered face videos whose appearance and motion are known.

A video is a :class:`VideoParams`: an :class:`Appearance` (attributes that text can name, plus a
little face geometry) and :class:`Motion` (smooth random functions of time). The two are drawn
from separate random streams, so motion is disentangled from appearance by construction, and
:func:`with_appearance` gives the exact ground truth of an edit (same motion, new attribute).

Rendering is continuous in time: every shape is a signed distance in face coordinates turned into
coverage by a smooth step one pixel wide, and the face coordinates move smoothly with the motion.
So a frame exists at every real ``t`` (interpolation and extrapolation can be scored), and a small
motion changes pixels by a small amount.

Coordinates: the image spans [-1, 1] on both axes, y pointing down, so one image unit is half the
image; head translation is given in image units. Shapes are drawn in world units (image units /
``_ZOOM``) in a face frame that translates and rolls with the head.
"""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..options import PROMPT_TEMPLATE  # captions are written as the apps' prompts are

RGB = tuple[float, float, float]

# Vocabularies. The colours are far apart so that a small CLIP can tell them apart at 64x64.
HAIR_COLOURS: Mapping[str, RGB] = MappingProxyType({
    "black": (0.07, 0.06, 0.06),
    "brown": (0.45, 0.24, 0.08),
    "blonde": (0.95, 0.82, 0.42),
    "red": (0.82, 0.24, 0.06),
    "grey": (0.66, 0.66, 0.68),
})
EYE_COLOURS: Mapping[str, RGB] = MappingProxyType({
    "blue": (0.10, 0.42, 0.95),
    "green": (0.12, 0.68, 0.22),
    "brown": (0.42, 0.22, 0.06),
    "grey": (0.58, 0.60, 0.64),
})
SKIN_TONES: Mapping[str, RGB] = MappingProxyType({
    "light": (0.98, 0.82, 0.71),
    "medium": (0.82, 0.60, 0.42),
    "dark": (0.40, 0.27, 0.19),
})
BACKGROUNDS: Mapping[str, RGB] = MappingProxyType({
    "white": (0.93, 0.93, 0.91),
    "blue": (0.52, 0.72, 0.92),
    "green": (0.60, 0.84, 0.64),
    "purple": (0.72, 0.64, 0.90),
})
# Attribute name -> vocabulary. Captions name hair, eyes and skin; the background is never named.
ATTRIBUTES: Mapping[str, Mapping[str, RGB]] = MappingProxyType(
    {"hair": HAIR_COLOURS, "eyes": EYE_COLOURS, "skin": SKIN_TONES, "background": BACKGROUNDS}
)
_CAPTION_PARTS = {"hair": "{} hair", "eyes": "{} eyes", "skin": "{} skin"}

MOTION_CHANNELS = ("mouth_open", "blink", "head_x", "head_y", "roll", "brow")
# Regions of region_masks(); their visible coverages sum to one at every pixel.
MASK_REGIONS = ("background", "body", "skin", "hair", "eye", "iris", "pupil", "mouth")

# Face geometry that varies per identity (never named by text): name -> uniform range.
_SHAPE_RANGES = {
    "face_width": (0.92, 1.08),
    "face_height": (0.94, 1.06),
    "eye_spacing": (0.92, 1.08),
    "eye_size": (0.94, 1.10),
    "mouth_width": (0.88, 1.12),
    "hair_length": (0.0, 1.0),
    "hairline": (-0.04, 0.04),
}
_SHIRT = (0.24, 0.26, 0.32)
_SCLERA = (0.97, 0.97, 0.96)
_DARK = (0.10, 0.07, 0.07)  # pupils, lashes
_MOUTH_INSIDE = (0.30, 0.05, 0.08)
_LIP_TINT = (0.78, 0.22, 0.28)
_PIVOT = (0.0, 0.45)  # the head rolls about the chin
_ZOOM, _SHIFT = 1.3, -0.08  # world units -> image units: the face fills the frame like an FFHQ crop
_APPEARANCE_STREAM, _MOTION_STREAM = 0, 1

Wave = tuple[float, float, float]  # frequency (Hz), amplitude, phase (rad)


@dataclasses.dataclass(frozen=True)
class Appearance:
    """What a video looks like: the named attributes and the identity's face geometry."""

    hair: str
    eyes: str
    skin: str
    background: str
    face_width: float = 1.0
    face_height: float = 1.0
    eye_spacing: float = 1.0
    eye_size: float = 1.0
    mouth_width: float = 1.0
    hair_length: float = 0.5
    hairline: float = 0.0

    def __post_init__(self) -> None:
        for name in ATTRIBUTES:
            _check_attribute(name, getattr(self, name))

    @property
    def attributes(self) -> dict[str, str]:
        """The named attributes: ``{"hair": ..., "eyes": ..., "skin": ..., "background": ...}``."""
        return {name: getattr(self, name) for name in ATTRIBUTES}


@dataclasses.dataclass(frozen=True)
class Motion:
    """How a video moves: each motion channel is a smooth random function of time.

    Head translation, roll and eyebrows are sums of sinusoids (:data:`Wave` tuples, already
    scaled to the channel's range). The mouth is a sum of sinusoids with amplitudes summing to one,
    passed through a normalised softplus so it opens irregularly like speech. Blinks fall one per
    slot of ``blink_period`` seconds at a hashed position (some slots skipped), each a smooth bump
    ``blink_duration`` seconds wide, so they are defined for every real t.
    """

    seed: int
    head_x: tuple[Wave, ...]
    head_y: tuple[Wave, ...]
    roll: tuple[Wave, ...]
    brow: tuple[Wave, ...]
    mouth: tuple[Wave, ...]
    mouth_bias: float
    blink_period: float
    blink_duration: float
    blink_key: float


@dataclasses.dataclass(frozen=True)
class VideoParams:
    """One demo video: ``appearance`` (what it looks like, drawn from ``seed``) and ``dynamics``
    (how it moves, drawn from ``dynamics.seed``)."""

    seed: int
    appearance: Appearance
    dynamics: Motion

    @property
    def attributes(self) -> dict[str, str]:
        """The named appearance attributes (hair, eyes, skin, background)."""
        return self.appearance.attributes

    def motion(self, t: float | Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
        """Ground-truth motion at times ``t`` (seconds), one float64 array per channel.

        ``mouth_open`` in [0, 1]; ``blink`` in [0, 1] (1 = eyes closed); ``head_x``, ``head_y``
        in image half-widths; ``roll`` in radians (positive turns the head clockwise on screen);
        ``brow`` in [-1, 1] (positive raises the eyebrows).
        """
        return _motion(self.dynamics, _as_times(t))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready types; :meth:`from_dict` inverts it exactly."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VideoParams":
        """Rebuild from :meth:`to_dict` output (e.g. read back from JSON)."""
        try:
            dyn = dict(data["dynamics"])
            for name in ("head_x", "head_y", "roll", "brow", "mouth"):
                dyn[name] = tuple(tuple(float(v) for v in wave) for wave in dyn[name])
            return cls(int(data["seed"]), Appearance(**data["appearance"]), Motion(**dyn))
        except (KeyError, TypeError, ValueError) as exc:
            message = f"not a demo-world VideoParams dict ({exc!r}); pass what to_dict() gives"
            raise InputError(message) from exc


def _check_attribute(name: str, value: str) -> None:
    if value not in ATTRIBUTES[name]:
        raise InputError(f"unknown {name} {value!r}; choose one of {', '.join(ATTRIBUTES[name])}")


def _check_fields(attrs: Mapping[str, Any]) -> None:
    fields = [f.name for f in dataclasses.fields(Appearance)]
    unknown = sorted(set(attrs) - set(fields))
    if unknown:
        raise InputError(f"unknown appearance field(s) {unknown}; use {', '.join(fields)}")


# -- sampling ---------------------------------------------------------------------------------


def sample_params(
    seed: int, *, appearance: Mapping[str, Any] | None = None, motion_seed: int | None = None
) -> VideoParams:
    """Draw a demo video from ``seed``.

    Args:
        seed: draws the appearance, and the motion unless ``motion_seed`` is given.
        appearance: fields of :class:`Appearance` to fix, e.g. ``{"hair": "red", "eyes": "blue"}``;
            the others are drawn as usual (fixing one does not change the draws of the rest).
        motion_seed: draw the motion from this seed instead (same face, other motion).
    """
    for value in (seed, motion_seed):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
            raise InputError(f"demo world seed {value!r} must be a non-negative integer")
    rng = np.random.default_rng([seed, _APPEARANCE_STREAM])
    drawn: dict[str, Any] = {name: str(rng.choice(list(vocab))) for name, vocab in ATTRIBUTES.items()}
    drawn.update({name: float(rng.uniform(lo, hi)) for name, (lo, hi) in _SHAPE_RANGES.items()})
    _check_fields(appearance or {})
    drawn.update(appearance or {})
    ms = seed if motion_seed is None else motion_seed
    return VideoParams(int(seed), Appearance(**drawn), _sample_motion(ms))


def with_appearance(params: VideoParams, **attrs: Any) -> VideoParams:
    """The same video with some appearance fields changed: the ground truth of an edit.

    ``with_appearance(p, hair="blonde")`` has exactly ``p``'s motion and geometry.
    """
    _check_fields(attrs)
    return dataclasses.replace(params, appearance=dataclasses.replace(params.appearance, **attrs))


def with_motion(params: VideoParams, driver: VideoParams) -> VideoParams:
    """``params``'s face moving with ``driver``'s motion: the ground truth of an animation."""
    return dataclasses.replace(params, dynamics=driver.dynamics)


def _sample_motion(seed: int) -> Motion:
    rng = np.random.default_rng([seed, _MOTION_STREAM])

    def waves(amplitude: float, f_lo: float, f_hi: float, n: int = 3) -> tuple[Wave, ...]:
        speed = math.exp(rng.uniform(math.log(0.7), math.log(1.4)))  # this channel's own tempo
        freqs = rng.uniform(f_lo, f_hi, n) * speed
        amps = rng.dirichlet(np.full(n, 2.0)) * amplitude
        phases = rng.uniform(0.0, 2 * math.pi, n)
        return tuple((float(f), float(a), float(p)) for f, a, p in zip(freqs, amps, phases))

    return Motion(
        seed=int(seed),
        head_x=waves(0.12, 0.15, 0.5),
        head_y=waves(0.07, 0.15, 0.5),
        roll=waves(0.18, 0.1, 0.4),
        brow=waves(1.0, 0.2, 0.7),
        mouth=waves(1.0, 0.9, 3.0),
        mouth_bias=float(rng.uniform(-0.15, 0.2)),
        blink_period=float(rng.uniform(1.2, 2.6)),
        blink_duration=float(rng.uniform(0.16, 0.26)),
        blink_key=float(rng.uniform(0.0, 100.0)),
    )


# -- motion -----------------------------------------------------------------------------------

_MOUTH_GAIN = 5.0
_BLINK_SKIP = 0.2  # fraction of blink slots without a blink


def _as_times(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().double().numpy()
    times = np.asarray(t, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(times)):
        raise InputError("frame times must be finite numbers of seconds")
    return times


def _waves(t: np.ndarray, waves: tuple[Wave, ...]) -> np.ndarray:
    return sum((a * np.sin(2 * math.pi * f * t + p) for f, a, p in waves), np.zeros_like(t))


def _hash01(k: np.ndarray, key: float) -> np.ndarray:
    """A deterministic pseudo-random number in [0, 1) for every integer k."""
    x = np.sin(k * 12.9898 + key * 78.233) * 43758.5453
    return x - np.floor(x)


def _blink(d: Motion, t: np.ndarray) -> np.ndarray:
    period, half = d.blink_period, d.blink_duration / 2  # half < 0.15 * period: bumps never overlap
    out = np.zeros_like(t)
    for shift in (-1, 0, 1):
        k = np.floor(t / period) + shift
        centre = (k + 0.15 + 0.7 * _hash01(k, d.blink_key)) * period
        present = _hash01(k, d.blink_key + 0.5) >= _BLINK_SKIP
        s = np.clip((t - centre) / half, -1.0, 1.0)
        out += present * (1 - s * s) ** 2  # C1 bump: 1 at the centre, 0 beyond +-half
    return out


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _motion(d: Motion, t: np.ndarray) -> dict[str, np.ndarray]:
    speech = _waves(t, d.mouth)  # in [-1, 1]: the amplitudes sum to one
    top = _softplus(np.float64(_MOUTH_GAIN * (1 - d.mouth_bias)))
    return {
        "mouth_open": _softplus(_MOUTH_GAIN * (speech - d.mouth_bias)) / top,
        "blink": _blink(d, t),
        "head_x": _waves(t, d.head_x),
        "head_y": _waves(t, d.head_y),
        "roll": _waves(t, d.roll),
        "brow": _waves(t, d.brow),
    }


# -- rendering --------------------------------------------------------------------------------


def _ellipse(x: torch.Tensor, y: torch.Tensor, rx: float, ry: float | torch.Tensor) -> torch.Tensor:
    """Approximate signed distance to an axis-aligned ellipse at the origin, exact on its edge
    (Quilez's k0 (k0 - 1) / k1). ``ry`` may vary per frame (T 1 1)."""
    k0 = torch.sqrt((x / rx) ** 2 + (y / ry) ** 2)
    k1 = torch.sqrt((x / rx**2) ** 2 + (y / ry**2) ** 2)
    at_centre = ry.clamp(max=rx) if isinstance(ry, torch.Tensor) else min(rx, ry)
    return (k0 - 1) * torch.where(k1 > 1e-9, k0 / k1.clamp_min(1e-9), at_centre)


def _box(x: torch.Tensor, y: torch.Tensor, hx: float, hy: float, r: float) -> torch.Tensor:
    qx, qy = x.abs() - hx + r, y.abs() - hy + r
    outside = torch.sqrt(qx.clamp_min(0) ** 2 + qy.clamp_min(0) ** 2)
    return outside + torch.minimum(torch.maximum(qx, qy), torch.zeros_like(qx)) - r


class _Canvas:
    """Paints coverage-weighted layers back to front, optionally tracking each region's share."""

    def __init__(self, colour: RGB, shape: tuple[int, int, int], pixel: float, track: bool, **kw: Any):
        self.kw, self.pixel = kw, pixel
        self.image = self.rgb(colour).expand(shape[0], 3, *shape[1:]).clone()  # T 3 H W
        self.masks = {"background": torch.ones(shape, **kw)} if track else None

    def rgb(self, colour: RGB, scale: float = 1.0) -> torch.Tensor:
        return torch.tensor([c * scale for c in colour], **self.kw).view(1, 3, 1, 1)

    def coverage(self, sdf: torch.Tensor) -> torch.Tensor:
        """Signed distance -> coverage, a smooth step one pixel wide (anti-aliasing)."""
        s = (0.5 - sdf / self.pixel).clamp(0, 1)
        return s * s * (3 - 2 * s)

    def paint(self, region: str, sdf: torch.Tensor, colour: torch.Tensor, opacity: float = 1.0) -> None:
        alpha = self.coverage(sdf) * opacity  # T H W
        self.image = torch.lerp(self.image, colour.expand_as(self.image), alpha.unsqueeze(1))
        if self.masks is not None:
            for mask in self.masks.values():
                mask.mul_(1 - alpha)
            self.masks[region] = self.masks.get(region, 0) + alpha


def _paint_face(params: VideoParams, times: np.ndarray, size: int, track: bool, **kw: Any) -> _Canvas:
    a = params.appearance
    m = {k: torch.as_tensor(v, **kw).view(-1, 1, 1) for k, v in params.motion(times).items()}
    u = (torch.arange(size, **kw) + 0.5) * (2 / size) - 1
    gy, gx = u.view(1, -1, 1), u.view(1, 1, -1)
    T = len(times)
    cv = _Canvas(BACKGROUNDS[a.background], (T, size, size), 2 / size / _ZOOM, track, **kw)

    # Shapes are drawn in world units (image units / _ZOOM). Body frame: follows the head's
    # translation (given in image units). Face frame: also rolls about the chin.
    bx, by = (gx - m["head_x"]) / _ZOOM, (gy - m["head_y"] - _SHIFT) / _ZOOM
    cos, sin = torch.cos(m["roll"]), torch.sin(m["roll"])
    px, py = bx - _PIVOT[0], by - _PIVOT[1]
    fx, fy = cos * px + sin * py + _PIVOT[0], -sin * px + cos * py + _PIVOT[1]

    skin, hair = SKIN_TONES[a.skin], HAIR_COLOURS[a.hair]
    fw, es, ez = a.face_width, a.eye_spacing, a.eye_size
    cv.paint("body", _ellipse(bx, by - 1.3, 0.8, 0.52), cv.rgb(_SHIRT))
    cv.paint("skin", _box(bx, by - 0.75, 0.14, 0.4, 0.05), cv.rgb(skin, 0.84))  # neck

    # Hair behind the head; longer hair reaches the shoulders.
    length = a.hair_length
    crown = _ellipse(fx, fy + 0.08, 0.54 * fw, 0.56)
    fall = _box(fx, fy - 0.3 * length, 0.5 * fw, 0.1 + 0.3 * length, 0.12)
    back = torch.minimum(crown, fall)
    hair_shade = 1 + 0.25 * torch.exp(-(((fy + 0.36) / 0.07) ** 2 + (fx / 0.35) ** 2))  # sheen
    cv.paint("hair", back, cv.rgb(hair, 0.8) * hair_shade.unsqueeze(1))

    for side in (-1, 1):  # ears
        cv.paint("skin", _ellipse(fx - side * 0.41 * fw, fy - 0.06, 0.07, 0.11), cv.rgb(skin, 0.9))
    head = _ellipse(fx, fy - 0.03, 0.42 * fw, 0.52 * a.face_height)
    rim = torch.sqrt((fx / (0.42 * fw)) ** 2 + ((fy - 0.03) / (0.52 * a.face_height)) ** 2)
    shade = 1 - 0.12 * ((rim - 0.55) / 0.45).clamp(0, 1) ** 2  # darker towards the edge
    cv.paint("skin", head, cv.rgb(skin) * shade.unsqueeze(1))
    for side in (-1, 1):  # cheeks
        blush = _ellipse(fx - side * 0.26 * fw, fy - 0.17, 0.08, 0.05)
        cv.paint("skin", blush, cv.rgb(_LIP_TINT), opacity=0.18)
    cv.paint("skin", _ellipse(fx, fy - 0.14, 0.035, 0.065), cv.rgb(skin, 0.82))  # nose

    # Fringe: a cap over the head with a rounded window cut out for the face.
    cap = _ellipse(fx, fy + 0.1, 0.47 * fw, 0.5)
    window = _ellipse(fx, fy - 0.19 - a.hairline, 0.36 * fw, 0.47)
    cv.paint("hair", torch.maximum(cap, -window), cv.rgb(hair) * hair_shade.unsqueeze(1))

    brow, blink = m["brow"], m["blink"]
    for side in (-1, 1):
        ex, ey = fx - side * 0.18 * es, fy + 0.02  # eye frame
        white = _ellipse(ex, ey, 0.125 * ez, 0.085 * ez)
        cv.paint("eye", white, cv.rgb(_SCLERA))
        iris = torch.sqrt(ex**2 + ey**2)  # distance to the eye's centre
        cv.paint("iris", torch.maximum(iris - 0.075 * ez, white), cv.rgb(EYE_COLOURS[a.eyes]))
        cv.paint("pupil", torch.maximum(iris - 0.03 * ez, white), cv.rgb(_DARK))
        cv.paint("eye", white.abs() - 0.012, cv.rgb(_DARK))  # outline
        top = 0.085 * ez + 0.02
        lid = -top - 0.03 + (2 * top + 0.03) * blink  # the lid's edge falls from above to below the eye
        grown = white - 0.02
        cv.paint("skin", torch.maximum(grown, ey - lid), cv.rgb(skin, 0.9))
        cv.paint("eye", torch.maximum(grown, (ey - lid + 0.015).abs() - 0.016), cv.rgb(_DARK))  # lashes
        # Eyebrow: raised brows also tilt up at the inner end.
        wx, wy = fx - side * 0.18 * es, fy + 0.19 + 0.05 * brow
        tilt = side * (0.05 + 0.12 * brow)
        c, s = torch.cos(tilt), torch.sin(tilt)
        cv.paint("hair", _ellipse(c * wx + s * wy, -s * wx + c * wy, 0.11, 0.03), cv.rgb(hair, 0.65))

    # Mouth: lips, then the dark inside; both open with mouth_open.
    mo, mw = m["mouth_open"], a.mouth_width
    my = fy - 0.31
    lips = tuple(0.5 * c + 0.5 * t for c, t in zip(skin, _LIP_TINT))
    cv.paint("mouth", _ellipse(fx, my, 0.15 * mw, 0.03 + 0.09 * mo), cv.rgb(lips))
    cv.paint("mouth", _ellipse(fx, my, 0.12 * mw, 0.006 + 0.085 * mo), cv.rgb(_MOUTH_INSIDE))
    cv.image = cv.image.clamp(0, 1)
    return cv


def render_times(
    params: VideoParams,
    times: float | Sequence[float] | np.ndarray | torch.Tensor,
    *,
    size: int = 64,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Render ``params`` at every time in ``times`` (seconds), vectorised over times.

    Args:
        params: the video.
        times: any real times, in any order; before 0 and past the video's end are fine.
        size: the image side in pixels (64 by default; 128 works the same).
        dtype, device: of the result and of the computation.

    Returns:
        ``T x 3 x size x size`` RGB in [0, 1].
    """
    return _paint(params, times, size, False, dtype, device).image


def render(params: VideoParams, t: float, *, size: int = 64, **kwargs: Any) -> torch.Tensor:
    """Render one frame at time ``t`` (seconds): ``3 x size x size`` in [0, 1]."""
    return render_times(params, [t], size=size, **kwargs)[0]


# The restyled world of the demo's fine-tuned generator (`stylegan2-demo-poster`): every colour
# channel snapped to this many flat levels, as a poster print of few inks would show it.
POSTER_LEVELS = 4


def posterise(frames: torch.Tensor, levels: int = POSTER_LEVELS) -> torch.Tensor:
    """Frames in [0, 1] with each channel rounded to the nearest of ``levels`` evenly spaced values
    (0, 1/3, 2/3, 1 for 4): the flat-colour restyling of the demo world."""
    if levels < 2:
        raise InputError(f"posterise needs at least 2 levels, got {levels}")
    steps = levels - 1
    return torch.round(frames.clamp(0, 1) * steps) / steps


def region_masks(
    params: VideoParams,
    times: float | Sequence[float] | np.ndarray | torch.Tensor,
    *,
    size: int = 64,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """The visible share of each of :data:`MASK_REGIONS` per pixel, ``T x size x size`` each.

    Shares are in [0, 1] and sum to one (edges are shared between regions). ``hair`` includes the
    eyebrows, ``skin`` the eyelids and nose, ``eye`` the whites, outline and lashes, ``mouth`` the
    lips and its inside.
    """
    masks = _paint(params, times, size, True, dtype, device).masks
    assert masks is not None
    zero = torch.zeros_like(masks["background"])
    return {name: masks.get(name, zero) for name in MASK_REGIONS}


def _paint(
    params: VideoParams, times: Any, size: int, track: bool, dtype: torch.dtype, device: Any
) -> _Canvas:
    if not isinstance(size, int) or size < 16:
        raise InputError(f"demo world size {size!r} is too small; use 64 or 128")
    return _paint_face(params, _as_times(times), size, track, dtype=dtype, device=torch.device(device))


def landmarks(
    params: VideoParams, times: float | Sequence[float] | np.ndarray, *, size: int = 64
) -> dict[str, np.ndarray]:
    """Ground-truth pixel positions (x, y), ``T x 2`` each, of ``left_eye``, ``right_eye``,
    ``nose`` and ``mouth`` (left = image left; pixel centres at integers)."""
    a = params.appearance
    m = params.motion(times)
    local = {
        "left_eye": (-0.18 * a.eye_spacing, -0.02),
        "right_eye": (0.18 * a.eye_spacing, -0.02),
        "nose": (0.0, 0.14),
        "mouth": (0.0, 0.31),
    }
    cos, sin = np.cos(m["roll"]), np.sin(m["roll"])
    out = {}
    for name, (lx, ly) in local.items():
        qx, qy = lx - _PIVOT[0], ly - _PIVOT[1]
        x = _ZOOM * (cos * qx - sin * qy + _PIVOT[0]) + m["head_x"]
        y = _ZOOM * (sin * qx + cos * qy + _PIVOT[1]) + _SHIFT + m["head_y"]
        out[name] = np.stack([(x + 1) * size / 2 - 0.5, (y + 1) * size / 2 - 0.5], axis=-1)
    return out


# -- captions ---------------------------------------------------------------------------------


def caption_for(attrs: Mapping[str, str]) -> str:
    """The canonical caption for any of ``hair``, ``eyes``, ``skin`` in ``attrs`` (others ignored).

    ``{"hair": "brown", "eyes": "blue"}`` -> ``"a photo of a person with brown hair and blue eyes"``;
    with ``skin`` too: ``"... with brown hair, blue eyes and light skin"``.
    """
    parts = []
    for name, pattern in _CAPTION_PARTS.items():
        if name in attrs:
            _check_attribute(name, attrs[name])
            parts.append(pattern.format(attrs[name]))
    if not parts:
        raise InputError("a caption needs at least one of hair, eyes, skin")
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return PROMPT_TEMPLATE.format(text)


def caption(params: VideoParams, *, skin: bool = False) -> str:
    """The video's caption: hair and eye colour, plus skin tone if ``skin``."""
    names = ("hair", "eyes", "skin") if skin else ("hair", "eyes")
    return caption_for({n: params.attributes[n] for n in names})
