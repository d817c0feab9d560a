"""Findings on real programs: each scenario is traced with the real Tracer while tcpdump
captures, and must yield its diagnosis — on the right connection, with evidence ids that
are the calls and packets that show it — and no other kind. A clean echo yields nothing
of severity warning or error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import FORK_ECHO, NAGLE, free_port, netns
from helpers.scenario import Scenario, run

from wirecorr.engine.findings import Thresholds, detect
from wirecorr.labs import refused, rst_on_close
from wirecorr.model import FIN, RST, SYN, Finding, Packet

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")


def count(mask: int, n: int) -> Callable[[list[Packet]], bool]:
    """A capture stop condition: n packets with a flag of mask are on disk."""
    return lambda ps: sum(1 for p in ps if p.flags & mask) >= n


def only(sc: Scenario, kind: str) -> list[Finding]:
    """The findings of `kind`, after checking that no other kind appeared."""
    assert sc.kinds() == {kind}, [(f.kind, f.message) for f in sc.findings]
    return sc.of_kind(kind)


def conn_of(sc: Scenario, local: str | None, remote: str | None) -> int:
    """The connection id of a socket's 4-tuple as the trace shows it."""
    for conn in sc.session.analyzer.connections:
        if {conn.client, conn.server} == {local, remote}:
            return conn.id
    raise AssertionError((local, remote))


def captured_whole(scenario: Callable[[], Scenario], tries: int = 3) -> Scenario:
    """Run a burst scenario until tcpdump reports no kernel drops: with packets missing,
    the findings rightly see half-connections, and the test would judge the capture."""
    for _ in range(tries):
        sc = scenario()
        if not sc.dropped:
            return sc
    pytest.fail(f"tcpdump's kernel buffer dropped packets in each of {tries} runs")


def fins_from(sc: Scenario, conn: int, side: int) -> list[int]:
    t = sc.session.analyzer.table
    indices = sc.session.analyzer.connections[conn].packet_indices
    return [i for i in indices if t.flags[i] & FIN and t.direction[i] == side]


# -- clean ----------------------------------------------------------------------------------


def test_clean_echo_has_no_warnings(tmp_path: Path) -> None:
    port = free_port()
    sc = run(tmp_path, FORK_ECHO, [str(port)], f"tcp port {port}", count(FIN, 2))
    assert sc.session.correlator.links
    assert [f for f in sc.findings if f.severity != "info"] == []


# -- CLOSE_WAIT leak ---------------------------------------------------------------------------

LEAK = """
import os, socket, sys, time
port = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
pid = os.fork()
if pid == 0:
    srv.close()
    for _ in range(2):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"ping")
        c.close()
    os._exit(0)
kept = []
for _ in range(2):
    s, _ = srv.accept()
    while s.recv(100):
        pass
    kept.append(s)  # EOF seen, never closed: CLOSE_WAIT until the process exits
os.waitpid(pid, 0)
time.sleep(1.2)
os._exit(0)
"""


def test_close_wait_leak_on_the_server(tmp_path: Path) -> None:
    port = free_port()
    sc = run(tmp_path, LEAK, [str(port)], f"tcp port {port}", count(FIN, 4))
    found = only(sc, "close_wait_leak")
    accepts = sc.calls_named("accept4", lambda c: c.errno is None)
    assert len(found) == len(accepts) == 2
    for f, accept in zip(found, accepts, strict=True):
        assert accept.ret_fdinfo is not None
        conn = conn_of(sc, accept.ret_fdinfo.local, accept.ret_fdinfo.remote)
        assert f.connection == conn and f.severity == "warning"
        eof = sc.call("recvfrom", lambda c, a=accept: c.fd == a.ret and c.ret == 0)
        assert f.evidence["syscalls"] == sorted([accept.id, eof.id])
        # The client's FIN that put the server in CLOSE_WAIT, and the server's FIN at exit.
        assert f.evidence["packets"] == [fins_from(sc, conn, 0)[0], fins_from(sc, conn, 1)[0]]
        assert f.evidence["connections"] == [conn]
        assert f"never closed fd {accept.ret}" in f.message
        assert "FIN_WAIT_2" in f.message and f.message.startswith("server 127.0.0.1:")


