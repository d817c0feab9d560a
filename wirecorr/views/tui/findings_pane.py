"""The Findings pane: the engine's diagnoses; selecting one shows its evidence in the timeline.

"Shows its evidence" is done with the display filter (`finding == N`), so the user sees
in the filter bar why the timeline changed and can refine or clear it like any filter.
"""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from wirecorr.views.tui.connections import Col, FittedTable
from wirecorr.views.tui.index import EventIndex

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


class FindingsPane(FittedTable):
    # The message takes what is left; a narrow pane leaves out the connection, then the severity.
    COLUMNS = (
        Col("#", 2, 9),
        Col("severity", 8, 3),
        Col("kind", 16, 10),
        Col("conn", 4, 2),
        Col("message", None, 8, least=20),
    )
    DEFAULT_CSS = """
    FindingsPane { height: 1fr; border: round $panel; }
    FindingsPane:focus { border: round $accent; }
    """

    class Chosen(Message):
        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

    def __init__(self, index: EventIndex, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self.index = index
        self.border_title = "Findings"
        self.shown = 0

    def refresh_rows(self) -> None:
        findings = self.index.findings
        if len(findings) == self.shown:
            return
        self.reset_rows()
        for number, f in enumerate(findings):
            conn = str(f.connection) if f.connection is not None else "-"
            severity = Text(f.severity, style=SEVERITY_STYLE.get(f.severity, ""))
            self.append_row((str(number), severity, f.kind, conn, f.message))
        self.shown = len(findings)
        self.border_title = f"Findings ({self.shown})"

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Chosen(int(event.row_key.value)))
