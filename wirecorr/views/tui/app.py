"""WirecorrApp: the panes, the keys, and the worker that turns a Feed into rows.

A Feed is where events come from: a file being indexed (loader.FileLoader) or a trace
being recorded (live.LiveFeed). The app does not care which: its ingest worker asks the
feed for a slice of events, flushes them into rows and tells the panes, so live mode and
replay are one code path, as docs/architecture.md wants.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from typing import Protocol

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, ProgressBar, Static

from wirecorr.errors import UsageError
from wirecorr.views.tui.connections import ConnectionsPane
from wirecorr.views.tui.detail import Detail
from wirecorr.views.tui.display_filter import Filter, FilterError, compile_filter
from wirecorr.views.tui.findings_pane import FindingsPane
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.keys import APP_KEYS, HelpScreen, app_bindings
from wirecorr.views.tui.rows import RowIndex, is_syscall_ref, ref_pos
from wirecorr.views.tui.timeline import Timeline
from wirecorr.views.tui.viewer import ViewerScreen

SLICE_S = 0.010
# Idle time after each slice. Textual's messages (key → action → refresh → compositor)
# each take one event-loop turn; with a bare sleep(0) every turn would also run a whole
# slice, so a key press would wait several slices before the screen shows it.
YIELD_S = 0.004
# After a key press or mouse event, indexing and filter scans stand aside this long: the
# key's action, the refresh and the compositor then run back to back instead of each
# waiting behind a slice (a cursor move took 51 ms instead of 17 while a file was indexed).
INPUT_QUIET_S = 0.1
# New rows reach the timeline at most this often (at once while it follows a live tail):
# each time costs a layout pass and a redraw of every visible line (~12 ms), which after
# every slice made key presses wait.
VIEW_EVERY_S = 0.1
PANES_EVERY_S = 0.5
# Where a session opens: packets and socket syscalls, not the dynamic loader's open/mmap/read
# noise that outnumbers them (239 syscalls, 31 on sockets, in captures/handshake-echo).
START_FILTER = "net"


def require_terminal(command: str, *, instead: str) -> None:
    """Refuse to start the UI where it cannot work; `instead` names what works there.

    Textual reads keys from stdin and draws on stderr: with either one a file or a pipe
    (a script, `| less`, cron) it would write escape codes there and wait for keys forever.
    """
    if not all(stream is not None and stream.isatty() for stream in (sys.__stdin__, sys.__stderr__)):
        raise UsageError(f"{command}: the terminal UI needs a terminal on stdin and stderr; {instead}")


class Feed(Protocol):
    """A source of events for the index: `step` feeds some, `done` once there are no more."""

    done: bool

    def step(self, budget_s: float) -> int: ...

    def progress(self) -> float | None: ...

    def status(self) -> str: ...

    def stop(self) -> None: ...


class WirecorrApp(App[None]):
    TITLE = "wirecorr"
    BINDINGS = [
        *app_bindings(),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]
    CSS = """
    #main { height: 1fr; }
    #left { width: 2fr; }
    #right { width: 1fr; min-width: 40; }
    #filter { display: none; border: tall $success; }
    #filter.-invalid { border: tall $error; }
    #filter.-open { display: block; }
    #filter-error { display: none; color: $error; height: 1; padding: 0 1; }
    #filter-error.-open { display: block; }
    #status { height: 1; background: $panel; }
    #status-text { width: 1fr; padding: 0 1; }
    #progress { width: 40; display: none; }
    #progress.-loading { display: block; }
    """

    def __init__(
        self, index: EventIndex, feed: Feed, *, title: str, live: bool = False, start_filter: str = START_FILTER
    ) -> None:
        super().__init__()
        self.index = index
        self.feed = feed
        self.live = live
        self.sub_title = title
        self.start_filter = start_filter
        self.filter: Filter | None = None
        self.matches: RowIndex | None = None
        self.only_matches = True
        self.filtering = False
        self.indexed_in: float | None = None
        self._started = time.perf_counter()
        self._panes_at = 0.0
        self._input_at = 0.0
        self._shown_at = 0.0
        self._unshown = 0

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseEvent)):
            self._input_at = time.perf_counter()
        await super().on_event(event)

    async def _stand_aside(self, at_least: float) -> None:
        """Sleep through the quiet period that follows user input, and at least `at_least`."""
        await asyncio.sleep(at_least)
        while (wait := self._input_at + INPUT_QUIET_S - time.perf_counter()) > 0:
            await asyncio.sleep(wait)

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Timeline(self.index, live=self.live, id="timeline")
                yield Detail(self.index, id="detail")
            with Vertical(id="right"):
                yield ConnectionsPane(self.index, id="connections")
                yield FindingsPane(self.index, id="findings")
        yield Input(placeholder="display filter, e.g. syscall == accept4 or tcp.flags.syn", id="filter")
        yield Static(id="filter-error")
        with Horizontal(id="status"):
            yield Static(id="status-text")
            yield ProgressBar(total=100, show_eta=False, id="progress")
        yield Footer()

    @property
    def timeline(self) -> Timeline:
        return self.query_one(Timeline)

    def on_mount(self) -> None:
        if self.feed.progress() is not None:
            self.query_one("#progress").add_class("-loading")
        self.timeline.focus()
        if self.start_filter:
            self.set_filter(self.start_filter)
        self.ingest()

    # -- ingest ---------------------------------------------------------------------------

    @work(group="ingest", exclusive=True)
    async def ingest(self) -> None:
        feed = self.feed
        while True:
            if self.filtering:
                await asyncio.sleep(0.01)
                continue
            fed = feed.step(SLICE_S)
            # Indexed events live as long as the app: moving them out of the collector's
            # reach keeps its full passes short (over a million objects one took 100-250 ms,
            # a visible stall of every key press while a large file was indexed).
            gc.freeze()
            new = self.index.flush()
            if new:
                self._add_rows(new)
            due = feed.done or self.timeline.follow_tail or time.perf_counter() - self._shown_at >= VIEW_EVERY_S
            if self._unshown and due:
                self._show_rows()
            if feed.done:
                break
            self._update_panes(force=False)
            await self._stand_aside(YIELD_S if fed else 0.05)
        self._indexed()

    def _add_rows(self, new: list[tuple[int, int]]) -> None:
        timeline = self.timeline
        first = not len(timeline.view) and timeline.cursor_key is None
        if self.filter is not None and self.matches is not None:
            pred, index = self.filter.predicate, self.index
            hits = [row for row in new if pred(index, row[1])]
            self.matches.add(hits)
            self._unshown += len(hits) if self.only_matches else len(new)
        else:
            self._unshown += len(new)
        if first:
            self._show_rows()
            if len(timeline.view):
                timeline.action_first() if not self.live else timeline.action_last()

    def _show_rows(self) -> None:
        self._shown_at = time.perf_counter()
        added, self._unshown = self._unshown, 0
        self.timeline.rows_changed(added)

    def _indexed(self) -> None:
        """Indexing ended: the engine's finish() settled links and labels; redraw with them."""
        self.indexed_in = time.perf_counter() - self._started
        self.index.sync()
        self.query_one("#progress").remove_class("-loading")
        self.timeline.clear_cache()
        self._update_panes(force=True)
        if self.filter is not None and self.filter.depends_on_links:
            self.apply_filter(self.filter)
        error = self.index.session.error
        if error is not None:
            self.notify(str(error), severity="warning", timeout=8)

    def _update_panes(self, force: bool) -> None:
        now = time.perf_counter()
        if not force and now - self._panes_at < PANES_EVERY_S:
            return
        self._panes_at = now
        self.query_one(ConnectionsPane).refresh_rows(full=force)
        self.query_one(FindingsPane).refresh_rows()
        self._update_status()
        progress = self.feed.progress()
        if progress is not None:
            self.query_one(ProgressBar).update(progress=progress * 100)

    def _update_status(self) -> None:
        timeline = self.timeline
        parts = [self.feed.status(), f"{self.index.events:,} events"]
        if self.filter is not None:
            where = "shown" if self.only_matches else "match, all rows shown"
            shown = len(self.matches) if self.matches is not None else 0
            parts.append(f"filter {self.filter.text}: {shown:,} {where}")
        if timeline.follow_tail:
            parts.append("following (k/↑ to stop)")
        elif timeline.unseen:
            parts.append(f"{timeline.unseen:,} new events (G to follow)")
        self.query_one("#status-text", Static).update("  ·  ".join(parts))

    # -- panes talking to each other -----------------------------------------------------

    @on(Timeline.Moved)
    def _moved(self, event: Timeline.Moved) -> None:
        self.query_one(Detail).show(event.ref)

    @on(Timeline.Scrolled)
    def _scrolled(self) -> None:
        self._update_status()

    @on(ConnectionsPane.Chosen)
    def _conn_chosen(self, event: ConnectionsPane.Chosen) -> None:
        self.set_filter(f"conn == {event.conn_id}")
        self.timeline.focus()

    @on(FindingsPane.Chosen)
    def _finding_chosen(self, event: FindingsPane.Chosen) -> None:
        self.set_filter(f"finding == {event.number}")
        self.timeline.focus()

    # -- the display filter ---------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Apply `text` as the display filter (empty clears it); errors are notified."""
        self.query_one("#filter", Input).value = text
        text = text.strip()
        if not text:
            self.action_clear_filter()
            return
        try:
            flt = compile_filter(text)
        except FilterError as e:
            self.notify(f"filter: {e}", severity="error")
            return
        self.apply_filter(flt)

    @work(group="filter", exclusive=True)
    async def apply_filter(self, flt: Filter) -> None:
        """Scan every row in slices (a million rows take seconds); ingest waits meanwhile."""
        self.filtering = True
        self.filter = flt
        pred = flt.predicate
        matches = self.matches = RowIndex()
        timeline = self.timeline
        if self.only_matches:
            timeline.set_view(matches)
        rows, index = self.index.rows, self.index
        ts, refs = rows.ts, rows.refs
        at, total = 0, len(rows)
        try:
            while at < total:
                deadline = time.perf_counter() + SLICE_S
                while at < total and time.perf_counter() < deadline:
                    for j in range(at, min(at + 256, total)):
                        if pred(index, refs[j]):
                            matches.ts.append(ts[j])
                            matches.refs.append(refs[j])
                    at = min(at + 256, total)
                timeline.rows_changed(0)
                self._update_status()
                await self._stand_aside(0)
        finally:
            self.filtering = False
        timeline.rows_changed(0)
        timeline.settle_cursor()
        self._update_status()

    def action_filter(self) -> None:
        focused = self.focused
        if isinstance(focused, Input):
            # In a text field "/" is text (net 10.0.0.0/8). As a priority key it runs on
            # arrival, ahead of keys already queued for the field: queue it behind them.
            focused.post_message(events.Key("slash", "/"))
            return
        while isinstance(self.screen, ViewerScreen):  # the filter bar is on the timeline's screen
            self.pop_screen()
        box = self.query_one("#filter", Input)
        box.value = self.filter.text if self.filter is not None else ""
        box.add_class("-open")
        # At once, not through focus()'s call_later: keys typed right after "/" (or pasted)
        # are already queued and would otherwise reach the timeline as commands.
        self.screen.set_focus(box)

    @on(Input.Changed, "#filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        error = self.query_one("#filter-error", Static)
        try:
            if event.value.strip():
                compile_filter(event.value)
        except FilterError as e:
            event.input.add_class("-invalid")
            error.update(str(e))
            error.add_class("-open")
            return
        event.input.remove_class("-invalid")
        error.remove_class("-open")

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if event.input.has_class("-invalid"):
            self.bell()
            return
        self._close_filter_box()
        self.set_filter(event.value)

    def _close_filter_box(self) -> None:
        self.query_one("#filter").remove_class("-open")
        self.query_one("#filter-error").remove_class("-open")
        self.timeline.focus()

    def action_clear_filter(self) -> None:
        if self.query_one("#filter").has_class("-open"):
            self._close_filter_box()
            return
        self.filter, self.matches = None, None
        self.timeline.set_view(self.index.rows)
        self._update_status()

    def action_toggle_only(self) -> None:
        """Show only matching rows, or all rows with the matches as n/N stops."""
        self.only_matches = not self.only_matches
        if self.matches is not None:
            self.timeline.set_view(self.matches if self.only_matches else self.index.rows)
        self._update_status()

    def _match(self, direction: int) -> None:
        """Move to the next (previous) matching row after the cursor, wrapping around."""
        timeline, matches = self.timeline, self.matches
        if matches is None or not len(matches):
            self.bell()
            return
        key = timeline.cursor_key
        if key is None:
            at = 0 if direction > 0 else len(matches) - 1
        else:
            pos = matches.position(*key)
            if pos is not None:
                at = pos + direction
            elif direction > 0:
                at = bisect_right(matches.ts, key[0])
            else:
                at = bisect_left(matches.ts, key[0]) - 1
        timeline.goto_ref(matches.refs[at % len(matches)])

    def action_next_match(self) -> None:
        self._match(1)

    def action_previous_match(self) -> None:
        self._match(-1)

    # -- the other views --------------------------------------------------------------------

    def _current_conn(self) -> int | None:
        ref = self.timeline.current_ref
        conn = self.index.conn_of(ref) if ref is not None else None
        if conn is None:
            self.notify("this row belongs to no connection", severity="warning", timeout=3)
        return conn

    def _open(self, title: str, make: Callable[[], Widget]) -> None:
        """Show a view of the connection; from another such view, in its place (one escape
        always leads back to the timeline)."""
        if isinstance(self.screen, ViewerScreen):
            self.pop_screen()
        self.push_screen(ViewerScreen(title, make()))

    def action_follow_stream(self) -> None:
        if (conn := self._current_conn()) is not None:
            from wirecorr.views.tui.follow import FollowStream

            self._open(f"Follow stream — connection #{conn}", lambda: FollowStream(self.index.session, conn))

    def action_ladder(self) -> None:
        if (conn := self._current_conn()) is not None:
            from wirecorr.views.tui.ladder import LadderView

            self._open(f"Ladder — connection #{conn}", lambda: LadderView(self.index.session, conn))

    def action_seqplot(self) -> None:
        if (conn := self._current_conn()) is not None:
            from wirecorr.views.tui.seqplot import SeqPlot

            self._open(f"Sequence / time — connection #{conn}", lambda: SeqPlot(self.index.session, conn))

    def action_dissect(self) -> None:
        ref = self.timeline.current_ref
        if ref is None or is_syscall_ref(ref):
            self.notify("select a packet to dissect", severity="warning", timeout=3)
            return
        from wirecorr.views.tui.dissect import DissectionTree

        self.query_one(Detail).add_dissection(DissectionTree(self.index.session, ref_pos(ref)))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """In live mode stop tracing first: the recorder then closes the recording properly."""
        self.feed.stop()
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key in APP_KEYS:
            if key.action in ("quit", "command_palette", "focus_next", "focus_previous"):
                continue
            title = f"{key.description.split(':')[0]} ({key.keys})"
            yield SystemCommand(title, key.description, self._runner(key.action))
        timeline = self.timeline
        yield SystemCommand("Follow link (enter)", "jump along the selected row's links", timeline.action_follow_link)
        yield SystemCommand("Absolute / relative time (t)", "toggle the time column", timeline.action_toggle_time)
        yield SystemCommand("Last row (G)", "jump to the end and follow new events", timeline.action_last)
        yield SystemCommand("First row (g)", "jump to the first row", timeline.action_first)

    def _runner(self, action: str) -> Callable[[], object]:
        return lambda: self.run_action(action)
