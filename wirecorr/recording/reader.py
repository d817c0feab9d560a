"""Read a Recording back: its packets, syscalls, process events, links and metadata.

Any pcap or pcapng file is a valid (syscall-less) Recording, so every command that takes
a recording also takes a plain capture. A file that ends inside a block is what a killed
`wirecorr record` leaves; it reads back up to the last complete block, flagged `truncated`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from wirecorr.errors import InputError
from wirecorr.model import Link, Packet, Syscall
from wirecorr.recording import format as fmt
from wirecorr.sources.capture_file import CaptureReader, CustomBlock, TruncatedCapture
from wirecorr.sources.packet_decode import decode_packet


@dataclass
class Recording:
    """A Recording's contents. Syscalls are sorted by entry time (the file holds them in
    completion order); packets keep file order, which is tcpdump's.

    `packets()` re-reads the file on each call rather than holding a million decoded
    packets in memory. `complete` is False when the summary record is missing (the
    recorder was killed); `truncated` when the file also ends inside a block.

    `frame_numbers[i]` is packet i's frame number in Wireshark/tshark, which (4.0 and
    later) list every Custom Block as a frame too, so the two numberings drift apart.
    """

    path: str
    meta: dict[str, Any] = field(default_factory=dict)
    syscalls: list[Syscall] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    processes: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    packet_count: int = 0
    truncated: bool = False
    is_recording: bool = False
    frame_numbers: array[int] = field(default_factory=lambda: array("Q"))

    @property
    def complete(self) -> bool:
        return self.summary is not None

    def packets(self) -> Iterator[Packet]:
        reader = CaptureReader(self.path)
        index = 0
        try:
            for rec in reader.records():
                yield decode_packet(index, rec)
                index += 1
        except TruncatedCapture:
            return


def read_recording(path: str) -> Recording:
    """One pass over the file: wirecorr's Custom Blocks are decoded, packets only counted."""
    rec = Recording(path)
    frames = 0

    def on_custom(block: CustomBlock) -> None:
        nonlocal frames
        frames += 1
        add_block(rec, block)

    reader = CaptureReader(path, on_custom=on_custom)
    numbers = rec.frame_numbers
    try:
        for _ in reader.records():
            rec.packet_count += 1
            frames += 1
            numbers.append(frames)
    except TruncatedCapture:
        rec.truncated = True
    rec.syscalls.sort(key=lambda sc: (sc.enter_ns, sc.id))
    return rec


def add_block(rec: Recording, block: CustomBlock) -> None:
    """Take one Custom Block into `rec`; blocks of other vendors' PENs are left alone.

    Public so a reader that already walks the file for packets (the analyze session)
    decodes the wirecorr half from the blocks it collected instead of reading twice.
    """
    if block.pen != fmt.PEN:
        return
    if block.data.startswith(_BATCH_PREFIXES):
        _add_batch(rec, block)
        return
    try:
        tag, payload = fmt.decode_record(block.data)
        _add(rec, tag, payload)
    except fmt.RecordFormatError as e:
        raise InputError(rec.path, f"bad wirecorr record: {e}", offset=block.offset) from None


_SYSCALLS_PREFIX = fmt.TAG_SYSCALLS.encode() + b"\n"
_BATCH_PREFIXES = (_SYSCALLS_PREFIX, fmt.TAG_LINKS.encode() + b"\n")


def _add_batch(rec: Recording, block: CustomBlock) -> None:
    """A format-2 block of syscall or link columns. Its codec is imported on first use:
    pyarrow takes ≈ 0.2 s to import, which a plain capture or a format-1 recording need not pay."""
    from wirecorr.recording import columns

    try:
        if block.data.startswith(_SYSCALLS_PREFIX):
            rec.syscalls.extend(columns.syscalls_from_table(columns.decode_block(block.data)))
        else:
            rec.links.extend(columns.links_from_table(columns.decode_link_block(block.data)))
    except fmt.RecordFormatError as e:
        raise InputError(rec.path, f"bad wirecorr record: {e}", offset=block.offset) from None


def _add(rec: Recording, tag: str, payload: dict[str, Any]) -> None:
    if tag == fmt.TAG_HEADER:
        version = payload.get("format")
        if not isinstance(version, int) or version > fmt.FORMAT_VERSION:
            raise fmt.RecordFormatError(
                f"recording format {version} is newer than this wirecorr reads ({fmt.FORMAT_VERSION}); upgrade wirecorr"
            )
        if version < 1:
            raise fmt.RecordFormatError(f"recording format {version} is not one wirecorr ever wrote (1, 2)")
        rec.meta = payload
        rec.is_recording = True
    elif tag == fmt.TAG_SYSCALL:
        rec.syscalls.append(fmt.syscall_from_dict(payload))
    elif tag == fmt.TAG_LINK:
        rec.links.append(fmt.link_from_dict(payload))
    elif tag == fmt.TAG_PROCESS:
        # Consumers read both; the schema lets a writer leave them out.
        payload.setdefault("info", None)
        payload.setdefault("ts_ns", None)
        rec.processes.append(payload)
    elif tag == fmt.TAG_SUMMARY:
        rec.summary = payload
    # Unknown tags come from a newer wirecorr of the same format version: additions only,
    # so skipping them loses nothing this version could have shown.
