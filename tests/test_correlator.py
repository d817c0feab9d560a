"""The correlator on real programs: real tcpdump on lo, real tracer (or strace), truth from sequence arithmetic.

The expected pairings are computed here independently of the correlator: a write of n
bytes on a socket owns the next n stream offsets of its direction, and the segments that
carry them are the ones whose relative sequence range overlaps those offsets. Everything
else (which packet is a SYN, a FIN, an RST) is read from the packet table.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import FORK_ECHO, NAGLE, free_port, netns
from helpers.scenario import Event, capture_traced, script

from wirecorr.engine.correlator import Correlator
from wirecorr.engine.socket_map import endpoint_key
from wirecorr.engine.tcp_analysis import PacketAnalyzer
from wirecorr.labs import refused, rst_on_close, sendmmsg
from wirecorr.model import ACK, FIN, RST, SYN, FdInfo, Link, Packet, Syscall

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")

PY = sys.executable
TCP_WRITES = {"write", "send", "sendto", "sendmsg", "writev"}
TCP_READS = {"read", "recv", "recvfrom", "recvmsg", "readv"}


@dataclass
class Run:
    packets: list[Packet]
    events: list[Event]
    analyzer: PacketAnalyzer = field(default_factory=PacketAnalyzer)
    corr: Correlator | None = None

    @property
    def calls(self) -> list[Syscall]:
        return [e for e in self.events if isinstance(e, Syscall)]

    def links_of(self, sc: Syscall, kind: str | None = None) -> list[Link]:
        assert self.corr is not None
        return [lk for lk in self.corr.links if lk.syscall == sc.id and (kind is None or lk.kind == kind)]

    def link(self, sc: Syscall, kind: str) -> Link:
        found = self.links_of(sc, kind)
        assert len(found) == 1, (sc, kind, self.links_of(sc))
        return found[0]


def correlate(packets: list[Packet], events: list[Event], order: str = "packets-first") -> Run:
    """Feed one capture and one trace in the given interleaving; the result must not depend on it."""
    run = Run(packets, events)
    an = run.analyzer
    corr = run.corr = Correlator(an)

    def feed_packet(p: Packet) -> None:
        an.feed(p)
        corr.on_packet(p)

    def feed_event(e: Event) -> None:
        if isinstance(e, Syscall):
            corr.on_syscall(e)
        else:
            corr.on_process(*e)

    if order == "packets-first":
        for p in packets:
            feed_packet(p)
        for e in events:
            feed_event(e)
    elif order == "syscalls-first":
        for e in events:
            feed_event(e)
        for p in packets:
            feed_packet(p)
    else:  # as a live session sees them: each packet before the first call that ended after it
        pending = iter(packets)
        nxt = next(pending, None)
        for e in events:
            if isinstance(e, Syscall):
                while nxt is not None and nxt.ts_ns <= e.end_ns:
                    feed_packet(nxt)
                    nxt = next(pending, None)
            feed_event(e)
        while nxt is not None:
            feed_packet(nxt)
            nxt = next(pending, None)
    corr.finish()
    an.finish()
    return run


@pytest.fixture
def sliced_lo() -> Iterator[str]:
    """A namespace whose lo sends one MSS per packet (gso_max_segs 1), as a NIC puts them on the wire.

    The host's lo passes whole GSO super-packets to tcpdump, so MSS slicing is invisible there.
    """
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("needs root and iproute2")
    with netns() as net:
        yield net.a


def count_flags(mask: int, n: int) -> Callable[[list[Packet]], bool]:
    return lambda ps: sum(1 for p in ps if p.flags & mask) >= n


# -- truth from sequence arithmetic -----------------------------------------------------------


def conn_and_dir(run: Run, local: str, remote: str) -> tuple[int, int]:
    """Connection id of a socket's 4-tuple and the direction its writes travel in."""
    lo, re_ = endpoint_key(local), endpoint_key(remote)
    for conn in run.analyzer.connections:
        c, s = (conn.client_addr, conn.client_port), (conn.server_addr, conn.server_port)
        if conn.proto == "tcp" and {c, s} == {lo, re_}:
            return conn.id, 0 if c == lo else 1
    raise AssertionError(f"no connection {local} <-> {remote}")