# -- TIME_WAIT and ephemeral ports -------------------------------------------------------------

MANY = """
import os, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(256)
done_r, done_w = os.pipe()
pid = os.fork()
if pid == 0:
    import select
    os.close(done_w)
    while True:
        ready, _, _ = select.select([srv, done_r], [], [])
        if srv in ready:
            s, _ = srv.accept()
            while s.recv(100):
                pass
            s.close()  # after the client's FIN: the client is the active closer
        else:  # the client is done and nothing waits in the accept queue (no reset at exit)
            os._exit(0)
os.close(done_r)
srv.close()
failed = 0
for _ in range(n):
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", port))
    except OSError:
        failed += 1
        c.close()
        if failed == 3:
            break
        continue
    c.send(b"x")
    c.close()
os.close(done_w)
os.waitpid(pid, 0)
"""


@pytest.mark.netns
def test_time_wait_accumulates_on_the_client(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    port = free_port()

    def scenario() -> Scenario:
        # A namespace of its own: the host's loopback may hold TIME_WAIT sockets of earlier runs,
        # which Linux reuses on loopback (tcp_tw_reuse=2) and which then draw resets.
        with netns() as net:
            return run(tmp_path, MANY, [str(port), "200"], f"tcp port {port}", count(FIN, 400), timeout=10, ns=net.a)

    sc = captured_whole(scenario)
    (found,) = only(sc, "time_wait_accumulation")
    conns = sc.session.analyzer.connections
    assert len(conns) == 200 and all(c.active_closer == "client" for c in conns)
    assert found.evidence["connections"] == [c.id for c in conns]
    assert found.evidence["packets"] == [fins_from(sc, c.id, 0)[0] for c in conns]
    closes = sc.calls_named("close", lambda c: c.fdinfo is not None and c.fdinfo.remote == f"127.0.0.1:{port}")
    assert found.evidence["syscalls"] == sorted(c.id for c in closes) and len(closes) == 200
    low, high = open_range()
    assert found.message.startswith(f"client 127.0.0.1 actively closed 200 connections to 127.0.0.1:{port}")
    # Now and then a stray RST after the close ends a client's TIME_WAIT early (see
    # test_rst_after_an_orderly_close_is_no_finding): that port is free again.
    early = sum(1 for c in conns if c.client_state[-1][2] == "CLOSED")
    assert f"{200 - early} of the {high - low + 1} ports in {low}-{high} taken" in found.message
    assert (f"{early} of them left TIME_WAIT early" in found.message) == (early > 0)


def open_range() -> tuple[int, int]:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = (int(x) for x in f.read().split())
    return low, high


@pytest.mark.netns
def test_ephemeral_port_exhaustion_in_a_namespace(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    port = 5000
    sysctls = {"net.ipv4.ip_local_port_range": "40000 40009", "net.ipv4.tcp_tw_reuse": "0"}

    def scenario() -> Scenario:
        with netns(sysctls) as net:
            return run(tmp_path, MANY, [str(port), "20"], f"tcp port {port}", count(FIN, 20), ns=net.a)

    sc = captured_whole(scenario)
    failures = sc.calls_named("connect", lambda c: c.errno == "EADDRNOTAVAIL")
    assert len(failures) == 3
    conns = sc.session.analyzer.connections
    assert len(conns) == 10 and {c.client_port for c in conns} == set(range(40000, 40010))
    # Analysed with this host's port range, 10 TIME_WAITs are no accumulation; the failures are.
    (found,) = only(sc, "ephemeral_port_exhaustion")
    assert found.severity == "error"
    assert set(found.evidence["syscalls"]) >= {c.id for c in failures}
    assert found.evidence["connections"] == [c.id for c in conns]
    assert "failed with EADDRNOTAVAIL 3 time(s)" in found.message
    assert "ports seen: 40000-40009" in found.message
    # With the namespace's range, the 10 TIME_WAITs fill it: both diagnoses. How many of the
    # 10 had reached TIME_WAIT when connect() failed depends on the peer's pace.
    # With the namespace's range, the 10 TIME_WAITs fill it: both diagnoses.
    findings = detect(sc.session, Thresholds(port_range=(40000, 40009)))
    exhausted = next(f for f in findings if f.kind == "ephemeral_port_exhaustion")
    assert "at the first failure all 10 ports of 40000-40009 were held by connections to 127.0.0.1:5000" in (
        exhausted.message
    )
    assert sorted(f.kind for f in findings) == ["ephemeral_port_exhaustion", "time_wait_accumulation"]
    tw = next(f for f in findings if f.kind == "time_wait_accumulation")
    assert "10 of the 10 ports in 40000-40009 taken, 0 left" in tw.message
    assert tw.evidence["connections"] == [c.id for c in conns]


# -- EMFILE -----------------------------------------------------------------------------------

EMFILE = """
import os, resource, socket, sys
port = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(16)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    srv.close()
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    os.read(r, 1)  # until the server is gone
    for c in conns:
        c.close()
    os._exit(0)
os.close(r)
def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
free = [fd for fd in range(64) if not is_open(fd)][:4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (free[-1] + 1, hard))  # room for exactly 4 more descriptors
kept, failures = [], 0
while failures < 3:
    try:
        kept.append(srv.accept()[0])  # never closed
    except OSError:
        failures += 1
os.close(w)
os.waitpid(pid, 0)
"""


def test_emfile_with_the_sockets_that_led_to_it(tmp_path: Path) -> None:
    port = free_port()
    sc = run(tmp_path, EMFILE, [str(port)], f"tcp port {port}", count(FIN, 8))
    (found,) = only(sc, "fd_exhaustion")
    failures = sc.calls_named("accept4", lambda c: c.errno == "EMFILE")
    accepted = sc.calls_named("accept4", lambda c: c.errno is None)
    listener = sc.call("socket", lambda c: c.pid == failures[0].pid)
    assert len(failures) == 3 and len(accepted) == 4
    assert found.severity == "error"
    assert found.evidence["syscalls"] == sorted(c.id for c in [*failures, *accepted, listener])
    assert found.evidence["connections"] == sorted(
        conn_of(sc, c.ret_fdinfo.local, c.ret_fdinfo.remote) for c in accepted if c.ret_fdinfo
    )
    assert f"accept4() failed with EMFILE 3 time(s) in pid {failures[0].pid}" in found.message
    assert "opened 5 socket(s) and closed 0, 5 still open" in found.message


def test_connections_never_accepted_are_told_apart() -> None:
    """The fd-leak lab's recording (RLIMIT_NOFILE 16, 20 clients): 11 connections accepted,
    9 left in the accept queue once accept4 failed with EMFILE, reset when the server went."""
    from wirecorr.engine.ingest import diagnose, load_capture
    from wirecorr.engine.session import Session

    session = Session()
    load_capture(session, str(Path(__file__).parent.parent / "captures" / "lab-fd-leak.pcapng"))
    diagnose(session)
    table = session.analyzer.table
    accepted = {table.conn[lk.packets[0]] for lk in session.correlator.links if lk.kind == "accept-ack"}
    conns = [c for c in session.analyzer.connections if c.proto == "tcp"]
    assert len(conns) == 20 and len(accepted) == 11
    listen = next(sc for sc in session.syscalls if sc.name == "listen")
    resets = [f for f in session.findings if f.kind == "connection_reset"]
    assert len(resets) == 9
    for f in resets:
        assert f.connection not in accepted
        assert "never accepted" in f.message and "accept queue" in f.message
        assert listen.id in f.evidence["syscalls"]
    leaks = {f.connection: f for f in session.findings if f.kind == "close_wait_leak"}
    assert len(leaks) == 20
    for conn, f in leaks.items():
        assert ("never accepted" in f.message) == (conn not in accepted), f.message


# -- EAGAIN storm ------------------------------------------------------------------------------

SPIN = """
import os, socket, sys, time
port = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.create_connection(("127.0.0.1", port))
s, _ = srv.accept()
c.setblocking(False)
spins = 0
while spins < 300:  # busy-wait: no poll between tries
    try:
        c.recv(100)
        break
    except BlockingIOError:
        spins += 1
s.sendall(b"done")
c.setblocking(True)
assert c.recv(100) == b"done"
c.close()
s.close()
"""


def test_eagain_storm_on_a_spinning_reader(tmp_path: Path) -> None:
    port = free_port()
    sc = run(tmp_path, SPIN, [str(port)], f"tcp port {port}", count(FIN, 2))
    (found,) = only(sc, "eagain_storm")
    spins = sc.calls_named("recvfrom", lambda c: c.errno == "EAGAIN")
    assert len(spins) == 300
    assert found.evidence["syscalls"] == [c.id for c in spins]
    connect = sc.call("connect")
    assert connect.fdinfo is not None
    assert found.connection == conn_of(sc, connect.fdinfo.local, connect.fdinfo.remote)
    assert f"recvfrom(fd {spins[0].fd}) (tid {spins[0].tid}) got EAGAIN 300 times" in found.message


# -- zero window -----------------------------------------------------------------------------------

SLOW_READER = """
import os, select, socket, sys, time
port = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
srv.bind(("127.0.0.1", port))
srv.listen(1)
pid = os.fork()
if pid == 0:
    s, _ = srv.accept()
    time.sleep(0.5)  # the app stops reading: its receive buffer fills
    while s.recv(65536):
        pass
    s.close()
    os._exit(0)
srv.close()
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)  # fills soon after the window shuts
c.connect(("127.0.0.1", port))
c.setblocking(False)
left = 300_000
chunk = b"z" * 16384
while left > 0:
    try:
        left -= c.send(chunk[: min(len(chunk), left)])
    except BlockingIOError:
        p = select.poll()
        p.register(c, select.POLLOUT)
        p.poll(2000)
c.close()
os.waitpid(pid, 0)
"""


def test_zero_window_names_the_slow_reader_and_the_stuck_writer(tmp_path: Path) -> None:
    port = free_port()
    sc = run(tmp_path, SLOW_READER, [str(port)], f"tcp port {port}", count(FIN, 2))
    # The tiny receive buffer makes the receiver drop a segment at times; its retransmission is
    # on the wire then, and must be reported as what it is.
    t = sc.session.analyzer.table
    resent = [p.index for p in sc.packets if t.analysis[p.index] & 0x0001]
    assert sc.kinds() == ({"zero_window", "retransmission"} if resent else {"zero_window"}), sc.findings
    if resent:
        assert set(resent) <= set(sc.of_kind("retransmission")[0].evidence["packets"])
    (found,) = sc.of_kind("zero_window")
    accept = sc.call("accept4")
    assert accept.ret_fdinfo is not None
    conn = conn_of(sc, accept.ret_fdinfo.local, accept.ret_fdinfo.remote)
    assert found.connection == conn
    zeros = [i for i in found.evidence["packets"] if t.window[i] == 0]
    assert zeros and all(t.direction[i] == 1 for i in zeros)
    # The writer's calls the full window held up before the reader read again: partial (the
    # buffer filled mid-call) or EAGAIN.
    first_read = sc.call("recvfrom", lambda c: c.pid == accept.pid and c.errno is None)
    held = sc.calls_named(
        "sendto",
        lambda c: c.enter_ns < first_read.enter_ns and (c.errno == "EAGAIN" or (c.ret or 0) < c.args["count"]),
    )
    assert held and {c.id for c in held} <= set(found.evidence["syscalls"])
    poll = sc.call("poll", lambda c: c.enter_ns > held[0].enter_ns)
    assert poll.id in found.evidence["syscalls"]
    assert first_read.id in found.evidence["syscalls"]
    assert found.message.startswith(f"the server {accept.ret_fdinfo.local} advertised a zero window")
    assert f"last: pid {accept.pid} accept4(fd {accept.fd}), no read before it" in found.message
    assert f"next pid {accept.pid} recvfrom(fd {accept.ret}) at" in found.message and "a slow reader" in found.message
    how = "returned EAGAIN" if held[0].errno else f"was partial: {held[0].ret} of 16384 bytes"
    assert f"the client's pid {held[0].pid} sendto(fd {held[0].fd}) {how}, then waited" in found.message


# -- Nagle / delayed ACK -------------------------------------------------------------------------


def test_nagle_stall_behind_a_delayed_ack(tmp_path: Path) -> None:
    port = free_port()
    sc = run(tmp_path, NAGLE, [str(port)], f"tcp port {port}", count(FIN, 2))
    (found,) = only(sc, "nagle_stall")
    connect = sc.call("connect")
    assert connect.fdinfo is not None
    assert found.connection == conn_of(sc, connect.fdinfo.local, connect.fdinfo.remote)
    held = [sc.session.correlator.links[i] for i in found.evidence["links"]]
    assert held and all(lk.kind == "write-data" and (lk.delay_ns or 0) >= 30_000_000 for lk in held)
    assert found.evidence["syscalls"] == sorted(lk.syscall for lk in held)
    t = sc.session.analyzer.table
    assert any(t.direction[i] == 1 and not t.seglen[i] for i in found.evidence["packets"])
    assert "Nagle held each until the server's ACK" in found.message and "TCP_NODELAY is not set" in found.message


# -- resets ------------------------------------------------------------------------------------------

# The rst-on-close lab's own program: close() with 100 bytes unread.
RST_ON_CLOSE = rst_on_close.PROGRAM


def test_close_with_unread_data_is_an_rst_finding(tmp_path: Path) -> None:
    port = free_port()
    sc = run(tmp_path, RST_ON_CLOSE, [str(port)], f"tcp port {port}", count(RST, 1))
    (found,) = only(sc, "rst_on_close")
    accept = sc.call("accept4")
    close = sc.call("close", lambda c: c.fd == accept.ret and c.pid == accept.pid)
    reset = sc.call("recvfrom", lambda c: c.errno == "ECONNRESET")
    rst = [p.index for p in sc.packets if p.flags & RST]
    assert len(rst) == 1 and found.evidence["packets"] == rst
    assert found.evidence["syscalls"] == sorted([close.id, reset.id])
    kinds = {sc.session.correlator.links[i].kind for i in found.evidence["links"]}
    assert kinds == {"close-rst", "reset"}
    assert f"close(fd {accept.ret}) on the server" in found.message
    assert "with 100 received byte(s) unread (read 0 of 100)" in found.message
    assert "failed with ECONNRESET" in found.message


ABORT = """
import socket, struct, sys
port = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.create_connection(("127.0.0.1", port))
s, _ = srv.accept()
c.sendall(b"hello")
assert s.recv(100) == b"hello"
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()  # linger 0: an abort, RST instead of FIN, with nothing left unread
try:
    c.recv(100)
except ConnectionResetError:
    pass
c.close()
"""


def test_abort_with_linger_zero_names_the_setsockopt(tmp_path: Path) -> None:
    port = free_port()
    sc = run(tmp_path, ABORT, [str(port)], f"tcp port {port}", count(RST, 1))
    (found,) = only(sc, "rst_on_close")
    linger = sc.call("setsockopt", lambda c: c.args.get("optname") == "SO_LINGER")
    accept = sc.call("accept4")
    close = sc.call("close", lambda c: c.fd == accept.ret and c.pid == accept.pid)
    reset = sc.call("recvfrom", lambda c: c.errno == "ECONNRESET")
    assert found.evidence["syscalls"] == sorted([linger.id, close.id, reset.id])
    assert found.evidence["packets"] == [p.index for p in sc.packets if p.flags & RST]
    assert f"close(fd {accept.ret}) on the server" in found.message
    assert f"setsockopt(fd {accept.ret}) had set SO_LINGER with a 0 s timeout" in found.message
    # Everything sent had been read: nothing may be called unread.
    assert "unread" not in found.message and "failed with ECONNRESET" in found.message


REFUSED = refused.PROGRAM


def test_refused_connect(tmp_path: Path) -> None:
    port = free_port()
    sc = run(tmp_path, REFUSED, [str(port)], f"tcp port {port}", count(RST, 1))
    (found,) = only(sc, "connection_refused")
    connect = sc.call("connect")
    assert connect.errno == "ECONNREFUSED"
    syn = [p.index for p in sc.packets if p.flags & SYN]
    rst = [p.index for p in sc.packets if p.flags & RST]
    assert found.connection == 0 and found.evidence["packets"] == [*syn, *rst]
    assert found.evidence["syscalls"] == [connect.id]
    assert f"to 127.0.0.1:{port} was refused" in found.message


# -- keep-alive ----------------------------------------------------------------------------------

KEEPALIVE = """
import socket, sys, time
port = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
c.connect(("127.0.0.1", port))
s, _ = srv.accept()
time.sleep(2.5)  # idle: probes after 1 s, then every 1 s
c.close()
s.close()
"""


def test_keepalive_probes_are_info(tmp_path: Path) -> None:
    port = free_port()
    sc = run(tmp_path, KEEPALIVE, [str(port)], f"tcp port {port}", count(FIN, 2))
    (found,) = only(sc, "keepalive")
    assert found.severity == "info" and found.connection == 0
    t = sc.session.analyzer.table
    probes = [i for i in found.evidence["packets"] if t.direction[i] == 0]
    assert len(probes) == 2
    setups = sc.calls_named("setsockopt", lambda c: "KEEP" in str(c.args.get("optname")))
    assert found.evidence["syscalls"] == [c.id for c in setups] and len(setups) == 3
    assert "sent 2 keep-alive probe(s)" in found.message and "2 answered by the server" in found.message


# -- a RST after an orderly close ----------------------------------------------------------------


def test_rst_after_an_orderly_close_is_no_finding() -> None:
    """A real loopback capture (from the TIME_WAIT scenario): both FINs exchanged and
    acknowledged, then a late ACK of the closed end draws the TIME_WAIT end's ACK, which the
    closed end answers with RST. tshark is the oracle for the packet order."""
    from capture_oracle import tshark_rows

    from wirecorr.engine.ingest import diagnose, load_capture
    from wirecorr.engine.session import Session

    path = Path(__file__).parent.parent / "captures" / "stray-rst-after-close.pcap"
    rows = tshark_rows(path)
    flags = [int(r["tcp.flags"][0], 16) for r in rows]
    fins = [i for i, f in enumerate(flags) if f & FIN]
    rsts = [i for i, f in enumerate(flags) if f & RST]
    assert len(fins) == 2 and rsts == [len(rows) - 1] and fins[1] < rsts[0] - 1
    session = Session()
    load_capture(session, str(path))
    diagnose(session)
    (conn,) = session.analyzer.connections
    assert conn.reset_by == "server" and conn.active_closer == "client"
    assert session.findings == []
    # The RST ended the client's TIME_WAIT (Linux, RFC 1337): a close, but no port held.
    (tw,) = detect(session, Thresholds(time_wait_min=1))
    assert tw.kind == "time_wait_accumulation" and tw.evidence["connections"] == [0]
    assert " 0 of the " in tw.message and "1 of them left TIME_WAIT early, reset by the peer" in tw.message


def test_a_finding_and_the_report_write_one_delay_alike() -> None:
    """One duration formatter: the Nagle finding names its writes' delays as the report's
    link list shows them (it said "43.5 ms" where the report said "43.515 ms")."""
    import io

    from wirecorr.engine.ingest import analyze_file
    from wirecorr.model import fmt_ns
    from wirecorr.views import text_report

    session = analyze_file(str(Path(__file__).parent.parent / "captures" / "lab-nagle.pcapng"))
    report = io.StringIO()
    text_report.write(session, report, notable=100)
    nagle = next(f for f in session.findings if f.kind == "nagle_stall")
    delays = [session.correlator.links[i].delay_ns or 0 for i in nagle.evidence["links"]]
    for delay in (min(delays), max(delays)):
        assert fmt_ns(delay) in nagle.message and fmt_ns(delay) in report.getvalue()
