"""Pairing on the real programs that once showed a defect, judged against tshark.

Each test records a real program with `wirecorr record` (tracer + tcpdump on lo) and reads
the truth from tshark: frame numbers, raw sequence numbers and payloads. The expected
links are computed here by sequence arithmetic from the syscalls' own byte counts, never
from the correlator: a write of n bytes owns the next n stream bytes of its direction, a
read takes the next n bytes it has not taken, a MSG_PEEK read sees them and takes none.
Servers bind 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import free_port

from wirecorr.engine.correlator import Correlator
from wirecorr.engine.tcp_analysis import PacketAnalyzer
from wirecorr.model import fmt_ns
from wirecorr.recording.reader import read_recording

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent
DATA_CALLS = {"read", "write", "recvfrom", "sendto", "recvmsg", "sendmsg", "readv", "writev"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="record needs root (ptrace and tcpdump)")


def wirecorr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "wirecorr", *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def record_cmd(out: Path, bpf: str, *target: str) -> list[str]:
    return [PYTHON, "-m", "wirecorr", "record", "-o", str(out), "-i", "lo", "-f", bpf, *target]


def analyze(path: Path, *extra: str) -> dict:
    result = wirecorr("analyze", "--json", "--packets", *extra, str(path))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_port(port: int, proc: subprocess.Popen[str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def tracer_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("TracerPid:"))


# -- tshark, the oracle -----------------------------------------------------------------


@dataclass
class Frame:
    number: int
    src: int
    dst: int
    flags: int
    seq: int
    length: int
    payload: bytes


def tshark_frames(path: Path, proto: str = "tcp") -> list[Frame]:
    """Every packet of the capture in file order, as tshark numbers and dissects it."""
    tcp = proto == "tcp"
    fields = (
        ["tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.len", "tcp.payload"]
        if tcp
        else ["udp.srcport", "udp.dstport", "udp.length", "data.data"]
    )
    cmd = ["tshark", "-r", str(path), "-Y", proto, "-T", "fields", "-e", "frame.number"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    frames = []
    for line in out.splitlines():
        cols = line.split("\t")
        if tcp:
            num, src, dst, flags, seq, length, payload = cols
            frame = Frame(int(num), int(src), int(dst), int(flags, 16), int(seq), int(length), bytes.fromhex(payload))
        else:
            num, src, dst, length, payload = cols
            frame = Frame(int(num), int(src), int(dst), 0, 0, int(length) - 8, bytes.fromhex(payload))
        frames.append(frame)
    return frames


def linked_frames(link: dict, frames: list[Frame]) -> list[int]:
    """A link's packets as tshark frame numbers: packet index i is the i-th frame tshark lists."""
    return sorted(frames[i].number for i in link["packets"])


def links_by_syscall(doc: dict) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for link in doc["links"]:
        out.setdefault(link["syscall"], []).append(link)
    return out


def is_peek(sc: dict) -> bool:
    return "MSG_PEEK" in str(sc["args"].get("flags", ""))


def expected_data_frames(
    calls: list[dict], frames: list[Frame], port: int, base: dict[bool, int]
) -> dict[int, list[int]]:
    """syscall id → tshark frames carrying its bytes, from tshark's raw sequence numbers.

    `calls` are one socket's data calls in order; `base[write]` is the raw sequence number
    of that socket's first byte in the direction it writes (True) or reads (False)."""
    at = {True: base[True], False: base[False]}
    out = {}
    for sc in calls:
        n = sc["ret"]
        if not isinstance(n, int) or n <= 0:
            continue
        write = sc["name"] in ("write", "sendto", "sendmsg", "writev")
        start = at[write]
        if not is_peek(sc):
            at[write] += n
        out[sc["id"]] = sorted(
            f.number
            for f in frames
            if f.length and (f.src == port) == write and f.seq < start + n and f.seq + f.length > start
        )
    return out


