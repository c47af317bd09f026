"""Device selection and seeding shared by every command."""

from __future__ import annotations

import random

import torch

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a :class:`torch.device`.

    ``auto`` picks CUDA when available. Asking for CUDA on a machine without it is an
    :class:`InputError` naming the fix.
    """
    if isinstance(spec, torch.device):
        return spec
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {spec}: CUDA is not available here; use --device cpu or auto")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s); pick a lower index"
            )
        return device
    raise InputError(f"--device {spec!r} is not one of auto, cpu, cuda, cuda:N")


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether ``precision`` (one of :data:`vsode.options.PRECISIONS`) runs the bf16 fast path on ``device``:
    ``bf16`` always, ``auto`` on CUDA only, ``fp32`` never."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def seed_everything(seed: int | None) -> None:
    """Seed Python, NumPy (if present) and torch RNGs; ``None`` leaves them alone."""
    if seed is None:
        return
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    torch.manual_seed(seed)
