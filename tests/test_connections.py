"""Connections built from real captures: endpoints, handshake options, states, closers.

Frames per direction and durations are checked against `tshark -z conv,tcp|udp` (inside
compare_with_tshark); the rest against what the test's own sockets did, which is known
without trusting our decoder: who connected, who closed first, who reset.
"""

from __future__ import annotations

import socket
from pathlib import Path

from capture_helpers import (
    analyze,
    compare_with_tshark,
    have_tshark,
    ipv4_tcp,
    needs_capture_tools,
    scenario,
    tshark_packets,
    write_raw_pcap,
)

from wirecorr.engine.connections import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    RESET,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    Connection,
)
from wirecorr.engine.tcp_analysis import PacketAnalyzer

LO4 = socket.inet_aton("127.0.0.1")
LO6 = socket.inet_pton(socket.AF_INET6, "::1")


def states(history: list[tuple[int, int, str]]) -> list[str]:
    return [state for _, _, state in history]


def check_indices(an: PacketAnalyzer) -> None:
    """packet_indices of each connection are exactly the table rows naming it (minus ICMP)."""
    by_conn: dict[int, list[int]] = {}
    for i, c in enumerate(an.table.conn):
        if c >= 0:
            by_conn.setdefault(c, []).append(i)
    for conn in an.connections:
        rows = by_conn.get(conn.id, [])
        assert sorted([*conn.packet_indices, *conn.icmp_indices]) == rows
        assert len(conn.packet_indices) == conn.packets_c2s + conn.packets_s2c


@needs_capture_tools
def test_fin_close_connection() -> None:
    path = scenario("fin_close")
    an = analyze(path)
    assert compare_with_tshark(path, an) == []
    check_indices(an)
    (conn,) = an.connections
    assert (conn.proto, conn.stream) == ("tcp", 0)
    assert conn.client_addr == conn.server_addr == LO4
    assert conn.client_port != conn.server_port
    first = an.table.row(0)
    assert first.direction == 0 and first.flags == 0x02
    # Linux on lo: MSS 65495, window scaling, SACK and timestamps on both SYNs.
    for opts in (conn.client_options, conn.server_options):
        assert opts is not None
        assert opts.mss == 65495 and opts.sack_perm and opts.timestamps and not opts.tfo
        assert opts.wscale is not None and opts.wscale > 0
    assert conn.wscale_in_use
    assert conn.client_wscale == conn.client_options.wscale
    assert conn.server_wscale == conn.server_options.wscale
    assert conn.client_isn is not None and conn.server_isn is not None
    # The client wrote 20000 bytes and read 400.
    assert (conn.bytes_c2s, conn.bytes_s2c) == (20000, 400)
    # The client shut down first: it is the TIME_WAIT side.
    assert conn.active_closer == "client"
    assert conn.reset_by is None
    assert states(conn.client_state)[:3] == [SYN_SENT, ESTABLISHED, FIN_WAIT_1]
    assert states(conn.client_state)[-1] == TIME_WAIT
    assert states(conn.server_state) == [SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED]
    history_indices = [i for _, i, _ in conn.client_state]
    assert history_indices == sorted(history_indices)
    # tcp.analysis.initial_rtt, where tshark shows it.
    irtts = {row["tcp.analysis.initial_rtt"] for row in tshark_packets(path)} - {""}
    assert len(irtts) == 1
    assert conn.initial_rtt_ns == round(float(irtts.pop()) * 1e9)
    assert conn.analysis_counts == {}


@needs_capture_tools
def test_resets_over_ipv6() -> None:
    path = scenario("resets")
    an = analyze(path)
    assert compare_with_tshark(path, an) == []
    check_indices(an)
    unread, linger = an.connections
    for conn in (unread, linger):
        assert conn.client_addr == LO6
        assert states(conn.client_state)[-1] == RESET
        assert states(conn.server_state)[-1] == RESET
        assert conn.active_closer is None
    # close() with unread data: the server resets; SO_LINGER 0: the client does.
    assert unread.reset_by == "server"
    assert linger.reset_by == "client"
    assert (unread.stream, linger.stream) == (0, 1)


@needs_capture_tools
def test_keepalive_connection_closed_by_server() -> None:
    path = scenario("keepalive")
    an = analyze(path)
    (conn,) = an.connections
    assert conn.analysis_counts["keep_alive"] >= 2
    assert conn.analysis_counts["keep_alive_ack"] >= 2
    assert conn.duration_ns > 3_000_000_000
    # The server thread returned first, so the server sent the first FIN.
    assert conn.active_closer == "server"
    assert states(conn.client_state)[-1] == CLOSED


@needs_capture_tools
def test_port_reuse_makes_two_connections() -> None:
    path = scenario("port_reuse")
    an = analyze(path)
    assert compare_with_tshark(path, an) == []
    check_indices(an)
    first, second = an.connections
    assert (first.client_port, first.server_port) == (second.client_port, second.server_port)
    assert (first.stream, second.stream) == (0, 1)
    assert first.client_isn != second.client_isn
    assert second.analysis_counts == {"reused_ports": 1}
    assert an.table.analysis[second.packet_indices[0]] != 0
    for conn in (first, second):
        assert conn.active_closer == "server"
        assert states(conn.server_state)[-1] == TIME_WAIT


