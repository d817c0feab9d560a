"""What the TUI shows at 80x24 and 200x50, judged against tshark where it numbers things.

Each test here is a defect a user found (issue 15): event text invisible at 80 columns,
results cut away, directions from the capture's flag alone, frame numbers that are not
Wireshark's, follow-stream gaps at the end, a ladder whose keys did nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from rich.text import Text
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.widgets import Input, Static
from tui_helpers import REPO, make_app, settle, sync

from wirecorr.engine.ingest import diagnose, load_capture
from wirecorr.engine.session import Session
from wirecorr.views.tui.follow import FollowStream
from wirecorr.views.tui.keys import APP_KEYS, FILTER_HELP, TIMELINE_KEYS, help_sections
from wirecorr.views.tui.ladder import LadderView
from wirecorr.views.tui.row_text import LEGEND, fit_call
from wirecorr.views.tui.rows import is_syscall_ref, packet_ref
from wirecorr.views.tui.seqplot import SeqPlot, fmt_axis
from wirecorr.views.tui.viewer import ViewerScreen

CAPTURES = REPO / "captures"
ECHO = str(CAPTURES / "handshake-echo.pcapng")
REFUSED = str(CAPTURES / "lab-refused.pcapng")
SLICING = str(CAPTURES / "lab-mss-slicing.pcapng")
PORT_BOMB = str(CAPTURES / "lab-port-bomb.pcapng")
SMALL, LARGE = (80, 24), (200, 50)


def tshark_frames(path: str, display_filter: str) -> list[int]:
    out = subprocess.run(
        ["tshark", "-n", "-r", path, "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [int(line) for line in out.split()]


def screen_rows(app: object) -> list[str]:
    timeline = app.timeline  # type: ignore[attr-defined]
    return [timeline.render_line(y).text for y in range(timeline.scrollable_content_region.height)]


@sync
async def test_at_80_columns_the_event_text_and_the_result_are_on_screen() -> None:
    app = make_app(REFUSED)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        rows = screen_rows(app)
        assert rows[0].split() == ["time", "pid/#fr", "dir", "link", "delay", "event"]
        assert all(s.style is not None and s.style.bold for s in app.timeline.render_line(0) if s.text.strip())
        connect = next(row for row in rows if "connect(" in row)
        # the arguments are cut, with …, and the result is kept
        assert connect.rstrip().endswith("…) = -1 ECONNREFUSED") and len(connect) <= 80
        assert all(len(row) <= 78 for row in rows)
        # the sidebar makes way for the timeline, and b brings it back below
        assert not app.query_one("#right").display
        await pilot.press("b")
        await pilot.pause()
        right = app.query_one("#right")
        assert right.display and right.region.y > app.timeline.region.y


@sync
async def test_at_200_columns_the_sidebar_is_beside_and_b_hides_it() -> None:
    app = make_app(ECHO)
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        right = app.query_one("#right")
        assert right.display and right.region.x > app.timeline.region.x
        await pilot.press("b")
        await pilot.pause()
        assert not app.query_one("#right").display
        assert app.timeline.region.width > 190


def test_a_cut_syscall_keeps_its_result() -> None:
    line = "sendto(3<UDP:[0.0.0.0:5000]>, count=100, addr=127.0.0.1:9) = -1 EADDRNOTAVAIL"
    assert fit_call(line, 40) == "sendto(3<UDP:[0.0.0…) = -1 EADDRNOTAVAIL"
    assert fit_call(line, len(line)) == line
    assert fit_call("accept4(3<TCP:[127.0.0.1:4444]>) = 4<TCP:[127.0.0.1:4444->127.0.0.1:5]>", 20).endswith("…")


@sync
async def test_directions_and_frame_numbers_are_wiresharks() -> None:
    """Both ends traced: the SYN-ACK goes server → client (it showed `out`, as every packet
    did), and frames carry tshark's numbers (a recording's custom blocks are frames there)."""
    syn, synack = tshark_frames(ECHO, "tcp.flags.syn == 1")
    app = make_app(ECHO)
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        app.timeline.goto_ref(packet_ref(1))
        await settle(pilot, app)
        row = app.timeline.render_line(1 + app.timeline.cursor - app.timeline.scroll_offset.y).text
        assert f"#{synack} s→c" in row
        detail = str(app.query_one("#detail-body").render())
        assert detail.startswith(f"frame {synack} ")
        # links and delays come before the hex dump; they name frames as tshark does
        assert detail.index("delay") < detail.index("bytes\n")
        assert f"connect #189 ↔ frames [{synack}, {synack + 1}]" in detail
        assert f"accept4 #54 ↔ frames [{syn}, {synack}, {synack + 1}]" in detail
        assert "traced     both ends" in detail
        app.set_filter(f"frame == {syn}")
        await settle(pilot, app)
        assert list(app.timeline.view.refs) == [packet_ref(0)]


@sync
async def test_follow_stream_gaps_in_place_with_stream_offsets_and_frames() -> None:
    """lab-mss-slicing: four 1448-byte segments captured at 190 bytes each."""
    frames = tshark_frames(SLICING, "tcp.len > 0")
    session = Session()
    load_capture(session, SLICING)
    diagnose(session)
    app = make_app(SLICING)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        follow = FollowStream(session, 0, frame=app.index.frame)
        follow.hex_mode = True
        lines = follow.text_lines()
    assert f"frame(s) {', '.join(map(str, frames))}" in lines[0]
    gaps = [i for i, line in enumerate(lines) if "bytes not captured" in line]
    assert len(gaps) == 4 and gaps[-1] == len(lines) - 1
    assert lines[gaps[0] + 1].startswith("000005a8 ")  # the second segment starts at stream offset 1448
    assert lines[gaps[1] + 1].startswith("00000b50 ")


@sync
async def test_follow_stream_wraps_long_lines() -> None:
    app = make_app(SLICING)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        app.timeline.goto_ref(packet_ref(6))
        await pilot.press("f")
        await pilot.pause()
        follow = app.screen.query_one(FollowStream)
        assert max(line.cell_len for line in follow.lines) <= 78
        assert len(follow.lines) > len(follow.text_lines())


@sync
async def test_follow_stream_colours_the_two_directions_on_screen() -> None:
    """Wireshark's red client and blue server, as drawn (not only as built)."""
    app = make_app(ECHO)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        app.timeline.goto_ref(packet_ref(4))
        await pilot.press("f")
        await pilot.pause()
        follow = app.screen.query_one(FollowStream)
        drawn = [follow.render_line(y) for y in range(len(follow.lines))]
    heads = {strip.text.split()[1]: strip for strip in drawn if strip.text.startswith("── ")}
    colour = {who: next(iter(strip)).style.color for who, strip in heads.items()}
    assert colour["client"] is not None and colour["server"] is not None
    assert colour["client"] != colour["server"]
    # The bytes of each chunk carry its direction's colour too.
    data = [strip for strip in drawn if strip.text.rstrip() in ("hello", "world")]
    assert data and all(next(iter(strip)).style.color in colour.values() for strip in data)


