"""Requests (`R`): one row per request with a waterfall bar of where its time went.

The rows are the engine's `requests_of(session)` (HTTP/1.x, Redis, DNS, PostgreSQL); the
bar draws the request's own time split (engine/requests/split.py) to scale, one colour
per part, so the part that dominated stands out whatever the request's total. `enter`
goes back to the timeline filtered to the request (`request == N`): its syscalls and
segments, both messages, on the cursor's first row.

`RequestRows` is the other half: the filter's request fields (`request`, `http.status`,
`redis.cmd`, `dns.rcode`, `req.time`, and Wireshark's `http.response.code`, …) for every
timeline row, from the same list.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from wirecorr.engine.requests import Request, requests_of
from wirecorr.model import fmt_ns
from wirecorr.views.tui.display_filter import FieldValue
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.rows import packet_ref

# One colour per part of the split: the client's kernel and app yellow, the wire cyan, the
# server magenta; "peer + network" (an untraced side) grey.
PART_STYLES = {
    "send": "yellow",
    "request wire": "cyan",
    "server read": "blue",
    "server processing": "magenta",
    "server send": "bright_magenta",
    "response wire": "green",
    "delivery": "bright_yellow",
    "peer + network": "grey62",
}
OTHER_STYLE = "white"
BAR = "█"
FLOOR_NS = 1_000

# Wireshark's names for a message's values: on the packet that completes the message, as
# tshark dissects a PDU where its reassembly ends. (request side, response side)
_WIRESHARK = {
    "http": (
        {"http.request.method": "http.method", "http.request.uri": "http.uri"},
        {"http.response.code": "http.status"},
    ),
    "dns": ({"dns.id": "dns.id"}, {"dns.id": "dns.id", "dns.flags.rcode": "dns.rcode"}),
}


def bar_length(total_ns: int, longest_ns: int, width: int) -> int:
    """Cells for a request of `total_ns` when the longest request gets `width`: log scale from
    1 µs, so a 200 ms request stands out beside 100 µs ones and those still show their split."""
    if total_ns <= FLOOR_NS or longest_ns <= FLOOR_NS:
        return 1
    return max(1, round(width * math.log(total_ns / FLOOR_NS) / math.log(longest_ns / FLOOR_NS)))


def waterfall(req: Request, width: int, length: int | None = None) -> Text:
    """The split as a bar of `length` cells (default `width`) padded to `width`, each part
    as long as its share of the total (a part shorter than one cell gets none)."""
    out = Text()
    total = req.total_ns or 0
    if not req.split or total <= 0:
        return Text("·" * width, style="dim")
    full, width = width, length if length is not None else width
    used, acc = 0, 0
    for part, ns in req.split:
        acc += ns
        upto = round(acc * width / total)
        if upto > used:
            out.append(BAR * (upto - used), style=PART_STYLES.get(part, OTHER_STYLE))
            used = upto
    if used < full:
        out.append(" " * (full - used))
    return out


def legend() -> Text:
    out = Text("bar: total, log scale  ", style="dim")
    for part, style in PART_STYLES.items():
        out.append(BAR, style=style)
        out.append(f" {part}  ")
    return out


class RequestRows:
    """Which requests each timeline row belongs to, and the filter's request fields."""

    def __init__(self, index: EventIndex, requests: list[Request]) -> None:
        self.requests = requests
        self.by_id = {req.id: req for req in requests}
        self.of_ref: dict[int, list[Request]] = {}
        self.wireshark: dict[int, dict[str, object]] = {}
        table = index.session.analyzer.table
        for req in requests:
            for ref in self.refs(index, req):
                self.of_ref.setdefault(ref, []).append(req)
            for side, message in enumerate((req.request, req.response)):
                names = _WIRESHARK.get(req.protocol, ({}, {}))[side]
                if message is None or not names or not message.complete:
                    continue
                last = _completing_packet(table, message)
                if last is None:
                    continue
                values = self.wireshark.setdefault(packet_ref(last), {})
                for shown, ours in names.items():
                    if req.fields.get(ours) is not None:
                        values[shown] = req.fields[ours]

    @staticmethod
    def refs(index: EventIndex, req: Request) -> list[int]:
        """The request's rows: its data calls and its packets, in time order."""
        calls = [ref for ref in map(index.ref_of_call_id, req.syscalls) if ref is not None]
        refs = set(calls) | {packet_ref(i) for i in req.packets}
        return sorted(refs, key=lambda r: (index.ts(r), r))

    def field(self, ref: int, name: str) -> FieldValue:
        if name in ("http.request.method", "http.request.uri", "http.response.code", "dns.id", "dns.flags.rcode"):
            value = self.wireshark.get(ref, {}).get(name)
            return value if isinstance(value, (int, str)) else None
        reqs = self.of_ref.get(ref)
        if not reqs:
            return None
        if name == "request":
            return tuple(req.id for req in reqs)
        if name == "req.time":
            values: list[object] = [req.total_ns for req in reqs]
        elif name == "req.proto":
            values = [req.protocol for req in reqs]
        else:
            values = [req.fields.get(name) for req in reqs]
        kept = tuple(v for v in values if isinstance(v, (int, str)) and not isinstance(v, bool))
        return kept or None  # type: ignore[return-value]


