"""The compiled packet core against the pure-Python reference (issue 12).

The reference (`sources/capture_file` + `packet_decode` + `engine/tcp_analysis`) is what
the tshark oracle tests pin to Wireshark; the compiled core must give the same table,
connections and session figures on any input: every shipped capture, hypothesis-made
packet streams (interleavings, retransmissions, seq wrap-around, SACK, zero windows, port
reuse, truncated frames, several link types and interfaces, every timestamp resolution),
damaged files, gzip, inputs cut into tiny chunks, and --filter expressions.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from capture_helpers import sack_opt, wscale_opt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wirecorr.sources.capture_file as capture_file
from wirecorr.engine.ingest import diagnose, load_capture
from wirecorr.engine.session import Session
from wirecorr.sources.bpf_filter import compile_filter
from wirecorr.views import json_report
from wirecorr.views.tui.display_filter import compile_filter as tui_filter
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.rows import packet_ref

REPO = Path(__file__).resolve().parent.parent
M32 = 0xFFFFFFFF
CAPTURES = sorted((REPO / "captures").glob("*.pcap*"))


# -- the build ---------------------------------------------------------------------------


def test_compiled_core_is_built_and_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build that silently fell back to Python would pass every other test here."""
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    from wirecorr._core import packets

    assert packets.__file__.endswith(".so"), packets.__file__
    session = Session()
    assert type(session.analyzer).__name__ == "CoreAnalyzer"
    load_capture(session, str(CAPTURES[0]))
    assert len(session.analyzer.table) > 0


# -- running both ------------------------------------------------------------------------


