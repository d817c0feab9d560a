"""Real captures for the engine tests: tcpdump on loopback or in namespaces the test owns,
and tshark as the oracle the analysis is compared with.

Every process started here is stopped by its PID with a bounded wait; every namespace is
removed by the fixture that made it, whatever the test did.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import free_port, run_in

from wirecorr.engine.analysis_flags import FIELD_NAMES, wireshark_fields
from wirecorr.engine.connections import Connection
from wirecorr.engine.ingest import load_capture
from wirecorr.engine.session import Session
from wirecorr.engine.tcp_analysis import PacketAnalyzer
from wirecorr.labs.netns import LabNet
from wirecorr.model import format_ip

needs_capture_tools = pytest.mark.skipif(
    shutil.which("tshark") is None or shutil.which("tcpdump") is None or os.geteuid() != 0,
    reason="needs root, tcpdump and tshark",
)


def have_tshark() -> bool:
    return shutil.which("tshark") is not None


# tcpdump's stderr says this once its capture is armed.
_LISTENING = b"listening on"


@contextlib.contextmanager
def tcpdump(path: Path, bpf: str, iface: str = "lo", netns: str | None = None) -> Iterator[None]:
    """Capture `bpf` on `iface` into `path` for the duration of the block.

    Waits until tcpdump reports it is listening (packets sent earlier would be missed), and
    after the block gives it 0.3 s before SIGINT, because SIGINT does not drain the ring
    (docs/architecture.md).
    """
    err_path = path.with_suffix(".tcpdump.err")
    # A 64 MB ring: loopback bursts (a window's worth in microseconds) overflow the default.
    cmd = ["tcpdump", "-i", iface, "-U", "--immediate-mode", "-B", "65536", "--time-stamp-precision=nano"]
    cmd += ["-w", str(path), bpf]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 10
        while _LISTENING not in err_path.read_bytes():
            if proc.poll() is not None:
                raise RuntimeError(f"tcpdump exited: {err_path.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise TimeoutError("tcpdump did not start listening within 10 s")
            time.sleep(0.02)
        yield
        time.sleep(0.3)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def analyze(path: Path) -> PacketAnalyzer:
    """The analysis of `path` by the load path analyze uses: compiled by default, the
    pure-Python reference under WIRECORR_PURE=1 (so the tshark oracles check both)."""
    session = Session()
    load_capture(session, str(path))
    assert session.error is None, session.error
    session.analyzer.finish()
    return session.analyzer


# -- the tshark oracle ------------------------------------------------------------------

FLAG_FIELDS = sorted(set(FIELD_NAMES.values()))
VALUE_FIELDS = [
    "tcp.analysis.duplicate_ack_num",
    "tcp.analysis.duplicate_ack_frame",
    "tcp.analysis.acks_frame",
    "tcp.analysis.ack_rtt",
    "tcp.analysis.initial_rtt",
    "tcp.analysis.bytes_in_flight",
    "tcp.seq",
    "tcp.ack",
    "tcp.len",
    "tcp.window_size",
]
ALL_FIELDS = ["frame.number", "tcp.stream", "icmp.type", "icmpv6.type", *FLAG_FIELDS, *VALUE_FIELDS]


def _ns(text: str) -> int:
    return int(Decimal(text) * 1_000_000_000)


def tshark_packets(path: Path) -> list[dict[str, str]]:
    """tshark's per-frame TCP fields, first occurrence of each (some appear twice)."""
    cmd = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=,", "-E", "occurrence=f"]
    for f in ALL_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [dict(zip(ALL_FIELDS, line.split(","), strict=True)) for line in out.splitlines()]


_CONV = re.compile(
    r"^(?P<a>\S+)\s+<->\s+(?P<b>\S+)\s+(?P<ba>\d+)\s+\d+\s+\S+\s+(?P<ab>\d+)\s+\d+\s+\S+\s+\d+\s+\d+\s+\S+\s+"
    r"(?P<start>[\d.]+)\s+(?P<dur>[\d.]+)\s*$"
)


