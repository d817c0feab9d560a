"""Whole packets for the rows a user looks at: options, payload, hex.

The engine keeps only columns per packet (docs/architecture.md, vocabulary); a view that wants a packet's TCP
options or bytes re-reads its record at `table.offset[i]` and decodes that one record.
Live packets have no file to re-read yet (the recording is still being written, at other
offsets), so the live source keeps the recent ones and every SYN (its options are what
the timeline shows) in memory.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Protocol

from wirecorr.engine.packet_table import PacketTable
from wirecorr.errors import InputError
from wirecorr.model import SYN, Packet
from wirecorr.views.tui.packet_access import PacketAccess


class PacketSource(Protocol):
    def get(self, index: int) -> Packet | None: ...


class FilePackets:
    """A capture file's packets by index, through the shared `PacketAccess` (LRU-cached)."""

    def __init__(self, path: str, table: PacketTable) -> None:
        self.access = PacketAccess(path)
        self.table = table

    def get(self, index: int) -> Packet | None:
        if index >= len(self.table):
            return None
        try:
            return self.access.packet(index, self.table.offset[index])
        except (InputError, struct.error):
            return None


class LivePackets:
    """The last `keep` packets and every SYN, as the live capture delivered them."""

    def __init__(self, keep: int = 20_000) -> None:
        self.recent: OrderedDict[int, Packet] = OrderedDict()
        self.syns: dict[int, Packet] = {}
        self.keep = keep

    def add(self, pkt: Packet) -> None:
        self.recent[pkt.index] = pkt
        if len(self.recent) > self.keep:
            self.recent.popitem(last=False)
        if pkt.flags & SYN:
            self.syns[pkt.index] = pkt

    def get(self, index: int) -> Packet | None:
        return self.recent.get(index) or self.syns.get(index)