def segments_over(run: Run, conn: int, d: int, start: int, end: int) -> set[int]:
    t = run.analyzer.table
    out = set()
    for i in run.analyzer.connections[conn].packet_indices:
        if t.direction[i] == d and t.seglen[i]:
            s = t.rel_seq[i] - 1
            if s < end and s + t.seglen[i] > start:
                out.add(i)
    return out


def data_truth(run: Run) -> dict[int, set[int]]:
    """syscall id → the segments carrying its bytes, for every TCP data call that moved bytes."""
    offsets: dict[tuple[int, int, bool], int] = {}
    truth: dict[int, set[int]] = {}
    for sc in run.calls:
        info = sc.fdinfo
        if info is None or info.kind != "tcp" or not info.remote or not sc.ret or sc.ret < 0:
            continue
        write = sc.name in TCP_WRITES
        if not write and sc.name not in TCP_READS:
            continue
        conn, d = conn_and_dir(run, info.local or "", info.remote)
        d = d if write else 1 - d
        k = offsets.get((conn, d, write), 0)
        offsets[(conn, d, write)] = k + sc.ret
        truth[sc.id] = segments_over(run, conn, d, k, k + sc.ret)
    return truth


def check_data_links(run: Run) -> dict[int, set[int]]:
    truth = data_truth(run)
    assert truth
    for sc in run.calls:
        if sc.id in truth:
            kind = "write-data" if sc.name in TCP_WRITES else "read-data"
            assert set(run.link(sc, kind).packets) == truth[sc.id], sc
    return truth


def check_same_connection(run: Run) -> None:
    """No link joins a syscall to a packet of a connection its socket is not on."""
    assert run.corr is not None
    by_id = {sc.id: sc for sc in run.calls}
    table = run.analyzer.table
    for lk in run.corr.links:
        sc = by_id[lk.syscall]
        info = sc.ret_fdinfo if sc.name in ("accept", "accept4") else sc.fdinfo
        if not lk.packets or info is None or not info.local or not info.remote:
            continue
        conn, _ = conn_and_dir(run, info.local, info.remote)
        assert {table.conn[i] for i in lk.packets} == {conn}, lk


def check_all_labelled(run: Run) -> None:
    assert run.corr is not None
    labels = run.corr.labels()
    for p in run.packets:
        lab = labels.get(p.index)
        assert lab, (p.index, lab)
        if isinstance(lab, list):
            assert all(p.index in run.corr.links[i].packets for i in lab)


def tuple_of(info: FdInfo | None) -> tuple[str, str]:
    assert info is not None and info.local and info.remote, info
    return info.local, info.remote


def first(run: Run, name: str, pred: Callable[[Syscall], bool] = lambda sc: True) -> Syscall:
    return next(sc for sc in run.calls if sc.name == name and pred(sc))


def packets_with(run: Run, conn: int, d: int, mask: int, absent: int = 0) -> list[int]:
    t = run.analyzer.table
    return [
        i
        for i in run.analyzer.connections[conn].packet_indices
        if t.direction[i] == d and t.flags[i] & mask == mask and not t.flags[i] & absent
    ]


def key(run: Run) -> list[tuple[str, int, tuple[int, ...], int | None, str | None]]:
    assert run.corr is not None
    return sorted((lk.kind, lk.syscall, tuple(sorted(lk.packets)), lk.delay_ns, lk.note) for lk in run.corr.links)


# -- scenarios ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Packet], list[Event]]:
    tmp = tmp_path_factory.mktemp("echo")
    port = free_port()
    return capture_traced(
        tmp, [PY, script(tmp, "echo.py", FORK_ECHO), str(port)], f"tcp port {port}", count_flags(FIN, 2)
    )


