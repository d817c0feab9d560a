"""Per-packet TCP analysis against Wireshark 4.0 (tshark) on real and exact captures.

The oracle is tshark on the same file: every tcp.analysis.* flag, the duplicate-ACK
numbers and frames, the acknowledged frame, the ACK RTT to the nanosecond, bytes in
flight, relative seq/ack, tcp.len and the scaled window, per packet; frames per direction
and duration per connection. No difference is tolerated: where our rules are Wireshark's,
any difference is a bug in the port.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from capture_helpers import (
    BULK_BYTES,
    analyze,
    compare_with_tshark,
    ipv4_tcp,
    lossy_bulk,
    needs_capture_tools,
    sack_opt,
    scenario,
    write_raw_pcap,
    wscale_opt,
)
from helpers import netns

from wirecorr.engine.analysis_flags import AnalysisFlag, flag_names, wireshark_fields
from wirecorr.engine.tcp_analysis import PacketAnalyzer
from wirecorr.sources.capture_file import CaptureReader
from wirecorr.sources.packet_decode import decode_packet

pytestmark = needs_capture_tools


def flag_counts(an: PacketAnalyzer) -> collections.Counter[str]:
    return collections.Counter(name for mask in an.table.analysis for name in flag_names(mask))


# Flags each real scenario must show, so a test cannot pass by analysing nothing.
EXPECTED_FLAGS = {
    "fin_close": set(),
    "resets": set(),
    "keepalive": {"keep_alive", "keep_alive_ack"},
    "zero_window": {"zero_window", "window_update", "window_full"},
    "port_reuse": {"reused_ports"},
    "udp_and_icmp": set(),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FLAGS))
def test_loopback_capture_equals_tshark(name: str) -> None:
    path = scenario(name)
    an = analyze(path)
    assert len(an.table) > 0
    assert compare_with_tshark(path, an) == []
    assert EXPECTED_FLAGS[name] <= set(flag_counts(an))


def test_fin_close_has_rtts_and_bytes_in_flight() -> None:
    an = analyze(scenario("fin_close"))
    table = an.table
    assert len(table.ack_rtt_ns) >= 3
    assert all(0 < rtt < 1_000_000_000 for rtt in table.ack_rtt_ns.values())
    assert max(table.bytes_in_flight) > 0
    assert flag_counts(an) == collections.Counter()


@pytest.mark.netns
def test_lossy_bulk_transfer_equals_tshark(tmp_path: Path) -> None:
    """Real loss: 10 % of segments dropped by nftables in the receiving namespace."""
    path = tmp_path / "lossy.pcap"
    with netns(pair=True) as pair:
        received = lossy_bulk(path, pair)
    assert received == str(BULK_BYTES)
    an = analyze(path)
    assert len(an.table) > 1000
    assert compare_with_tshark(path, an) == []
    counts = flag_counts(an)
    assert counts["retransmission"] + counts["fast_retransmission"] > 0
    assert counts["duplicate_ack"] > 0
    assert len(an.table.dupack_num) == counts["duplicate_ack"]


# -- exact packets -----------------------------------------------------------------------

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
A, B = "10.0.0.1", "10.0.0.2"


def _exact_capture(path: Path) -> dict[int, set[str]]:
    """One connection walking through every analysis rule, then a port reuse.

    Returns the flags each packet (by index) must carry, as worked out by hand from
    Wireshark's rules, so the test checks both tshark and our understanding.
    """
    pkts: list[tuple[int, bytes]] = []
    expect: dict[int, set[str]] = {}

    def a(t: float, seq: int, ack: int, flags: str, *, want: set[str] = frozenset(), **kw: object) -> None:
        expect[len(pkts)] = set(want)
        pkts.append((T0 + int(t * MS), ipv4_tcp(A, B, 1000, 80, seq, ack, flags, **kw)))  # type: ignore[arg-type]

    def b(t: float, seq: int, ack: int, flags: str, *, want: set[str] = frozenset(), **kw: object) -> None:
        expect[len(pkts)] = set(want)
        pkts.append((T0 + int(t * MS), ipv4_tcp(B, A, 80, 1000, seq, ack, flags, **kw)))  # type: ignore[arg-type]

    a(0, 1000, 0, "S", win=64000, opts=wscale_opt(2))
    b(1, 5000, 1001, "SA", win=8000, opts=wscale_opt(1))
    a(2, 1001, 5001, "A", win=500)
    a(3, 1001, 5001, "PA", win=500, payload=100)
    a(3.1, 1101, 5001, "PA", win=500, payload=100)
    a(3.2, 1301, 5001, "PA", win=500, payload=100, want={"lost_segment"})
    b(4, 5001, 1201, "A", win=4000)
    b(4.1, 5001, 1201, "A", win=4000, want={"duplicate_ack"})
    b(4.2, 5001, 1201, "A", win=4000, opts=sack_opt((1301, 1401)), want={"duplicate_ack"})
    a(4.3, 1201, 5001, "PA", win=500, payload=100, want={"fast_retransmission", "retransmission"})
    b(5, 5001, 1401, "A", win=4000)
    a(6, 1101, 5001, "PA", win=500, payload=100, want={"spurious_retransmission", "retransmission"})
    a(7, 1401, 5001, "PA", win=500, payload=50)
    a(7.5, 1451, 5001, "PA", win=500, payload=50)
    a(7.6, 1401, 5001, "PA", win=500, payload=50, want={"out_of_order"})
    a(20, 1401, 5001, "PA", win=500, payload=50, want={"retransmission"})
    b(21, 5001, 1501, "A", win=0, want={"zero_window"})
    a(22, 1501, 5001, "PA", win=500, payload=1, want={"zero_window_probe"})
    b(23, 5001, 1501, "A", win=0, want={"zero_window", "zero_window_probe_ack"})
    b(24, 5001, 1501, "A", win=4000, want={"window_update"})
    a(25, 1501, 5001, "PA", win=500, payload=8000, want={"window_full"})
    b(26, 5001, 9501, "A", win=4000)
    a(1000, 9500, 5001, "A", win=500, want={"keep_alive"})
    b(1001, 5001, 9501, "A", win=4000, want={"keep_alive_ack"})
    b(1100, 5001, 20000, "A", win=4000, want={"ack_lost_segment"})
    a(1200, 9501, 5001, "FA", win=500)
    # A's FIN moved its highest acknowledgeable seq to 9502: nothing unseen is acked here.
    b(1210, 5001, 9502, "FA", win=4000)
    a(1220, 9502, 5002, "A", win=500)
    a(2000, 777777, 0, "S", win=64000, opts=wscale_opt(2), want={"reused_ports"})
    b(2001, 999, 777778, "SA", win=8000, opts=wscale_opt(1))
    a(2002, 777778, 1000, "A", win=500)
    write_raw_pcap(path, pkts)
    return expect


def test_exact_rules_equal_tshark(tmp_path: Path) -> None:
    path = tmp_path / "exact.pcap"
    expect = _exact_capture(path)
    an = analyze(path)
    assert compare_with_tshark(path, an) == []
    got = {i: set(flag_names(mask)) for i, mask in enumerate(an.table.analysis)}
    assert got == expect
    # Every flag of the enum is exercised (retransmission as itself, not only as a side field).
    assert {name for names in got.values() for name in names} == set(flag_names(sum(AnalysisFlag)))
    conn = an.connections[0]
    assert conn.initial_rtt_ns == 2 * MS
    assert an.connections[1].analysis_counts == {"reused_ports": 1}


def test_wireshark_fields_add_retransmission_for_fast_and_spurious() -> None:
    assert wireshark_fields(AnalysisFlag.FAST_RETRANSMISSION) == {
        "tcp.analysis.fast_retransmission",
        "tcp.analysis.retransmission",
        "tcp.analysis.flags",
    }
    assert wireshark_fields(0) == set()


# -- incremental and filtered feeding ----------------------------------------------------


def test_rows_do_not_change_when_more_packets_arrive() -> None:
    """Live capture reads rows while packets keep coming: row i depends on packets ≤ i."""
    path = scenario("zero_window")
    full = analyze(path)
    half = PacketAnalyzer()
    records = list(CaptureReader(str(path)).records())
    n = len(records) // 2
    for i, rec in enumerate(records[:n]):
        half.feed(decode_packet(i, rec))
    for col_full, col_half in zip(full.table.columns(), half.table.columns(), strict=True):
        assert col_half.tolist() == col_full[:n].tolist()
    assert dict(half.table.ack_rtt_ns) == {k: v for k, v in full.table.ack_rtt_ns.items() if k < n}


def test_filtered_feed_keeps_row_index_equal_to_packet_index() -> None:
    path = scenario("udp_and_icmp")
    an = PacketAnalyzer()
    kept = []
    for i, rec in enumerate(CaptureReader(str(path)).records()):
        if i % 3 == 2:
            an.feed(decode_packet(i, rec))
            kept.append(i)
    an.finish()
    assert len(an.table) == kept[-1] + 1
    for i in range(len(an.table)):
        if i not in kept:
            assert an.table.conn[i] == -1 and an.table.ts_ns[i] == 0


def test_table_is_compact() -> None:
    an = analyze(scenario("zero_window"))
    assert an.table.nbytes() / len(an.table) < 60
