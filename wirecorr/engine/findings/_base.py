"""What every detector shares: thresholds, and a Context with the lookups several detectors
need. "Which connection, which side, which links" is the correlator's answer
(`Correlator.connection_of`), the same one every view reads; the Context only indexes it.

Detectors read the session, never change it, so `detect` can run again on a live session
as more events arrive. The Context is built lazily: a detector that looks only at packets
never pays for the syscall ↔ connection map.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from operator import attrgetter
from typing import TYPE_CHECKING

from wirecorr.engine.connections import Connection
from wirecorr.engine.socket_map import endpoint_key
from wirecorr.model import Link, Syscall
from wirecorr.vocab import READINESS_CALLS

if TYPE_CHECKING:
    from wirecorr.engine.session import Session

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITY_RANK = {ERROR: 0, WARNING: 1, INFO: 2}

# -- thresholds (defaults; override per run with `Thresholds`) ---------------------------

# A socket that has received the peer's FIN may take this long to close before it counts as
# leaked: long enough for any request handler to finish, short against a 60 s FIN_WAIT_2.
CLOSE_WAIT_NS = 1_000_000_000
# Linux keeps a socket in TIME_WAIT for TCP_TIMEWAIT_LEN (60 s, not tunable): connections
# actively closed within one such window coexist in TIME_WAIT.
TIME_WAIT_WINDOW_NS = 60_000_000_000
# That many coexisting TIME_WAIT sockets of one closer towards one server is worth a warning ...
TIME_WAIT_MIN = 100
# ... and so is any number that holds this fraction of the ephemeral port range.
TIME_WAIT_RANGE_FRACTION = 0.5
# Linux's default net.ipv4.ip_local_port_range, used when /proc cannot be read.
DEFAULT_PORT_RANGE = (32768, 60999)
# A busy-wait: at least this many EAGAIN results on one fd of one thread without a readiness
# wait between them, at this rate or faster. A loop with a sleep in it stays well below.
EAGAIN_MIN_CALLS = 100
EAGAIN_MIN_RATE = 200.0
# A receiver whose app had not read for this long when it advertised a zero window is a slow
# reader; a shorter gap means the app reads but cannot keep up with the sender.
ZERO_WINDOW_READ_GAP_NS = 100_000_000
# Linux's minimum delayed-ACK timeout is 40 ms (TCP_DELACK_MIN) and other stacks' are
# larger: a small write that waited at least this long for its segment was held by Nagle.
NAGLE_DELAY_NS = 30_000_000
# The held segment leaves as soon as the ACK arrives: the ACK precedes it by at most this.
NAGLE_ACK_GAP_NS = 5_000_000
# Linux refuses TCP_KEEPIDLE / TCP_KEEPINTVL below 1 s: a "keep-alive" after less idle is a
# zero-window probe or a stray segment that Wireshark's heuristic happens to match.
KEEPALIVE_MIN_IDLE_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-run overrides of the module constants above (tests, CLI options, a live view).

    `port_range` None reads /proc/sys/net/ipv4/ip_local_port_range of the analysing host;
    set it when the traffic came from another host or network namespace.
    """

    close_wait_ns: int = CLOSE_WAIT_NS
    time_wait_window_ns: int = TIME_WAIT_WINDOW_NS
    time_wait_min: int = TIME_WAIT_MIN
    time_wait_range_fraction: float = TIME_WAIT_RANGE_FRACTION
    port_range: tuple[int, int] | None = None
    eagain_min_calls: int = EAGAIN_MIN_CALLS
    eagain_min_rate: float = EAGAIN_MIN_RATE
    zero_window_read_gap_ns: int = ZERO_WINDOW_READ_GAP_NS
    nagle_delay_ns: int = NAGLE_DELAY_NS


def evidence(
    syscalls: Iterable[int] = (),
    packets: Iterable[int] = (),
    links: Iterable[int] = (),
    connections: Iterable[int] = (),
) -> dict[str, list[int]]:
    """The evidence record every finding carries: sorted, de-duplicated ids per event kind."""
    return {
        "syscalls": sorted(set(syscalls)),
        "packets": sorted(set(packets)),
        "links": sorted(set(links)),
        "connections": sorted(set(connections)),
    }


def call_text(sc: Syscall) -> str:
    """`pid 12 read(fd 4)`: enough to find the call in the report's syscall list."""
    fd = f"fd {sc.fd}" if sc.fd is not None else ""
    return f"pid {sc.pid} {sc.name}({fd})"


def side_name(side: int) -> str:
    return "client" if side == 0 else "server"


def endpoint_of(conn: Connection, side: int) -> str:
    return conn.client if side == 0 else conn.server


