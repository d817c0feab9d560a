"""Shared by the packet-source tests: capture builders and the tshark and dpkt oracles.

The oracles are independent implementations of what `CaptureReader` and `decode_packet`
do (Wireshark's wiretap + dissectors, and dpkt), so a test compares our output with
theirs on the same bytes instead of with numbers derived the same way we derive them.
"""

from __future__ import annotations

import io
import ipaddress
import shutil
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest

from wirecorr.model import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Packet, format_ip
from wirecorr.sources.capture_file import CaptureReader
from wirecorr.sources.packet_decode import decode_packet

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def read_packets(path: Path | str) -> list[Packet]:
    return [decode_packet(i, rec) for i, rec in enumerate(CaptureReader(str(path)).records())]


# -- container builders ------------------------------------------------------------------


def write_pcap_dpkt(path: Path, frames: list[bytes], linktype: int, nano: bool, t0: float = 1_700_000_000.25) -> None:
    """Write with dpkt's own writer, so the container is not produced by code under test."""
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, snaplen=65535, linktype=linktype, nano=nano)
    for i, frame in enumerate(frames):
        # Quarter-millisecond steps keep dpkt's float → fraction rounding clear of a carry.
        w.writepkt(frame, ts=t0 + i * 0.00025)
    path.write_bytes(buf.getvalue())


