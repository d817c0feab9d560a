"""One answer to "which connection, which side" per syscall, whoever asks.

The findings, the ladder (conn_events), the TUI's row index and the display filter
`conn == N` all read `Correlator.connection_of`. A reused 4-tuple is where separate rules
used to disagree: a call that ends just before the next connection on the same tuple
starts was put on the older connection by one view and on the newer one by another.
"""

from __future__ import annotations

from pathlib import Path

from helpers import free_port
from helpers.scenario import Scenario, run

from wirecorr.engine.findings._base import Context
from wirecorr.engine.ingest import diagnose
from wirecorr.engine.session import Session
from wirecorr.model import Packet
from wirecorr.views.tui.conn_events import connection_calls
from wirecorr.views.tui.display_filter import compile_filter
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.packets import LivePackets
from wirecorr.views.tui.rows import syscall_ref

# One thread plays both ends, so no thread or process events are needed. The client binds
# the same local port twice (SO_REUSEADDR) and closes with SO_LINGER 0: its RST frees the
# 4-tuple at once, and the next connect() on it follows the old socket's last calls by
# well under a millisecond.
REUSE = """
import socket, struct, sys
port, cport = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen()
for _ in range(3):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.bind(("127.0.0.1", cport))
    c.connect(("127.0.0.1", port))
    s, _ = srv.accept()
    c.sendall(b"hi")
    s.recv(10)
    s.sendall(b"bye")
    c.recv(10)
    c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    c.close()
    try:
        s.recv(10)
    except ConnectionResetError:
        pass
    s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    s.close()
"""


def _three_resets(packets: list[Packet]) -> bool:
    return sum(1 for p in packets if p.flags & 0x04) >= 3


def _scenario(tmp_path: Path) -> Scenario:
    port, cport = free_port(), free_port()
    return run(tmp_path, REUSE, [str(port), str(cport)], f"tcp port {port}", _three_resets)


def test_every_view_puts_a_call_on_the_same_connection_of_a_reused_tuple(tmp_path: Path) -> None:
    sc_run = _scenario(tmp_path)
    session = sc_run.session
    conns = [c for c in session.analyzer.connections if c.proto == "tcp"]
    assert len(conns) == 3 and len({(c.client_port, c.server_port) for c in conns}) == 1, "one 4-tuple, reused"

    engine = {sc.id: session.correlator.connection_of(sc.id) for sc in session.syscalls}
    ctx = Context(session)
    findings = {sc.id: ctx.conn_side(sc) for sc in session.syscalls}
    ladder: dict[int, tuple[int, int] | None] = dict.fromkeys(engine)
    for conn in conns:
        for call in connection_calls(session, conn.id):
            assert ladder[call.sc.id] is None, f"syscall {call.sc.id} is on two ladders"
            ladder[call.sc.id] = (conn.id, call.side)

    # The TUI index, fed the same events as a live trace would feed it.
    index = EventIndex(Session(), LivePackets())
    for pkt in sc_run.packets:
        index.add_packet(pkt)
    for sc in sorted(session.syscalls, key=lambda s: (s.end_ns, s.id)):
        index.add_syscall(sc)
    diagnose(index.session)
    index.flush()
    refs = {sc.id: syscall_ref(pos) for pos, sc in enumerate(index.calls)}
    tui = {sid: index.conn_of(ref) for sid, ref in refs.items()}
    filtered = {
        conn.id: {sid for sid, ref in refs.items() if compile_filter(f"conn == {conn.id}").predicate(index, ref)}
        for conn in conns
    }

    assert findings == engine
    assert ladder == engine
    assert tui == {sid: cs[0] if cs else None for sid, cs in engine.items()}
    for conn in conns:
        assert filtered[conn.id] == {sid for sid, cs in engine.items() if cs and cs[0] == conn.id}

    # And the answer is the right one: each connection has its own connect, accept, both
    # getsockopt calls and the client's close, whose RST is on that connection.
    table = session.analyzer.table
    for conn in conns:
        names = sorted(
            (sc.name, side) for sid, side in session.correlator.calls_of(conn.id) if (sc := session.syscall(sid))
        )
        for expected in (
            ("accept4", 1),
            ("close", 0),
            ("close", 1),
            ("connect", 0),
            ("getsockopt", 0),
            ("getsockopt", 1),
        ):
            assert expected in names, (conn.id, names)
    for sc in session.syscalls:
        for link in session.correlator.links_of(sc.id):
            for idx in link.packets:
                assert engine[sc.id] is not None and table.conn[idx] == engine[sc.id][0], (sc, link)
