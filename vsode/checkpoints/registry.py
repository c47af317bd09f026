"""The known checkpoints, as data: one frozen :class:`Entry` per file vsode can fetch or ship.

Facts come from ``tests/data/formats/README.md``. Where a fact is not known (an exact size, a
published hash, a mirror's path inside its repository) the entry says so in ``notes`` instead of
guessing. Hashes read from third-party mirrors are pinned with ``sha256_verified=False``: a
download must still match them byte for byte, but nobody has checked them against the official
(Google Drive) copy.

Tests and plugins add entries with :meth:`Registry.temporary` or build their own
:class:`Registry` and pass it to the functions that take ``registry=``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from ..errors import InputError

# "stylegan2-finetune": a StyleGAN2 fine-tuned from another (``base``) to a new domain, sharing its
# W space, so that any model of the base renders its W+ in the new style (``--generator NAME``).
KINDS = ("stylegan2", "stylegan2-finetune", "psp", "e4e", "clip", "dino", "vidstyleode", "builtin")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class DownloadSource:
    """One URL a checkpoint can be fetched from without a browser.

    ``third_party`` marks copies re-hosted by someone other than the authors (Hugging Face repos
    of other projects); ``note`` says what is not known about it.
    """

    url: str
    third_party: bool
    note: str = ""

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"source URL must be http(s): {self.url!r}")


@dataclass(frozen=True)
class Entry:
    """A checkpoint file: what it is, where it comes from and how to check it.

    Parameters
    ----------
    name: registry name, used on the command line (``vsode download NAME``) and as the cache
        folder name.
    kind: one of :data:`KINDS`; ``builtin`` is for bundles shipped inside the package that hold
        several small models (any kind may also be shipped, see ``builtin_path``).
    file_name: the file's usual name; the cached copy keeps it.
    size: exact size in bytes, or None when no exact size is known.
    sha256: full lower-case hex digest, or None when none is published. A download of an entry
        without one needs ``allow_unverified`` and records the hash it computed.
    sha256_verified: True only when the hash comes from the authors (or was checked against an
        official copy); False for hashes read from third-party mirrors.
    urls: scriptable sources, tried in order (after ``$VSODE_MIRROR``).
    licence: short licence note of the weights, as the upstream repository states it.
    description: one line for ``vsode models``.
    drive_url: the official Google Drive location, for files users must fetch by hand and
        import with ``vsode download NAME --from-file PATH``.
    builtin_path: a file inside the Python package ``builtin_package`` (forward slashes); such an
        entry resolves with no download and no cache.
    alignment: what input an encoder expects: ``"ffhq"`` (real faces, FFHQ-aligned crops: vsode
        aligns video first) or ``"none"`` (frames are used as they are, e.g. the demo world, whose
        faces are aligned by construction).
    notes: what is not known, and anything a user should read before relying on the file.
    base: for a ``stylegan2-finetune``, the registry name of the generator it was fine-tuned from
        (whose W space it shares); None for every other kind.
    """

    name: str
    kind: str
    file_name: str
    size: int | None
    sha256: str | None
    sha256_verified: bool
    urls: tuple[DownloadSource, ...] = ()
    licence: str = "unknown"
    description: str = ""
    drive_url: str | None = None
    builtin_path: str | None = None
    builtin_package: str = "vsode"
    notes: str = ""
    alignment: str = "ffhq"
    base: str | None = None

    def __post_init__(self) -> None:
        # Registry data is code: a bad entry is a programming error, hence ValueError.
        if not _NAME.match(self.name):
            raise ValueError(f"bad checkpoint name {self.name!r}: use lower-case letters, digits, . _ -")
        if self.alignment not in ("ffhq", "none"):
            raise ValueError(f"{self.name}: alignment {self.alignment!r} must be 'ffhq' or 'none'")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.file_name or "/" in self.file_name or "\\" in self.file_name:
            raise ValueError(f"{self.name}: file_name must be a bare file name, got {self.file_name!r}")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise ValueError(f"{self.name}: size must be a byte count or None")
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lower-case hex digits or None")
        if self.sha256_verified and self.sha256 is None:
            raise ValueError(f"{self.name}: sha256_verified needs a sha256")
        if (self.kind == "stylegan2-finetune") != (self.base is not None):
            raise ValueError(f"{self.name}: a stylegan2-finetune entry, and only one, names its base generator")
        if self.kind == "builtin" and self.builtin_path is None:
            raise ValueError(f"{self.name}: a builtin bundle needs builtin_path")
        if self.builtin_path is not None and (self.urls or self.drive_url):
            raise ValueError(f"{self.name}: a builtin entry has no download locations")
        object.__setattr__(self, "urls", tuple(self.urls))

    @property
    def builtin(self) -> bool:
        return self.builtin_path is not None

    @property
    def pinned(self) -> bool:
        """Whether a download can be checked against a known hash."""
        return self.sha256 is not None

    @property
    def hash_status(self) -> str:
        """``official``, ``third-party`` (pinned from a mirror, not checked) or ``unpinned``."""
        if self.sha256 is None:
            return "unpinned"
        return "official" if self.sha256_verified else "third-party"

    def how_to_get(self) -> str:
        """The command (or manual step) that installs this entry, for error messages."""
        if self.builtin:
            return "it ships inside the vsode package, which looks incomplete: reinstall vsode"
        if self.urls and self.pinned:
            return f"run `vsode download {self.name}`"
        if self.urls:
            return f"run `vsode download {self.name} --allow-unverified` (no published SHA-256)"
        if self.drive_url:
            return (
                f"download {self.file_name} by hand from {self.drive_url}, "
                f"then run `vsode download {self.name} --from-file PATH`"
            )
        return f"get {self.file_name} and run `vsode download {self.name} --from-file PATH`"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "file_name": self.file_name,
            "size": self.size,
            "sha256": self.sha256,
            "sha256_verified": self.sha256_verified,
            "hash_status": self.hash_status,
            "urls": [{"url": s.url, "third_party": s.third_party, "note": s.note} for s in self.urls],
            "licence": self.licence,
            "description": self.description,
            "drive_url": self.drive_url,
            "builtin": self.builtin,
            "notes": self.notes,
            "base": self.base,
        }


class Registry:
    """A name → :class:`Entry` table. The package-wide one is :data:`REGISTRY`."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._entries: dict[str, Entry] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: Entry) -> None:
        if entry.name in self._entries:
            raise ValueError(f"checkpoint {entry.name!r} is already registered")
        self._entries[entry.name] = entry

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    @contextlib.contextmanager
    def temporary(self, *entries: Entry) -> Iterator["Registry"]:
        """Register ``entries`` for the duration of a ``with`` block (tests, plugins)."""
        added: list[str] = []
        try:
            for entry in entries:
                self.add(entry)
                added.append(entry.name)
            yield self
        finally:
            for name in added:
                self.remove(name)

    def get(self, name: str) -> Entry:
        """The entry called ``name``; :class:`InputError` (exit 2) listing the known names if none."""
        try:
            return self._entries[name]
        except KeyError:
            raise self.unknown(name) from None

    def unknown(self, name: str) -> InputError:
        """The error for a name that is not registered; it lists the known names."""
        return InputError(f"unknown model {name!r}; known models: {', '.join(self.names()) or '(none)'}")

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)


