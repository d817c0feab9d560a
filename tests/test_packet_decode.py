"""decode_packet against tshark and dpkt on hand-built frames of every supported link type.

Each case below is an IP datagram chosen to exercise one decoding rule (a TCP option
layout, an extension-header chain, a fragment, an ICMP quote); every case is wrapped in
every link type and written with dpkt's pcap writer, then our decode must agree field by
field with tshark's dissection and with dpkt's, and with the few values the case pins.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from capture_oracle import (
    addr,
    assert_matches_dpkt,
    assert_matches_tshark,
    eth,
    icmp_error,
    ipv4,
    ipv6,
    needs_tshark,
    read_packets,
    sll,
    sll2,
    tcp,
    udp,
    write_pcap_dpkt,
)

from wirecorr.model import ACK, PSH, SYN, Packet
from wirecorr.sources.packet_decode import SUPPORTED_LINKTYPES, decode_packet

A4, B4 = "192.0.2.1", "198.51.100.7"
A6, B6 = "2001:db8::1", "2001:db8:ffff::2"

MSS = b"\x02\x04\x05\xb4"
SACK_PERM = b"\x04\x02"
WSCALE7 = b"\x03\x03\x07"
NOP = b"\x01"


def ts_opt(val: int, ecr: int) -> bytes:
    return struct.pack("!BBII", 8, 10, val, ecr)


def sack_opt(*blocks: tuple[int, int]) -> bytes:
    return struct.pack("!BB", 5, 2 + 8 * len(blocks)) + b"".join(struct.pack("!II", le, re) for le, re in blocks)


# Linux's SYN layout, then the established NOP NOP TS fast path, then every other shape.
SYN_OPTS = MSS + SACK_PERM + ts_opt(0xDEADBEEF, 0) + NOP + WSCALE7
SACKS = [(0x80000000 + 1000 * i, 0x80000000 + 1000 * i + 500) for i in range(4)]

TCP_CASES: dict[str, tuple[bytes, dict[str, object]]] = {
    "syn": (
        tcp(40000, 80, 0xFFFFFFFF, 0, SYN, 64240, SYN_OPTS),
        dict(mss=1460, sack_perm=True, ts_val=0xDEADBEEF, ts_ecr=0, wscale=7, flags=SYN, seq=0xFFFFFFFF),
    ),
    "established_ts": (
        tcp(40000, 80, 1, 2, ACK | PSH, 502, NOP + NOP + ts_opt(7, 8), b"x" * 100),
        dict(ts_val=7, ts_ecr=8, payload_len=100, mss=None, sack=None),
    ),
    **{
        f"sack{n}": (
            tcp(80, 40000, 5, 6, ACK, 9, NOP + NOP + sack_opt(*SACKS[:n])),
            dict(sack=tuple(SACKS[:n]), ts_val=None),
        )
        for n in (1, 2, 3)
    },
    "sack4": (tcp(80, 40000, 5, 6, ACK, 9, NOP + NOP + sack_opt(*SACKS)), dict(sack=tuple(SACKS))),
    "sack_with_ts": (
        tcp(80, 40000, 5, 6, ACK, 9, NOP + NOP + ts_opt(1, 2) + NOP + NOP + sack_opt(*SACKS[:3])),
        dict(sack=tuple(SACKS[:3]), ts_val=1, ts_ecr=2),
    ),
    "tfo34": (
        tcp(40000, 80, 1, 0, SYN, 1, MSS + b"\x22\x0a" + bytes(range(1, 9)), b"GET"),
        dict(tfo_cookie=bytes(range(1, 9)), mss=1460, payload_len=3),
    ),
    "tfo34_request": (tcp(40000, 80, 1, 0, SYN, 1, MSS + b"\x22\x02"), dict(tfo_cookie=b"")),
    "tfo_experimental": (
        tcp(40000, 80, 1, 0, SYN, 1, b"\xfe\x0c\xf9\x89" + bytes(range(0xA0, 0xA8))),
        dict(tfo_cookie=bytes(range(0xA0, 0xA8))),
    ),
    "odd_nop_padding": (
        tcp(40000, 80, 1, 0, SYN, 1, NOP + MSS + NOP + NOP + NOP + WSCALE7 + NOP + SACK_PERM),
        dict(mss=1460, wscale=7, sack_perm=True),
    ),
    # Bytes after End of Option List are padding, even when they look like options.
    "eol_then_junk": (
        tcp(40000, 80, 1, 0, SYN, 1, MSS + b"\x00" + WSCALE7),
        dict(mss=1460, wscale=None),
    ),
    "no_options": (tcp(1, 65535, 0, 0, 0, 0), dict(flags=0, mss=None, sport=1, dport=65535)),
}


def _ip_cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    cases: dict[str, tuple[bytes, dict[str, object]]] = {}
    for name, (seg, pins) in TCP_CASES.items():
        cases[f"v4_{name}"] = (ipv4(A4, B4, 6, seg), dict(pins, ip_version=4, proto=6, src=addr(A4)))
        cases[f"v6_{name}"] = (ipv6(A6, B6, 6, seg), dict(pins, ip_version=6, proto=6, dst=addr(B6)))
    dgram = udp(5353, 53, b"q" * 33)
    syn = TCP_CASES["syn"][0]
    hop = (0, b"\x01\x04\0\0\0\0")  # PadN
    route = (43, b"\x00\x00" + b"\0" * 4 + addr("2001:db8::99"))  # type 0, segments left 0
    dest = (60, b"\x01\x04\0\0\0\0")
    cases.update(
        v4_udp=(ipv4(A4, B4, 17, dgram), dict(proto=17, sport=5353, dport=53, payload_len=33)),
        v6_udp=(ipv6(A6, B6, 17, dgram), dict(proto=17, sport=5353, dport=53, payload_len=33)),
        v6_ext_chain=(ipv6(A6, B6, 6, syn, (hop, route, dest)), dict(proto=6, mss=1460, sport=40000)),
        # First fragment (offset 0, M set): the transport header is there; the payload
        # length is what this fragment carries.
        v6_frag_first=(
            ipv6(A6, B6, 17, udp(7, 9, b"f" * 24), (hop, (44, struct.pack("!HI", 0x0001, 77)))),
            dict(proto=17, sport=7, dport=9),
        ),
        v6_frag_later=(
            ipv6(A6, B6, 6, b"z" * 16, ((44, struct.pack("!HI", 185 << 3, 77)),)),
            dict(proto=6, sport=0, dport=0, payload_len=0),
        ),
        v4_frag_first=(
            ipv4(A4, B4, 6, TCP_CASES["established_ts"][0], frag=0x2000),
            dict(proto=6, sport=40000, ts_val=7, payload_len=100),
        ),
        v4_frag_later=(ipv4(A4, B4, 6, b"z" * 16, frag=185), dict(proto=6, sport=0, seq=0, payload_len=0)),
        # Errors quote the offending datagram as the original sender sent it.
        v4_icmp_unreach_tcp=(
            ipv4(B4, A4, 1, icmp_error(3, 3, ipv4(A4, B4, 6, syn))),
            dict(icmp_type=3, icmp_code=3, quoted=(6, addr(A4), 40000, addr(B4), 80)),
        ),
        v4_icmp_ttl_udp_8bytes=(
            ipv4(B4, A4, 1, icmp_error(11, 0, ipv4(A4, B4, 17, dgram)[:28])),
            dict(icmp_type=11, icmp_code=0, quoted=(17, addr(A4), 5353, addr(B4), 53)),
        ),
        v6_icmp_unreach_tcp=(
            ipv6(B6, A6, 58, icmp_error(1, 4, ipv6(A6, B6, 6, syn))),
            dict(icmp_type=1, icmp_code=4, quoted=(6, addr(A6), 40000, addr(B6), 80)),
        ),
        v6_icmp_too_big_udp=(
            ipv6(B6, A6, 58, struct.pack("!BBHI", 2, 0, 0, 1280) + ipv6(A6, B6, 17, dgram)[:48]),
            dict(icmp_type=2, icmp_code=0, quoted=(17, addr(A6), 5353, addr(B6), 53)),
        ),
        v4_icmp_echo=(ipv4(A4, B4, 1, struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"), dict(icmp_type=8, quoted=None)),
    )
    return cases


IP_CASES = _ip_cases()

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD


def _etype(datagram: bytes) -> int:
    return ETH_IPV4 if datagram[0] >> 4 == 4 else ETH_IPV6


def _null(datagram: bytes, endian: str, v6_family: int) -> bytes:
    family = 2 if datagram[0] >> 4 == 4 else v6_family
    return struct.pack(endian + "I", family) + datagram


# name: (linktype, wrap, keep): every datagram the link type can carry, wrapped.
LINKS = {
    "ethernet": (1, lambda d: eth(d, _etype(d)), None),
    "ethernet_vlan": (1, lambda d: eth(d, _etype(d), (100,)), None),
    "ethernet_qinq": (1, lambda d: eth(d, _etype(d), (10, 200)), None),
    "sll": (113, lambda d: sll(d, _etype(d)), None),
    "sll2": (276, lambda d: sll2(d, _etype(d)), None),
    "raw": (101, lambda d: d, None),
    "ipv4": (228, lambda d: d, 4),
    "ipv6": (229, lambda d: d, 6),
    "null_le": (0, lambda d: _null(d, "<", 24), None),
    "null_be": (0, lambda d: _null(d, ">", 30), None),
    "loop": (108, lambda d: _null(d, ">", 28), None),
}


@pytest.fixture(scope="module", params=sorted(LINKS))
def link_capture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One pcap per link type holding every case it can carry (ns and µs alternate)."""
    linktype, wrap, keep = LINKS[request.param]
    names = [n for n, (d, _) in IP_CASES.items() if keep is None or d[0] >> 4 == keep]
    path = tmp_path_factory.mktemp("links") / f"{request.param}.pcap"
    write_pcap_dpkt(path, [wrap(IP_CASES[n][0]) for n in names], linktype, nano=linktype % 2 == 0)
    return path, names