def pcap_bytes(
    records: list[tuple[int, int, bytes, int]],
    linktype: int = 1,
    nano: bool = False,
    endian: str = "<",
    snaplen: int = 65535,
) -> bytes:
    """A classic pcap file from (sec, frac, data, wirelen) records, in either byte order."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, wirelen in records:
        out.append(struct.pack(endian + "IIII", sec, frac, len(data), wirelen) + data)
    return b"".join(out)


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def ng_options(options: list[tuple[int, bytes]], endian: str = "<") -> bytes:
    """A pcapng option list with its opt_endofopt, or nothing when there are no options."""
    if not options:
        return b""
    body = b"".join(struct.pack(endian + "HH", code, len(v)) + _pad4(v) for code, v in options)
    return body + struct.pack(endian + "HH", 0, 0)


def ng_block(btype: int, body: bytes, endian: str = "<") -> bytes:
    body = _pad4(body)
    blen = 12 + len(body)
    return struct.pack(endian + "II", btype, blen) + body + struct.pack(endian + "I", blen)


def ng_shb(endian: str = "<") -> bytes:
    return ng_block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)


def ng_idb(
    linktype: int,
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    name: str | None = None,
    endian: str = "<",
) -> bytes:
    opts: list[tuple[int, bytes]] = []
    if name is not None:
        opts.append((2, name.encode()))
    if tsresol is not None:
        opts.append((9, bytes([tsresol])))
    if tsoffset is not None:
        opts.append((14, struct.pack(endian + "q", tsoffset)))
    return ng_block(1, struct.pack(endian + "HHI", linktype, 0, snaplen) + ng_options(opts, endian), endian)


def ng_epb(
    iface: int,
    ts_units: int,
    data: bytes,
    wirelen: int | None = None,
    comments: tuple[str, ...] = (),
    endian: str = "<",
) -> bytes:
    orig = len(data) if wirelen is None else wirelen
    head = struct.pack(endian + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), orig)
    opts = ng_options([(1, c.encode()) for c in comments], endian)
    return ng_block(6, head + _pad4(data) + opts, endian)


def ng_spb(data: bytes, endian: str = "<") -> bytes:
    return ng_block(3, struct.pack(endian + "I", len(data)) + data, endian)


# -- frame builders ----------------------------------------------------------------------


def addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def ipv4(src: str, dst: str, proto: int, payload: bytes, frag: int = 0, total: int | None = None) -> bytes:
    """IPv4 with a correct header checksum (tshark reports bad ones; it must see clean input)."""
    length = 20 + len(payload) if total is None else total
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 0x1234, frag, 64, proto, 0, addr(src), addr(dst))
    csum = dpkt.in_cksum(hdr)
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:] + payload


def ipv6(src: str, dst: str, nxt: int, payload: bytes, ext: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """IPv6 with extension headers given as (header type, body after nxt/len bytes).

    The Fragment header is passed as (44, 6-byte body); the others are padded to 8n bytes."""
    chain = b""
    types = [t for t, _ in ext] + [nxt]
    for i, (htype, body) in enumerate(ext):
        following = types[i + 1]
        if htype == 44:
            chain += struct.pack("!BB", following, 0) + body
        else:
            body = body + b"\0" * (-(len(body) + 2) % 8)
            chain += struct.pack("!BB", following, (len(body) + 2) // 8 - 1) + body
    first = ext[0][0] if ext else nxt
    plen = len(chain) + len(payload)
    return struct.pack("!IHBB16s16s", 0x60000000, plen, first, 64, addr(src), addr(dst)) + chain + payload


def tcp(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int = 65535,
    options: bytes = b"",
    payload: bytes = b"",
) -> bytes:
    options = _pad4(options)
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0) + options + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_error(icmp_type: int, code: int, quoted: bytes) -> bytes:
    """ICMP/ICMPv6 errors share the layout type, code, checksum, 4 unused bytes, quote."""
    return struct.pack("!BBHI", icmp_type, code, 0, 0) + quoted


def eth(payload: bytes, etype: int, vlans: tuple[int, ...] = ()) -> bytes:
    tags = b""
    for i, vid in enumerate(vlans):
        tpid = 0x88A8 if i == 0 and len(vlans) > 1 else 0x8100
        tags += struct.pack("!HH", tpid, vid)
    return b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02" + tags + struct.pack("!H", etype) + payload


def sll(payload: bytes, etype: int) -> bytes:
    return struct.pack("!HHH8sH", 4, 772, 6, b"\0" * 8, etype) + payload


def sll2(payload: bytes, etype: int) -> bytes:
    return struct.pack("!HHIHBB8s", etype, 0, 1, 772, 4, 6, b"\0" * 8) + payload


# -- tshark oracle -----------------------------------------------------------------------

TSHARK_FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "frame.len",
    "frame.cap_len",
    "frame.interface_id",
    "frame.protocols",
    "frame.encap_type",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.len",
    "tcp.option_kind",
    "tcp.options.mss_val",
    "tcp.options.wscale.shift",
    "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr",
    "tcp.options.sack_le",
    "tcp.options.sack_re",
    "tcp.options.tfo.cookie",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
    "udp.length",
    "frame.comment",
)

# Comments may hold commas; every other field is numeric, hex or an address.
_AGGREGATOR = "\x1f"


def tshark_rows(path: Path | str) -> list[dict[str, list[str]]]:
    """Every field of every frame as tshark 4.0 dissects it, all occurrences in order.

    Absolute sequence numbers (and absolute SACK edges), no reassembly: the oracle must
    describe each frame alone, as decode_packet does."""
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"]
    cmd += ["-E", f"aggregator={_AGGREGATOR}", "-o", "tcp.relative_sequence_numbers:FALSE"]
    cmd += ["-o", "tcp.desegment_tcp_streams:FALSE", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
    cmd += ["-o", "tcp.analyze_sequence_numbers:FALSE"]
    for name in TSHARK_FIELDS:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        assert len(values) == len(TSHARK_FIELDS), line
        row = {k: (v.split(_AGGREGATOR) if v else []) for k, v in zip(TSHARK_FIELDS, values, strict=True)}
        # wiretap shows pcapng Custom Blocks as frames without an encapsulation;
        # CaptureReader keeps them aside.
        if row["frame.encap_type"]:
            rows.append(row)
    return rows


def epoch_to_ns(text: str) -> int:
    """tshark's decimal seconds as exact integer ns (a float would lose the last digits)."""
    return int(Decimal(text) * 1_000_000_000)


def _ints(values: list[str]) -> list[int]:
    return [int(v, 0) for v in values]


