"""The TUI on a merged recording: the ladder's four lanes from both hosts' real data.

The recording is the one the two-hosts lab ships (captures/lab-two-hosts.pcapng: a client
and a NATed server recorded in two namespaces, the server's clock skewed by 0.75 s, merged).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from tui_helpers import REPO, make_app, settle

from wirecorr.engine.hosts import load_merged, merged_header
from wirecorr.engine.ingest import analyze_file
from wirecorr.views.tui.conn_events import CLIENT_SIDE, SERVER_SIDE
from wirecorr.views.tui.ladder import PKT, LadderView
from wirecorr.views.tui.rows import packet_ref

MERGED = str(Path("captures") / "lab-two-hosts.pcapng")


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def test_merged_ladder_draws_four_lanes_and_each_crossing_once() -> None:
    whole = analyze_file(MERGED)  # the file read as one capture, as the TUI's timeline reads it
    merged = load_merged(MERGED, merged_header(MERGED))
    (cv,) = merged.conversations()
    assert (cv.client_host, cv.server_host) == (0, 1)
    # Under NAT the timeline has the connection twice (two 4-tuples); either opens the same ladder.
    assert len(whole.analyzer.connections) == 2
    for conn_id in (0, 1):
        ladder = LadderView(whole, conn_id, merged=lambda: merged)
        client, server = ladder.ends
        assert (client.name, server.name) == ("vm#1", "vm#2")
        assert client.session is merged.hosts[0].session and server.session is merged.hosts[1].session

        # Every packet either host captured is on a row, a crossing only once (its sender's copy).
        drawn = [r for r in ladder.rows if r.kind == PKT]
        assert {r.ref for r in drawn} == {c.sent for c in cv.crossings}
        assert len(cv.crossings) == 50 and all(r.ref in ladder.crossings for r in drawn)

        # Both apps, each with its links drawn to its own host's wire.
        calls = {(c.side, c.sc.name) for c in ladder.calls}
        assert {(CLIENT_SIDE, "connect"), (CLIENT_SIDE, "sendto"), (SERVER_SIDE, "accept4")} <= calls
        assert (SERVER_SIDE, "recvfrom") in calls
        for side in (CLIENT_SIDE, SERVER_SIDE):
            assert any(ladder._tracks[side]), side

        lines = ladder.text_lines(200)
        assert lines[0].split()[:3] == ["ms", "client", "app"] and lines[0].rstrip().endswith("server app")
        assert "vm#1 10.81.76.1:" in lines[0] and "10.82.76.2:9400 vm#2" in lines[0]
        syn = next(ln for ln in lines if " SYN (" in ln)
        delay = next(c.delay_ns for c in cv.crossings if c.sent == drawn[0].ref)
        assert f"SYN ({delay / 1000:.1f} µs)" in syn and "▶┤" in syn
        # The server's accept4 returns with the handshake it took, on the server's side.
        accept_ret = next(ln for ln in lines if "… = 4" in ln)
        assert accept_ret.index("… = 4") > len(lines[0]) // 2
        # No crossing arrives before it left: the merge put both hosts on one clock.
        assert all(c.delay_ns >= 0 for c in cv.crossings)


def test_a_packet_one_host_alone_captured_is_half_dotted() -> None:
    whole = analyze_file(MERGED)
    merged = load_merged(MERGED, merged_header(MERGED))
    # Forget the crossings of the client's data: each copy is then drawn on its own host's half.
    data = {c.sent for c in merged.crossings if merged.hosts[0].session.analyzer.table.seglen[c.sent] > 0}
    merged.crossings = [c for c in merged.crossings if c.sent not in data]
    ladder = LadderView(whole, 0, merged=lambda: merged)
    lines = ladder.text_lines(160)
    sent = [ln for ln in lines if re.search(r" (DATA|PSH) \d+ B seq", ln)]  # no "(delay)": not a crossing
    assert len(sent) == 2 * len(data)
    assert any("├──" in ln and "┄▶┤" in ln for ln in sent)  # left the client; the server's capture lacks it
    assert any("├┄┄" in ln and "─▶┤" in ln for ln in sent)  # reached the server; not in the client's capture


SIZES = pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])


def _ladder_snapshot(snap_compare: Callable[..., bool], size: tuple[int, int]) -> bool:
    app = make_app(MERGED)

    async def ready(pilot: object) -> None:
        await settle(pilot, app)
        app.timeline.goto_ref(packet_ref(0))
        await settle(pilot, app)
        await pilot.press("l")  # type: ignore[attr-defined]
        for _ in range(250):
            ladders = app.screen.query(LadderView)
            if ladders and not ladders.first().loading_rows:
                break
            await pilot.pause(0.02)  # type: ignore[attr-defined]
        await pilot.pause()  # type: ignore[attr-defined]

    return snap_compare(app, press=["j", "j", "j", "j"], terminal_size=size, run_before=ready)


@SIZES
def test_snapshot_merged_ladder(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    assert _ladder_snapshot(snap_compare, size)


def test_merged_json_reaches_all_four_lanes() -> None:
    """From `analyze --json` alone: the client's write, its segments on the client's wire,
    their copies on the server's wire, and the server's reads linked to those copies."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "wirecorr", "analyze", "--json", MERGED], capture_output=True, text=True, timeout=60
    )
    doc = json.loads(done.stdout)
    (cv,) = doc["conversations"]
    assert (cv["client"]["host"], cv["server"]["host"]) == (0, 1)
    assert cv["client"]["client"] != cv["server"]["client"]  # the server saw the router's address (NAT)
    assert cv["crossings"] == 50 and cv["one_way_delay"]["client_to_server"]["max_ns"] > 1_000_000
    client, server = (h["report"] for h in doc["hosts"])
    received = {c["sent"]: c["received"] for c in doc["crossings"]}
    (write,) = [lk for lk in client["links"] if lk["kind"] == "write-data"]
    on_server = {received[p] for p in write["packets"]}
    assert len(on_server) == len(write["packets"]) == 21
    reads = [lk for lk in server["links"] if lk["kind"] == "read-data"]
    assert on_server == {p for lk in reads for p in lk["packets"]}
    server_calls = {sc["id"]: sc for sc in server["syscalls"]}
    assert {server_calls[lk["syscall"]]["name"] for lk in reads} == {"recvfrom"}
    assert {lk["kind"] for lk in server["links"]} >= {"accept-ack", "write-data", "close-fin"}
    assert {lk["kind"] for lk in client["links"]} >= {"connect-syn", "read-data", "close-fin"}


