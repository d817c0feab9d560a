"""Re-read one packet of a capture by index, for the views that show a packet's bytes.

The engine keeps per-packet results in columns and only the byte offset of each record
(`PacketTable.offset`), never the frames (docs/architecture.md: decode fully only what a user looks
at). A view that needs payload or options seeks to that offset and decodes that one
record; an LRU cache keeps scrolling back and forth over the same packets cheap.

The file's own header and interface blocks say how to read a record (byte order,
timestamp unit, link type), so they are taken from a `CaptureReader` pass that stops at
the first packet: interface blocks precede the packets that name them.
"""

from __future__ import annotations

import struct
import threading
from functools import lru_cache

from wirecorr.engine.session import Session
from wirecorr.errors import InputError
from wirecorr.model import Packet
from wirecorr.sources.capture_file import (
    BT_EPB,
    BT_PB,
    BT_SPB,
    PCAP_MAGIC_NS,
    PCAP_MAGIC_US,
    PCAPNG_SHB,
    CaptureReader,
    Interface,
    RawRecord,
    clamp_ns,
    ts_to_ns,
)
from wirecorr.sources.packet_decode import decode_packet

_CAPTURE_MAGICS = {struct.pack("<I", m) for m in (PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAPNG_SHB)} | {
    struct.pack(">I", m) for m in (PCAP_MAGIC_US, PCAP_MAGIC_NS)
}


def capture_path(session: Session) -> str | None:
    """The session's packet source: `sources` also lists strace logs, told apart by magic."""
    for path in session.sources:
        try:
            with open(path, "rb") as f:
                if f.read(4) in _CAPTURE_MAGICS:
                    return path
        except OSError:
            continue
    return None


class PacketAccess:
    """Random access to the packets of one pcap/pcapng file by (index, record offset).

    Thread-safe (one lock around the shared file handle) so a worker thread and the UI
    can both read packets.
    """

    def __init__(self, path: str, cache_size: int = 2048) -> None:
        self.path = path
        reader = CaptureReader(path)
        try:
            # The generator parses the file header and the interface blocks before the
            # first record; closing it right after keeps this pass O(1).
            records = reader.records()
            next(records, None)
            records.close()
        except InputError:
            pass  # a damaged file still has the records before the damage
        self.format = reader.format
        self.interfaces: list[Interface] = list(reader.interfaces)
        self._f = open(path, "rb")  # noqa: SIM115 - kept for the object's lifetime, closed by close()
        head = self._f.read(12)
        if self.format == "pcapng":
            self._endian = "<" if head[8:12] == struct.pack("<I", 0x1A2B3C4D) else ">"
        else:
            little = (struct.pack("<I", PCAP_MAGIC_US), struct.pack("<I", PCAP_MAGIC_NS))
            self._endian = "<" if head[:4] in little else ">"
        self._lock = threading.Lock()
        self.packet = lru_cache(maxsize=cache_size)(self._packet)

    def close(self) -> None:
        self._f.close()

    def record(self, offset: int) -> RawRecord:
        """The raw record whose pcap record header / pcapng block starts at `offset`."""
        with self._lock:
            self._f.seek(offset)
            if self.format == "pcap":
                return self._pcap_record(offset)
            return self._pcapng_record(offset)

    def _pcap_record(self, offset: int) -> RawRecord:
        sec, frac, incl, orig = struct.unpack(self._endian + "IIII", self._read(16, offset))
        iface = self.interfaces[0]
        ts = sec * 1_000_000_000 + ts_to_ns(frac, iface.units_per_sec)
        return (ts, offset, 0, iface.linktype, orig, self._read(incl, offset), None)

    def _pcapng_record(self, offset: int) -> RawRecord:
        e = self._endian
        btype, blen = struct.unpack(e + "II", self._read(8, offset))
        body = self._read(blen - 12, offset)
        if btype == BT_EPB:
            iface_id, hi, lo, incl, orig = struct.unpack_from(e + "IIIII", body)
            data = body[20 : 20 + incl]
        elif btype == BT_PB:
            iface_id, _drops, hi, lo, incl, orig = struct.unpack_from(e + "HHIIII", body)
            data = body[20 : 20 + incl]
        elif btype == BT_SPB:
            iface_id, hi, lo = 0, 0, 0
            (orig,) = struct.unpack_from(e + "I", body)
            data = body[4 : 4 + orig]
        else:
            raise InputError(self.path, f"no packet block at offset {offset} (block type 0x{btype:x})", offset=offset)
        if iface_id >= len(self.interfaces):
            raise InputError(self.path, f"packet names interface {iface_id}, not defined before it", offset=offset)
        iface = self.interfaces[iface_id]
        ts = clamp_ns(ts_to_ns((hi << 32) | lo, iface.units_per_sec) + iface.offset_sec * 1_000_000_000)
        return (ts, offset, iface_id, iface.linktype, orig, data, None)

    def _read(self, n: int, offset: int) -> bytes:
        data = self._f.read(n)
        if len(data) < n:
            raise InputError(self.path, "file ends inside the record", offset=offset)
        return data

    def _packet(self, index: int, offset: int) -> Packet:
        return decode_packet(index, self.record(offset))


class SessionPackets:
    """`PacketAccess` for a session's capture, addressed by packet index alone."""

    def __init__(self, session: Session) -> None:
        path = capture_path(session)
        if path is None:
            raise InputError(", ".join(session.sources) or "session", "no capture file to read packets from")
        self.session = session
        self.access = PacketAccess(path)

    @property
    def path(self) -> str:
        return self.access.path

    def packet(self, index: int) -> Packet:
        return self.access.packet(index, self.session.analyzer.table.offset[index])

    def payload(self, index: int) -> bytes:
        """The captured part of the packet's transport payload (may be shorter than seglen)."""
        return self.packet(index).payload

    def close(self) -> None:
        self.access.close()
