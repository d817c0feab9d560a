"""The Findings pane: the engine's diagnoses; selecting one shows its evidence in the timeline.

"Shows its evidence" is done with the display filter (`finding == N`), so the user sees
in the filter bar why the timeline changed and can refine or clear it like any filter.
"""

from __future__ import annotations

from textual.message import Message
from textual.widgets import DataTable

from wirecorr.views.tui.index import EventIndex

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


COLUMNS = ("#", "severity", "kind", "conn", "message")


class FindingsPane(DataTable[str]):
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

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def refresh_rows(self) -> None:
        findings = self.index.findings
        if len(findings) == self.shown:
            return
        # Columns too: their widths then fit these findings, not every finding ever shown.
        self.clear(columns=True)
        self.add_columns(*COLUMNS)
        for number, f in enumerate(findings):
            conn = str(f.connection) if f.connection is not None else "-"
            self.add_row(str(number), f.severity, f.kind, conn, f.message, key=str(number))
        self.shown = len(findings)
        self.border_title = f"Findings ({self.shown})"

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Chosen(int(event.row_key.value)))
