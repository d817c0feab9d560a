"""Lab `mss-slicing`: one 5000-byte write leaves as several MSS-sized segments.

Loopback's 64 KiB MTU and GSO would hide the slicing (one big frame on the capture), so
the lab's `lo` gets an Ethernet MTU of 1500 and `gso_max_segs 1`, as a NIC shows it.
"""

from __future__ import annotations

from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import SYN, fmt_ns

PORT = 5000
SIZE = 5000

PROGRAM = (
    PRELUDE
    + """
port, size = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.create_connection(("127.0.0.1", port))
s, _ = srv.accept()
c.send(b"m" * size)
got = 0
while got < size:
    got += len(s.recv(65536))
c.close()
s.close()
"""
)


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("mss", PROGRAM, PORT, SIZE)


def explain(ev: Evidence) -> None:
    big = [lk for lk in ev.links("write-data") if ev.syscall(lk).ret == SIZE]
    if not ev.expect(big, f"no single write of {SIZE} bytes was linked"):
        return
    link = big[0]
    sizes = [ev.table.seglen[i] for i in link.packets]
    ev.fact("segments", sizes)
    syns = ev.packets(lambda i: bool(ev.table.flags[i] & SYN))
    conn = ev.connections[ev.table.conn[link.packets[0]]] if link.packets else None
    opts = conn.server_options if conn is not None else None
    if conn is not None and opts is not None and opts.mss:
        # Timestamps, when both SYNs carry them, take 12 bytes of every segment's MSS.
        ts = bool(opts.timestamps and conn.client_options and conn.client_options.timestamps)
        ev.say(
            f"the SYNs ({ev.frames(syns)}) announce MSS {opts.mss}"
            + (f"; the timestamp option takes 12 bytes, leaving {opts.mss - 12} of data per segment" if ts else "")
        )
    sc = ev.syscall(link)
    if ev.expect(len(sizes) >= 2 and sum(sizes) == SIZE, f"the {SIZE}-byte write did not leave as several segments"):
        ev.say(
            f"one {sc.name}() of {SIZE} bytes ↔ {len(sizes)} segments ({ev.frames(link.packets)}): "
            + " + ".join(map(str, sizes))
            + f" bytes, the first {fmt_ns(link.delay_ns)} after the call began"
        )
        span = ev.ts(link.packets[-1]) - ev.ts(link.packets[0])
        ev.say(
            f"the kernel sliced the write itself: all {len(sizes)} segments left within {fmt_ns(span)}, "
            f"while the call took {fmt_ns(sc.end_ns - sc.enter_ns)}"
        )
    for lk in ev.links("read-data"):
        ev.say("reader: " + ev.describe(lk) + ": the receive side sees one byte stream, not segments")


LAB = Lab(
    name="mss-slicing",
    summary="one 5000-byte write on an MTU-1500 link ↔ 4 MSS-sized segments on the wire",
    command=command,
    explain=explain,
    mtu=1500,
)
