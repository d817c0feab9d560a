"""The syscalls of one connection and the side (client/server) that made each.

The correlator's links say which syscalls touched a connection's packets, but a view of
one connection also wants the calls that moved no packet (`getsockopt`, a `close()` whose
FIN a `shutdown()` already sent, a blocked `read()`), so calls are also taken by the
4-tuple their descriptor showed (fdinfo; for accept, the descriptor it returned). When a
4-tuple was reused, a call belongs to the latest connection on it that had started by the
time the call ended, the rule `socket_map.ConnectionIndex` applies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from wirecorr.engine.connections import Connection
from wirecorr.engine.session import Session
from wirecorr.engine.socket_map import endpoint_key
from wirecorr.model import FdInfo, Link, Syscall

CLIENT_SIDE = 0
SERVER_SIDE = 1

# Link kinds whose packets were sent by the syscall's own socket (so they tell its side
# when fdinfo does not); every other kind consumed packets from the peer.
CAUSE_KINDS = frozenset({"connect-syn", "write-data", "shutdown-fin", "close-fin", "close-rst", "send-datagram"})
_CLIENT_KINDS = frozenset({"connect-syn", "connect-established", "connect-refused"})
_SERVER_KINDS = frozenset({"accept-ack"})
# The packet clock and the syscall clock agree to well under this (docs/architecture.md, clocks).
_SLACK_NS = 1_000_000


@dataclass(slots=True)
class ConnCall:
    """One syscall on a connection's socket: which side made it and its links."""

    sc: Syscall
    side: int
    links: list[Link] = field(default_factory=list)


def connection_calls(session: Session, conn_id: int) -> list[ConnCall]:
    """Every syscall on connection `conn_id`'s sockets, by entry time."""
    conn = session.analyzer.connections[conn_id]
    table = session.analyzer.table
    links_by_call: defaultdict[int, list[Link]] = defaultdict(list)
    for link in session.correlator.links:
        links_by_call[link.syscall].append(link)
    owner = _tuple_owner(session, conn)
    out = []
    for sc in session.syscalls:
        links = links_by_call.get(sc.id, [])
        here = [lk for lk in links if any(table.conn[p] == conn_id for p in lk.packets)]
        side = _fd_side(sc, conn)
        if not here and (side is None or owner(sc) != conn_id):
            continue
        if side is None:
            side = _link_side(here[0], session)
        out.append(ConnCall(sc, side, links))
    out.sort(key=lambda c: (c.sc.enter_ns, c.sc.id))
    return out


def _fd_side(sc: Syscall, conn: Connection) -> int | None:
    """CLIENT_SIDE/SERVER_SIDE when the call's descriptor shows this connection's 4-tuple."""
    info: FdInfo | None = sc.ret_fdinfo if sc.name in ("accept", "accept4") else sc.fdinfo
    if info is None or not info.remote:
        return None
    local, remote = endpoint_key(info.local), endpoint_key(info.remote)
    client = (conn.client_addr, conn.client_port)
    server = (conn.server_addr, conn.server_port)
    if (local, remote) == (client, server):
        return CLIENT_SIDE
    if (local, remote) == (server, client):
        return SERVER_SIDE
    return None


def _link_side(link: Link, session: Session) -> int:
    if link.kind in _CLIENT_KINDS:
        return CLIENT_SIDE
    if link.kind in _SERVER_KINDS:
        return SERVER_SIDE
    direction = session.analyzer.table.direction[link.packets[0]]
    return direction if link.kind in CAUSE_KINDS else 1 - direction


def _tuple_owner(session: Session, conn: Connection) -> Callable[[Syscall], int]:
    """A function: syscall → id of the connection on `conn`'s 4-tuple it belongs to."""
    key = frozenset(((conn.client_addr, conn.client_port), (conn.server_addr, conn.server_port)))
    same: list[Connection] = [
        c
        for c in session.analyzer.connections
        if c.proto == conn.proto and frozenset(((c.client_addr, c.client_port), (c.server_addr, c.server_port))) == key
    ]
    same.sort(key=lambda c: c.first_ts_ns)

    def owner(sc: Syscall) -> int:
        t = (sc.exit_ns if sc.exit_ns is not None else sc.enter_ns) + _SLACK_NS
        best = same[0]
        for c in same:
            if c.first_ts_ns <= t:
                best = c
        return best.id

    return owner


_WRITES = frozenset({"write", "send", "sendto", "sendmsg", "writev", "pwrite64", "pwritev", "pwritev2", "sendfile"})


def call_name(sc: Syscall) -> str:
    """The call as a ladder box shows it: `write(6 B)`, `shutdown(SHUT_WR)`, `read()`.

    Only the argument that explains the packets is kept (bytes offered for writes, `how`
    for shutdown); the descriptor is the same for every call of one side.
    """
    if sc.name in _WRITES:
        count = sc.args.get("count", sc.args.get("len", sc.nbytes))
        return f"{sc.name}({count} B)" if isinstance(count, int) else f"{sc.name}()"
    if sc.name == "shutdown" and "how" in sc.args:
        return f"shutdown({sc.args['how']})"
    return f"{sc.name}()"


def call_result(sc: Syscall, *, always: bool = False) -> str:
    """`= 6`, `= -1 EPIPE`, `= ?` (thread died inside); unless `always`, empty for a plain
    success of 0 or a write that moved everything it was given, which add nothing."""
    if sc.ret is None:
        return "= ?"
    if sc.errno:
        return f"= -1 {sc.errno}"
    if always:
        return f"= {sc.ret}"
    if sc.ret == 0 and sc.name not in ("read", "recv", "recvfrom", "recvmsg", "readv"):
        return ""
    if sc.name in _WRITES and f"({sc.ret} B)" in call_name(sc):
        return ""
    return f"= {sc.ret}"


def call_label(sc: Syscall) -> str:
    result = call_result(sc)
    return f"{call_name(sc)} {result}" if result else call_name(sc)
