"""A Session: what the engine knows about one capture or recording, built incrementally.

Every front end (headless report, checks, TUI) reads a Session; live capture and replay
both feed it packet by packet, so nothing here assumes the input has ended until
`finish()` is called.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from operator import attrgetter
from typing import Any

from wirecorr.bulk import paused_gc
from wirecorr.engine.correlator import Correlator
from wirecorr.engine.findings import detect
from wirecorr.engine.tcp_analysis import PacketAnalyzer
from wirecorr.errors import InputError
from wirecorr.model import Finding, Packet, Syscall
from wirecorr.recording.reader import Recording, add_block
from wirecorr.sources.capture_file import CaptureReader, CustomBlock, TruncatedCapture
from wirecorr.sources.packet_at import PacketAt
from wirecorr.sources.packet_decode import SUPPORTED_LINKTYPES, decode_packet
from wirecorr.sources.strace_log import read_strace_log
from wirecorr.views.progress import Progress

PacketFilter = Callable[[Packet], bool]


@dataclass
class Session:
    analyzer: PacketAnalyzer = field(default_factory=PacketAnalyzer)
    syscalls: list[Syscall] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    packets_read: int = 0
    packets_kept: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    # Set when the input ended in damage; everything before `error.offset` was analysed.
    error: InputError | None = None
    # link type → offset of its first record, for link types the decoder does not know
    unknown_linktypes: dict[int, int] = field(default_factory=dict)
    skipped_blocks: int = 0
    warnings: list[str] = field(default_factory=list)
    # A recording's header (command, pids, interface, …); empty for plain captures.
    meta: dict[str, Any] = field(default_factory=dict)
    # Diagnoses as of `finish()`; a live view calls `findings.detect(session)` for fresher ones.
    findings: list[Finding] = field(default_factory=list)
    # For each Custom Block of the capture, how many packets preceded it: Wireshark 4.x lists
    # those blocks as frames, so they shift every later packet's frame number.
    custom_at: array[int] = field(default_factory=lambda: array("Q"))
    correlator: Correlator = field(init=False)

    def __post_init__(self) -> None:
        self.correlator = Correlator(self.analyzer)

    def frame_number(self, index: int) -> int:
        """Packet index → the frame number Wireshark/tshark show (`Recording.frame_numbers`)."""
        return index + 1 + bisect_right(self.custom_at, index)

    def feed_packet(self, pkt: Packet) -> None:
        if self.first_ns is None:
            self.first_ns = pkt.ts_ns
        self.last_ns = pkt.ts_ns
        self.packets_kept += 1
        self.analyzer.feed(pkt)
        self.correlator.on_packet(pkt)

    def fed_directly(self, rows_before: int) -> None:
        """Account for the packets given to `analyzer.feed` alone since the table had
        `rows_before` rows, as `feed_packet` would have; only valid before any syscall."""
        ts = self.analyzer.table.ts_ns
        if len(ts) > rows_before:
            if self.first_ns is None:
                self.first_ns = ts[rows_before]
            self.last_ns = ts[-1]
            self.packets_kept += len(ts) - rows_before
            self.correlator.caught_up(max(ts[rows_before:]))

    def feed_syscall(self, sc: Syscall) -> None:
        self.syscalls.append(sc)
        self.correlator.on_syscall(sc)

    def on_process(self, event: str, pid: int, info: int | None) -> None:
        """Process events (fork, exec, exit) as the Tracer reports them: forks share fds."""
        self.correlator.on_process(event, pid, info)

    def on_process_record(self, record: dict[str, Any]) -> None:
        """A recording's process record: the same event, as the writer stored it."""
        self.on_process(record["event"], record["pid"], record["info"])

    def finish(self) -> None:
        self.correlator.finish()
        self.analyzer.finish()
        # Two stable sorts give (enter_ns, id) order without a key tuple per syscall.
        self.syscalls.sort(key=attrgetter("id"))
        self.syscalls.sort(key=attrgetter("enter_ns"))
        self.findings = detect(self)


