"""Ladder diagram of one connection: the app's syscalls and the wire's segments in time order.

       ms client app               client 127.0.0.1:53516               server 127.0.0.1:4444               server app
    0.000                          │                                                        │     accept4() …
  238.927          connect() … ╮   │                                                        │    ┃
  239.079                     ┃╰───├───────────────── SYN seq 0 win 65495 ─────────────────▶┤───╮┃
  239.094                     ┃╭───├◀─────────── SYN-ACK seq 0 ack 1 win 65483 ─────────────┤───┤┃
  239.107                     ┃├───├────────────── ACK seq 1 ack 1 win 65536 ──────────────▶┤───┤┃
  239.144   … = -1 EINPROGRESS ╯   │                                                        │   │┃
  239.229                          │                                                        │   ╰ … = 4

One row per event (a packet, a syscall entry, a syscall return), so the vertical order is
the true order of events and the time column reads like a log. A call that other events
interrupt gets two rows (`accept4() …` then `… = 4`) with a bar between them: that the
handshake completes while accept4() is blocked is the point of the picture. Link lines run
in a gutter between an app lane and its wire lane, from the row where the call caused its
packets (entry: connect, write, shutdown, close) or consumed them (return: accept, read),
to each packet's row. Gutter tracks are few; a link that finds none free is drawn as `#id`
markers on both ends instead.

A merged recording (`wirecorr merge`) has four lanes from real data: client app | client
wire | server wire | server app, where the client's wire is the client host's capture and
the server's wire the server host's (under NAT the same connection has other addresses
there). Each host's links come from that host's own correlation (engine/hosts.py). A
packet both hosts captured is one crossing: an arrow on the row of its sending, from the
sender's wire to the receiver's, with its one-way delay in parentheses; the receiver's
links end on that row. A packet only one host captured is solid on that host's half and
dotted (`┄`) on the other.

Rows are built once (cheap tuples); lines are drawn only when Textual asks for them, so a
connection with thousands of packets costs nothing until it is scrolled to.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from wirecorr.engine.analysis_flags import flag_names
from wirecorr.engine.hosts import MergedSession
from wirecorr.engine.session import Session
from wirecorr.model import ACK, FIN, PSH, RST, SYN, Link, Syscall, fmt_ns
from wirecorr.views.tui.conn_events import (
    CAUSE_KINDS,
    CLIENT_SIDE,
    SERVER_SIDE,
    ConnCall,
    call_label,
    call_name,
    call_result,
    connection_calls,
)
from wirecorr.views.tui.row_text import kernel_label

PKT, CALL, RET, CALLRET = range(4)
# Items handled between two yields to the event loop while a ladder is laid out (~20 ms, loaded).
SLICE = 5_000
TIME_W = 10
TRACKS = 4
# From this span on the time column counts seconds: 84.521518, not 84521.518 ms.
SECONDS_FROM_NS = 10_000_000_000


def time_unit(span_ns: int) -> str:
    return "s" if span_ns >= SECONDS_FROM_NS else "ms"


def fmt_time(ns: int, unit: str) -> str:
    """A row's time since the first, in `unit`, in the TIME_W - 1 cells of its column."""
    if unit == "ms":
        return f"{ns / 1e6:{TIME_W - 1}.3f}"
    secs = ns / 1e9
    decimals = min(6, max(TIME_W - 2 - len(str(int(secs))), 0))
    return f"{secs:{TIME_W - 1}.{decimals}f}"


# Gutter cells are unions of these; `_BOX` turns a union into its box-drawing character.
N, S, E, W = 1, 2, 4, 8
_BOX = {
    0: " ", N: "╵", S: "╷", E: "╶", W: "╴", N | S: "│", E | W: "─", S | E: "╭", S | W: "╮", N | E: "╰",
    N | W: "╯", N | S | E: "├", N | S | W: "┤", S | E | W: "┬", N | E | W: "┴", N | S | E | W: "┼",
}  # fmt: skip

