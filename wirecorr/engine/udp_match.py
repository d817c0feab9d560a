"""UDP pairing: each send and receive call takes datagrams of its socket's flows by size and order.

A UDP socket has no one connection, so a call is matched against every flow its local
(and, when known, peer) endpoint fits; the earliest unclaimed datagram of the right size
in the call's time window wins. Each datagram is taken once by a sending call and once by a
receiving one; a MSG_PEEK receive links a datagram and leaves it for the call that takes it.
Calls whose datagrams have not arrived yet wait in `claims` and take them in `on_packet`.
The Correlator owns links and connection identity; this module only decides the pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from wirecorr.engine.connections import Connection
from wirecorr.engine.socket_map import NEVER, SLACK_NS, Endpoint, Socket, endpoint_key, fits_local, is_peek
from wirecorr.engine.tcp_analysis import PacketAnalyzer
from wirecorr.model import Link, Syscall
from wirecorr.vocab import UDP_RECVS, UDP_SENDS


def join_notes(*notes: str | None) -> str | None:
    text = "; ".join(n for n in notes if n)
    return text or None


@dataclass(slots=True, eq=False)
class UdpClaim:
    """A UDP syscall and the datagram sizes it still needs (None: size not known)."""

    link: Link
    sc: Syscall
    sock: Socket
    send: bool
    peer: Endpoint | None
    sizes: list[int | None]
    truncatable: bool
    peek: bool = False
    first_ts: int | None = None
    last_ts: int | None = None


class UdpMatcher:
    """Pairs UDP calls with datagrams for a Correlator, through the correlator's own link,
    packet and connection bookkeeping (passed in, so both keep one answer)."""

    def __init__(
        self,
        analyzer: PacketAnalyzer,
        link: Callable[..., Link],
        add_packet: Callable[[Link, int], None],
        assign: Callable[[int, int, int], None],
        sync: Callable[[], None],
    ) -> None:
        self.analyzer = analyzer
        self.table = analyzer.table
        self._link = link
        self._add_packet = add_packet
        self._assign = assign
        self._sync = sync
        self.claims: list[UdpClaim] = []
        # Each datagram is taken once by a sending call and once by a receiving one.
        self._taken: dict[bool, set[int]] = {True: set(), False: set()}
        self._by_port: dict[int, list[Connection]] = {}
        self._cursor: dict[tuple[int, bool], int] = {}

    def add_connections(self, conns: Iterable[Connection]) -> None:
        """New connections of the analyzer, in order: UDP flows are indexed by both ports."""
        for conn in conns:
            if conn.proto == "udp":
                self._by_port.setdefault(conn.client_port, []).append(conn)
                if conn.server_port != conn.client_port:
                    self._by_port.setdefault(conn.server_port, []).append(conn)

    def finish(self) -> None:
        """No more packets: a call still short of datagrams says how many were not captured."""
        for uc in self.claims:
            if uc.sizes:
                uc.link.note = join_notes(uc.link.note, f"{len(uc.sizes)} datagram(s) not captured")
        self.claims.clear()

    def on_call(self, sc: Syscall, sock: Socket) -> None:
        name = sc.name
        ret = sc.ret if isinstance(sc.ret, int) else None
        if ret is None or ret < 0 or sc.errno is not None:
            return
        send = name in UDP_SENDS
        if not send and name not in UDP_RECVS:
            return
        if name in ("sendmmsg", "recvmmsg"):
            if ret == 0:
                return
            sizes: list[int | None] = list(sc.msg_lens) if sc.msg_lens else [None] * ret
            peer = None
        else:
            sizes = [ret]
            peer = endpoint_key(sc.args.get("addr")) or sock.remote
        count = sc.args.get("count")
        truncatable = not send and isinstance(count, int) and count == ret
        kind = "send-datagram" if send else "recv-datagram"
        peek = not send and is_peek(sc)
        note = f"{len(sizes)} messages" if len(sizes) > 1 else None
        if peek:
            note = "MSG_PEEK: datagram left in the receive queue"
        claim = UdpClaim(self._link(kind, sc, note=note), sc, sock, send, peer, sizes, truncatable, peek)
        self._sync()
        self._fill(claim)
        if claim.sizes:
            self.claims.append(claim)

    def _fill(self, claim: UdpClaim) -> None:
        """Take the earliest fitting unclaimed datagrams, in order, until none fits."""
        while claim.sizes:
            best: int | None = None
            for conn, d in self._candidates(claim):
                idx = self._first(conn, d, claim)
                if idx is not None and (best is None or idx < best):
                    best = idx
            if best is None:
                return
            self._take(claim, best)

    def _candidates(self, claim: UdpClaim) -> list[tuple[Connection, int]]:
        """UDP flows (connection, direction) whose datagrams claim's socket could have moved."""
        local = claim.sock.local
        conns = self._by_port.get(local[1], []) if local is not None else []
        if local is None and claim.peer is not None:
            conns = self._by_port.get(claim.peer[1], [])
        out = []
        for conn in conns:
            ends = ((conn.client_addr, conn.client_port), (conn.server_addr, conn.server_port))
            for mine in (0, 1):
                if fits_local(ends[mine], local) and (claim.peer is None or ends[1 - mine] == claim.peer):
                    out.append((conn, mine if claim.send else 1 - mine))
        return out

    def _first(self, conn: Connection, d: int, claim: UdpClaim) -> int | None:
        table = self.table
        size = claim.sizes[0]
        lo = claim.sc.enter_ns - SLACK_NS if claim.send else -NEVER
        hi = NEVER if claim.send else claim.sc.end_ns + SLACK_NS
        indices = conn.packet_indices
        taken = self._taken[claim.send]
        for pos in range(self._cursor.get((conn.id, claim.send), 0), len(indices)):
            idx = indices[pos]
            if idx in taken or table.direction[idx] != d:
                continue
            ts = table.ts_ns[idx]
            if ts > hi:
                return None
            if ts < lo:
                continue
            n = table.seglen[idx]
            if size is None or n == size or (claim.truncatable and n > size):
                return idx
        return None

    def _take(self, claim: UdpClaim, idx: int) -> None:
        """Link a datagram to the call; a peek links it and leaves it for the call that takes it."""
        table = self.table
        ckey = (table.conn[idx], claim.send)
        if not claim.peek:
            taken = self._taken[claim.send]
            taken.add(idx)
            indices = self.analyzer.connections[ckey[0]].packet_indices
            cursor = self._cursor.get(ckey, 0)
            while cursor < len(indices) and indices[cursor] in taken:
                cursor += 1
            self._cursor[ckey] = cursor
        claim.sizes.pop(0)
        # A UDP socket has no one connection: its call goes with its first datagram's flow.
        d = table.direction[idx]
        self._assign(claim.sc.id, table.conn[idx], d if claim.send else 1 - d)
        ts = table.ts_ns[idx]
        claim.first_ts = ts if claim.first_ts is None else claim.first_ts
        claim.last_ts = ts
        self._add_packet(claim.link, idx)
        sc = claim.sc
        claim.link.delay_ns = claim.first_ts - sc.enter_ns if claim.send else sc.end_ns - claim.last_ts

    def on_packet(self, idx: int) -> None:
        """A new datagram goes to the oldest waiting send and the oldest waiting receive it fits."""
        table = self.table
        conn = self.analyzer.connections[table.conn[idx]]
        d = table.direction[idx]
        ts = table.ts_ns[idx]
        n = table.seglen[idx]
        for claim in list(self.claims):
            if idx in self._taken[claim.send] or (conn, d) not in self._candidates(claim):
                continue
            if ts < claim.sc.enter_ns - SLACK_NS if claim.send else ts > claim.sc.end_ns + SLACK_NS:
                continue
            size = claim.sizes[0]
            if size is None or n == size or (claim.truncatable and n > size):
                self._take(claim, idx)
                if not claim.sizes:
                    self.claims.remove(claim)
