"""Errors a user can cause, each rendered as one line and an exit code (never a traceback)."""

from __future__ import annotations

EXIT_BAD_INPUT = 2


class WirecorrError(Exception):
    """A failure the user can act on; the CLI prints `wirecorr: <message>` and exits."""

    exit_code = 1


class InputError(WirecorrError):
    """Unreadable input: names the file and the byte offset (or line) where reading failed."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: str, message: str, offset: int | None = None, line: int | None = None) -> None:
        self.path = path
        self.offset = offset
        self.line = line
        where = path
        if offset is not None:
            where += f" at byte {offset}"
        if line is not None:
            where += f" line {line}"
        super().__init__(f"{where}: {message}")


class UsageError(WirecorrError):
    """Options or arguments that cannot work together, or a command run where it cannot work."""

    exit_code = EXIT_BAD_INPUT


class MissingTool(WirecorrError):
    """A program or capability wirecorr needs is not there; says what to install or grant."""

    exit_code = EXIT_BAD_INPUT
