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
    if path != STDIN or threading.current_thread() is not threading.main_thread() or not _stdin_is_pipe():
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


def _stdin_is_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:
        return False
