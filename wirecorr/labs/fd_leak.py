"""Lab `fd-leak`: a server that never closes a connection after read() returned 0.

Each connection the client closes stays half-open: CLOSE_WAIT on the server (only its
app can end that) and FIN_WAIT_2 on the client. The leaked descriptors pile up until
accept4 fails with EMFILE under a low RLIMIT_NOFILE; the server holds them over a second
and then exits, and only its exit sends the FINs its code never did.
"""

from __future__ import annotations

from wirecorr.engine.connections import CLOSE_WAIT, FIN_WAIT_2
from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence, call
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import fmt_ns

PORT = 8081
# Python needs a few descriptors of its own (stdio, the listener): the leak gets the rest.
FULL_LIMIT, SMALL_LIMIT = 64, 16
HOLD_S = 1.2

PROGRAM = (
    PRELUDE
    + """
import errno, resource
port, limit, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(limit * 2)
server = os.fork()
if server == 0:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    leaked, failures = [], 0
    while failures < 3:
        try:
            conn, _ = srv.accept()
        except OSError as e:
            if e.errno != errno.EMFILE:
                raise
            failures += 1
            time.sleep(0.05)
            continue
        while conn.recv(100):
            pass
        leaked.append(conn)  # the bug: read() == 0 and no close()
    time.sleep(hold)
    os._exit(0)  # only now does the kernel close them
srv.close()
for i in range(limit + 4):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"request %d" % i)
    c.close()
os.waitpid(server, 0)
"""
)


def _limit(small: bool) -> int:
    return SMALL_LIMIT if small else FULL_LIMIT


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("leak", PROGRAM, PORT, _limit(work.small), HOLD_S)


def _held(history: list[tuple[int, int, str]], state: str, end_ns: int) -> int | None:
    """How long a side stayed in `state` (to the end of the recording if it never left)."""
    for n, (ts, _, name) in enumerate(history):
        if name == state:
            return (history[n + 1][0] if n + 1 < len(history) else end_ns) - ts
    return None


def explain(ev: Evidence) -> None:
    end = ev.session.last_ns or 0
    tcp = [c for c in ev.connections if c.proto == "tcp"]
    waits = [(c, _held(c.server_state, CLOSE_WAIT, end)) for c in tcp]
    waits = [(c, ns) for c, ns in waits if ns is not None]
    fw2 = [ns for c in tcp if (ns := _held(c.client_state, FIN_WAIT_2, end)) is not None]
    ev.fact("server_close_wait", len(waits))
    ev.fact("client_fin_wait_2", len(fw2))
    eofs = [lk for lk in ev.links("eof-fin") if lk.packets]
    ev.say(f"{len(tcp)} connections; the server saw read() = 0 (the client's FIN) on {len(eofs)} of them")
    if ev.expect(
        waits and min(ns for _, ns in waits) > 1_000_000_000, "no server socket sat in CLOSE_WAIT for over a second"
    ):
        shortest = min(ns for _, ns in waits)
        accepted = {ev.table.conn[lk.packets[0]] for lk in ev.links("accept-ack") if lk.packets}
        ev.say(
            f"{len(waits)} server sockets sat in CLOSE_WAIT for {fmt_ns(shortest)} or more: "
            f"{len(accepted)} accepted ones whose EOF the app read and never close()d, "
            f"{len(waits) - len(accepted)} never accepted — the kernel cannot send a FIN for either"
        )
    if ev.expect(fw2, "no client end waited in FIN_WAIT_2"):
        ev.say(f"{len(fw2)} client ends waited in FIN_WAIT_2 meanwhile (up to {fmt_ns(max(fw2))}) for that FIN")
    emfile = ev.calls("accept4", "accept", errno="EMFILE")
    ev.fact("emfile", len(emfile))
    if ev.expect(emfile, "accept never failed with EMFILE"):
        accepted = [sc for sc in ev.calls("accept4", "accept", ok=True) if sc.pid == emfile[0].pid]
        ev.say(
            f"with RLIMIT_NOFILE {_limit(ev.small)}, {call(emfile[0])} after {len(accepted)} accepted "
            f"connections (fds {min(sc.ret or 0 for sc in accepted)}-{max(sc.ret or 0 for sc in accepted)}): "
            f"{len(emfile)} EMFILE failures while the pending connections stayed in the accept queue"
        )
    ev.cite_findings("close_wait_leak", "fd_exhaustion", limit=1)
    ev.expect(ev.findings("close_wait_leak"), "the engine did not diagnose close_wait_leak")
    ev.expect(ev.findings("fd_exhaustion"), "the engine did not diagnose fd_exhaustion")


LAB = Lab(
    name="fd-leak",
    summary="a server that never closes after EOF: CLOSE_WAIT on it, FIN_WAIT_2 on the client, accept4 EMFILE",
    command=command,
    explain=explain,
    capture_filter=f"tcp port {PORT}",
)
