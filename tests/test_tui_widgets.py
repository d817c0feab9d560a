"""The TUI's standalone widgets (ladder, sequence plot, follow stream, dissection), each
hosted alone in a tiny App and driven by Textual's pilot; assertions are on the lines the
widgets actually render."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from capture_helpers import ipv4_tcp, write_raw_pcap
from textual.app import App, ComposeResult
from textual.widget import Widget
from tui_helpers import CAPTURE, SIZE, sync

from wirecorr.engine.ingest import diagnose, load_capture
from wirecorr.engine.session import Session
from wirecorr.sources.capture_file import CaptureReader
from wirecorr.sources.packet_decode import decode_packet
from wirecorr.views.tui import dissect as dissect_mod
from wirecorr.views.tui.dissect import DissectionTree, frame_number
from wirecorr.views.tui.follow import FollowStream
from wirecorr.views.tui.ladder import LadderView
from wirecorr.views.tui.packet_access import PacketAccess, SessionPackets
from wirecorr.views.tui.seqplot import LAYER_STYLES, RETRANS, SeqPlot

A, B = "10.0.0.1", "10.0.0.2"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def _session(path: str) -> Session:
    session = Session()
    load_capture(session, path)
    diagnose(session)
    return session


@pytest.fixture(scope="module")
def echo() -> Session:
    return _session(CAPTURE)


@pytest.fixture(scope="module")
def retrans_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Handshake, four 100-byte segments, three duplicate ACKs, a fast retransmission, FINs."""

    def c(t: float, seq: int, ack: int, flags: str, n: int = 0) -> tuple[int, bytes]:
        return T0 + int(t * MS), ipv4_tcp(A, B, 40000, 80, seq, ack, flags, payload=n)

    def s(t: float, seq: int, ack: int, flags: str) -> tuple[int, bytes]:
        return T0 + int(t * MS), ipv4_tcp(B, A, 80, 40000, seq, ack, flags)

    packets = [
        c(0, 100, 0, "S"), s(1, 500, 101, "SA"), c(2, 101, 501, "A"),
        c(3, 101, 501, "PA", 100), c(3.1, 201, 501, "PA", 100), s(5, 501, 201, "A"),
        c(6, 301, 501, "PA", 100), c(6.1, 401, 501, "PA", 100),
        s(8, 501, 301, "A"), s(8.2, 501, 301, "A"), s(8.4, 501, 301, "A"),
        c(9, 301, 501, "PA", 100), s(11, 501, 501, "A"),
        c(20, 501, 501, "FA"), s(21, 501, 502, "FA"), c(22, 502, 502, "A"),
    ]  # fmt: skip
    path = tmp_path_factory.mktemp("tui") / "retrans.pcap"
    write_raw_pcap(path, packets)
    return str(path)