@needs_capture_tools
def test_udp_flow_and_icmp_error() -> None:
    path = scenario("udp_and_icmp")
    an = analyze(path)
    assert compare_with_tshark(path, an) == []
    check_indices(an)
    echo, lost = an.connections
    assert (echo.proto, lost.proto) == ("udp", "udp")
    assert (echo.packets_c2s, echo.packets_s2c) == (3, 3)
    assert (echo.bytes_c2s, echo.bytes_s2c) == (15, 15)
    assert echo.client_state == [] and echo.icmp_errors == 0
    assert (lost.packets_c2s, lost.packets_s2c, lost.icmp_errors) == (1, 0, 1)
    (icmp_index,) = lost.icmp_indices
    assert an.table.conn[icmp_index] == lost.id
    assert an.table.direction[icmp_index] == 1


# -- exact packets for the state machine -------------------------------------------------

A, B = "10.0.0.1", "10.0.0.2"
T0 = 1_700_000_000_000_000_000


def run_exact(tmp_path: Path, spec: list[tuple[str, int, int, str]]) -> list[Connection]:
    """spec: (sender "a"/"b", seq, ack, flags); one packet per millisecond."""
    pkts = []
    for n, (who, seq, ack, flags) in enumerate(spec):
        src, dst, sp, dp = (A, B, 1000, 80) if who == "a" else (B, A, 80, 1000)
        pkts.append((T0 + n * 1_000_000, ipv4_tcp(src, dst, sp, dp, seq, ack, flags)))
    path = tmp_path / "states.pcap"
    write_raw_pcap(path, pkts)
    an = analyze(path)
    if have_tshark():
        assert compare_with_tshark(path, an) == []
    return an.connections


def test_simultaneous_close(tmp_path: Path) -> None:
    (conn,) = run_exact(
        tmp_path,
        [
            ("a", 100, 0, "S"),
            ("b", 500, 101, "SA"),
            ("a", 101, 501, "A"),
            ("a", 101, 501, "FA"),
            ("b", 501, 101, "FA"),  # crosses a's FIN: does not ack it
            ("a", 102, 502, "A"),
            ("b", 502, 102, "A"),
        ],
    )
    assert states(conn.client_state) == [SYN_SENT, ESTABLISHED, FIN_WAIT_1, CLOSING, TIME_WAIT]
    assert states(conn.server_state) == [SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED]
    assert conn.active_closer == "client"


def test_fin_ack_skips_fin_wait_2(tmp_path: Path) -> None:
    (conn,) = run_exact(
        tmp_path,
        [
            ("a", 100, 0, "S"),
            ("b", 500, 101, "SA"),
            ("a", 101, 501, "A"),
            ("b", 501, 101, "FA"),
            ("a", 101, 502, "FA"),  # acks b's FIN and closes at once
            ("b", 502, 102, "A"),
        ],
    )
    assert states(conn.server_state) == [SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, TIME_WAIT]
    assert states(conn.client_state) == [SYN_SENT, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED]
    assert conn.active_closer == "server"


def test_capture_started_mid_connection(tmp_path: Path) -> None:
    (conn,) = run_exact(
        tmp_path,
        [
            ("b", 900, 300, "PA"),
            ("a", 300, 901, "A"),
            ("a", 300, 901, "FA"),
            ("b", 901, 301, "A"),
        ],
    )
    # No SYN: the first sender is taken as the client, both ends start ESTABLISHED.
    assert (conn.client_port, conn.server_port) == (80, 1000)
    assert conn.client_options is None and conn.initial_rtt_ns is None
    assert states(conn.client_state) == [ESTABLISHED, CLOSE_WAIT]
    assert states(conn.server_state) == [ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2]


def test_syn_ack_first_makes_its_receiver_the_client(tmp_path: Path) -> None:
    (conn,) = run_exact(tmp_path, [("b", 500, 101, "SA"), ("a", 101, 501, "A")])
    assert (conn.client_port, conn.server_port) == (1000, 80)
    assert states(conn.server_state) == [SYN_RECEIVED, ESTABLISHED]
    assert states(conn.client_state) == [ESTABLISHED]


def test_reset_in_time_wait_closes_and_elsewhere_resets(tmp_path: Path) -> None:
    (conn,) = run_exact(
        tmp_path,
        [
            ("a", 100, 0, "S"),
            ("b", 500, 101, "SA"),
            ("a", 101, 501, "A"),
            ("a", 101, 501, "FA"),
            ("b", 501, 102, "A"),
            ("b", 501, 102, "FA"),
            ("a", 102, 502, "A"),
            ("b", 502, 102, "R"),
        ],
    )
    assert conn.reset_by == "server"
    # The TIME_WAIT side is killed by the RST (Linux without RFC 1337); CLOSED stays.
    assert states(conn.client_state)[-2:] == [TIME_WAIT, CLOSED]
    assert states(conn.server_state)[-1] == CLOSED
    assert conn.active_closer == "client"


def test_reset_during_handshake(tmp_path: Path) -> None:
    (conn,) = run_exact(tmp_path, [("a", 100, 0, "S"), ("b", 0, 101, "RA")])
    assert conn.reset_by == "server"
    assert states(conn.client_state) == [SYN_SENT, RESET]
    assert states(conn.server_state) == [RESET]
