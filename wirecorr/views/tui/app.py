"""WirecorrApp: the panes, the keys, and the worker that turns a Feed into rows.

A Feed is where events come from: a file being indexed (loader.FileLoader) or a trace
being recorded (live.LiveFeed). The app does not care which: its ingest worker asks the
feed for a slice of events, flushes them into rows and tells the panes, so live mode and
replay are one code path, as docs/architecture.md wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import select
import signal
import sys
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

import numpy as np
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Input, ProgressBar, Static

from wirecorr.errors import UsageError
from wirecorr.views.tui.connections import ConnectionsPane
from wirecorr.views.tui.detail import Detail
from wirecorr.views.tui.display_filter import Filter, FilterError, compile_filter
from wirecorr.views.tui.findings_pane import FindingsPane
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.keys import APP_KEYS, HelpScreen, app_bindings
from wirecorr.views.tui.row_text import row_text
from wirecorr.views.tui.rows import RowIndex, is_syscall_ref, packet_ref, ref_pos
from wirecorr.views.tui.timeline import Timeline
from wirecorr.views.tui.viewer import ViewerScreen

if TYPE_CHECKING:
    from textual.actions import ActionParseResult
    from textual.dom import DOMNode

    from wirecorr.engine.hosts import MergedSession
    from wirecorr.views.tui.conversations import Conversations
    from wirecorr.views.tui.delays import DelayView
    from wirecorr.views.tui.ladder import LadderView
    from wirecorr.views.tui.requests_pane import RequestsView

# A slice of indexing or filtering while the user is at the keys: a key pressed meanwhile
# waits for the slice to end before its action runs.
SLICE_S = 0.010
# The slice once no key or mouse event came for INTERACTIVE_S: fewer slices, so less of the
# app's own work between them (a file of 1M events took ~340 slices of 10 ms, and 4 ms idle
# after each); a key pressed then waits at most this long, and slices shrink at once.
BACKGROUND_SLICE_S = 0.025
INTERACTIVE_S = 1.0
# Idle time after each slice. Textual's messages (key → action → refresh → compositor)
# each take one event-loop turn; with a bare sleep(0) every turn would also run a whole
# slice, so a key press would wait several slices before the screen shows it.
YIELD_S = 0.002
# After a key press or mouse event, indexing and filter scans stand aside this long: the
# key's action, the refresh and the compositor then run back to back instead of each
# waiting behind a slice (a cursor move took 51 ms instead of 17 while a file was indexed).
# The wait ends sooner once the key's action has run and the timeline was drawn after it:
# the key's effect is then on screen, and a file indexed while keys are pressed no longer
# loses 100 ms a key.
INPUT_QUIET_S = 0.1
# New rows reach the timeline at most this often (at once while it follows a live tail):
# each time costs a layout pass and a redraw of every visible line (~12 ms), which after
# every slice made key presses wait.
VIEW_EVERY_S = 0.1
# While it follows a live tail, at most this often: each time the whole timeline scrolls
# and is drawn again, which at Textual's 60 frames a second took most of a core.
FOLLOW_EVERY_S = 0.03
# The Detail pane follows a moving live tail at most this often: each new text is a
# layout pass of the whole screen.
DETAIL_EVERY_S = 0.25
PANES_EVERY_S = 0.5
# How often an idle feed (live mode with nothing happening) is asked for events.
IDLE_S = 0.1
# Where a session opens: packets and socket syscalls, not the dynamic loader's open/mmap/read
# noise that outnumbers them (239 syscalls, 31 on sockets, in captures/handshake-echo).
START_FILTER = "net"
FILTER_PLACEHOLDER = "display filter, e.g. syscall == accept4 or tcp.flags.syn == 1 or ip.addr == 10.0.0.0/8"


# Poll results that mean the terminal is gone: its other end closed (an ssh session or a
# terminal window ended) or the descriptor is no longer valid.
_HUNG_UP = select.POLLHUP | select.POLLERR | select.POLLNVAL
TERMINAL_CHECK_S = 0.5
# After a hang-up: how long shutdown may take before the process leaves without it, and
# how much longer a live recording gets to close its file first.
HANGUP_GRACE_S = 3.0
LIVE_GRACE_S = 15.0
EXIT_HANGUP = 129  # 128 + SIGHUP, as a shell reports a process the hang-up ended


def terminal_gone(fd: int) -> bool:
    """True once the terminal on `fd` has hung up (reads would give EOF or EIO from now on)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    try:
        return any(event & _HUNG_UP for _, event in poller.poll(0))
    except OSError:
        return True


