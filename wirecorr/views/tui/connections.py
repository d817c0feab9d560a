"""The Connections pane: one row per connection; selecting one filters the timeline to it.

Connections are few next to packets (10,000 in the 1M-event benchmark), so a DataTable
fits here; rows are added as the analyzer finds connections and their changing cells
(state, bytes, findings) are compared on `refresh_rows` and only changed cells updated: all
rows while there are few, only new ones during a large load (the final refresh after
indexing catches up on the rest).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from wirecorr.engine.connections import Connection
from wirecorr.views.tui.index import EventIndex

FULL_REFRESH_LIMIT = 500
# New rows a periodic refresh adds at most (a forced one adds all): a DataTable measures
# each row it takes, and a file's walk finds connections by the thousand (1,240 in one
# half-second took 0.1 s, a key press held as long).
APPEND_AT_ONCE = 256


@dataclass(frozen=True)
class Col:
    """A sidebar table's column: its label, its width (None: what the pane has left, from
    `least` cells on), and `keep`: the narrower the pane, the more columns of low `keep`
    are left out (Conversations, `c`, has them all)."""

    label: str
    width: int | None
    keep: int
    least: int = 0


def fit_columns(columns: Sequence[Col], width: int, padding: int = 1) -> tuple[tuple[int, int], ...]:
    """(column index, width) of the columns shown in `width` cells: the least kept ones
    are left out until the rest fit, then the stretching column takes what is left (less
    than its `least` only when nothing else can go). A cell wider than its column is cut
    with `…` (`ellipsized`), never at the pane's edge."""
    stretch = next(i for i, col in enumerate(columns) if col.width is None)
    shown = list(range(len(columns)))

    def need(cols: list[int]) -> int:
        return sum((columns[i].width or columns[i].least) + 2 * padding for i in cols)

    while need(shown) > width:
        droppable = [i for i in shown if columns[i].keep < columns[stretch].keep]
        if not droppable:
            break
        shown.remove(min(droppable, key=lambda i: columns[i].keep))
    rest = width - need(shown) + columns[stretch].least
    return tuple((i, columns[i].width or max(rest, 4)) for i in shown)


def ellipsized(value: str | Text) -> Text:
    text = value.copy() if isinstance(value, Text) else Text(value, end="")
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


class FittedTable(DataTable[Text]):
    """A DataTable whose columns fit the pane: it keeps each row's cells and lays the table
    out again when the pane's width changes (`b`, a resize), as a DataTable cut at the
    pane's edge hides what was cut."""

    COLUMNS: tuple[Col, ...] = ()

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.cells: list[tuple[str | Text, ...]] = []  # every row's cells, shown or not
        self.fitted: tuple[tuple[int, int], ...] = ()

    def on_mount(self) -> None:
        self.lay_out()

    def on_resize(self) -> None:
        self.lay_out()

    def lay_out(self) -> None:
        # The vertical scrollbar's two cells are kept free: rows come and go.
        layout = fit_columns(self.COLUMNS, max(self.size.width - 2, 0), self.cell_padding)
        if layout == self.fitted:
            return
        self.fitted = layout
        row = self.cursor_row
        self.clear(columns=True)
        for i, width in layout:
            self.add_column(ellipsized(self.COLUMNS[i].label), width=width)
        for number, cells in enumerate(self.cells):
            self.add_row(*self._shown(cells), key=str(number))
        if self.cells:
            self.move_cursor(row=min(row, len(self.cells) - 1))

    def _shown(self, cells: tuple[str | Text, ...]) -> list[Text]:
        return [ellipsized(cells[i]) for i, _ in self.fitted]

    def append_row(self, cells: tuple[str | Text, ...]) -> None:
        self.cells.append(cells)
        self.add_row(*self._shown(cells), key=str(len(self.cells) - 1))

    def update_row(self, number: int, cells: tuple[str | Text, ...]) -> None:
        old, self.cells[number] = self.cells[number], cells
        for column, (i, _) in enumerate(self.fitted):
            if old[i] != cells[i]:
                self.update_cell_at(Coordinate(number, column), ellipsized(cells[i]))

    def reset_rows(self) -> None:
        self.cells.clear()
        self.clear()


def state_now(conn: Connection) -> str:
    return f"{conn.final_client_state or '-'}/{conn.final_server_state or '-'}"


class ConnectionsPane(FittedTable):
    # Columns whose cells change as events arrive have a fixed width: a DataTable sizes a
    # column by the cells it has measured so far, so widths would depend on when each
    # refresh happened to run. The state fits "ESTABLISHED/CLOSED"; rarer pairs are cut.
    COLUMNS = (
        Col("#", 4, 9),
        Col("proto", 5, 2),
        Col("client → server", None, 8, least=33),
        Col("pid/fd", 11, 5),
        Col("state c/s", 17, 6),
        Col("bytes c→s", 11, 1),
        Col("bytes s→c", 11, 1),
        Col("!", 3, 3),
    )
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
                    self.update_row(conn.id, cells)
        upto = len(conns) if full else min(len(conns), self.shown + APPEND_AT_ONCE)
        for conn in conns[self.shown : upto]:
            self.append_row(self._cells(conn, findings))
        self.shown = upto
        lag = f" of {len(conns)}…" if upto < len(conns) else ""
        self.border_title = f"Connections ({self.shown}{lag})"

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Chosen(int(event.row_key.value)))
