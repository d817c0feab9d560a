"""Lab `rst-on-close`: close() with unread bytes in the receive queue sends RST, not FIN.

A server that answers and closes without reading the whole request makes its client see
ECONNRESET instead of a clean EOF — a classic cause of truncated HTTP responses.
"""

from __future__ import annotations

from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence, call
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import fmt_ns

PORT = 7070

PROGRAM = (
    PRELUDE
    + """
port = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.create_connection(("127.0.0.1", port))
s, _ = srv.accept()
c.sendall(b"u" * 100)
time.sleep(0.05)
s.close()  # 100 bytes never read
try:
    c.recv(10)
    sys.exit("the peer's close did not reset the connection")
except ConnectionResetError:
    pass
c.close()
"""
)


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("rst", PROGRAM, PORT)


def explain(ev: Evidence) -> None:
    closes = [lk for lk in ev.links("close-rst") if lk.packets]
    if not ev.expect(closes, "no close() was linked to an RST"):
        return
    close = closes[0]
    ev.say(
        f"{call(ev.syscall(close))} with {close.note or 'unread data'}: the kernel sent "
        f"{ev.flags(close.packets[0])} ({ev.frame(close.packets[0])}) {fmt_ns(close.delay_ns)} after the call began, "
        f"no FIN"
    )
    resets = [lk for lk in ev.links("reset") if lk.packets]
    if ev.expect(resets, "the peer's call never failed with ECONNRESET for that RST"):
        lk = resets[0]
        ev.say(
            f"the peer's {call(ev.syscall(lk))} failed {fmt_ns(lk.delay_ns)} after the RST arrived "
            f"({ev.frame(lk.packets[0])})"
        )
    ev.cite_findings("rst_on_close")


LAB = Lab(
    name="rst-on-close",
    summary="close() with unread data → RST instead of FIN; the peer's recv fails with ECONNRESET",
    command=command,
    explain=explain,
)
