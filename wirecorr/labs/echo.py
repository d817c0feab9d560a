"""Lab `echo`: a Python echo server and client, a few lines each way.

The seed's echo server is the baseline every other lab departs from: with nothing
unusual going on, each write() is one segment, each read() takes exactly that segment,
and the only packets nobody asked for are the kernel's ACKs.
"""

from __future__ import annotations

from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import fmt_ns

PORT = 7007

PROGRAM = (
    PRELUDE
    + """
port, rounds = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
if os.fork() == 0:
    conn, _ = srv.accept()
    while data := conn.recv(4096):
        conn.sendall(data)
    conn.close()
    os._exit(0)
srv.close()
c = socket.create_connection(("127.0.0.1", port))
for i in range(rounds):
    line = b"line %d\\n" % i
    c.sendall(line)
    got = b""
    while len(got) < len(line):
        got += c.recv(4096)
    # A pause between lines: the peer's ACK of the echo goes out on its own.
    time.sleep(0.05)
c.close()
os.wait()
"""
)


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("echo", PROGRAM, PORT, 3 if work.small else 5)


def explain(ev: Evidence) -> None:
    writes = ev.links("write-data")
    reads = ev.links("read-data")
    ev.fact("writes", len(writes))
    ev.fact("reads", len(reads))
    if not ev.expect(writes and reads, "no write or read on a TCP socket was linked"):
        return
    one = [lk for lk in writes if len(lk.packets) == 1]
    ev.expect(len(one) == len(writes), f"{len(writes) - len(one)} write(s) did not map to exactly one segment")
    taken = [lk for lk in reads if lk.packets]
    ev.expect(len(taken) == len(reads), f"{len(reads) - len(taken)} read(s) have no segment")
    ev.say(f"{len(one)} of {len(writes)} writes became exactly one segment each; {len(taken)} reads took them:")
    for lk in sorted(taken + one, key=lambda lk: (lk.packets[0], lk.kind != "write-data"))[:8]:
        ev.say("  " + ev.describe(lk))
    delays = sorted(lk.delay_ns for lk in writes if lk.delay_ns is not None)
    if delays:
        ev.say(f"write → wire: median {fmt_ns(delays[len(delays) // 2])}, max {fmt_ns(delays[-1])}")
    quiet = ev.kernel_only()
    acks = quiet["pure-ack"] + quiet["delayed-ack"]
    ev.fact("kernel_acks", acks)
    if ev.expect(acks, "no pure ACK was captured"):
        ev.say(
            f"{acks} pure ACK(s) carry no data and belong to no syscall: the kernel acknowledges on its own "
            f"({', '.join(f'{n} {k}' for k, n in sorted(quiet.items()))})"
        )


LAB = Lab(
    name="echo",
    summary="echo server and client: each write ↔ its segment, each read ↔ that segment, ACKs are kernel-only",
    command=command,
    explain=explain,
)