def _indexed(path: str):  # type: ignore[no-untyped-def]
    """The timeline's EventIndex of `path`, indexed to the end as the app's loader does."""
    from wirecorr.engine.session import Session
    from wirecorr.views.tui.index import EventIndex
    from wirecorr.views.tui.loader import FileLoader
    from wirecorr.views.tui.packets import LivePackets

    index = EventIndex(Session(), LivePackets())
    loader = FileLoader(index, path)
    while not loader.done:
        loader.step()
        index.flush()
    index.flush()
    return index


def assert_each_crossing_one_row(path: str) -> None:
    """The merged timeline: a crossing is one row (its sender's copy) naming both hosts and
    its one-way delay, the receiver's copy has none, and a row linked to the receiver's copy
    (the server's read) leads to the sender's row."""
    from wirecorr.model import fmt_ns
    from wirecorr.views.tui.row_text import Columns, row_text
    from wirecorr.views.tui.rows import is_syscall_ref, ref_pos, syscall_ref

    merged = load_merged(path, merged_header(path))
    names = {h.host["id"]: h.name for h in merged.hosts}
    index = _indexed(path)
    shown = {ref_pos(r) for r in index.rows.refs if not is_syscall_ref(r)}
    captured = sum(int(bool(h.session.analyzer.table.offset[i])) for h in merged.hosts
                   for i in range(len(h.session.analyzer.table)))  # fmt: skip
    assert merged.crossings and len(shown) == captured - len(merged.crossings)
    for c in merged.crossings:
        assert c.sent in shown and c.received not in shown
        text = row_text(index, packet_ref(c.sent), False).plain
        assert f"{names[c.sender]}→{names[c.receiver]} {fmt_ns(c.delay_ns)} · " in text, text
        narrow = row_text(index, packet_ref(c.sent), False, Columns.for_width(78, False)).plain
        assert f" →{names[c.receiver]} {fmt_ns(c.delay_ns)} · " in narrow, narrow  # the sender: the row's direction
    received = {c.received: c.sent for c in merged.crossings}
    sent = {c.sent for c in merged.crossings}
    reads = [pos for pos in range(len(index.calls)) if index.calls[pos].name == "recvfrom"]
    led = False
    for pos in reads:
        ends = {lk_pkt for lk in index.links(syscall_ref(pos)) for lk_pkt in lk.packets}
        related = set(index.related(syscall_ref(pos)))
        # Under NAT the copy its host received is its own connection's: the link leads to the sender's row.
        for i in ends & received.keys():
            assert packet_ref(received[i]) in related and packet_ref(i) not in related
            led = True
        # On one connection the engine was fed one copy (hosts.one_copy): linked to the sender's row itself.
        led = led or bool(ends & sent)
    assert led  # some read was linked to a packet the other host sent
    # Read as one capture, a crossing is no retransmission of itself, and no byte counts twice.
    assert not [f for f in index.session.findings if f.kind == "retransmission"]
    hosts_bytes = sorted((c.bytes_c2s, c.bytes_s2c) for h in merged.hosts for c in h.session.analyzer.connections)
    one_bytes = sorted((c.bytes_c2s, c.bytes_s2c) for c in index.session.analyzer.connections)
    assert set(one_bytes) == set(hosts_bytes) and sum(map(sum, one_bytes)) > 0