@dataclass
class ConvRow:
    a: str
    b: str
    frames_a_to_b: int
    frames_b_to_a: int
    start_ns: int
    duration: Decimal


def tshark_conversations(path: Path, proto: str) -> list[ConvRow]:
    """`tshark -q -z conv,tcp|udp` rows."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-q", "-z", f"conv,{proto}"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    rows = []
    for line in out.splitlines():
        m = _CONV.match(line)
        if m:
            rows.append(ConvRow(m["a"], m["b"], int(m["ab"]), int(m["ba"]), _ns(m["start"]), Decimal(m["dur"])))
    return rows


def _opt_int(text: str) -> int | None:
    return int(text) if text else None


def compare_with_tshark(path: Path, an: PacketAnalyzer) -> list[str]:
    """Every per-packet and per-connection difference between `an` and tshark, as text."""
    diffs: list[str] = []
    table = an.table
    conns = an.connections
    rows = tshark_packets(path)
    if len(rows) != len(table):
        diffs.append(f"tshark has {len(rows)} frames, table has {len(table)} rows")
    for i, row in enumerate(rows):
        frame = int(row["frame.number"])
        if row["tcp.stream"] == "" or row["icmp.type"] or row["icmpv6.type"]:
            continue
        c = table.conn[i]
        if c < 0 or conns[c].proto != "tcp":
            diffs.append(f"frame {frame}: tshark tcp.stream {row['tcp.stream']}, we have no TCP connection")
            continue
        conn = conns[c]
        ours: dict[str, object] = {
            "tcp.stream": conn.stream,
            "flags": sorted(wireshark_fields(table.analysis[i]) - {"tcp.analysis.flags"}),
            "tcp.analysis.duplicate_ack_num": table.dupack_num.get(i),
            "tcp.analysis.duplicate_ack_frame": _plus1(table.dupack_frame.get(i)),
            "tcp.analysis.acks_frame": _plus1(table.acked_frame.get(i)),
            "tcp.analysis.ack_rtt": table.ack_rtt_ns.get(i),
            "tcp.analysis.bytes_in_flight": table.bytes_in_flight[i] or None,
            "tcp.seq": table.rel_seq[i],
            "tcp.ack": table.rel_ack[i],
            "tcp.len": table.seglen[i],
            "tcp.window_size": table.window[i],
        }
        theirs: dict[str, object] = {
            "tcp.stream": int(row["tcp.stream"]),
            "flags": sorted(f for f in FLAG_FIELDS if row[f]),
            "tcp.analysis.duplicate_ack_num": _opt_int(row["tcp.analysis.duplicate_ack_num"]),
            "tcp.analysis.duplicate_ack_frame": _opt_int(row["tcp.analysis.duplicate_ack_frame"]),
            "tcp.analysis.acks_frame": _opt_int(row["tcp.analysis.acks_frame"]),
            "tcp.analysis.ack_rtt": _ns(row["tcp.analysis.ack_rtt"]) if row["tcp.analysis.ack_rtt"] else None,
            "tcp.analysis.bytes_in_flight": _opt_int(row["tcp.analysis.bytes_in_flight"]),
            "tcp.seq": int(row["tcp.seq"]),
            "tcp.ack": int(row["tcp.ack"]),
            "tcp.len": int(row["tcp.len"]),
            "tcp.window_size": int(row["tcp.window_size"]),
        }
        for name, value in theirs.items():
            if ours[name] != value:
                diffs.append(f"frame {frame}: {name} tshark={value} ours={ours[name]}")
        irtt = row["tcp.analysis.initial_rtt"]
        if irtt and _ns(irtt) != conn.initial_rtt_ns:
            diffs.append(f"frame {frame}: initial_rtt tshark={_ns(irtt)} ours={conn.initial_rtt_ns}")
    first_ns = table.ts_ns[0] if len(table) else 0
    for proto in ("tcp", "udp"):
        ours_p = [c for c in conns if c.proto == proto]
        theirs_p = tshark_conversations(path, proto)
        if len(ours_p) != len(theirs_p):
            diffs.append(f"{proto}: tshark has {len(theirs_p)} conversations, we have {len(ours_p)}")
        matched = _match_conversations(ours_p, theirs_p, first_ns)
        for conn, conv in matched:
            if conv is None:
                diffs.append(f"{proto} connection {conn.client} -> {conn.server}: not in tshark's table")
                continue
            if conv.a == _tshark_endpoint(conn.client_addr, conn.client_port):
                want = (conv.frames_a_to_b, conv.frames_b_to_a)
            else:
                want = (conv.frames_b_to_a, conv.frames_a_to_b)
            if (conn.packets_c2s, conn.packets_s2c) != want:
                diffs.append(
                    f"{proto} {conn.client}->{conn.server}: frames {want} vs ours {conn.packets_c2s, conn.packets_s2c}"
                )
            duration = Decimal(conn.duration_ns) / 1_000_000_000
            if abs(duration - conv.duration) > Decimal("0.00005"):
                diffs.append(f"{proto} {conn.client}->{conn.server}: duration {conv.duration} vs ours {duration}")
    return diffs


def _tshark_endpoint(addr: bytes, port: int) -> str:
    """How tshark's conversation table writes an endpoint (IPv6 without brackets)."""
    return f"{format_ip(addr)}:{port}"