@sync
async def test_ladder_keys_move_and_enter_shows_the_row_in_the_timeline() -> None:
    app = make_app(ECHO)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        app.timeline.goto_ref(packet_ref(0))
        await pilot.press("l")
        await pilot.pause()
        ladder = app.screen.query_one(LadderView)
        await pilot.press("G")
        assert ladder.cursor == len(ladder.rows) - 1
        await pilot.press("g", "j", "j", "j")
        assert ladder.cursor == 3
        row = ladder.rows[3]
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ViewerScreen)
        ref = app.timeline.current_ref
        assert ref is not None
        if row.kind == 0:  # a packet
            assert ref == packet_ref(row.ref)
        else:
            assert is_syscall_ref(ref) and app.index.call(ref).id == ladder.calls[row.ref].sc.id


@sync
async def test_invalid_filter_stays_open_and_unknown_names_are_refused() -> None:
    app = make_app(ECHO)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("slash", "ctrl+u", *"errno == EBOGUS", "enter")
        await pilot.pause()
        box = app.query_one("#filter", Input)
        assert box.has_class("-open") and box.value == "errno == EBOGUS"
        error = str(app.query_one("#filter-error", Static).render())
        assert "unknown errno name 'EBOGUS'" in error
        assert app.filter is not None and app.filter.text == "net"


@sync
async def test_a_file_opens_on_its_first_row() -> None:
    """port-bomb: syscalls recorded late sort above the first rows indexed; they were hidden
    above the top of the screen."""
    app = make_app(PORT_BOMB)
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        assert app.timeline.cursor == 0 and app.timeline.scroll_offset.y == 0
        assert app.timeline.current_ref == app.timeline.view.refs[0]


@sync
async def test_rows_that_gained_links_are_redrawn_alone() -> None:
    """The line cache keeps the rows whose text did not change (issue 11, item 10)."""
    app = make_app(ECHO)
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        timeline = app.timeline
        screen_rows(app)
        cached = set(timeline._cache.keys())
        assert len(cached) > 10
        changed = next(iter(cached))
        app.index.dirty.add(changed)
        timeline.rows_changed(0)
        assert set(timeline._cache.keys()) == cached - {changed}