def expected_from_tshark(row: dict[str, list[str]]) -> dict[str, object]:
    """The Packet fields tshark's dissection implies, in decode_packet's conventions.

    In an ICMP error tshark dissects the quoted datagram too: its addresses are the
    second ip/ipv6 occurrence and its ports the only tcp/udp ones, which decode_packet
    keeps in `quoted` rather than on the packet."""
    exp: dict[str, object] = {
        # Simple Packet Blocks have no timestamp; CaptureReader gives them 0.
        "ts_ns": epoch_to_ns(row["frame.time_epoch"][0]) if row["frame.time_epoch"] else 0,
        "wirelen": int(row["frame.len"][0]),
        "caplen": int(row["frame.cap_len"][0]),
        "comment": "\n".join(row["frame.comment"]) or None,
    }
    if row["frame.interface_id"]:
        exp["iface"] = int(row["frame.interface_id"][0])
    v4 = row["ip.src"]
    v6 = row["ipv6.src"]
    layers = row["frame.protocols"][0].split(":")
    ip_layers = [p for p in layers if p in ("ip", "ipv6")]
    if not ip_layers:
        exp["ip_version"] = 0
        return exp
    outer_v6 = ip_layers[0] == "ipv6"
    if outer_v6:
        exp.update(ip_version=6, src=addr(v6[0]), dst=addr(row["ipv6.dst"][0]))
        inner_src, inner_dst = v6[1:], row["ipv6.dst"][1:]
    else:
        exp.update(ip_version=4, src=addr(v4[0]), dst=addr(row["ip.dst"][0]))
        inner_src, inner_dst = v4[1:], row["ip.dst"][1:]
    icmp_type = row["icmp.type"] or row["icmpv6.type"]
    if icmp_type:
        code = row["icmp.code"] or row["icmpv6.code"]
        exp.update(proto=PROTO_ICMPV6 if outer_v6 else PROTO_ICMP, icmp_type=int(icmp_type[0]), icmp_code=int(code[0]))
        if inner_src:
            if row["tcp.srcport"]:
                qproto, sport, dport = PROTO_TCP, int(row["tcp.srcport"][0]), int(row["tcp.dstport"][0])
            else:
                qproto, sport, dport = PROTO_UDP, int(row["udp.srcport"][0]), int(row["udp.dstport"][0])
            exp["quoted"] = (qproto, addr(inner_src[0]), sport, addr(inner_dst[0]), dport)
        else:
            exp["quoted"] = None
        return exp
    if row["tcp.srcport"]:
        kinds = _ints(row["tcp.option_kind"])
        sack = None
        if row["tcp.options.sack_le"]:
            sack = tuple(zip(_ints(row["tcp.options.sack_le"]), _ints(row["tcp.options.sack_re"]), strict=True))
        exp.update(
            proto=PROTO_TCP,
            sport=int(row["tcp.srcport"][0]),
            dport=int(row["tcp.dstport"][0]),
            seq=int(row["tcp.seq_raw"][0]),
            ack=int(row["tcp.ack_raw"][0]),
            flags=int(row["tcp.flags"][0], 16) & 0xFF,
            window=int(row["tcp.window_size_value"][0]),
            mss=int(row["tcp.options.mss_val"][0]) if row["tcp.options.mss_val"] else None,
            wscale=int(row["tcp.options.wscale.shift"][0]) if row["tcp.options.wscale.shift"] else None,
            sack_perm=4 in kinds,
            ts_val=int(row["tcp.options.timestamp.tsval"][0]) if row["tcp.options.timestamp.tsval"] else None,
            ts_ecr=int(row["tcp.options.timestamp.tsecr"][0]) if row["tcp.options.timestamp.tsecr"] else None,
            sack=sack,
            tfo_cookie=_tfo_cookie(row, kinds),
        )
        # tshark leaves tcp.len out for the first fragment of a datagram it does not reassemble.
        if row["tcp.len"]:
            exp["payload_len"] = int(row["tcp.len"][0])
    elif row["udp.srcport"]:
        exp.update(
            proto=PROTO_UDP,
            sport=int(row["udp.srcport"][0]),
            dport=int(row["udp.dstport"][0]),
            payload_len=int(row["udp.length"][0]) - 8,
        )
    return exp


def _tfo_cookie(row: dict[str, list[str]], kinds: list[int]) -> bytes | None:
    """tshark shows a cookie request (kind 34 with no cookie) as tfo.request, not an empty cookie."""
    if row["tcp.options.tfo.cookie"]:
        return bytes.fromhex(row["tcp.options.tfo.cookie"][0].replace(":", ""))
    return b"" if 34 in kinds else None


def assert_matches_tshark(path: Path | str, packets: list[Packet] | None = None) -> list[Packet]:
    """Compare every decoded field of every frame with tshark; returns our packets."""
    packets = read_packets(path) if packets is None else packets
    rows = tshark_rows(path)
    assert len(packets) == len(rows), f"{path}: {len(packets)} packets, tshark sees {len(rows)}"
    for index, (pkt, row) in enumerate(zip(packets, rows, strict=True)):
        assert pkt.index == index
        exp = expected_from_tshark(row)
        got = {k: getattr(pkt, k) for k in exp}
        assert got == exp, f"{path} frame {pkt.index + 1}: {_diff(got, exp)}"
    return packets


def _diff(got: dict[str, object], exp: dict[str, object]) -> str:
    show = {k: format_ip(v) if k in ("src", "dst") and isinstance(v, bytes) and v else v for k, v in got.items()}
    return "; ".join(f"{k}: ours {show[k]!r} tshark {exp[k]!r}" for k in exp if got[k] != exp[k])


