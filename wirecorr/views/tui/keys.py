"""Every key of the TUI in one table, so `?`, the footer and the command palette agree.

The table is data rather than text: the app builds its bindings and its command-palette
entries from it, and the help screen lists it, so a key cannot be added in one place and
forgotten in the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from wirecorr.views.tui.row_text import LEGEND


@dataclass(frozen=True)
class Key:
    keys: str
    action: str
    description: str
    short: str = ""  # the footer's label; keys without one stay out of the footer
    bind: str = ""  # Textual's key name(s), when they differ from what the user types
    # Run by the app as the key arrives, before later keys are handed to the focused widget.
    priority: bool = False

    @property
    def binding_keys(self) -> str:
        return self.bind or self.keys


# Keys the Timeline handles itself (it owns the cursor); listed here for the help screen.
TIMELINE_KEYS = (
    Key("j / ↓", "move(1)", "next row"),
    Key("k / ↑", "move(-1)", "previous row"),
    Key("PgDn / PgUp", "page", "page down / up"),
    Key("g / Home", "first", "first row"),
    Key("G / End", "last", "last row, and follow new events (live)"),
    Key("enter", "follow_link", "follow the link: syscall ↔ its packets, again to cycle"),
    Key("t", "toggle_time", "time column: relative / absolute / delta since the row above"),
    Key("ctrl+t", "time_reference", "set (or clear) a time reference on the row: times count from it"),
    Key("m", "mark", "mark or unmark the row (*)"),
    Key("'", "next_mark", "go to the next mark"),
    Key("click", "", "select a row; wheel scrolls"),
)

APP_KEYS = (
    # Priority: keys typed or pasted in the same burst as "/" are queued for the widget focused
    # before it; only a binding run on arrival moves the focus to the filter bar in time.
    Key("/", "filter", "display filter (empty clears)", "filter", bind="slash", priority=True),
    Key(
        "ctrl+f",
        "search",
        "find text in payloads, syscall data and rows (n/N: next/previous)",
        bind="ctrl+f",
        priority=True,
    ),
    Key("ctrl+g", "goto_frame", "go to a frame by its number (as Wireshark numbers it)", bind="ctrl+g", priority=True),
    Key("n", "next_match", "next row matching the filter", "next match"),
    Key("N", "previous_match", "previous row matching the filter"),
    Key("escape", "clear_filter", "clear the filter"),
    Key("a", "toggle_only", "filter: show matches only / all rows with n/N stops"),
    Key("f", "follow_stream", "follow the connection's byte stream", "follow"),
    Key("l", "ladder", "ladder diagram of the connection", "ladder"),
    Key("p", "seqplot", "sequence / time plot of the connection", "plot"),
    Key("d", "dissect", "full dissection of the packet (tshark)", "dissect"),
    Key("c", "conversations", "conversations: every connection's packets, bytes, states; sortable", "convs"),
    Key("H", "delays", "syscall → wire delays: histogram per link kind, the slowest links", "delays"),
    Key("R", "requests", "requests (HTTP, Redis, DNS, PostgreSQL): where each one's time went"),
    Key("b", "toggle_sidebar", "show / hide connections and findings (below when narrow)", "sidebar"),
    Key("e", "expand_row", "show the selected row whole under the timeline", "expand"),
    Key("w", "export_connection", "save the row's connection (packets + syscalls) as pcapng", "save conn"),
    Key("W", "export_view", "save the rows shown (the filtered view) as pcapng"),
    Key("y", "copy_row", "copy the row's text to the clipboard (OSC 52)"),
    Key("Y", "copy_bytes", "copy the packet's bytes / the syscall's data as hex (OSC 52)"),
    Key("tab", "focus_next", "next pane"),
    Key("shift+tab", "focus_previous", "previous pane"),
    Key("?", "help", "this help", "help", bind="question_mark"),
    Key("ctrl+p", "command_palette", "command palette: every action by name"),
    Key("q", "quit", "quit (live: stop tracing, keep the recording)", "quit"),
)


def app_bindings() -> list[Binding]:
    skip = {"focus_next", "focus_previous", "command_palette"}
    return [
        Binding(k.binding_keys, k.action, k.short or k.description, show=bool(k.short), priority=k.priority)
        for k in APP_KEYS
        if k.action not in skip
    ]


# The filter language in four rows of the help: wirecorr's fields, Wireshark's, the operators, requests'.
FILTER_HELP = (
    (
        "wirecorr",
        "syscall == accept4, fd == 5, pid, tid, conn == 3, ret, errno == ECONNRESET, linked, kernel_only, "
        "finding, link == 2, frame == 4, net",
    ),
    (
        "Wireshark",
        "ip.addr, ip.src/dst, tcp.port, tcp.srcport/dstport, udp.port, tcp.stream, frame.number, tcp.len, "
        "tcp.seq/ack/window, tcp.flags.syn == 1 (fin rst ack psh), tcp.analysis.*",
    ),
    ("operators", '== != < <= > >=, contains "GET", matches "re", in {80 443}, and/or/not (&& || !), ( )'),
    ("requests", "request == 3, http.status >= 500, redis.cmd == GET, dns.rcode != 0, req.time > 100ms"),
)
# From this width on the help is laid out in two columns and fits a 50-line screen whole.
HELP_TWO_COLUMNS = 150


def _pairs(rows: Iterable[tuple[str, str]], key_style: str = "cyan", key_width: int = 11) -> Table:
    """A key and what it does, the description wrapped in its own column (never under the key)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style=key_style, no_wrap=True, min_width=key_width)
    table.add_column(ratio=1, overflow="fold")
    for key, meaning in rows:
        table.add_row(Text.from_markup(key), Text.from_markup(meaning))
    return table