def _plus1(index: int | None) -> int | None:
    return None if index is None else index + 1


def _match_conversations(
    ours: list[Connection], theirs: list[ConvRow], first_ns: int
) -> list[tuple[Connection, ConvRow | None]]:
    """Pair our connections with tshark's rows by endpoints and start time."""
    pool = list(theirs)
    out: list[tuple[Connection, ConvRow | None]] = []
    for conn in ours:
        ends = {
            _tshark_endpoint(conn.client_addr, conn.client_port),
            _tshark_endpoint(conn.server_addr, conn.server_port),
        }
        start = conn.first_ts_ns - first_ns
        found = None
        for conv in pool:
            if {conv.a, conv.b} == ends and conv.start_ns == start:
                found = conv
                break
        if found is not None:
            pool.remove(found)
        out.append((conn, found))
    return out


# -- scenarios: real traffic, captured once per test session -----------------------------

_SCENARIO_DIR: Path | None = None
_SCENARIOS: dict[str, Path] = {}


def scenario(name: str) -> Path:
    """The capture of scenario `name` (see SCENARIOS), made on first use and then reused.

    test_tcp_analysis and test_connections look at the same captures from two sides, so
    they share one recording per session instead of making each slow one twice.
    """
    global _SCENARIO_DIR
    if name not in _SCENARIOS:
        if _SCENARIO_DIR is None:
            _SCENARIO_DIR = Path(tempfile.mkdtemp(prefix="wirecorr-scenarios-"))
            atexit.register(shutil.rmtree, _SCENARIO_DIR, True)
        path = _SCENARIO_DIR / f"{name}.pcap"
        SCENARIOS[name](path)
        _SCENARIOS[name] = path
    return _SCENARIOS[name]


def _serve_once(srv: socket.socket, handler: Callable[[socket.socket], None]) -> threading.Thread:
    def run() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(10)
            handler(conn)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _listener(host: str = "127.0.0.1", rcvbuf: int | None = None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf is not None:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    srv.bind((host, 0))
    srv.listen(8)
    srv.settimeout(10)
    return srv


def _read_to_eof(conn: socket.socket) -> int:
    total = 0
    for _ in range(100_000):
        data = conn.recv(65536)
        if not data:
            break
        total += len(data)
    return total


def fin_close(path: Path) -> None:
    """Handshake, 20 kB up, a reply down, client shuts down first, server closes after."""
    with _listener() as srv:
        port = srv.getsockname()[1]

        def handler(conn: socket.socket) -> None:
            _read_to_eof(conn)
            conn.sendall(b"done" * 100)

        with tcpdump(path, f"tcp port {port}"):
            t = _serve_once(srv, handler)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"x" * 20000)
                c.shutdown(socket.SHUT_WR)
                _read_to_eof(c)
            t.join(10)


