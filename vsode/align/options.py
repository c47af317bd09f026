"""The options of alignment and paste-back, validated in one place (STYLE habit 7)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

# Paste-back's default feather, as a fraction of the quad's side in frame pixels.
AUTO_FEATHER = 0.1


@dataclass(frozen=True)
class AlignOptions:
    """How to find and crop the face; validated on construction (STYLE habit 7).

    Attributes:
        size: side of the aligned crops in pixels (the encoders take 256).
        face_index: which face when there are several: 0 the largest, 1 the next ...
        sigma_center: Gaussian sigma in frames for the quad's centre (STIT: 1).
        sigma_scale: Gaussian sigma in frames for the quad's scale and rotation (STIT: 3).
        detect_size: frames are scaled down so their longer side is at most this for detection
            (0: full size); landmarks are mapped back to full size.
        batch_size: frames per decode/detect/crop batch; bounds memory.
        device: where detection runs: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """

    size: int = 256
    face_index: int = 0
    sigma_center: float = 1.0
    sigma_scale: float = 3.0
    detect_size: int = 640
    batch_size: int = 8
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.size < 8:
            raise InputError(f"--size {self.size} must be at least 8 pixels")
        if self.face_index < 0:
            raise InputError(f"--face-index {self.face_index} must be 0 (largest) or more")
        if self.sigma_center < 0 or self.sigma_scale < 0:
            raise InputError(
                f"--sigma-center {self.sigma_center} and --sigma-scale {self.sigma_scale} must be >= 0"
            )
        if self.detect_size != 0 and self.detect_size < 32:
            raise InputError(f"--detect-size {self.detect_size} must be 0 (full size) or at least 32")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size} must be at least 1")


@dataclass(frozen=True)
class PasteOptions:
    """How an edited crop goes back into its frame.

    Attributes:
        feather: width in frame pixels of the mask's soft edge inside the quad; ``None`` picks
            :data:`AUTO_FEATHER` of the quad's side per frame; 0 gives a hard edge.
        color_match: shift the crop's colour so that its mean matches the frame's along the seam.
    """

    feather: float | None = None
    color_match: bool = False

    def __post_init__(self) -> None:
        if self.feather is not None and not self.feather >= 0:
            raise InputError(f"--feather {self.feather} must be 0 or more pixels")
