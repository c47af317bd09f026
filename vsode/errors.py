"""The project's exceptions. Each carries a user-facing message and the exit code the CLI uses.

Exit codes (documented in ``man/vsode.1``):
0 ok, 1 runtime failure, 2 usage or bad input, 3 missing model, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_MISSING_MODEL = 3
EXIT_INTERRUPTED = 130


class VsodeError(Exception):
    """An error whose message is meant for the user: one line naming the thing and the fix."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class InputError(VsodeError):
    """Bad input from the user: a missing file, an unreadable video, an invalid option value."""

    exit_code = EXIT_USAGE


class OutputExistsError(InputError):
    """The output path exists and ``--force`` was not given."""


class ModelMissingError(VsodeError):
    """A model the command needs is not in the cache; the message names the download command."""

    exit_code = EXIT_MISSING_MODEL


class ChecksumError(VsodeError):
    """A downloaded or imported file does not have the registered SHA-256."""


class UnsafeCheckpointError(VsodeError):
    """A checkpoint would need to run code to load (a pickle outside the allow-list)."""


class FFmpegError(VsodeError):
    """ffmpeg failed; the message carries the tail of its stderr."""


class SolverError(VsodeError):
    """An adaptive ODE solve gave up (its step cap was reached or its step size underflowed)."""
