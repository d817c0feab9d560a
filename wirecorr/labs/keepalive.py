"""Lab `keepalive`: an idle connection with SO_KEEPALIVE and 1-second probe timers.

Keep-alive probes are pure kernel traffic: the app makes no call while they fly, and the
peer's kernel answers each without waking its app either. The recording shows probes and
answers with no syscall behind them, one interval apart.
"""

from __future__ import annotations

import itertools

from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import fmt_ns

PORT = 8083
FULL_IDLE_S, SMALL_IDLE_S = 4.5, 2.6

PROGRAM = (
    PRELUDE
    + """
port, idle = int(sys.argv[1]), float(sys.argv[2])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.create_connection(("127.0.0.1", port))
c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
s, _ = srv.accept()
c.sendall(b"hello")
s.recv(10)
time.sleep(idle)  # nobody calls anything on either socket now
c.close()
s.close()
"""
)


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("keepalive", PROGRAM, PORT, SMALL_IDLE_S if work.small else FULL_IDLE_S)


def explain(ev: Evidence) -> None:
    opts = [sc.args.get("optname") for sc in ev.calls("setsockopt", ok=True)]
    ev.say("setsockopt: " + ", ".join(str(o) for o in opts if str(o).startswith(("SO_KEEP", "TCP_KEEP"))))
    probes = ev.packets(lambda i: ev.label(i) == "keep-alive")
    acks = ev.packets(lambda i: ev.label(i) == "keep-alive-ack")
    ev.fact("probes", len(probes))
    ev.fact("probe_acks", len(acks))
    if not ev.expect(len(probes) >= 2 and acks, "fewer than two keep-alive probes (or no answer) were captured"):
        return
    last_data = max(
        (i for i in ev.packets(lambda i: ev.table.seglen[i] > 0 and ev.label(i) != "keep-alive")), default=None
    )
    if last_data is not None:
        ev.say(
            f"the last data segment was {ev.frame(last_data)}; the first probe ({ev.frames(probes[:1])}) followed "
            f"{fmt_ns(ev.ts(probes[0]) - ev.ts(last_data))} later (TCP_KEEPIDLE 1 s)"
        )
    gaps = [ev.ts(b) - ev.ts(a) for a, b in itertools.pairwise(probes)]
    ev.say(
        f"{len(probes)} probes ({ev.frames(probes)}), {fmt_ns(min(gaps))} to {fmt_ns(max(gaps))} apart "
        f"(TCP_KEEPINTVL 1 s), "
        f"each answered by the peer kernel ({ev.frames(acks)})"
    )
    first, last = ev.ts(probes[0]), ev.ts(probes[-1])
    busy = [sc for sc in ev.socket_calls() if sc.enter_ns < last and sc.end_ns > first]
    if ev.expect(not busy, f"{len(busy)} socket call(s) ran while the probes flew"):
        ev.say(
            f"no socket syscall ran in those {fmt_ns(last - first)}: probes and answers are kernel-only "
            f"(the probe re-sends the last acknowledged byte, seq-1, so the peer must ACK it)"
        )
    ev.cite_findings("keepalive")


LAB = Lab(
    name="keepalive",
    summary="SO_KEEPALIVE with 1 s TCP_KEEPIDLE/INTVL: probes and their ACKs with no syscall behind them",
    command=command,
    explain=explain,
)
