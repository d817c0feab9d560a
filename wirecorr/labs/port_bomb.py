"""Lab `port-bomb`: short connections until the client runs out of ephemeral ports.

The client closes first, so each connection leaves its port in TIME_WAIT on the client
for 60 s. The namespace narrows `ip_local_port_range` (and turns off tcp_tw_reuse, which
loopback would otherwise use to recycle those ports) so the pool drains in seconds
instead of after 28 000 connections — and without touching the host's ports.
"""

from __future__ import annotations

from collections import Counter

from wirecorr.engine.findings import detect
from wirecorr.engine.findings._base import Thresholds
from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import fmt_ns

PORT = 8080
LOW = 40000
FULL_PORTS, SMALL_PORTS = 2000, 128
# Attempts after the first EADDRNOTAVAIL: enough to show it is not a fluke.
FAILURES = 20

PROGRAM = (
    PRELUDE
    + """
import errno
port, attempts, failures_wanted = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1024)
server = os.fork()
if server == 0:
    # Serve until the client has been quiet for a second: EOF, then close (passive side).
    srv.settimeout(1.0)
    try:
        while True:
            conn, _ = srv.accept()
            conn.settimeout(None)
            conn.recv(1)
            conn.close()
    except socket.timeout:
        os._exit(0)
srv.close()
ok = failed = 0
for _ in range(attempts):
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", port))
        ok += 1
    except OSError as e:
        if e.errno != errno.EADDRNOTAVAIL:
            raise
        failed += 1
    c.close()  # the client closes first: TIME_WAIT is on this side
    if failed >= failures_wanted:
        break
os.waitpid(server, 0)
print("connected %d, EADDRNOTAVAIL %d" % (ok, failed), file=sys.stderr)
"""
)


def _ports(small: bool) -> int:
    return SMALL_PORTS if small else FULL_PORTS


def command(work: Workdir, net: LabNet) -> list[str]:
    ports = _ports(work.small)
    return work.python("bomb", PROGRAM, PORT, ports + 2 * FAILURES, FAILURES)


def explain(ev: Evidence) -> None:
    ports = _ports(ev.small)
    low, high = LOW, LOW + ports - 1
    connects = ev.calls("connect")
    ok = [sc for sc in connects if sc.errno is None]
    failed = [sc for sc in connects if sc.errno == "EADDRNOTAVAIL"]
    ev.fact("connected", len(ok))
    ev.fact("eaddrnotavail", len(failed))
    ev.say(f"the namespace's ip_local_port_range is {low}-{high} ({ports} ports), tcp_tw_reuse 0")
    ev.say(f"{len(connects)} connect() calls: {len(ok)} connected, {len(failed)} failed with EADDRNOTAVAIL")
    closers = Counter(c.active_closer for c in ev.connections if c.proto == "tcp")
    tw = [c for c in ev.connections if c.final_client_state == "TIME_WAIT"]
    ev.fact("client_time_wait", len(tw))
    if ev.expect(tw, "no client connection ended in TIME_WAIT"):
        ev.say(
            f"{closers['client']} connections were closed first by the client, {closers['server']} by the server; "
            f"{len(tw)} client ends were left in TIME_WAIT, holding their ports for 60 s"
        )
        used = sorted(c.client_port for c in tw)
        ev.say(f"their ports: {used[0]}-{used[-1]}, {len(set(used))} distinct — the whole range")
    if ev.expect(failed, "connect() never failed with EADDRNOTAVAIL"):
        first = failed[0]
        ev.say(
            f"the first EADDRNOTAVAIL came after {sum(sc.enter_ns < first.enter_ns for sc in ok)} connections, "
            f"{fmt_ns(first.enter_ns - connects[0].enter_ns)} into the run; no SYN left for it "
            f"(connect() failed in {fmt_ns(first.end_ns - first.enter_ns)}, before any packet)"
        )
    # The engine reads the port range of the analysing host; this run's was the namespace's.
    findings = detect(ev.session, Thresholds(port_range=(low, high)))
    for f in findings:
        if f.kind in ("time_wait_accumulation", "ephemeral_port_exhaustion"):
            ev.say(f"finding {f.kind} ({f.severity}): {f.message}")
    ev.expect(
        any(f.kind == "ephemeral_port_exhaustion" for f in findings),
        "the engine did not diagnose ephemeral_port_exhaustion",
    )


LAB = Lab(
    name="port-bomb",
    summary=f"{FULL_PORTS} short connections: TIME_WAIT on the closing client, then connect() EADDRNOTAVAIL",
    command=command,
    explain=explain,
    sysctls={"net.ipv4.ip_local_port_range": f"{LOW} {LOW + FULL_PORTS - 1}", "net.ipv4.tcp_tw_reuse": "0"},
    small_sysctls={"net.ipv4.ip_local_port_range": f"{LOW} {LOW + SMALL_PORTS - 1}"},
    capture_filter=f"tcp port {PORT}",
    snaplen=96,
)
