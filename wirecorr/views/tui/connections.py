"""The Connections pane: one row per connection; selecting one filters the timeline to it.

Connections are few next to packets (10,000 in the 1M-event benchmark), so a DataTable
fits here; rows are added as the analyzer finds connections and their changing cells
(state, bytes, findings) are compared on `refresh_rows` and only changed cells updated: all
rows while there are few, only new ones during a large load (the final refresh after
indexing catches up on the rest).
"""

from __future__ import annotations

from collections import Counter

from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from wirecorr.engine.connections import Connection
from wirecorr.views.tui.index import EventIndex

# (label, width). Columns whose cells change as events arrive have a fixed width: a
# DataTable sizes a column by the cells it has measured so far, so widths would depend on
# when each refresh happened to run, and a cell that grew later would be cut. The
# 4-tuple never changes, so it is measured. The state fits "SYN_RECEIVED/ESTABLISHED".
COLUMNS: tuple[tuple[str, int | None], ...] = (
    ("#", 5),
    ("proto", 5),
    ("client → server", None),
    ("pid/fd", 11),
    ("state c/s", 24),
    ("bytes c→s", 11),
    ("bytes s→c", 11),
    ("!", 3),
)
FULL_REFRESH_LIMIT = 500


def state_now(conn: Connection) -> str:
    return f"{conn.final_client_state or '-'}/{conn.final_server_state or '-'}"


class ConnectionsPane(DataTable[str]):
    # DataTable's home/end scroll sideways; in a list of connections they mean first/last
    # row, as in the timeline (g/G too).
    BINDINGS = [
        Binding("home,g", "scroll_top", "First", show=False),
        Binding("end,G", "scroll_bottom", "Last", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]
    DEFAULT_CSS = """
    ConnectionsPane { height: 1fr; border: round $panel; }
    ConnectionsPane:focus { border: round $accent; }
    """

    class Chosen(Message):
        def __init__(self, conn_id: int) -> None:
            super().__init__()
            self.conn_id = conn_id

    def __init__(self, index: EventIndex, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.index = index
        self.border_title = "Connections"
        self.shown = 0
        self.cells: list[tuple[str, ...]] = []  # what each row shows now, to update only changes

    def on_mount(self) -> None:
        for label, width in COLUMNS:
            self.add_column(label, width=width)

    def _cells(self, conn: Connection, findings: Counter[int]) -> tuple[str, ...]:
        owners = ",".join(sorted(self.index.owners.get(conn.id, ())))
        count = findings.get(conn.id, 0)
        return (
            str(conn.id),
            conn.proto,
            f"{conn.client} → {conn.server}",
            owners or "-",
            state_now(conn),
            str(conn.bytes_c2s),
            str(conn.bytes_s2c),
            str(count) if count else "",
        )

    def refresh_rows(self, full: bool = False) -> None:
        conns = self.index.session.analyzer.connections
        findings = Counter(f.connection for f in self.index.findings if f.connection is not None)
        if full or len(conns) <= FULL_REFRESH_LIMIT:
            for conn in conns[: self.shown]:
                cells = self._cells(conn, findings)
                if cells != self.cells[conn.id]:
                    for column, (old, new) in enumerate(zip(self.cells[conn.id], cells, strict=True)):
                        if old != new:
                            self.update_cell_at(Coordinate(conn.id, column), new)
                    self.cells[conn.id] = cells
        for conn in conns[self.shown :]:
            cells = self._cells(conn, findings)
            self.cells.append(cells)
            self.add_row(*cells, key=str(conn.id))
        self.shown = len(conns)
        self.border_title = f"Connections ({self.shown})"

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Chosen(int(event.row_key.value)))
