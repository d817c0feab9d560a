"""The correlator: pairs syscalls with the packets they caused or consumed (Links).

Identity first, time second (docs/architecture.md, pairing rules). A syscall's socket is resolved to a Connection
by its 4-tuple (`socket_map`); data calls are then matched byte-exactly: each direction
of a TCP stream is numbered from 0 after the handshake, a write of n bytes owns stream
offsets [k, k+n) of its direction, and every segment whose relative sequence range
overlaps those offsets belongs to it — MSS slicing (one write, several segments), Nagle
coalescing (one segment, several writes) and retransmissions all fall out of the overlap
test with no timing heuristics. Control packets (SYN, FIN, RST) are paired by direction,
order and time window; UDP datagrams by flow, size and order (`udp_match`).

Incremental: packets and syscalls arrive in any interleaving (a live tcpdump lags the
tracer by milliseconds, a replay may feed a whole capture before the trace). Anything
that needs input not seen yet waits: a socket's connection is chosen only once the
capture has passed the syscall's exit time (so a newer connection on a reused 4-tuple
cannot appear afterwards); claims on byte ranges and waiters for FIN/RST stay open and
take packets as they arrive. `finish()` decides what is left. Links are created once
their syscall's connection is known and grow as packets come in.

Stream offsets are kept unwrapped (64-bit): relative sequence numbers wrap at 2**32 and
are unwrapped against the highest position seen in that direction.

A socket the trace did not see created (`record -p`, `strace -p`: it was open before
tracing began) has moved an unknown number of bytes: its offsets are anchored by content.
The first data call whose recorded bytes (`Syscall.data`) are found in a captured segment
fixes the distance between the socket's own byte count and the capture's stream offsets,
per direction; every call of that direction, before and after, is then placed by sequence
arithmetic. The anchors are kept in `anchors`, so reports can say which streams were
placed this way. A peek (MSG_PEEK) links the bytes it saw and consumes none.
"""

from __future__ import annotations

import bisect
import heapq
import weakref
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from wirecorr._core import pure_requested
from wirecorr.engine.analysis_flags import ANY_RETRANSMISSION, AnalysisFlag
from wirecorr.engine.connections import Connection
from wirecorr.engine.link_table import LinkTable
from wirecorr.engine.seq import GE_SEQ, HALF, M32
from wirecorr.engine.socket_map import (
    NEVER,
    SLACK_NS,
    ConnectionIndex,
    Socket,
    SocketMap,
    fits_local,
    is_peek,
)
from wirecorr.engine.tcp_analysis import PacketAnalyzer
from wirecorr.engine.udp_match import UdpMatcher, join_notes
from wirecorr.errors import WirecorrError
from wirecorr.model import ACK, FIN, PROTO_TCP, PROTO_UDP, RST, SYN, Link, Packet, Syscall
from wirecorr.vocab import READS, WRITES

# A pure ACK this long after the data it acknowledges was held back by delayed-ACK.
DELAYED_ACK_NS = 30_000_000

# Every kind a Link gets here (docs/architecture.md, pairing rules); `checks` validates
# rule files against it.
LINK_KINDS = frozenset(
    (
        "connect-syn", "connect-established", "connect-refused", "accept-ack", "write-data", "read-data",
        "eof-fin", "reset", "shutdown-fin", "close-fin", "close-rst", "close-noop", "send-datagram",
        "recv-datagram",
    )
)  # fmt: skip

_KIND_BY_FLAG = (
    (int(AnalysisFlag.ZERO_WINDOW_PROBE), "zero-window-probe"),
    (int(AnalysisFlag.ZERO_WINDOW_PROBE_ACK), "zero-window-probe-ack"),
    (int(AnalysisFlag.KEEP_ALIVE), "keep-alive"),
    (int(AnalysisFlag.KEEP_ALIVE_ACK), "keep-alive-ack"),
    (ANY_RETRANSMISSION, "retransmission"),
)

_RESET_ERRNOS = frozenset({"ECONNRESET", "EPIPE"})
# Anchoring a stream whose start was not traced: the first ANCHOR_TRIES data calls of a
# direction are tried, each against at most ANCHOR_WINDOW segments next to it in time, and
# a match needs the call's first ANCHOR_MIN_MATCH bytes (or all of them, if fewer).
ANCHOR_TRIES = 8
ANCHOR_WINDOW = 4096
ANCHOR_MIN_MATCH = 8
# A candidate position must agree with the bytes of the other pending calls: anchoring waits
# for this many calls with data (or the end of input), as repeated requests look alike.
ANCHOR_EVIDENCE = 3
# Payloads of this many recent segments are kept when no capture file can be re-read (live).
RECENT_PAYLOADS = 4096
# Syscall ids the compiled per-call index keeps rows for once the streaming analyze sheds
# it; older calls still on a connection move to its dict (≈ 200 B each instead of 32).
CALL_WINDOW = 1 << 16
# Link ids `Correlator.links` keeps a list slot for once the streaming analyze sheds it.
LINK_WINDOW = 1 << 16
_NOT_FOUND = "no captured segment carries their bytes"
_NO_DATA = "none of their bytes were recorded (--data-bytes 0?)"

Label = list[int] | str


@dataclass(slots=True)
class Anchor:
    """How one traced socket's byte count of one direction was tied to the capture's stream.

    `offset` is the capture's stream offset (0 = first byte of that direction captured) of
    the socket's first traced byte; `syscall` is the call whose bytes were found in packet
    `packet`. `packet` and `syscall` are None when no call could be anchored: that
    direction's calls stay unlinked, and `failed` says why.
    """

    conn: int
    side: int
    direction: int
    syscall: int | None
    packet: int | None
    offset: int | None
    failed: str | None = None


# -- per-connection state ----------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Claim:
    """Stream offsets [start, end) of one direction that one data syscall moved."""

    link: Link
    start: int
    end: int
    write: bool
    enter_ns: int
    exit_ns: int
    note: str | None
    first_ts: int | None = None
    last_ts: int | None = None
    retrans: list[int] | None = None
    # [start, covered_to) is on the wire, as far as segments arrived in order; `_claim_note`
    # walks the segments again only for a claim this does not cover.
    covered_to: int = -1


class _Claims:
    """Claims of one direction and one role (writes or reads), disjoint and sorted."""

    __slots__ = ("claims", "starts")

    def __init__(self) -> None:
        self.starts = array("q")
        self.claims: list[_Claim] = []

    def add(self, claim: _Claim) -> None:
        at = bisect.bisect_right(self.starts, claim.start)
        self.starts.insert(at, claim.start)
        self.claims.insert(at, claim)

    def overlapping(self, start: int, end: int) -> list[_Claim]:
        claims = self.claims
        at = max(bisect.bisect_right(self.starts, start) - 1, 0)
        out = []
        while at < len(claims) and claims[at].start < end:
            if claims[at].end > start:
                out.append(claims[at])
            at += 1
        return out