def test_cases_pin_their_values(link_capture: tuple[Path, list[str]]) -> None:
    path, names = link_capture
    packets = read_packets(path)
    assert len(packets) == len(names)
    for pkt, name in zip(packets, names, strict=True):
        pins = IP_CASES[name][1]
        assert {k: getattr(pkt, k) for k in pins} == pins, name


@needs_tshark
def test_every_field_matches_tshark(link_capture: tuple[Path, list[str]]) -> None:
    assert_matches_tshark(link_capture[0])


def test_every_field_matches_dpkt(link_capture: tuple[Path, list[str]]) -> None:
    assert_matches_dpkt(link_capture[0])


def test_payload_is_the_segment_data() -> None:
    datagram = ipv4(A4, B4, 6, tcp(1, 2, 3, 4, ACK, 5, NOP + NOP + ts_opt(1, 2), b"hello world"))
    pkt = decode_packet(0, (0, 0, 0, 1, len(datagram) + 14, eth(datagram, ETH_IPV4), None))
    assert pkt.payload == b"hello world"
    assert pkt.flow == (addr(A4), 1, addr(B4), 2)


def test_linux_inet6_family_on_null_link() -> None:
    """Linux writes AF_INET6 = 10 into DLT_NULL headers; tshark does not know it, we do."""
    datagram = IP_CASES["v6_syn"][0]
    pkt = decode_packet(0, (0, 0, 0, 0, 0, struct.pack("<I", 10) + datagram, None))
    assert (pkt.ip_version, pkt.sport, pkt.mss) == (6, 40000, 1460)