@sync
async def test_seq_plot_at_80_columns_has_its_x_axis() -> None:
    session = Session()
    load_capture(session, SLICING)
    diagnose(session)
    plot = SeqPlot(session, 0)
    lines = [line.plain for line in plot.plot_lines(80, 22)]
    assert len(lines) == 22 and all(len(line) <= 80 for line in lines)
    axis = lines[-1].split()
    assert axis[0] == "0.0" and axis[1] == axis[-1] == "µs"  # a 1.6 ms connection, in µs
    assert fmt_axis(84_521_518_000, 84_521_518_000) == "84.522 s"


def test_frame_numbers_match_tshark_in_a_recording(tmp_path: Path) -> None:
    """FileLoader counts custom blocks as tshark does: every packet's number agrees."""
    from wirecorr.views.tui.index import EventIndex
    from wirecorr.views.tui.loader import FileLoader
    from wirecorr.views.tui.packets import LivePackets

    index = EventIndex(Session(), LivePackets())
    loader = FileLoader(index, ECHO)
    while not loader.done:
        loader.step(1.0)
    assert [index.frame(i) for i in range(loader.count)] == tshark_frames(ECHO, "tcp or udp")


@sync
async def test_ctrl_f_finds_text_in_data_and_n_counts_the_matches() -> None:
    app = make_app(ECHO)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+f", *"world", "enter")
        await settle(pilot, app)
        assert app.found == "world" and not app.only_matches
        assert app.matches is not None and len(app.matches) == 6
        status = str(app.query_one("#status-text", Static).render())
        assert status.startswith('match 1/6  ·  find "world": 6 match')
        first = app.timeline.current_ref
        assert first is not None and "world" in app.timeline.row_full_text(first).plain
        for n in range(2, 7):
            await pilot.press("n")
            assert app.match_at == n
        await pilot.press("n")  # past the last: back to the first, with a notice
        await pilot.pause()
        assert app.match_at == 1 and app.timeline.current_ref == first
        assert any("wrapped" in str(note.message) for note in app._notifications)


@sync
async def test_conversations_list_every_connection_sort_and_filter() -> None:
    from wirecorr.views.tui.conversations import Conversations

    app = make_app(PORT_BOMB)
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        conns = app.index.session.analyzer.connections
        await pilot.press("c")
        await pilot.pause()
        table = app.screen.query_one(Conversations)
        assert table.row_count == len(conns) > 100
        assert [int(table.get_row_at(i)[0]) for i in range(3)] == [0, 1, 2]
        await pilot.press("s", "s", "s")  # by packets, largest first
        packets = [sum(map(int, table.get_row_at(i)[3].split("+"))) for i in range(table.row_count)]
        assert packets == sorted(packets, reverse=True)
        await pilot.press("S")
        packets = [sum(map(int, table.get_row_at(i)[3].split("+"))) for i in range(table.row_count)]
        assert packets == sorted(packets)
        chosen = int(table.get_row_at(2)[0])
        await pilot.press("j", "j", "enter")
        await settle(pilot, app)
        assert not isinstance(app.screen, ViewerScreen)
        assert app.filter is not None and app.filter.text == f"conn == {chosen}"


