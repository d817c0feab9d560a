"""The compiled packet feed of the load path: capture bytes into a Session's analyzer.

Two implementations give the same tables and connections (tests/test_packet_core.py):
- compiled (`wirecorr._core.packets`, fed from here): the file's bytes go to a C walker
  chunk by chunk; decode, the --filter and the TCP analysis run there, and Python sees only
  the columns and the connections. This is the default.
- reference (`ingest.feed_packets`): `CaptureReader.records()` → `decode_packet` →
  `analyzer.feed(Packet)`, one Python object per packet. It runs when `WIRECORR_PURE=1`,
  and for packets that the correlator must see one by one (syscalls loaded before the
  capture, as with --strace); the compiled analyzer's `feed(Packet)` serves it then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from wirecorr._core import pure_requested
from wirecorr.engine.tcp_analysis import PacketAnalyzer
from wirecorr.errors import WirecorrError
from wirecorr.model import Packet
from wirecorr.sources import capture_file
from wirecorr.sources.capture_file import CaptureReader, CustomBlock

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


def compiled_feed_applies(session: Session, packet_filter: PacketFilter | None) -> bool:
    """Whether `feed_compiled` can read the next capture into `session`.

    Not when the session runs the reference analyzer (WIRECORR_PURE=1, or built around a
    PacketAnalyzer), nor when syscalls came first (the correlator must then see each packet
    as it is fed), nor for a filter predicate that carries no compiled program.
    """
    if isinstance(session.analyzer, PacketAnalyzer) or session.syscall_count:
        return False
    return packet_filter is None or _program_of(packet_filter) is not None


def _program_of(packet_filter: PacketFilter) -> list[tuple[Any, ...]] | None:
    program = getattr(packet_filter, "program", None)
    if program is not None and _stack_depth(program) > MAX_FILTER_DEPTH:
        return None
    return program


def feed_compiled(
    session: Session,
    reader: CaptureReader,
    path: str,
    check: Any,
    *,
    packet_filter: PacketFilter | None,
    count: int | None,
    chunk: int = capture_file.CHUNK,
) -> Iterator[int]:
    """Walk all of `reader` (or its first `count` packets) in compiled code into `session`.

    Keeps `ingest.LinkTypeCheck`'s counts (`check.read` is up to date whenever the reader's
    `on_custom` runs, for the frame numbers of Custom Blocks), and the reader's counts of
    skipped blocks and clamped timestamps. Yields the packets read so far after every chunk
    (`chunk` bytes of the file; the TUI's loader takes smaller ones than the 4 MB default).
    """
    from wirecorr._core.packets import FilterProgram, Walker

    analyzer = session.analyzer
    program = _program_of(packet_filter) if packet_filter is not None else None
    keep = FilterProgram(program) if program is not None else None
    walker = Walker(analyzer, path, count=count, keep=keep)
    on_custom = reader.on_custom

    def custom(block: CustomBlock) -> None:
        check.read = walker.index
        if on_custom is not None:
            on_custom(block)

    walker.on_custom = custom
    try:
        for _ in walk_file(walker, reader, chunk):
            analyzer.sync()
            check.read = walker.index
            # `reader.position` (for progress) is where the walk has read to.
            reader.good_until = walker.good_until
            yield walker.index
    finally:
        # `custom` holds the walker, which holds it: a cycle that holds the session too
        # (through the reader's `on_custom`), so that only a pass of the collector could
        # free it. Broken here, what the session alone holds is freed by reference
        # counting once it is dropped (`linking.annotate` counts on that).
        walker.on_custom = None
        analyzer.sync()
        check.read = walker.index
        check.undecodable += walker.undecodable
        reader.skipped_blocks += walker.skipped_blocks
        if walker.clamped:
            if reader.first_clamped is None:
                reader.first_clamped = walker.first_clamped
            reader.clamped += walker.clamped
        for linktype, offset in walker.unknown.items():
            session.unknown_linktypes.setdefault(linktype, offset)
        if walker.kept:
            if session.first_ns is None:
                session.first_ns = walker.first_ns
            session.last_ns = walker.last_ns
            session.packets_kept += walker.kept
            session.correlator.caught_up(walker.max_ns)


def walk_file(walker: Any, reader: CaptureReader, chunk: int = capture_file.CHUNK) -> Iterator[None]:
    """Run `walker` (a compiled `Walker`) over the whole of `reader`'s data, yielding after
    every chunk.

    One buffer is reused for the whole file: the reads go into it after the tail of the
    last read that held no complete record, which moves to the front each time. A record
    larger than the buffer doubles it.
    """
    buf = bytearray(chunk)
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
            yield
            if walker.done:
                return
            if filled == len(buf):
                buf.extend(bytes(len(buf)))
    finally:
        reader.close()
    walker.end(base + filled)
