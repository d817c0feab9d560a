"""The timeline's row index: (timestamp, ref) pairs in time order, two typed arrays.

A million rows cost 16 MB here and nothing on the Python heap; a list of tuples would
cost ~100 MB and seconds of GC. A ref packs what a row shows: `index << 1` for packet
`index`, `pos << 1 | 1` for the syscall at position `pos` of `EventIndex.calls`.

Events arrive nearly in time order (a live capture, or a recording written as events
happened) but not exactly: a syscall is recorded when it returns, after packets that
came during it, and a recorder writes syscalls in batches. `add` appends what is later
than the last row, and merges late rows into the tail in numpy.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable

import numpy as np


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
        pairs = np.array(list(rows), dtype=np.int64).reshape(-1, 2)
        return self.add_arrays(pairs[:, 0], pairs[:, 1])

    def add_arrays(self, ts: np.ndarray, refs: np.ndarray) -> int:
        """`add` for rows as two int64 arrays: what the loader builds from the columns."""
        ts_col, refs_col = self.ts, self.refs
        if not len(ts):
            return len(ts_col)
        order = np.lexsort((refs, ts))
        ts, refs = ts[order], refs[order]
        if not ts_col or ts[0] >= ts_col[-1]:
            at = len(ts_col)
            ts_col.frombytes(ts.tobytes())
            refs_col.frombytes(refs.tobytes())
            return at
        # Late rows (a recorder's batch of syscalls, a blocking call's early entry): merge
        # them into the tail after their first insertion point, in numpy, so the old rows
        # move as memory copies, never one Python object at a time.
        lo = bisect_right(ts_col, int(ts[0]))
        tail_ts = np.frombuffer(ts_col, dtype=np.int64)[lo:].copy()
        tail_refs = np.frombuffer(refs_col, dtype=np.int64)[lo:].copy()
        at_new = np.searchsorted(tail_ts, ts, side="right") + np.arange(len(ts))
        is_new = np.zeros(len(tail_ts) + len(ts), dtype=bool)
        is_new[at_new] = True
        merged_ts = np.empty(len(is_new), dtype=np.int64)
        merged_refs = np.empty(len(is_new), dtype=np.int64)
        merged_ts[at_new], merged_refs[at_new] = ts, refs
        merged_ts[~is_new], merged_refs[~is_new] = tail_ts, tail_refs
        del ts_col[lo:]
        del refs_col[lo:]
        ts_col.frombytes(merged_ts.tobytes())
        refs_col.frombytes(merged_refs.tobytes())
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
