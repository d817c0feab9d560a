"""A progress line on stderr for long reads, shown only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from wirecorr.engine.ingest import OnProgress


@contextlib.contextmanager
def showing_progress(path: str) -> Iterator[OnProgress | None]:
    """A progress line for reading `path` while the block runs, when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    progress = Progress(f"reading {path}")
    try:
        yield progress.update
    finally:
        progress.close()


class Progress:
    """Redraws at most ten times a second so it costs nothing next to the decode loop."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.label = label
        self._next = 0.0

    def update(self, done: int, total: int, items: int) -> None:
        """`done` of `total` bytes read, `items` packets: the engine's `ingest.OnProgress`."""
        if not self.enabled or total <= 0:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.1
        frac = min(done / total, 1.0)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label} [{bar:<30}] {frac:5.1%} {items:,} packets")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