def resets(path: Path) -> None:
    """Over IPv6: the server closes with unread data (RST from the server), then a
    client closes with SO_LINGER 0 (RST from the client)."""
    with _listener("::1") as srv:
        port = srv.getsockname()[1]
        got = threading.Event()

        def unread(conn: socket.socket) -> None:
            conn.recv(10)
            got.wait(5)
            # 10 bytes read, the rest unread: close() sends RST.

        def linger(conn: socket.socket) -> None:
            with contextlib.suppress(ConnectionResetError):
                _read_to_eof(conn)

        with tcpdump(path, f"tcp port {port}"):
            t = _serve_once(srv, unread)
            with socket.create_connection(("::1", port), timeout=10) as c:
                c.sendall(b"y" * 5000)
                time.sleep(0.1)
                got.set()
                t.join(10)
                time.sleep(0.1)
            t = _serve_once(srv, linger)
            c = socket.create_connection(("::1", port), timeout=10)
            c.sendall(b"z" * 100)
            time.sleep(0.05)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            t.join(10)


def keepalive(path: Path) -> None:
    """An idle connection with 1 s keep-alive timers: probes and their ACKs for ~3.5 s."""
    with _listener() as srv:
        port = srv.getsockname()[1]
        stop = threading.Event()

        def handler(conn: socket.socket) -> None:
            conn.recv(100)
            stop.wait(10)

        with tcpdump(path, f"tcp port {port}"):
            t = _serve_once(srv, handler)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
                c.sendall(b"hello")
                time.sleep(3.5)
                stop.set()
                t.join(10)


def zero_window(path: Path) -> None:
    """A reader with a small receive buffer stops reading while the writer sends 1 MB,
    then resumes: zero windows, probes and window updates."""
    with _listener(rcvbuf=4096) as srv:
        port = srv.getsockname()[1]
        resume = threading.Event()

        def handler(conn: socket.socket) -> None:
            conn.recv(1000)
            resume.wait(10)
            _read_to_eof(conn)

        with tcpdump(path, f"tcp port {port}"):
            t = _serve_once(srv, handler)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                writer = threading.Thread(target=c.sendall, args=(b"w" * 1_000_000,), daemon=True)
                writer.start()
                time.sleep(1.5)
                resume.set()
                writer.join(10)
                c.shutdown(socket.SHUT_WR)
                t.join(10)


def port_reuse(path: Path) -> None:
    """Two connections in a row from the same fixed client port (SO_REUSEADDR); the server
    closes first each time, so the second SYN meets the server's TIME_WAIT."""
    with _listener() as srv:
        port = srv.getsockname()[1]
        cport = free_port()

        def handler(conn: socket.socket) -> None:
            conn.recv(100)
            conn.sendall(b"bye")

        with tcpdump(path, f"tcp port {port}"):
            for _ in range(2):
                t = _serve_once(srv, handler)
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    c.settimeout(10)
                    c.bind(("127.0.0.1", cport))
                    c.connect(("127.0.0.1", port))
                    c.sendall(b"hi")
                    t.join(10)
                    _read_to_eof(c)
                time.sleep(0.1)


