"""The --filter language against its model: tcpdump applying the same expression to the same file."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from loopback_capture import LoopbackCapture

from wirecorr.model import PROTO_ICMP
from wirecorr.sources.bpf_filter import FilterError, compile_filter
from wirecorr.sources.capture_file import CaptureReader
from wirecorr.sources.packet_decode import decode_packet


def _traffic() -> None:
    """TCP over IPv4 and IPv6, UDP, and an ICMP port-unreachable, all on loopback."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as srv:
            srv.bind((host, 0))
            srv.listen()
            with socket.create_connection((host, srv.getsockname()[1]), timeout=5) as cli:
                conn, _ = srv.accept()
                cli.sendall(b"ping")
                conn.recv(16)
                conn.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.2", 0))
        tx.sendto(b"datagram", rx.getsockname())
        rx.recvfrom(64)
        rx_port = rx.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"nobody home", ("127.0.0.1", rx_port))  # closed now: ICMP port unreachable


@pytest.fixture(scope="module")
def mixed_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("filter") / "mixed.pcap"
    with LoopbackCapture(path, nano=False) as cap:
        _traffic()
        packets = cap.stop(until=lambda pkts: any(p.proto == PROTO_ICMP for p in pkts))
    assert any(p.proto == PROTO_ICMP for p in packets), "the ICMP error that ends the traffic was not captured"
    return path


def _tcpdump_selects(path: Path, expr: str) -> list[int]:
    """Timestamps (µs) of the packets tcpdump's own BPF compiler selects."""
    out = subprocess.run(
        ["tcpdump", "-r", str(path), "-n", "-tt", expr], capture_output=True, text=True, check=True
    ).stdout
    return [int(line.split()[0].replace(".", "")) for line in out.splitlines() if line.strip()]


EXPRESSIONS = [
    "tcp",
    "udp",
    "icmp",
    "ip",
    "ip6",
    "host 127.0.0.2",
    "src host 127.0.0.1",
    "dst host ::1",
    "net 127.0.0.0/8",
    "not net 127.0.0.0/8",
    "udp and dst host 127.0.0.2",
    "tcp and (ip6 or udp)",
    "! tcp && ! udp",
    "icmp or ip6",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_filter_selects_what_tcpdump_selects(mixed_capture: Path, expr: str) -> None:
    pred = compile_filter(expr)
    ours = [
        p.ts_ns // 1000
        for p in (decode_packet(i, r) for i, r in enumerate(CaptureReader(str(mixed_capture)).records()))
        if pred(p)
    ]
    assert ours == _tcpdump_selects(mixed_capture, expr)


def test_port_expressions_match_tcpdump(mixed_capture: Path) -> None:
    packets = [decode_packet(i, r) for i, r in enumerate(CaptureReader(str(mixed_capture)).records())]
    tcp_ports = sorted({p.sport for p in packets if p.proto == 6})
    udp_ports = sorted({p.dport for p in packets if p.proto == 17})
    lo, hi = tcp_ports[0], tcp_ports[-1]
    for expr in (
        f"port {tcp_ports[0]}",
        f"tcp src port {tcp_ports[1]}",
        f"udp dst port {udp_ports[0]}",
        f"port {tcp_ports[0]} or {tcp_ports[-1]}",
        f"portrange {lo}-{hi}",
        f"tcp and not port {tcp_ports[0]}",
    ):
        pred = compile_filter(expr)
        assert [p.ts_ns // 1000 for p in packets if pred(p)] == _tcpdump_selects(mixed_capture, expr), expr


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("port x", "'x' is not a port"),
        ("foo", "unknown word 'foo'"),
        ("host 10.0.0.0/8", "is a network"),
        ("(tcp", "ends too early"),
        ("tcp )", r"unexpected '\)'"),
        ("portrange 9-1", "out of range"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expr: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        compile_filter(expr)