class _Dir:
    """One direction of a tracked TCP connection: its segments by offset, claims, FIN/RSTs."""

    __slots__ = (
        "acked",
        "ctrl",
        "fin",
        "fin_end",
        "max_len",
        "peeks",
        "reads",
        "seg_end",
        "seg_idx",
        "seg_start",
        "top",
        "writes",
    )

    def __init__(self) -> None:
        self.top = 0
        # Stream offset the other direction's ACKs acknowledged up to (exclusive), as far as
        # `Correlator.settled_claims` scanned them.
        self.acked = 0
        # Segments by start offset: start, end and packet index, in int64 columns (as
        # tuples they were ≈ 160 bytes a segment; bench/correlate's connection has 400k).
        self.seg_start = array("q")
        self.seg_end = array("q")
        self.seg_idx = array("q")
        self.max_len = 0
        self.writes = _Claims()
        self.reads = _Claims()
        # Peeks overlap the read that later takes the same bytes, so they have their own list.
        self.peeks = _Claims()
        self.ctrl: list[int] = []  # FIN and RST packets, in capture order
        self.fin: int | None = None
        self.fin_end = 0  # 32-bit relative sequence just past the first FIN

    def unwrap(self, rel: int) -> int:
        top = self.top
        return top + ((rel - top + HALF) & M32) - HALF

    def add_segment(self, start: int, end: int, idx: int) -> None:
        at = bisect.bisect_right(self.seg_start, start)
        self.seg_start.insert(at, start)
        self.seg_end.insert(at, end)
        self.seg_idx.insert(at, idx)
        self.max_len = max(self.max_len, end - start)

    def segments(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """(start, end, index) of segments overlapping [start, end)."""
        lo = bisect.bisect_right(self.seg_start, start - self.max_len)
        hi = bisect.bisect_left(self.seg_start, end)
        ends = self.seg_end
        return [(self.seg_start[i], ends[i], self.seg_idx[i]) for i in range(lo, hi) if ends[i] > start]


@dataclass(slots=True, eq=False)
class _Waiter:
    """A syscall waiting for a FIN or RST in one direction within a time window."""

    link: Link
    sc: Syscall
    d: int
    mask: int
    after_ns: int
    exclusive: bool
    from_exit: bool  # delay measured packet → syscall exit (else syscall entry → packet)
    matched: int | None = None
    note: str | None = None


@dataclass(slots=True, eq=False)
class _Handshake:
    """link is None until a packet shows: a non-blocking connect may be refused instead."""

    link: Link | None
    sc: Syscall
    kind: str


class _Tcp:
    """What the correlator tracks of one TCP connection that a syscall resolved to."""

    __slots__ = (
        "ack_scan",
        "conn",
        "dirs",
        "final_ack",
        "handshakes",
        "last_idx",
        "synacks",
        "syns",
        "taken",
        "unanchored",
        "waiters",
    )

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dirs = (_Dir(), _Dir())
        self.syns: list[int] = []
        self.synacks: list[int] = []
        self.final_ack: int | None = None
        self.handshakes: list[_Handshake] = []
        self.waiters: list[_Waiter] = []
        self.taken: set[int] = set()
        self.last_idx = -1
        # Sockets on this connection with claims waiting for their stream to be anchored.
        self.unanchored: list[_SockState] = []
        # How many of conn.packet_indices `Correlator.settled_claims` read the ACKs of.
        self.ack_scan = 0


@dataclass(slots=True, eq=False)
class _SockState:
    """The correlator's view of one socket: stream counters and work waiting for its connection."""

    sock: Socket
    sent: int = 0
    received: int = 0
    tcp: _Tcp | None = None
    side: int = 0
    queue: list[tuple[str, Syscall, int, int]] = field(default_factory=list)
    connect: Syscall | None = None
    shut_wr: bool = False
    # Calls made on the socket before its connection was known.
    calls: list[Syscall] = field(default_factory=list)
    refused: bool = False
    polled: bool = False
    # Added to the socket's byte counts (writes, reads) to get the capture's stream offsets;
    # None until anchored, for a socket that was open before tracing began.
    shift: list[int | None] = field(default_factory=lambda: [0, 0])
    pending: list[list[tuple[_Claim, Syscall, bool]]] = field(default_factory=lambda: [[], []])


class _CallIndex:
    """Per syscall id: its connection and side, its links and its stream range. The
    reference for the compiled `CallIndex` (`_core/correlate.pyx`), which holds the same
    in 32 bytes a call; same methods."""

    __slots__ = ("_conn_of", "_links", "_ranges")

    def __init__(self, links: LinkTable) -> None:
        self._conn_of: dict[int, tuple[int, int]] = {}
        self._links: dict[int, list[Link]] = {}
        self._ranges: dict[int, tuple[int, int, int]] = {}

    def assign(self, sid: int, conn: int, side: int) -> bool:
        """Put the call on (conn, side) unless it is on one already; True if it was not."""
        if sid in self._conn_of:
            return False
        self._conn_of[sid] = (conn, side)
        return True

    def conn_of(self, sid: int) -> tuple[int, int] | None:
        return self._conn_of.get(sid)

    def unassign(self, sid: int) -> None:
        self._conn_of.pop(sid, None)
        self._ranges.pop(sid, None)

    def add_link(self, sid: int, link: Link) -> None:
        self._links.setdefault(sid, []).append(link)

    def links_of(self, sid: int) -> list[Link]:
        return list(self._links.get(sid, ()))

    def pop_links(self, sid: int) -> list[Link]:
        return self._links.pop(sid, [])

    def set_range(self, sid: int, d: int, start: int, end: int) -> None:
        self._ranges[sid] = (d, start, end)

    def range_of(self, sid: int) -> tuple[int, int, int] | None:
        return self._ranges.get(sid)

    def shed(self, window: int) -> None:
        """The compiled index's rows for old ids, given up (`CallIndex.shed`): the dicts
        here hold only the calls not forgotten already."""


# -- the correlator -----------------------------------------------------------------------


def _new_lane() -> Any:
    """The compiled lane; a missing build is an error, never a silent fall back to the
    slower path (as `packet_feed.new_analyzer`)."""
    try:
        from wirecorr._core.correlate import Lane
    except ImportError as e:
        raise WirecorrError(
            f"the compiled correlator is not built ({e}): run `make` or `pip install -e .`, "
            "or set WIRECORR_PURE=1 for the (slower) pure-Python path"
        ) from None
    return Lane()


def _new_call_index(links: LinkTable) -> Any:
    from wirecorr._core.correlate import CallIndex

    return CallIndex(links)


def _weak_methods(owner: object, *names: str) -> list[Callable[..., Any]]:
    """Methods of `owner` that do not keep it alive: the UDP matcher calls back into its
    correlator, and bound methods made a cycle that left every link and claim to the
    cyclic collector (≈ 1 s of `record`'s linking pass on bench/correlate's recording,
    spent after it had ended)."""
    ref = weakref.ref(owner)

    def method(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(ref(), name)(*args, **kwargs)

        return call

    return [method(name) for name in names]


class Correlator:
    """Feed `on_packet(pkt)` right after `analyzer.feed(pkt)` and `on_syscall(sc)` as calls
    complete; read `links`, `packet_links` and `label(i)` at any time; `finish()` at the end.
    """

    def __init__(self, analyzer: PacketAnalyzer, *, compiled: bool | None = None) -> None:
        """`compiled` chooses how `on_syscalls` runs: the compiled lane (`_core.correlate`)
        or `on_syscall` per call; None lets WIRECORR_PURE decide (compiled unless it is set)."""
        self.analyzer = analyzer
        self.table = analyzer.table
        # None where `forget` dropped a link (only the streaming analyze does).
        self.links = LinkTable()
        self.packet_links: dict[int, list[int]] = {}
        self.sockets = SocketMap()
        self._index = ConnectionIndex()
        self._tcp: dict[int, _Tcp] = {}
        self._states: dict[int, _SockState] = {}
        self._bound: dict[tuple[int, int], _SockState] = {}
        self._heap: list[tuple[int, int]] = []
        self._watermark = -NEVER
        self._nconns = 0
        self._finished = False
        # The one answer to "which connection, which side, which links" per syscall, kept as
        # sockets bind and links grow; findings and every view read it (docs/architecture.md).
        self._calls_by_conn: dict[int, list[tuple[int, int]]] = {}
        # Per syscall id: connection and side, links, and (direction, start, end) of the
        # stream bytes a TCP data call moved (not peeks).
        self.anchors: list[Anchor] = []
        # Packet index → captured transport payload, for anchoring by content; set by whoever
        # can re-read the capture (the session, for a file). Without it recent payloads are kept.
        self.payload_of: Callable[[int], bytes | None] | None = None
        self._recent: dict[int, bytes] = {}
        self._udp = UdpMatcher(analyzer, *_weak_methods(self, "_link", "_add_packet", "_assign", "_sync_connections"))
        # The matcher's own list (it never rebinds it): on_packet tests it without an attribute hop.
        self._udp_claims = self._udp.claims
        self._lane = _new_lane() if (not pure_requested() if compiled is None else compiled) else None
        self._calls = _new_call_index(self.links) if self._lane is not None else _CallIndex(self.links)

    # -- input ----------------------------------------------------------------------------

    def on_packet(self, pkt: Packet) -> None:
        idx = pkt.index
        cid = self.table.conn[idx]
        if cid >= self._nconns:
            self._sync_connections()
        if pkt.ts_ns > self._watermark:
            self._watermark = pkt.ts_ns
        if cid >= 0:
            if pkt.proto == PROTO_TCP:
                if self.payload_of is None and pkt.payload_len:
                    recent = self._recent
                    recent[idx] = pkt.payload
                    if len(recent) > RECENT_PAYLOADS:
                        del recent[next(iter(recent))]
                tcp = self._tcp.get(cid)
                if tcp is not None and idx > tcp.last_idx:
                    self._tcp_packet(tcp, idx)
            elif pkt.proto == PROTO_UDP and self._udp_claims:
                self._udp.on_packet(idx)
        if self._heap and self._heap[0][0] <= self._watermark:
            self._drain()

    def on_rows(self, lo: int, hi: int) -> None:
        """`on_packet` for the packets of table rows lo..hi-1, which the compiled feed gave
        the analyzer already (a chunk of a file: `payload_of` re-reads payloads, so none is
        kept here). The rows' packets are taken in order; later rows being in the table
        changes nothing, as `on_packet` meets the same when it builds a connection's state
        from all its packets (`_tcp_state`)."""
        assert self.payload_of is not None, "on_rows wants payloads re-read from the file"
        if self._lane is not None:
            self._lane.rows(self, lo, hi)
            return
        table = self.table
        conns, ts = table.conn, table.ts_ns
        connections = self.analyzer.connections
        tcps = self._tcp
        heap = self._heap
        for idx in range(lo, hi):
            cid = conns[idx]
            if cid >= self._nconns:
                self._sync_connections()
            t = ts[idx]
            if t > self._watermark:
                self._watermark = t
            if cid >= 0:
                conn = connections[cid]
                if conn.icmp_errors and idx in conn.icmp_indices:
                    pass
                elif conn.proto == "tcp":
                    tcp = tcps.get(cid)
                    if tcp is not None and idx > tcp.last_idx:
                        self._tcp_packet(tcp, idx)
                elif conn.proto == "udp" and self._udp_claims:
                    self._udp.on_packet(idx)
            if heap and heap[0][0] <= self._watermark:
                self._drain()

    def caught_up(self, last_ts_ns: int) -> None:
        """Packets up to `last_ts_ns` (the latest) went to the analyzer without `on_packet`, which is
        sound only before the first syscall: no link can exist yet, so all there is to
        do is what `on_packet` does for every packet: index new connections, move the clock."""
        self._sync_connections()
        self._watermark = max(self._watermark, last_ts_ns)

    def on_syscall(self, sc: Syscall) -> None:
        event = self.sockets.apply(sc)
        name = sc.name
        if event.created is not None and name != "socket" and event.created.is_tcp:
            state = self._state(event.created)
            self._own(state, sc)
            self._queue(state, "accept", sc)
        if name in ("poll", "ppoll") and isinstance(sc.ret, int) and sc.ret > 0:
            self._poll_errors(sc)
        sock = event.socket
        if sock is None or sock.listening:
            return
        if sock.is_udp:
            self._udp.on_call(sc, sock)
        elif sock.is_tcp:
            self._own(self._state(sock), sc)
            self._tcp_call(sc, sock, event.released)

    def on_syscalls(self, syscalls: list[Syscall]) -> None:
        """`on_syscall` for each of `syscalls` (in completion order, no process event
        between them): the common data calls on bound TCP sockets run compiled, on the
        same state (`_core/correlate.pyx`)."""
        if self._lane is None:
            for sc in syscalls:
                self.on_syscall(sc)
        else:
            self._lane.feed(self, syscalls)

    @property
    def compiled(self) -> bool:
        """Whether the compiled lane runs (not `WIRECORR_PURE`): the streaming analyze then
        fills its spills compiled too (`_core/correlate.spill_claims`)."""
        return self._lane is not None

    @property
    def compiled_calls(self) -> int:
        """How many syscalls the compiled lane took (the rest went through `on_syscall`)."""
        return self._lane.taken if self._lane is not None else 0

    def on_process(self, event: str, pid: int, info: int | None) -> None:
        """The tracer's process events (its `on_process` callback): forks share sockets."""
        if event == "fork" and info is not None:
            self.sockets.fork(info, pid)
        elif event == "exit":
            self.sockets.exit(pid)

    def finish(self) -> None:
        """No more input: resolve what waited, note what never matched."""
        self._sync_connections()
        self._watermark = NEVER
        self._heap.clear()
        for state in list(self._states.values()):
            if state.tcp is None and (state.queue or state.calls):
                self._resolve(state, final=True)
        for tcp in self._tcp.values():
            self._settle(tcp)
        self._udp.finish()
        for link in self.links.held():
            link.packets.sort()
        self._finished = True

    def _settle(self, tcp: _Tcp) -> None:
        """No more input for this connection: anchor or give up, note what never matched."""
        for state in list(tcp.unanchored):
            for role in (0, 1):
                if state.pending[role]:
                    self._anchor(state, role, final=True)
                if state.pending[role]:
                    self._give_up(state, role)
        for d in tcp.dirs:
            for claims in (d.writes, d.reads, d.peeks):
                for claim in claims.claims:
                    self._claim_note(claim, d)
        for w in tcp.waiters:
            if w.matched is None and w.note is None:
                w.link.note = "no matching packet captured"

    # -- retirement (the streaming `analyze --json`, engine/streaming.py) -------------------

    def retire(self, grace_ns: int) -> list[int]:
        """Settle and drop the state of TCP connections nothing can change any more; return their ids.

        A connection is over for the correlator once each direction carried a FIN or RST,
        every socket bound to it was released by its last close with no work queued, and
        no packet of it came for `grace_ns` of capture time (a FIN retransmitted later than
        that would no longer be added to its close link). Its links are final then, sorted
        as `finish()` sorts them; `label()` rebuilds the state from the packets if asked.
        """
        if self._finished:
            return []
        horizon = self._watermark - grace_ns
        flags = self.table.flags
        done = []
        for cid, tcp in self._tcp.items():
            if tcp.conn.last_ts_ns > horizon:
                continue
            if not all(d.fin is not None or any(flags[i] & RST for i in d.ctrl) for d in tcp.dirs):
                continue
            states = [s for s in (self._bound.get((cid, 0)), self._bound.get((cid, 1))) if s is not None]
            if any(not s.sock.closed or s.queue or s.pending[0] or s.pending[1] for s in states):
                continue
            done.append(cid)
        for cid in done:
            tcp = self._tcp.pop(cid)
            self._settle(tcp)
            for sid, _ in self._calls_by_conn.get(cid, ()):
                for link in self._calls.links_of(sid):
                    link.packets.sort()
            for side in (0, 1):
                state = self._bound.get((cid, side))
                if state is not None:
                    state.tcp = None
        return done

    def open_connections(self) -> list[int]:
        """Ids of the TCP connections the correlator holds state for (not retired)."""
        return list(self._tcp)

    def settled_claims(self, conn_id: int, horizon_ns: int) -> list[tuple[int, Any]]:
        """(direction, claim) of the data claims of an open connection that nothing can
        change any more: the streaming analyze writes their links out and drops them
        (`drop_claims`, `forget`) while the connection stays open.

        A claim is settled once all its bytes went on the wire in order (`covered_to`), the
        receiver acknowledged them, no segment of them was retransmitted, its link has no
        note, and its last segment is older than `horizon_ns`. Only a spurious
        retransmission of bytes already acknowledged, later than that, would have been
        added to its link. Connections with a stream still to be anchored keep all.
        """
        tcp = self._tcp.get(conn_id)
        if tcp is None or tcp.unanchored:
            return []
        if self._lane is not None:
            return self._lane.settled(self, tcp, horizon_ns)
        self._scan_acks(tcp)
        out = []
        for d, dr in enumerate(tcp.dirs):
            acked = dr.acked
            for claims in (dr.writes, dr.reads):
                # Claims later in the stream are no older: the first one too recent (or not
                # acknowledged yet) ends the walk, so a pass costs what it settles, not what
                # is in flight. One that never settles (a note, bytes not captured) is passed.
                for claim in claims.claims:
                    last = claim.last_ts
                    if claim.start >= acked or (last is not None and last > horizon_ns):
                        break
                    if (
                        claim.end <= acked
                        and claim.covered_to == claim.end
                        and claim.retrans is None
                        and claim.link.note is None
                        and last is not None
                    ):
                        out.append((d, claim))
        return out

    def _scan_acks(self, tcp: _Tcp) -> None:
        """Move each direction's `acked` over the ACKs of the packets the correlator took
        since the last scan."""
        table = self.table
        flags, direction, rel_ack = table.flags, table.direction, table.rel_ack
        indices = tcp.conn.packet_indices
        last = tcp.last_idx
        pos = tcp.ack_scan
        dirs = tcp.dirs
        while pos < len(indices):
            idx = indices[pos]
            if idx > last:
                break
            if flags[idx] & ACK:
                dr = dirs[1 - direction[idx]]
                off = dr.unwrap(rel_ack[idx]) - 1
                if off > dr.acked:
                    dr.acked = off
            pos += 1
        tcp.ack_scan = pos

    def shed_calls(self) -> None:
        """After `forget`: let the per-call index and the links follow the calls in flight
        rather than every id seen (`CallIndex.shed`, `LinkTable.shed`)."""
        self._calls.shed(CALL_WINDOW)
        self.links.shed(LINK_WINDOW)

    def drop_claims(self, conn_id: int, claims: list[tuple[int, Any]]) -> None:
        """Take settled (direction, claim) pairs (`settled_claims`) out of their connection's state."""
        if self._lane is not None:
            self._lane.drop_claims(self._tcp[conn_id], claims)
            return
        gone = {id(c) for _, c in claims}
        for dr in self._tcp[conn_id].dirs:
            for role in (dr.writes, dr.reads):
                if any(id(c) in gone for c in role.claims):
                    kept = [c for c in role.claims if id(c) not in gone]
                    role.claims = kept
                    role.starts = array("q", [c.start for c in kept])

    def prune_segments(self, conn_id: int) -> None:
        """After `drop_claims`: drop the segments of an open connection below where any claim
        can still reach (each direction's lowest claim left, and its writer's and reader's
        next stream offsets). A direction of one long connection held every segment, 24 B
        each, until the connection retired.

        Only once both sides are bound and anchored with nothing waiting: a side bound later
        (an accept traced late, a socket open before tracing) anchors its stream by walking
        the segments from the start. What the dropped segments still answered, a close's
        count of unread bytes (`_unread`), they answer the same without them: all end
        below what the reader read.
        """
        tcp = self._tcp.get(conn_id)
        if tcp is None or tcp.unanchored:
            return
        states = (self._bound.get((conn_id, 0)), self._bound.get((conn_id, 1)))
        for state in states:
            if state is None or None in state.shift or state.queue or state.pending[0] or state.pending[1]:
                return
        for d, dr in enumerate(tcp.dirs):
            writer, reader = states[d], states[1 - d]
            assert writer is not None and reader is not None
            sent_shift, read_shift = writer.shift[0], reader.shift[1]
            assert sent_shift is not None and read_shift is not None
            floor = min(writer.sent + sent_shift, reader.received + read_shift)
            for role in (dr.writes, dr.reads, dr.peeks):
                if role.claims:
                    floor = min(floor, role.claims[0].start)
            # A segment is at most `max_len` long: those starting that far below the floor end below it.
            gone = bisect.bisect_right(dr.seg_start, floor - dr.max_len)
            if gone:
                del dr.seg_start[:gone]
                del dr.seg_end[:gone]
                del dr.seg_idx[:gone]

    def restore(self, conn_id: int, calls: list[tuple[int, int, Link, int, int, int]]) -> None:
        """Put back what `forget` dropped of an open connection's data calls, given as
        (syscall id, side, link, direction, start, end): a finding turned out to read them.
        Their claims stay dropped (they were settled); a packet's link ids come back in id order."""
        packet_links = self.packet_links
        touched = set()
        for sid, side, link, d, start, end in calls:
            self._assign(sid, conn_id, side)
            self._calls.add_link(sid, link)
            self._calls.set_range(sid, d, start, end)
            self.links[link.id] = link
            for idx in link.packets:
                packet_links.setdefault(idx, []).append(link.id)
                touched.add(idx)
        for idx in touched:
            packet_links[idx].sort()

    def forget(self, conn_id: int, syscall_ids: set[int]) -> list[Link]:
        """Drop a retired connection's calls `syscall_ids` from every index and return their
        links, which become None in `links`: the streaming analyze has written them out."""
        if self._lane is not None:
            return self._lane.forget(self, conn_id, syscall_ids)
        calls = self._calls_by_conn.get(conn_id)
        if calls:
            self._calls_by_conn[conn_id] = [c for c in calls if c[0] not in syscall_ids]
        out: list[Link] = []
        packet_links = self.packet_links
        for sid in syscall_ids:
            self._calls.unassign(sid)
            for link in self._calls.pop_links(sid):
                out.append(link)
                self.links[link.id] = None
                for idx in link.packets:
                    ids = packet_links.get(idx)
                    if ids is not None:
                        ids.remove(link.id)
                        if not ids:
                            del packet_links[idx]
        return out

    # -- output ---------------------------------------------------------------------------

    def connection_of(self, syscall_id: int) -> tuple[int, int] | None:
        """(connection id, side 0 client / 1 server) of the socket the call acted on (for
        accept, the socket it returned), once that socket's connection is known.

        TCP calls get the connection their socket was bound to (`ConnectionIndex.lookup`),
        including calls that moved no packet; a UDP call gets the flow of the first
        datagram it was paired with.
        """
        return self._calls.conn_of(syscall_id)

    def calls_of(self, conn_id: int) -> list[tuple[int, int]]:
        """(syscall id, side) of every call `connection_of` puts on the connection, in the
        order they were bound (not entry order)."""
        return self._calls_by_conn.get(conn_id, [])

    def links_of(self, syscall_id: int) -> list[Link]:
        return self._calls.links_of(syscall_id)

    def stream_range(self, syscall_id: int) -> tuple[int, int, int] | None:
        """(direction, start, end): the capture's stream offsets [start, end) of direction
        0 (client → server) or 1 that a TCP read or write moved, once placed; None for other
        calls, peeks, and calls whose stream position is unknown. Requests frame messages on it."""
        return self._calls.range_of(syscall_id)

    def payload(self, index: int) -> bytes | None:
        """The captured transport payload of packet `index`, re-read from the file or kept
        from a live feed (recent packets only); None when neither has it."""
        return self._payload(index)

    def label(self, index: int) -> Label | None:
        """Link ids of packet `index`, else why no syscall owns it; None for non-TCP/UDP."""
        links = self.packet_links.get(index)
        if links:
            return links
        cid = self.table.conn[index] if index < len(self.table) else -1
        if cid < 0:
            return None
        conn = self.analyzer.connections[cid]
        if conn.icmp_errors and index in conn.icmp_indices:
            return "icmp-error"
        if conn.proto != "tcp":
            return "untraced" if self._is_datagram(index, conn) else None
        return self._kernel_reason(index, self._tcp_state(conn))

    def labels(self) -> dict[int, Label]:
        """label() of every packet of a connection, keyed by packet index."""
        out: dict[int, Label] = {}
        for i in range(len(self.table)):
            lab = self.label(i)
            if lab is not None:
                out[i] = lab
        return out

    # -- TCP syscalls ------------------------------------------------------------------------

    def _tcp_call(self, sc: Syscall, sock: Socket, released: bool) -> None:
        state = self._state(sock)
        name = sc.name
        ret = sc.ret if isinstance(sc.ret, int) else None
        errno = sc.errno
        connect = state.connect
        if connect is not None and connect.errno == "EINPROGRESS" and self._reports_refusal(state, sc):
            state.refused = True
            self._queue(state, "refused", sc)
        elif name == "connect":
            if errno in ("EALREADY", "EISCONN") or state.connect is not None:
                return
            state.connect = sc
            self._queue(state, "connect", sc)
        elif errno in _RESET_ERRNOS:
            self._queue(state, "reset", sc)
        elif name == "close":
            if errno == "EBADF":
                return
            if released:
                self._queue(state, "close", sc)
            else:
                self._link("close-noop", sc, note="other descriptors still refer to the socket")
        elif name == "shutdown":
            if ret == 0 and str(sc.args.get("how")) in ("SHUT_WR", "SHUT_RDWR", "1", "2") and not state.shut_wr:
                state.shut_wr = True
                self._queue(state, "shutdown", sc)
        elif ret is None or ret < 0:
            return
        elif name in WRITES or (name == "splice" and sc.args.get("fd_out") == sc.fd):
            if ret > 0:
                start = state.sent
                state.sent += ret
                self._queue(state, "write", sc, start, start + ret)
        elif name in READS or name == "splice":
            if ret > 0:
                start = state.received
                peek = is_peek(sc)
                if not peek:
                    state.received += ret
                self._queue(state, "peek" if peek else "read", sc, start, start + ret)
            elif sc.args.get("count") != 0:
                self._queue(state, "eof", sc)
        elif name in ("sendmmsg", "recvmmsg") and sc.msg_lens:
            n = sum(sc.msg_lens)
            if name == "sendmmsg":
                start, state.sent = state.sent, state.sent + n
                self._queue(state, "write", sc, start, start + n)
            else:
                start, state.received = state.received, state.received + n
                self._queue(state, "read", sc, start, start + n)

    def _own(self, state: _SockState, sc: Syscall) -> None:
        """Put a call on its socket's connection now, or when the socket is bound."""
        if state.tcp is not None:
            self._assign(sc.id, state.tcp.conn.id, state.side)
            return
        state.calls.append(sc)
        if self._finished:
            self._resolve(state, final=True)
        else:
            heapq.heappush(self._heap, (sc.end_ns, state.sock.id))

    def _assign(self, syscall_id: int, conn_id: int, side: int) -> None:
        if self._calls.assign(syscall_id, conn_id, side):
            self._calls_by_conn.setdefault(conn_id, []).append((syscall_id, side))

    def _poll_errors(self, sc: Syscall) -> None:
        """A poll that woke with POLLERR on a socket whose non-blocking connect() is pending
        is the first call to see a refusal (it also gets the RST; getsockopt later says which error)."""
        fds = sc.args.get("fds")
        for entry in fds if isinstance(fds, list) else ():
            fd = entry.get("fd") if isinstance(entry, dict) else None
            if not isinstance(fd, int) or "POLLERR" not in str(entry.get("revents")):
                continue
            sock = self.sockets.socket_of(sc.pid, fd)
            state = self._states.get(sock.id) if sock is not None else None
            connect = state.connect if state is not None else None
            if state is not None and connect is not None and connect.errno == "EINPROGRESS" and not state.polled:
                state.polled = True
                self._queue(state, "refused", sc)

    @staticmethod
    def _reports_refusal(state: _SockState, sc: Syscall) -> bool:
        """A later call that says a non-blocking connect() was refused: getsockopt(SO_ERROR)
        reading ECONNREFUSED, or a connect/read/write failing with it."""
        connect = state.connect
        if state.refused or connect is None or connect.errno != "EINPROGRESS" or sc is connect:
            return False
        if sc.errno == "ECONNREFUSED":
            return True
        return (
            sc.name == "getsockopt"
            and sc.errno is None
            and sc.args.get("optname") == "SO_ERROR"
            and sc.args.get("optval") in ("ECONNREFUSED", 111)
        )

    def _state(self, sock: Socket) -> _SockState:
        state = self._states.get(sock.id)
        if state is None:
            state = self._states[sock.id] = _SockState(sock)
        return state

    def _queue(self, state: _SockState, action: str, sc: Syscall, start: int = 0, end: int = 0) -> None:
        if state.tcp is not None:
            self._dispatch(state, action, sc, start, end)
            return
        state.queue.append((action, sc, start, end))
        if self._finished:
            self._resolve(state, final=True)
            return
        heapq.heappush(self._heap, (sc.end_ns, state.sock.id))
        if self._heap[0][0] <= self._watermark:
            self._drain()

    def _drain(self) -> None:
        heap = self._heap
        while heap and heap[0][0] <= self._watermark:
            _, sid = heapq.heappop(heap)
            state = self._states[sid]
            if state.tcp is None and (state.queue or state.calls):
                self._resolve(state, final=False)

    def _resolve(self, state: _SockState, final: bool) -> None:
        """Bind the socket to its connection, then run the work that waited for it.

        Without a full 4-tuple a connect()ing socket is matched by its target and the first
        SYN after the call began, but only once no later call can show the tuple (the socket
        is closed, or the input ended): the tuple is exact, the time order is a guess when
        threads connect to one server at once.
        """
        sock = state.sock
        since = (state.queue[0][1].enter_ns if state.queue else state.calls[0].enter_ns) - SLACK_NS
        found = self._index.lookup(sock, since, self._bound.keys())
        if found is None and state.connect is not None and sock.remote is not None and (final or sock.closed):
            for conn in self._index.connects_to("tcp", sock.remote, state.connect.enter_ns - SLACK_NS):
                if (conn.id, 0) not in self._bound and fits_local((conn.client_addr, conn.client_port), sock.local):
                    found = (conn, 0)
                    break
        if found is None:
            return
        conn, side = found
        state.tcp = self._tcp_state(conn)
        state.side = side
        self._bound[(conn.id, side)] = state
        if not sock.created and state.connect is None:
            state.shift = [None, None]
            state.tcp.unanchored.append(state)
        calls, state.calls = state.calls, []
        for call in calls:
            self._assign(call.id, conn.id, side)
        queue, state.queue = state.queue, []
        for action, sc, start, end in queue:
            self._dispatch(state, action, sc, start, end)

    def _dispatch(self, state: _SockState, action: str, sc: Syscall, start: int, end: int) -> None:
        tcp = state.tcp
        assert tcp is not None
        ours, peer = state.side, 1 - state.side
        exit_ns = sc.end_ns
        if action in ("write", "read", "peek"):
            write = action == "write"
            peek = action == "peek"
            count = sc.args.get("count")
            note = None
            if write and isinstance(count, int) and 0 < end - start < count:
                note = f"partial write: {end - start} of {count} bytes"
            elif peek:
                note = "MSG_PEEK: bytes left in the receive queue"
            link = self._link("write-data" if write else "read-data", sc, note=note)
            claim = _Claim(link, start, end, write, sc.enter_ns, exit_ns, note)
            role = 0 if write else 1
            shift = state.shift[role]
            if shift is None:
                state.pending[role].append((claim, sc, peek))
                if len(state.pending[role]) <= ANCHOR_TRIES:
                    self._anchor(state, role, final=self._finished)
            else:
                self._place(tcp, ours if write else peer, claim, shift, peek)
        elif action == "refused":
            connect = state.connect
            assert connect is not None
            self._wait(
                tcp, "connect-refused", sc, peer, RST, connect.enter_ns - SLACK_NS, exclusive=False, from_exit=True
            )
        elif action == "connect":
            self._handshake(tcp, "connect-syn", sc)
            if sc.errno is None:
                self._handshake(tcp, "connect-established", sc)
            elif sc.errno == "EINPROGRESS":
                self._handshake(tcp, "connect-established", sc, lazy=True)
            elif sc.errno == "ECONNREFUSED":
                self._wait(
                    tcp, "connect-refused", sc, peer, RST, sc.enter_ns - SLACK_NS, exclusive=False, from_exit=True
                )
        elif action == "accept":
            self._handshake(tcp, "accept-ack", sc)
        elif action == "eof":
            self._wait(tcp, "eof-fin", sc, peer, FIN, -NEVER, exclusive=False, from_exit=True)
        elif action == "reset":
            self._wait(tcp, "reset", sc, peer, RST, -NEVER, exclusive=False, from_exit=True)
        elif action == "shutdown":
            self._wait(tcp, "shutdown-fin", sc, ours, FIN, sc.enter_ns - SLACK_NS, exclusive=True, from_exit=False)
        elif action == "close":
            # After shutdown(SHUT_WR) the FIN is gone already; close can only add an RST.
            # After an RST either way the kernel sends nothing at all.
            mask = RST if state.shut_wr else FIN | RST
            note = "FIN already sent by shutdown()" if state.shut_wr else None
            ts, flags = self.table.ts_ns, self.table.flags
            if any(ts[i] < sc.enter_ns and flags[i] & RST for d in tcp.dirs for i in d.ctrl):
                mask, note = 0, "connection already reset: nothing to send"
            w = self._wait(
                tcp, "close-fin", sc, ours, mask, sc.enter_ns - SLACK_NS, exclusive=True, from_exit=False, note=note
            )
            if w.matched is None:
                w.link.note = w.note

    # -- stream offsets ---------------------------------------------------------------------

    def _place(self, tcp: _Tcp, d: int, claim: _Claim, shift: int, peek: bool) -> None:
        """Give a data claim its place in direction d's stream and the segments already there."""
        claim.start += shift
        claim.end += shift
        if not peek:
            self._calls.set_range(claim.link.syscall, d, claim.start, claim.end)
        dr = tcp.dirs[d]
        (dr.writes if claim.write else dr.peeks if peek else dr.reads).add(claim)
        for seg_start, seg_end, idx in dr.segments(claim.start, claim.end):
            self._claim_segment(claim, idx, seg_start, seg_end)

    def _anchor(self, state: _SockState, role: int, only: int | None = None, final: bool = False) -> None:
        """Try to anchor a direction of a socket opened before tracing began: the first
        pending call whose bytes are found in a captured segment, at a position the other
        pending calls' bytes agree with, fixes the shift; then every pending call of the
        direction is placed. `only` limits the search to a new segment."""
        tcp = state.tcp
        assert tcp is not None
        d = state.side if role == 0 else 1 - state.side
        pending = state.pending[role]
        tried = [(claim, sc) for claim, sc, _ in pending[:ANCHOR_TRIES] if sc.data]
        if not final and len(tried) < ANCHOR_EVIDENCE:
            return
        for claim, sc in tried:
            for offset, idx in self._match(tcp, d, claim, sc, only):
                shift = offset - claim.start
                if not self._agrees(tcp.dirs[d], shift, tried):
                    continue
                state.shift[role] = shift
                self.anchors.append(Anchor(tcp.conn.id, state.side, d, sc.id, idx, shift))
                state.pending[role] = []
                for c, _, peek in pending:
                    self._place(tcp, d, c, shift, peek)
                return

    def _agrees(self, dr: _Dir, shift: int, tried: list[tuple[_Claim, Syscall]]) -> bool:
        """Whether every call's recorded bytes, placed with `shift`, equal the captured ones
        where a captured segment holds them (calls whose bytes were not captured are no evidence)."""
        for claim, sc in tried:
            data = (sc.data or b"")[: claim.end - claim.start]
            start = claim.start + shift
            for s, _, idx in dr.segments(start, start + 1):
                payload = self._payload(idx)
                if payload and s <= start < s + len(payload):
                    if payload[start - s : start - s + len(data)] != data[: s + len(payload) - start]:
                        return False
                    break
        return True

    def _give_up(self, state: _SockState, role: int) -> None:
        tcp = state.tcp
        assert tcp is not None
        d = state.side if role == 0 else 1 - state.side
        why = _NOT_FOUND if any(sc.data for _, sc, _ in state.pending[role]) else _NO_DATA
        self.anchors.append(Anchor(tcp.conn.id, state.side, d, None, None, None, why))
        for claim, _, _ in state.pending[role]:
            claim.link.note = join_notes(claim.note, f"stream position unknown: open before tracing began and {why}")
        state.pending[role] = []

    def _match(self, tcp: _Tcp, d: int, claim: _Claim, sc: Syscall, only: int | None) -> Iterator[tuple[int, int]]:
        """(stream offset, packet) where the call's recorded bytes may start in direction d,
        most likely first.

        A write's bytes leave in the first segment at or after its entry that carries them; a
        read takes the oldest queued bytes, which had all arrived by its exit: the latest
        segment before the exit whose match leaves the whole read within what had arrived.
        """
        n = claim.end - claim.start
        data = (sc.data or b"")[:n]
        if not data:
            return
        table = self.table
        ts, flags, analysis = table.ts_ns, table.flags, table.analysis
        write = claim.write
        lo, hi = sc.enter_ns - SLACK_NS, sc.end_ns + SLACK_NS
        if only is not None:
            window = [only]
        else:
            indices = tcp.conn.packet_indices
            key = ts.__getitem__
            window = []
            if write:
                at = bisect.bisect_left(indices, lo, key=key)
                for pos in range(at, len(indices)):
                    idx = indices[pos]
                    if table.direction[idx] == d and table.seglen[idx]:
                        window.append(idx)
                        if len(window) >= ANCHOR_WINDOW:
                            break
            else:
                at = bisect.bisect_right(indices, hi, key=key)
                for pos in range(at - 1, -1, -1):
                    idx = indices[pos]
                    if table.direction[idx] == d and table.seglen[idx]:
                        window.append(idx)
                        if len(window) >= ANCHOR_WINDOW:
                            break
        dr = tcp.dirs[d]
        starts = {idx: dr.unwrap(table.rel_seq[idx]) - (0 if flags[idx] & SYN else 1) for idx in window}
        top = max((starts[i] + table.seglen[i] for i in window), default=0)
        head = data[:ANCHOR_MIN_MATCH]
        for idx in window:
            if analysis[idx] & ANY_RETRANSMISSION or (ts[idx] < lo if write else ts[idx] > hi):
                continue
            payload = self._payload(idx)
            if not payload:
                continue
            hits = []
            pos = payload.find(head)
            while pos >= 0:
                if payload[pos : pos + len(data)] == data[: len(payload) - pos]:
                    hits.append(starts[idx] + pos)
                pos = payload.find(head, pos + 1)
            if not write:
                hits = [off for off in hits if only is not None or off + n <= top]
            for off in hits if write else reversed(hits):
                yield off, idx

    def _payload(self, idx: int) -> bytes | None:
        found = self._recent.get(idx)
        if found is None and self.payload_of is not None:
            found = self.payload_of(idx)
        return found

    # -- links ------------------------------------------------------------------------------

    def _link(self, kind: str, sc: Syscall, note: str | None = None) -> Link:
        link = Link(id=len(self.links), kind=kind, syscall=sc.id, packets=[], note=note)
        self.links.append(link)
        self._calls.add_link(sc.id, link)
        return link

    def _add_packet(self, link: Link, idx: int) -> None:
        if idx in link.packets:
            return
        link.packets.append(idx)
        ids = self.packet_links.get(idx)
        if ids is None:
            self.packet_links[idx] = [link.id]
        else:
            ids.append(link.id)

    def _claim_segment(self, claim: _Claim, idx: int, start: int, end: int) -> None:
        table = self.table
        ts = table.ts_ns[idx]
        self._add_packet(claim.link, idx)
        covered = max(claim.covered_to, claim.start)
        if start <= covered < end:
            claim.covered_to = min(end, claim.end)
        if table.analysis[idx] & ANY_RETRANSMISSION:
            if claim.retrans is None:
                claim.retrans = []
            claim.retrans.append(idx)
        else:
            claim.first_ts = ts if claim.first_ts is None else min(claim.first_ts, ts)
            claim.last_ts = ts if claim.last_ts is None else max(claim.last_ts, ts)
        link = claim.link
        first = claim.first_ts if claim.first_ts is not None else ts
        last = claim.last_ts if claim.last_ts is not None else ts
        link.delay_ns = first - claim.enter_ns if claim.write else claim.exit_ns - last
        if claim.retrans:
            link.note = join_notes(claim.note, "retransmitted in packet(s) " + ", ".join(map(str, claim.retrans)))

    def _claim_note(self, claim: _Claim, d: _Dir) -> None:
        """At the end: say when some of the claimed bytes never showed on the wire."""
        if claim.covered_to == claim.end:
            return
        covered = 0
        pos = claim.start
        for s, e, _ in sorted(d.segments(claim.start, claim.end)):
            s, e = max(s, pos), min(e, claim.end)
            if e > s:
                covered += e - s
                pos = e
        missing = claim.end - claim.start - covered
        if missing > 0:
            claim.link.note = join_notes(claim.link.note, f"{missing} of {claim.end - claim.start} bytes not captured")

    def _handshake(self, tcp: _Tcp, kind: str, sc: Syscall, lazy: bool = False) -> None:
        hs = _Handshake(None if lazy else self._link(kind, sc), sc, kind)
        tcp.handshakes.append(hs)
        self._refresh_handshake(tcp, hs)

    def _refresh_handshake(self, tcp: _Tcp, hs: _Handshake) -> None:
        ts = self.table.ts_ns
        sc = hs.sc
        if hs.link is None:
            if not tcp.synacks:
                return
            hs.link = self._link(hs.kind, sc)
        link = hs.link
        final = [tcp.final_ack] if tcp.final_ack is not None else []
        if hs.kind == "connect-syn":
            packets = tcp.syns
            if tcp.syns:
                link.delay_ns = ts[tcp.syns[0]] - sc.enter_ns
            if len(tcp.syns) > 1:
                link.note = f"SYN sent {len(tcp.syns)} times"
        elif hs.kind == "connect-established":
            packets = tcp.synacks + final
            if tcp.synacks:
                if sc.errno == "EINPROGRESS":
                    link.note = "non-blocking: completed after connect() returned"
                else:
                    link.delay_ns = sc.end_ns - ts[tcp.synacks[0]]
        else:
            packets = tcp.syns + tcp.synacks + final
            if final:
                link.delay_ns = sc.end_ns - ts[final[0]]
        for idx in packets:
            self._add_packet(link, idx)

    def _wait(
        self,
        tcp: _Tcp,
        kind: str,
        sc: Syscall,
        d: int,
        mask: int,
        after_ns: int,
        *,
        exclusive: bool,
        from_exit: bool,
        note: str | None = None,
    ) -> _Waiter:
        """Wait for the first FIN/RST (in mask) of direction d sent at or after after_ns.

        No upper time bound: a direction has one FIN (plus retransmissions), and strace's
        exit times can be early (see ConnectionIndex.lookup), so order decides, not a window.
        """
        w = _Waiter(self._link(kind, sc), sc, d, mask, after_ns, exclusive, from_exit, note=note)
        tcp.waiters.append(w)
        for idx in tcp.dirs[d].ctrl:
            self._offer(tcp, w, idx)
        return w

    def _offer(self, tcp: _Tcp, w: _Waiter, idx: int) -> None:
        """Give a FIN/RST of w's direction to w: its first match, or a retransmission of it."""
        table = self.table
        flags = table.flags[idx]
        if w.matched is not None:
            if flags & FIN and table.flags[w.matched] & FIN and table.rel_seq[idx] == table.rel_seq[w.matched]:
                self._add_packet(w.link, idx)
                w.link.note = join_notes(w.note, "FIN retransmitted")
            return
        ts = table.ts_ns[idx]
        if not flags & w.mask or ts < w.after_ns or table.analysis[idx] & ANY_RETRANSMISSION:
            return
        if w.exclusive:
            if idx in tcp.taken:
                return
            tcp.taken.add(idx)
        w.matched = idx
        self._add_packet(w.link, idx)
        w.link.delay_ns = w.sc.end_ns - ts if w.from_exit else ts - w.sc.enter_ns
        if w.link.kind == "close-fin" and flags & RST:
            w.link.kind = "close-rst"
            unread = self._unread(tcp, w)
            w.link.note = join_notes(w.note, f"{unread} received byte(s) unread" if unread else None)
        else:
            w.link.note = w.note

    def _unread(self, tcp: _Tcp, w: _Waiter) -> int:
        """Bytes the peer had delivered before close() that the socket never read."""
        state = next((s for (cid, side), s in self._bound.items() if cid == tcp.conn.id and side == w.d), None)
        if state is None:
            return 0
        shift = state.shift[1]
        if shift is None:
            return 0
        peer = tcp.dirs[1 - w.d]
        delivered = max(
            (e for s, e, i in peer.segments(-NEVER, NEVER) if self.table.ts_ns[i] <= w.sc.enter_ns), default=shift
        )
        return max(delivered - state.received - shift, 0)

    # -- TCP packets ---------------------------------------------------------------------------

    def _tcp_state(self, conn: Connection) -> _Tcp:
        tcp = self._tcp.get(conn.id)
        if tcp is None:
            tcp = self._tcp[conn.id] = _Tcp(conn)
            if self._lane is not None:
                self._lane.packets(self, tcp, conn.packet_indices)
            else:
                for idx in conn.packet_indices:
                    self._tcp_packet(tcp, idx)
        return tcp

    def _tcp_packet(self, tcp: _Tcp, idx: int) -> None:
        table = self.table
        tcp.last_idx = idx
        d = table.direction[idx]
        flags = table.flags[idx]
        seglen = table.seglen[idx]
        dr = tcp.dirs[d]
        pos = dr.unwrap(table.rel_seq[idx])
        if flags & SYN:
            (tcp.synacks if flags & ACK else tcp.syns).append(idx)
            self._handshake_changed(tcp)
        elif tcp.final_ack is None and tcp.synacks and d != table.direction[tcp.synacks[0]] and flags & ACK:
            tcp.final_ack = idx
            self._handshake_changed(tcp)
        if seglen:
            start = pos - 1 + (1 if flags & SYN else 0)
            end = start + seglen
            dr.add_segment(start, end, idx)
            for claims in (dr.writes, dr.reads, dr.peeks):
                for claim in claims.overlapping(start, end):
                    self._claim_segment(claim, idx, start, end)
            for state in tcp.unanchored:
                for role in (0, 1):
                    if state.pending[role] and (state.side if role == 0 else 1 - state.side) == d:
                        self._anchor(state, role, only=idx)
        dr.top = max(dr.top, pos + seglen)
        if flags & (FIN | RST):
            if flags & FIN and dr.fin is None:
                dr.fin = idx
                dr.fin_end = (table.rel_seq[idx] + seglen + 1) & M32
            dr.ctrl.append(idx)
            for w in tcp.waiters:
                if w.d == d:
                    self._offer(tcp, w, idx)
                elif (
                    flags & RST
                    and w.link.kind == "close-fin"
                    and w.matched is None
                    and table.ts_ns[idx] < w.sc.enter_ns
                ):
                    # The trace ran ahead of the capture: the peer's reset came before the close.
                    w.mask, w.note = 0, "connection already reset: nothing to send"
                    w.link.note = w.note

    def _handshake_changed(self, tcp: _Tcp) -> None:
        for hs in tcp.handshakes:
            self._refresh_handshake(tcp, hs)

    def _kernel_reason(self, idx: int, tcp: _Tcp) -> str:
        """Why a TCP packet that no syscall owns was sent: the kernel's own traffic."""
        table = self.table
        flags = table.flags[idx]
        analysis = table.analysis[idx]
        if flags & RST:
            return "reset"
        if flags & SYN or idx == tcp.final_ack:
            return "handshake"
        for bit, name in _KIND_BY_FLAG:
            if analysis & bit:
                return name
        if flags & FIN:
            return "fin"
        if table.seglen[idx]:
            return "untraced-data"
        if analysis & AnalysisFlag.WINDOW_UPDATE:
            return "window-update"
        if analysis & AnalysisFlag.DUPLICATE_ACK:
            return "duplicate-ack"
        d = table.direction[idx]
        peer = tcp.dirs[1 - d]
        if peer.fin is not None and peer.fin < idx and GE_SEQ(table.rel_ack[idx], peer.fin_end):
            own = tcp.dirs[d].fin
            return "time-wait-ack" if own is not None and own < idx else "fin-ack"
        if table.ack_rtt_ns.get(idx, 0) >= DELAYED_ACK_NS:
            return "delayed-ack"
        return "pure-ack"

    def _is_datagram(self, idx: int, conn: Connection) -> bool:
        return conn.proto == "udp" and self.table.flags[idx] == 0

    # -- connections --------------------------------------------------------------------------

    def _sync_connections(self) -> None:
        conns = self.analyzer.connections
        self._index.sync(conns)
        self._udp.add_connections(conns[self._nconns :])
        self._nconns = len(conns)
