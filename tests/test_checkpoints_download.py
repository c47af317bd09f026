"""Downloads against a real HTTP server on 127.0.0.1: resume, dropped connections, servers that
ignore Range or send wrong bytes, 404, timeouts; and importing a local copy."""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vsode.checkpoints import Cache, DownloadOptions, DownloadSource, Entry, Registry, download, import_file
from vsode.errors import ChecksumError, InputError, ModelMissingError, VsodeError

PAYLOAD = random.Random(1234).randbytes(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = DownloadOptions(timeout=2.0, retries=2, backoff=0.01)


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD at /<mode>/<file>; the mode picks a misbehaviour."""

    protocol_version = "HTTP/1.0"
    timeout = 5  # a stuck client cannot hold a server thread

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        srv: _Server = self.server  # type: ignore[assignment]
        mode = self.path.strip("/").split("/")[0]
        rng = self.headers.get("Range")
        with srv.lock:
            srv.hits.append((mode, rng))
            n_mode = sum(1 for m, _ in srv.hits if m == mode)
        if len(srv.hits) > srv.max_requests or mode == "missing":
            self.send_error(404 if mode == "missing" else 503)
            return
        if mode == "slow":
            srv.stopping.wait(1.0)  # longer than the client's timeout; ends when the server stops
            return
        if mode == "flaky" and n_mode == 1:
            self.send_error(503)
            return
        body = PAYLOAD
        if mode == "wrong":
            body = bytes(b ^ 0xFF for b in PAYLOAD[:10]) + PAYLOAD[10:]
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and mode != "norange":
            start = int(match.group(1))
        if start >= len(body) and start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        data = body[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        if mode != "nolength":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "drop" and n_mode == 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection dies half-way
            return
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.max_requests = 20

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that time out or hang up are part of the tests

    def url(self, mode: str, name: str = "tiny.pt") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/{name}"


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.stopping.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def _entry(*urls: str, size: int | None = len(PAYLOAD), sha256: str | None = SHA, name: str = "tiny") -> Entry:
    return Entry(
        name=name,
        kind="stylegan2",
        file_name="tiny.pt",
        size=size,
        sha256=sha256,
        sha256_verified=sha256 is not None,
        urls=tuple(DownloadSource(u, third_party=False) for u in urls),
        licence="test",
    )


def _get(entry: Entry, cache: Path, options: DownloadOptions = FAST):
    return download(entry.name, cache_dir=cache, registry=Registry([entry]), options=options)


def _final(cache: Path) -> Path:
    return cache / "checkpoints" / "tiny" / "tiny.pt"


def _part(cache: Path) -> Path:
    return cache / "checkpoints" / "tiny" / "tiny.pt.part"


def test_download_verifies_and_records(server, tmp_path):
    result = _get(_entry(server.url("range")), tmp_path)
    assert result.status == "downloaded" and result.verified and result.sha256 == SHA
    assert _final(tmp_path).read_bytes() == PAYLOAD
    assert not _part(tmp_path).exists()
    record = json.loads((tmp_path / "checkpoints" / "tiny" / "install.json").read_text())
    assert record["sha256"] == SHA and record["source"] == server.url("range")
    assert server.hits == [("range", None)]
    # installed: a second call does not touch the network
    assert _get(_entry(server.url("range")), tmp_path).status == "present"
    assert len(server.hits) == 1


def test_resume_from_existing_part(server, tmp_path):
    _part(tmp_path).parent.mkdir(parents=True)
    _part(tmp_path).write_bytes(PAYLOAD[:100_000])
    result = _get(_entry(server.url("range")), tmp_path)
    assert server.hits == [("range", "bytes=100000-")]
    assert result.resumed_from == 100_000 and result.verified
    assert _final(tmp_path).read_bytes() == PAYLOAD


def test_resumed_prefix_is_hashed_and_bad_prefix_refetched(server, tmp_path):
    # A corrupt prefix from an earlier run fails the hash; the file is fetched again from zero.
    _part(tmp_path).parent.mkdir(parents=True)
    _part(tmp_path).write_bytes(b"\0" * 100_000)
    result = _get(_entry(server.url("range")), tmp_path)
    assert server.hits == [("range", "bytes=100000-"), ("range", None)]
    assert result.verified and _final(tmp_path).read_bytes() == PAYLOAD


def test_complete_part_needs_no_request(server, tmp_path):
    _part(tmp_path).parent.mkdir(parents=True)
    _part(tmp_path).write_bytes(PAYLOAD)
    assert _get(_entry(server.url("range")), tmp_path).verified
    assert server.hits == []


def test_dropped_connection_resumes(server, tmp_path):
    result = _get(_entry(server.url("drop")), tmp_path)
    (_, first), (_, second) = server.hits
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", second).group(1))
    assert first is None and 0 < resumed_at <= len(PAYLOAD) // 2  # what arrived was kept
    assert result.attempts == 2 and _final(tmp_path).read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    _part(tmp_path).parent.mkdir(parents=True)
    _part(tmp_path).write_bytes(PAYLOAD[:100_000])
    result = _get(_entry(server.url("norange")), tmp_path)
    assert server.hits == [("norange", "bytes=100000-")]  # got 200 + the whole file
    assert result.verified and _final(tmp_path).read_bytes() == PAYLOAD


def test_wrong_bytes_delete_part_and_leave_no_file(server, tmp_path):
    with pytest.raises(ChecksumError) as err:
        _get(_entry(server.url("wrong")), tmp_path)
    message = str(err.value)
    assert err.value.exit_code == 1
    assert f"expected {SHA}" in message and "got " in message and "\n" not in message
    assert not _final(tmp_path).exists() and not _part(tmp_path).exists()


def test_404_is_a_clear_error_without_retries(server, tmp_path):
    with pytest.raises(VsodeError) as err:
        _get(_entry(server.url("missing")), tmp_path)
    assert err.value.exit_code == 1
    assert "HTTP 404" in str(err.value) and server.url("missing") in str(err.value)
    assert len(server.hits) == 1


def test_timeout_gives_up_after_bounded_retries(server, tmp_path):
    start = time.monotonic()
    with pytest.raises(VsodeError) as err:
        _get(_entry(server.url("slow")), tmp_path, DownloadOptions(timeout=0.2, retries=2, backoff=0.01))
    assert time.monotonic() - start < 3
    assert "no answer within 0.2 s" in str(err.value) and "after 3 attempts" in str(err.value)
    assert len(server.hits) == 3
    assert not _final(tmp_path).exists()


def test_server_error_is_retried(server, tmp_path):
    assert _get(_entry(server.url("flaky")), tmp_path).attempts == 2
    assert len(server.hits) == 2


def test_mirror_is_tried_first_then_the_registered_urls(server, tmp_path):
    base = server.url("range", "").rstrip("/")
    result = _get(_entry(server.url("missing")), tmp_path, DownloadOptions(mirror=base, backoff=0.01))
    assert result.source == f"{base}/tiny.pt" and server.hits == [("range", None)]

    missing_mirror = server.url("missing", "").rstrip("/")
    result = _get(
        _entry(server.url("range"), name="tiny"), tmp_path / "b", DownloadOptions(mirror=missing_mirror, backoff=0.01)
    )
    assert result.source == server.url("range")
    assert server.hits[1:] == [("missing", None), ("range", None)]


def test_offline_never_connects(server, tmp_path, monkeypatch):
    entry = _entry(server.url("range"))
    with pytest.raises(ModelMissingError) as err:
        _get(entry, tmp_path, DownloadOptions(offline=True))
    assert err.value.exit_code == 3 and "vsode download tiny" in str(err.value)
    monkeypatch.setenv("VSODE_OFFLINE", "1")
    with pytest.raises(ModelMissingError):
        _get(entry, tmp_path)
    assert server.hits == []


def test_unpinned_download_needs_the_flag_and_records_the_hash(server, tmp_path):
    entry = _entry(server.url("range"), size=None, sha256=None)
    with pytest.raises(InputError, match="--allow-unverified"):
        _get(entry, tmp_path)
    assert server.hits == []
    result = _get(entry, tmp_path, DownloadOptions(allow_unverified=True, backoff=0.01))
    assert result.sha256 == SHA and not result.verified and result.hash_status == "unpinned"
    assert any("no published SHA-256" in w for w in result.warnings)
    assert Cache(tmp_path).read_record(entry)["sha256"] == SHA


def test_drive_only_entry_names_the_manual_route(tmp_path):
    entry = Entry(
        name="tiny", kind="psp", file_name="tiny.pt", size=1, sha256=SHA, sha256_verified=False,
        drive_url="https://drive.google.com/file/d/XYZ/view",
    )
    with pytest.raises(ModelMissingError) as err:
        _get(entry, tmp_path)
    assert "https://drive.google.com/file/d/XYZ/view" in str(err.value)
    assert "vsode download tiny --from-file PATH" in str(err.value)


def test_concurrent_install_is_refused(server, tmp_path):
    entry = _entry(server.url("range"))
    with Cache(tmp_path).lock(entry):
        with pytest.raises(VsodeError, match="another vsode process"):
            _get(entry, tmp_path)
    assert server.hits == []


def test_import_file_verifies_and_copies(tmp_path):
    src = tmp_path / "by-hand.pt"
    src.write_bytes(PAYLOAD)
    entry = _entry()
    cache = tmp_path / "cache"
    result = import_file("tiny", src, cache_dir=cache, registry=Registry([entry]))
    assert result.status == "imported" and result.verified
    assert _final(cache).read_bytes() == PAYLOAD and src.read_bytes() == PAYLOAD
    assert Cache(cache).read_record(entry)["source"] == f"file:{src.resolve()}"


@pytest.mark.parametrize("bad", ["wrong-bytes", "wrong-size"])
def test_import_file_refuses_a_different_file(tmp_path, bad):
    src = tmp_path / "by-hand.pt"
    src.write_bytes(b"x" + PAYLOAD[1:] if bad == "wrong-bytes" else PAYLOAD[:-1])
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match="nothing was imported"):
        import_file("tiny", src, cache_dir=cache, registry=Registry([_entry()]))
    folder = cache / "checkpoints" / "tiny"
    assert not _final(cache).exists()
    assert not folder.exists() or [p.name for p in folder.iterdir()] == [".lock"]


def test_import_file_missing_source(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        import_file("tiny", tmp_path / "nope.pt", cache_dir=tmp_path, registry=Registry([_entry()]))


# -- the command line ------------------------------------------------------------------------------


def _cli(*args: str, env: dict | None = None):
    from typer.testing import CliRunner

    from vsode.cli.app import app

    return CliRunner().invoke(app, list(args), env=env)


def test_cli_download_json(server, tmp_path):
    from vsode.checkpoints import REGISTRY

    with REGISTRY.temporary(_entry(server.url("range"))):
        res = _cli("download", "tiny", "--cache-dir", str(tmp_path), "--json")
    assert res.exit_code == 0, res.stderr
    (out,) = json.loads(res.stdout)["models"]
    assert out["status"] == "downloaded" and out["verified"] and out["sha256"] == SHA
    assert out["size"] == len(PAYLOAD) and Path(out["path"]).read_bytes() == PAYLOAD


def test_cli_download_mismatch_exits_1_with_one_line(server, tmp_path):
    from vsode.checkpoints import REGISTRY

    with REGISTRY.temporary(_entry(server.url("wrong"))):
        res = _cli("download", "tiny", "--cache-dir", str(tmp_path), "--retries", "0")
    assert res.exit_code == 1 and res.stdout == ""
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vsode: error: tiny: SHA-256 mismatch")
    assert f"expected {SHA}" in lines[0]
    assert not _final(tmp_path).exists() and not _part(tmp_path).exists()


def test_cli_download_uses_vsode_mirror(server, tmp_path):
    from vsode.checkpoints import REGISTRY

    mirror = server.url("range", "").rstrip("/")
    with REGISTRY.temporary(_entry(server.url("missing"))):
        res = _cli("download", "tiny", "--json", env={"VSODE_MIRROR": mirror, "VSODE_CACHE_DIR": str(tmp_path)})
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["models"][0]["source"] == f"{mirror}/tiny.pt"
    assert server.hits == [("range", None)]


def test_cli_download_several_reports_each(server, tmp_path):
    from vsode.checkpoints import REGISTRY

    good, bad = _entry(server.url("range"), name="tiny"), _entry(server.url("missing"), name="gone")
    with REGISTRY.temporary(good, bad):
        res = _cli("download", "tiny", "gone", "--cache-dir", str(tmp_path), "--json")
    assert res.exit_code == 1
    results = {r["name"]: r for r in json.loads(res.stdout)["models"]}
    assert results["tiny"]["status"] == "downloaded" and results["gone"]["status"] == "failed"
    assert "1 of 2 models failed: could not download gone: " in res.stderr and "HTTP 404" in res.stderr


def test_part_longer_than_the_served_file_restarts(server, tmp_path):
    # Unpinned entry (no size known): the server answers 416 to the resume; start over.
    _part(tmp_path).parent.mkdir(parents=True)
    _part(tmp_path).write_bytes(PAYLOAD + b"stale tail")
    entry = _entry(server.url("range"), size=None, sha256=None)
    result = _get(entry, tmp_path, DownloadOptions(allow_unverified=True, retries=0))
    assert server.hits == [("range", f"bytes={len(PAYLOAD) + 10}-"), ("range", None)]
    assert result.sha256 == SHA and _final(tmp_path).read_bytes() == PAYLOAD


def test_install_all_skips_builtin_and_goes_on_after_a_failure(server, tmp_path, monkeypatch):
    from vsode.checkpoints import install_many

    pkg = tmp_path / "pkg_all"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "m.pt").write_bytes(b"x")
    monkeypatch.syspath_prepend(str(tmp_path))
    builtin = Entry(
        name="shipped", kind="builtin", file_name="m.pt", size=1, sha256=None, sha256_verified=False,
        builtin_path="m.pt", builtin_package="pkg_all",
    )
    registry = Registry([_entry(server.url("missing"), name="gone"), _entry(server.url("range")), builtin])
    results = install_many([], all_models=True, cache_dir=tmp_path / "c", registry=registry, options=FAST)
    assert [(r.name, r.status) for r in results] == [("gone", "failed"), ("tiny", "downloaded")]
    assert results[0].exit_code == 1 and "HTTP 404" in results[0].error


def test_unverified_download_needs_a_length(server, tmp_path):
    entry = _entry(server.url("nolength"), size=None, sha256=None)
    with pytest.raises(VsodeError, match="no file size"):
        _get(entry, tmp_path, DownloadOptions(allow_unverified=True))
    assert not _final(tmp_path).exists()
    # with a pinned hash the same server is fine: the hash proves the file complete
    assert _get(_entry(server.url("nolength")), tmp_path).verified
