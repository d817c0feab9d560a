"""Every key of the TUI in one table, so `?`, the footer and the command palette agree.

The table is data rather than text: the app builds its bindings and its command-palette
entries from it, and the help screen lists it, so a key cannot be added in one place and
forgotten in the others.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 84; max-width: 100%; height: 80%; border: round $accent;
        background: $surface; }
    """

    def compose(self) -> ComposeResult:
        lines = ["[b]wirecorr — keys[/b]", ""]
        for title, keys in (("Timeline", TIMELINE_KEYS), ("Everywhere", APP_KEYS)):
            lines.append(f"[b]{title}[/b]")
            lines += [f"  [cyan]{k.keys:<14}[/cyan] {k.description}" for k in keys]
            lines.append("")
        lines.append("[b]Colours and marks[/b] (Wireshark's default colouring rules)")
        lines += [f"  {sample}  {meaning}" for sample, meaning in LEGEND]
        lines.append("")
        lines.append("[b]Filter[/b]  syscall == accept4, fd == 5, pid == 1234, conn == 3, tcp.len > 0,")
        lines.append("  tcp.flags.syn/fin/rst/ack/psh, linked, kernel_only, finding, errno, link == 2,")
        lines.append("  frame == 4, ret, tid, tcp.seq/ack/window; and/or/not (&& || !), parentheses;")
        lines.append("  request == 3, http.status >= 500, redis.cmd == GET, dns.rcode != 0, req.time > 100ms")
        with VerticalScroll():
            yield Static("\n".join(lines))