# -- nginx with `listen ssl`: the 1-byte MSG_PEEK before the ClientHello ---------------------


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
error_log {dir}/error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    location / {{ return 200 "hello over tls\\n"; }}
  }}
}}
"""


@pytest.fixture
def nginx_conf(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=tmp_path, port=port))
    yield conf, port


def run_nginx_and_curl(prefix: list[str], conf: Path, port: int) -> None:
    """nginx under `prefix` (record or strace), one TLS request from curl -k, then SIGQUIT."""
    server = subprocess.Popen(
        [*prefix, "nginx", "-p", str(conf.parent), "-c", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_port(port, server)
        got = subprocess.run(
            ["curl", "-sk", "--max-time", "10", f"https://127.0.0.1:{port}/"], capture_output=True, text=True
        )
        assert got.stdout == "hello over tls\n", got
        time.sleep(0.3)  # nginx's close and the last ACKs
        pid = int((conf.parent / "nginx.pid").read_text())
        os.kill(pid, signal.SIGQUIT)
        server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


def check_tls_links(doc: dict, frames: list[Frame], port: int) -> None:
    """Every data call of nginx's TLS connection is linked to exactly the frames tshark's
    sequence numbers put its bytes in, the 1-byte peek included; no false "not captured"."""
    # curl's connection: the one whose first bytes are a TLS handshake record (wait_port's probe is not).
    cport = next(f.src for f in frames if f.dst == port and f.payload[:1] == b"\x16")
    conn = [f for f in frames if cport in (f.src, f.dst)]
    syn = next(f for f in conn if f.flags & 0x02 and not f.flags & 0x10)
    synack = next(f for f in conn if f.flags & 0x12 == 0x12)
    calls = [
        sc
        for sc in doc["syscalls"]
        if sc["name"] in DATA_CALLS and _server_fd(sc, port) and str(sc["fdinfo"]["remote"]).endswith(f":{cport}")
    ]
    peeks = [sc for sc in calls if is_peek(sc)]
    assert len(peeks) == 1 and peeks[0]["ret"] == 1, "nginx peeks one byte before the ClientHello"
    truth = expected_data_frames(calls, conn, port, {True: synack.seq + 1, False: syn.seq + 1})
    links = links_by_syscall(doc)
    for sid, want in truth.items():
        (link,) = [lk for lk in links.get(sid, []) if lk["kind"] in ("read-data", "write-data")]
        assert linked_frames(link, frames) == want, (sid, link)
        assert "not captured" not in (link["note"] or ""), link
    hello = next(sc for sc in calls if not is_peek(sc) and sc["name"] in ("read", "recvfrom"))
    assert truth[hello["id"]] == truth[peeks[0]["id"]], "the peek saw the first byte of the read that took it"


def _server_fd(sc: dict, port: int) -> bool:
    info = sc["fdinfo"]
    return bool(info) and info["kind"] == "tcp" and str(info["local"]).endswith(f":{port}") and bool(info["remote"])


def test_nginx_tls_peek_recorded(tmp_path: Path, nginx_conf: tuple[Path, int]) -> None:
    conf, port = nginx_conf
    out = tmp_path / "nginx.pcapng"
    run_nginx_and_curl(record_cmd(out, f"tcp port {port}", "--"), conf, port)
    doc = analyze(out)
    frames = tshark_frames(out)
    # Packet index → frame number: Wireshark counts the recording's Custom Blocks too.
    assert [p["frame"] for p in doc["packets"]] == [f.number for f in frames]
    assert frames[0].number > 1
    check_tls_links(doc, frames, port)
    # The text report shows the same frame numbers.
    text = wirecorr("analyze", "--notable", "500", str(out)).stdout
    peek = next(lk for lk in doc["links"] if lk["note"] and "MSG_PEEK" in lk["note"])
    assert f"↔ frames [{', '.join(map(str, linked_frames(peek, frames)))}]" in text


def test_nginx_tls_peek_from_strace(tmp_path: Path, nginx_conf: tuple[Path, int]) -> None:
    """The same through `strace -f -yy` and tcpdump: the reader decodes MSG_PEEK too."""
    from loopback_capture import LoopbackCapture

    conf, port = nginx_conf
    log, pcap = tmp_path / "nginx.strace", tmp_path / "nginx.pcap"
    with LoopbackCapture(pcap, f"tcp port {port}") as cap:
        run_nginx_and_curl(["strace", "-f", "-ttt", "-T", "-yy", "-xx", "-s", "256", "-o", str(log)], conf, port)
        cap.stop(until=lambda ps: sum(1 for p in ps if p.flags & 0x01) >= 2)
    doc = analyze(pcap, "--strace", str(log))
    check_tls_links(doc, tshark_frames(pcap), port)


# -- socat UDP echo: recvmsg(MSG_PEEK|MSG_TRUNC) before the read that takes the datagram ---------


def test_socat_udp_peeks(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    out = tmp_path / "socat.pcapng"
    server = subprocess.Popen(
        [
            *record_cmd(out, f"udp port {port}", "--", "timeout", "3", "socat", "-T", "1"),
            *(f"UDP4-RECVFROM:{port},bind=127.0.0.1,fork", "PIPE"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(0.2)
            replies = []
            deadline = time.monotonic() + 15
            for msg in (b"first datagram\n", b"second one\n"):
                while time.monotonic() < deadline:
                    c.sendto(msg, ("127.0.0.1", port))
                    try:
                        replies.append(c.recv(100))
                        break
                    except TimeoutError:
                        continue
            assert replies == [b"first datagram\n", b"second one\n"]
        server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    doc = analyze(out)
    frames = tshark_frames(out, "udp")
    links = links_by_syscall(doc)
    served = 0
    for sc in doc["syscalls"]:
        if (
            sc["name"] not in ("recvmsg", "recvfrom", "sendto")
            or sc["errno"]
            or (sc["fdinfo"] or {}).get("kind") != "udp"
        ):
            continue
        data = bytes.fromhex(sc["data"])
        # The datagram tshark shows with these bytes, in the call's direction.
        towards_server = sc["name"] != "sendto"
        want = [f.number for f in frames if (f.dst == port) == towards_server and f.payload.startswith(data)]
        (link,) = links[sc["id"]]
        got = linked_frames(link, frames)
        assert len(got) == 1 and got[0] in want, (sc, link, want)
        assert "not captured" not in (link["note"] or ""), link
        if is_peek(sc):
            assert "MSG_PEEK" in link["note"]
        else:
            served += 1
    assert served == 4  # two recvfrom and two sendto; every peek was linked too


# -- non-blocking connects refused by RST: ncat and curl ------------------------------------


@pytest.mark.parametrize("client", ["ncat", "curl"])
def test_refused_nonblocking_connect(tmp_path: Path, client: str) -> None:
    port = free_port()
    out = tmp_path / f"{client}.pcapng"
    argv = ["ncat", "127.0.0.1", str(port)] if client == "ncat" else ["curl", "-s", f"http://127.0.0.1:{port}/"]
    result = subprocess.run(
        record_cmd(out, f"tcp port {port}", "--", *argv), stdin=subprocess.DEVNULL, capture_output=True, timeout=60
    )
    assert result.returncode != 0, result
    doc = analyze(out)
    frames = tshark_frames(out)
    (rst,) = [f.number for f in frames if f.flags & 0x04]
    syscalls = {sc["id"]: sc for sc in doc["syscalls"]}
    # The RST goes to the calls that report it: getsockopt(SO_ERROR), and a poll that woke
    # with POLLERR before it (curl polls, ncat selects).
    refused = [lk for lk in doc["links"] if lk["kind"] == "connect-refused"]
    assert all(linked_frames(lk, frames) == [rst] for lk in refused)
    reporters = {syscalls[lk["syscall"]]["name"]: syscalls[lk["syscall"]] for lk in refused}
    assert reporters["getsockopt"]["args"]["optval"] == "ECONNREFUSED"
    assert set(reporters) == ({"getsockopt", "poll"} if client == "curl" else {"getsockopt"})
    assert not [lk for lk in doc["links"] if lk["kind"] == "connect-established"]
    (finding,) = [f for f in doc["findings"] if f["kind"] == "connection_refused"]
    assert f"RST (frame {rst})" in finding["message"] and "getsockopt() reported ECONNREFUSED" in finding["message"]


# -- redis-server attached with `record -p` while a client keeps its connection busy ---------------


def test_redis_attached_mid_stream(tmp_path: Path) -> None:
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    stop = threading.Event()
    sent = [0]

    def client() -> None:
        """ECHO with a distinct argument each time, so each request and reply is unique."""
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            i = 0
            deadline = time.monotonic() + 20
            while not stop.is_set() and time.monotonic() < deadline:
                arg = f"message-{i:06d}"
                s.sendall(f"*2\r\n$4\r\nECHO\r\n${len(arg)}\r\n{arg}\r\n".encode())
                want = f"${len(arg)}\r\n{arg}\r\n".encode()
                got = b""
                while len(got) < len(want):
                    got += s.recv(100)
                assert got == want
                i += 1
                sent[0] = i
                time.sleep(0.001)

    out = tmp_path / "redis.pcapng"
    worker = threading.Thread(target=client)
    try:
        for _ in range(300):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        worker.start()
        while sent[0] < 50:
            time.sleep(0.01)
        rec = subprocess.Popen(record_cmd(out, f"tcp port {port}", "-p", str(redis.pid)), stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and tracer_of(redis.pid) == 0:
                time.sleep(0.05)
            time.sleep(1.0)
            rec.send_signal(signal.SIGINT)
            rec.communicate(timeout=30)
        finally:
            if rec.poll() is None:
                rec.kill()
                rec.wait(timeout=10)
    finally:
        stop.set()
        worker.join(timeout=10)
        redis.terminate()
        redis.wait(timeout=10)
    doc = analyze(out)
    frames = tshark_frames(out)
    calls = [sc for sc in doc["syscalls"] if sc["name"] in DATA_CALLS and _server_fd(sc, port) and sc["ret"]]
    assert len(calls) > 20
    # Truth from tshark: the frame whose payload starts with the first call's bytes of each
    # direction (unique: every request and reply differs) fixes the raw sequence number;
    # sequence arithmetic from the calls' byte counts does the rest.
    base = {}
    for write in (True, False):
        first = next(sc for sc in calls if (sc["name"] == "write") == write)
        data = bytes.fromhex(first["data"])
        (frame,) = [f for f in frames if (f.src == port) == write and f.payload.startswith(data)]
        base[write] = frame.seq
    truth = expected_data_frames(calls, frames, port, base)
    links = links_by_syscall(doc)
    for sc in calls:
        (link,) = links[sc["id"]]
        assert linked_frames(link, frames) == truth[sc["id"]], (sc, link)
    # The report says the stream was placed by content, on which frame.
    (conn,) = doc["connections"]
    redis_end = f"127.0.0.1:{port}"
    anchored = sorted((a["endpoint"], a["calls"]) for a in conn["anchored"])
    assert anchored == [(redis_end, "reads"), (redis_end, "writes")]
    for a in conn["anchored"]:
        sc = next(sc for sc in calls if sc["id"] == a["syscall"])
        assert [a["frame"]] == truth[sc["id"]][:1]
    text = wirecorr("analyze", str(out)).stdout
    assert f"anchored  reads of {redis_end} (" in text and "open before tracing began, placed by content" in text
    # A live view feeds packets and syscalls interleaved, with no file to re-read payloads
    # from: the correlator keeps recent payloads itself and anchors the same way.
    live = live_links(out)
    for sc in calls:
        assert live[sc["id"]] == links[sc["id"]][0]["packets"], sc


def live_links(path: Path) -> dict[int, list[int]]:
    """syscall id → packets of its link, correlating as `wirecorr live` does: each packet
    before the first syscall that ended after it, and no capture file behind the session."""
    rec = read_recording(str(path))
    analyzer = PacketAnalyzer()
    corr = Correlator(analyzer)
    calls = sorted(rec.syscalls, key=lambda c: c.exit_ns or c.enter_ns)
    processes = sorted(rec.processes, key=lambda p: p.get("ts_ns") or 0)
    packets = rec.packets()
    nxt = next(packets, None)
    for sc in calls:
        done = sc.exit_ns or sc.enter_ns
        while nxt is not None and nxt.ts_ns <= done:
            analyzer.feed(nxt)
            corr.on_packet(nxt)
            nxt = next(packets, None)
        while processes and (processes[0].get("ts_ns") or 0) <= done:
            event = processes.pop(0)
            corr.on_process(event["event"], event["pid"], event["info"])
        corr.on_syscall(sc)
    while nxt is not None:
        analyzer.feed(nxt)
        corr.on_packet(nxt)
        nxt = next(packets, None)
    corr.finish()
    analyzer.finish()
    return {link.syscall: sorted(link.packets) for link in corr.links}


# -- a sendfile with a retransmission, then close() with unread data: rst_on_close's count and
#    the retransmission's delay -----------------------------------------------------------------

SENDFILE_SERVER = """
import os, socket, sys, time
port, path = int(sys.argv[1]), sys.argv[2]
ls = socket.socket()
ls.bind(("127.0.0.1", port))
ls.listen(1)
print("listening", flush=True)
c, _ = ls.accept()
c.recv(1000)
with open(path, "rb") as f:
    size = os.fstat(f.fileno()).st_size
    sent = 0
    while sent < size:
        sent += os.sendfile(c.fileno(), f.fileno(), sent, size - sent)
