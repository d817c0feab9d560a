"""CaptureReader against tshark (wiretap) on hand-built and real captures, and on damage.

Hand-built files cover what dpkt's writers cannot express (pcapng resolutions and offsets,
several interfaces, comments, Simple Packet Blocks, unknown blocks, big-endian sections);
real files come from tcpdump and dumpcap capturing this test's own loopback traffic.
Damaged copies of the real files must fail only with InputError, at the right offset,
after yielding exactly the records the clean file has before the damage.
"""

from __future__ import annotations

import importlib
import itertools
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from capture_oracle import (
    addr,
    assert_matches_dpkt,
    assert_matches_tshark,
    eth,
    ipv4,
    ipv6,
    needs_tshark,
    ng_block,
    ng_epb,
    ng_idb,
    ng_shb,
    ng_spb,
    pcap_bytes,
    read_packets,
    sll2,
    tcp,
    tshark_rows,
    udp,
    write_pcap_dpkt,
)
from helpers import free_port

from wirecorr.errors import InputError
from wirecorr.model import ACK, SYN
from wirecorr.sources.capture_file import CaptureReader, CorruptCapture, RawRecord, TruncatedCapture
from wirecorr.sources.packet_decode import decode_packet

T0 = 1_700_000_000
DATAGRAM = ipv4("10.1.2.3", "10.9.8.7", 6, tcp(1234, 80, 100, 200, ACK, 300, b"", b"abc"))
FRAME = eth(DATAGRAM, 0x0800)
V6_FRAME = sll2(ipv6("fe80::1", "fe80::2", 17, udp(546, 547, b"dhcp")), 0x86DD)


def records(path: Path | str) -> list[RawRecord]:
    return list(CaptureReader(str(path)).records())


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- pcap --------------------------------------------------------------------------------


@needs_tshark
@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
def test_pcap_from_dpkt_writer(tmp_path: Path, nano: bool) -> None:
    path = tmp_path / "dpkt.pcap"
    write_pcap_dpkt(path, [FRAME] * 5, linktype=1, nano=nano)
    packets = assert_matches_tshark(path)
    assert [p.offset for p in packets] == [24 + i * (16 + len(FRAME)) for i in range(5)]
    if not nano:
        assert all(p.ts_ns % 1000 == 0 for p in packets)
    assert packets[0].ts_ns == 1_700_000_000_250_000_000


@needs_tshark
@pytest.mark.parametrize("endian", ["<", ">"], ids=["le", "be"])
@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
def test_pcap_exact_timestamps_and_snapped_length(tmp_path: Path, endian: str, nano: bool) -> None:
    top = 999_999_999 if nano else 999_999
    recs = [(T0, 0, FRAME, len(FRAME)), (T0, top, FRAME[:56], 1514), (0xFFFFFFFF, 1, FRAME, len(FRAME))]
    path = write(tmp_path, "x.pcap", pcap_bytes(recs, nano=nano, endian=endian, snaplen=1514))
    packets = assert_matches_tshark(path)
    unit = 1 if nano else 1000
    assert [p.ts_ns for p in packets] == [T0 * 10**9, T0 * 10**9 + top * unit, 0xFFFFFFFF * 10**9 + unit]
    assert [(p.caplen, p.wirelen) for p in packets] == [(len(FRAME), len(FRAME)), (56, 1514), (len(FRAME),) * 2]
    assert packets[1].payload_len == 3 and packets[1].sport == 1234


# -- pcapng ------------------------------------------------------------------------------


def _ng_resolutions(endian: str) -> tuple[bytes, list[int]]:
    """One interface per if_tsresol, with units whose ns value is not a round number.

    For 2^-20 s the unit is 953.674… ns: conversion must floor, as wiretap does."""
    blocks = [ng_shb(endian)]
    expected = []
    for i, (resol, units, ns) in enumerate(
        [
            (3, T0 * 1000 + 7, T0 * 10**9 + 7_000_000),
            (6, T0 * 10**6 + 123_457, T0 * 10**9 + 123_457_000),
            (9, T0 * 10**9 + 987_654_321, T0 * 10**9 + 987_654_321),
            (0x80 | 20, (T0 << 20) + 1, T0 * 10**9 + 953),
            (0x80 | 20, (T0 << 20) + (1 << 20) - 1, T0 * 10**9 + 999_999_046),
        ]
    ):
        blocks.append(ng_idb(1, tsresol=resol, endian=endian))
        blocks.append(ng_epb(i, units, FRAME, endian=endian))
        expected.append(ns)
    return b"".join(blocks), expected


