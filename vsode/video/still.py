"""One-frame results written as an image (PNG, JPEG...), atomically, behind VideoWriter's interface."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import torch

from ..errors import VsodeError
from ..fileio import atomic_path
from .encode import WriteResult


class StillWriter:
    """Writes exactly one frame (3×H×W in [0, 1]) to ``path`` as an image: ``write``, then
    ``close`` (rename into place) or ``abort`` (nothing left behind)."""

    def __init__(self, path: Path, *, fps: Fraction, force: bool) -> None:
        self.path, self.fps = path, fps
        self._atomic = atomic_path(path, force=force)
        self._tmp = self._atomic.__enter__()
        self._frame: torch.Tensor | None = None
        self._result: WriteResult | None = None

    def write(self, frames: torch.Tensor) -> None:
        if self._frame is not None or frames.shape[0] != 1:
            raise VsodeError(f"{self.path} is an image: it takes exactly one frame")
        self._frame = frames[0]

    def close(self) -> WriteResult:
        if self._result is not None:
            return self._result
        from PIL import Image

        if self._frame is None:
            self.abort()
            raise VsodeError(f"no frame was written to {self.path}")
        frame = self._frame
        if frame.dtype != torch.uint8:
            frame = frame.clamp(0, 1).mul(255).round().to(torch.uint8)
        pixels = frame.permute(1, 2, 0).numpy()
        try:
            Image.fromarray(pixels).save(self._tmp, format=Image.registered_extensions()[self.path.suffix.lower()])
            self._atomic.__exit__(None, None, None)
        except BaseException as err:
            with contextlib.suppress(BaseException):
                self._atomic.__exit__(type(err), err, None)
            raise
        h, w = pixels.shape[:2]
        self._result = WriteResult(self.path, 1, self.fps, 1 / self.fps, w, h, False, False)
        return self._result

    def abort(self) -> None:
        if self._result is None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
