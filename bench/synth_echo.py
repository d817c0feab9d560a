"""A format-2 recording of a TCP echo workload, written directly, without tracing anything.

`bench/correlate_scaling` needs recordings of 0.2M to 3M round trips (a real one takes
65 s per 200k round trips under the tracer), and `tests/test_streaming.py` two sizes of
the same shape. The file is what `wirecorr record -i lo` writes for the C program of
`bench/correlate` run as one process with a client and a server thread: a listening
socket, then connections one after another, each a connect/accept, `rounds_per_conn`
64-byte write → read → write → read round trips (one segment each way, each acking the
previous one, as on loopback) and a close from the client (FIN, EOF, close, FIN, ACK).
Syscalls go out in `syscalls` blocks of `columns.BATCH_ROWS`, after the packets of the
same moments (the recorder writes them up to a second late), in completion order.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from wirecorr.model import FdInfo, Syscall
from wirecorr.recording import columns
from wirecorr.recording import format as fmt

PID = 4242
CLIENT_TID, SERVER_TID = PID, PID + 1
SERVER = b"\x7f\x00\x00\x01"
PORT = 7007
T0 = 1_800_000_000_000_000_000
PAYLOAD = bytes(range(64))
# One round trip every 100 µs: the traced C echo of bench/correlate takes ≈ 300 µs, and a
# connection must outlive streaming's retirement grace (1 s) by a realistic margin only.
ROUND_NS = 100_000
_ETH = b"\x00" * 12 + b"\x08\x00"
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04
# The options of a Linux loopback SYN: MSS 65495, SACK permitted, window scale 7.
_SYN_OPTS = b"\x02\x04\xff\xd7\x04\x02\x01\x03\x03\x07"


def _frame(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    opts = _SYN_OPTS + b"\x00\x00" if flags & SYN else b""
    tcp = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (5 + len(opts) // 4) << 4, flags, 512, 0, 0)
    ip = _IP.pack(0x45, 0, 20 + len(tcp) + len(opts) + len(payload), 0, 0x4000, 64, 6, 0, SERVER, SERVER)
    return _ETH + ip + tcp + opts + payload


class _Writer:
    def __init__(self, path: Path) -> None:
        self.f = open(path, "wb")  # noqa: SIM115 - closed by `close`
        self.queued: list[Syscall] = []
        self.next_id = 1
        self.packets = 0
        self.syscalls = 0

    def packet(self, ts: int, frame: bytes) -> None:
        self.f.write(fmt.enhanced_packet(0, ts, frame, len(frame)))
        self.packets += 1

    def call(self, tid: int, name: str, enter: int, exit_: int, args: dict[str, Any], **kw: Any) -> None:
        self.queued.append(Syscall(0, PID, tid, name, enter, args, exit_, **kw))

    def flush(self, everything: bool = False) -> None:
        if len(self.queued) < columns.BATCH_ROWS and not everything:
            return
        self.queued.sort(key=lambda sc: sc.exit_ns or 0)
        for sc in self.queued:
            sc.id = self.next_id
            self.next_id += 1
        self.f.write(columns.syscall_blocks(self.queued))
        self.syscalls += len(self.queued)
        self.queued = []


def write(path: Path, rounds: int, rounds_per_conn: int = 1000, *, end: str = "fin") -> dict[str, int]:
    """Write the recording; returns its packet and syscall counts.

    `end` says how each connection ends: "fin" as above; "rst" the client's close sends an
    RST and the server's next read fails with ECONNRESET before its close; "rst-open" the
    same without the server's close (its socket is open when the recording ends).
    """
    w = _Writer(path)
    f = w.f
    f.write(fmt.section_header("wirecorr synth", "Linux"))
    meta = {"format": 2, "wirecorr": "synth", "start_ns": T0, "command": ["echo", str(rounds)], "pids": [PID],
            "attached": False, "user": None, "interface": "lo", "filter": f"tcp port {PORT}", "snaplen": 262144,
            "data_bytes": 64, "hostname": "synth"}  # fmt: skip
    f.write(fmt.custom_block(fmt.TAG_HEADER, meta))
    f.write(fmt.custom_block(fmt.TAG_PROCESS, {"event": "spawn", "pid": PID, "info": None, "ts_ns": T0}))
    f.write(fmt.interface_description(1, 262144, "lo"))
    listen = FdInfo("tcp", f"127.0.0.1:{PORT}", None, None, 1)
    t = T0 + 1000
    w.call(CLIENT_TID, "socket", t, t + 500, {"domain": "AF_INET", "type": "SOCK_STREAM", "protocol": "IPPROTO_IP"},
           ret=3, ret_fdinfo=FdInfo("tcp", None, None, None, 1))  # fmt: skip
    w.call(CLIENT_TID, "bind", t + 600, t + 900, {"fd": 3, "addr": f"127.0.0.1:{PORT}", "addrlen": 16}, ret=0, fd=3,
           fdinfo=listen)  # fmt: skip
    w.call(CLIENT_TID, "listen", t + 1000, t + 1200, {"fd": 3, "backlog": 8}, ret=0, fd=3, fdinfo=listen)
    server_idle = t + 1300  # the server thread's next call enters when its last one returned
    t += 10_000
    done, conn = 0, 0
    while done < rounds:
        n = min(rounds_per_conn, rounds - done)
        cport = 32768 + conn % 28000
        inode = 2 + 2 * conn
        local, remote = f"127.0.0.1:{cport}", f"127.0.0.1:{PORT}"
        cinfo = FdInfo("tcp", local, remote, None, inode)
        sinfo = FdInfo("tcp", remote, local, None, inode + 1)
        w.call(CLIENT_TID, "socket", t, t + 500, {"domain": "AF_INET", "type": "SOCK_STREAM", "protocol": "IPPROTO_IP"},
               ret=4, ret_fdinfo=FdInfo("tcp", None, None, None, inode))  # fmt: skip
        cseq, sseq = 1000 + conn, 900_000 + conn
        t += 1000
        w.packet(t + 1000, _frame(cport, PORT, cseq, 0, SYN))
        w.packet(t + 2000, _frame(PORT, cport, sseq, cseq + 1, SYN | ACK))
        w.packet(t + 3000, _frame(cport, PORT, cseq + 1, sseq + 1, ACK))
        w.call(CLIENT_TID, "connect", t, t + 2500, {"fd": 4, "addr": remote, "addrlen": 16}, ret=0, fd=4, fdinfo=cinfo)
        w.call(SERVER_TID, "accept4", server_idle, t + 3500, {"fd": 3, "flags": 0, "addr": local}, ret=5, fd=3,
               fdinfo=listen, ret_fdinfo=sinfo)  # fmt: skip
        server_idle = t + 3500
        cseq, sseq = cseq + 1, sseq + 1
        wargs_c, rargs_c = {"fd": 4, "count": 64}, {"fd": 4, "count": 64}
        wargs_s, rargs_s = {"fd": 5, "count": 64}, {"fd": 5, "count": 64}
        t += 5000
        for _ in range(n):
            w.call(CLIENT_TID, "write", t, t + 1500, wargs_c, ret=64, fd=4, fdinfo=cinfo, nbytes=64, data=PAYLOAD)
            w.packet(t + 1000, _frame(cport, PORT, cseq, sseq, ACK | PSH, PAYLOAD))
            cseq += 64
            w.call(CLIENT_TID, "read", t + 1600, t + 5000, rargs_c, ret=64, fd=4, fdinfo=cinfo, nbytes=64, data=PAYLOAD)
            w.call(SERVER_TID, "read", server_idle, t + 2500, rargs_s, ret=64, fd=5, fdinfo=sinfo, nbytes=64,
                   data=PAYLOAD)  # fmt: skip
            w.call(SERVER_TID, "write", t + 3000, t + 4500, wargs_s, ret=64, fd=5, fdinfo=sinfo, nbytes=64,
                   data=PAYLOAD)  # fmt: skip
            w.packet(t + 4000, _frame(PORT, cport, sseq, cseq, ACK | PSH, PAYLOAD))
            sseq += 64
            server_idle = t + 4500
            t += ROUND_NS
            w.flush()
        w.packet(t - 500, _frame(cport, PORT, cseq, sseq, ACK))
        w.call(CLIENT_TID, "close", t, t + 1500, {"fd": 4}, ret=0, fd=4, fdinfo=cinfo)
        if end == "fin":
            w.packet(t + 1000, _frame(cport, PORT, cseq, sseq, FIN | ACK))
            w.call(SERVER_TID, "read", server_idle, t + 2000, rargs_s, ret=0, fd=5, fdinfo=sinfo, nbytes=0)
            w.call(SERVER_TID, "close", t + 2500, t + 3500, {"fd": 5}, ret=0, fd=5, fdinfo=sinfo)
            w.packet(t + 3000, _frame(PORT, cport, sseq, cseq + 1, FIN | ACK))
            w.packet(t + 4000, _frame(cport, PORT, cseq + 1, sseq + 1, ACK))
        else:
            w.packet(t + 1000, _frame(cport, PORT, cseq, sseq, RST | ACK))
            w.call(SERVER_TID, "read", server_idle, t + 2000, rargs_s, ret=-1, errno="ECONNRESET", fd=5, fdinfo=sinfo)
            if end == "rst":
                w.call(SERVER_TID, "close", t + 2500, t + 3500, {"fd": 5}, ret=0, fd=5, fdinfo=sinfo)
        server_idle = t + 3500
        t += 10_000
        done += n
        conn += 1
    w.call(CLIENT_TID, "close", t, t + 500, {"fd": 3}, ret=0, fd=3, fdinfo=listen)
    w.flush(everything=True)
    f.write(fmt.custom_block(fmt.TAG_PROCESS, {"event": "exit", "pid": PID, "info": 0, "ts_ns": t + 1000}))
    summary = {"end_ns": t + 2000, "packets": w.packets, "syscalls": w.syscalls, "exit_status": 0, "signal": None,
               "captured": w.packets, "received_by_filter": w.packets, "dropped_by_kernel": 0, "lost": 0}  # fmt: skip
    f.write(fmt.custom_block(fmt.TAG_SUMMARY, summary))
    f.close()
    return {"packets": w.packets, "syscalls": w.syscalls, "connections": conn}