def load_capture(
    session: Session,
    path: str,
    *,
    packet_filter: PacketFilter | None = None,
    show_progress: bool = True,
    count: int | None = None,
) -> None:
    """Read every packet of `path` into `session`, or the first `count` (tshark's -c).

    Damage does not throw away what was read: the error is kept on the session and the
    caller decides whether a partial result may be reported (truncation at the end is what
    a killed tcpdump leaves, so that is reported by default).
    """
    # A recording's wirecorr blocks are decoded as they are met, never held as raw bytes.
    recording = Recording(path)
    index = undecodable = 0

    def on_custom(block: CustomBlock) -> None:
        session.custom_at.append(index)
        add_block(recording, block)

    reader = CaptureReader(path, on_custom=on_custom)
    session.sources.append(path)
    if os.path.isfile(path):
        # The correlator re-reads a few payloads to anchor streams that were open before tracing.
        at = PacketAt(path)
        offsets = session.analyzer.table.offset
        session.correlator.payload_of = lambda i: at.payload(i, offsets[i])
    progress = Progress(f"reading {path}", reader.size) if show_progress else None
    # Before any syscall the correlator has nothing to link a packet to: unfiltered packets
    # go to the analyzer alone, and the session catches up once at the end. (With a filter
    # the table holds empty rows for the packets left out, which `fed_directly` would count.)
    direct = packet_filter is None and not session.syscalls
    rows_before = len(session.analyzer.table)
    feed = session.analyzer.feed if direct else session.feed_packet
    unknown = session.unknown_linktypes
    records = reader.records() if count is None else islice(reader.records(), count)
    try:
        with paused_gc():
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
        if progress is not None:
            progress.close()
        if direct:
            session.fed_directly(rows_before)
        session.packets_read += index
        session.skipped_blocks += reader.skipped_blocks
        if reader.clamped:
            session.warnings.append(
                f"{reader.clamped:,} packet(s) of {path} have a timestamp beyond 2116 or before 1823 (first at byte "
                f"{reader.first_clamped}): shown at that limit"
            )
    if count is not None and index == count:
        session.warnings.append(f"stopped after the first {count:,} packets of {path} (-c)")
    if recording.is_recording or recording.syscalls or recording.processes:
        _feed_recorded_half(session, recording)
    if unknown and undecodable == index and session.error is None:
        linktype, offset = next(iter(unknown.items()))
        session.error = InputError(path, f"unknown link type {linktype}: no packet could be decoded", offset=offset)


def _feed_recorded_half(session: Session, recording: Recording) -> None:
    """Feed a recording's syscalls and process events, in the order the tracer saw them end.

    Process events go first at equal times so a child's inherited fds are known before
    its first syscall.
    """
    if recording.meta:
        session.meta = recording.meta
    if recording.is_recording and not recording.complete:
        session.warnings.append(
            f"{recording.path} is incomplete: it has no summary record, so the recorder was killed or crashed "
            "before its end; the report covers what was written until then"
        )
    # In place and by an int key: a (time, kind, event) tuple per syscall was 80 MB at the
    # peak of a 800k-syscall load. Stable, and the file is nearly in completion order already.
    syscalls = recording.syscalls
    syscalls.sort(key=_completed_ns)
    processes = sorted(recording.processes, key=lambda p: p.get("ts_ns") or 0)
    at = 0
    for sc in syscalls:
        done = _completed_ns(sc)
        while at < len(processes) and (processes[at].get("ts_ns") or 0) <= done:
            session.on_process_record(processes[at])
            at += 1
        session.feed_syscall(sc)
    for process in processes[at:]:
        session.on_process_record(process)


def _completed_ns(sc: Syscall) -> int:
    return sc.exit_ns if sc.exit_ns is not None else sc.enter_ns


def load_strace(session: Session, path: str) -> None:
    """Add the syscalls of an strace log; unparsable lines become a warning, not a failure."""
    log = read_strace_log(path)
    session.sources.append(path)
    # The correlator wants syscalls in the order they completed, as a tracer delivers them.
    for sc in sorted(log.syscalls, key=lambda c: (c.exit_ns if c.exit_ns is not None else c.enter_ns, c.id)):
        session.feed_syscall(sc)
    if log.unparsable and log.first_unparsable is not None:
        where, line = log.first_unparsable
        session.warnings.append(f"{log.unparsable} of {log.lines} strace lines not understood, first at {where}:{line}")


def is_truncation(error: InputError | None) -> bool:
    return isinstance(error, TruncatedCapture)
