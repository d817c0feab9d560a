"""Lab `nagle`: five small writes, with Nagle's algorithm and with TCP_NODELAY.

With Nagle the kernel holds small writes while an earlier one is unacknowledged, and the
peer delays that ACK (it is in "ping-pong" mode after a few request/response rounds):
the held writes leave together, tens of milliseconds late. TCP_NODELAY sends each at
once. The lab measures both on two connections open side by side.
"""

from __future__ import annotations

from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import Link, fmt_ns

PORT = 7100

PROGRAM = (
    PRELUDE
    + """
port = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(2)


def run(nodelay):
    c = socket.create_connection(("127.0.0.1", port))
    if nodelay:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s, _ = srv.accept()
    # Request/response rounds put the reader into delayed-ACK (ping-pong) mode ...
    for _ in range(3):
        c.send(b"?")
        s.recv(10)
        s.send(b"!")
        c.recv(10)
    # ... so the first small write stays unacknowledged for a while.
    for m in (b"a", b"bb", b"ccc", b"dddd", b"eeeee"):
        c.send(m)
    got = 0
    while got < 15:
        got += len(s.recv(100))
    return c, s


kept = [run(False), run(True)]
time.sleep(0.05)
for c, s in kept:
    c.close()
    s.close()
"""
)


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("nagle", PROGRAM, PORT)


def _small_writes(ev: Evidence, nodelay_fd: int | None, pid: int, nodelay: bool) -> list[Link]:
    """The five writes of the lab's burst on one connection (not the ping-pong '?')."""
    out = []
    for lk in ev.links("write-data"):
        sc = ev.syscall(lk)
        if sc.pid == pid and (sc.fd == nodelay_fd) == nodelay and sc.data and sc.data[:1] in b"abcde":
            out.append(lk)
    return out


def explain(ev: Evidence) -> None:
    opts = [sc for sc in ev.calls("setsockopt", ok=True) if sc.args.get("optname") == "TCP_NODELAY"]
    if not ev.expect(opts, "no setsockopt(TCP_NODELAY) was recorded"):
        return
    nd = opts[0]
    nagle, nodelay = _small_writes(ev, nd.fd, nd.pid, False), _small_writes(ev, nd.fd, nd.pid, True)
    for name, links in (("with Nagle", nagle), ("with TCP_NODELAY", nodelay)):
        segments = sorted({i for lk in links for i in lk.packets})
        ev.fact(f"segments {name}", len(segments))
        late = max((lk.delay_ns or 0 for lk in links), default=0)
        ev.say(
            f"{name}: {len(links)} writes ↔ {len(segments)} segment(s) ({ev.frames(segments)}); "
            f"the latest write left {fmt_ns(late)} after its call"
        )
        for lk in links:
            ev.say(f"  {ev.describe(lk)} {ev.syscall(lk).data!r}")
    shared = [i for i in {i for lk in nagle for i in lk.packets} if sum(i in lk.packets for lk in nagle) >= 2]
    if ev.expect(shared, "with Nagle, no segment carried the bytes of two writes"):
        i = min(shared)
        owners = [lk for lk in nagle if i in lk.packets]
        held = max(ev.ts(i) - ev.syscall(lk).enter_ns for lk in owners)
        ev.say(
            f"{ev.frame(i)} carries {ev.table.seglen[i]} bytes of {len(owners)} writes: the kernel held them "
            f"up to {fmt_ns(held)} until the peer's (delayed) ACK came"
        )
    ev.cite_findings("nagle_stall", limit=1)
    separate = all(len(lk.packets) == 1 for lk in nodelay) and len({lk.packets[0] for lk in nodelay}) == len(nodelay)
    ev.expect(nodelay and separate, "with TCP_NODELAY, the writes did not leave as one segment each")


LAB = Lab(
    name="nagle",
    summary="small writes with and without TCP_NODELAY: Nagle coalesces them and delays the wire by an ACK",
    command=command,
    explain=explain,
)
