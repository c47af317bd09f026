"""The registry's data, and resolve(): names to cached files, paths to themselves, clear errors."""

from __future__ import annotations

import hashlib
import pytest

from vsode.checkpoints import KNOWN, REGISTRY, Cache, DownloadSource, Entry, Registry, default_cache_dir, resolve
from vsode.checkpoints.download import download
from vsode.errors import ChecksumError, InputError, ModelMissingError

# Facts from the shared formats/README.md ("Public download locations"), transcribed separately.
EXPECTED = {
    "stylegan2-ffhq-1024": (381_462_551, "bae494ef77e32a9cd1792a81a3c167692a0e64f6bcd8b06592ff42917e2ed46e"),
    "psp-ffhq-encode": (None, "f786ac5cf18fcdbc5c57c9f3f12cbedca69381fbdf5694dd132294e3133749d7"),
    "e4e-ffhq-encode": (1_201_649_680, "2ace1d9a8c05c10a399bcd500b8dda118f759ff1aac89dbdab7435f2136a0999"),
    # open_clip's state-dict file (loadable with weights_only); no hash is published for it.
    "clip-vit-b-32": (None, None),
    "dino-vitb16": (None, None),
}


def _entry(**kw) -> Entry:
    base = dict(name="tiny", kind="stylegan2", file_name="tiny.pt", size=3, sha256="0" * 64, sha256_verified=False)
    return Entry(**{**base, **kw})


def test_seeded_entries_match_the_formats_readme():
    assert {e.name: (e.size, e.sha256) for e in KNOWN} == EXPECTED
    for entry in KNOWN:
        assert entry.urls or entry.drive_url, entry.name
        # mirror hashes are third-party: pinned but not claimed verified
        if any(s.third_party for s in entry.urls):
            assert not entry.sha256_verified, entry.name
    dino = REGISTRY.get("dino-vitb16")
    assert dino.sha256 is None and dino.hash_status == "unpinned"
    assert dino.urls[0].url == "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth"
    assert REGISTRY.get("e4e-ffhq-encode").hash_status == "third-party"
    clip = REGISTRY.get("clip-vit-b-32")
    assert clip.hash_status == "unpinned" and clip.file_name == "open_clip_pytorch_model.bin"


@pytest.mark.parametrize(
    "bad",
    [
        dict(name="Bad Name"),
        dict(kind="gan"),
        dict(sha256="ABC"),
        dict(file_name="a/b.pt"),
        dict(sha256=None, sha256_verified=True),
        dict(builtin_path="assets/x.pt", urls=(DownloadSource("https://example.org/x", third_party=True),)),
        dict(kind="builtin"),
    ],
)
def test_entry_validation(bad):
    with pytest.raises(ValueError):
        _entry(**bad)


def test_temporary_registration_is_undone():
    registry = Registry([_entry(name="a")])
    with pytest.raises(RuntimeError):
        with registry.temporary(_entry(name="b")):
            assert registry.names() == ["a", "b"]
            raise RuntimeError
    assert registry.names() == ["a"]
    with pytest.raises(ValueError, match="already registered"):
        registry.add(_entry(name="a"))


def test_unknown_name_lists_known_names():
    with pytest.raises(InputError) as err:
        resolve("stylegan3-ffhq", registry=Registry([_entry(name="a"), _entry(name="b")]))
    assert err.value.exit_code == 2 and "known models: a, b" in str(err.value)


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VSODE_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("VSODE_CACHE_DIR")
    assert default_cache_dir().name == "vsode"


def test_resolve_installed_name_and_plain_path(tmp_path, monkeypatch):
    data = b"abc"
    url = DownloadSource("https://example.org/tiny.pt", third_party=False)
    entry = _entry(sha256=hashlib.sha256(data).hexdigest(), urls=(url,))
    registry = Registry([entry])
    monkeypatch.setenv("VSODE_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelMissingError) as err:
        resolve("tiny", registry=registry)
    assert err.value.exit_code == 3 and "`vsode download tiny`" in str(err.value) and "\n" not in str(err.value)

    cached = Cache(tmp_path).path(entry)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data)
    assert resolve("tiny", registry=registry) == cached

    own = tmp_path / "mine.pt"
    own.write_bytes(b"anything")
    assert resolve(own, registry=registry) == own
    assert resolve(str(own), registry=registry) == own
    with pytest.raises(InputError, match="does not exist"):
        resolve(tmp_path / "nope.pt", registry=registry)

    cached.write_bytes(b"abcd")  # a file of the wrong size is not handed out
    with pytest.raises(ChecksumError, match="--force"):
        resolve("tiny", registry=registry)


def test_resolve_messages_for_drive_only_and_unpinned(tmp_path):
    drive = _entry(name="d", drive_url="https://drive.google.com/file/d/XYZ/view")
    unpinned = _entry(name="u", sha256=None, urls=(DownloadSource("https://example.org/u.pt", third_party=False),))
    registry = Registry([drive, unpinned])
    with pytest.raises(ModelMissingError, match=r"by hand from https://drive.google.com/file/d/XYZ/view, then run `vsode download d --from-file PATH`"):
        resolve("d", cache_dir=tmp_path, registry=registry)
    with pytest.raises(ModelMissingError, match="`vsode download u --allow-unverified`"):
        resolve("u", cache_dir=tmp_path, registry=registry)


def test_builtin_entry_resolves_inside_its_package_without_download(tmp_path, monkeypatch):
    # A stand-in for the demo bundle that will ship inside vsode: a file inside an importable package.
    pkg = tmp_path / "fakepkg"
    (pkg / "assets").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "assets" / "tiny.pt").write_bytes(b"tiny model")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = Entry(
        name="demo-tiny",
        kind="builtin",
        file_name="tiny.pt",
        size=10,
        sha256=hashlib.sha256(b"tiny model").hexdigest(),
        sha256_verified=True,
        builtin_path="assets/tiny.pt",
        builtin_package="fakepkg",
    )
    cache = tmp_path / "empty-cache"
    with REGISTRY.temporary(entry):
        assert resolve("demo-tiny", cache_dir=cache) == pkg / "assets" / "tiny.pt"
        result = download("demo-tiny", cache_dir=cache)
        assert result.status == "builtin" and result.path == pkg / "assets" / "tiny.pt"
    assert "demo-tiny" not in REGISTRY
    assert not cache.exists()  # nothing was written for it
