"""Lab `multiplex`: one thread, epoll and non-blocking sockets serving hundreds of clients.

This is what Go's netpoller (the seed's subject) does under goroutines: a non-blocking
accept4 loop that drains the listen queue until EAGAIN, then epoll_wait until the kernel
reports readiness. EAGAIN is the normal end of each drain, not an error — the recording
shows that every EAGAIN is followed by a wait, never by a spinning retry.
"""

from __future__ import annotations

from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import fmt_ns

PORT = 8082
FULL_CLIENTS, SMALL_CLIENTS = 300, 40

PROGRAM = (
    PRELUDE
    + """
import select
port, clients = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1024)
srv.setblocking(False)
if os.fork() == 0:
    conns = []
    for i in range(clients):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"ping %d\\n" % i)
        conns.append(c)
    for c in conns:
        c.recv(100)
        c.close()
    os._exit(0)
ep = select.epoll()
ep.register(srv.fileno(), select.EPOLLIN)
open_, served = {}, 0
while served < clients:
    for fd, _ in ep.poll(5):
        if fd == srv.fileno():
            while True:  # drain the accept queue: the last accept4 says EAGAIN
                try:
                    c, _ = srv.accept()
                except BlockingIOError:
                    break
                c.setblocking(False)
                open_[c.fileno()] = c
                ep.register(c.fileno(), select.EPOLLIN)
            continue
        c = open_[fd]
        try:
            data = c.recv(100)
        except BlockingIOError:
            continue
        if data:
            c.send(data)
        else:
            ep.unregister(fd)
            del open_[fd]
            c.close()
            served += 1
os.wait()
"""
)


def _clients(small: bool) -> int:
    return SMALL_CLIENTS if small else FULL_CLIENTS


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("multiplex", PROGRAM, PORT, _clients(work.small))


def explain(ev: Evidence) -> None:
    accepts = ev.calls("accept4", "accept")
    ok = [sc for sc in accepts if sc.errno is None]
    eagain = [sc for sc in accepts if sc.errno == "EAGAIN"]
    waits = [sc for sc in ev.calls("epoll_wait", "epoll_pwait", "epoll_pwait2") if isinstance(sc.ret, int)]
    events = [sc.ret for sc in waits if sc.ret]
    pids = {sc.pid for sc in ok}
    ev.fact("accepted", len(ok))
    ev.fact("accept_eagain", len(eagain))
    ev.fact("epoll_waits", len(waits))
    ev.say(
        f"{len(ok)} connections accepted by {len(pids)} process(es), one thread, through {len(waits)} epoll_wait calls"
    )
    if ev.expect(eagain, "accept4 never returned EAGAIN: the listening socket was not drained non-blocking"):
        ev.say(
            f"{len(eagain)} accept4 calls returned EAGAIN: each drain of the listen queue ends there "
            f"(on average {len(ok) / len(eagain):.1f} connections taken per drain)"
        )
    if ev.expect(events, "no epoll_wait reported a ready descriptor"):
        ev.say(
            f"epoll_wait woke {len(events)} times with events: {sum(events)} readiness reports, "
            f"up to {max(events)} descriptors in one wake-up"
        )
        links = [lk for lk in ev.links("read-data") if ev.syscall(lk).pid in pids and lk.packets]
        gaps = sorted(lk.delay_ns for lk in links if lk.delay_ns is not None)
        if gaps:
            ev.say(
                f"a request segment waited a median {fmt_ns(gaps[len(gaps) // 2])} (max {fmt_ns(gaps[-1])}) "
                f"in the receive queue before its read() returned: the time to get through the ready list"
            )
    storms = ev.cite_findings("eagain_storm")
    ev.expect(not storms, "the engine found an EAGAIN storm: a retry loop without waiting")
    if not storms:
        ev.say("no eagain_storm finding: every EAGAIN was followed by an epoll_wait, not a retry")


LAB = Lab(
    name="multiplex",
    summary=f"epoll + non-blocking sockets serve {FULL_CLIENTS} clients: accept4 → EAGAIN, epoll_wait wake-ups",
    command=command,
    explain=explain,
    capture_filter=f"tcp port {PORT}",
)
