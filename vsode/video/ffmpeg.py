"""Finding and running the ffmpeg binary.

ffmpeg always runs from an argument list, never through a shell. Without a system ffmpeg the
binary bundled with imageio-ffmpeg is used; ``VSODE_FFMPEG`` names another one. Errors carry the
last lines of ffmpeg's stderr.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import IO, Any, Sequence

from ..errors import FFmpegError, InputError, VsodeError

FFMPEG_ENV = "VSODE_FFMPEG"
TAIL_LINES = 10
# Every run: no banner, no keyboard interaction, no progress lines on stderr.
BASE_ARGS = ("-hide_banner", "-nostdin", "-nostats")


def ffmpeg_exe() -> str:
    """Return the ffmpeg binary to run.

    ``$VSODE_FFMPEG`` wins when set (a path, or a command name looked up on ``PATH``); otherwise
    the binary imageio-ffmpeg bundles (it falls back to an ffmpeg on ``PATH``). Resolved on every
    call, so changing the variable takes effect at once.

    Raises:
        InputError: ``VSODE_FFMPEG`` does not name an executable file.
        VsodeError: no ffmpeg can be found at all.
    """
    override = os.environ.get(FFMPEG_ENV, "").strip()
    if override:
        found = shutil.which(override) if os.sep not in override else None
        candidate = Path(found or override).expanduser()
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            raise InputError(
                f"{FFMPEG_ENV}={override} is not an executable file; "
                "point it at an ffmpeg binary or unset it"
            )
        return str(candidate)
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise VsodeError(
            "no ffmpeg found; install imageio-ffmpeg (pip install imageio-ffmpeg) "
            f"or set {FFMPEG_ENV} to an ffmpeg binary"
        ) from exc


def ffmpeg_path_arg(path: str | os.PathLike) -> str:
    """A local path for ffmpeg: ``file:`` so names with ``:`` or a leading ``-`` work."""
    return "file:" + str(Path(path).absolute())


def start(args: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen:
    """Start ``ffmpeg *args``; a binary that cannot run is an :class:`FFmpegError`."""
    exe = ffmpeg_exe()
    try:
        return subprocess.Popen([exe, *args], **popen_kwargs)
    except OSError as exc:
        raise FFmpegError(
            f"could not start ffmpeg ({exe}): {exc.strerror or exc}; "
            f"set {FFMPEG_ENV} to a working ffmpeg binary"
        ) from exc


def run(args: Sequence[str]) -> tuple[int, bytes, str]:
    """Run ffmpeg to completion; return its exit code, stdout bytes and stderr text."""
    proc = start(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    return proc.returncode, out, err.decode("utf-8", "replace")


def tail(text: str, n: int = TAIL_LINES) -> str:
    """The last ``n`` non-empty lines of ffmpeg's stderr, joined into one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-n:]) or "ffmpeg printed nothing"


def stop(proc: subprocess.Popen) -> int:
    """Kill ``proc`` if it still runs and reap it; return its exit code."""
    if proc.poll() is None:
        proc.kill()
    return proc.wait()


class StderrDrain:
    """Reads a child's stderr on a thread, so ffmpeg never blocks on a full pipe; keeps the tail."""

    def __init__(self, stream: IO[bytes], keep: int = 200) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._thread = threading.Thread(
            target=self._run, args=(stream,), name="ffmpeg-stderr", daemon=True
        )
        self._thread.start()

    def _run(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self._lines.append(raw.decode("utf-8", "replace").rstrip())

    def tail(self, n: int = TAIL_LINES) -> str:
        """The last ``n`` lines; call after the process has exited to get all of them."""
        self._thread.join(timeout=5)
        return tail("\n".join(self._lines), n)
