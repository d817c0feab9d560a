"""One packet's captured payload, re-read from its capture file by record offset.

The engine keeps no payloads (DESIGN.md: per-packet results live in columns); the
correlator needs a few of them to find where an already-open stream stands when tracing
began (content match of a syscall's data against the segment that carried it). Those few
are read back here, so `analyze` of a large recording pays for them and nothing else.
A gzip capture is read through `gzip` (offsets are those of the decompressed data, as the
streaming reader reports them): seeking backwards re-decompresses, acceptable for a
handful of look-ups near each other.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from functools import lru_cache
from typing import BinaryIO

from wirecorr.errors import InputError
from wirecorr.model import Packet
from wirecorr.sources.capture_file import BT_EPB, BT_PB, CaptureReader, Interface, is_gzip
from wirecorr.sources.packet_decode import decode_packet


class PacketAt:
    """Random access to the packets of one pcap/pcapng file (not standard input)."""

    def __init__(self, path: str, cache_size: int = 1024) -> None:
        self.path = path
        reader = CaptureReader(path)
        try:
            records = reader.records()
            next(records, None)  # parses the file header and the interfaces before packet 0
            records.close()
        except InputError:
            pass
        self.format = reader.format
        self.interfaces: list[Interface] = list(reader.interfaces)
        self._f: BinaryIO | None = None
        self._endian = "<"
        self.packet = lru_cache(maxsize=cache_size)(self._packet)

    def _file(self) -> BinaryIO:
        if self._f is None:
            self._f = gzip.open(self.path, "rb") if is_gzip(self.path) else open(self.path, "rb")  # noqa: SIM115
            head = self._f.read(12)
            if self.format == "pcapng":
                self._endian = "<" if head[8:12] == struct.pack("<I", 0x1A2B3C4D) else ">"
            else:
                self._endian = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        return self._f

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def payload(self, index: int, offset: int) -> bytes | None:
        """The captured transport payload of packet `index`, None when it cannot be read."""
        try:
            return self.packet(index, offset).payload
        except (InputError, OSError, EOFError, struct.error, IndexError, zlib.error):
            return None

    def _packet(self, index: int, offset: int) -> Packet:
        f = self._file()
        f.seek(offset)
        e = self._endian
        if self.format == "pcap":
            _sec, _frac, incl, orig = struct.unpack(e + "IIII", f.read(16))
            iface = self.interfaces[0]
            return decode_packet(index, (0, offset, 0, iface.linktype, orig, f.read(incl), None))
        btype, blen = struct.unpack(e + "II", f.read(8))
        body = f.read(blen - 12)
        if btype == BT_EPB:
            iface_id, _hi, _lo, incl, orig = struct.unpack_from(e + "IIIII", body)
        elif btype == BT_PB:
            iface_id, _drops, _hi, _lo, incl, orig = struct.unpack_from(e + "HHIIII", body)
        else:
            raise InputError(self.path, f"no packet block at offset {offset}", offset=offset)
        linktype = self.interfaces[iface_id].linktype
        return decode_packet(index, (0, offset, iface_id, linktype, orig, body[20 : 20 + incl], None))