def test_merged_timeline_shows_each_crossing_once() -> None:
    assert_each_crossing_one_row(MERGED)  # merged before the records named senders: read by interface


def test_merged_json_timeline_has_each_crossing_once() -> None:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "wirecorr", "analyze", "--json", "--packets", MERGED],
        capture_output=True,
        text=True,
        timeout=60,
    )
    doc = json.loads(done.stdout)
    rows = doc["timeline"]
    crossings = {c["sent"]: c for c in doc["crossings"]}
    per_host = [p["index"] for h in doc["hosts"] for p in h["report"]["packets"]]
    assert len(per_host) == 100 and len(rows) == len(per_host) - len(crossings) == 50
    assert [r["ts_ns"] for r in rows] == sorted(r["ts_ns"] for r in rows)
    for r in rows:
        c = crossings[r["index"]]
        assert r["host"] == c["sender"] and r["crossing"] == {"received": c["received"], "to": c["receiver"],
                                                               "delay_ns": c["delay_ns"]}  # fmt: skip
    assert not {c["received"] for c in doc["crossings"]} & {r["index"] for r in rows}


def test_second_copies_are_another_captures_within_the_window() -> None:
    """live across namespaces: a copy is another capture's equal packet within the window;
    a repeat of the same capture (a retransmission), a NATed copy (other addresses) and a
    packet equal to one long gone are not."""
    from wirecorr.engine.hosts import SecondCopies
    from wirecorr.model import ACK, PSH, Packet

    def pkt(iface: int, ts_ns: int, src: bytes = b"\x0a\x00\x00\x01", payload: bytes = b"hello") -> Packet:
        frame = b"\x00" * 54 + payload
        return Packet(
            index=0, ts_ns=ts_ns, offset=0, caplen=len(frame), wirelen=len(frame), iface=iface, ip_version=4,
            src=src, dst=b"\x0a\x00\x00\x02", proto=6, sport=40000, dport=80, seq=1, ack=1, flags=ACK | PSH,
            window=512, payload_len=len(payload), frame=frame, payload_offset=54,
        )  # fmt: skip

    copies = SecondCopies(window_ns=1_000_000)
    assert not copies.is_copy(pkt(0, 0))
    assert copies.is_copy(pkt(1, 20_000))  # the other namespace's capture, 20 µs later
    assert copies.is_copy(pkt(2, 30_000))  # and a third one's (a router between them)
    assert not copies.is_copy(pkt(0, 40_000))  # the first capture again: a retransmission
    assert copies.is_copy(pkt(1, 60_000))  # ... whose copy is one too
    assert not copies.is_copy(pkt(1, 70_000, src=b"\x0a\x00\x00\xfe"))  # NATed: its namespace's own connection
    assert not copies.is_copy(pkt(1, 70_000, payload=b"other"))
    assert not copies.is_copy(pkt(2, 5_000_000))  # long after the window: not a copy of those