@sync
async def test_delay_view_percentiles_and_the_slowest_link_one_key_away() -> None:
    from wirecorr.views.tui.delays import DelayView

    app = make_app(str(CAPTURES / "lab-retransmit.pcapng"))
    async with app.run_test(size=LARGE) as pilot:
        await settle(pilot, app)
        await pilot.press("H")
        await pilot.pause()
        view = app.screen.query_one(DelayView)
        writes = sorted(
            link.delay_ns for link in app.index.session.correlator.links
            if link.kind == "write-data" and link.delay_ns is not None
        )  # fmt: skip
        stats = next(s for s in view.stats if s.kind == "write-data")
        assert stats.delays == writes and stats.percentile(0.5) == writes[len(writes) // 2]
        assert "write() → first segment  [write-data]  12 links" in view.text()
        slowest = view.stats[0].slowest[0]
        await pilot.press("enter")
        await settle(pilot, app)
        ref = app.timeline.current_ref
        assert ref is not None and is_syscall_ref(ref) and app.index.call(ref).id == slowest.syscall


@sync
async def test_go_to_frame_marks_time_reference_and_delta() -> None:
    app = make_app(ECHO)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        timeline = app.timeline
        await pilot.press("ctrl+g", *"244", "enter")
        await pilot.pause()
        ref = timeline.current_ref
        assert ref == packet_ref(next(i for i in range(20) if app.index.frame(i) == 244))
        line = lambda: timeline.render_line(1 + timeline.cursor - timeline.scroll_offset.y).text  # noqa: E731
        await pilot.press("m", "ctrl+t")
        assert line().startswith(" *  0.000000    #244 ")
        assert timeline.render_line(0).text.startswith("  time (ref)")
        await pilot.press("t", "t")  # absolute, then delta since the row above
        prev_ts = timeline.view.ts[timeline.cursor - 1]
        assert f"+{(app.index.ts(ref) - prev_ts) / 1e9:.6f}" in line()
        assert timeline.render_line(0).text.startswith("  Δ shown")
        await pilot.press("t", "g", "apostrophe")  # back to relative; the mark is one key away
        assert timeline.current_ref == ref
        await pilot.press("ctrl+g", *"1", "enter")  # a custom block's frame, not a packet
        await pilot.pause()
        assert timeline.current_ref == ref
        assert any("no frame 1" in str(note.message) for note in app._notifications)


@sync
async def test_save_a_connection_as_pcapng_and_copy_rows(tmp_path: Path, monkeypatch: object) -> None:
    """w saves the connection's packets (byte for byte, as tshark reads them) and syscalls;
    y / Y put the row or its bytes on the clipboard (OSC 52)."""
    from wirecorr.recording import read_recording

    retransmit = str(CAPTURES / "lab-retransmit.pcapng")
    app = make_app(retransmit)
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+g", "9", "enter", "w")
        await pilot.pause()
        saved = tmp_path / "lab-retransmit-conn0.pcapng"
        assert saved.exists()
        await pilot.press("y")
        assert app.clipboard == app.timeline.row_full_text(packet_ref(app.timeline.current_ref >> 1)).plain
        await pilot.press("Y")
        assert bytes.fromhex(app.clipboard) == app.index.packets.get(app.timeline.current_ref >> 1).frame

    def fields(path: str, display_filter: str) -> str:
        argv = ["tshark", "-r", path, "-T", "fields", "-e", "frame.len", "-e", "tcp.seq_raw", "-Y", display_filter]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    ours, theirs = fields(str(saved), "tcp"), fields(retransmit, "tcp.stream == 0")
    assert ours == theirs and ours.count("\n") == 138
    rec = read_recording(str(saved))
    assert rec.complete and rec.meta["export"] == "connection #0"
    names = {sc.name for sc in rec.syscalls}
    assert {"connect", "accept4", "sendto", "recvfrom", "close"} <= names


async def _help_lines(size: tuple[int, int]) -> tuple[list[str], int, int]:
    app = make_app(ECHO)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        box = app.screen.query_one(VerticalScroll)
        body = box.query_one(Static)
        width, height = body.size
        lines = [strip.text for strip in body.render_lines(Region(0, 0, width, height))]
        return lines, box.outer_size.width, box.max_scroll_y


@sync
async def test_help_fits_80_columns_in_columns_and_200x50_whole() -> None:
    lines, width, _ = await _help_lines(SMALL)
    assert width <= 80
    starts = {k.keys for k in (*TIMELINE_KEYS, *APP_KEYS)} | {Text.from_markup(s).plain.strip() for s, _ in LEGEND}
    starts |= {title for title, _ in help_sections()} | {name for name, _ in FILTER_HELP}
    # A description too long for its line goes on in its own column, never under the keys.
    for line in lines:
        if line.strip() and not any(line.lstrip().startswith(s) for s in starts):
            assert not line[:11].strip(), line
    assert any(line.startswith("ctrl+t") for line in lines)
    # At 200x50 the keys, the colours and the filter fields are all on screen, side by side.
    lines, width, scroll = await _help_lines(LARGE)
    assert width <= 200 and scroll == 0
    assert any("Everywhere" in line and "Timeline" in line for line in lines)
    assert any(line.lstrip().startswith("requests") or "requests  " in line for line in lines)


def test_a_kernel_reason_already_shown_as_an_analysis_flag_is_not_repeated() -> None:
    from wirecorr.views.tui.index import EventIndex
    from wirecorr.views.tui.loader import FileLoader
    from wirecorr.views.tui.packets import LivePackets
    from wirecorr.views.tui.row_text import row_text

    seen = set()
    for name in ("lab-keepalive", "lab-zero-window"):
        index = EventIndex(Session(), LivePackets())
        loader = FileLoader(index, str(CAPTURES / f"{name}.pcapng"))
        while not loader.done:
            loader.step(1.0)
        for i in range(loader.count):
            row = row_text(index, packet_ref(i), False).plain
            for flag in ("keep_alive", "keep_alive_ack", "window_update"):
                if f" {flag} " in row:
                    seen.add(flag)
                    assert f"· {flag.replace('_', '-')}" not in row, row
    assert seen == {"keep_alive", "keep_alive_ack", "window_update"}


def test_ladder_counts_seconds_on_a_long_connection() -> None:
    from wirecorr.views.tui.ladder import TIME_W, fmt_time, time_unit

    assert time_unit(2_601_092_000) == "ms" and fmt_time(2_601_092_000, "ms") == " 2601.092"
    assert time_unit(84_521_518_000) == "s" and fmt_time(84_521_518_000, "s") == "84.521518"
    assert fmt_time(4_000_000_000_000, "s") == "4000.0000"
    assert all(len(fmt_time(ns, "s")) == TIME_W - 1 for ns in (0, 10**10, 10**12, 10**14))


@sync
async def test_sidebar_tables_fit_their_pane_and_mark_cuts() -> None:
    """No column runs off the pane's edge: columns that do not fit are left out, and a cell
    cut to fit ends in …; at 200x50 the whole 4-tuple and the state are there."""
    from wirecorr.views.tui.connections import ConnectionsPane
    from wirecorr.views.tui.findings_pane import FindingsPane

    drawn: dict[tuple[int, int], list[str]] = {}
    for size in (SMALL, LARGE):
        app = make_app(PORT_BOMB)
        async with app.run_test(size=size) as pilot:
            await settle(pilot, app)
            if size == SMALL:
                await pilot.press("b")  # the sidebar, below the timeline at 80 columns
                await pilot.pause()
            drawn[size] = []
            for table in (app.query_one(ConnectionsPane), app.query_one(FindingsPane)):
                assert table.row_count and table.max_scroll_x == 0
                drawn[size] += [table.render_line(y).text for y in range(3)]
    small, large = "\n".join(drawn[SMALL]), "\n".join(drawn[LARGE])
    assert "127.0.0.1:40046 → 127.0.0.1…" in small and "connect() t…" in small
    assert "127.0.0.1:40046 → 127.0.0.1:8080" in large and "TIME_WAIT/CLOSED" in large


def test_a_delay_too_wide_for_its_column_keeps_its_unit() -> None:
    from wirecorr.views.tui.row_text import fmt_delay

    assert fmt_delay(50_604_000, 8) == "50.6 ms" and fmt_delay(50_604_000, 9) == "50.604 ms"
    assert fmt_delay(901_000, 8) == "901.0 µs" and fmt_delay(114_900, 7) == "115 µs"
    assert fmt_delay(1_973_000, 7) == "1.97 ms" and fmt_delay(1_234_000_000_000, 8) == "1234 s"


@sync
async def test_at_80_columns_a_delay_of_tens_of_ms_is_shown_with_its_unit() -> None:
    app = make_app(str(CAPTURES / "lab-udp-vs-tcp.pcapng"))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        rows = [row for row in screen_rows(app) if "recvfrom(" in row]
    assert rows and all(" ms " in row and "… recvfrom" not in row for row in rows[:2]), rows


@sync
async def test_end_of_a_file_read_whole_does_not_say_following() -> None:
    app = make_app(ECHO)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        await pilot.press("G")
        await pilot.pause()
        status = str(app.query_one("#status-text", Static).render())
        assert app.timeline.cursor == len(app.timeline.view) - 1
    assert "following" not in status


@sync
async def test_ladder_opens_on_the_row_it_was_opened_from() -> None:
    """From a retransmission far down the connection, `l` shows that packet selected, on
    screen, as Wireshark's flow graph selects the current packet; likewise for a syscall."""
    app = make_app(str(CAPTURES / "lab-retransmit.pcapng"))
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot, app)
        table = app.index.session.analyzer.table
        late = [i for i in range(len(table)) if table.analysis[i] and table.conn[i] >= 0][-1]
        call = next(
            r for r in reversed(app.timeline.view.refs) if is_syscall_ref(r) and app.index.conn_of(r) is not None
        )
        for ref in (packet_ref(late), call):
            app.timeline.goto_ref(ref)
            await pilot.press("l")
            ladder = app.screen.query_one(LadderView)
            while ladder.loading_rows:
                await pilot.pause(0.05)
            await pilot.pause()
            row = ladder.rows[ladder.cursor]
            if ref == call:
                assert row.kind != 0 and ladder.calls[row.ref].sc.id == app.index.call(call).id
            else:
                assert row.kind == 0 and row.ref == late
            top = int(ladder.scroll_offset.y)
            assert ladder.cursor > SMALL[1] and top <= ladder.cursor < top + ladder.size.height - 1
            await pilot.press("escape")
            await pilot.pause()
