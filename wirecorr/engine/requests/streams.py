"""A TCP direction as stream offsets: the bytes known at each offset, the segments that
carried them and the data calls that moved them.

Bytes come from two places: the data calls' recorded first bytes (`--data-bytes`) and the
captured payload of the segments. Payloads are re-read from the file only where a framer
asks for bytes the calls did not record (message heads), so a bulk body costs nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wirecorr.engine.packet_table import PacketTable
from wirecorr.engine.seq import HALF, M32
from wirecorr.model import SYN


class ByteSource:
    """Sparse bytes of one stream direction: runs of known bytes by offset, merged as they
    are added, with the segments' payloads fetched on demand."""

    def __init__(
        self,
        segments: list[tuple[int, int, int]] | None = None,
        fetch: Callable[[int], bytes | None] | None = None,
    ) -> None:
        self._starts: list[int] = []
        self._runs: list[bytes] = []
        self._segments = segments or []
        self._seg_starts = [s for s, _, _ in self._segments]
        self._max_len = max((e - s for s, e, _ in self._segments), default=0)
        self._fetch = fetch
        self._fetched: set[int] = set()

    def add(self, offset: int, data: bytes) -> None:
        """Bytes known to sit at `offset`; overlapping runs are taken to agree."""
        if not data:
            return
        starts, runs = self._starts, self._runs
        at = bisect.bisect_right(starts, offset) - 1
        if at >= 0 and starts[at] + len(runs[at]) >= offset:
            start = starts[at]
            data = _union(start, runs[at], offset, data)
            offset = start
            del starts[at], runs[at]
        else:
            at += 1
        end = offset + len(data)
        while at < len(starts) and starts[at] <= end:
            data = _union(offset, data, starts[at], runs[at])
            end = offset + len(data)
            del starts[at], runs[at]
        starts.insert(at, offset)
        runs.insert(at, data)

    def get(self, offset: int, n: int) -> bytes:
        """Up to `n` bytes known contiguously from `offset` (fewer where knowledge stops)."""
        got = self._known(offset, n)
        if len(got) < n and self._fetch is not None and self._pull(offset + len(got), offset + n):
            got = self._known(offset, n)
        return got

    def _known(self, offset: int, n: int) -> bytes:
        at = bisect.bisect_right(self._starts, offset) - 1
        if at < 0:
            return b""
        start, run = self._starts[at], self._runs[at]
        if offset >= start + len(run):
            return b""
        return run[offset - start : offset - start + n]

    def _pull(self, lo: int, hi: int) -> bool:
        """Fetch the payloads of segments overlapping [lo, hi) not read yet; whether any was."""
        assert self._fetch is not None
        segs, starts = self._segments, self._seg_starts
        i = bisect.bisect_right(starts, lo - self._max_len)
        added = False
        while i < len(segs) and segs[i][0] < hi:
            s, e, idx = segs[i]
            i += 1
            if e <= lo or idx in self._fetched:
                continue
            self._fetched.add(idx)
            payload = self._fetch(idx)
            if payload:
                self.add(s, payload[: e - s])
                added = True
        return added


def _union(a_start: int, a: bytes, b_start: int, b: bytes) -> bytes:
    """The bytes of two overlapping or touching runs (a starts first)."""
    a_end = a_start + len(a)
    b_end = b_start + len(b)
    if b_end <= a_end:
        return a
    return a + b[a_end - b_start :]


@dataclass(slots=True)
class Direction:
    """One direction of a TCP connection: `segments` (start, end, packet index) by stream
    offset, retransmissions included; `writes` and `reads` (start, end, syscall id) of the
    sending and receiving side's data calls; `src` its bytes."""

    segments: list[tuple[int, int, int]] = field(default_factory=list)
    writes: list[tuple[int, int, int]] = field(default_factory=list)
    reads: list[tuple[int, int, int]] = field(default_factory=list)
    src: ByteSource = field(default_factory=ByteSource)
    max_seg: int = 0

    @property
    def end(self) -> int:
        """Just past the last byte the stream is known to have carried."""
        top = max((e for _, e, _ in self.segments), default=0)
        for calls in (self.writes, self.reads):
            if calls:
                top = max(top, calls[-1][1])
        return top

    def segments_over(self, start: int, end: int) -> list[tuple[int, int, int]]:
        segs = self.segments
        lo = bisect.bisect_right(segs, (start - self.max_seg, -1, -1))
        out = []
        for i in range(lo, len(segs)):
            s, e, idx = segs[i]
            if s >= end:
                break
            if e > start:
                out.append((s, e, idx))
        return out


def calls_over(calls: list[tuple[int, int, int]], start: int, end: int) -> list[tuple[int, int, int]]:
    """Calls of a sorted, disjoint list that overlap [start, end)."""
    at = max(bisect.bisect_right(calls, (start, 1 << 62, 0)) - 1, 0)
    out = []
    while at < len(calls) and calls[at][0] < end:
        if calls[at][1] > start:
            out.append(calls[at])
        at += 1
    return out


def tcp_segments(
    table: PacketTable, indices: Iterable[int]
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """Segments with payload of a TCP connection per direction, at the stream offsets the
    correlator uses: relative sequence numbers unwrapped against the highest position seen,
    less the SYN's one."""
    out: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] = ([], [])
    tops = [0, 0]
    direction, seglen, rel_seq, flags = table.direction, table.seglen, table.rel_seq, table.flags
    for idx in indices:
        d = direction[idx]
        n = seglen[idx]
        top = tops[d]
        pos = top + ((rel_seq[idx] - top + HALF) & M32) - HALF
        if n:
            start = pos - 1 + (1 if flags[idx] & SYN else 0)
            out[d].append((start, start + n, idx))
        tops[d] = max(top, pos + n)
    for segs in out:
        segs.sort()
    return out


@dataclass(slots=True)
class Frame:
    """One message a framer found: stream offsets [start, end), its protocol fields, and
    whether the stream ended inside it (`complete` False)."""

    start: int
    end: int
    fields: dict[str, object] = field(default_factory=dict)
    complete: bool = True


def line_at(src: ByteSource, pos: int, limit: int = 8192) -> bytes | None:
    """The CRLF-terminated line at `pos` without its CRLF; None when its end is not known."""
    data = src.get(pos, limit)
    i = data.find(b"\r\n")
    return None if i < 0 else data[:i]


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def printable(text: str) -> str:
    """Wire text made safe to print: control characters (an escape sequence in a URI would
    reach the user's terminal) shown as \\xNN."""
    return text.translate(_CONTROL) if not text.isprintable() else text


# Longest stream tail `runs_to` reads to decide that a stream ended inside a message.
MAX_TAIL = 1 << 16


def runs_to(src: ByteSource, pos: int, limit: int) -> bool:
    """Whether every byte from `pos` to the stream's end `limit` is known: a message that
    cannot be framed there was cut by the end of the stream, not by bytes never recorded."""
    n = limit - pos
    return n <= MAX_TAIL and len(src.get(pos, n)) >= n