@pytest.fixture(scope="module")
def bulk_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One connection of 603 packets: a handshake and 300 data segments, each ACKed."""
    packets = [
        (T0, ipv4_tcp(A, B, 40001, 80, 0, 0, "S")),
        (T0 + MS, ipv4_tcp(B, A, 80, 40001, 0, 1, "SA")),
        (T0 + 2 * MS, ipv4_tcp(A, B, 40001, 80, 1, 1, "A")),
    ]
    for i in range(300):
        t = T0 + (3 + i) * MS
        packets.append((t, ipv4_tcp(A, B, 40001, 80, 1 + i * 1000, 1, "PA", payload=1000)))
        packets.append((t + MS // 2, ipv4_tcp(B, A, 80, 40001, 1, 1 + (i + 1) * 1000, "A", win=60000)))
    path = tmp_path_factory.mktemp("tui") / "bulk.pcap"
    write_raw_pcap(path, packets)
    return str(path)


class Host(App[None]):
    def __init__(self, widget: Widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget

    def on_mount(self) -> None:
        self.widget.focus()


def screen_lines(widget: Widget) -> list[str]:
    """What a Line API widget shows right now, one string per visible line."""
    return ["".join(seg.text for seg in widget.render_line(y)) for y in range(widget.size.height)]


# -- ladder ---------------------------------------------------------------------------------


@sync
async def test_ladder_draws_handshake_data_and_close(echo: Session) -> None:
    ladder = LadderView(echo, 0)
    async with Host(ladder).run_test(size=SIZE) as pilot:
        await pilot.pause()
        lines = screen_lines(ladder)
    header = lines[0]
    assert "client 127.0.0.1:53516" in header and "server 127.0.0.1:4444" in header
    assert "client app" in header and "server app" in header
    syn = next(ln for ln in lines if " SYN seq 0" in ln)
    synack = next(ln for ln in lines if "SYN-ACK" in ln)
    # the wire lanes: where the client→server arrow starts and ends
    left, right = syn.index("├"), syn.rindex("┤")
    assert syn.index("SYN") < syn.index("▶") == right - 1
    assert synack.index("◀") == left + 1
    # connect() on the client lane, its link line reaching the SYN; accept4() on the server lane
    connect = next(ln for ln in lines if "connect() …" in ln)
    assert connect.index("connect()") < left
    assert "╰" in syn[:left] or "├" in syn[:left]
    accept = next(ln for ln in lines if "accept4()" in ln)
    assert accept.index("accept4()") > right
    assert any("… = 4" in ln and ln.index("… = 4") > right for ln in lines)
    # the server's write of "world": a box on the right lane; the client's on the left
    writes = [ln for ln in lines if "write(6 B)" in ln]
    assert any(ln.index("write(6 B)") > right for ln in writes)
    assert any(ln.index("write(6 B)") < left for ln in writes)
    assert any("PSH 6 B" in ln for ln in lines)
    # the server closed first: the first FIN travels server → client
    fins = [ln for ln in lines if " FIN seq" in ln]
    assert len(fins) == 2 and "◀" in fins[0] and "▶" in fins[1]
    assert any("read() = 0" in ln or "… = 0" in ln for ln in lines)
    assert any("close()" in ln for ln in lines)


@sync
async def test_ladder_scrolls_a_long_connection_and_selects(bulk_path: str) -> None:
    session = _session(bulk_path)
    ladder = LadderView(session, 0)
    selected: list[int | None] = []

    class Catch(Host):
        def on_ladder_view_selected(self, message: LadderView.Selected) -> None:
            selected.append(message.packet_index)

    async with Catch(ladder).run_test(size=(120, 20)) as pilot:
        await pilot.pause()
        assert len(ladder.rows) == 603
        assert "SYN" in screen_lines(ladder)[1]
        await pilot.press("end")
        await pilot.pause()
        lines = screen_lines(ladder)
        assert lines[0].lstrip().startswith("ms")  # the header stays
        assert any("ack 300001" in ln for ln in lines)
        await pilot.press("enter")
        await pilot.pause()
    assert selected == [602]


# -- follow stream --------------------------------------------------------------------------


@sync
async def test_follow_stream_shows_both_directions_and_their_syscalls(echo: Session) -> None:
    follow = FollowStream(echo, 0)
    async with Host(follow).run_test(size=SIZE) as pilot:
        await pilot.pause()
        lines = screen_lines(follow)
        text = "\n".join(lines)
        assert text.index("client 127.0.0.1:53516 → server 127.0.0.1:4444") < text.index("hello")
        assert text.index("hello") < text.index("server 127.0.0.1:4444 → client 127.0.0.1:53516") < text.index("world")
        assert "written by write(6 B)" in text and "read by read() = 6" in text
        await pilot.press("x")
        await pilot.pause()
        hexed = "\n".join(screen_lines(follow))
    assert "68 65 6c 6c 6f 0a" in hexed and "77 6f 72 6c 64 0a" in hexed


@sync
async def test_follow_stream_shows_retransmitted_bytes_once(retrans_path: str) -> None:
    session = _session(retrans_path)
    follow = FollowStream(session, 0)
    async with Host(follow).run_test(size=SIZE) as pilot:
        await pilot.pause()
    assert [len(c.data) for c in follow.chunks] == [400]


# -- sequence plot --------------------------------------------------------------------------


@sync
async def test_seqplot_renders_and_toggles_direction(echo: Session) -> None:
    plot = SeqPlot(echo, 0)
    async with Host(plot).run_test(size=SIZE) as pilot:
        await pilot.pause()
        first = plot.render().plain
        await pilot.press("t")
        await pilot.pause()
        second = plot.render().plain
    assert "127.0.0.1:53516 → 127.0.0.1:4444" in first
    assert "127.0.0.1:4444 → 127.0.0.1:53516" in second
    assert "retransmission (0)" in first and " ms" in first
    assert any(0x2800 < ord(ch) <= 0x28FF for ch in first)  # braille dots were drawn


@sync
async def test_seqplot_marks_retransmission(retrans_path: str) -> None:
    session = _session(retrans_path)
    plot = SeqPlot(session, 0)
    async with Host(plot).run_test(size=SIZE) as pilot:
        await pilot.pause()
        lines = plot.plot_lines(plot.size.width, plot.size.height)
        await pilot.press("plus", "right", "w")
        await pilot.pause()
        zoomed = plot.render().plain
    assert "retransmission (1)" in lines[0].plain
    red = [span for line in lines[1:] for span in line.spans if span.style == LAYER_STYLES[RETRANS]]
    assert len(red) >= 1
    assert "window" not in zoomed.splitlines()[0].split("[t]")[0]


# -- dissection -----------------------------------------------------------------------------

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


@needs_tshark
@sync
async def test_dissection_tree_matches_tshark(echo: Session) -> None:
    index = 3  # "hello", client → server
    tree = DissectionTree(echo, index)
    async with Host(tree).run_test(size=SIZE) as pilot:
        assert tree.text_lines()[1] == "  loading…"
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        lines = tree.text_lines()
    number = frame_number(CAPTURE, index)
    assert number > index + 1  # the recording's custom blocks count as frames
    tshark_port = subprocess.run(
        ["tshark", "-r", CAPTURE, "-Y", f"frame.number == {number}", "-T", "fields", "-e", "tcp.srcport"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert tshark_port == "53516"
    assert any(ln.startswith("  Transmission Control Protocol") for ln in lines)
    assert f"    Source Port: {tshark_port}" in lines
    assert lines[0] == f"frame 4 (tshark frame {number})"


@needs_tshark
@sync
async def test_dissection_of_plain_capture_shows_tcp_analysis(retrans_path: str) -> None:
    session = _session(retrans_path)
    tree = DissectionTree(session, 11)
    async with Host(tree).run_test(size=SIZE) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        text = "\n".join(tree.text_lines())
    assert "(tshark frame 12)" in text
    assert "fast retransmission" in text


@sync
async def test_dissection_says_when_tshark_is_missing(echo: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> str:
        raise dissect_mod.TSharkNotFoundException("no tshark")

    monkeypatch.setattr(dissect_mod, "get_process_path", missing)
    tree = DissectionTree(echo, 0)
    async with Host(tree).run_test(size=SIZE) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    assert tree.error is not None and "tshark not found" in tree.error
    assert any("tshark not found" in ln for ln in tree.text_lines())


# -- packet access --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["pcapng", "pcap"])
def test_packet_access_rereads_exactly_what_a_full_pass_decoded(which: str, retrans_path: str) -> None:
    path = CAPTURE if which == "pcapng" else retrans_path
    reader = CaptureReader(path)
    expected = [decode_packet(i, rec) for i, rec in enumerate(reader.records())]
    access = PacketAccess(path)
    try:
        for pkt in reversed(expected):
            assert access.packet(pkt.index, pkt.offset) == pkt
    finally:
        access.close()
    session = _session(path)
    packets = SessionPackets(session)
    assert packets.packet(3) == expected[3]
    packets.close()


@sync
async def test_follow_stream_without_a_capture_says_so(echo: Session) -> None:
    session = Session()
    session.analyzer = echo.analyzer
    session.sources = ["/nonexistent/trace.strace"]
    follow = FollowStream(session, 0)
    async with Host(follow).run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = "\n".join(screen_lines(follow))
    assert "cannot read the payload" in text
