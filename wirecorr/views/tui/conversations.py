"""Conversations: Wireshark's Statistics → Conversations (and termshark's), per connection.

One row per connection with what the Connections pane has no room for: packets and bytes
each way, duration, the handshake RTT, who closed or reset it, each side's state history,
the TCP analysis counts and the findings. `s` sorts by the next column (`S` reverses), a
click on a header sorts by it; `enter` goes back to the timeline filtered to the connection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from wirecorr.engine.connections import Connection, StateChange
from wirecorr.model import fmt_ns
from wirecorr.views.tui.index import EventIndex

# (title, sort key of a connection)
Column = tuple[str, Callable[[Connection, Counter[int]], Any]]
COLUMNS: tuple[Column, ...] = (
    ("#", lambda c, f: c.id),
    ("stream", lambda c, f: (c.proto, c.stream)),
    ("client → server", lambda c, f: (c.client_addr, c.client_port, c.server_addr, c.server_port)),
    ("packets", lambda c, f: c.packets),
    ("bytes c→s", lambda c, f: c.bytes_c2s),
    ("bytes s→c", lambda c, f: c.bytes_s2c),
    ("duration", lambda c, f: c.duration_ns),
    ("rtt", lambda c, f: c.initial_rtt_ns or 0),
    ("closed by", lambda c, f: c.reset_by or c.active_closer or ""),
    ("client states", lambda c, f: len(c.client_state)),
    ("server states", lambda c, f: len(c.server_state)),
    ("analysis", lambda c, f: sum(c.analysis_counts.values())),
    ("findings", lambda c, f: f.get(c.id, 0)),
)
_SHORT_STATE = {
    "ESTABLISHED": "EST",
    "SYN_SENT": "SYN_S",
    "SYN_RECEIVED": "SYN_R",
    "FIN_WAIT1": "FW1",
    "FIN_WAIT_1": "FW1",
    "FIN_WAIT_2": "FW2",
    "FIN_WAIT2": "FW2",
    "CLOSE_WAIT": "CW",
    "LAST_ACK": "LA",
    "TIME_WAIT": "TW",
    "CLOSING": "CLOSING",
    "CLOSED": "CLOSED",
}


def history(changes: list[StateChange]) -> str:
    """A side's state history as a path: SYN_S→EST→FW1→FW2→TW."""
    return "→".join(_SHORT_STATE.get(state, state) for _, _, state in changes) or "-"


def cells(conn: Connection, findings: Counter[int]) -> tuple[str, ...]:
    analysis = ", ".join(f"{name} {n}" for name, n in sorted(conn.analysis_counts.items()) if n)
    closed = f"RST by {conn.reset_by}" if conn.reset_by else conn.active_closer or "-"
    return (
        str(conn.id),
        f"{conn.proto} {conn.stream}",
        f"{conn.client} → {conn.server}",
        f"{conn.packets_c2s}+{conn.packets_s2c}",
        str(conn.bytes_c2s),
        str(conn.bytes_s2c),
        fmt_ns(conn.duration_ns),
        fmt_ns(conn.initial_rtt_ns) if conn.initial_rtt_ns is not None else "-",
        closed,
        history(conn.client_state),
        history(conn.server_state),
        analysis or "-",
        str(findings.get(conn.id, 0) or ""),
    )


class Conversations(DataTable[str]):
    BINDINGS = [
        Binding("s", "sort(1)", "Sort by next column"),
        Binding("S", "sort(-1)", "Reverse sort", show=False),
        Binding("enter", "select_cursor", "Show in the timeline"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g,home", "scroll_top", "First", show=False),
        Binding("G,end", "scroll_bottom", "Last", show=False),
    ]
    DEFAULT_CSS = """
    Conversations { height: 1fr; }
    """

    class Chosen(Message):
        def __init__(self, conn_id: int) -> None:
            super().__init__()
            self.conn_id = conn_id

    def __init__(self, index: EventIndex, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.index = index
        self.sort_column = 0
        self.descending = False

    def on_mount(self) -> None:
        self.add_columns(*(title for title, _ in COLUMNS))
        self.fill()

    def fill(self) -> None:
        findings = Counter(f.connection for f in self.index.findings if f.connection is not None)
        key = COLUMNS[self.sort_column][1]
        conns = sorted(self.index.session.analyzer.connections, key=lambda c: key(c, findings), reverse=self.descending)
        self.clear()
        for conn in conns:
            self.add_row(*cells(conn, findings), key=str(conn.id))
        arrow = "▼" if self.descending else "▲"
        self.border_title = f"{len(conns)} conversations, by {COLUMNS[self.sort_column][0]} {arrow}"

    def action_sort(self, step: int) -> None:
        """`s`: sort by the next column (largest first for numbers); `S`: reverse the order."""
        if step < 0:
            self.descending = not self.descending
        else:
            self.sort_column = (self.sort_column + 1) % len(COLUMNS)
            self.descending = self.sort_column >= 3  # counts and times: the largest first
        self.fill()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_index == self.sort_column:
            self.descending = not self.descending
        else:
            self.sort_column = event.column_index
            self.descending = event.column_index >= 3
        self.fill()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Chosen(int(event.row_key.value)))

    def text_lines(self) -> list[str]:
        """The rows as the table holds them, for tests."""
        return ["  ".join(str(cell) for cell in self.get_row_at(i)) for i in range(self.row_count)]
