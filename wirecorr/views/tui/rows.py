"""The timeline's row index: (timestamp, ref) pairs in time order, two typed arrays.

A million rows cost 16 MB here and nothing on the Python heap; a list of tuples would
cost ~100 MB and seconds of GC. A ref packs what a row shows: `index << 1` for packet
`index`, `pos << 1 | 1` for the syscall at position `pos` of `EventIndex.calls`.

Events arrive nearly in time order (a live capture, or a recording written as events
happened) but not exactly: a syscall is recorded when it returns, after packets that
came during it, and a recorder writes syscalls in batches. `add` appends what is later
than the last row, inserts a few late rows in place (a memmove near the end is cheap),
and merges a large late batch into the tail in one pass.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from operator import itemgetter


def packet_ref(index: int) -> int:
    return index << 1


def syscall_ref(pos: int) -> int:
    return pos << 1 | 1


def is_syscall_ref(ref: int) -> bool:
    return bool(ref & 1)


class RowIndex:
    """Rows sorted by timestamp; equal timestamps keep arrival order."""

    __slots__ = ("refs", "ts")

    def __init__(self) -> None:
        self.ts = array("q")
        self.refs = array("q")

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, rows: Iterable[tuple[int, int]]) -> int:
        """Insert (ts, ref) rows; return the lowest position that changed (len if none)."""
        ts, refs = self.ts, self.refs
        new = sorted(rows)
        if not new:
            return len(ts)
        if not ts or new[0][0] >= ts[-1]:
            at = len(ts)
            ts.extend(t for t, _ in new)
            refs.extend(r for _, r in new)
            return at
        lo = bisect_right(ts, new[0][0])
        if len(new) <= 32:
            for t, ref in new:
                at = bisect_right(ts, t)
                ts.insert(at, t)
                refs.insert(at, ref)
            return lo
        # Many late rows (a recorder's batch of syscalls): one merge of the tail, not n memmoves.
        tail = zip(ts[lo:], refs[lo:], strict=True)
        merged = list(heapq.merge(tail, new, key=itemgetter(0)))
        del ts[lo:]
        del refs[lo:]
        ts.extend(t for t, _ in merged)
        refs.extend(r for _, r in merged)
        return lo

    def position(self, ts: int, ref: int) -> int | None:
        """Where row `ref` (with timestamp `ts`) is now, or None if it is not here."""
        at = bisect_left(self.ts, ts)
        refs, times = self.refs, self.ts
        while at < len(times) and times[at] == ts:
            if refs[at] == ref:
                return at
            at += 1
        return None

    def nearest(self, ts: int) -> int:
        """The last row at or before `ts` (0 when none is)."""
        return max(bisect_right(self.ts, ts) - 1, 0)