@dataclass
class Context:
    """One detect run's view of a session, with the lookups several detectors need."""

    session: Session
    thresholds: Thresholds = field(default_factory=Thresholds)

    @cached_property
    def connections(self) -> list[Connection]:
        return self.session.analyzer.connections

    @cached_property
    def links(self) -> list[Link]:
        """The links a finding may cite; the streaming analyze has forgotten some (None)."""
        return self.session.correlator.links.held()

    @cached_property
    def syscalls(self) -> list[Syscall]:
        """Every syscall in entry order (the session sorts only when finished). A finished
        session's list is in that order already: checking it is a quarter of sorting it
        again (24 against 90 ms on 560k syscalls, in one step of the TUI's loader)."""
        calls = self.session.syscalls
        if all(a.enter_ns < b.enter_ns or (a.enter_ns == b.enter_ns and a.id < b.id) for a, b in pairwise(calls)):
            return list(calls)
        return sorted(calls, key=attrgetter("enter_ns", "id"))

    @cached_property
    def _listens(self) -> dict[int, list[tuple[bytes, Syscall]]]:
        """Successful traced listen() calls by port, with the address each socket is bound to."""
        out: dict[int, list[tuple[bytes, Syscall]]] = {}
        for sc in self.syscalls:
            key = endpoint_key(sc.fdinfo.local) if sc.name == "listen" and sc.fdinfo and sc.errno is None else None
            if key is not None:
                out.setdefault(key[1], []).append((key[0], sc))
        return out

    def never_accepted(self, conn: Connection) -> Syscall | None:
        """The traced listen() on whose queue the connection waited, when no traced call ever
        took its server end (bound to the server address, or the wildcard of its family)."""
        if self.calls_of(conn.id, 1):
            return None
        for addr, sc in self._listens.get(conn.server_port, ()):
            same = addr == conn.server_addr or (len(addr) == len(conn.server_addr) and not any(addr))
            if same and sc.enter_ns <= conn.first_ts_ns:
                return sc
        return None

    def link(self, lid: int) -> Link:
        """A link by id, as `packet_links` and `links_of` name it (never a forgotten one)."""
        link = self.session.correlator.links[lid]
        assert link is not None
        return link

    def syscall(self, sid: int) -> Syscall | None:
        return self.session.syscall(sid)

    def links_of(self, sc: Syscall) -> list[Link]:
        return self.session.correlator.links_of(sc.id)

    @cached_property
    def t0(self) -> int:
        """The first event of either kind: message times count from it, as the text report's do."""
        session = self.session
        starts = [t for t in (session.first_ns, session.first_call_ns) if t is not None]
        return min(starts, default=0)

    @cached_property
    def end_ns(self) -> int:
        """The last moment the input covers: last packet or last syscall exit."""
        session = self.session
        ends = [t for t in (session.last_ns, session.last_call_end_ns) if t is not None]
        return max(ends, default=0)

    def frame(self, index: int) -> int:
        """A packet index as the frame number Wireshark shows (it counts a recording's
        Custom Blocks as frames too), as the text report prints it."""
        return self.session.frame_number(index)

    def frames(self, indices: Iterable[int]) -> str:
        nums = [self.frame(i) for i in indices]
        text = ", ".join(map(str, nums[:5]))
        return text + (f" … ({len(nums)} in all)" if len(nums) > 5 else "")

    def at(self, ns: int) -> str:
        """An absolute time as the report shows it: seconds since the first event."""
        return f"+{(ns - self.t0) / 1e9:.3f} s"

    # -- syscall ↔ connection: the correlator's answer, TCP only ------------------------

    def conn_side(self, sc: Syscall) -> tuple[int, int] | None:
        """(connection id, side 0 client / 1 server) of a TCP call, None for any other."""
        found = self.session.correlator.connection_of(sc.id)
        return found if found is not None and self.connections[found[0]].proto == "tcp" else None

    @cached_property
    def _calls_by_end(self) -> dict[tuple[int, int], list[Syscall]]:
        out: dict[tuple[int, int], list[Syscall]] = {}
        for conn in self.connections:
            if conn.proto != "tcp":
                continue
            for sid, side in self.session.correlator.calls_of(conn.id):
                sc = self.session.syscall(sid)
                if sc is not None:
                    out.setdefault((conn.id, side), []).append(sc)
        for calls in out.values():
            calls.sort(key=lambda sc: (sc.enter_ns, sc.id))
        return out

    def calls_of(self, conn_id: int, side: int) -> list[Syscall]:
        """The traced calls on one end of a connection, in entry order (empty if untraced)."""
        return self._calls_by_end.get((conn_id, side), [])

    def link_ids(self, sc: Syscall, kinds: Iterable[str] | None = None) -> list[int]:
        wanted = None if kinds is None else set(kinds)
        return [lk.id for lk in self.links_of(sc) if wanted is None or lk.kind in wanted]

    @cached_property
    def _readiness_by_tid(self) -> dict[int, list[int]]:
        """Entry times of readiness waits per thread, ascending, for "was there a wait between"."""
        out: dict[int, list[int]] = {}
        for sc in self.syscalls:
            if sc.name in READINESS_CALLS:
                out.setdefault(sc.tid, []).append(sc.enter_ns)
        return out

    def waited_between(self, tid: int, start_ns: int, end_ns: int) -> bool:
        """Whether thread tid entered a poll/select/epoll wait in (start_ns, end_ns)."""
        times = self._readiness_by_tid.get(tid, [])
        at = bisect.bisect_right(times, start_ns)
        return at < len(times) and times[at] < end_ns

    def port_range(self) -> tuple[int, int]:
        """The ephemeral port range: the override, else this host's setting now, else Linux's default."""
        if self.thresholds.port_range is not None:
            return self.thresholds.port_range
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                low, high = (int(x) for x in f.read().split())
            return low, high
        except (OSError, ValueError):
            return DEFAULT_PORT_RANGE