# -- dpkt oracle -------------------------------------------------------------------------


def dpkt_network(linktype: int, frame: bytes) -> dpkt.Packet | None:
    """dpkt's IP/IP6 object for a frame, through dpkt's own link-layer classes."""
    if linktype == 1:
        layer = dpkt.ethernet.Ethernet(frame).data
    elif linktype == 113:
        layer = dpkt.sll.SLL(frame).data
    elif linktype == 276:
        layer = dpkt.sll2.SLL2(frame).data
    elif linktype in (0, 108):
        layer = dpkt.loopback.Loopback(frame).data
    elif linktype in (101, 228, 229):
        layer = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
    else:
        return None
    return layer if isinstance(layer, dpkt.ip.IP | dpkt.ip6.IP6) else None


def expected_from_dpkt(linktype: int, frame: bytes) -> dict[str, object]:
    """The Packet fields dpkt's decode implies for a fully captured frame."""
    ip = dpkt_network(linktype, frame)
    if ip is None:
        return {"ip_version": 0}
    exp: dict[str, object] = {"ip_version": ip.v, "src": ip.src, "dst": ip.dst, "proto": ip.p}
    l4 = ip.data
    if isinstance(l4, dpkt.tcp.TCP):
        opts: dict[str, object] = {"mss": None, "wscale": None, "sack_perm": False, "ts_val": None, "ts_ecr": None}
        opts.update(sack=None, tfo_cookie=None)
        for kind, data in dpkt.tcp.parse_opts(l4.opts):
            if kind == dpkt.tcp.TCP_OPT_EOL:
                break  # RFC 9293: nothing after End of Option List is an option (dpkt reads on)
            if kind == dpkt.tcp.TCP_OPT_MSS:
                opts["mss"] = struct.unpack("!H", data)[0]
            elif kind == dpkt.tcp.TCP_OPT_WSCALE:
                opts["wscale"] = data[0]
            elif kind == dpkt.tcp.TCP_OPT_SACKOK:
                opts["sack_perm"] = True
            elif kind == dpkt.tcp.TCP_OPT_SACK:
                opts["sack"] = tuple(struct.unpack_from("!II", data, i) for i in range(0, len(data), 8))
            elif kind == dpkt.tcp.TCP_OPT_TIMESTAMP:
                opts["ts_val"], opts["ts_ecr"] = struct.unpack("!II", data)
            elif kind == 34:
                opts["tfo_cookie"] = data
            elif kind == 254 and data[:2] == b"\xf9\x89":
                opts["tfo_cookie"] = data[2:]
        exp.update(sport=l4.sport, dport=l4.dport, seq=l4.seq, ack=l4.ack, flags=l4.flags, window=l4.win)
        exp.update(payload_len=len(l4.data), **opts)
    elif isinstance(l4, dpkt.udp.UDP):
        exp.update(sport=l4.sport, dport=l4.dport, payload_len=len(l4.data))
    elif isinstance(l4, dpkt.icmp.ICMP | dpkt.icmp6.ICMP6):
        exp.update(icmp_type=l4.type, icmp_code=l4.code, quoted=None)
        if l4.type not in ((3, 4, 5, 11, 12) if ip.v == 4 else (1, 2, 3, 4)):
            return exp
        quote = bytes(l4.data)[4:]  # dpkt keeps the 4 unused bytes in front of the quote
        inner = dpkt.ip.IP(quote) if quote[0] >> 4 == 4 else dpkt.ip6.IP6(quote)
        sport, dport = struct.unpack_from("!HH", bytes(inner.data))
        exp["quoted"] = (inner.p, inner.src, sport, inner.dst, dport)
    return exp


def assert_matches_dpkt(path: Path | str, packets: list[Packet] | None = None) -> None:
    """Compare with dpkt, the project's reference decoder, frame by frame."""
    packets = read_packets(path) if packets is None else packets
    linktypes = {i: iface.linktype for i, iface in enumerate(_interfaces(path))}
    for pkt in packets:
        exp = expected_from_dpkt(linktypes[pkt.iface], pkt.frame)
        got = {k: getattr(pkt, k) for k in exp}
        assert got == exp, f"{path} frame {pkt.index + 1}: dpkt {exp} ours {got}"


def _interfaces(path: Path | str) -> list:
    reader = CaptureReader(str(path))
    for _ in reader.records():
        pass
    return reader.interfaces
