"""The syscalls of one connection and the side (client/server) that made each.

The engine answers which connection and side a call belongs to (`Correlator.connection_of`,
docs/architecture.md): that includes the calls that moved no packet (`getsockopt`, a
`close()` whose FIN a `shutdown()` already sent, a blocked `read()`), and on a reused
4-tuple it is the same answer the findings and the filter `conn == N` get.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wirecorr.engine.session import Session
from wirecorr.model import Link, Syscall
from wirecorr.vocab import WRITES

CLIENT_SIDE = 0
SERVER_SIDE = 1

# Link kinds whose packets were sent by the syscall's own socket; every other kind
# consumed packets from the peer.
CAUSE_KINDS = frozenset({"connect-syn", "write-data", "shutdown-fin", "close-fin", "close-rst", "send-datagram"})


@dataclass(slots=True)
class ConnCall:
    """One syscall on a connection's socket: which side made it and its links."""

    sc: Syscall
    side: int
    links: list[Link] = field(default_factory=list)


def connection_calls(session: Session, conn_id: int) -> list[ConnCall]:
    """Every syscall on connection `conn_id`'s sockets, by entry time."""
    correlator = session.correlator
    out = []
    for sid, side in correlator.calls_of(conn_id):
        sc = session.syscall(sid)
        if sc is not None:
            out.append(ConnCall(sc, side, correlator.links_of(sid)))
    out.sort(key=lambda c: (c.sc.enter_ns, c.sc.id))
    return out


def call_name(sc: Syscall) -> str:
    """The call as a ladder box shows it: `write(6 B)`, `shutdown(SHUT_WR)`, `read()`.

    Only the argument that explains the packets is kept (bytes offered for writes, `how`
    for shutdown); the descriptor is the same for every call of one side.
    """
    if sc.name in WRITES:
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
    if sc.name in WRITES and f"({sc.ret} B)" in call_name(sc):
        return ""
    return f"= {sc.ret}"


def call_label(sc: Syscall) -> str:
    result = call_result(sc)
    return f"{call_name(sc)} {result}" if result else call_name(sc)
