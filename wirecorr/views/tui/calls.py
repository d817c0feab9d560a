"""The timeline's syscalls by position: objects where they exist, columns where they do not.

A format-2 recording holds its syscalls as Arrow columns (recording/columns.py). Making a
`Syscall` of each of a million rows costs seconds; the timeline needs only the rows on
screen, and the filter the app opens with (`net`) only a flag per row. So a block of
columns becomes positions here at once, with what indexing needs per row in typed
arrays (entry and end time, id, whether it is a network call), and its objects are made
a few hundred at a time when a row is looked at or the correlator is fed it. Syscalls
that come as objects (a live trace, an strace log, format-1 records) are kept as they are.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator

import numpy as np

from wirecorr.model import Syscall
from wirecorr.recording.columns import SyscallRows
from wirecorr.views.syscall_format import is_network
from wirecorr.vocab import OWNER_CALLS, SOCKET_CALLS

# Objects made at once around a row that is looked at: a screen's worth and its neighbours.
MAKE_AT_ONCE = 512


class CallList:
    """Syscalls by position (`EventIndex.calls`), appended as objects or as column batches."""

    __slots__ = ("_made", "_segments", "_starts", "end_ns", "enter_ns", "ids", "net")

    def __init__(self) -> None:
        self._made: list[Syscall | None] = []
        self._starts: list[int] = []  # first position of each column batch, ascending
        self._segments: list[SyscallRows] = []
        self.enter_ns = array("q")
        self.end_ns = array("q")
        self.ids = array("q")
        self.net = bytearray()  # 1 for a network call (views.syscall_format.is_network)

    def __len__(self) -> int:
        return len(self._made)

    def __getitem__(self, pos: int) -> Syscall:
        sc = self._made[pos]
        if sc is None:
            self._make(pos)
            sc = self._made[pos]
            assert sc is not None
        return sc

    def __iter__(self) -> Iterator[Syscall]:
        for pos in range(len(self._made)):
            yield self[pos]

    def append(self, sc: Syscall) -> None:
        self._made.append(sc)
        self.enter_ns.append(sc.enter_ns)
        self.end_ns.append(sc.end_ns)
        self.ids.append(sc.id)
        self.net.append(is_network(sc))

    def extend_rows(self, rows: SyscallRows) -> int:
        """Take a batch of columns; return the position of its first row."""
        start = len(self._made)
        n = len(rows)
        self._starts.append(start)
        self._segments.append(rows)
        self._made.extend([None] * n)
        self.enter_ns.frombytes(rows.int_column("enter_ns").astype(np.int64).tobytes())
        self.end_ns.frombytes(rows.end_ns().astype(np.int64).tobytes())
        self.ids.frombytes(rows.int_column("id").astype(np.int64).tobytes())
        self.net.extend(network_mask(rows).tobytes())
        return start

    def _make(self, pos: int) -> None:
        at = bisect_right(self._starts, pos) - 1
        start, rows = self._starts[at], self._segments[at]
        lo = max((pos - start) // MAKE_AT_ONCE * MAKE_AT_ONCE, 0)
        hi = min(lo + MAKE_AT_ONCE, len(rows))
        self._made[start + lo : start + hi] = rows.rows(lo, hi)

    def is_made(self, pos: int) -> bool:
        return self._made[pos] is not None


def network_mask(rows: SyscallRows) -> np.ndarray:
    """`is_network` of every row, from the distinct names and descriptor identities."""
    names = np.array([name in SOCKET_CALLS for name in rows.values("name")], dtype=np.uint8)
    out = names[rows.indices("name")]
    for column in ("fdinfo", "ret_fdinfo"):
        socket = np.array([info is not None and info.is_socket for info in rows.values(column)], dtype=np.uint8)
        out |= socket[rows.indices(column)]
    return out


def owner_mask(rows: SyscallRows) -> np.ndarray:
    """Rows that name a connection's owner once it is known (`EventIndex.unowned`):
    connect/accept calls that succeeded or are in progress."""
    names = np.array([name in OWNER_CALLS for name in rows.values("name")], dtype=bool)
    errnos = np.array([errno in (None, "EINPROGRESS") for errno in rows.values("errno")], dtype=bool)
    return names[rows.indices("name")] & errnos[rows.indices("errno")]
