"""Per-packet analysis results as columns, one row per packet index.

A million packets must fit in a few tens of MB (docs/architecture.md, vocabulary): a
dataclass per packet would cost ~200 bytes and an allocation each, a row here costs 44
bytes in typed `array` columns and nothing per packet on the Python heap. Values that
only some packets have (duplicate-ACK numbers, ACK RTTs) live in `SparseColumn`s keyed by
packet index instead of a mostly-empty column.

Rows are appended by the analyzer as packets are fed, so a live view can read the table
while the capture runs; `len(table)` is the number of rows written so far.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from wirecorr.engine.analysis_flags import flag_names


class SparseColumn(Mapping[int, int]):
    """A read-only int → int mapping stored as two arrays, keys ascending.

    "Sparse" values are not rare everywhere: in a bulk transfer every other packet is an
    ACK with an RTT and an acknowledged frame, and a dict entry with its two int objects
    costs ~120 bytes where these arrays cost 12. Keys arrive in packet order, so `add` is
    two appends and a lookup is a bisection.
    """

    __slots__ = ("keys_", "values_")

    def __init__(self, value_type: str = "q") -> None:
        self.keys_ = array("I")
        self.values_ = array(value_type)

    def add(self, key: int, value: int) -> None:
        """Append an entry; `key` must be larger than every key already present."""
        self.keys_.append(key)
        self.values_.append(value)

    def __getitem__(self, key: int) -> int:
        keys = self.keys_
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return self.values_[i]
        raise KeyError(key)

    def __iter__(self) -> Iterator[int]:
        return iter(self.keys_)

    def __len__(self) -> int:
        return len(self.keys_)

    def __repr__(self) -> str:
        return f"SparseColumn({dict(self.items())!r})"


@dataclass(slots=True)
class PacketRow:
    """One row, assembled on request for views and reports (never kept by the engine)."""

    index: int
    ts_ns: int
    offset: int
    conn: int
    direction: int
    flags: int
    seglen: int
    rel_seq: int
    rel_ack: int
    window: int
    analysis: int
    bytes_in_flight: int
    dupack_num: int | None
    dupack_frame: int | None
    ack_rtt_ns: int | None
    acked_frame: int | None

    @property
    def analysis_names(self) -> list[str]:
        return flag_names(self.analysis)


@dataclass(slots=True)
class PacketTable:
    """Columns, each indexed by packet index (Wireshark's frame.number - 1).

    conn is -1 for packets of no connection (non-IP, ICMP that quotes nothing known).
    direction is 0 for packets from the connection's client, 1 from its server.
    flags is the raw TCP flag byte, seglen tcp.len, rel_seq/rel_ack Wireshark's relative
    numbers (rel_ack is the raw field when the ACK flag is off, as Wireshark shows it),
    window tcp.window_size (scaled), analysis an `AnalysisFlag` mask, bytes_in_flight
    tcp.analysis.bytes_in_flight (0 when Wireshark shows none).
    dupack_frame and acked_frame hold packet indices (frame number - 1); -1 in
    dupack_frame is Wireshark's "frame 0" (no earlier ACK in that direction).
    ack_rtt_ns is only set where Wireshark shows tcp.analysis.ack_rtt, i.e. when it is
    non-zero. The four sparse columns are read-only mappings keyed by packet index.
    """

    ts_ns: array = field(default_factory=lambda: array("q"))
    offset: array = field(default_factory=lambda: array("q"))
    conn: array = field(default_factory=lambda: array("i"))
    direction: array = field(default_factory=lambda: array("b"))
    flags: array = field(default_factory=lambda: array("B"))
    seglen: array = field(default_factory=lambda: array("I"))
    rel_seq: array = field(default_factory=lambda: array("I"))
    rel_ack: array = field(default_factory=lambda: array("I"))
    window: array = field(default_factory=lambda: array("I"))
    analysis: array = field(default_factory=lambda: array("H"))
    bytes_in_flight: array = field(default_factory=lambda: array("I"))
    dupack_num: SparseColumn = field(default_factory=lambda: SparseColumn("I"))
    dupack_frame: SparseColumn = field(default_factory=lambda: SparseColumn("i"))
    ack_rtt_ns: SparseColumn = field(default_factory=lambda: SparseColumn("q"))
    acked_frame: SparseColumn = field(default_factory=lambda: SparseColumn("I"))

    def __len__(self) -> int:
        return len(self.ts_ns)

    def columns(self) -> tuple[array, ...]:
        """Every column in row order, for code that writes or pads a row at once."""
        return (
            self.ts_ns,
            self.offset,
            self.conn,
            self.direction,
            self.flags,
            self.seglen,
            self.rel_seq,
            self.rel_ack,
            self.window,
            self.analysis,
            self.bytes_in_flight,
        )

    def pad_to(self, index: int) -> None:
        """Add empty rows up to (not including) `index`.

        A filtered read feeds only some packet indices; padding keeps "row i is packet i"
        true for the rest without a lookup table.
        """
        missing = index - len(self.ts_ns)
        if missing <= 0:
            return
        for col in self.columns():
            col.extend(array(col.typecode, bytes(col.itemsize * missing)))
        conn = self.conn
        start = len(conn) - missing
        conn[start:] = array("i", [-1]) * missing

    def row(self, index: int) -> PacketRow:
        return PacketRow(
            index,
            self.ts_ns[index],
            self.offset[index],
            self.conn[index],
            self.direction[index],
            self.flags[index],
            self.seglen[index],
            self.rel_seq[index],
            self.rel_ack[index],
            self.window[index],
            self.analysis[index],
            self.bytes_in_flight[index],
            self.dupack_num.get(index),
            self.dupack_frame.get(index),
            self.ack_rtt_ns.get(index),
            self.acked_frame.get(index),
        )

    def nbytes(self) -> int:
        """Bytes held by the columns and the sparse mappings."""
        sparse = (self.dupack_num, self.dupack_frame, self.ack_rtt_ns, self.acked_frame)
        arrays = [*self.columns(), *(c.keys_ for c in sparse), *(c.values_ for c in sparse)]
        return sum(col.itemsize * len(col) for col in arrays)
