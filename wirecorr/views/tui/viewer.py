"""A full screen for one of the connection views (ladder, follow stream, seq plot).

Those widgets are built from `(session, conn_id)` and know nothing of screens; this
wraps one so `escape` or `q` returns to the timeline exactly where the user left it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static


class ViewerScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Back to the timeline")]
    DEFAULT_CSS = """
    ViewerScreen > #viewer-title { dock: top; height: 1; background: $panel; padding: 0 1; text-style: bold; }
    """

    def __init__(self, title: str, body: Widget) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, id="viewer-title")
        yield self.body
        yield Footer()

    def on_mount(self) -> None:
        self.body.focus()