@needs_tshark
@pytest.mark.parametrize("endian", ["<", ">"], ids=["le", "be"])
def test_pcapng_timestamp_resolutions(tmp_path: Path, endian: str) -> None:
    data, expected = _ng_resolutions(endian)
    path = write(tmp_path, "res.pcapng", data)
    packets = assert_matches_tshark(path)
    assert [p.ts_ns for p in packets] == expected
    assert [p.iface for p in packets] == [0, 1, 2, 3, 4]


@needs_tshark
def test_pcapng_default_resolution_and_tsoffset(tmp_path: Path) -> None:
    data = (
        ng_shb()
        + ng_idb(1)  # no if_tsresol: µs
        + ng_idb(1, tsresol=9, tsoffset=3600)
        + ng_idb(1, tsresol=6, tsoffset=-T0)
        + ng_epb(0, T0 * 10**6 + 1, FRAME)
        + ng_epb(1, T0 * 10**9 + 5, FRAME)
        + ng_epb(2, 2 * T0 * 10**6 + 2, FRAME)
    )
    packets = assert_matches_tshark(write(tmp_path, "off.pcapng", data))
    assert [p.ts_ns for p in packets] == [T0 * 10**9 + 1000, (T0 + 3600) * 10**9 + 5, T0 * 10**9 + 2000]


@needs_tshark
def test_pcapng_two_link_types_comments_spb_unknown_blocks(tmp_path: Path) -> None:
    data = (
        ng_shb()
        + ng_idb(1, snaplen=0, tsresol=9, name="eth0")
        + ng_idb(276, snaplen=65535, tsresol=6, name="any")
        + ng_epb(0, T0 * 10**9, FRAME, comments=("first, with a comma",))
        + ng_block(0x00012345, b"unknown block body")  # spec: skip blocks you do not know
        + ng_epb(1, T0 * 10**6 + 1, V6_FRAME, comments=("two", "comments: ünïcode"))
        + ng_block(0x00000BAD, struct.pack("<I", 32473) + b"custom data!")
        + ng_block(5, struct.pack("<IIIII", 0, 0, 0, 0, 0))  # interface statistics
        + ng_block(4, struct.pack("<HH", 0, 0))  # name resolution, empty
        + ng_epb(0, T0 * 10**9 + 1, FRAME[:34], wirelen=len(FRAME))  # IP header only
    )
    path = write(tmp_path, "mix.pcapng", data)
    reader = CaptureReader(str(path))
    recs = list(reader.records())
    assert reader.format == "pcapng" and reader.skipped_blocks == 1
    assert [(c.pen, c.data) for c in reader.custom_blocks] == [(32473, b"custom data!")]
    assert [(i.linktype, i.name, i.units_per_sec) for i in reader.interfaces] == [
        (1, "eth0", 10**9),
        (276, "any", 10**6),
    ]
    assert [(r[2], r[3], r[6]) for r in recs] == [
        (0, 1, "first, with a comma"),
        (1, 276, "two\ncomments: ünïcode"),
        (0, 1, None),
    ]
    packets = assert_matches_tshark(path)
    assert packets[1].ip_version == 6 and packets[1].sport == 546
    assert (packets[2].caplen, packets[2].wirelen, packets[2].proto, packets[2].sport) == (34, len(FRAME), 6, 0)


@needs_tshark
def test_pcapng_simple_packet_block(tmp_path: Path) -> None:
    """SPBs have no timestamp (0 here) and belong to interface 0."""
    data = ng_shb() + ng_idb(276, snaplen=96) + ng_spb(V6_FRAME) + ng_spb(V6_FRAME[:60])
    path = write(tmp_path, "spb.pcapng", data)
    recs = records(path)
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in recs] == [
        (0, 0, 276, len(V6_FRAME), V6_FRAME),
        (0, 0, 276, 60, V6_FRAME[:60]),
    ]
    assert_matches_tshark(path)


