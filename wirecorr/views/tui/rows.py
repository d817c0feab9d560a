"""The timeline's row index: (timestamp, ref) pairs in time order, two typed arrays.

A million rows cost 16 MB here and nothing on the Python heap; a list of tuples would
cost ~100 MB and seconds of GC. A ref packs what a row shows: `index << 1` for packet
`index`, `pos << 1 | 1` for the syscall at position `pos` of `EventIndex.calls`.

Events arrive nearly in time order (a live capture, or a recording written as events
happened) but not exactly: a syscall is recorded when it returns, after packets that
came during it, and a recorder writes syscalls in batches. `add` appends what is later
than the last row, and merges late rows into the tail with array slice copies.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable


def packet_ref(index: int) -> int:
    return index << 1


def syscall_ref(pos: int) -> int:
    return pos << 1 | 1


def is_syscall_ref(ref: int) -> bool:
    return bool(ref & 1)


def ref_pos(ref: int) -> int:
    """What a ref points at: the packet index, or the position in `EventIndex.calls`."""
    return ref >> 1


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
            new_ts, new_refs = zip(*new, strict=True)
            ts.extend(new_ts)
            refs.extend(new_refs)
            return at
        # Late rows (a recorder's batch of syscalls, a blocking call's early entry): rebuild
        # the tail from array slices between their insertion points, so the old rows move
        # as memory copies, never one Python object at a time.
        lo = bisect_right(ts, new[0][0])
        tail_ts, tail_refs = ts[lo:], refs[lo:]
        del ts[lo:]
        del refs[lo:]
        done = 0
        for t, ref in new:
            at = bisect_right(tail_ts, t, done)
            if at > done:
                ts.extend(tail_ts[done:at])
                refs.extend(tail_refs[done:at])
                done = at
            ts.append(t)
            refs.append(ref)
        ts.extend(tail_ts[done:])
        refs.extend(tail_refs[done:])
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