def test_echo_links_are_byte_exact(echo: tuple[list[Packet], list[Event]]) -> None:
    run = correlate(*echo)
    truth = check_data_links(run)
    # Both sides wrote and read each message: 3 writes + ≥3 reads per side.
    assert sum(1 for sc in run.calls if sc.id in truth and sc.name in TCP_WRITES) == 6
    # Every data byte written is linked to exactly the segments carrying it, and every data
    # segment to exactly one write and (this trace has both ends) at least one read.
    t = run.analyzer.table
    assert run.corr is not None
    for i in range(len(t)):
        if t.seglen[i]:
            kinds = [run.corr.links[j].kind for j in run.corr.packet_links[i]]
            assert kinds.count("write-data") == 1 and kinds.count("read-data") >= 1, (i, kinds)
    check_same_connection(run)
    check_all_labelled(run)


def test_echo_handshake_and_close(echo: tuple[list[Packet], list[Event]]) -> None:
    run = correlate(*echo)
    t = run.analyzer.table
    connect = first(run, "connect")
    conn, _ = conn_and_dir(run, *tuple_of(connect.fdinfo))
    syn = packets_with(run, conn, 0, SYN, ACK)
    synack = packets_with(run, conn, 1, SYN | ACK)
    final_ack = next(i for i in run.analyzer.connections[conn].packet_indices if i > synack[0] and t.direction[i] == 0)
    assert len(syn) == 1 and len(synack) == 1

    link = run.link(connect, "connect-syn")
    assert link.packets == syn
    assert connect.exit_ns is not None and connect.enter_ns <= t.ts_ns[syn[0]] <= connect.exit_ns
    assert link.delay_ns == t.ts_ns[syn[0]] - connect.enter_ns
    assert sorted(run.link(connect, "connect-established").packets) == [synack[0], final_ack]

    accept = first(run, "accept4")
    link = run.link(accept, "accept-ack")
    assert sorted(link.packets) == [syn[0], synack[0], final_ack]
    assert link.delay_ns is not None and link.delay_ns >= 0
    assert accept.exit_ns is not None and link.delay_ns == accept.exit_ns - t.ts_ns[final_ack]

    client_fin = packets_with(run, conn, 0, FIN)
    server_fin = packets_with(run, conn, 1, FIN)
    assert run.link(first(run, "shutdown"), "shutdown-fin").packets == client_fin
    eofs = [sc for sc in run.calls if sc.name in TCP_READS and sc.ret == 0 and sc.fdinfo and sc.fdinfo.kind == "tcp"]
    assert len(eofs) == 2
    for sc in eofs:
        peer_fin = server_fin if sc.pid == connect.pid else client_fin
        assert run.link(sc, "eof-fin").packets == peer_fin
    closes = {sc.pid: sc for sc in run.calls if sc.name == "close" and sc.fdinfo and sc.fdinfo.remote}
    assert run.link(closes[accept.pid], "close-fin").packets == server_fin
    # The client's FIN left with shutdown(); its close() puts nothing more on the wire.
    client_close = run.link(closes[connect.pid], "close-fin")
    assert client_close.packets == [] and "shutdown" in (client_close.note or "")
    # The client closed first: its ACK of the server's FIN is sent from TIME_WAIT.
    last_ack = max(run.analyzer.connections[conn].packet_indices)
    assert t.direction[last_ack] == 0 and run.corr is not None
    assert run.corr.label(last_ack) == "time-wait-ack"
    # Closing the listening socket (inherited by the server child) puts nothing on the wire.
    listen_close = first(
        run, "close", lambda sc: sc.fdinfo is not None and sc.fdinfo.remote is None and sc.fdinfo.kind == "tcp"
    )
    assert not run.links_of(listen_close)


def test_echo_same_links_in_any_order(echo: tuple[list[Packet], list[Event]]) -> None:
    """Live (interleaved) and replay (packets or syscalls first) give the same links."""
    base = key(correlate(*echo))
    assert key(correlate(*echo, order="syscalls-first")) == base
    assert key(correlate(*echo, order="live")) == base


def test_echo_from_strace_log(tmp_path: Path) -> None:
    """The strace-log source: fork seen as clone(), connect's local port only from the next call."""
    port = free_port()
    packets, events = capture_traced(
        tmp_path,
        [PY, script(tmp_path, "echo.py", FORK_ECHO), str(port)],
        f"tcp port {port}",
        count_flags(FIN, 2),
        strace=True,
    )
    run = correlate(packets, events)
    check_data_links(run)
    check_same_connection(run)
    check_all_labelled(run)
    connect = first(run, "connect")
    assert len(run.link(connect, "connect-syn").packets) == 1
    assert len(run.link(first(run, "accept4"), "accept-ack").packets) == 3