def test_pcapng_simple_packet_block_cut_at_snaplen(tmp_path: Path) -> None:
    """The captured part is min(original length, snaplen) (pcapng spec, SPB).

    No tshark comparison: wiretap 4.0 then looks for the trailing length at the snaplen
    and calls the file corrupt."""
    data = ng_shb() + ng_idb(1, snaplen=40) + ng_spb(FRAME)
    (rec,) = records(write(tmp_path, "spb.pcapng", data))
    assert (rec[4], rec[5]) == (len(FRAME), FRAME[:40])


@needs_tshark
def test_pcapng_two_sections_restart_interface_numbering(tmp_path: Path) -> None:
    """A second section (here big-endian) brings its own interfaces, numbered from 0."""
    first = ng_shb("<") + ng_idb(1, tsresol=9) + ng_epb(0, T0 * 10**9 + 1, FRAME)
    second = ng_shb(">") + ng_idb(101, tsresol=9, endian=">") + ng_epb(0, T0 * 10**9 + 2, DATAGRAM, endian=">")
    path = write(tmp_path, "sections.pcapng", first + second)
    recs = records(path)
    assert [(r[0] - T0 * 10**9, r[2], r[3]) for r in recs] == [(1, 0, 1), (2, 0, 101)]
    rows = tshark_rows(path)
    assert [r["frame.time_epoch"][0] for r in rows] == [f"{T0}.000000001", f"{T0}.000000002"]
    packets = [decode_packet(i, r) for i, r in enumerate(recs)]
    assert [(p.sport, p.dst) for p in packets] == [(1234, addr("10.9.8.7"))] * 2


def test_pcapng_obsolete_packet_block(tmp_path: Path) -> None:
    pb = struct.pack("<HHIIII", 0, 0, 0, 1_700_000_000_000_001 & 0xFFFFFFFF, len(FRAME), len(FRAME)) + FRAME
    pb = pb[:4] + struct.pack("<I", 1_700_000_000_000_001 >> 32) + pb[8:]
    path = write(tmp_path, "pb.pcapng", ng_shb() + ng_idb(1) + ng_block(2, pb))
    (rec,) = records(path)
    assert (rec[0], rec[3], rec[5]) == (1_700_000_000_000_001_000, 1, FRAME)


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "cls", "offset"),
    [
        (b"", InputError, 0),
        (b"\xd4\xc3", InputError, 0),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", CorruptCapture, 0),
        (bytes(range(256)) * 4, CorruptCapture, 0),
        (ng_shb()[:8] + b"\0\0\0\0" + ng_shb()[12:], CorruptCapture, 0),  # bad byte-order magic
        (ng_shb() + ng_epb(0, 0, FRAME), CorruptCapture, 28),  # packet before any interface
        (ng_shb() + ng_spb(FRAME), CorruptCapture, 28),
        (ng_shb() + ng_idb(1)[:-4] + b"\0\0\0\0", CorruptCapture, 28),  # trailing length differs
        (ng_shb() + struct.pack("<II", 1, 13) + b"\0" * 5, CorruptCapture, 28),  # length not 4n
        (pcap_bytes([(T0, 1_000_000, FRAME, len(FRAME))]), CorruptCapture, 24),  # µs field ≥ 1 s
        (pcap_bytes([]) + struct.pack("<IIII", 0, 0, 1 << 30, 0) + FRAME, CorruptCapture, 24),
    ],
    ids=[
        "empty",
        "two-bytes",
        "http",
        "binary",
        "bad-bom",
        "epb-no-idb",
        "spb-no-idb",
        "length-mismatch",
        "length-not-4n",
        "usec-overflow",
        "huge-record",
    ],
)
def test_bad_input_is_input_error(tmp_path: Path, data: bytes, cls: type[InputError], offset: int) -> None:
    path = write(tmp_path, "bad", data)
    with pytest.raises(cls) as err:
        records(path)
    assert err.value.offset == offset
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "block",
    [
        struct.pack("<III", 1, 12, 12),  # IDB with no body
        struct.pack("<III", 2, 12, 12),  # obsolete packet block with no body
        struct.pack("<III", 3, 12, 12),  # SPB with no body
        struct.pack("<III", 0xBAD, 12, 12),  # custom block with no PEN
    ],
    ids=["idb", "pb", "spb", "custom"],
)
def test_bodiless_block_is_corrupt(tmp_path: Path, block: bytes) -> None:
    """A 12-byte block has no room for the fixed fields of these types: that is damage."""
    head = ng_shb() + (ng_idb(1) if block[0] != 1 else b"")
    path = write(tmp_path, "short.pcapng", head + block)
    with pytest.raises(CorruptCapture) as err:
        records(path)
    assert err.value.offset == len(head)


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.pcap"):
        CaptureReader(str(tmp_path / "missing.pcap"))