def _load(path: Path, pure: bool, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Session:
    with monkeypatch.context() as m:
        if pure:
            m.setenv("WIRECORR_PURE", "1")
        else:
            m.delenv("WIRECORR_PURE", raising=False)
        session = Session()
        load_capture(session, str(path), **kw)
    return session


def _facts(session: Session) -> dict[str, Any]:
    an = session.analyzer
    table = an.table
    cols = {name: list(col) for name, col in zip(_COLUMNS, table.columns(), strict=True)}
    for name in ("dupack_num", "dupack_frame", "ack_rtt_ns", "acked_frame"):
        sparse = getattr(table, name)
        cols[name] = (list(sparse.keys_), list(sparse.values_))
    err = session.error
    connections = [dataclasses.asdict(c) for c in an.connections]
    # The kernel-only labels and the findings are read from the columns after the load.
    diagnose(session)
    return {
        "labels": session.correlator.labels(),
        "findings": [(f.kind, f.message) for f in session.findings],
        "table": cols,
        "connections": connections,
        "streams": an.tcp_streams,
        "session": (
            session.packets_read,
            session.packets_kept,
            session.first_ns,
            session.last_ns,
            dict(session.unknown_linktypes),
            session.skipped_blocks,
            session.warnings,
        ),
        "error": None if err is None else (type(err).__name__, str(err)),
    }


_COLUMNS = (
    "ts_ns",
    "offset",
    "conn",
    "direction",
    "flags",
    "seglen",
    "rel_seq",
    "rel_ack",
    "window",
    "analysis",
    "bytes_in_flight",
)


def _assert_same(path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> dict[str, Any]:
    """Reference, compiled walk, and the compiled analyzer fed decoded Packets one by one
    (the path of live capture and of captures read after syscalls) must all agree."""
    ref = _facts(_load(path, True, monkeypatch, **kw))
    core = _facts(_load(path, False, monkeypatch, **kw))
    keep = kw.get("packet_filter") or (lambda pkt: True)
    by_packet = _facts(_load(path, False, monkeypatch, **{**kw, "packet_filter": lambda pkt: keep(pkt)}))
    for key in ref:
        assert core[key] == ref[key], f"{path.name}: {key} differs"
        assert by_packet[key] == ref[key], f"{path.name}: {key} differs fed by Packet"
    return core


def _report(path: Path, pure: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    session = _load(path, pure, monkeypatch)
    diagnose(session)
    out = io.StringIO()
    json_report.write(session, out, packets=True)
    return out.getvalue()


# -- shipped captures --------------------------------------------------------------------


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_shipped_capture_same_tables_and_report(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _assert_same(path, monkeypatch)
    assert _report(path, False, monkeypatch) == _report(path, True, monkeypatch)


def test_analyze_json_identical_on_every_shipped_capture() -> None:
    """The command itself, both ways, as a user runs it (one process per capture and mode)."""
    for path in CAPTURES[:2]:
        outs = []
        for pure in ("1", ""):
            env = {**os.environ, "WIRECORR_PURE": pure}
            cmd = [sys.executable, "-m", "wirecorr", "analyze", "--json", str(path)]
            outs.append(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
        assert outs[0] == outs[1], path.name


def test_chunks_of_any_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records cut anywhere between reads (a pipe, a gzip stream) are reassembled."""
    for chunk in (1, 7, 100):
        monkeypatch.setattr(capture_file, "CHUNK", chunk)
        for path in (REPO / "captures" / "lab-retransmit.pcapng", REPO / "captures" / "stray-rst-after-close.pcap"):
            _assert_same(path, monkeypatch)


def test_gzip_and_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (REPO / "captures" / "lab-multiplex.pcapng").read_bytes()
    gz = tmp_path / "m.pcapng.gz"
    gz.write_bytes(gzip.compress(data))
    _assert_same(gz, monkeypatch)
    cut = tmp_path / "cut.pcapng.gz"
    cut.write_bytes(gzip.compress(data)[:-300])
    assert _assert_same(cut, monkeypatch)["error"] is not None
    for n in (0, 3, 10, 30, 100, 1001, len(data) // 2, len(data) - 5):
        short = tmp_path / f"short{n}.pcapng"
        short.write_bytes(data[:n])
        _assert_same(short, monkeypatch)
    pcap = (REPO / "captures" / "stray-rst-after-close.pcap").read_bytes()
    for n in (2, 4, 20, 24, 30, 40, len(pcap) - 1):
        short = tmp_path / f"short{n}.pcap"
        short.write_bytes(pcap[:n])
        _assert_same(short, monkeypatch)
    bad = tmp_path / "badlen.pcap"
    bad.write_bytes(pcap[:32] + b"\xff\xff\xff\x0f" + pcap[36:])
    assert _assert_same(bad, monkeypatch)["error"] is not None
    for at, value in ((4, b"\xff\xff\xff\x7f"), (60, b"\x01\x00\x00\x00"), (200, b"\x00\x01\x00\x00"), (0, b"XXXX")):
        bad = tmp_path / f"bad{at}.pcapng"
        bad.write_bytes(data[:at] + value + data[at + 4 :])
        _assert_same(bad, monkeypatch)


def test_count_and_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    path = REPO / "captures" / "lab-udp-vs-tcp.pcapng"
    for n in (1, 5, 1000):
        _assert_same(path, monkeypatch, count=n)
    for expr in (
        "tcp",
        "udp or icmp",
        "port 80 or 443",
        "not tcp port 22",
        "src net 127.0.0.0/8 and (dst portrange 1000-60000 or icmp)",
        "host ::1 or ip6",
        "ip and not udp",
    ):
        _assert_same(path, monkeypatch, packet_filter=compile_filter(expr))


# -- generated packet streams ------------------------------------------------------------

HOSTS4 = [socket.inet_aton(a) for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3")]
HOSTS6 = [socket.inet_pton(socket.AF_INET6, a) for a in ("fe80::1", "fe80::2")]
FLAGS = [0x02, 0x12, 0x10, 0x18, 0x11, 0x19, 0x04, 0x14, 0x01, 0x00, 0x03]


@st.composite
def _packet(draw: st.DrawFn, base_seq: tuple[int, int]) -> dict[str, Any]:
    v6 = draw(st.booleans()) if draw(st.integers(0, 9)) == 0 else False
    hosts = HOSTS6 if v6 else HOSTS4
    a, b = (
        draw(st.sampled_from([(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (0, 0)]))
        if not v6
        else draw(st.sampled_from([(0, 1), (1, 0)]))
    )
    ports = draw(st.sampled_from([(1000, 80), (80, 1000), (1001, 80), (80, 1001), (5000, 5000)]))
    kind = draw(st.sampled_from(["tcp"] * 12 + ["udp", "icmp", "junk"]))
    seq = (base_seq[0] + draw(st.sampled_from([0, 1, 100, 101, 200, 300, -1, -100, 2**31]))) & 0xFFFFFFFF
    ack = (base_seq[1] + draw(st.sampled_from([0, 1, 100, 101, 200, -1, 2**31]))) & 0xFFFFFFFF
    opts = b""
    for opt in draw(st.lists(st.sampled_from(["ws", "sack", "mss", "ts", "sackp", "tfo", "junk"]), max_size=3)):
        if opt == "ws":
            opts += wscale_opt(draw(st.integers(0, 15)))
        elif opt == "sack":
            n = draw(st.integers(1, 3))
            opts += sack_opt(*[((base_seq[1] + 100 * i) & M32, (base_seq[1] + 100 * i + 50) & M32) for i in range(n)])
        elif opt == "mss":
            opts += struct.pack("!BBH", 2, 4, 1460)
        elif opt == "ts":
            opts += b"\x01\x01" + struct.pack("!BBII", 8, 10, 1, 2)
        elif opt == "sackp":
            opts += b"\x04\x02"
        elif opt == "tfo":
            opts += b"\x22\x06abcd"
        else:
            opts += bytes([draw(st.integers(0, 255)) for _ in range(draw(st.integers(1, 4)))])
    return {
        "v6": v6,
        # IPv4 options / a fragment; IPv6 hop-by-hop or fragment header; a VLAN tag.
        "variant": draw(st.sampled_from([None] * 8 + ["opts", "frag", "first-frag", "vlan"])),
        "src": hosts[a],
        "dst": hosts[b],
        "sport": ports[0],
        "dport": ports[1],
        "kind": kind,
        "flags": draw(st.sampled_from(FLAGS)),
        "seq": seq,
        "ack": ack,
        "win": draw(st.sampled_from([0, 0, 1, 500, 4000, 65535])),
        "payload": draw(st.sampled_from([0, 0, 0, 1, 1, 50, 100, 1460])),
        "opts": opts[:40],
        "dt": draw(st.sampled_from([0, 1, 1000, 1_000_000, 19_000_000, 50_000_000, 2_000_000_000, -5000])),
        "cut": draw(st.sampled_from([None] * 12 + [0, 10, 25, 39, 45])),
        "icmp_type": draw(st.sampled_from([3, 11, 0, 8])),
    }


def _ip_packet(p: dict[str, Any]) -> bytes:
    if p["kind"] == "tcp":
        opts = p["opts"] + b"\x01" * (-len(p["opts"]) % 4)
        body = struct.pack(
            "!HHIIBBHHH",
            p["sport"],
            p["dport"],
            p["seq"],
            p["ack"],
            (5 + len(opts) // 4) << 4,
            p["flags"],
            p["win"],
            0,
            0,
        )
        body += opts + b"d" * p["payload"]
        proto = 6
    elif p["kind"] == "udp":
        body = struct.pack("!HHHH", p["sport"], p["dport"], 8 + p["payload"], 0) + b"u" * p["payload"]
        proto = 17
    else:
        # An ICMP error quoting the reverse flow's IP header and 8 transport bytes (or TCP's 20).
        inner = _ip_header(False, 6, p["dst"], p["src"], 20) + struct.pack(
            "!HHIIBBHHH", p["dport"], p["sport"], p["seq"], p["ack"], 0x50, 0x10, 0, 0, 0
        )
        body = bytes([p["icmp_type"], 1, 0, 0, 0, 0, 0, 0]) + inner[: 28 + p["payload"] % 13]
        proto = 1
    return _ip_header(p["v6"], proto, p["src"], p["dst"], len(body), p.get("variant")) + body


def _ip_header(v6: bool, proto: int, src: bytes, dst: bytes, n: int, variant: str | None = None) -> bytes:
    if v6:
        if variant == "opts":  # hop-by-hop options header, 8 bytes
            return struct.pack("!IHBB16s16s", 6 << 28, n + 8, 0, 64, src, dst) + bytes([proto, 0, 1, 4, 0, 0, 0, 0])
        if variant in ("frag", "first-frag"):
            offset = 0 if variant == "first-frag" else 8
            frag = struct.pack("!BBHI", proto, 0, offset << 3 | 1, 7)
            return struct.pack("!IHBB16s16s", 6 << 28, n + 8, 44, 64, src, dst) + frag
        return struct.pack("!IHBB16s16s", 6 << 28, n, proto, 64, src, dst)
    if variant == "opts":  # one word of IP options (NOP NOP NOP EOL)
        return struct.pack("!BBHHHBBH4s4s", 0x46, 0, 24 + n, 0, 0x4000, 64, proto, 0, src, dst) + b"\x01\x01\x01\x00"
    frag = {"frag": 0x2000 | 3, "first-frag": 0x2000}.get(variant or "", 0x4000)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + n, 0, frag, 64, proto, 0, src, dst)


LINKS = {
    1: lambda ip, v6: b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01" + (b"\x86\xdd" if v6 else b"\x08\x00") + ip,
    101: lambda ip, v6: ip,
    113: lambda ip, v6: b"\0" * 14 + (b"\x86\xdd" if v6 else b"\x08\x00") + ip,
    276: lambda ip, v6: (b"\x86\xdd" if v6 else b"\x08\x00") + b"\0" * 18 + ip,
    0: lambda ip, v6: struct.pack("<I", 10 if v6 else 2) + ip,
    147: lambda ip, v6: ip,
}


def _frames(packets: list[dict[str, Any]], linktype: int) -> Iterator[tuple[int, bytes, int]]:
    t = 1_700_000_000_000_000_000
    for p in packets:
        t += p["dt"]
        junk = p["kind"] == "junk"
        frame = bytes(range(p["payload"] % 60)) if junk else LINKS[linktype](_ip_packet(p), p["v6"])
        if p.get("variant") == "vlan" and linktype == 1:
            frame = frame[:12] + b"\x81\x00\x00\x05" + frame[12:]
        wire = len(frame)
        if p["cut"] is not None:
            frame = frame[: p["cut"]]
        yield t, frame, wire


def _pcap(packets: list[dict[str, Any]], linktype: int, ns: bool, big: bool) -> bytes:
    e = ">" if big else "<"
    out = [struct.pack(e + "IHHiIII", 0xA1B23C4D if ns else 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for t, frame, wire in _frames(packets, linktype):
        frac = t % 10**9 if ns else t % 10**9 // 1000
        out.append(struct.pack(e + "IIII", t // 10**9, frac, len(frame), wire) + frame)
    return b"".join(out)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


TSRESOLS = [6, 9, 3, 0x80 | 20, 0x80 | 4, 12]


def _pcapng(packets: list[dict[str, Any]], links: list[int], resols: list[int], far: int = 0) -> bytes:
    """`far` makes every third packet's timestamp that many ticks << 32 (past 2116: clamped)."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for i, (lt, r) in enumerate(zip(links, resols, strict=True)):
        opts = struct.pack("<HHB3x", 9, 1, r)
        if i == 1:
            opts += struct.pack("<HHq", 14, 8, 7)
        out.append(_block(1, struct.pack("<HHI", lt, 0, 0) + opts + b"\0" * 4))
    out.append(_block(0x0BAD, struct.pack("<I", 12345) + b"not a wirecorr block"))
    out.append(_block(0x77, b"unknown block type"))
    for k, p in enumerate(packets):
        i = k % len(links)
        lt, r = links[i], resols[i]
        t, frame, wire = next(_frames([p], lt))
        t += k * 1_000_000
        # Within 12 days of the epoch: ticks of 10**12/s still fit pcapng's 64 bits.
        secs, frac = divmod(t % 10**15, 10**9)
        units = 2 ** (r & 0x7F) if r & 0x80 else 10**r
        ticks = secs * units + frac * units // 10**9
        if far and k % 3 == 0:
            ticks = (far << 32) | (ticks & 0xFFFFFFFF)
        out.append(_block(6, struct.pack("<IIIII", i, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), wire) + frame))
    return b"".join(out)


@st.composite
def _stream(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 60))
    bases = (draw(st.sampled_from([1000, 2**32 - 150, 2**31 - 10])), draw(st.sampled_from([5000, 2**32 - 60])))
    return [draw(_packet(bases)) for _ in range(n)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    packets=_stream(),
    linktype=st.sampled_from([1, 101, 113, 276, 0]),
    ns=st.booleans(),
    big=st.booleans(),
    expr=st.sampled_from([None, None, "tcp", "port 80", "not host 10.0.0.3", "ip6 or udp", "src portrange 1000-1001"]),
)
def test_generated_pcap_streams(
    packets: list[dict[str, Any]],
    linktype: int,
    ns: bool,
    big: bool,
    expr: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "gen.pcap"
    path.write_bytes(_pcap(packets, linktype, ns, big))
    _assert_same(path, monkeypatch, packet_filter=None if expr is None else compile_filter(expr))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    packets=_stream(),
    links=st.lists(st.sampled_from([1, 101, 113, 276, 0, 147]), min_size=1, max_size=3),
    resols=st.lists(st.sampled_from(TSRESOLS), min_size=3, max_size=3),
    cut=st.integers(0, 200),
    far=st.sampled_from([0, 0, 0, 0xFFFFFFFF, 0x80000000, 1 << 20]),
)
def test_generated_pcapng_streams(
    packets: list[dict[str, Any]],
    links: list[int],
    resols: list[int],
    cut: int,
    far: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _pcapng(packets, links, resols[: len(links)], far)
    path = tmp_path / "gen.pcapng"
    path.write_bytes(data)
    _assert_same(path, monkeypatch)
    path.write_bytes(data[: len(data) - cut])
    _assert_same(path, monkeypatch)


# -- the fidelity fix, against tshark ----------------------------------------------------


def test_analysis_field_names_equal_tshark_display_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    """tshark -Y tcp.analysis.retransmission finds fast and spurious ones too: so do the
    JSON counts, the packets' JSON names and the TUI's display filter, in both paths."""
    path = REPO / "captures" / "lab-retransmit.pcapng"
    names = ("retransmission", "fast_retransmission", "duplicate_ack", "window_update", "flags")

    def frames(*args: str) -> list[list[str]]:
        cmd = ["tshark", "-r", str(path), *args, "-T", "fields", "-e", "frame.number", "-e", "frame.protocols"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return [line.split("\t") for line in out.splitlines()]

    # tshark shows a recording's custom blocks as frames of "data": number our packets after them.
    packet_no = {int(f): i + 1 for i, (f, protos) in enumerate((f, p) for f, p in frames() if p != "data")}
    tshark = {name: [packet_no[int(f)] for f, _ in frames("-Y", f"tcp.analysis.{name}")] for name in names}
    assert len(tshark["retransmission"]) > len(tshark["fast_retransmission"]) > 0
    for pure in (True, False):
        session = _load(path, pure, monkeypatch)
        diagnose(session)
        out = io.StringIO()
        json_report.write(session, out, packets=True)
        doc = json.loads(out.getvalue())
        index = EventIndex(session, None)  # type: ignore[arg-type]
        for name in names:
            where = (pure, name)
            shown = tui_filter(f"tcp.analysis.{name}").predicate
            n = len(session.analyzer.table)
            assert [i + 1 for i in range(n) if shown(index, packet_ref(i))] == tshark[name], where
            if name != "flags":
                assert doc["analysis"].get(name, 0) == len(tshark[name]), where
                assert [p["index"] + 1 for p in doc["packets"] if name in p["analysis"]] == tshark[name], where


def test_filter_runs_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """--filter is decided in the compiled loop (no fall back to per-packet Python)."""
    pred = compile_filter("tcp and not port 22")
    calls = []
    spy = lambda pkt: calls.append(pkt) or pred(pkt)  # noqa: E731
    spy.program = pred.program  # type: ignore[attr-defined]
    session = _load(REPO / "captures" / "lab-udp-vs-tcp.pcapng", False, monkeypatch, packet_filter=spy)
    assert calls == [] and session.packets_kept > 0


def test_no_cycle_holds_the_session_or_its_correlator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session is freed by reference counting once dropped, not at the collector's next
    pass (`ingest.annotate` drops a recording's whole analysis that way)."""
    import gc
    import weakref

    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        session = Session()
        load_capture(session, str(REPO / "captures" / "lab-echo.pcapng"))
        dropped, correlator = weakref.ref(session), weakref.ref(session.correlator)
        del session
        assert dropped() is None
        # with its links and claims: the UDP matcher's callbacks into it made a cycle once
        assert correlator() is None
    finally:
        if was_enabled:
            gc.enable()