MSS = """
import socket, sys
port = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.socket()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)
c.connect(("127.0.0.1", port))
s, _ = srv.accept()
c.sendall(b"m" * 5000)
got = 0
while got < 5000:
    got += len(s.recv(65536))
c.close()
s.close()
"""


@pytest.mark.netns
def test_one_write_many_segments(tmp_path: Path, sliced_lo: str) -> None:
    port = 5000
    run = correlate(
        *capture_traced(
            tmp_path,
            [PY, script(tmp_path, "mss.py", MSS), str(port)],
            f"tcp port {port}",
            count_flags(FIN, 2),
            netns=sliced_lo,
        )
    )
    check_data_links(run)
    write = first(run, "sendto", lambda sc: sc.ret == 5000)
    link = run.link(write, "write-data")
    t = run.analyzer.table
    assert len(link.packets) >= 5
    assert sum(t.seglen[i] for i in link.packets) == 5000
    assert all(t.seglen[i] <= 1000 for i in link.packets)
    assert link.delay_ns == min(t.ts_ns[i] for i in link.packets) - write.enter_ns
    check_same_connection(run)


def test_small_writes_coalesced_by_nagle(tmp_path: Path) -> None:
    port = free_port()
    run = correlate(
        *capture_traced(
            tmp_path, [PY, script(tmp_path, "nagle.py", NAGLE), str(port)], f"tcp port {port}", count_flags(FIN, 2)
        )
    )
    check_data_links(run)
    assert run.corr is not None
    writes = {lk.id for lk in run.corr.links if lk.kind == "write-data"}
    shared = [i for i, ids in run.corr.packet_links.items() if len(writes.intersection(ids)) >= 2]
    assert shared, "no segment carried bytes of two writes"
    check_same_connection(run)
    check_all_labelled(run)


# The rst-on-close lab's own program: close() with 100 bytes unread.
RST_ON_CLOSE = rst_on_close.PROGRAM


def test_close_with_unread_data_resets(tmp_path: Path) -> None:
    port = free_port()
    run = correlate(
        *capture_traced(
            tmp_path, [PY, script(tmp_path, "rst.py", RST_ON_CLOSE), str(port)], f"tcp port {port}", count_flags(RST, 1)
        )
    )
    accept = first(run, "accept4")
    conn, d = conn_and_dir(run, *tuple_of(accept.ret_fdinfo))
    rst = packets_with(run, conn, d, RST)
    assert len(rst) == 1
    close = first(run, "close", lambda sc: sc.pid == accept.pid and sc.fd == accept.ret)
    link = run.link(close, "close-rst")
    assert link.packets == rst
    assert "100 received byte(s) unread" in (link.note or "")
    reset = first(run, "recvfrom", lambda sc: sc.errno == "ECONNRESET")
    assert run.link(reset, "reset").packets == rst
    check_same_connection(run)
    check_all_labelled(run)


DUP_CLOSE = """
import os, socket, sys
port = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.create_connection(("127.0.0.1", port))
s, _ = srv.accept()
extra = os.dup(c.fileno())
os.close(extra)  # another descriptor still refers to the socket: nothing on the wire
c.close()  # the last one: FIN
assert s.recv(10) == b""
s.close()
"""


def test_close_of_shared_descriptor_sends_nothing(tmp_path: Path) -> None:
    port = free_port()
    run = correlate(
        *capture_traced(
            tmp_path, [PY, script(tmp_path, "dup.py", DUP_CLOSE), str(port)], f"tcp port {port}", count_flags(FIN, 2)
        )
    )
    # os.dup() is fcntl(F_DUPFD_CLOEXEC) in CPython.
    dup = next(sc for sc in run.calls if sc.name == "dup" or "DUPFD" in str(sc.args.get("cmd")))
    connect = first(run, "connect")
    conn, d = conn_and_dir(run, *tuple_of(connect.fdinfo))
    noop = run.link(first(run, "close", lambda sc: sc.fd == dup.ret), "close-noop")
    assert noop.packets == []
    last = first(run, "close", lambda sc: sc.fd == connect.fd and sc.enter_ns > dup.enter_ns)
    assert run.link(last, "close-fin").packets == packets_with(run, conn, d, FIN)
    check_all_labelled(run)