def _short(text: str, width: int = 32) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def require_terminal(command: str, *, instead: str) -> None:
    """Refuse to start the UI where it cannot work; `instead` names what works there.

    Textual reads keys from stdin and draws on stderr: with either one a file or a pipe
    (a script, `| less`, cron) it would write escape codes there and wait for keys forever.
    """
    if "web_driver" in os.environ.get("TEXTUAL_DRIVER", ""):
        return  # served to a browser (tui --serve): the web driver speaks through pipes
    if not all(stream is not None and stream.isatty() for stream in (sys.__stdin__, sys.__stderr__)):
        raise UsageError(f"{command}: the terminal UI needs a terminal on stdin and stderr; {instead}")


class Feed(Protocol):
    """A source of events for the index: `step` feeds some, `done` once there are no more."""

    done: bool

    def step(self, budget_s: float) -> int: ...

    @property
    def backlog(self) -> bool:
        """Work is ready without waiting for events (a file not yet read to its end), even
        when the last step indexed none (the end's steps: engine finish, findings)."""
        ...

    def progress(self) -> float | None: ...

    def status(self) -> str: ...

    def stop(self) -> None: ...


class WirecorrApp(App[None]):
    TITLE = "wirecorr"
    BINDINGS = [
        *app_bindings(),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]
    # Under 120 columns the sidebar (connections, findings) would leave the timeline too
    # narrow to read: it is hidden there, and `b` shows it below the timeline instead.
    # Under 32 lines the Detail pane and the filter bar shrink so the timeline keeps rows.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    CSS = """
    #main { height: 1fr; }
    #left { width: 2fr; }
    #right { width: 1fr; min-width: 40; }
    Screen.-wide.-no-sidebar #right { display: none; }
    Screen.-narrow #main { layout: vertical; }
    Screen.-narrow #left { width: 1fr; height: 1fr; }
    Screen.-narrow #right { display: none; width: 1fr; min-width: 0; height: 9; layout: horizontal; }
    Screen.-narrow.-sidebar #right { display: block; }
    Screen.-short Detail { height: 8; }
    Screen.-narrow.-short.-sidebar Detail { display: none; }
    #row-full { display: none; height: auto; max-height: 4; padding: 0 1; background: $boost; }
    #row-full.-open { display: block; }
    #filter { display: none; border: tall $success; }
    #filter.-invalid { border: tall $error; }
    Screen.-short #filter { border: none; height: 1; padding: 0 1; background: $success 30%; }
    Screen.-short #filter.-invalid { border: none; background: $error 40%; }
    #filter.-open { display: block; }
    #filter-error { display: none; color: $error; height: 1; padding: 0 1; }
    #filter-error.-open { display: block; }
    #status { height: 1; background: $panel; }
    #status-text { width: 1fr; height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    #progress { width: 40; display: none; }
    #progress.-loading { display: block; }
    """

    def __init__(
        self, index: EventIndex, feed: Feed, *, title: str, live: bool = False, start_filter: str = START_FILTER
    ) -> None:
        super().__init__()
        self.index = index
        index.text_of = lambda ref: row_text(index, ref, False).plain
        from wirecorr.views.tui.requests_pane import request_rows

        index.request_field = request_rows(index, ready=lambda: self.feed.done or self.live)
        self.feed = feed
        self.live = live
        self.sub_title = title
        self.start_filter = start_filter
        self.filter: Filter | None = None
        self.matches: RowIndex | None = None
        self.only_matches = True
        self.filtering = False
        self.filter_done = 1.0  # share of the rows the running filter scan has looked at
        self.searching = False  # the bar holds a ctrl-f search, not a filter
        self.going = False  # the bar holds a frame number to go to (ctrl+g)
        self.found: str | None = None  # the text of the ctrl-f search the filter came from
        self._jump_after_scan = False
        self._goto_after_scan: int | None = None  # a row to put the cursor on once the scan ends
        self.match_at: int | None = None  # 1-based position of the cursor among the matches
        self.indexed_in: float | None = None
        self._started = time.perf_counter()
        self._panes_at = 0.0
        self._input_at = 0.0
        self._acted_at = 0.0
        self._status_text = ""
        self._shown_at = 0.0
        self._unshown = 0
        self._detail_timer: Timer | None = None
        # Run before the process leaves on a hang-up whose shutdown hangs (tui: its temporary copy).
        self.cleanups: list[Callable[[], object]] = []
        self._merged: Callable[[], MergedSession] | None = None
        self._timeline: Timeline | None = None

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseEvent)):
            self._input_at = time.perf_counter()
        await super().on_event(event)

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Key bindings run here: when it is done, `_stand_aside` waits only for the draw."""
        try:
            return await super().run_action(action, default_namespace, namespaces)
        finally:
            self._acted_at = time.perf_counter()

    async def _stand_aside(self, at_least: float, woken: asyncio.Event | None = None) -> None:
        """Sleep through the quiet period that follows user input, and at least `at_least`
        (or until `woken` is set: a live feed's first event after a quiet spell)."""
        if woken is None:
            await asyncio.sleep(at_least)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), at_least)
            woken.clear()
        timeline = self.timeline
        while (wait := self._input_at + INPUT_QUIET_S - time.perf_counter()) > 0:
            # Done once the key's action has run and the timeline was drawn after it (a
            # draw between the key and its action, which comes back to the app from the
            # focused widget several loop turns later, is not the key's).
            if timeline.painted_at > self._acted_at > self._input_at:
                return
            await asyncio.sleep(min(wait, YIELD_S))

    def _slice_s(self) -> float:
        return SLICE_S if time.perf_counter() - self._input_at < INTERACTIVE_S else BACKGROUND_SLICE_S

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Timeline(self.index, live=self.live, id="timeline")
                yield Static(id="row-full")
                yield Detail(self.index, id="detail")
            with Vertical(id="right"):
                yield ConnectionsPane(self.index, id="connections")
                yield FindingsPane(self.index, id="findings")
        yield Input(placeholder=FILTER_PLACEHOLDER, id="filter")
        yield Static(id="filter-error")
        with Horizontal(id="status"):
            yield Static(id="status-text")
            yield ProgressBar(total=100, show_eta=False, id="progress")
        yield Footer()

    @property
    def timeline(self) -> Timeline:
        """The one timeline, found once: the ingest worker asks for it every slice, and a
        query fails once the app has begun to shut down (its screen is gone)."""
        if self._timeline is None:
            self._timeline = self.query_one(Timeline)
        return self._timeline

    def on_mount(self) -> None:
        self._watch_terminal()
        if self.feed.progress() is not None:
            self.query_one("#progress").add_class("-loading")
        self.timeline.focus()
        if self.start_filter:
            self.set_filter(self.start_filter, by_user=False)
        self.ingest()

    # -- the terminal going away -----------------------------------------------------------

    def _watch_terminal(self) -> None:
        """End the app when its terminal goes away, whatever the parent does with SIGHUP.

        Killed by SIGHUP or SIGTERM, Python would skip every `finally` (the decompressed
        copy of a .gz capture stayed in /tmp); with the hang-up ignored (a shell trapping
        HUP, `make run`), Textual's input thread read EOF 16,000 times a second. Both now
        end the app as `q` does, so the caller's cleanup runs.
        """
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGHUP, signal.SIGTERM):
                signal.signal(sig, self._on_signal)
        stdin = sys.__stdin__
        if stdin is not None and stdin.isatty():
            fd = stdin.fileno()
            self.set_interval(TERMINAL_CHECK_S, lambda: terminal_gone(fd) and self._hang_up())

    def _on_signal(self, signum: int, frame: object) -> None:
        self.call_later(self._hang_up, 128 + signum)

    def _hang_up(self, code: int = EXIT_HANGUP) -> None:
        if self._exit:
            return
        self.feed.stop()
        self.exit(return_code=code)
        threading.Thread(target=self._exit_anyway, args=(code,), name="hangup-watchdog", daemon=True).start()

    def _exit_anyway(self, code: int) -> None:
        """Textual's shutdown restores a terminal that is gone; it was seen to hang there for
        good (its writer queue and thread each waiting on the other). Give it a few seconds
        (live: until the recording is closed), then run the cleanups and leave."""
        deadline = time.monotonic() + HANGUP_GRACE_S
        while time.monotonic() < deadline or not getattr(self.feed, "finished", True):
            time.sleep(0.1)
            if time.monotonic() > deadline + LIVE_GRACE_S:
                break
        for cleanup in self.cleanups:
            with contextlib.suppress(Exception):
                cleanup()
        os._exit(code)

    # -- ingest ---------------------------------------------------------------------------

    @work(group="ingest", exclusive=True)
    async def ingest(self) -> None:
        feed = self.feed
        # A live feed wakes the idle loop when events arrive, from the recorder's threads:
        # without it the first packet after a quiet spell waited up to IDLE_S for its row.
        woken: asyncio.Event | None = None
        set_waker = getattr(feed, "set_waker", None)
        if set_waker is not None:
            loop, woken = asyncio.get_running_loop(), asyncio.Event()

            def wake() -> None:
                with contextlib.suppress(RuntimeError):  # the app has ended and its loop closed
                    loop.call_soon_threadsafe(woken.set)

            set_waker(wake)
        while True:
            if self.filtering:
                await asyncio.sleep(0.01)
                continue
            fed = feed.step(self._slice_s())
            if fed:
                # Indexed events live as long as the app: moving them out of the collector's
                # reach keeps its full passes short (over a million objects one took 100-250
                # ms, a visible stall of every key press while a large file was indexed).
                # Only after indexing something: a freeze also pins the UI's own cyclic
                # garbage of the moment, which froze at every idle turn was live mode's
                # steady RSS growth with no events at all.
                gc.freeze()
            new = self.index.flush()
            if new:
                self._add_rows(new)
            every = FOLLOW_EVERY_S if self.timeline.follow_tail else VIEW_EVERY_S
            wait = self._shown_at + every - time.perf_counter()
            # Rows that gained links are redrawn as often as new rows are shown.
            if (feed.done or wait <= 0) and (self._unshown or self.index.dirty or self.index.dirty_all):
                self._show_rows()
            if feed.done:
                break
            self._update_panes(force=False)
            if fed or feed.backlog:
                await self._stand_aside(YIELD_S)
            else:  # until events come, or rows held back are due
                await self._stand_aside(min(IDLE_S, max(wait, YIELD_S)) if self._unshown else IDLE_S, woken)
        self._indexed()

    def _add_rows(self, new: RowIndex) -> None:
        timeline = self.timeline
        first = not len(timeline.view) and timeline.cursor_key is None
        if self.filter is not None and self.matches is not None:
            ts, refs = np.frombuffer(new.ts, dtype=np.int64), np.frombuffer(new.refs, dtype=np.int64)
            hit = self._hits(self.filter, refs)
            self.matches.add_arrays(ts[hit], refs[hit])
            hits = int(hit.sum())
            self._unshown += hits if self.only_matches else len(new)
        else:
            self._unshown += len(new)
        if first:
            self._show_rows()
            if len(timeline.view) and self.live:  # a file's view starts on its first row by itself
                timeline.action_last()

    def _hits(self, flt: Filter, refs: np.ndarray) -> np.ndarray:
        """Which of `refs` the filter keeps: from the index's columns when the filter is one
        field they answer (`net`, the filter a session opens with: 21 ms for 1M rows, not the
        predicate's 0.3-0.7 s), else the predicate row by row."""
        if flt.lone_field in self.index.MASK_FIELDS:
            return self.index.mask(flt.lone_field, refs)
        pred, index = flt.predicate, self.index
        return np.fromiter((pred(index, int(ref)) for ref in refs), dtype=bool, count=len(refs))

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
        """What is where, most wanted first (the line is cut with … on a narrow terminal):
        the match position, the filter and its count, the tail, then the source."""
        timeline = self.timeline
        parts = []
        if self.filter is not None:
            shown = len(self.matches) if self.matches is not None else 0
            what = f'find "{self.found}"' if self.found is not None else f"filter {_short(self.filter.text)}"
            if self.filtering:  # counts still growing: say so, or "0 shown" looks final
                parts.append(f"{what}: filtering… {self.filter_done:.0%}, {shown:,} so far")
            else:
                if self.match_at is not None and shown and not self.only_matches:
                    parts.append(f"match {self.match_at:,}/{shown:,}")
                where = "shown" if self.only_matches else "match"
                parts.append(f"{what}: {shown:,} {where}")
        if timeline.follow_tail and not self.feed.done:  # a file read to its end has no tail to follow
            parts.append("following (k/↑ to stop)")
        elif timeline.unseen:
            parts.append(f"{timeline.unseen:,} new events (G to follow)")
        parts += [self.feed.status(), f"{self.index.events:,} events"]
        hosts = (self.index.session.meta or {}).get("hosts")
        if hosts:
            # The timeline reads a merged file as one capture, each crossing once; the ladder both hosts.
            parts.append(f"merged: {len(hosts)} hosts, a crossing is its sender's row; l shows both ends")
        text = "  ·  ".join(parts)
        if text != self._status_text:
            self._status_text = text
            # One line, its width set by the bar: no layout pass of the whole screen (15-45 ms
            # each, every half second while a file is indexed).
            self.query_one("#status-text", Static).update(text, layout=False)

    # -- panes talking to each other -----------------------------------------------------

    @on(Timeline.Moved)
    def _moved(self, event: Timeline.Moved) -> None:
        if self.timeline.follow_tail and not self.feed.done:
            # Following a live tail, the selection moves with every batch of rows: the panes
            # that show it (each new text a layout pass of the whole screen) follow at most
            # every DETAIL_EVERY_S.
            if self._detail_timer is None:
                self._detail_timer = self.set_timer(DETAIL_EVERY_S, self._show_selection)
            return
        self._show_selection()

    def _show_selection(self) -> None:
        """The Detail pane, the match position and the expanded row, for the selected row."""
        self._detail_timer = None
        found = self.query(Timeline)  # a timer's call: the app may be ending, or on another screen
        if not found:
            return
        timeline = found.first()
        ref = timeline.current_ref
        self.query_one(Detail).show(ref)
        if self.matches is not None and ref is not None and timeline.cursor_key is not None:
            pos = self.matches.position(*timeline.cursor_key)
            self.match_at = pos + 1 if pos is not None else None
            self._update_status()
        self._show_row_full()

    def _show_row_full(self) -> None:
        box = self.query_one("#row-full", Static)
        ref = self.timeline.current_ref
        if box.has_class("-open"):
            box.update(self.timeline.row_full_text(ref) if ref is not None else "")

    def action_expand_row(self) -> None:
        """Show the selected row whole (wrapped) under the timeline, or hide it again."""
        self.query_one("#row-full").toggle_class("-open")
        self._show_row_full()

    def action_toggle_sidebar(self) -> None:
        """Connections and Findings: beside the timeline when wide, below it when narrow."""
        screen = self.screen
        if isinstance(screen, ViewerScreen):
            return
        screen.toggle_class("-sidebar" if screen.has_class("-narrow") else "-no-sidebar")

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

    def set_filter(self, text: str, *, by_user: bool = True) -> None:
        """Apply `text` as the display filter (empty clears it); errors are notified."""
        self.found = None
        if by_user:  # from now on the selection is the user's, kept across rows arriving
            self.timeline.user_moved = True
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
        timeline.set_view(matches if self.only_matches else self.index.rows)
        rows, index = self.index.rows, self.index
        ts, refs = rows.ts, rows.refs
        at, total = 0, len(rows)
        self.filter_done = 0.0
        try:
            if flt.lone_field in index.MASK_FIELDS:
                # Copies, not views: the rows' arrays grow while this awaits, and an array
                # with a view on it cannot.
                all_ts, all_refs = np.frombuffer(ts, dtype=np.int64).copy(), np.frombuffer(refs, dtype=np.int64).copy()
                hit = index.mask(flt.lone_field, all_refs)
                matches.add_arrays(all_ts[hit], all_refs[hit])
                at = total
            while at < total:
                deadline = time.perf_counter() + self._slice_s()
                while at < total and time.perf_counter() < deadline:
                    for j in range(at, min(at + 256, total)):
                        if pred(index, refs[j]):
                            matches.ts.append(ts[j])
                            matches.refs.append(refs[j])
                    at = min(at + 256, total)
                self.filter_done = at / total
                timeline.rows_changed(0)
                self._update_status()
                await self._stand_aside(0)
        finally:
            self.filtering = False
            self.filter_done = 1.0
        timeline.rows_changed(0)
        if self._goto_after_scan is not None:
            timeline.goto_ref(self._goto_after_scan)
            self._goto_after_scan = None
        elif self._jump_after_scan:
            self._jump_after_scan = False
            self._match(1)
        else:
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

    def action_search(self) -> None:
        """ctrl-f, as in termshark: find text in payloads, syscall data and the rows' text.

        It becomes the filter `data contains "…" or text contains "…"` over all rows (the
        matches are n/N stops, nothing is hidden), and the cursor goes to the next match.
        """
        focused = self.focused
        if isinstance(focused, Input):
            return
        while isinstance(self.screen, ViewerScreen):
            self.pop_screen()
        self.searching = True
        box = self.query_one("#filter", Input)
        box.value = ""
        box.placeholder = "find: text in payloads, syscall data and rows"
        box.add_class("-open")
        self.screen.set_focus(box)

    def action_goto_frame(self) -> None:
        """ctrl+g, as in Wireshark: go to a frame by its number."""
        if isinstance(self.focused, Input):
            return
        while isinstance(self.screen, ViewerScreen):
            self.pop_screen()
        self.going = True
        box = self.query_one("#filter", Input)
        box.value = ""
        box.placeholder = "go to frame number"
        box.add_class("-open")
        self.screen.set_focus(box)

    def goto_frame(self, number: int) -> bool:
        """Put the cursor on the packet Wireshark numbers `number`; False if there is none."""
        table = self.index.session.analyzer.table
        # Frame numbers grow with the packet index (custom blocks only add to the gaps).
        i = bisect_left(range(len(table)), number, key=self.index.frame)
        if not 0 <= i < len(table) or self.index.frame(i) != number:
            self.notify(f"no frame {number} (it may be a syscall record: tshark counts those too)", timeout=3)
            return False
        self.show_ref(packet_ref(i))
        return True

    @on(Input.Changed, "#filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        error = self.query_one("#filter-error", Static)
        if self.searching or self.going:
            return
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
        """Apply a valid filter; an invalid one keeps the bar open with its text and error."""
        text = event.value
        if self.going:
            self._close_filter_box()
            if text.strip().isdigit():
                self.goto_frame(int(text))
            elif text.strip():
                self.notify(f"not a frame number: {text!r}", severity="error", timeout=3)
            return
        if self.searching:
            self._close_filter_box()
            if text:
                quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
                self.only_matches = False
                self._jump_after_scan = True
                self.set_filter(f"data contains {quoted} or text contains {quoted}")
                self.found = text
            return
        if text.strip():
            try:
                compile_filter(text)
            except FilterError as e:
                event.input.add_class("-invalid")
                error = self.query_one("#filter-error", Static)
                error.update(str(e))
                error.add_class("-open")
                self.bell()
                return
        self._close_filter_box()
        self.set_filter(text)

    def _close_filter_box(self) -> None:
        box = self.query_one("#filter", Input)
        if self.searching or self.going:
            self.searching = self.going = False
            box.placeholder = FILTER_PLACEHOLDER
            box.value = self.filter.text if self.filter is not None else ""
        box.remove_class("-open")
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
        if not 0 <= at < len(matches) and key is not None:
            where = "top" if direction > 0 else "bottom"
            self.notify(f"search wrapped around to the {where}", timeout=2)
        at %= len(matches)
        timeline.goto_ref(matches.refs[at])
        self.match_at = at + 1
        self._update_status()

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

            self._open(
                f"Follow stream — connection #{conn}",
                lambda: FollowStream(self.index.session, conn, frame=self.index.frame),
            )

    def action_ladder(self) -> None:
        if (conn := self._current_conn()) is not None:
            from wirecorr.views.tui.ladder import LadderView

            merged = self._merged_hosts()
            ref = self.timeline.current_ref
            at_packet = at_syscall = None
            if ref is not None:
                if is_syscall_ref(ref):
                    at_syscall = self.index.call(ref).id
                else:
                    at_packet = ref_pos(ref)
            self._open(
                f"Ladder — connection #{conn}",
                lambda: LadderView(
                    self.index.session,
                    conn,
                    background=self.feed.done,
                    merged=merged,
                    at_packet=at_packet,
                    at_syscall=at_syscall,
                ),
            )

    def _merged_hosts(self) -> Callable[[], MergedSession] | None:
        """For a merged recording read whole, its hosts each correlated on their own (read
        once, on the first call), so the ladder can draw both hosts' ends of a connection."""
        meta = self.index.session.meta or {}
        path = getattr(self.feed, "path", None)
        if not meta.get("hosts") or not self.feed.done or path is None:
            return None
        if self._merged is None:
            from wirecorr.engine.hosts import load_merged

            self._merged = functools.cache(lambda: load_merged(path, meta))
        return self._merged

    def on_ladder_view_selected(self, message: LadderView.Selected) -> None:
        """Enter in the ladder: back to the timeline, on the row chosen there."""
        if message.packet_index is not None:
            ref: int | None = packet_ref(message.packet_index)
        else:
            ref = self.index.ref_of_call_id(message.syscall.id) if message.syscall is not None else None
        if isinstance(self.screen, ViewerScreen):
            self.pop_screen()
        if ref is not None:
            self.show_ref(ref)

    def action_seqplot(self) -> None:
        if (conn := self._current_conn()) is not None:
            from wirecorr.views.tui.seqplot import SeqPlot

            self._open(f"Sequence / time — connection #{conn}", lambda: SeqPlot(self.index.session, conn))

    def action_conversations(self) -> None:
        from wirecorr.views.tui.conversations import Conversations

        self._open(
            "Conversations — s: sort by next column, S: reverse, enter: filter to it", lambda: Conversations(self.index)
        )

    def on_conversations_chosen(self, message: Conversations.Chosen) -> None:
        if isinstance(self.screen, ViewerScreen):
            self.pop_screen()
        self.set_filter(f"conn == {message.conn_id}")
        self.timeline.focus()

    def action_delays(self) -> None:
        from wirecorr.views.tui.delays import DelayView

        self._open("Syscall → wire delays", lambda: DelayView(self.index))

    def on_delay_view_chosen(self, message: DelayView.Chosen) -> None:
        if isinstance(self.screen, ViewerScreen):
            self.pop_screen()
        ref = self.index.ref_of_call_id(message.syscall_id)
        if ref is not None:
            self.show_ref(ref)

    def action_requests(self) -> None:
        from wirecorr.views.tui.requests_pane import RequestsView

        self._open(
            "Requests — enter: its syscalls and segments in the timeline, s: sort by time / start",
            lambda: RequestsView(self.index),
        )

    def on_requests_view_chosen(self, message: RequestsView.Chosen) -> None:
        """Enter on a request: the timeline filtered to its rows, on the first of them."""
        from wirecorr.engine.requests import requests_of
        from wirecorr.views.tui.requests_pane import RequestRows

        if isinstance(self.screen, ViewerScreen):
            self.pop_screen()
        req = next((r for r in requests_of(self.index.session) if r.id == message.request_id), None)
        refs = RequestRows.refs(self.index, req) if req is not None else []
        self._goto_after_scan = refs[0] if refs else None
        self.only_matches = True
        self.set_filter(f"request == {message.request_id}")
        self.timeline.focus()

    def show_ref(self, ref: int) -> None:
        """Put the timeline's cursor on `ref`, showing all rows when the filter hides it."""
        if not self.timeline.goto_ref(ref):
            self.notify("the row was hidden by the filter: showing all rows", timeout=3)
            self.action_clear_filter()
            self.timeline.goto_ref(ref)
        self.timeline.focus()

    def action_export_connection(self) -> None:
        """w: save the selected row's connection (packets and syscalls) as a pcapng recording."""
        if (conn := self._current_conn()) is not None:
            from wirecorr.views.tui.export import connection_rows

            self._export(connection_rows(self.index, conn), f"conn{conn}", f"connection #{conn}")

    def action_export_view(self) -> None:
        """W: save every row the timeline shows (the filtered view) as a pcapng recording."""
        view = self.timeline.view
        what = f"filter {self.filter.text}" if self.filter is not None and self.only_matches else "all rows"
        self._export(list(view.refs), "filtered" if self.filter is not None else "all", what)

    def _export(self, refs: list[int], name: str, what: str) -> None:
        from wirecorr.errors import WirecorrError
        from wirecorr.views.tui.export import export_path, export_rows

        path = export_path(self.sub_title, name)
        try:
            npackets, ncalls = export_rows(self.index, refs, path, note=what)
        except WirecorrError as e:
            self.notify(str(e), severity="error", timeout=6)
            return
        self.notify(f"{what}: {npackets} packets, {ncalls} syscalls → {path}", timeout=6)

    def action_copy_row(self) -> None:
        """y: the selected row's whole text to the clipboard (OSC 52, through the terminal)."""
        ref = self.timeline.current_ref
        if ref is not None:
            self.copy_to_clipboard(self.timeline.row_full_text(ref).plain)
            self.notify("row copied", timeout=2)

    def action_copy_bytes(self) -> None:
        """Y: the packet's bytes (or the syscall's data) as hex to the clipboard."""
        ref = self.timeline.current_ref
        if ref is None:
            return
        if is_syscall_ref(ref):
            data = self.index.call(ref).data or b""
        else:
            pkt = self.index.packets.get(ref_pos(ref))
            data = pkt.frame if pkt is not None else b""
        if not data:
            self.notify("no bytes on this row", severity="warning", timeout=2)
            return
        self.copy_to_clipboard(data.hex())
        self.notify(f"{len(data)} bytes copied as hex", timeout=2)

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