def test_unknown_link_type_decodes_to_non_ip(tmp_path: Path) -> None:
    path = write(tmp_path, "147.pcap", pcap_bytes([(T0, 5, FRAME, len(FRAME))] * 2, linktype=147))
    packets = read_packets(path)
    assert [(p.ip_version, p.caplen, p.ts_ns) for p in packets] == [(0, len(FRAME), T0 * 10**9 + 5000)] * 2


# -- real captures -----------------------------------------------------------------------

CAPTURES = {
    "lo_us.pcap": ["tcpdump", "-i", "lo"],
    "lo_ns.pcap": ["tcpdump", "-i", "lo", "--time-stamp-precision=nano"],
    "any_sll.pcap": ["tcpdump", "-i", "any", "-y", "LINUX_SLL"],
    "any_sll2.pcap": ["tcpdump", "-i", "any", "-y", "LINUX_SLL2", "--time-stamp-precision=nano"],
    "lo.pcapng": ["dumpcap", "-q", "-i", "lo"],  # writes to a pipe: flushes every packet
}


def _start(cmd: list[str], path: Path, bpf: str) -> subprocess.Popen[str]:
    """Start a capture writing `path`; return once it says it is listening."""
    if cmd[0] == "tcpdump":
        # A 32 MB ring: with --immediate-mode each packet takes a snaplen-sized slot, and the
        # default buffer then holds a few dozen packets — a busy machine overflows it.
        full = [*cmd, "-U", "--immediate-mode", "-B", "32768", "-w", str(path), bpf]
        ready = "listening on"
    else:
        # dumpcap buffers file output but flushes every packet written to a pipe.
        full = [*cmd, "-f", bpf, "-w", "-"]
        ready = "Capturing on"
    with open(path, "wb") as out:
        proc = subprocess.Popen(full, stderr=subprocess.PIPE, stdout=out, text=True)
    assert proc.stderr is not None
    for _ in range(10):  # dumpcap prints a root warning first
        line = proc.stderr.readline()
        if ready in line:
            return proc
        if not line:
            break
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{cmd[0]} did not start: {line!r}")


def _traffic(tcp4: socket.socket, tcp6: socket.socket, closed: list[int], marker: socket.socket) -> None:
    """TCP with data both ways on 127.0.0.1 and ::1, refused connections (RST), UDP to a
    closed port (ICMP errors quoting UDP), then one marker datagram that ends the capture."""

    def serve(server: socket.socket) -> None:
        conn, _ = server.accept()
        with conn:
            data = conn.recv(65536)
            conn.sendall(data.upper() * 3)

    for server, family, host in ((tcp4, socket.AF_INET, "127.0.0.1"), (tcp6, socket.AF_INET6, "::1")):
        thread = threading.Thread(target=serve, args=(server,))
        thread.start()
        with socket.socket(family, socket.SOCK_STREAM) as c:
            c.settimeout(5)
            c.connect((host, server.getsockname()[1]))
            c.sendall(b"hello wire " * 100)
            got = b""
            while len(got) < 3300:
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
        thread.join(timeout=5)
        with socket.socket(family, socket.SOCK_STREAM) as c, pytest.raises(ConnectionRefusedError):
            c.connect((host, closed[0]))
        with socket.socket(family, socket.SOCK_DGRAM) as u:
            u.sendto(b"anyone?", (host, closed[1]))
    marker.sendto(b"end", marker.getsockname())


