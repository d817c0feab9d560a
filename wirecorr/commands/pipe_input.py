"""A capture read from a pipe (`tcpdump -w - | wirecorr analyze -`) through ctrl-c.

ctrl-c at the terminal reaches every process of the pipeline: tcpdump then writes its last
packets and closes the pipe, and wirecorr, had it died with it, would have said nothing
about what it had read. So while a command reads a pipe on stdin, the first ctrl-c only
says that wirecorr reads on to the pipe's end; a second one aborts as usual.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from wirecorr.sources.capture_file import STDIN


@contextmanager
def reading_through_ctrl_c(path: str | None) -> Iterator[None]:
    """The first ctrl-c reads on; for standard input from a pipe and for a named pipe
    (`mkfifo f; tcpdump -w f & wirecorr analyze f`), which is read the same way."""
    piped = _stdin_is_pipe() if path == STDIN else path is not None and _is_fifo(path)
    if not piped or threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum: int, frame: FrameType | None) -> None:
        print("\nwirecorr: reading the pipe to its end, then reporting (ctrl-c again to abort)", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _stdin_is_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:
        return False