DIR_STYLES = (Style(color="red"), Style(color="dodger_blue1"))
LINK_STYLES = (Style(color="yellow"), Style(color="green"), Style(color="magenta"), Style(color="cyan"))
CALL_STYLE = Style(color="white", bgcolor="grey23", bold=True)
FAILED_STYLE = Style(color="white", bgcolor="dark_red", bold=True)
RETRANS_STYLE = Style(color="white", bgcolor="red3")
DIM = Style(dim=True)
CURSOR = Style(reverse=True)


# (gutter column counted from the app lane, N/S/E/W mask, style)
GutterCell = tuple[int, int, Style]


@dataclass(slots=True)
class Row:
    """One event line: a packet (`ref` = packet index) or a call (`ref` = index into calls)."""

    ts_ns: int
    kind: int
    ref: int
    side: int
    end: int = 0  # which `_End` captured the packet


@dataclass(slots=True)
class _End:
    """One capture's view of the connection: a host of a merged recording (`name`), or
    the whole file, whose one capture holds both wires."""

    session: Session
    conn_id: int
    name: str | None = None


@dataclass(slots=True)
class _Built:
    ends: list[_End]
    crossings: dict[int, tuple[int, int]]
    rows: list[Row]
    calls: list[ConnCall]
    t0: int
    sides: list[int]
    tracks: list[list[list[_LinkPath]]]
    track_tops: list[list[list[int]]]
    markers: tuple[dict[int, list[str]], ...]
    busy: list[tuple[list[int], list[int]]]


@dataclass(slots=True)
class _LinkPath:
    link: Link
    side: int
    rows: list[int]  # syscall endpoint row first, then packet rows in order
    track: int = -1
    top: int = 0
    bottom: int = 0


def segment_label(flags: int, seglen: int) -> str:
    """The name a person gives a segment: SYN, SYN-ACK, ACK, PSH 6 B, FIN, RST."""
    if flags & RST:
        name = "RST"
    elif flags & SYN:
        name = "SYN-ACK" if flags & ACK else "SYN"
    elif flags & FIN:
        name = "FIN"
    elif seglen:
        name = "PSH" if flags & PSH else "DATA"
    else:
        name = "ACK"
    return f"{name} {seglen} B" if seglen else name


