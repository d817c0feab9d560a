"""The packet feed of the load path: capture records into a Session's analyzer.

Two implementations give the same tables and connections (tests/test_packet_core.py):
- compiled (`wirecorr._core.packets`): the file's bytes go to a C walker chunk by chunk;
  decode, the --filter and the TCP analysis run there, and Python sees only the columns
  and the connections. This is the default.
- reference: `CaptureReader.records()` → `decode_packet` → `analyzer.feed(Packet)`, one
  Python object per packet. It runs when `WIRECORR_PURE=1`, and for packets that the
  correlator must see one by one (syscalls loaded before the capture, as with --strace).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any

from wirecorr._core import pure_requested
from wirecorr.engine.tcp_analysis import PacketAnalyzer
from wirecorr.errors import InputError, WirecorrError
from wirecorr.model import Packet
from wirecorr.sources import capture_file
from wirecorr.sources.capture_file import CaptureReader, CustomBlock
from wirecorr.sources.packet_decode import SUPPORTED_LINKTYPES, decode_packet
from wirecorr.views.progress import Progress

if TYPE_CHECKING:
    from wirecorr.engine.session import Session

PacketFilter = Callable[[Packet], bool]


# The compiled filter's evaluation stack (packets.pyx, filter_match).
MAX_FILTER_DEPTH = 64


def _stack_depth(program: list[tuple[Any, ...]]) -> int:
    depth = deepest = 0
    for instr in program:
        if instr[0] in ("and", "or"):
            depth -= 1
        elif instr[0] != "not":
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def new_analyzer() -> Any:
    """The analyzer a Session starts with: the compiled one unless WIRECORR_PURE is set.

    An ImportError here means the extension was not built (`make` / `pip install -e .`
    builds it): failing is deliberate, a silent fall back would hide a 5x slowdown.
    """
    if pure_requested():
        return PacketAnalyzer()
    try:
        from wirecorr._core.packets import CoreAnalyzer
    except ImportError as e:
        raise WirecorrError(
            f"the compiled packet core is not built ({e}): run `make` or `pip install -e .`, "
            "or set WIRECORR_PURE=1 for the (5-10x slower) pure-Python path"
        ) from None
    return CoreAnalyzer()


def feed_packets(
    session: Session,
    reader: CaptureReader,
    path: str,
    *,
    on_custom: Callable[[CustomBlock, int], None],
    packet_filter: PacketFilter | None,
    count: int | None,
    show_progress: bool,
) -> tuple[int, int]:
    """Feed every record of `reader` (or the first `count`) to `session`.

    `on_custom(block, n)` gets each Custom Block with the number of packets before it.
    Returns (records read, records of unknown link types that decoded to nothing). Damage
    is kept on `session.error`; what was read before it stays analysed.
    """
    progress = Progress(f"reading {path}", reader.size) if show_progress else None
    program = getattr(packet_filter, "program", None) if packet_filter is not None else None
    if program is not None and _stack_depth(program) > MAX_FILTER_DEPTH:
        program = None
    # A Session built around the reference analyzer gets the reference loop whatever the environment.
    compiled = (
        not isinstance(session.analyzer, PacketAnalyzer)
        and not session.syscalls
        and (packet_filter is None or program is not None)
    )
    try:
        if compiled:
            return _feed_compiled(session, reader, path, on_custom, program, count, progress)
        return _feed_reference(session, reader, on_custom, packet_filter, count, progress)
    finally:
        if progress is not None:
            progress.close()
        session.skipped_blocks += reader.skipped_blocks


def _feed_compiled(
    session: Session,
    reader: CaptureReader,
    path: str,
    on_custom: Callable[[CustomBlock, int], None],
    program: list[tuple[Any, ...]] | None,
    count: int | None,
    progress: Progress | None,
) -> tuple[int, int]:
    from wirecorr._core.packets import FilterProgram, Walker

    analyzer = session.analyzer
    keep = FilterProgram(program) if program is not None else None
    walker = Walker(analyzer, path, count=count, keep=keep)
    walker.on_custom = lambda block: on_custom(block, walker.index)

    def chunk_done() -> None:
        analyzer.sync()
        if progress is not None:
            reader.good_until = walker.good_until
            progress.update(reader.position, walker.index)

    try:
        walk_file(walker, reader, chunk_done)
    except InputError as e:
        session.error = e
    finally:
        analyzer.sync()
        reader.skipped_blocks += walker.skipped_blocks
        if walker.clamped:
            if reader.first_clamped is None:
                reader.first_clamped = walker.first_clamped
            reader.clamped += walker.clamped
        for linktype, offset in walker.unknown.items():
            session.unknown_linktypes.setdefault(linktype, offset)
        session.packets_read += walker.index
        if walker.kept:
            if session.first_ns is None:
                session.first_ns = walker.first_ns
            session.last_ns = walker.last_ns
            session.packets_kept += walker.kept
            session.correlator.caught_up(walker.max_ns)
    return walker.index, walker.undecodable


def walk_file(walker: Any, reader: CaptureReader, chunk_done: Callable[[], None] | None = None) -> None:
    """Run `walker` (a compiled `Walker`) over the whole of `reader`'s data.

    One buffer is reused for the whole file: the reads go into it after the tail of the
    last read that held no complete record, which moves to the front each time. A record
    larger than the buffer doubles it.
    """
    buf = bytearray(capture_file.CHUNK)
    filled = 0
    base = 0
    try:
        while True:
            with memoryview(buf) as view:
                n = reader.readinto(view[filled:])
                if not n:
                    break
                filled += n
                used = walker.walk(view[:filled], base)
            base += used
            buf[: filled - used] = buf[used:filled]
            filled -= used
            if chunk_done is not None:
                chunk_done()
            if walker.done:
                return
            if filled == len(buf):
                buf.extend(bytes(len(buf)))
    finally:
        reader.close()
    walker.end(base + filled)


def _feed_reference(
    session: Session,
    reader: CaptureReader,
    on_custom: Callable[[CustomBlock, int], None],
    packet_filter: PacketFilter | None,
    count: int | None,
    progress: Progress | None,
) -> tuple[int, int]:
    index = undecodable = 0
    reader.on_custom = lambda block: on_custom(block, index)
    # Before any syscall the correlator has nothing to link a packet to: unfiltered packets
    # go to the analyzer alone, and the session catches up once at the end. (With a filter
    # the table holds empty rows for the packets left out, which `fed_directly` would count.)
    direct = packet_filter is None and not session.syscalls
    rows_before = len(session.analyzer.table)
    feed = session.analyzer.feed if direct else session.feed_packet
    unknown = session.unknown_linktypes
    records = reader.records() if count is None else islice(reader.records(), count)
    try:
        for rec in records:
            pkt = decode_packet(index, rec)
            index += 1
            if pkt.ip_version == 0 and rec[3] not in SUPPORTED_LINKTYPES:
                if rec[3] not in unknown:
                    unknown[rec[3]] = rec[1]
                undecodable += 1
            if packet_filter is None or packet_filter(pkt):
                feed(pkt)
            if progress is not None and not index & 0xFFFF:
                progress.update(reader.position, index)
    except InputError as e:
        session.error = e
    finally:
        if direct:
            session.fed_directly(rows_before)
        session.packets_read += index
    return index, undecodable
