"""Syscall → wire delays: one histogram per link kind, with percentiles and the outliers.

What the pairing is for, in one screen: how long a `write()`'s bytes waited before their
first segment left, how long a segment waited in the receive queue before a `read()` took
it, how long an accepted connection waited in the accept queue, how long a FIN waited for
the `read() = 0` that noticed it. Each kind gets a log-scale histogram (powers of two from
1 µs) and its p50/p90/p99/max; below, the slowest links of every kind, where `enter`
goes to the syscall in the timeline.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from wirecorr.model import Link, fmt_ns
from wirecorr.views.tui.index import EventIndex

# Link kind → what its delay measures, in the order a connection lives them.
KINDS = {
    "connect-syn": "connect() → SYN",
    "accept-ack": "handshake → accept() returns (accept queue)",
    "write-data": "write() → first segment",
    "send-datagram": "send() → datagram",
    "read-data": "segment → read() returns (receive queue)",
    "recv-datagram": "datagram → recv() returns",
    "shutdown-fin": "shutdown() → FIN",
    "close-fin": "close() → FIN",
    "eof-fin": "FIN → read() = 0",
}
OUTLIERS = 5
BAR_W = 30
# Lower bucket edges in ns: 1, 2, 5 µs, 10, 20, 50 µs … 500 s.
EDGES = [m * 10**e for e in range(3, 12) for m in (1, 2, 5)]


def _round_duration(ns: int) -> str:
    for unit, size in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if ns >= size:
            return f"{ns // size} {unit}"
    return f"{ns} ns"


@dataclass(frozen=True, slots=True)
class KindStats:
    kind: str
    delays: list[int]  # sorted
    slowest: list[Link]

    def percentile(self, p: float) -> int:
        return self.delays[min(int(p * len(self.delays)), len(self.delays) - 1)]


def delay_stats(links: list[Link]) -> list[KindStats]:
    by_kind: dict[str, list[Link]] = {}
    for link in links:
        if link.delay_ns is not None and link.delay_ns >= 0 and link.kind in KINDS:
            by_kind.setdefault(link.kind, []).append(link)
    out = []
    for kind in KINDS:
        group = by_kind.get(kind)
        if group:
            group.sort(key=lambda link: link.delay_ns or 0)
            out.append(KindStats(kind, [link.delay_ns or 0 for link in group], group[::-1][:OUTLIERS]))
    return out


def histogram(stats: KindStats) -> list[Text]:
    """Buckets on a 1-2-5 scale from 1 µs (1, 2, 5, 10, 20, 50 µs, …), empty ends left out."""
    buckets: dict[int, int] = {}
    for ns in stats.delays:
        bucket = max(bisect_right(EDGES, ns) - 1, 0)
        buckets[bucket] = buckets.get(bucket, 0) + 1
    lo, hi = min(buckets), max(buckets)
    peak = max(buckets.values())
    lines = []
    for b in range(lo, hi + 1):
        n = buckets.get(b, 0)
        bar = "█" * (round(n * BAR_W / peak) if n else 0)
        if n and not bar:
            bar = "▏"
        label = f"≥ {_round_duration(EDGES[b])}"
        line = Text(f"  {label:>12} ", style="dim")
        line.append(f"{bar:<{BAR_W}}", "cyan")
        line.append(f" {n}")
        lines.append(line)
    return lines


def describe(stats: list[KindStats]) -> Text:
    out = Text()
    if not stats:
        out.append("no link with a delay: nothing was paired (a capture without syscalls?)", "dim")
        return out
    for s in stats:
        out.append(f"{KINDS[s.kind]}", "bold")
        out.append(f"  [{s.kind}]  {len(s.delays)} links\n", "dim")
        out.append(
            f"  p50 {fmt_ns(s.percentile(0.5))}  p90 {fmt_ns(s.percentile(0.9))}"
            f"  p99 {fmt_ns(s.percentile(0.99))}  max {fmt_ns(s.delays[-1])}\n"
        )
        for line in histogram(s):
            out.append_text(line)
            out.append("\n")
        out.append("\n")
    return out


class DelayView(Vertical, can_focus=False):
    """The histograms (scrolling) above the table of the slowest links."""

    BINDINGS = [Binding("enter", "show", "Show in the timeline")]
    DEFAULT_CSS = """
    DelayView { height: 1fr; }
    DelayView > VerticalScroll { height: 2fr; }
    DelayView > DataTable { height: 1fr; border-top: solid $panel; }
    """

    class Chosen(Message):
        def __init__(self, syscall_id: int) -> None:
            super().__init__()
            self.syscall_id = syscall_id

    def __init__(self, index: EventIndex, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index = index
        self.stats = delay_stats(index.session.correlator.links)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(describe(self.stats), id="delay-histograms")
        table: DataTable[str] = DataTable(cursor_type="row", id="delay-outliers")
        yield table

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("delay", "kind", "link", "syscall", "frames")
        for s in self.stats:
            for link in s.slowest:
                ref = self.index.ref_of_call_id(link.syscall)
                call = self.index.call(ref).name if ref is not None else "?"
                frames = ", ".join(str(self.index.frame(i)) for i in link.packets[:4])
                table.add_row(
                    fmt_ns(link.delay_ns), s.kind, f"L{link.id}", f"{call} #{link.syscall}", frames,
                    key=str(link.syscall),
                )  # fmt: skip
        table.border_title = "slowest links (enter: show in the timeline)"

    def focus(self, scroll_visible: bool = True) -> DelayView:
        self.query_one(DataTable).focus(scroll_visible)
        return self

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Chosen(int(event.row_key.value)))

    def text(self) -> str:
        return describe(self.stats).plain