class LadderView(ScrollView, can_focus=True):
    """The ladder of connection `conn_id`; up/down move a cursor row, enter selects it."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor_page(-1)", "Page up", show=False),
        Binding("pagedown", "cursor_page(1)", "Page down", show=False),
        Binding("home,g", "cursor_to(0)", "First", show=False),
        Binding("end,G", "cursor_to(-1)", "Last", show=False),
        Binding("enter", "select", "Show in the timeline"),
    ]

    DEFAULT_CSS = """
    LadderView { height: 1fr; }
    """

    cursor = reactive(0, always_update=True)

    class Selected(Message):
        """Enter on a row: the packet or the syscall under the cursor."""

        def __init__(self, ladder: LadderView, packet_index: int | None, syscall: Syscall | None) -> None:
            super().__init__()
            self.ladder = ladder
            self.packet_index = packet_index
            self.syscall = syscall

    def __init__(
        self,
        session: Session,
        conn_id: int,
        *,
        background: bool = False,
        merged: Callable[[], MergedSession] | None = None,
        at_packet: int | None = None,
        at_syscall: int | None = None,
        name: str | None = None,
        id: str | None = None,
    ) -> None:
        """`background`: build the rows in slices once mounted (only for a session that no
        longer changes: a file done indexing), so a connection of a million events does not
        freeze the UI while it is laid out. `merged`: the file is a merged recording whose
        hosts this returns correlated each on its own (read in a thread when `background`);
        connection `conn_id` of `session` (the file read as one capture) is then drawn from
        both hosts' ends of it. `at_packet` / `at_syscall` (a syscall id): the row the
        ladder opens on, the one the user was on, as Wireshark's flow graph does."""
        super().__init__(name=name, id=id)
        self._opens_at = (at_packet, at_syscall)
        self.session = session
        self.conn_id = conn_id
        self._merged_source = merged
        self._merged: MergedSession | None = None
        self.ends: list[_End] = [_End(session, conn_id)]
        # sent packet index → (received index, one-way delay) for the packets both hosts captured
        self.crossings: dict[int, tuple[int, int]] = {}
        self.rows: list[Row] = []
        self.calls: list[ConnCall] = []
        # markers: row → "#id" texts per side, for links that found no free gutter track
        self._markers: tuple[dict[int, list[str]], ...] = ({}, {})
        self._tracks: list[list[list[_LinkPath]]] = []
        self._track_tops: list[list[list[int]]] = []
        # per side: (entry rows, sorted) and the furthest return row of the calls so far
        self._busy: list[tuple[list[int], list[int]]] = [([], []), ([], [])]
        self.t0 = 0
        self.unit = "ms"
        self.sides: list[int] = []
        self.loading_rows = background
        if not background:
            self.reload()

    # -- model ------------------------------------------------------------------------------

    def reload(self) -> None:
        """Rebuild rows from the session (call again while a live capture grows)."""
        if self._merged_source is not None and self._merged is None:
            self._merged = self._merged_source()
        for step in self._build():
            if step is not None:
                self._apply(step)

    @work(exclusive=True, group="ladder")
    async def _build_in_background(self) -> None:
        """The same build in slices on the UI's event loop, so keys and redraws go on between
        them (a thread would hold the GIL: keys took 2 s each while it ran). Only reading a
        merged recording's hosts, one blocking call, goes to a thread."""
        if self._merged_source is not None and self._merged is None:
            self._merged = await asyncio.to_thread(self._merged_source)
        for step in self._build():
            if step is None:
                await asyncio.sleep(0)
            else:
                self._apply(step)

    def on_mount(self) -> None:
        if self.loading_rows:
            self._build_in_background()
        else:
            self.call_after_refresh(self._open_at)

    def _open_at(self) -> None:
        """Put the cursor on the row the ladder was opened from, in the middle of the screen."""
        packet, syscall = self._opens_at
        self._opens_at = (None, None)
        if len(self.ends) != 1 or (packet is None and syscall is None):
            return  # a merged ladder numbers each host's packets on its own
        for i, row in enumerate(self.rows):
            if (row.kind == PKT and row.ref == packet) or (
                row.kind != PKT and syscall is not None and self.calls[row.ref].sc.id == syscall
            ):
                self.cursor = i
                # After the next refresh: the scroll range of rows laid out just now is not
                # known before it, and a scroll past it would stop at the old range's end.
                self.call_after_refresh(self._centre, i)
                return

    def _centre(self, row: int) -> None:
        self.scroll_to(y=max(row - max(self.size.height - 1, 1) // 2, 0), animate=False, immediate=True)

    def _ends(self) -> tuple[list[_End], dict[int, tuple[int, int]]]:
        """The captures to draw and the crossings between them: one end for an ordinary
        file; for a merged recording the client's and the server's hosts, or the one host
        that captured the connection when no other host saw it."""
        merged = self._merged
        if merged is None:
            return [_End(self.session, self.conn_id)], {}
        conn = self.session.analyzer.connections[self.conn_id]
        at = merged.locate(conn.packet_indices[0]) if len(conn.packet_indices) else None
        if at is None:
            return [_End(self.session, self.conn_id)], {}
        cv = merged.conversation_of(*at)
        if cv is None:
            host = merged.hosts[at[0]]
            return [_End(host.session, at[1], host.name)], {}
        client, server = merged.hosts[cv.client_host], merged.hosts[cv.server_host]
        ends = [_End(client.session, cv.client_conn, client.name), _End(server.session, cv.server_conn, server.name)]
        return ends, {c.sent: (c.received, c.delay_ns) for c in cv.crossings}

    def _build(self) -> Iterator[_Built | None]:
        """Rows, link tracks and busy spans, computed apart from the widget: yields None
        between slices of work and the result last."""
        ends, crossings = self._ends()
        yield None  # the screen shows "laying out…" before the first long step
        calls = [call for end in ends for call in connection_calls(end.session, end.conn_id)]
        calls.sort(key=lambda c: (c.sc.enter_ns, c.sc.id))
        yield None
        events: list[tuple[int, int, int, int, int, int]] = []  # ts, tie, kind, ref, side, end
        received = {rcv: sent for sent, (rcv, _) in crossings.items()}
        for e, end in enumerate(ends):
            table = end.session.analyzer.table
            ts_ns, directions = table.ts_ns, table.direction
            for n, idx in enumerate(end.session.analyzer.connections[end.conn_id].packet_indices):
                if idx not in received:  # drawn on the row where its sender's copy left
                    events.append((ts_ns[idx], 1, PKT, idx, directions[idx], e))
                if not n % SLICE:
                    yield None
        for ci, call in enumerate(calls):
            events.append((call.sc.enter_ns, 0, CALL, ci, call.side, 0))
            if call.sc.exit_ns is not None:
                events.append((call.sc.exit_ns, 2, RET, ci, call.side, 0))
        yield None
        events.sort(key=lambda e: (e[0], e[1]))
        yield None
        rows: list[Row] = []
        call_row: dict[int, int] = {}
        ret_row: dict[int, int] = {}
        for n, (ts, _, kind, ref, side, e) in enumerate(events):
            if not n % SLICE:
                yield None
            if kind == RET and rows and rows[-1].kind == CALL and rows[-1].ref == ref:
                rows[-1].kind = CALLRET
                ret_row[ref] = len(rows) - 1
                continue
            if kind != PKT:
                (call_row if kind == CALL else ret_row)[ref] = len(rows)
            rows.append(Row(ts, kind, ref, side, e))
        pkt_row = {r.ref: i for i, r in enumerate(rows) if r.kind == PKT}
        for rcv, sent in received.items():
            if sent in pkt_row:
                pkt_row[rcv] = pkt_row[sent]
        layout = yield from self._layout_links(calls, call_row, ret_row, pkt_row)
        tracks, track_tops, markers = layout
        spans: tuple[list[tuple[int, int]], ...] = ([], [])
        for ci, call in enumerate(calls):
            if ci in ret_row and ret_row[ci] != call_row[ci]:
                spans[call.side].append((call_row[ci], ret_row[ci]))
        busy = []
        for side_spans in spans:
            side_spans.sort()
            reach, furthest = [], -1
            for _, end in side_spans:
                furthest = max(furthest, end)
                reach.append(furthest)
            busy.append(([start for start, _ in side_spans], reach))
        first = ends[0].session.analyzer.connections[ends[0].conn_id].first_ts_ns
        t0 = rows[0].ts_ns if rows else first
        sides = sorted({c.side for c in calls})
        yield _Built(ends, crossings, rows, calls, t0, sides, tracks, track_tops, markers, busy)

    def _apply(self, built: _Built) -> None:
        self.ends, self.crossings = built.ends, built.crossings
        self.rows, self.calls, self.t0, self.sides = built.rows, built.calls, built.t0, built.sides
        self.unit = time_unit(self.rows[-1].ts_ns - self.t0 if self.rows else 0)
        self._tracks, self._track_tops, self._markers = built.tracks, built.track_tops, built.markers
        self._busy = built.busy
        self.loading_rows = False
        self.virtual_size = Size(0, len(self.rows) + 1)
        self.cursor = min(self.cursor, max(len(self.rows) - 1, 0))
        if self.is_mounted:
            self._open_at()
        self.refresh()

    @staticmethod
    def _layout_links(
        calls: list[ConnCall], call_row: dict[int, int], ret_row: dict[int, int], pkt_row: dict[int, int]
    ) -> Generator[
        None, None, tuple[list[list[list[_LinkPath]]], list[list[list[int]]], tuple[dict[int, list[str]], ...]]
    ]:
        """Give each link path a gutter track (greedy, top to bottom); draw nothing yet.

        A path is kept as its rows; the cells of a row are worked out when the row is drawn
        (`_gutter_cells`), from the at most TRACKS paths that cross it. Drawing every cell
        up front cost a dict entry per row a path spans, which on a connection of a million
        events (a blocked read linked to segments far below) was gigabytes and half a minute.
        """
        paths: list[_LinkPath] = []
        for ci, call in enumerate(calls):
            if not ci % (SLICE // 8):
                yield None
            for link in call.links:
                rows = sorted(pkt_row[p] for p in link.packets if p in pkt_row)
                if not rows:
                    continue
                end = call_row[ci] if link.kind in CAUSE_KINDS else ret_row.get(ci, call_row[ci])
                paths.append(_LinkPath(link, call.side, [end, *rows]))
        paths.sort(key=lambda p: min(p.rows[0], p.rows[1]))
        yield None
        markers: tuple[dict[int, list[str]], ...] = ({}, {})
        # per side, per track: the paths on it, in row order (a track's paths never overlap)
        tracks: list[list[list[_LinkPath]]] = [[[] for _ in range(TRACKS)] for _ in range(2)]
        free_after = [[-1] * TRACKS, [-1] * TRACKS]  # last row each track is busy, per side
        for n, path in enumerate(paths):
            if not n % SLICE:
                yield None
            top, bottom = min(path.rows[0], path.rows[1]), max(path.rows[0], path.rows[-1])
            side_free = free_after[path.side]
            track = next((t for t in range(TRACKS) if side_free[t] < top), -1)
            if track < 0:
                for r in path.rows:
                    markers[path.side].setdefault(r, []).append(f"#{path.link.id}")
                continue
            side_free[track] = bottom
            path.track = track
            path.top, path.bottom = top, bottom
            tracks[path.side][track].append(path)
        return tracks, [[[p.top for p in on_track] for on_track in side] for side in tracks], markers

    def _path_cells(self, path: _LinkPath, r: int) -> list[GutterCell]:
        """One link's cells on row `r`: vertical on its track, horizontal arms from the
        track to the app lane (syscall end) and to the wire lane (packet ends).

        Columns count from the app lane outwards for the client side and inwards for the
        server side, so "toward the app" is always lower columns; `_gutter_cells` mirrors.
        """
        style = LINK_STYLES[path.track % len(LINK_STYLES)]
        col = path.track
        cells: list[GutterCell] = []
        mask = (N if r > path.top else 0) | (S if r < path.bottom else 0)
        if r == path.rows[0]:
            mask |= W
            cells.extend((c, E | W, style) for c in range(col))
        packet_rows = path.rows[1:]
        at = bisect_left(packet_rows, r)
        if at < len(packet_rows) and packet_rows[at] == r:
            mask |= E
            cells.extend((c, E | W, style) for c in range(col + 1, TRACKS))
        cells.append((col, mask, style))
        return cells

    def _crossing(self, i: int, side: int) -> list[_LinkPath]:
        """The paths (at most one per track) whose span includes row `i`."""
        out = []
        for on_track, tops in zip(self._tracks[side], self._track_tops[side], strict=True):
            at = bisect_right(tops, i) - 1
            if at >= 0 and on_track[at].bottom >= i:
                out.append(on_track[at])
        return out

    def _is_busy(self, i: int, side: int) -> bool:
        """Row `i` lies inside a call of `side` that other rows interrupt."""
        starts, reach = self._busy[side]
        at = bisect_left(starts, i) - 1
        return at >= 0 and reach[at] > i

    # -- geometry ---------------------------------------------------------------------------

    def _widths(self, width: int) -> tuple[int, int, int]:
        """(app lane width, gutter width, wire width) for a line `width` cells wide."""
        napps = len(self.sides)
        gutter = TRACKS if napps else 0
        app = max(14, min(34, (width - TIME_W) // 5)) if napps else 0
        wire = max(20, width - TIME_W - napps * (app + gutter))
        return app, gutter, wire

    # -- rendering --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if self.loading_rows:
            conn = self.session.analyzer.connections[self.conn_id]
            what = "reading each host of the merged recording for" if self._merged_source else "laying out"
            text = f" {what} {conn.packets:,} packets and their syscalls…" if y == 0 else ""
            return Strip([Segment(text, base + DIM)]).crop_extend(0, width, base)
        if y == 0:
            return Strip(self._header(width, base)).crop_extend(0, width, base)
        i = y - 1 + int(self.scroll_offset.y)
        if i >= len(self.rows):
            return Strip.blank(width, base)
        segs = self._row_segments(i, width, base)
        strip = Strip(segs).crop_extend(0, width, base)
        if i == self.cursor and self.has_focus:
            strip = strip.apply_style(CURSOR)
        return strip

    def _header(self, width: int, base: Style) -> list[Segment]:
        first, last = self.ends[0], self.ends[-1]
        client = first.session.analyzer.connections[first.conn_id].client
        server = last.session.analyzer.connections[last.conn_id].server
        app, gutter, wire = self._widths(width)
        bold = base + Style(bold=True)
        segs = [Segment(f"{self.unit:>{TIME_W - 1}} ", bold)]
        if CLIENT_SIDE in self.sides:
            segs.append(Segment(f"{'client app':<{app + gutter}}", bold))
        if len(self.ends) == 2:
            # Each wire is a host's capture, under the addresses that host saw.
            left, right = f"{first.name} {client}", f"{server} {last.name}"
        elif first.name is not None:
            left, right = f"{first.name}: client {client}", f"server {server}"
        else:
            left, right = f"client {client}", f"server {server}"
        if len(self.ends) == 2 and len(left) + len(right) + 1 > wire:
            left, right = f"{first.name} wire", f"wire {last.name}"  # too narrow for the addresses
        pad = max(wire - len(left) - len(right), 1)
        segs.append(Segment(left, base + DIR_STYLES[0] + Style(bold=True)))
        segs.append(Segment(" " * pad, base))
        segs.append(Segment(right, base + DIR_STYLES[1] + Style(bold=True)))
        if SERVER_SIDE in self.sides:
            segs.append(Segment(f"{'server app':>{app + gutter}}", bold))
        return segs

    def _row_segments(self, i: int, width: int, base: Style) -> list[Segment]:
        row = self.rows[i]
        app, _, wire = self._widths(width)
        segs = [Segment(f"{fmt_time(row.ts_ns - self.t0, self.unit)} ", base + DIM)]
        if CLIENT_SIDE in self.sides:
            segs += self._app_cell(row, i, CLIENT_SIDE, app, base)
            segs += self._gutter_cells(i, CLIENT_SIDE, base)
        segs += self._wire_cell(row, wire, base)
        if SERVER_SIDE in self.sides:
            segs += self._gutter_cells(i, SERVER_SIDE, base)
            segs += self._app_cell(row, i, SERVER_SIDE, app, base)
        return segs

    def _app_cell(self, row: Row, i: int, side: int, app: int, base: Style) -> list[Segment]:
        """A call box aligned against the gutter, or the bar of a call still in progress."""
        bar = "┃" if self._is_busy(i, side) else " "
        if row.kind == PKT or row.side != side:
            body = [Segment(" " * (app - 1), base)]
            return [*body, Segment(bar, base)] if side == CLIENT_SIDE else [Segment(bar, base), *body]
        sc = self.calls[row.ref].sc
        if row.kind == CALL:
            text = f"{call_name(sc)} …"
        elif row.kind == RET:
            text = f"… {call_result(sc, always=True)}"
        else:
            text = call_label(sc)
        marks = self._markers[side].get(i)
        if marks:
            text = f"{text} {' '.join(marks)}"
        text = f" {text} "
        if len(text) > app:
            text = text[: app - 2] + "… "
        style = base + (FAILED_STYLE if sc.failed else CALL_STYLE)
        pad = Segment(" " * (app - len(text)), base)
        box = Segment(text, style)
        return [pad, box] if side == CLIENT_SIDE else [box, pad]

    def _gutter_cells(self, i: int, side: int, base: Style) -> list[Segment]:
        masks = [0] * TRACKS
        styles = [base] * TRACKS
        for path in self._crossing(i, side):
            for col, mask, style in self._path_cells(path, i):
                masks[col] |= mask
                styles[col] = base + style
        segs = [Segment(_BOX[m], st) for m, st in zip(masks, styles, strict=True)]
        if side == SERVER_SIDE:
            # Server gutter: the app lane is on the right, so mirror columns and arms.
            flip = {E: W, W: E}
            segs = [
                Segment(_BOX[(m & (N | S)) | sum(flip[b] for b in (E, W) if m & b)], st)
                for m, st in zip(reversed(masks), reversed(styles), strict=True)
            ]
        return segs

    def _wire_cell(self, row: Row, wire: int, base: Style) -> list[Segment]:
        lane = Segment("│", base + DIM)
        inner = wire - 2
        if row.kind != PKT:
            return [lane, Segment(" " * inner, base), lane]
        session = self.ends[row.end].session
        t = session.analyzer.table
        idx = row.ref
        flags, seglen, direction = t.flags[idx], t.seglen[idx], t.direction[idx]
        crossing = self.crossings.get(idx)
        name = segment_label(flags, seglen)
        # A crossing's one-way delay is part of its name: it is kept however narrow the lane.
        parts = [name if crossing is None else f"{name} ({fmt_ns(crossing[1])})", f"seq {t.rel_seq[idx]}"]
        if flags & ACK:
            parts.append(f"ack {t.rel_ack[idx]}")
        parts.append(f"win {t.window[idx]}")
        tags = flag_names(t.analysis[idx])
        reason = session.correlator.label(idx) if self.calls else None
        if isinstance(reason, str) and reason.replace("-", "_") not in tags:
            tags.append(kernel_label(reason))  # kernel-only traffic on a traced connection: why no call owns it
        label = ""
        for part in parts:
            if label and len(label) + len(part) + 1 > inner - 8:
                break
            label = f"{label} {part}" if label else part
        style = base + DIR_STYLES[direction]
        if flags & (SYN | FIN | RST):
            style += Style(bold=True)
        tag = " ".join(tags)
        fill = inner - len(label) - 2 - (len(tag) + 1 if tag else 0)
        if fill < 2:
            tag, fill = "", inner - len(label) - 2
        left_fill, right_fill = fill // 2, fill - fill // 2
        tail = [Segment(" " + tag, base + (RETRANS_STYLE if "retrans" in tag else DIM))] if tag else []
        # Of two hosts' wires, the half of a packet that only one of them captured is solid
        # on that host's side and dotted on the other's.
        alone = len(self.ends) == 2 and crossing is None
        lf = "┄" if alone and row.end == 1 else "─"
        rf = "┄" if alone and row.end == 0 else "─"
        if direction == 0:
            head = "├" + lf * left_fill + " "
            end = " " + rf * (right_fill - 1) + "▶┤"
        else:
            head = "├◀" + lf * (left_fill - 1) + " "
            end = " " + rf * right_fill + "┤"
        return [Segment(head, style), Segment(label, style), *tail, Segment(end, style)]

    # -- cursor -----------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        top = int(self.scroll_offset.y)
        height = max(self.size.height - 1, 1)
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def action_cursor_page(self, direction: int) -> None:
        self.action_cursor(direction * max(self.size.height - 2, 1))

    def action_cursor_to(self, where: int) -> None:
        if self.rows:
            self.cursor = where % len(self.rows)

    def action_select(self) -> None:
        if not self.rows:
            return
        row = self.rows[self.cursor]
        if row.kind == PKT:
            self.post_message(self.Selected(self, row.ref, None))
        else:
            self.post_message(self.Selected(self, None, self.calls[row.ref].sc))

    def on_resize(self) -> None:
        self.virtual_size = Size(0, len(self.rows) + 1)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # -- text for tests and reports ---------------------------------------------------------

    def text_lines(self, width: int = 140) -> list[str]:
        """The whole ladder as plain text lines, as it renders at `width` columns."""
        base = Style()
        lines = ["".join(s.text for s in self._header(width, base))]
        lines += ["".join(s.text for s in self._row_segments(i, width, base)) for i in range(len(self.rows))]
        return lines
