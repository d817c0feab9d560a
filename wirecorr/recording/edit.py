"""Rewrite a capture or recording with its clock moved, as `editcap -t` does for packets.

A recording holds two clocks' worth of timestamps: the packets' (EPB) and the tracer's
(syscall enter/exit, process events, the header's start and the summary's end). Both come
from the same host's CLOCK_REALTIME, so a host whose clock was wrong is wrong in both, and
a shift must move both or the links between them would break. Delays (`Link.delay_ns`)
are differences on one clock and stay as they are.

The output is always a wirecorr-style pcapng (ns timestamps, one section): a classic pcap
becomes pcapng, which every reader of the input also reads. Packet comments, interface
names and snap lengths are kept; blocks other than packets, interfaces and Custom Blocks
(name resolution, statistics) are dropped, as their timestamps would be stale.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from wirecorr import __version__
from wirecorr.errors import InputError, UsageError
from wirecorr.recording import columns
from wirecorr.recording import format as fmt
from wirecorr.recording.writer import open_output
from wirecorr.sources.capture_file import CaptureReader, CustomBlock, TruncatedCapture

_SYSCALLS = fmt.TAG_SYSCALLS.encode() + b"\n"
_LINKS = fmt.TAG_LINKS.encode() + b"\n"
# Record fields that are instants on the recording host's clock.
TIME_FIELDS = {
    fmt.TAG_HEADER: ("start_ns",),
    fmt.TAG_SYSCALL: ("enter_ns", "exit_ns"),
    fmt.TAG_PROCESS: ("ts_ns",),
    fmt.TAG_SUMMARY: ("end_ns",),
}
NS_LIMIT = 1 << 62


def shift_record(tag: str, payload: dict[str, Any], shift: Callable[[int], int]) -> dict[str, Any]:
    """`payload` with every instant of its tag moved by `shift` (None stays None)."""
    for key in TIME_FIELDS.get(tag, ()):
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            payload[key] = shift(value)
    return payload


def parse_seconds(text: str) -> int:
    """`-0.25` → -250_000_000 ns, exactly (no float rounding of the decimal digits)."""
    raw = text.strip()
    sign = -1 if raw.startswith("-") else 1
    body = raw.lstrip("+-")
    whole, _, frac = body.partition(".")
    if not (whole or frac) or not (whole or "0").isdigit() or (frac and not frac.isdigit()) or len(frac) > 9:
        raise UsageError(f"edit: --time-shift wants seconds such as 0.25 or -3 (at most 9 decimals), not {text!r}")
    return sign * (int(whole or "0") * 1_000_000_000 + int(frac.ljust(9, "0") or "0"))


class Rewriter:
    """Writes the blocks of one output pcapng: interfaces declared on first use, packets,
    records. Shared by `edit` (one input) and `merge` (several)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.ifaces: dict[tuple[int, str | None, int], int] = {}
        uname = platform.uname()
        out.write(fmt.section_header(f"wirecorr {__version__}", f"{uname.system} {uname.release}"))

    def iface(self, linktype: int, name: str | None, snaplen: int) -> int:
        key = (linktype, name, snaplen)
        found = self.ifaces.get(key)
        if found is None:
            found = self.ifaces[key] = len(self.ifaces)
            self.out.write(fmt.interface_description(linktype, snaplen, name))
        return found

    def packet(self, iface: int, ts_ns: int, frame: bytes, wirelen: int, comment: str | None) -> None:
        self.out.write(fmt.enhanced_packet(iface, ts_ns, frame, wirelen, comment.split("\n") if comment else ()))

    def record(self, tag: str, payload: dict[str, Any]) -> None:
        self.out.write(fmt.custom_block(tag, payload))

    def records(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        self.out.write(b"".join(fmt.custom_block(tag, payload) for tag, payload in items))

    def blocks(self, data: bytes) -> None:
        """Blocks already encoded (format 2's column batches)."""
        self.out.write(data)


def shift_columns(data: bytes, shift: Callable[[int], int]) -> tuple[bytes, int] | None:
    """A format-2 block of syscall or link columns with its instants moved, re-encoded;
    (blocks, records in them), or None for a block that is not one of those."""
    if data.startswith(_SYSCALLS):
        syscalls = columns.syscalls_from_table(columns.decode_block(data))
        for sc in syscalls:
            sc.enter_ns = shift(sc.enter_ns)
            if sc.exit_ns is not None:
                sc.exit_ns = shift(sc.exit_ns)
        return columns.syscall_blocks(syscalls), len(syscalls)
    if data.startswith(_LINKS):
        # Links hold delays (differences on one clock) and packet indices: nothing moves.
        links = columns.links_from_table(columns.decode_link_block(data))
        return columns.link_blocks(links), len(links)
    return None


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def time_shift(src: str, dst: str, shift_ns: int) -> tuple[int, int]:
    """Copy `src` to `dst` with every timestamp moved by `shift_ns`; returns (packets, records).

    Refused (exit 2) before anything is written when the output is the input, and at the
    first timestamp the shift would carry outside what pcapng/the recording can hold.
    """
    if same_file(src, dst):
        raise UsageError(f"edit: the output {dst} is the input; write to another file")
    reader = CaptureReader(src)

    def shifted(ts: int, offset: int | None = None) -> int:
        moved = ts + shift_ns
        if not 0 <= moved < NS_LIMIT:
            raise InputError(
                src, f"a timestamp ({ts} ns) shifted by {shift_ns} ns leaves the range pcapng holds", offset
            )
        return moved

    packets = records = 0
    with os.fdopen(open_output(dst, "edited capture"), "wb", buffering=1 << 20) as out:
        writer = Rewriter(out)
        try:
            for item in reader.records_and_blocks():
                if isinstance(item, CustomBlock):
                    if item.pen != fmt.PEN:
                        continue

                    def move(t: int, o: int = item.offset) -> int:
                        return shifted(t, o)

                    try:
                        batch = shift_columns(item.data, move)
                        if batch is None:
                            tag, payload = fmt.decode_record(item.data)
                    except fmt.RecordFormatError as e:
                        raise InputError(src, f"bad wirecorr record: {e}", offset=item.offset) from None
                    if batch is not None:
                        writer.blocks(batch[0])
                        records += batch[1]
                    else:
                        writer.record(tag, shift_record(tag, payload, move))
                        records += 1
                    continue
                ts, offset, iface_id, linktype, wirelen, frame, comment = item
                spec = reader.interfaces[iface_id] if reader.interfaces else None
                iface = writer.iface(linktype, spec.name if spec else None, spec.snaplen if spec else 262144)
                writer.packet(iface, shifted(ts, offset), bytes(frame), wirelen, comment)
                packets += 1
        except TruncatedCapture:
            # What a killed recorder leaves: everything complete is carried over, as readers do.
            pass
        except BaseException:
            # Half a copy is no copy: the output goes, the input was never touched.
            with contextlib.suppress(OSError):
                os.unlink(dst)
            raise
        finally:
            reader.close()
    return packets, records
