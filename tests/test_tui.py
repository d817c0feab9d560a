"""The TUI driven by Textual's pilot: panes, keys, the display filter, and live mode on a real trace."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pty_helpers import run_with_tty
from textual import events
from textual.containers import VerticalScroll
from textual.keys import _character_to_key
from textual.widgets import Input
from tui_helpers import CAPTURE, SIZE, make_app, settle, sync

from wirecorr.cli import build_parser
from wirecorr.engine.session import Session
from wirecorr.recording import read_recording
from wirecorr.views.tui import app as app_module
from wirecorr.views.tui.app import WirecorrApp
from wirecorr.views.tui.connections import ConnectionsPane
from wirecorr.views.tui.detail import Detail, describe
from wirecorr.views.tui.display_filter import FilterError, compile_filter, tokenize
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.keys import APP_KEYS, HelpScreen
from wirecorr.views.tui.loader import FileLoader
from wirecorr.views.tui.packets import LivePackets
from wirecorr.views.tui.rows import RowIndex, is_syscall_ref, packet_ref
from wirecorr.views.tui.timeline import Timeline
from wirecorr.views.tui.viewer import ViewerScreen


def detail_text(app: WirecorrApp) -> str:
    return str(app.query_one("#detail-body").render())


def current(app: WirecorrApp) -> int:
    ref = app.timeline.current_ref
    assert ref is not None
    return ref


# -- the display filter, as a language -----------------------------------------------------


class Facts:
    """A row with fixed fields, to test the compiled predicates without a Session."""

    def __init__(self, **fields: object) -> None:
        self.fields = {k.replace("__", "."): v for k, v in fields.items()}

    def field(self, ref: int, name: str) -> object:
        return self.fields.get(name)


@pytest.mark.parametrize(
    ("text", "facts", "expected"),
    [
        ("syscall == accept4", Facts(syscall="accept4"), True),
        ("syscall == accept4", Facts(syscall="read"), False),
        ('syscall != "read"', Facts(syscall="accept4"), True),
        ("fd == 5", Facts(fd=5), True),
        ("fd == 0x5", Facts(fd=5), True),
        ("pid == 1234 and fd == 5", Facts(pid=1234, fd=4), False),
        ("pid == 1234 or fd == 5", Facts(pid=1234, fd=4), True),
        ("tcp.flags.syn", Facts(**{"tcp.flags.syn": True}), True),
        ("not tcp.flags.syn", Facts(**{"tcp.flags.syn": True}), False),
        ("!tcp.flags.fin && tcp.len > 0", Facts(**{"tcp.flags.fin": False, "tcp.len": 6}), True),
        ("tcp.len > 0", Facts(), False),  # a syscall has no tcp.len: false, as in Wireshark
        ("(conn == 3 or conn == 4) and linked", Facts(conn=4, linked=True), True),
        ("(conn == 3 or conn == 4) and linked", Facts(conn=5, linked=True), False),
        ("kernel_only", Facts(kernel_only=True), True),
        ("finding", Facts(finding=(0,)), True),
        ("finding == 2", Facts(finding=(0, 2)), True),
        ("link == 1", Facts(link=(0, 2)), False),
        ("errno", Facts(errno="EAGAIN"), True),
        ("errno == ECONNRESET", Facts(errno="EAGAIN"), False),
        ("errno", Facts(errno=None), False),
        ("tcp.win >= 65535", Facts(**{"tcp.window": 65535}), True),
    ],
)
def test_filter_language(text: str, facts: Facts, expected: bool) -> None:
    assert compile_filter(text).predicate(facts, 0) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("", "empty filter", 1),
        ("syscall ==", "syscall wants a name, found 'end of filter'", 11),
        ("fd == accept4", "fd wants a number, found 'accept4'", 7),
        ("tcp.len >", "tcp.len wants a number", 10),
        ("sycall == read", "unknown field 'sycall'", 1),
        ("(fd == 1", "expected ')'", 9),
        ("fd == 1)", "expected 'and', 'or' or end of filter, found ')'", 8),
        ("linked == 2", "linked is a flag", 8),
        ("syscall > read", "syscall compares with == or != only", 9),
        ("fd == 1 @", "unexpected character '@'", 9),
        ("and", "expected a field name, found '&&'", 1),
    ],
)
def test_filter_errors_say_where(text: str, message: str, column: int) -> None:
    with pytest.raises(FilterError) as e:
        compile_filter(text)
    assert message in str(e.value)
    assert e.value.pos == column - 1


def test_tokenizer_words_and_symbols_are_the_same_operators() -> None:
    assert [t.text for t in tokenize("a and b or not c")] == [t.text for t in tokenize("a && b || ! c")]
    assert compile_filter("linked and conn == 1").depends_on_links
    assert not compile_filter("syscall == read").depends_on_links


def test_row_index_inserts_late_rows_in_place() -> None:
    rows = RowIndex()
    rows.add([(10, 2), (30, 4)])
    assert rows.add([(20, 3), (40, 6)]) == 1
    assert list(rows.ts) == [10, 20, 30, 40]
    assert rows.position(30, 4) == 2
    assert rows.position(30, 5) is None


@given(st.lists(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 1000)), max_size=40), max_size=8))
def test_row_index_equals_a_stable_sort_of_its_batches(batches: list[list[tuple[int, int]]]) -> None:
    """Equal timestamps keep arrival order: rows already there first, a batch in (ts, ref) order."""
    rows = RowIndex()
    for batch in batches:
        rows.add(batch)
    expected = sorted((row for batch in batches for row in sorted(batch)), key=lambda row: row[0])
    assert list(zip(rows.ts, rows.refs, strict=True)) == expected


# -- the app on a real recording ------------------------------------------------------------


@sync
async def test_opens_on_network_rows_with_links_and_detail() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        index = app.index
        assert len(index.rows) == 11 + 239  # every packet and syscall of the recording
        assert app.filter is not None and app.filter.text == "net"
        assert len(app.timeline.view) == 11 + 31  # packets + syscalls on sockets
        assert app.query_one(ConnectionsPane).row_count == 1
        assert "socket" in detail_text(app)  # the cursor starts on the first row
        text = app.timeline.render_line(1).text
        assert "socket(domain=AF_INET" in text and "app" in text


@sync
async def test_cursor_keys_move_and_detail_follows() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        timeline = app.timeline
        await pilot.press("j", "j", "down")
        assert timeline.cursor == 3
        await pilot.press("k", "up")
        assert timeline.cursor == 1
        await pilot.press("G")
        assert timeline.cursor == len(timeline.view) - 1
        assert "close" in detail_text(app)
        await pilot.press("g")
        assert timeline.cursor == 0
        await pilot.press("pagedown")
        assert timeline.cursor > 10
        await pilot.press("pageup")
        assert timeline.cursor == 0


@sync
async def test_rows_indexed_above_the_cursor_before_they_are_shown_leave_the_selection_alone() -> None:
    """Live rows go into the view as they are indexed but are shown (`rows_changed`) at most
    every so often; rows sorting above the selected one (a recorder's late syscalls) in
    between must not turn the selection, nor a key pressed then, to another row."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        timeline = app.timeline
        await pilot.press(*"jjjjjj")
        view = timeline.view
        selected, above = view.refs[6], view.refs[5]
        late = np.array([view.ts[0] - 3, view.ts[0] - 2, view.ts[0] - 1], dtype=np.int64)
        view.add_arrays(late, np.array([above, above, above], dtype=np.int64))
        assert view.refs[6] != selected  # the cursor's position now holds another row
        assert timeline.current_ref == selected
        await pilot.press("k")
        assert timeline.current_ref == above and timeline.cursor == 8
        timeline.rows_changed(3)
        assert timeline.current_ref == above and timeline.cursor == 8


@sync
async def test_enter_follows_the_link_and_cycles_back() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        timeline = app.timeline
        accept = next(r for r in timeline.view.refs if is_syscall_ref(r) and app.index.call(r).name == "accept4")
        assert timeline.goto_ref(accept)
        # Linked rows are highlighted: the handshake's three packets.
        assert timeline.related == {packet_ref(0), packet_ref(1), packet_ref(2)}
        seen = []
        for _ in range(4):
            await pilot.press("enter")
            seen.append(current(app))
        assert seen == [packet_ref(0), packet_ref(1), packet_ref(2), accept]
        assert "accept4" in detail_text(app)


@sync
async def test_filter_typed_applied_and_errors_shown() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("slash")
        box = app.query_one("#filter")
        assert box.has_focus
        box.value = ""  # type: ignore[attr-defined]
        await pilot.press(*"fd == accept4")
        assert box.has_class("-invalid")
        assert "fd wants a number" in str(app.query_one("#filter-error").render())
        box.value = ""  # type: ignore[attr-defined]
        await pilot.press(*"syscall == read and fd == 4", "enter")
        await settle(pilot, app)
        assert not box.has_class("-invalid")
        view = app.timeline.view
        assert len(view) == 2
        assert all(app.index.call(r).name == "read" and app.index.call(r).fd == 4 for r in view.refs)
        assert app.timeline.has_focus
        await pilot.press("escape")
        assert app.filter is None and len(app.timeline.view) == 250


@sync
async def test_selection_survives_a_filter_and_its_clearing() -> None:
    """Wireshark's behaviour: a hidden selection moves to the nearest shown row, and that
    row stays selected when the filter is cleared."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        timeline = app.timeline
        before = timeline.current_ref
        assert before is not None and is_syscall_ref(before)  # socket(), which SYN rows hide
        app.set_filter("tcp.flags.syn")
        await settle(pilot, app)
        assert timeline.current_ref == packet_ref(0)  # the nearest shown row, after socket()
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.filter is None and timeline.current_ref == packet_ref(0)
        assert detail_text(app).startswith("frame 219 ")


@sync
async def test_next_previous_match_over_all_rows() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.set_filter("tcp.flags.fin")
        await settle(pilot, app)
        assert len(app.timeline.view) == 2
        await pilot.press("a")  # all rows, matches are n/N stops
        await settle(pilot, app)
        assert len(app.timeline.view) == 250
        await pilot.press("g", "n")
        first = current(app)
        await pilot.press("n")
        second = current(app)
        assert {first, second} == {packet_ref(7), packet_ref(9)}  # frames 8 and 10 carry the FINs
        await pilot.press("N")
        assert current(app) == first


@sync
async def test_connection_selection_filters_the_timeline() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        conns = app.query_one(ConnectionsPane)
        conns.focus()
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.filter is not None and app.filter.text == "conn == 0"
        refs = list(app.timeline.view.refs)
        assert sum(1 for r in refs if not is_syscall_ref(r)) == 11
        names = {app.index.call(r).name for r in refs if is_syscall_ref(r)}
        assert {"accept4", "connect", "write", "read", "shutdown", "close"} <= names
        assert "31165/4" in conns.cells[0][3]  # the accepting side's pid/fd (shown when the pane is wide)


@sync
async def test_tab_mouse_time_help_and_palette() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("tab")
        assert isinstance(app.focused, Detail)
        await pilot.click(Timeline, offset=(20, 5))  # border row, header + 3: the fourth row
        assert app.timeline.cursor == 3 and app.timeline.has_focus
        await pilot.press("t")
        assert app.timeline.absolute
        assert "04:28:54." in app.timeline.render_line(1).text
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.resize_terminal(80, 24)  # the help is taller than the screen: it scrolls
        await pilot.pause()
        box = app.screen.query_one(VerticalScroll)
        assert box.max_scroll_y > 0
        await pilot.press("j", "j")
        assert box.scroll_y == 2
        await pilot.press("k")
        assert box.scroll_y == 1
        await pilot.press("G")
        assert box.scroll_y == box.max_scroll_y
        await pilot.press("g")
        assert box.scroll_y == 0
        await pilot.resize_terminal(*SIZE)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for key in APP_KEYS:
            if key.action not in ("quit", "command_palette", "focus_next", "focus_previous"):
                assert any(f"({key.keys})" in t for t in titles), key


@pytest.mark.parametrize(("key", "widget"), [("f", "FollowStream"), ("l", "LadderView"), ("p", "SeqPlot")])
@sync
async def test_connection_views_open_over_the_timeline(key: str, widget: str) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.timeline.goto_ref(packet_ref(3))  # the first data segment
        await pilot.press(key)
        await pilot.pause(0.2)
        assert isinstance(app.screen, ViewerScreen)
        assert type(app.screen.body).__name__ == widget
        await pilot.press("escape")
        assert app.timeline.current_ref == packet_ref(3)


@sync
async def test_views_replace_each_other_and_slash_returns_to_the_timeline() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.timeline.goto_ref(packet_ref(3))
        await pilot.press("l")
        await pilot.pause(0.2)
        await pilot.press("p")
        await pilot.pause(0.2)
        assert type(app.screen.body).__name__ == "SeqPlot"  # type: ignore[attr-defined]
        assert len(app.screen_stack) == 2  # in place of the ladder, not on top of it
        await pilot.press("slash")
        await pilot.pause(0.1)
        assert len(app.screen_stack) == 1 and app.query_one("#filter").has_focus


@sync
async def test_dissection_mounts_in_the_detail_pane() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.timeline.goto_ref(packet_ref(0))
        await pilot.press("d")
        await pilot.pause(0.1)
        assert type(app.query_one(".dissection")).__name__ == "DissectionTree"
        app.timeline.goto_ref(packet_ref(1))  # moving on drops the old packet's dissection
        await pilot.pause()
        assert not app.query(".dissection")


# -- live mode: the real recorder on a real program ------------------------------------------

ECHO = r"""
import socket, sys, threading, time
srv = socket.create_server(("127.0.0.1", 0))
def serve():
    conn, _ = srv.accept()
    with conn:
        while data := conn.recv(100):
            conn.sendall(data)
threading.Thread(target=serve, daemon=True).start()
with socket.create_connection(srv.getsockname()) as cli:
    for i in range(int(sys.argv[1])):
        cli.sendall(b"ping %d" % i)
        cli.recv(100)
        time.sleep(0.05)
"""


def live_session(tmp_path: Path, rounds: int):  # type: ignore[no-untyped-def]
    from wirecorr.commands.live import LiveRecording
    from wirecorr.commands.record import options
    from wirecorr.engine.linking import annotate

    if os.geteuid() != 0:
        pytest.skip("live mode traces and captures: needs root")
    script = tmp_path / "echo.py"
    script.write_text(ECHO)
    out = str(tmp_path / "live.pcapng")
    args = build_parser().parse_args(["live", "-o", out, "-i", "lo", "--", sys.executable, str(script), str(rounds)])
    live = LiveRecording(options(args, "live"), annotate)
    return live, out


@pytest.mark.slow
@sync
async def test_live_follows_the_tail_then_counts_new_events(tmp_path: Path) -> None:
    # 30 s of traffic at most: q must stop it while it runs (a 3 s run could end first on a slow machine).
    live, out = live_session(tmp_path, rounds=600)
    app = WirecorrApp(live.index, live.feed, title="live", live=True)
    live.start()
    try:
        async with app.run_test(size=SIZE) as pilot:
            timeline = app.timeline
            deadline = time.monotonic() + 20
            # Rows on sockets, not just events: the interpreter's start-up reads come first.
            while len(timeline.view) < 20 and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert len(timeline.view) >= 20
            # Following the tail redraws at most every 30 ms: rows may be in the view a moment
            # before the cursor reaches them.
            at_tail = time.monotonic() + 2
            while timeline.cursor != len(timeline.view) - 1 and time.monotonic() < at_tail:
                await pilot.pause(0.01)
            assert timeline.follow_tail and timeline.cursor == len(timeline.view) - 1
            await pilot.press("k")
            assert not timeline.follow_tail
            held = timeline.current_ref
            before = live.index.events
            while live.index.events < before + 20 and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert timeline.current_ref == held  # the view stays where the user went
            assert timeline.unseen > 0
            assert "new events (G to follow)" in str(app.query_one("#status-text").render())
            assert "events/s" in str(app.query_one("#status-text").render())
            # tcpdump's kernel drop counter, asked for while it runs (SIGUSR1).
            while "0 dropped" not in str(app.query_one("#status-text").render()) and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert "0 dropped" in str(app.query_one("#status-text").render())
            await pilot.press("G")
            assert timeline.follow_tail and timeline.unseen == 0
            await pilot.press("q")
        assert live.join() == 0
    finally:
        live.stop()
        live.thread.join(10)
    rec = read_recording(out)
    assert rec.is_recording and rec.complete and not rec.truncated
    assert rec.summary is not None and rec.summary["signal"] == 2  # stopped the way ctrl-c stops record
    assert any(sc.name == "connect" for sc in rec.syscalls) and rec.packet_count > 0


async def until_done(pilot: Any, live: Any, timeout_s: float) -> None:
    """Let the app run until the live session's feed is done, at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not live.feed.done and time.monotonic() < deadline:
        await pilot.pause(0.1)


@pytest.mark.slow
@sync
async def test_live_shows_a_whole_short_run(tmp_path: Path) -> None:
    live, out = live_session(tmp_path, rounds=3)
    app = WirecorrApp(live.index, live.feed, title="live", live=True)
    live.start()
    async with app.run_test(size=SIZE) as pilot:
        await until_done(pilot, live, 20)
        assert live.feed.done and "exit status 0" in live.feed.status()
        assert any(link.kind == "write-data" for link in live.index.session.correlator.links)
        await pilot.press("q")
    assert live.join() == 0
    assert read_recording(out).complete


def tshark_packet_frames(path: str) -> list[int]:
    """tshark's frame numbers of the packets of `path`, in file order: its Custom Blocks
    are frames too (protocol `data`), so they are left out here but counted."""
    out = subprocess.run(
        ["tshark", "-n", "-r", path, "-T", "fields", "-e", "frame.number", "-e", "frame.protocols"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(number) for number, protocols in (line.split("\t") for line in out.splitlines()) if protocols != "data"]


@pytest.mark.slow
@sync
async def test_live_frame_numbers_are_tsharks_in_the_recording_being_written(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    # 2 s of traffic: the writer's flush thread puts syscall blocks between packets, once a second.
    live, out = live_session(tmp_path, rounds=40)
    app = WirecorrApp(live.index, live.feed, title="live", live=True)
    live.start()
    async with app.run_test(size=SIZE) as pilot:
        await until_done(pilot, live, 30)
        assert live.feed.done
        shown = [live.index.frame(i) for i in range(len(live.index.session.analyzer.table))]
        syn = next(i for i, flags in enumerate(live.index.session.analyzer.table.flags) if flags & 0x02)
        syn_detail = describe(live.index, packet_ref(syn)).plain
        await pilot.press("q")
    assert live.join() == 0
    frames = tshark_packet_frames(out)
    assert len(shown) == len(frames) > 40
    assert shown == frames
    assert shown[0] > 1  # the header block is frame 1
    assert f"frame {frames[syn]}" in syn_detail
    # The same file opened again (`wirecorr tui REC`), linked since: the same numbers.
    replay = EventIndex(Session(), LivePackets())
    loader = FileLoader(replay, out)
    while not loader.done:
        loader.step(1.0)
    assert [replay.frame(i) for i in range(loader.count)] == frames


def test_bare_file_argument_opens_the_tui(monkeypatch: pytest.MonkeyPatch) -> None:
    from wirecorr import cli

    seen: list[str] = []
    monkeypatch.setattr(WirecorrApp, "run", lambda self: seen.append(self.sub_title))
    monkeypatch.setattr(app_module, "require_terminal", lambda command, instead: None)
    assert cli.main([CAPTURE]) == 0
    assert seen == [CAPTURE]


def test_gzip_capture_opens_from_a_decompressed_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The UI re-reads packets by offset, so a .gz is decompressed into a temporary directory,
    shown under its own name, and the copy removed at exit; a damaged one is refused."""
    from wirecorr import cli

    original = Path(CAPTURE).read_bytes()
    gz = tmp_path / "echo.pcapng.gz"
    gz.write_bytes(gzip.compress(original))
    seen: dict[str, object] = {}

    def run(app: WirecorrApp) -> None:
        loader = app.feed
        assert isinstance(loader, FileLoader)
        seen.update(path=loader.path, status=loader.status(), data=Path(loader.path).read_bytes())

    monkeypatch.setattr(WirecorrApp, "run", run)
    monkeypatch.setattr(app_module, "require_terminal", lambda command, instead: None)
    assert cli.main(["tui", str(gz)]) == 0
    assert seen["data"] == original
    assert str(seen["status"]).startswith(f"{gz}: indexing")
    assert not Path(str(seen["path"])).exists()
    gz.write_bytes(gzip.compress(original)[:-100])
    assert cli.main(["tui", str(gz)]) == 2


def test_tui_without_a_terminal_says_so_at_once() -> None:
    """With stdin or stderr not a terminal (a script, a pipe) Textual would write escape codes
    into it and wait for keys that never come."""
    expected = (
        "wirecorr: tui: the terminal UI needs a terminal on stdin and stderr; "
        "`wirecorr analyze FILE` prints the same as text\n"
    )
    argv = [sys.executable, "-m", "wirecorr", "tui", CAPTURE]
    assert run_with_tty(argv, stdin_tty=False, stderr_tty=True) == (2, expected)
    assert run_with_tty(argv, stdin_tty=True, stderr_tty=False) == (2, expected)


def test_tui_command_rejects_missing_file() -> None:
    from wirecorr import cli

    assert cli.main(["tui", "/nonexistent.pcapng"]) != 0


@sync
async def test_keys_in_the_same_burst_as_slash_reach_the_filter_bar() -> None:
    """A paste or fast typing queues every key before the first one runs: none of those after
    "/" may act as a command (here `a` would toggle "only matches", `l` open the ladder)."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("escape")  # no filter: the bar opens empty
        await settle(pilot, app)
        only = app.only_matches
        burst(app, "/syscall == read and fd == 4\r")
        await settle(pilot, app)
        assert len(app.screen_stack) == 1 and app.only_matches == only
        assert app.filter is not None and app.filter.text == "syscall == read and fd == 4"
        refs = app.timeline.view.refs
        assert len(refs) == 2 and all(app.index.call(r).name == "read" for r in refs)
        # Inside the bar "/" is text, as in an address with a prefix length, in its place.
        await pilot.press("slash")
        app.query_one("#filter", Input).value = ""
        burst(app, "net 10.0.0.0/8")
        await settle(pilot, app)
        assert app.query_one("#filter", Input).value == "net 10.0.0.0/8"


def burst(app: WirecorrApp, text: str) -> None:
    """Queue keys as a paste or fast typing does: all of them before the first one runs."""
    for ch in text:
        app.post_message(events.Key("enter", None) if ch == "\r" else events.Key(_character_to_key(ch), ch))


@pytest.mark.parametrize("how", ["sighup", "hup-ignored"])
def test_tui_ends_and_cleans_up_when_its_terminal_goes_away(how: str, tmp_path: Path) -> None:
    """Killed by SIGHUP the TUI left its decompressed copy in /tmp; with the hang-up ignored
    (a parent trapping HUP) it spun on read() = 0. Either way it must end, 128 + SIGHUP, with
    its temporary directory gone."""
    import pty
    import select
    import signal
    import subprocess

    gz = tmp_path / "echo.pcapng.gz"
    gz.write_bytes(gzip.compress(Path(CAPTURE).read_bytes()))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), TERM="xterm-256color")
    master, slave = pty.openpty()
    ignore = (lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) if how == "hup-ignored" else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "wirecorr", "tui", str(gz)],
        stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=ignore, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    try:
        deadline = time.monotonic() + 60
        screen = b""
        while b"Timeline" not in screen:  # up and drawn: its handlers are installed by then
            assert time.monotonic() < deadline, "the TUI did not start"
            if select.select([master], [], [], 0.1)[0]:
                screen += os.read(master, 65536)
        assert list(scratch.iterdir())
        if how == "sighup":
            proc.send_signal(signal.SIGHUP)
        os.close(master)
        master = -1
        assert proc.wait(timeout=30) == 128 + signal.SIGHUP
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(scratch.iterdir()) == []


def test_tui_refuses_a_file_that_is_no_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """As `analyze` does: one line naming the file and the offset, exit 2, no empty UI."""
    from wirecorr import cli

    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"\xdf\x0b\xc6\x63" + bytes(range(256)) * 4)
    monkeypatch.setattr(app_module, "require_terminal", lambda command, instead: None)
    monkeypatch.setattr(WirecorrApp, "run", lambda app: pytest.fail("the UI opened"))
    assert cli.main(["tui", str(garbage)]) == 2
    assert capsys.readouterr().err == f"wirecorr: {garbage} at byte 0: not a pcap or pcapng file (magic 0x63c60bdf)\n"