def help_sections() -> list[tuple[str, Table]]:
    return [
        ("Timeline", _pairs((k.keys, k.description) for k in TIMELINE_KEYS)),
        ("Everywhere", _pairs((k.keys, k.description) for k in APP_KEYS)),
        ("Colours and marks (Wireshark's default colouring rules)", _pairs(LEGEND, key_style="")),
        ("Filter (/)", _pairs(FILTER_HELP, key_style="bold")),
    ]


def help_body(width: int) -> Group:
    """The help laid out for a screen `width` columns wide: one column when narrow, else the
    app-wide keys beside the timeline keys, colours and filter."""
    blocks = [Group(Text(title, style="bold"), table, Text("")) for title, table in help_sections()]
    if width < HELP_TWO_COLUMNS:
        return Group(*blocks)
    grid = Table.grid(padding=(0, 3), expand=True)
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(blocks[1], Group(blocks[0], *blocks[2:]))
    return Group(grid)


class HelpScreen(ModalScreen[None]):
    # j/k/g/G scroll as they move everywhere else in the app (the arrows, pgup/pgdn and
    # home/end are VerticalScroll's own).
    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
        Binding("j", "scroll('down')", "Down", show=False),
        Binding("k", "scroll('up')", "Up", show=False),
        Binding("g", "scroll('home')", "Top", show=False),
        Binding("G", "scroll('end')", "Bottom", show=False),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 100%; max-width: 180; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1; }
    HelpScreen > VerticalScroll > Static { width: 100%; }
    """

    def compose(self) -> ComposeResult:
        box = VerticalScroll()
        box.border_title = "wirecorr — keys"
        box.border_subtitle = "j/k ↑↓ scroll · esc close"
        with box:
            yield Static(id="help-body")

    def on_mount(self) -> None:
        self._lay_out()

    def on_resize(self) -> None:
        self._lay_out()

    def action_scroll(self, where: str) -> None:
        box = self.query_one(VerticalScroll)
        {"down": box.scroll_down, "up": box.scroll_up, "home": box.scroll_home, "end": box.scroll_end}[where](
            animate=False
        )

    def _lay_out(self) -> None:
        self.query_one("#help-body", Static).update(help_body(self.size.width))
