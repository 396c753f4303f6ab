"""Exit codes and the error family that the CLI turns into them.

No third-party imports: the CLI maps these to exit codes without importing JAX.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The exit statuses of CLI.md; scripts and CI rely on them."""

    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    BAD_INPUT = 3
    FUNCTION = 4
    NON_FINITE = 5
    INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2, as shells report it
    TERMINATED = 143  # SIGTERM: 128 + 15


class JaxdiffError(Exception):
    """Base of every error meant for the user: one line, no traceback."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class UsageError(JaxdiffError):
    """Options that do not fit together."""

    exit_code = ExitCode.USAGE


class SpecError(JaxdiffError):
    """A malformed spec or value: names the file and the key path."""

    exit_code = ExitCode.BAD_INPUT


class DeviceError(JaxdiffError):
    """A device that JAX does not see."""

    exit_code = ExitCode.BAD_INPUT


class OutputError(JaxdiffError):
    """An output file that cannot be written."""

    exit_code = ExitCode.BAD_INPUT


class FunctionError(JaxdiffError):
    """The user's function failed to load, trace or run."""

    exit_code = ExitCode.FUNCTION


class NonFiniteError(JaxdiffError):
    """A NaN or Inf in a result where finiteness was asked for."""

    exit_code = ExitCode.NON_FINITE
