"""Lab `udp-vs-tcp`: the same two sends over UDP and over TCP, read after both arrived.

UDP keeps message boundaries (two datagrams, two recvfrom), TCP is a byte stream: the
two segments wait in the receive queue and one read takes both. The reader sleeps
before reading so the difference cannot depend on scheduling luck.
"""

from __future__ import annotations

from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE

PORT = 6000

PROGRAM = (
    PRELUDE
    + """
port = int(sys.argv[1])
u_rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u_rx.bind(("127.0.0.1", port))
u_tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for m in (b"hello", b"world"):
    u_tx.sendto(m, ("127.0.0.1", port))
time.sleep(0.05)
assert u_rx.recvfrom(100)[0] == b"hello"
assert u_rx.recvfrom(100)[0] == b"world"

srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.create_connection(("127.0.0.1", port))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s, _ = srv.accept()
for m in (b"hello", b"world"):
    c.send(m)
time.sleep(0.05)
assert s.recv(100) == b"helloworld"
c.close()
s.close()
"""
)


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("udp_tcp", PROGRAM, PORT)


def explain(ev: Evidence) -> None:
    sends, recvs = ev.links("send-datagram"), ev.links("recv-datagram")
    one_each = [lk for lk in sends + recvs if len(lk.packets) == 1]
    ev.fact("udp_sends", len(sends))
    ev.fact("udp_recvs", len(recvs))
    if ev.expect(
        len(sends) == 2 and len(recvs) == 2 and len(one_each) == 4,
        "UDP: two sendto and two recvfrom, each with its own datagram, were not all linked",
    ):
        ev.say(
            "UDP keeps message boundaries: each sendto is one datagram, each recvfrom takes one, "
            "even though both were queued before the first recvfrom:"
        )
        for lk in sorted(sends + recvs, key=lambda lk: ev.syscall(lk).enter_ns):
            ev.say("  " + ev.describe(lk) + f", {ev.table.seglen[lk.packets[0]]} bytes")
    writes, reads = ev.links("write-data"), ev.links("read-data")
    ev.fact("tcp_writes", len(writes))
    ev.fact("tcp_reads", [len(lk.packets) for lk in reads])
    coalesced = [lk for lk in reads if len(lk.packets) >= 2]
    if ev.expect(len(writes) == 2 and coalesced, "TCP: no single read took the segments of both writes"):
        ev.say("TCP is a byte stream: two sends became two segments, and one read took both:")
        for lk in writes:
            ev.say("  " + ev.describe(lk))
        lk = coalesced[0]
        ev.say(f"  {ev.describe(lk)}: {ev.syscall(lk).data!r} — the boundary between {ev.frames(lk.packets)} is gone")


LAB = Lab(
    name="udp-vs-tcp",
    summary="two sends: over UDP two datagrams and two recvfrom; over TCP one stream, one read takes both",
    command=command,
    explain=explain,
)