def _completing_packet(table: object, message: object) -> int | None:
    """The first packet carrying the message's last byte (for a datagram: the datagram)."""
    packets = message.packets  # type: ignore[attr-defined]
    if not packets:
        return None
    end = message.end - 1  # type: ignore[attr-defined]
    seglen, rel_seq = table.seglen, table.rel_seq  # type: ignore[attr-defined]
    for i in sorted(packets):
        start = rel_seq[i] - 1  # relative sequence numbers count the SYN
        if seglen[i] and start <= end < start + seglen[i]:
            return i
    return sorted(packets)[-1] if len(packets) == 1 else None


def request_rows(index: EventIndex, ready: Callable[[], bool]) -> Callable[[int, str], FieldValue]:
    """The filter's request fields for `index`, built from the session when first asked once
    `ready` (a file fully indexed; live: any time), and again whenever the session has grown."""
    built: list[tuple[tuple[int, int], RequestRows]] = []

    def answer(ref: int, name: str) -> FieldValue:
        if not ready():
            return None
        key = (len(index.session.syscalls), len(index.session.analyzer.table))
        if not built or built[0][0] != key:
            built[:] = [(key, RequestRows(index, requests_of(index.session)))]
        return built[0][1].field(ref, name)

    return answer


class RequestsView(Vertical):
    """The legend of the bar's colours above the table of requests."""

    DEFAULT_CSS = """
    RequestsView { height: 1fr; }
    RequestsView > #requests-legend { height: auto; padding: 0 1; }
    """

    class Chosen(Message):
        def __init__(self, request_id: int) -> None:
            super().__init__()
            self.request_id = request_id

    def __init__(self, index: EventIndex, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index = index

    def compose(self) -> ComposeResult:
        yield Static(legend(), id="requests-legend")
        yield RequestTable(self.index, id="requests-table")

    def focus(self, scroll_visible: bool = True) -> RequestsView:
        self.query_one(RequestTable).focus(scroll_visible)
        return self

    @property
    def table(self) -> RequestTable:
        return self.query_one(RequestTable)


class RequestTable(DataTable[Text | str]):
    """Every request, in order of start; `s` sorts by total time, largest first."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Show in the timeline"),
        Binding("s", "sort", "Sort by time / start"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g,home", "scroll_top", "First", show=False),
        Binding("G,end", "scroll_bottom", "Last", show=False),
    ]
    DEFAULT_CSS = """
    RequestTable { height: 1fr; }
    """

    def __init__(self, index: EventIndex, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.index = index
        self.requests = requests_of(index.session)
        self.by_total = False

    def on_mount(self) -> None:
        self.fill()

    @property
    def bar_width(self) -> int:
        return 40 if self.app.size.width >= 160 else 24 if self.app.size.width >= 120 else 14

    def fill(self) -> None:
        self.clear(columns=True)
        wide = self.app.size.width >= 120
        # Under 120 columns the protocol and the server give way to the bar and the part.
        self.add_columns(*(("#", "proto", "request") if wide else ("#", "request")), "total", "split", "longest")
        if wide:
            self.add_column("server")
        reqs = self.requests
        if self.by_total:
            reqs = sorted(reqs, key=lambda r: -(r.total_ns or -1))
        width = 60 if wide else 22
        slowest = max((r.total_ns or 0 for r in reqs), default=0)
        bar = self.bar_width
        for req in reqs:
            longest = req.dominant()
            cells: list[Text | str] = [
                str(req.id),
                *((req.protocol,) if wide else ()),
                _cut(req.summary, width),
                fmt_ns(req.total_ns) if req.total_ns is not None else "no answer",
                waterfall(req, bar, bar_length(req.total_ns or 0, slowest, bar)),
                Text(f"{longest[0]} {fmt_ns(longest[1])}", style=PART_STYLES.get(longest[0], "")) if longest else "-",
            ]
            if wide:
                cells.append(req.server)
            self.add_row(*cells, key=str(req.id))
        order = "longest first" if self.by_total else "in order of start"
        self.border_title = f"{len(reqs)} requests, {order}"

    def action_sort(self) -> None:
        self.by_total = not self.by_total
        self.fill()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(RequestsView.Chosen(int(event.row_key.value)))

    def text_lines(self) -> list[str]:
        """The rows as the table holds them, for tests."""
        return ["  ".join(str(cell) for cell in self.get_row_at(i)) for i in range(self.row_count)]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