def udp_and_icmp(path: Path) -> None:
    """Three datagrams echoed by a UDP server, then one to a closed port (ICMP port
    unreachable quoting it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.settimeout(10)
        port = srv.getsockname()[1]
        closed = free_port(socket.SOCK_DGRAM)
        with tcpdump(path, f"udp port {port} or udp port {closed} or icmp"):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(10)
                for i in range(3):
                    c.sendto(b"ping%d" % i, ("127.0.0.1", port))
                    data, addr = srv.recvfrom(100)
                    srv.sendto(data.upper(), addr)
                    c.recvfrom(100)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.sendto(b"anyone?", ("127.0.0.1", closed))
                time.sleep(0.05)


_BULK_SERVER = """
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen(1); srv.settimeout(30)
print("ready", flush=True)
c, _ = srv.accept(); c.settimeout(30); n = 0
for _ in range(1_000_000):
    d = c.recv(65536)
    if not d: break
    n += len(d)
c.sendall(str(n).encode()); c.close()
"""

_BULK_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.sendall(b"b" * int(sys.argv[3])); c.shutdown(socket.SHUT_WR)
print(c.recv(100).decode(), flush=True); c.close()
"""

BULK_BYTES = 2_000_000


def lossy_bulk(path: Path, pair: LabNet) -> str:
    """2 MB from namespace a to b, 10 % of TCP packets dropped on entry to b (nftables),
    captured in a on its veth. Returns what the server says it received."""
    run_in(pair.b, "nft", "add", "table", "inet", "wc")
    run_in(pair.b, "nft", "add", "chain", "inet", "wc", "pre", "{ type filter hook prerouting priority -300; }")
    run_in(
        pair.b,
        "nft",
        "add",
        "rule",
        "inet",
        "wc",
        "pre",
        "meta",
        "l4proto",
        "tcp",
        "numgen",
        "random",
        "mod",
        "100",
        "<",
        "10",
        "drop",
    )
    port = 5201
    server = subprocess.Popen(
        ["ip", "netns", "exec", pair.b, sys.executable, "-c", _BULK_SERVER, pair.addr_b, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError(f"bulk server did not start: {server.stderr.read() if server.stderr else ''}")
        with tcpdump(path, f"tcp port {port}", iface="a0", netns=pair.a):
            client = run_in(
                pair.a, sys.executable, "-c", _BULK_CLIENT, pair.addr_b, str(port), str(BULK_BYTES), timeout=60
            )
        server.wait(timeout=30)
        return client.stdout.strip()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=5)


SCENARIOS: dict[str, Callable[[Path], None]] = {
    "fin_close": fin_close,
    "resets": resets,
    "keepalive": keepalive,
    "zero_window": zero_window,
    "port_reuse": port_reuse,
    "udp_and_icmp": udp_and_icmp,
}


# -- synthetic captures: exact packets for rules real traffic rarely shows --------------

TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def ipv4_tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: str,
    win: int = 1000,
    payload: int = 0,
    opts: bytes = b"",
) -> bytes:
    """A raw IPv4+TCP packet (checksums left 0: tshark does not check them by default)."""
    bits = sum(TCP_FLAG_BITS[f] for f in flags)
    opts += b"\x01" * (-len(opts) % 4)
    tcp = struct.pack(
        "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (5 + len(opts) // 4) << 4, bits, win, 0, 0
    )
    body = tcp + opts + b"d" * payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))  # fmt: skip
    return ip + body


def wscale_opt(shift: int) -> bytes:
    return bytes([1, 3, 3, shift])


def sack_opt(*blocks: tuple[int, int]) -> bytes:
    return b"\x01\x01" + bytes([5, 2 + 8 * len(blocks)]) + b"".join(struct.pack("!II", a, b) for a, b in blocks)


def write_raw_pcap(path: Path, packets: list[tuple[int, bytes]]) -> None:
    """A nanosecond pcap of raw-IP packets from (ts_ns, packet) pairs."""
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 101)]
    for ts, data in packets:
        out.append(struct.pack("<IIII", ts // 1_000_000_000, ts % 1_000_000_000, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))