def _hf(repo: str, path: str, note: str = "") -> DownloadSource:
    """A Hugging Face ``resolve/main`` URL of a third-party mirror repository."""
    return DownloadSource(f"https://huggingface.co/{repo}/resolve/main/{path}", third_party=True, note=note)


def _drive(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view"


_NVIDIA_NC = "NVIDIA Source Code License-NC (StyleGAN2 FFHQ weights; non-commercial use only)"

KNOWN: tuple[Entry, ...] = (
    Entry(
        name="stylegan2-ffhq-1024",
        kind="stylegan2",
        file_name="stylegan2-ffhq-config-f.pt",
        size=381_462_551,
        sha256="bae494ef77e32a9cd1792a81a3c167692a0e64f6bcd8b06592ff42917e2ed46e",
        sha256_verified=False,
        urls=(
            _hf(
                "akhaliq/OneshotCLIP-stylegan2-ffhq",
                "stylegan2-ffhq-config-f.pt",
                note="hash from the HF LFS pointer; same in Space ethanNeuralImage/inversion_testing",
            ),
        ),
        licence=_NVIDIA_NC,
        description="StyleGAN2 FFHQ 1024 config-f, rosinality conversion (g, d, g_ema, latent_avg)",
        drive_url=_drive("1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT"),
        notes=(
            "Pinned: the full 381 MB variant. Whether the official Drive file is this variant or one "
            "of the 133 MB g_ema-only copies (132,729,083 B / 132,717,355 B, other hashes) is not "
            "known; a different variant fails --from-file, pass its path to the commands instead."
        ),
    ),
    Entry(
        name="psp-ffhq-encode",
        kind="psp",
        file_name="psp_ffhq_encode.pt",
        size=None,
        sha256="f786ac5cf18fcdbc5c57c9f3f12cbedca69381fbdf5694dd132294e3133749d7",
        sha256_verified=False,
        urls=(_hf("trysem/pixel2style2pixel", "psp_ffhq_encode.pt"),),
        licence="MIT (pSp code); holds a StyleGAN2 FFHQ decoder: " + _NVIDIA_NC,
        description="pSp GradualStyleEncoder (IR-SE-50) + 1024 decoder, FFHQ inversion",
        drive_url=_drive("1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0"),
        notes="Exact size not recorded (about 1.2 GB); only the SHA-256 is checked.",
    ),
    Entry(
        name="e4e-ffhq-encode",
        kind="e4e",
        file_name="e4e_ffhq_encode.pt",
        size=1_201_649_680,
        sha256="2ace1d9a8c05c10a399bcd500b8dda118f759ff1aac89dbdab7435f2136a0999",
        sha256_verified=False,
        urls=(
            _hf(
                "wmpscc/StyleGene",
                "e4e_ffhq_encode.pt",
                note="path inside the repository assumed to be its root (not confirmed)",
            ),
        ),
        licence="MIT (e4e code); holds a StyleGAN2 FFHQ decoder: " + _NVIDIA_NC,
        description="e4e Encoder4Editing (IR-SE-50) + 1024 decoder, FFHQ inversion",
        drive_url=_drive("1cUv_reLE6k3604or78EranS7XzuVMWeO"),
    ),
    Entry(
        name="clip-vit-b-32",
        kind="clip",
        file_name="open_clip_pytorch_model.bin",
        size=None,
        sha256=None,
        sha256_verified=False,
        urls=(
            _hf(
                "timm/vit_base_patch32_clip_224.openai",
                "open_clip_pytorch_model.bin",
                "open_clip's own source for ViT-B-32 'openai': a plain state dict",
            ),
        ),
        licence="MIT (OpenAI CLIP)",
        description="CLIP ViT-B/32 (OpenAI weights) as an open_clip state dict; run with QuickGELU",
        notes=(
            "No SHA-256 is published for this file: download with --allow-unverified, and the "
            "computed hash is recorded. OpenAI's own ViT-B-32.pt (SHA-256 40d36571...) is a "
            "TorchScript archive, which vsode does not load because weights_only loading refuses it."
        ),
    ),
    Entry(
        name="dino-vitb16",
        kind="dino",
        file_name="dino_vitbase16_pretrain.pth",
        size=None,
        sha256=None,
        sha256_verified=False,
        urls=(
            DownloadSource(
                "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
                third_party=False,
                note="Meta CDN, the URL of DINO's hubconf",
            ),
        ),
        licence="Apache-2.0 (facebookresearch/dino)",
        description="DINO ViT-B/16 backbone (VidStyleODE's dino_vitb16), backbone-only state dict",
        notes=(
            "No published SHA-256 or size: downloading needs --allow-unverified; the hash computed "
            "then is recorded and `vsode models --verify` checks the file against it."
        ),
    ),
)

_VSODE_LICENCE = "MIT (vsode; trained by vsode on its procedural demo world)"

# Tiny models trained by vsode on the demo world and shipped inside the package (no download).
BUILTIN: tuple[Entry, ...] = (
    Entry(
        name="clip-demo",
        kind="clip",
        file_name="clip-demo.pt",
        size=2968506,
        sha256="9717063f4f5d5518e819cfb6491d758fe679c449ded8ab4add970b85816ed728",
        sha256_verified=True,
        builtin_path="assets/demo/clip-demo.pt",
        licence=_VSODE_LICENCE,
        description="Tiny CLIP (open_clip ViT, 64 px) for the demo world; scripts/train_demo_clip.py",
    ),
    Entry(
        name="stylegan2-demo",
        kind="stylegan2",
        file_name="stylegan2-demo.pt",
        size=2002779,
        sha256="7185586ffb19fb67a9e51973d2aed0581de0aca4ff6debb0754580e2864e8424",
        sha256_verified=True,
        builtin_path="assets/demo/stylegan2-demo.pt",
        licence=_VSODE_LICENCE,
        description="Tiny StyleGAN2 (64 px, style_dim 128) for the demo world; scripts/train_demo_autoencoder.py",
    ),
    Entry(
        name="stylegan2-demo-poster",
        kind="stylegan2-finetune",
        base="stylegan2-demo",
        file_name="stylegan2-demo-poster.pt",
        size=2002779,
        sha256="2cc4ac607e5e22bc4dfc9dfa3dd20ffb63a3590b27c882718f273983f8fc3a52",
        sha256_verified=True,
        builtin_path="assets/demo/stylegan2-demo-poster.pt",
        licence=_VSODE_LICENCE,
        description="stylegan2-demo fine-tuned to the posterised demo world (same W space); "
        "scripts/train_demo_restyled.py",
    ),
    Entry(
        name="psp-demo",
        kind="psp",
        file_name="psp-demo.pt",
        size=6084319,
        sha256="8cdedb057318b440bdab12de8606ee48632ee78c14d9fcbe02a498b9cf777d83",
        sha256_verified=True,
        builtin_path="assets/demo/psp-demo.pt",
        alignment="none",
        licence=_VSODE_LICENCE,
        description="Tiny pSp encoder (64 px input) + its 64 px decoder for the demo world; scripts/train_demo_autoencoder.py",
    ),
    Entry(
        name="vidstyleode-demo",
        kind="vidstyleode",
        file_name="vidstyleode-demo.pt",
        size=9263163,
        sha256="76ecb63f06e35967a7390e04c60ee93582e6af0f527eba4c6b7a7926d2d3f66c",
        sha256_verified=True,
        builtin_path="assets/demo/vidstyleode-demo.pt",
        licence=_VSODE_LICENCE,
        description="VidStyleODE (demo preset) trained by `vsode train` on the demo world, with the prior "
        "`vsode generate` samples; scripts/train_demo_model.py, scripts/fit_demo_prior.py",
    ),
)

REGISTRY = Registry(KNOWN + BUILTIN)