@pytest.mark.parametrize("linktype", [147, 105, 9999])
def test_unknown_link_type_is_not_ip(linktype: int) -> None:
    frame = eth(IP_CASES["v4_syn"][0], ETH_IPV4)
    pkt = decode_packet(3, (5, 6, 0, linktype, len(frame), frame, None))
    assert (pkt.index, pkt.ts_ns, pkt.offset, pkt.ip_version, pkt.proto, pkt.caplen) == (3, 5, 6, 0, 0, len(frame))


def test_non_ip_ethertype_is_not_ip() -> None:
    arp = eth(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\0" * 20, 0x0806)
    assert decode_packet(0, (0, 0, 0, 1, len(arp), arp, None)).ip_version == 0


def test_truncated_and_random_frames_never_raise() -> None:
    """A capture is data: every prefix of every case, and random bytes, still decode."""
    rng = random.Random(20240601)
    frames = [
        (lt, wrap(d))
        for lt, wrap, keep in LINKS.values()
        for d, _ in IP_CASES.values()
        if keep is None or d[0] >> 4 == keep
    ]
    checked = 0
    for linktype, frame in frames[:: max(1, len(frames) // 60)]:
        for cut in range(len(frame) + 1):
            part = frame[:cut]
            decode_packet(0, (0, 0, 0, linktype, len(frame), part, None))
            checked += 1
    for _ in range(3000):
        frame = rng.randbytes(rng.randrange(0, 120))
        for linktype in SUPPORTED_LINKTYPES:
            pkt = decode_packet(0, (0, 0, 0, linktype, len(frame), frame, None))
            assert isinstance(pkt, Packet) and pkt.payload_offset <= max(len(frame), pkt.payload_offset)
            checked += 1
    assert checked > 30000


def test_snapped_frame_reports_header_lengths() -> None:
    """With a snaplen, tcp.len still comes from the IP header, not the bytes captured."""
    datagram = ipv4(A4, B4, 6, tcp(1, 2, 3, 4, ACK, 5, b"", b"d" * 1000))
    frame = eth(datagram, ETH_IPV4)
    pkt = decode_packet(0, (0, 0, 0, 1, len(frame), frame[:96], None))
    assert (pkt.caplen, pkt.wirelen, pkt.payload_len, len(pkt.payload)) == (96, len(frame), 1000, 96 - 54)
