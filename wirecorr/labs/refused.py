"""Lab `refused`: connect() to a port nobody listens on.

ECONNREFUSED is not decided by the caller's kernel alone: the SYN goes out, the peer's
kernel answers with RST, and that RST is what connect() reports.
"""

from __future__ import annotations

from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence, call
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import fmt_ns

PORT = 9

PROGRAM = (
    PRELUDE
    + """
c = socket.socket()
try:
    c.connect(("127.0.0.1", int(sys.argv[1])))
    sys.exit("connected to a port that should be closed")
except ConnectionRefusedError:
    pass
c.close()
"""
)


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("refused", PROGRAM, PORT)


def explain(ev: Evidence) -> None:
    refused = ev.calls("connect", errno="ECONNREFUSED")
    if not ev.expect(refused, "no connect() failed with ECONNREFUSED"):
        return
    sc = refused[0]
    syn, rst = ev.link(sc, "connect-syn"), ev.link(sc, "connect-refused")
    if not ev.expect(syn and syn.packets and rst and rst.packets, "the SYN or the RST of the refusal was not linked"):
        return
    assert syn is not None and rst is not None
    ev.fact("rst_to_return_ns", rst.delay_ns)
    ev.say(f"{call(sc)}: its SYN ({ev.frame(syn.packets[0])}) left {fmt_ns(syn.delay_ns)} after the call began")
    ev.say(
        f"the peer kernel answered with {ev.flags(rst.packets[0])} ({ev.frame(rst.packets[0])}) "
        f"{fmt_ns(ev.ts(rst.packets[0]) - ev.ts(syn.packets[0]))} later; connect() returned ECONNREFUSED "
        f"{fmt_ns(rst.delay_ns)} after the RST arrived"
    )
    ev.cite_findings("connection_refused")


LAB = Lab(
    name="refused",
    summary="connect to a closed port: SYN → RST → connect() = -1 ECONNREFUSED",
    command=command,
    explain=explain,
)
