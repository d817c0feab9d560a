"""Streaming reader for pcap (µs and ns) and pcapng capture files.

Why not dpkt's readers on the bulk path: dpkt.pcapng returns float timestamps (ns are
lost past 2^53), drops comments and custom blocks, and both readers cost a Python object
per record header. This reader walks records with `struct.unpack_from` over large chunks,
keeps timestamps as exact integer nanoseconds, and reports the byte offset of every record
so a view can re-read one packet and errors can say where a file is damaged.

It can also follow a file that another process (tcpdump -w) is still writing: at the end
of the data it waits for more instead of treating a half-written record as damage.

gzip-compressed captures (`.pcap.gz`, as tshark reads them) are decompressed as they are
read; offsets are then those of the decompressed data.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from wirecorr.errors import InputError

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER = 0x1A2B3C4D

BT_IDB = 0x00000001
BT_PB = 0x00000002
BT_SPB = 0x00000003
BT_NRB = 0x00000004
BT_ISB = 0x00000005
BT_EPB = 0x00000006
BT_DSB = 0x0000000A
BT_CUSTOM = 0x00000BAD
BT_CUSTOM_NOCOPY = 0x40000BAD

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
IF_NAME = 2
IF_TSRESOL = 9
IF_TSOFFSET = 14

# Smallest total length of each block type that has fixed fields (header, fields, trailer):
# a shorter block is damage, and reading its fields would run into the next block.
MIN_BLOCK_LEN = {PCAPNG_SHB: 28, BT_IDB: 20, BT_PB: 32, BT_SPB: 16, BT_EPB: 32, BT_CUSTOM: 16, BT_CUSTOM_NOCOPY: 16}

# Larger than any real frame (jumbo + TSO aggregates captured on lo are < 256 KiB);
# a record claiming more is damage, not data.
MAX_RECORD = 0x4000000
CHUNK = 1 << 22

GZIP_MAGIC = b"\x1f\x8b"

# The path that means standard input (a pipe from tcpdump -w -), read once, front to back.
STDIN = "-"

# (ts_ns, offset, iface, linktype, wirelen, data, comment)
RawRecord = tuple[int, int, int, int, int, bytes, "str | None"]


@dataclass(slots=True)
class Interface:
    linktype: int
    snaplen: int = 0
    name: str | None = None
    # Timestamp unit as a fraction of a second: units_per_sec = 10**n or 2**n.
    units_per_sec: int = 1_000_000
    offset_sec: int = 0


@dataclass(slots=True)
class CustomBlock:
    """A pcapng Custom Block (0xBAD/0x40000BAD): the recording keeps syscalls and links here."""

    pen: int
    data: bytes
    offset: int


class TruncatedCapture(InputError):
    """The file ends inside a record: what tcpdump leaves when it is killed."""


class CorruptCapture(InputError):
    """The bytes at `offset` cannot be a record: reading stopped there."""


# Timestamps are held as signed 64-bit nanoseconds (the packet table's int64 column). pcapng
# allows more (a 64-bit count of µs, or a high word of 0xffffffff in ns: tshark shows the
# year 586524); such a timestamp is clamped to ±2^62 ns (years 1823 and 2116), so that the
# difference of any two timestamps still fits, and the reader counts it for a warning.
TS_LIMIT = 1 << 62


def clamp_ns(ts: int) -> int:
    return TS_LIMIT if ts > TS_LIMIT else -TS_LIMIT if ts < -TS_LIMIT else ts


def ts_to_ns(units: int, units_per_sec: int) -> int:
    """Exact integer conversion; floor for resolutions finer than 1 ns."""
    if units_per_sec == 1_000_000_000:
        return units
    if 1_000_000_000 % units_per_sec == 0:
        return units * (1_000_000_000 // units_per_sec)
    return units * 1_000_000_000 // units_per_sec


def is_gzip(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == GZIP_MAGIC
    except OSError:
        return False


def decompress_into(path: str, directory: str) -> str:
    """A gzip capture decompressed into `directory`, for readers that seek (the TUI);
    returns the new file's path. A damaged one is refused: the stream cannot be trusted."""
    name = os.path.basename(path).removesuffix(".gz").removesuffix(".gzip") or "capture"
    out = os.path.join(directory, name)
    try:
        with gzip.open(path, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
    except EOFError:
        raise TruncatedCapture(path, "gzip data cut short; `wirecorr analyze` reports what it holds") from None
    except (OSError, zlib.error) as e:
        raise CorruptCapture(path, f"gzip data damaged ({e}); `wirecorr analyze` reports what it holds") from None
    return out


@dataclass
class CaptureReader:
    """Iterate the records of a pcap or pcapng file without loading it into memory.

    `records()` yields `RawRecord` tuples in file order. `custom_blocks` collects Custom
    Blocks as they are met (they are few); `on_custom`, when set, is called instead so a
    live consumer sees them in order with the packets; `records_and_blocks()` yields them
    in place instead, for a consumer that must be able to stop between any two blocks (a
    recorder writes tens of thousands of syscall blocks in a row). With `follow=True` the reader
    waits at the end for more data until `should_stop()` answers True, then a partial
    last record is dropped silently (its writer was interrupted, nothing was lost that was
    ever complete). It waits with `wait_for_data()` when given (returning when the file may
    have grown, or after a while), else by sleeping `poll_interval`.
    """

    path: str
    follow: bool = False
    should_stop: Callable[[], bool] | None = None
    poll_interval: float = 0.05
    wait_for_data: Callable[[], None] | None = None
    on_custom: Callable[[CustomBlock], None] | None = None
    format: str = ""
    interfaces: list[Interface] = field(default_factory=list)
    custom_blocks: list[CustomBlock] = field(default_factory=list)
    skipped_blocks: int = 0
    # Packets whose timestamp was clamped (TS_LIMIT), and the offset of the first.
    clamped: int = 0
    first_clamped: int | None = None
    # Where the last complete record ended: everything before it was read.
    good_until: int = 0

    _f: BinaryIO | None = None
    # The file itself when `_f` decompresses it: its position measures progress.
    _compressed: BinaryIO | None = None
    _inline_custom: bool = False
    _buf: bytes = b""
    _base: int = 0  # file offset of _buf[0]

    def __post_init__(self) -> None:
        if self.path == STDIN:
            # `tcpdump -w - | wirecorr analyze -`, as tcpdump and tshark read `-r -`; a copy
            # of fd 0, so closing the reader leaves sys.stdin alone.
            raw = os.fdopen(os.dup(0), "rb")
        else:
            try:
                raw = open(self.path, "rb")  # noqa: SIM115 - closed by close()/records()
            except OSError as e:
                raise InputError(self.path, e.strerror or str(e)) from None
        try:
            compressed = raw.peek(2)[:2] == GZIP_MAGIC
        except OSError as e:
            raw.close()
            raise InputError(self.path, e.strerror or str(e)) from None
        if compressed and not self.follow:
            self._compressed = raw
            self._f = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        else:
            self._f = raw

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        if self._compressed is not None:
            self._compressed.close()
            self._compressed = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def size(self) -> int:
        """Bytes in the file (compressed, for a gzip file); 0 for a pipe."""
        f = self._compressed or self._f
        assert f is not None
        return os.fstat(f.fileno()).st_size

    @property
    def position(self) -> int:
        """How far into `size` reading has come, for progress bars."""
        if self._compressed is None:
            return self.good_until
        # A pipe has no size to measure against (and may have no position).
        return self._compressed.tell() if self.size else 0

    # -- buffer management -------------------------------------------------------------

    def _fill(self, pos: int, need: int) -> int:
        """Make `need` bytes from `pos` (an index into _buf) available; return the new pos.

        Returns -1 when the file ends first (after waiting, in follow mode)."""
        assert self._f is not None
        while len(self._buf) - pos < need:
            chunk = self._read(max(CHUNK, need))
            if not chunk and self.follow:
                if self.should_stop is None or not self.should_stop():
                    if self.wait_for_data is not None:
                        self.wait_for_data()
                    else:
                        time.sleep(self.poll_interval)
                    continue
                # Stopping: one last read, the writer may have flushed just before.
                chunk = self._read(max(CHUNK, need))
            if not chunk:
                return -1
            self._base += pos
            self._buf = self._buf[pos:] + chunk
            pos = 0
        return pos

    def _read(self, size: int) -> bytes:
        assert self._f is not None
        if self._compressed is None:
            return self._f.read(size)
        at = self._base + len(self._buf)
        try:
            # read1: what was decompressed before damage is returned before the error.
            return self._f.read1(size)  # type: ignore[attr-defined]
        except EOFError:
            # Offsets name bytes of the capture, not of the gzip file that holds it.
            raise TruncatedCapture(self.path, f"gzip data cut short after {at} bytes of capture") from None
        except (OSError, zlib.error) as e:
            raise CorruptCapture(self.path, f"gzip data damaged after {at} bytes of capture ({e})") from None

    # -- entry point -------------------------------------------------------------------

    def readinto(self, view: memoryview) -> int:
        """Fill the front of `view` with the capture's next bytes (decompressed); 0 at the
        end. For a caller that walks the records itself (the compiled packet core) in one
        reused buffer: fresh 4 MiB bytes objects per read cost more than the walk."""
        assert self._f is not None
        if self._compressed is None:
            n = self._f.readinto(view)  # type: ignore[attr-defined]
        else:
            chunk = self._read(len(view))
            n = len(chunk)
            view[:n] = chunk
        # `_read` names a damaged gzip stream's position from this count.
        self._base += n
        return n

    def records_and_blocks(self) -> Iterator[RawRecord | CustomBlock]:
        self._inline_custom = True
        return self.records()  # type: ignore[return-value]  # _pcapng yields the blocks too

    def records(self) -> Iterator[RawRecord]:
        try:
            pos = self._fill(0, 4)
            if pos < 0:
                if self.follow:
                    return
                what = "empty file" if not self._buf else f"{len(self._buf)}-byte file"
                raise InputError(self.path, f"{what}, not a capture", offset=0)
            (magic,) = struct.unpack_from("<I", self._buf, pos)
            if magic == PCAPNG_SHB:
                self.format = "pcapng"
                yield from self._pcapng()
            elif magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or struct.unpack_from(">I", self._buf, pos)[0] in (
                PCAP_MAGIC_US,
                PCAP_MAGIC_NS,
            ):
                self.format = "pcap"
                yield from self._pcap()
            else:
                raise CorruptCapture(self.path, f"not a pcap or pcapng file (magic 0x{magic:08x})", offset=0)
        finally:
            self.close()

    # -- pcap --------------------------------------------------------------------------

    def _pcap(self) -> Iterator[RawRecord]:
        pos = self._fill(0, 24)
        if pos < 0:
            raise TruncatedCapture(self.path, "file ends inside the pcap header", offset=0)
        buf = self._buf
        magic = struct.unpack_from("<I", buf, pos)[0]
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            endian = "<"
        else:
            endian = ">"
            magic = struct.unpack_from(">I", buf, pos)[0]
        units = 1_000_000_000 if magic == PCAP_MAGIC_NS else 1_000_000
        _, _, _, _, snaplen, network = struct.unpack_from(endian + "HHiIII", buf, pos + 4)
        linktype = network & 0x03FFFFFF
        self.interfaces.append(Interface(linktype=linktype, snaplen=snaplen, units_per_sec=units))
        pos += 24
        self.good_until = self._base + pos
        hdr = struct.Struct(endian + "IIII").unpack_from
        mult = 1_000_000_000 // units
        limit = max(snaplen, 262144) if snaplen else MAX_RECORD
        limit = min(limit, MAX_RECORD)
        while True:
            buf = self._buf
            if len(buf) - pos < 16:
                pos = self._fill(pos, 16)
                if pos < 0:
                    self._end_of_data()
                    return
                buf = self._buf
            sec, frac, incl, orig = hdr(buf, pos)
            if incl > limit or frac >= units:
                what = f"record length {incl}" if incl > limit else f"sub-second field {frac}"
                raise CorruptCapture(self.path, f"corrupt pcap record header ({what})", offset=self._base + pos)
            end = pos + 16 + incl
            if end > len(buf):
                pos = self._fill(pos, 16 + incl)
                if pos < 0:
                    self._end_of_data()
                    return
                buf = self._buf
                end = pos + 16 + incl
            offset = self._base + pos
            yield (sec * 1_000_000_000 + frac * mult, offset, 0, linktype, orig, buf[pos + 16 : end], None)
            pos = end
            self.good_until = self._base + pos

    def _end_of_data(self) -> None:
        """At EOF: a clean end, or a partial record (an error unless following a live file)."""
        end = self._base + len(self._buf)
        if end > self.good_until and not self.follow:
            raise TruncatedCapture(
                self.path,
                f"file ends inside a record ({end - self.good_until} of its bytes present)",
                offset=self.good_until,
            )

    # -- pcapng ------------------------------------------------------------------------

    def _pcapng(self) -> Iterator[RawRecord]:
        endian = "<"
        pos = 0
        ifaces = self.interfaces
        while True:
            if len(self._buf) - pos < 12:
                pos = self._fill(pos, 12)
                if pos < 0:
                    self._end_of_data()
                    return
            buf = self._buf
            btype = struct.unpack_from(endian + "I", buf, pos)[0]
            if btype == PCAPNG_SHB:
                bom = struct.unpack_from("<I", buf, pos + 8)[0]
                if bom == PCAPNG_BYTE_ORDER:
                    endian = "<"
                elif bom == 0x4D3C2B1A:
                    endian = ">"
                else:
                    raise CorruptCapture(self.path, "bad pcapng byte-order magic", offset=self._base + pos)
                # A new section starts a new interface numbering.
                ifaces.clear()
            blen = struct.unpack_from(endian + "I", buf, pos + 4)[0]
            if blen < MIN_BLOCK_LEN.get(btype, 12) or blen % 4 or blen > MAX_RECORD:
                raise CorruptCapture(self.path, f"corrupt pcapng block length {blen}", offset=self._base + pos)
            if len(buf) - pos < blen:
                pos = self._fill(pos, blen)
                if pos < 0:
                    self._end_of_data()
                    return
                buf = self._buf
            offset = self._base + pos
            if struct.unpack_from(endian + "I", buf, pos + blen - 4)[0] != blen:
                raise CorruptCapture(self.path, "pcapng block lengths disagree", offset=offset)
            body = pos + 8
            body_end = pos + blen - 4
            if btype == BT_EPB:
                iface_id, hi, lo, incl, orig = struct.unpack_from(endian + "IIIII", buf, body)
                if iface_id >= len(ifaces):
                    raise CorruptCapture(self.path, f"packet names undefined interface {iface_id}", offset=offset)
                data_end = body + 20 + incl
                if data_end > body_end:
                    raise CorruptCapture(self.path, "packet data overruns its block", offset=offset)
                iface = ifaces[iface_id]
                comment = None
                opt_start = body + 20 + ((incl + 3) & ~3)
                if opt_start < body_end:
                    comment = _first_comment(buf, opt_start, body_end, endian)
                ts = ts_to_ns((hi << 32) | lo, iface.units_per_sec) + iface.offset_sec * 1_000_000_000
                if not -TS_LIMIT <= ts <= TS_LIMIT:
                    ts = self._clamp(ts, offset)
                yield (ts, offset, iface_id, iface.linktype, orig, buf[body + 20 : data_end], comment)
            elif btype == BT_SPB:
                if not ifaces:
                    raise CorruptCapture(self.path, "simple packet block before any interface", offset=offset)
                (orig,) = struct.unpack_from(endian + "I", buf, body)
                incl = min(orig, body_end - body - 4)
                if ifaces[0].snaplen:
                    incl = min(incl, ifaces[0].snaplen)
                # SPBs carry no timestamp: 0 keeps them ordered by file position.
                yield (0, offset, 0, ifaces[0].linktype, orig, buf[body + 4 : body + 4 + incl], None)
            elif btype == BT_PB:
                iface_id, _drops, hi, lo, incl, orig = struct.unpack_from(endian + "HHIIII", buf, body)
                if iface_id >= len(ifaces):
                    raise CorruptCapture(self.path, f"packet names undefined interface {iface_id}", offset=offset)
                if body + 20 + incl > body_end:
                    raise CorruptCapture(self.path, "packet data overruns its block", offset=offset)
                iface = ifaces[iface_id]
                ts = ts_to_ns((hi << 32) | lo, iface.units_per_sec) + iface.offset_sec * 1_000_000_000
                if not -TS_LIMIT <= ts <= TS_LIMIT:
                    ts = self._clamp(ts, offset)
                yield (ts, offset, iface_id, iface.linktype, orig, buf[body + 20 : body + 20 + incl], None)
            elif btype == BT_IDB:
                linktype, _res, snaplen = struct.unpack_from(endian + "HHI", buf, body)
                ifaces.append(self._interface(buf, body + 8, body_end, endian, linktype, snaplen))
            elif btype in (BT_CUSTOM, BT_CUSTOM_NOCOPY):
                (pen,) = struct.unpack_from(endian + "I", buf, body)
                block = CustomBlock(pen=pen, data=bytes(buf[body + 4 : body_end]), offset=offset)
                if self._inline_custom:
                    yield block  # type: ignore[misc]  # see records_and_blocks
                elif self.on_custom is not None:
                    self.on_custom(block)
                else:
                    self.custom_blocks.append(block)
            elif btype not in (PCAPNG_SHB, BT_NRB, BT_ISB, BT_DSB):
                # The pcapng spec asks readers to skip blocks they do not know.
                self.skipped_blocks += 1
            pos += blen
            self.good_until = self._base + pos

    def _clamp(self, ts: int, offset: int) -> int:
        if self.first_clamped is None:
            self.first_clamped = offset
        self.clamped += 1
        return clamp_ns(ts)

    def _interface(self, buf: bytes, pos: int, end: int, endian: str, linktype: int, snaplen: int) -> Interface:
        iface = Interface(linktype=linktype, snaplen=snaplen)
        for code, value in _options(buf, pos, end, endian):
            if code == IF_TSRESOL and value:
                r = value[0]
                iface.units_per_sec = 2 ** (r & 0x7F) if r & 0x80 else 10**r
            elif code == IF_TSOFFSET and len(value) >= 8:
                iface.offset_sec = struct.unpack_from(endian + "q", value)[0]
            elif code == IF_NAME:
                iface.name = value.decode("utf-8", "replace").rstrip("\0")
        return iface


def _options(buf: bytes, pos: int, end: int, endian: str) -> Iterator[tuple[int, bytes]]:
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == OPT_ENDOFOPT:
            return
        value = bytes(buf[pos + 4 : pos + 4 + length])
        yield code, value
        pos += 4 + ((length + 3) & ~3)


def _first_comment(buf: bytes, pos: int, end: int, endian: str) -> str | None:
    comments = [v.decode("utf-8", "replace") for c, v in _options(buf, pos, end, endian) if c == OPT_COMMENT]
    return "\n".join(comments) if comments else None