def _has_datagram(path: Path, port: int, payload: bytes) -> bool:
    try:
        reader = CaptureReader(str(path), follow=True, should_stop=lambda: True)
        packets = [decode_packet(i, rec) for i, rec in enumerate(reader.records())]
    except InputError:
        return False
    return any(pkt.dport == port and pkt.payload == payload for pkt in packets)


def _wait_for(paths: list[Path], marker: socket.socket, payload: bytes, resend: bool) -> None:
    """Until every capture holds `payload` sent to the marker port (at most 20 s).

    "listening on" does not mean packets are flowing yet (dumpcap says it before its
    capture child runs), so the start is probed by resending until all files see one."""
    port = marker.getsockname()[1]
    deadline = time.monotonic() + 20
    missing = paths
    while time.monotonic() < deadline:
        if resend:
            marker.sendto(payload, marker.getsockname())
        missing = [p for p in missing if not _has_datagram(p, port, payload)]
        if not missing:
            return
        time.sleep(0.1)
    raise AssertionError(f"no {payload!r} datagram after 20 s in {[p.name for p in missing]}")


@pytest.fixture(scope="module")
def real_captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same loopback exchange captured five ways at once (pcap µs/ns, SLL, SLL2, pcapng)."""
    out = tmp_path_factory.mktemp("real")
    tcp4 = socket.create_server(("127.0.0.1", 0))
    tcp6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
    marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    marker.bind(("127.0.0.1", 0))
    closed = [free_port(socket.SOCK_STREAM, "::"), free_port(socket.SOCK_DGRAM, "::")]
    ports = [tcp4.getsockname()[1], tcp6.getsockname()[1], *closed, marker.getsockname()[1]]
    bpf = " or ".join(f"port {p}" for p in ports) + " or icmp or icmp6"
    procs: list[subprocess.Popen[str]] = []
    try:
        for name, cmd in CAPTURES.items():
            procs.append(_start(cmd, out / name, bpf))
        paths = [out / name for name in CAPTURES]
        _wait_for(paths, marker, b"start", resend=True)
        _traffic(tcp4, tcp6, closed, marker)
        _wait_for(paths, marker, b"end", resend=False)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for s in (tcp4, tcp6, marker):
            s.close()
    return {name: out / name for name in CAPTURES}


@needs_tshark
@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_real_capture_matches_tshark_and_dpkt(real_captures: dict[str, Path], name: str) -> None:
    path = real_captures[name]
    packets = assert_matches_tshark(path)
    assert_matches_dpkt(path, packets)
    syns = [p for p in packets if p.proto == 6 and p.flags == SYN]
    assert {p.ip_version for p in syns} == {4, 6}
    # Loopback MTU 65536: MSS 65495 (v4) / 65476 (v6); Linux always offers SACK, TS, wscale.
    assert {p.mss for p in syns} == {65495, 65476}
    assert all(p.sack_perm and p.ts_val and p.wscale is not None for p in syns)
    quoted_udp = {p.quoted[0] for p in packets if p.quoted is not None}
    assert quoted_udp == {17}
    if "_us" in name or name == "any_sll.pcap":
        assert all(p.ts_ns % 1000 == 0 for p in packets)
    assert all(a.ts_ns <= b.ts_ns for a, b in itertools.pairwise(packets))


# -- damage ------------------------------------------------------------------------------


def _boundaries(data: bytes) -> list[int]:
    """Start offsets of the file header and of every record/block, then the file end."""
    if data[:4] == b"\n\r\r\n":
        starts, pos = [], 0
        while pos < len(data):
            starts.append(pos)
            endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            pos += struct.unpack_from(endian + "I", data, pos + 4)[0]
    else:
        starts, pos = [0], 24
        while pos < len(data):
            starts.append(pos)
            pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    assert pos == len(data)
    return [*starts, len(data)]


def _read_until_error(path: Path) -> tuple[list[RawRecord], InputError | None]:
    got: list[RawRecord] = []
    try:
        for rec in CaptureReader(str(path)).records():
            got.append(rec)
    except InputError as e:
        return got, e
    return got, None


@pytest.mark.parametrize("name", ["lo_ns.pcap", "lo.pcapng"])
def test_truncated_capture(real_captures: dict[str, Path], tmp_path: Path, name: str) -> None:
    """Cut anywhere: the complete records before the cut, then TruncatedCapture at the
    start of the partial one (a cut on a boundary is a clean, shorter file)."""
    data = real_captures[name].read_bytes()
    clean = records(real_captures[name])
    bounds = _boundaries(data)
    rng = random.Random(7)
    cuts = sorted({b + d for b in bounds for d in (-1, 0, 1, 5)} | {rng.randrange(len(data)) for _ in range(150)})
    path = tmp_path / "cut"
    for cut in (c for c in cuts if 0 < c < len(data)):
        path.write_bytes(data[:cut])
        got, err = _read_until_error(path)
        start = max(b for b in bounds if b <= cut)
        assert got == [r for r in clean if r[1] < start], cut
        if cut < 4:
            assert isinstance(err, InputError) and err.offset == 0, cut
        elif start == cut:
            assert err is None, (cut, err)
        else:
            assert isinstance(err, TruncatedCapture), (cut, err)
            assert err.offset == start, cut


@pytest.mark.parametrize("name", ["lo_us.pcap", "any_sll2.pcap", "lo.pcapng"])
def test_overwritten_bytes(real_captures: dict[str, Path], tmp_path: Path, name: str) -> None:
    """Random damage: only InputError, never before the damage, and every record that is
    yielded still decodes."""
    data = real_captures[name].read_bytes()
    clean = records(real_captures[name])
    bounds = _boundaries(data)
    rng = random.Random(name)
    path = tmp_path / "damaged"
    errors = 0
    for _ in range(400):
        buf = bytearray(data)
        first = len(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            n = rng.randint(1, 8)
            buf[at : at + n] = rng.randbytes(len(buf[at : at + n]))
            first = min(first, at)
        path.write_bytes(bytes(buf))
        got, err = _read_until_error(path)
        intact = max(b for b in bounds if b <= first)
        expected = [r for r in clean if r[1] < intact and _record_end(r, bounds) <= first]
        assert got[: len(expected)] == expected
        for i, rec in enumerate(got):
            decode_packet(i, rec)
        if err is not None:
            errors += 1
            assert err.offset is not None and 0 <= err.offset <= len(data)
            assert err.offset >= intact or err.offset == 0
    assert errors > 0


def _record_end(rec: RawRecord, bounds: list[int]) -> int:
    return bounds[bounds.index(rec[1]) + 1]


# -- CLI ---------------------------------------------------------------------------------


def _analyze_importable() -> bool:
    try:
        importlib.import_module("wirecorr.commands.analyze")
    except ImportError:
        return False
    return True


needs_analyze = pytest.mark.skipif(not _analyze_importable(), reason="wirecorr analyze not there yet")


def _analyze(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wirecorr", "analyze", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_analyze
@pytest.mark.parametrize(
    ("kind", "offset"),
    [("truncated", 24 + 2 * (16 + len(FRAME))), ("garbage", 0), ("bodiless-idb", 28), ("huge-record", 24)],
)
def test_cli_reports_bad_input_in_one_line(tmp_path: Path, kind: str, offset: int) -> None:
    good = pcap_bytes([(T0, 0, FRAME, len(FRAME))] * 3)
    data = {
        "truncated": good[:-10],
        "garbage": b"\x00garbage" * 50,
        "bodiless-idb": ng_shb() + struct.pack("<III", 1, 12, 12),
        "huge-record": good[:24] + struct.pack("<IIII", 0, 0, 1 << 30, 0),
    }[kind]
    path = write(tmp_path, f"{kind}.cap", data)
    result = _analyze(path)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"wirecorr: {path} at byte {offset}: "), lines[0]
    assert "Traceback" not in result.stderr


@needs_analyze
def test_cli_unknown_link_type(tmp_path: Path) -> None:
    """A file of a link type wirecorr cannot decode is an input problem, said in one line."""
    path = write(tmp_path, "147.pcap", pcap_bytes([(T0, 0, FRAME, len(FRAME))] * 2, linktype=147))
    result = _analyze(path)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"wirecorr: {path} at byte 24"), result.stderr
    assert "147" in lines[0]
