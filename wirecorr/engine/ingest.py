"""Files into a Session: the one ingest path every front end uses.

`analyze`, `check`, the annotator, labs, the pytest plugin and the TUI's loader all read
captures, recordings and strace logs through here, so they all report the same damage
(truncation, unknown link types, "no packet could be decoded") and feed the engine in the
same order. The packet feed is one call, `feed_packets`, the seam a compiled decoder
replaces (docs/architecture.md, seams). `diagnose` is the pipeline's last step: the
Session is state only, and the findings are drawn from it here.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from operator import attrgetter
from typing import Any

from wirecorr.bulk import paused_gc
from wirecorr.engine.findings import Thresholds, detecting, ranked
from wirecorr.engine.packet_feed import compiled_feed_applies, feed_compiled
from wirecorr.engine.session import Session
from wirecorr.errors import InputError
from wirecorr.model import Finding, Packet, Syscall
from wirecorr.recording.reader import Recording, add_block
from wirecorr.sources.capture_file import CaptureReader, CustomBlock, RawRecord, TruncatedCapture
from wirecorr.sources.packet_at import PacketAt
from wirecorr.sources.packet_decode import SUPPORTED_LINKTYPES, decode_packet
from wirecorr.sources.strace_log import read_strace_log

PacketFilter = Callable[[Packet], bool]
_END_NS = attrgetter("end_ns")
# (bytes read, bytes in all, packets read): called once per slice of SLICE packets.
OnProgress = Callable[[int, int, int], None]
SLICE = 0x10000


def load_capture(
    session: Session,
    path: str,
    *,
    packet_filter: PacketFilter | None = None,
    on_progress: OnProgress | None = None,
    count: int | None = None,
    host: int | None = None,
) -> None:
    """Read every packet of `path` into `session`, or the first `count` (tshark's -c).

    `host` reads one host of a merged recording (`engine.hosts`): its syscalls and process
    events only (its packets are the caller's `packet_filter`), so each host's correlation
    and TCP analysis stay its own.

    Damage does not throw away what was read: the error is kept on the session and the
    caller decides whether a partial result may be reported (truncation at the end is what
    a killed tcpdump leaves, so that is reported by default).
    """
    for _ in read_capture(session, path, packet_filter=packet_filter, on_progress=on_progress, count=count, host=host):
        pass


def read_capture(
    session: Session,
    path: str,
    *,
    packet_filter: PacketFilter | None = None,
    on_progress: OnProgress | None = None,
    count: int | None = None,
    host: int | None = None,
) -> Iterator[int]:
    """`load_capture` in slices: yields the packets read so far after each slice."""
    # A recording's wirecorr blocks are decoded as they are met, never held as raw bytes.
    recording = Recording(path)

    def on_custom(block: CustomBlock) -> None:
        session.custom_at.append(check.read)
        add_block(recording, block)

    reader = CaptureReader(path, on_custom=on_custom)
    session.sources.append(path)
    check = LinkTypeCheck(session)
    reread_payloads(session, path)
    records: Iterator[RawRecord] = reader.records() if count is None else islice(reader.records(), count)
    try:
        with paused_gc():
            if compiled_feed_applies(session, packet_filter):
                # Yields after each chunk, before the reader reaches the end and closes the file.
                for read in feed_compiled(session, reader, path, check, packet_filter=packet_filter, count=count):
                    if on_progress is not None:
                        on_progress(reader.position, reader.size, read)
                    yield read
            else:
                while True:
                    n = feed_packets(session, islice(records, SLICE), check, packet_filter=packet_filter)
                    if n < SLICE:
                        break  # the reader has reached the end and closed the file: nothing to show
                    if on_progress is not None:
                        on_progress(reader.position, reader.size, check.read)
                    yield check.read
    except InputError as e:
        session.error = e
    finally:
        session.packets_read += check.read
        session.skipped_blocks += reader.skipped_blocks
        if reader.clamped:
            session.warnings.append(
                f"{reader.clamped:,} packet(s) of {path} have a timestamp beyond 2116 or before 1823 (first at byte "
                f"{reader.first_clamped}): shown at that limit"
            )
    if count is not None and check.read == count:
        session.warnings.append(f"stopped after the first {count:,} packets of {path} (-c)")
    if host is not None:
        keep_host(recording, host)
    elif recording.meta.get("hosts"):
        session.warnings.append(
            f"{path} is a merged recording of {len(recording.meta['hosts'])} hosts, read here as one capture "
            "(each crossing twice); `wirecorr analyze` and `check` report each host on its own"
        )
    if recording.is_recording or recording.syscalls or recording.processes:
        if recording.meta:
            session.meta = recording.meta
        session.summary = recording.summary
        if recording.is_recording and not recording.complete:
            session.warnings.append(
                f"{recording.path} is incomplete: it has no summary record, so the recorder was killed or crashed "
                "before its end; the report covers what was written until then"
            )
        feed = RecordedFeed(session.feed_syscall, session.on_process_record, feed_batch=session.feed_syscalls)
        with paused_gc():
            feed.add(recording.syscalls, recording.processes)
            feed.close()
    check.done(path)
    yield check.read


def keep_host(recording: Recording, host: int) -> None:
    """Drop the syscalls and process events of a merged recording's other hosts."""
    spec = next((h for h in recording.meta.get("hosts") or [] if h.get("id") == host), None)
    ids = (spec or {}).get("syscall_ids") or [0, -1]
    recording.syscalls = [sc for sc in recording.syscalls if ids[0] <= sc.id <= ids[1]]
    recording.processes = [p for p in recording.processes if p.get("host", 0) == host]


def reread_payloads(session: Session, path: str) -> None:
    """Let the correlator re-read a few payloads of `path` to anchor streams that were open
    before tracing; a pipe cannot be re-read, so then it keeps recent payloads itself."""
    if os.path.isfile(path):
        at = PacketAt(path)
        offsets = session.analyzer.table.offset
        session.correlator.payload_of = lambda i: at.payload(i, offsets[i])


def feed_packets(
    session: Session, records: Iterable[RawRecord], check: LinkTypeCheck, *, packet_filter: PacketFilter | None = None
) -> int:
    """Decode and feed raw records, in file order; return how many were read.

    Before any syscall the correlator has nothing to link a packet to: unfiltered packets
    go to the analyzer alone and the session catches up once per call. (With a filter the
    table holds empty rows for the packets left out, which `fed_directly` would count.)
    """
    direct = packet_filter is None and not session.syscall_count
    rows_before = len(session.analyzer.table)
    feed = session.analyzer.feed if direct else session.feed_packet
    index = start = check.read
    try:
        for rec in records:
            pkt = decode_packet(index, rec)
            index += 1
            # Read by `on_custom`: a Custom Block's frame number counts the packets before it.
            check.read = index
            if pkt.ip_version == 0:
                check.undecoded(rec)
            if packet_filter is None or packet_filter(pkt):
                feed(pkt)
    finally:
        if direct:
            session.fed_directly(rows_before)
    return index - start


class LinkTypeCheck:
    """Counts the packets no decoder understood, to say so when none could be decoded."""

    __slots__ = ("read", "session", "undecodable")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.read = 0
        self.undecodable = 0

    def undecoded(self, rec: RawRecord) -> None:
        if rec[3] not in SUPPORTED_LINKTYPES:
            self.session.unknown_linktypes.setdefault(rec[3], rec[1])
            self.undecodable += 1

    def done(self, path: str) -> None:
        session = self.session
        unknown = session.unknown_linktypes
        if unknown and self.undecodable == self.read and session.error is None:
            linktype, offset = next(iter(unknown.items()))
            session.error = InputError(path, f"unknown link type {linktype}: no packet could be decoded", offset=offset)


class RecordedFeed:
    """A recording's syscalls and process events, fed in the order the tracer saw them end.

    Batches may come in any order (the recorder writes syscalls up to ~1 s late, process
    events at once): a process event waits until a syscall that completed at or after it
    is fed, so a child's inherited fds are known before its first syscall and an exited
    process's descriptors stay until its last calls are in. `close` feeds what is left.
    """

    def __init__(
        self,
        feed_syscall: Callable[[Syscall], None],
        on_process: Callable[[dict[str, Any]], None],
        *,
        feed_batch: Callable[[list[Syscall]], None] | None = None,
    ) -> None:
        """`feed_batch`, if given, takes each run of syscalls between two process events
        at once (`Session.feed_syscalls`: the correlator's compiled lane)."""
        self._feed_syscall = feed_syscall
        self._feed_batch = feed_batch
        self._on_process = on_process
        self._held: list[tuple[int, int, dict[str, Any]]] = []
        self._seq = 0

    def add(self, syscalls: list[Syscall], processes: Iterable[dict[str, Any]]) -> None:
        held = self._held
        for process in processes:
            heapq.heappush(held, (process.get("ts_ns") or 0, self._seq, process))
            self._seq += 1
        # In place and by an int key: a (time, kind, event) tuple per syscall was 80 MB at
        # the peak of a 800k-syscall load. Stable, and a recording is nearly in order already.
        syscalls.sort(key=_END_NS)
        # Runs of syscalls between two process events go to the correlator's batch entry.
        start = 0
        if held:
            for at, sc in enumerate(syscalls):
                done = sc.end_ns
                if held[0][0] <= done:
                    if at > start:
                        self._feed_syscalls(syscalls[start:at])
                        start = at
                    while held and held[0][0] <= done:
                        self._on_process(heapq.heappop(held)[2])
                    if not held:
                        break
        if start < len(syscalls):
            self._feed_syscalls(syscalls[start:] if start else syscalls)

    def _feed_syscalls(self, syscalls: list[Syscall]) -> None:
        if self._feed_batch is not None:
            self._feed_batch(syscalls)
            return
        for sc in syscalls:
            self._feed_syscall(sc)

    def close(self) -> None:
        while self._held:
            self._on_process(heapq.heappop(self._held)[2])


def load_strace(session: Session, path: str) -> None:
    """Add the syscalls of an strace log; unparsable lines become a warning, not a failure."""
    log = read_strace_log(path)
    session.sources.append(path)
    # The correlator wants syscalls in the order they completed, as a tracer delivers them.
    for sc in sorted(log.syscalls, key=lambda c: (c.end_ns, c.id)):
        session.feed_syscall(sc)
    if log.unparsable and log.first_unparsable is not None:
        where, line = log.first_unparsable
        session.warnings.append(f"{log.unparsable} of {log.lines} strace lines not understood, first at {where}:{line}")


def diagnose(session: Session, thresholds: Thresholds | None = None) -> Session:
    """The pipeline's end: settle the engine (`Session.finish`), then draw the findings."""
    for _ in diagnosing(session, thresholds):
        pass
    return session


def diagnosing(session: Session, thresholds: Thresholds | None = None) -> Iterator[None]:
    """`diagnose` a step at a time: the engine's finish, then each findings detector (the
    TUI's loader takes one step per slice; on a million events all of it took ≈ 0.6 s, the
    largest detector ≈ 0.2 s). `session.findings` is set after the last step."""
    session.finish()
    yield
    found: list[Finding] = []
    for part in detecting(session, thresholds):
        found.extend(part)
        yield
    session.findings = ranked(found)


def analyze_file(path: str, *, strace: str | None = None) -> Session:
    """strace log (if any) and capture or recording, read and diagnosed: what `analyze`,
    the annotator, labs and the pytest plugin all start from."""
    session = Session()
    if strace is not None:
        load_strace(session, strace)
    load_capture(session, path)
    return diagnose(session)


def is_truncation(error: InputError | None) -> bool:
    """Whether the input ended cut short (what a killed tcpdump leaves), not damaged inside."""
    return isinstance(error, TruncatedCapture)
