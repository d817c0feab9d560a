"""Lab `retransmit`: a bulk transfer across a lossy link between two namespaces.

nftables in the receiving namespace drops a share of the data segments (netem is not in
this kernel, and drops on the sender's own output hook are retried locally and never
reach the wire). The capture on the sender's veth sees each segment's first flight and
its retransmission; the correlator attributes both to the write that produced the bytes,
so a retransmission is never mistaken for new data.
"""

from __future__ import annotations

from collections import Counter

from wirecorr.engine.analysis_flags import AnalysisFlag
from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence, call
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import fmt_ns

PORT = 9000
LOSS_PERCENT = 8
FULL_BYTES, SMALL_BYTES = 400_000, 120_000
CHUNK = 10_000

SERVER = (
    PRELUDE
    + """
addr, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket()
srv.bind((addr, port))
srv.listen(1)
s, _ = srv.accept()
got = 0
while got < total:
    data = s.recv(65536)
    if not data:
        break
    got += len(data)
s.close()
sys.exit(0 if got == total else 1)
"""
)

CLIENT = (
    PRELUDE
    + """
ns_b, server_py, addr, port, total, chunk = sys.argv[1:7]
port, total, chunk = int(port), int(total), int(chunk)
server = subprocess.Popen(["ip", "netns", "exec", ns_b, sys.executable, "-I", server_py, addr, str(port), str(total)])
wait_listening(port, "/proc/%d/net/tcp" % server.pid)
c = socket.create_connection((addr, port))
sent = 0
while sent < total:
    c.sendall(b"r" * min(chunk, total - sent))
    sent += min(chunk, total - sent)
c.close()
sys.exit(server.wait())
"""
)

# Only segments carrying data (IP length > 200): a lost SYN or FIN would cost a 1 s timeout.
NFT = f"""
table inet wclab {{
    chain pre {{
        type filter hook prerouting priority -300; policy accept;
        tcp dport {PORT} ip length > 200 numgen random mod 100 < {LOSS_PERCENT} drop
    }}
}}
"""


def command(work: Workdir, net: LabNet) -> list[str]:
    assert net.b is not None
    server = work.python("server", SERVER)[-1]
    total = SMALL_BYTES if work.small else FULL_BYTES
    return work.python("client", CLIENT, net.b, server, net.addr_b, PORT, total, CHUNK)


def explain(ev: Evidence) -> None:
    analysis = ev.table.analysis
    retrans_bits = AnalysisFlag.RETRANSMISSION | AnalysisFlag.FAST_RETRANSMISSION
    retrans = ev.packets(lambda i: bool(analysis[i] & retrans_bits))
    dupacks = ev.packets(lambda i: bool(analysis[i] & AnalysisFlag.DUPLICATE_ACK))
    fast = [i for i in retrans if analysis[i] & AnalysisFlag.FAST_RETRANSMISSION]
    ev.fact("retransmissions", len(retrans))
    ev.fact("duplicate_acks", len(dupacks))
    data = ev.packets(lambda i: ev.table.seglen[i] > 0)
    ev.say(
        f"nftables dropped ~{LOSS_PERCENT}% of data segments on arrival in the receiving namespace; the sender's "
        f"capture shows {len(data)} data segments, {len(retrans)} of them retransmissions ({len(fast)} fast)"
    )
    if not ev.expect(retrans, "no retransmission was captured"):
        return
    ev.say(f"{len(dupacks)} duplicate ACKs ({ev.frames(dupacks)}) told the sender which bytes were missing")
    owners: Counter[int] = Counter()
    for i in retrans:
        lab = ev.label(i)
        if isinstance(lab, list):
            owners.update(lab)
    writes = [lk for lk in ev.links("write-data") if lk.id in owners]
    if ev.expect(writes, "no retransmission was attributed to a write"):
        ev.say(
            f"the {len(retrans)} retransmissions belong to {len(writes)} of {len(ev.links('write-data'))} writes "
            f"— the writes that first carried those bytes, not new data:"
        )
        for lk in writes[:4]:
            first = [i for i in lk.packets if not analysis[i] & retrans_bits]
            again = [i for i in lk.packets if analysis[i] & retrans_bits]
            sc = ev.syscall(lk)
            seq = ev.table.rel_seq
            orig = next((i for i in first if seq[i] == seq[again[0]]), None)
            when = f", {fmt_ns(ev.ts(again[0]) - ev.ts(orig))} after {ev.frame(orig)} first sent them" if orig else ""
            ev.say(f"  {call(sc)}: first flight {ev.frames(first)}, retransmitted in {ev.frames(again)}{when}")
    ev.cite_findings("retransmission")


LAB = Lab(
    name="retransmit",
    summary=f"two namespaces, {LOSS_PERCENT}% of data dropped by nftables: retransmissions and dup ACKs, by write",
    command=command,
    explain=explain,
    pair=True,
    nft=NFT,
    capture_filter=f"tcp port {PORT}",
    snaplen=96,
)