time.sleep(0.5)
c.close()  # with the client's bytes unread: RST
"""

SENDFILE_CLIENT = """
import socket, sys, threading, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # the window follows the slow reads
s.settimeout(10)
s.connect(("127.0.0.1", int(sys.argv[1])))
def send():
    try:
        s.sendall(b"u" * 3_000_000)
    except OSError:
        pass
threading.Thread(target=send, daemon=True).start()
got = 0
try:
    while chunk := s.recv(1 << 16):  # a slow reader: the sendfile's bytes take 100+ ms to leave
        if not got:
            print("reading", flush=True)
        got += len(chunk)
        time.sleep(0.004)
except OSError:
    pass
print(got, flush=True)
"""


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"wcpair{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # An Ethernet-sized MTU: loopback's 64 KiB segments overrun a slow reader's window and
        # are dropped by the receiver now and then, retransmissions the test did not ask for.
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "mtu", "1500", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_sendfile_retransmission_then_rst_on_close(tmp_path: Path, netns: str) -> None:
    """The client's second data segment is dropped after capture (nftables input hook, so
    tcpdump saw it and the retransmission repeats its bytes); while the client
    reads slowly, every data segment of the server's sendfile is dropped for 100 ms, so they
    are retransmitted on timeout, long after the sendfile began."""
    port = free_port()
    ns = ["ip", "netns", "exec", netns]
    rules = f"""