REFUSED = refused.PROGRAM


def test_connection_refused_is_the_rst(tmp_path: Path) -> None:
    port = free_port()
    run = correlate(
        *capture_traced(
            tmp_path, [PY, script(tmp_path, "refused.py", REFUSED), str(port)], f"tcp port {port}", count_flags(RST, 1)
        )
    )
    connect = first(run, "connect")
    assert connect.errno == "ECONNREFUSED"
    t = run.analyzer.table
    syn = [p.index for p in run.packets if p.flags & (SYN | ACK) == SYN]
    rst = [p.index for p in run.packets if p.flags & RST]
    assert len(syn) == 1 and len(rst) == 1
    assert run.link(connect, "connect-syn").packets == syn
    link = run.link(connect, "connect-refused")
    assert link.packets == rst
    assert connect.exit_ns is not None and link.delay_ns == connect.exit_ns - t.ts_ns[rst[0]]
    assert not run.links_of(connect, "connect-established")


UDP = """
import socket, sys
port = int(sys.argv[1])
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
srv.bind(("127.0.0.1", port))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for m in (b"one", b"three", b"x" * 1200):
    c.sendto(m, ("127.0.0.1", port))
    data, peer = srv.recvfrom(4096)
    srv.sendto(data[::-1], peer)
    c.recvfrom(4096)
"""


def test_udp_one_datagram_per_call(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    run = correlate(
        *capture_traced(
            tmp_path, [PY, script(tmp_path, "udp.py", UDP), str(port)], f"udp port {port}", lambda ps: len(ps) >= 6
        )
    )
    t = run.analyzer.table
    assert len(run.packets) == 6
    seen: list[int] = []
    for sc in run.calls:
        if sc.name not in ("sendto", "recvfrom"):
            continue
        link = run.link(sc, "send-datagram" if sc.name == "sendto" else "recv-datagram")
        assert len(link.packets) == 1
        i = link.packets[0]
        assert t.seglen[i] == sc.ret
        pkt = run.packets[i]
        if sc.name == "sendto":
            assert endpoint_key(sc.args["addr"]) == (pkt.dst, pkt.dport)
            assert link.delay_ns == t.ts_ns[i] - sc.enter_ns
        else:
            assert endpoint_key(sc.args["addr"]) == (pkt.src, pkt.sport)
        seen.append(i)
    # Each datagram was sent by one call and received by one call.
    assert sorted(seen) == sorted(list(range(6)) * 2)
    check_all_labelled(run)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_sendmmsg_recvmmsg_batches(tmp_path: Path) -> None:
    src = tmp_path / "mmsg.c"
    src.write_text(sendmmsg.SOURCE)  # the lab's program: k datagrams of 10, 13, 16… bytes
    exe = tmp_path / "mmsg"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(src)], check=True, timeout=60)
    port = free_port(socket.SOCK_DGRAM)
    run = correlate(*capture_traced(tmp_path, [str(exe), str(port), "3"], f"udp port {port}", lambda ps: len(ps) >= 3))
    t = run.analyzer.table
    assert [t.seglen[p.index] for p in run.packets] == [10, 13, 16]
    send = first(run, "sendmmsg")
    assert send.ret == 3 and send.msg_lens == [10, 13, 16]
    link = run.link(send, "send-datagram")
    assert link.packets == [0, 1, 2]
    received = [i for sc in run.calls if sc.name == "recvmmsg" for i in run.link(sc, "recv-datagram").packets]
    assert received == [0, 1, 2]
    for sc in run.calls:
        if sc.name == "recvmmsg":
            assert [t.seglen[i] for i in run.link(sc, "recv-datagram").packets] == sc.msg_lens
