"""Run a command with some of its standard streams on a pseudo-terminal, as from a shell."""

from __future__ import annotations

import os
import pty
import subprocess


def run_with_tty(argv: list[str], *, stdin_tty: bool, stderr_tty: bool, timeout: float = 60) -> tuple[int, str]:
    """(exit status, what it wrote to stderr): stdin and stderr each a terminal or not
    (/dev/null and a pipe otherwise). stdout is a pipe; its text is dropped."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=slave if stdin_tty else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave if stderr_tty else subprocess.PIPE,
            text=True,
        )
        os.close(slave)
        slave = -1
        try:
            if stderr_tty:
                status = proc.wait(timeout)  # the few lines expected fit in the terminal's buffer
                return status, _drain(master).replace("\r\n", "\n")
            _, err = proc.communicate(timeout=timeout)
            return proc.returncode, err
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


def _drain(master: int) -> str:
    """Whatever the terminal holds once every writer has closed it (EIO marks the end)."""
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
