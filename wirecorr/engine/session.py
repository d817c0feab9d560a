"""A Session: what the engine knows about one capture or recording, built incrementally.

Every front end (headless report, checks, TUI) reads a Session; live capture and replay
both feed it packet by packet, so nothing here assumes the input has ended until
`finish()` is called. The Session is state only: files reach it through `ingest`, and
the findings are drawn from it by `ingest.diagnose`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from wirecorr.engine.correlator import Correlator
from wirecorr.engine.packet_feed import new_analyzer
from wirecorr.engine.tcp_analysis import PacketAnalyzer
from wirecorr.errors import InputError
from wirecorr.model import Finding, Packet, Syscall

_ID = attrgetter("id")
_ENTER_NS = attrgetter("enter_ns")
_END_NS = attrgetter("end_ns")


@dataclass
class Session:
    analyzer: PacketAnalyzer = field(default_factory=new_analyzer)
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
    # A recording's closing record (end time, exit status, capture loss); None without one.
    summary: dict[str, Any] | None = None
    # Diagnoses as of `ingest.diagnose`; a live view calls `findings.detect(session)` for fresher ones.
    findings: list[Finding] = field(default_factory=list)
    # For each Custom Block of the capture, how many packets preceded it: Wireshark 4.x lists
    # those blocks as frames, so they shift every later packet's frame number.
    custom_at: array[int] = field(default_factory=lambda: array("Q"))
    # Every syscall fed, and the span of their times (`syscalls` may hold fewer: streaming).
    syscall_count: int = 0
    first_call_ns: int | None = None
    last_call_end_ns: int | None = None
    # The streaming analyze's filter (engine/streaming.py): a syscall it refuses is not kept
    # past its feed. None keeps every syscall, in `syscalls`, as every other front end needs.
    keep_syscall: Callable[[Syscall], bool] | None = None
    # Called with every run of syscalls as it is fed, before the correlator takes it (the
    # streaming analyze writes them out at once: a syscall record never changes).
    on_fed: Callable[[list[Syscall]], None] | None = None
    correlator: Correlator = field(init=False)
    _by_id: dict[int, Syscall] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.correlator = Correlator(self.analyzer)

    def frame_number(self, index: int) -> int:
        """Packet index → the frame number Wireshark/tshark show (`Recording.frame_numbers`)."""
        return index + 1 + bisect_right(self.custom_at, index)

    def syscall(self, syscall_id: int) -> Syscall | None:
        """The syscall a link, a finding or `Correlator.connection_of` names by id."""
        return self._by_id.get(syscall_id)

    def syscall_lookup(self) -> Callable[[int], Syscall | None]:
        """`syscall` without the method call: the linking pass looks up ≈ a call per link
        (0.3 s of bench/correlate's 800k through the method)."""
        return self._by_id.get

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
        self.syscall_count += 1
        if self.first_call_ns is None or sc.enter_ns < self.first_call_ns:
            self.first_call_ns = sc.enter_ns
        if self.last_call_end_ns is None or sc.end_ns > self.last_call_end_ns:
            self.last_call_end_ns = sc.end_ns
        if self.on_fed is not None:
            self.on_fed([sc])
        if self.keep_syscall is None:
            self.syscalls.append(sc)
            self._by_id[sc.id] = sc
        elif self.keep_syscall(sc):
            self._by_id[sc.id] = sc
        self.correlator.on_syscall(sc)

    def feed_syscalls(self, syscalls: list[Syscall]) -> None:
        """`feed_syscall` for a run of syscalls with no process event between them: the
        correlator takes them in one compiled loop (`Correlator.on_syscalls`)."""
        if not syscalls:
            return
        self.syscall_count += len(syscalls)
        first = min(map(_ENTER_NS, syscalls))
        last = max(map(_END_NS, syscalls))
        if self.first_call_ns is None or first < self.first_call_ns:
            self.first_call_ns = first
        if self.last_call_end_ns is None or last > self.last_call_end_ns:
            self.last_call_end_ns = last
        if self.on_fed is not None:
            self.on_fed(syscalls)
        if self.keep_syscall is None:
            self.syscalls.extend(syscalls)
            self._by_id.update(zip(map(_ID, syscalls), syscalls, strict=True))
        else:
            keep = self.keep_syscall
            self._by_id.update((sc.id, sc) for sc in syscalls if keep(sc))
        self.correlator.on_syscalls(syscalls)

    def drop_syscalls(self, ids: Iterable[int]) -> None:
        """Forget syscalls the streaming analyze has written out and no finding reads."""
        by_id = self._by_id
        for sid in ids:
            by_id.pop(sid, None)

    def restore_syscalls(self, calls: Iterable[Syscall]) -> None:
        """Keep again syscalls `drop_syscalls` forgot (the streaming analyze re-read them)."""
        self._by_id.update((sc.id, sc) for sc in calls)

    def on_process(self, event: str, pid: int, info: int | None) -> None:
        """Process events (fork, exec, exit) as the Tracer reports them: forks share fds."""
        self.correlator.on_process(event, pid, info)

    def on_process_record(self, record: dict[str, Any]) -> None:
        """A recording's process record: the same event, as the writer stored it."""
        self.on_process(record["event"], record["pid"], record["info"])

    def finish(self) -> None:
        self.correlator.finish()
        self.analyzer.finish()
        if self.keep_syscall is not None:
            self.syscalls = list(self._by_id.values())
        # Two stable sorts give (enter_ns, id) order without a key tuple per syscall.
        self.syscalls.sort(key=attrgetter("id"))
        self.syscalls.sort(key=attrgetter("enter_ns"))