table inet wcpair {{
  set hold {{ type inet_service; }}
  chain input {{
    type filter hook input priority 0;
    tcp dport {port} meta length > 1000 numgen inc mod 1000000 == 1 drop
    tcp sport @hold meta length > 1000 drop
  }}
}}
"""
    subprocess.run([*ns, "nft", "-f", "-"], input=rules, text=True, check=True)
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(2_000_000))
    (tmp_path / "server.py").write_text(SENDFILE_SERVER)
    (tmp_path / "client.py").write_text(SENDFILE_CLIENT)
    out = tmp_path / "sendfile.pcapng"
    server = subprocess.Popen(
        [*ns, *record_cmd(out, f"tcp port {port}", "--", PYTHON, str(tmp_path / "server.py"), str(port), str(blob))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = None
    try:
        assert server.stdout is not None and server.stdout.readline() == "listening\n"
        client = subprocess.Popen(
            [*ns, PYTHON, str(tmp_path / "client.py"), str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None
        assert client.stdout.readline() == "reading\n"
        time.sleep(0.01)
        subprocess.run([*ns, "nft", "add", "element", "inet", "wcpair", "hold", f"{{ {port} }}"], check=True)
        time.sleep(0.1)
        subprocess.run([*ns, "nft", "delete", "element", "inet", "wcpair", "hold", f"{{ {port} }}"], check=True)
        assert int(client.stdout.readline()) == len(blob.read_bytes())
        server.communicate(timeout=30)
        client.communicate(timeout=30)
    finally:
        for proc in (server, client):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    doc = analyze(out)
    frames = tshark_frames(out)
    times = tshark_times(out)
    syscalls = {sc["id"]: sc for sc in doc["syscalls"]}
    findings = {f["kind"]: f for f in doc["findings"]}

    # rst_on_close: "read N of M", M the distinct bytes tshark's sequence numbers show
    # delivered before close() — a retransmitted range counts once.
    close = next(sc for sc in doc["syscalls"] if sc["name"] == "close" and (sc["fdinfo"] or {}).get("kind") == "tcp")
    isn = next(f for f in frames if f.flags & 0x12 == 0x02).seq
    ranges = sorted(
        (f.seq - isn - 1, f.seq - isn - 1 + f.length)
        for f in frames
        if f.dst == port and f.length and times[f.number] <= close["enter_ns"]
    )
    assert len({r[0] for r in ranges}) < len(ranges), "a client segment was sent twice"
    delivered = max(end for _, end in ranges)
    assert all(start <= prev_end for (start, _), prev_end in zip(ranges[1:], accumulate_max(ranges), strict=False))
    assert f"of {delivered}):" in findings["rst_on_close"]["message"], findings["rst_on_close"]["message"]

    # retransmission: "sent again X later", X from the first transmission of the resent bytes.
    sendfile_link = next(lk for lk in doc["links"] if syscalls[lk["syscall"]]["name"] == "sendfile")
    linked = set(linked_frames(sendfile_link, frames))
    resent = tshark_retransmissions(out, port)
    first = min(n for n in resent if n in linked)
    again = next(f for f in frames if f.number == first)
    orig = min(
        f.number
        for f in frames
        if f.src == port
        and f.length
        and f.number < first
        and f.seq < again.seq + again.length
        and again.seq < f.seq + f.length
    )
    message = findings["retransmission"]["message"]
    assert f"first left in frame {orig} and were sent again {fmt_ns(times[first] - times[orig])} later" in message
    # The resent bytes first left after the call's first ones: measured from the start of the
    # call, the delay would read differently.
    first_of_call = min(linked)
    assert fmt_ns(times[first] - times[first_of_call]) != fmt_ns(times[first] - times[orig])


def accumulate_max(ranges: list[tuple[int, int]]) -> list[int]:
    out, top = [], 0
    for _, end in ranges:
        top = max(top, end)
        out.append(top)
    return out


def tshark_times(path: Path) -> dict[int, int]:
    """frame number → capture time in ns, exact (tshark prints nine decimals)."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "tcp", "-T", "fields", "-e", "frame.number", "-e", "frame.time_epoch"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    times = {}
    for line in out.splitlines():
        num, epoch = line.split("\t")
        sec, _, frac = epoch.partition(".")
        times[int(num)] = int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
    return times


def tshark_retransmissions(path: Path, port: int) -> list[int]:
    flags = "tcp.analysis.retransmission or tcp.analysis.fast_retransmission or tcp.analysis.spurious_retransmission"
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", f"tcp.srcport == {port} and ({flags})", "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [int(n) for n in out.split()]
