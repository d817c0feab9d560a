"""One timeline row as styled text fitted to the pane: mark, time, who, direction, link,
delay, then the summary.

Fixed-width columns come first so the eye can run down them; the summary (strace-style
syscall line, tcpdump-style packet line) is last because its width varies. The columns
narrow with the pane (`Columns.for_width`) so that at 80 terminal columns the summary still
has half the line; what does not fit is cut with `…`, and a syscall keeps its result
(`= -1 EADDRNOTAVAIL`) ahead of its arguments' tail, because the result is what a reader
looks for. Only rows on screen are ever formatted, and the timeline caches the result.

Colours follow the meaning of Wireshark's default colouring rules (Bad TCP, TCP RST,
TCP SYN/FIN, UDP) in a terminal palette; `LEGEND` explains them in the help screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text

from wirecorr.engine.analysis_flags import AnalysisFlag, flag_names
from wirecorr.model import FIN, RST, SYN, Packet, fmt_ns, format_flags
from wirecorr.views.syscall_format import format_syscall
from wirecorr.views.tui.index import C2S, S2C, EventIndex
from wirecorr.views.tui.rows import is_syscall_ref, ref_pos

ERRORS_RED = frozenset({"ECONNRESET", "EPIPE", "ECONNREFUSED", "EAGAIN", "EWOULDBLOCK", "ETIMEDOUT", "EMFILE"})
DIR_STYLE = {"app": "yellow", C2S: "cyan", S2C: "green", "": "blue"}
ELLIPSIS = "…"

# Wireshark's "Bad TCP" rule: tcp.analysis.flags without the benign ones.
_BENIGN = AnalysisFlag.WINDOW_UPDATE | AnalysisFlag.KEEP_ALIVE | AnalysisFlag.KEEP_ALIVE_ACK | AnalysisFlag.REUSED_PORTS
BAD_TCP_STYLE = "bold #f78787 on #000000"
RST_STYLE = "bold #fffc9c on #a40000"
SYN_FIN_STYLE = "#12272e on #a0a0a0"
UDP_STYLE = "#70e0ff"
FINDING_MARK = ("!", "bold magenta")  # the row is a finding's own evidence
EVIDENCE_MARK = ("·", "magenta")  # the row is linked to a finding's evidence

LEGEND = (
    ("[bold #f78787 on #000000] bad TCP [/]", "retransmission, dup ACK, zero window, lost or out-of-order segment"),
    ("[bold #fffc9c on #a40000] RST [/]", "a reset"),
    ("[#12272e on #a0a0a0] SYN/FIN [/]", "connection set-up and tear-down"),
    ("[cyan]c→s[/] [green]s→c[/]", "packet from the client to the server / back (client: the end that sent the SYN)"),
    ("[yellow]app[/]", "a syscall of the traced program; [red]red[/]: it failed"),
    ("[dim]dim[/]", "kernel-only packet: no syscall caused or consumed it (reason after ·)"),
    ("[bold magenta]![/] [magenta]·[/]", "evidence of a finding / linked to such evidence"),
    ("L3", "link 3: this row and the rows linked to it (enter walks them)"),
    ("delay", "syscall → wire (or wire → syscall) delay of the row's link"),
)


# The engine's name for a pure ACK of the peer's FIN reads like a FIN that is also an ACK
# (what tcpdump calls [F.]); the views say what it is.
_LABEL_NAMES = {"fin-ack": "ack-of-fin"}


def kernel_label(label: str) -> str:
    """A kernel-only packet's reason as the views show it."""
    return _LABEL_NAMES.get(label, label)


def _flagged(index: EventIndex, i: int, label: str) -> bool:
    """The kernel's reason is already on the row as an analysis flag (`keep_alive` and the
    label `keep-alive`): said once is enough."""
    return label.replace("-", "_") in flag_names(index.session.analyzer.table.analysis[i])


def fmt_delay(ns: int, width: int) -> str:
    """`fmt_ns`, or with three significant digits when that is wider than the column:
    `50.6 ms` keeps its unit where `50.604 ms` would lose it to the cut."""
    text = fmt_ns(ns)
    if len(text) <= width:
        return text
    value, unit = text.split(" ")
    number = float(value)
    return f"{number:.{max(3 - len(str(int(number))), 0)}f} {unit}"


def fmt_time(ts_ns: int, t0: int, absolute: bool, *, short: bool = False) -> str:
    if absolute:
        secs, frac = divmod(ts_ns, 1_000_000_000)
        clock = time.strftime("%H:%M:%S", time.gmtime(secs))
        return clock + (f".{frac // 1000:06d}" if short else f".{frac:09d}")
    return f"{(ts_ns - t0) / 1e9:.6f}"


@dataclass(frozen=True, slots=True)
class Columns:
    """Widths of the fixed columns; the summary takes the rest of `width`."""

    width: int
    time: int
    who: int
    link: int
    delay: int
    short: bool

    @classmethod
    def for_width(cls, width: int, absolute: bool) -> Columns:
        short = width < 110
        time_w = (15 if short else 18) if absolute else (10 if short else 12)
        return cls(width, time_w, 7 if short else 12, 5 if short else 8, 8 if width >= 60 else 0, short)

    @property
    def summary(self) -> int:
        fixed = 2 + self.time + 1 + self.who + 1 + 3 + 1 + self.link + 1 + (self.delay + 1 if self.delay else 0)
        return max(self.width - fixed, 0)


def fit(text: str, width: int) -> str:
    """`text` in at most `width` cells, cut with `…` when it does not fit."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


def fit_call(line: str, width: int) -> str:
    """A syscall line in `width` cells, cutting the arguments before the result."""
    if len(line) <= width:
        return line
    head, sep, result = line.rpartition(" = ")
    if not sep:
        return fit(line, width)
    tail = f"{ELLIPSIS}) = {result}"
    room = width - len(tail)
    name_end = head.find("(") + 1
    if room < name_end:  # not even the name and the result: the result first
        return fit(f"{head[: head.find('(')]} = {result}", width)
    return head[:room] + tail


def header(cols: Columns, view: TimeView | None = None) -> Text:
    text = Text(no_wrap=True, end="")
    text.append("  ")
    title = "time"
    if view is not None and view.delta:
        title = "Δ shown"
    elif view is not None and view.reference is not None and not view.absolute:
        title = "time (ref)"
    text.append(f"{title:<{cols.time}} ")
    text.append(f"{'pid/#fr' if cols.short else 'pid / #frame':>{cols.who}} ")
    text.append("dir ")
    text.append(f"{'link':<{cols.link}} ")
    if cols.delay:
        text.append(f"{'delay':>{cols.delay}} ")
    text.append("event")
    # A span, not the Text's style: the timeline draws lines with `Text.render`, which
    # leaves a Text's own style out.
    text.stylize("bold")
    return text


def fmt_options(pkt: Packet) -> str:
    parts = []
    if pkt.mss is not None:
        parts.append(f"mss {pkt.mss}")
    if pkt.sack_perm:
        parts.append("sack_perm")
    if pkt.ts_val is not None:
        parts.append("ts")
    if pkt.wscale is not None:
        parts.append(f"wscale {pkt.wscale}")
    return " ".join(parts)


def packet_summary(index: EventIndex, i: int) -> str:
    """tcpdump's line, with the analysis flags ahead of the options (they matter more)."""
    table = index.session.analyzer.table
    cid = table.conn[i]
    if cid < 0:
        return f"frame {index.frame(i)}: no TCP/UDP connection"
    conn = index.session.analyzer.connections[cid]
    ports = (conn.client_port, conn.server_port) if table.direction[i] == 0 else (conn.server_port, conn.client_port)
    head = f"{ports[0]} → {ports[1]}"
    if conn.proto != "tcp":
        return f"{head} {conn.proto.upper()} len {table.seglen[i]}"
    flags = table.flags[i]
    text = f"{head} [{format_flags(flags)}]"
    if table.analysis[i]:
        text += " " + ", ".join(flag_names(table.analysis[i]))
    text += f" seq {table.rel_seq[i]} ack {table.rel_ack[i]} win {table.window[i]}"
    if table.seglen[i]:
        text += f" len {table.seglen[i]}"
    if flags & SYN:
        pkt = index.packets.get(i)
        if pkt is not None and (opts := fmt_options(pkt)):
            text += " " + opts
    return text


def packet_style(index: EventIndex, i: int, direction: str, kernel_only: bool) -> str:
    """Wireshark's default colouring rules, first match wins: Bad TCP, RST, SYN/FIN, then
    the protocol; a kernel-only packet without any of those is dimmed."""
    table = index.session.analyzer.table
    cid = table.conn[i]
    if cid >= 0 and index.session.analyzer.connections[cid].proto != "tcp":
        return UDP_STYLE
    if table.analysis[i] & ~_BENIGN:
        return BAD_TCP_STYLE
    flags = table.flags[i]
    if flags & RST:
        return RST_STYLE
    if flags & (SYN | FIN):
        return SYN_FIN_STYLE
    return DIR_STYLE[direction] + (" dim" if kernel_only else "")


@dataclass(frozen=True, slots=True)
class TimeView:
    """How the time column reads: since `t0` (the first row, or a time reference set with
    ctrl+t), absolute, or since the row shown above (`delta`, Wireshark's delta displayed)."""

    absolute: bool = False
    delta: bool = False
    reference: int | None = None


def fmt_row_time(ts: int, index: EventIndex, view: TimeView, prev_ts: int | None, *, short: bool) -> str:
    if view.delta:
        return f"+{(ts - prev_ts) / 1e9:.6f}" if prev_ts is not None else "+0.000000"
    t0 = view.reference if view.reference is not None else index.t0
    return fmt_time(ts, t0, view.absolute, short=short)


def mark(index: EventIndex, ref: int) -> tuple[str, str]:
    """`!` for a finding's own evidence, `·` for rows only linked to it, else blank."""
    if ref in index.finding_refs:
        return FINDING_MARK if ref in index.finding_direct else EVIDENCE_MARK
    return (" ", "")


def row_text(
    index: EventIndex,
    ref: int,
    absolute: bool | TimeView,
    cols: Columns | None = None,
    *,
    prev_ts: int | None = None,
    marked: bool = False,
) -> Text:
    """The row in `cols.width` cells (its full text when `cols` is None); `marked`: the
    user's mark (m) is on it; `prev_ts`: the time of the row shown above, for delta times."""
    view = absolute if isinstance(absolute, TimeView) else TimeView(absolute=absolute)
    ts = index.ts(ref)
    text = Text(no_wrap=True, end="")
    short = cols.short if cols is not None else False
    symbol, symbol_style = mark(index, ref)
    text.append(symbol, symbol_style)
    text.append("*" if marked else " ", "bold yellow")
    links = index.links(ref)
    if is_syscall_ref(ref):
        sc = index.call(ref)
        who = f"{sc.pid}" if sc.tid == sc.pid or short else f"{sc.pid}/{sc.tid}"
        style = "bold red" if sc.errno in ERRORS_RED else "red" if sc.errno else "yellow"
        summary = format_syscall(sc)
        direction = "app"
    else:
        i = ref_pos(ref)
        who = f"#{index.frame(i)}"
        direction = index.direction(ref)
        summary = packet_summary(index, i)
        if (crossing := index.crossings.get(i)) is not None:  # a merged recording's crossing, shown once
            _, sender, receiver = crossing
            one_way = index.one_way_ns(i)
            hosts = f"→{receiver}" if short else f"{sender}→{receiver}"  # narrow: the sender is the row's direction
            summary = f"{hosts} {fmt_ns(one_way)} · {summary}"
        style = packet_style(index, i, direction, index.kernel_only(ref))
        if not links and isinstance(label := index.label(ref), str) and not _flagged(index, i, label):
            summary += f"  · {kernel_label(label)}"
    marker = ",".join(f"L{link.id}" for link in links)
    delay = next((link.delay_ns for link in links if link.delay_ns is not None), None)
    delay_text = fmt_ns(delay) if delay is not None else ""
    if cols is None:
        text.append(fmt_row_time(ts, index, view, prev_ts, short=False) + " ", "dim")
        text.append(f"{who} ")
        text.append(f"{direction or '-'} ", DIR_STYLE[direction])
        if marker:
            text.append(marker + " ", "bold")
        if delay_text:
            text.append(delay_text + " ", "dim")
        text.append(summary, style)
        return text
    time_text = fmt_row_time(ts, index, view, prev_ts, short=short)
    text.append(f"{fit(time_text, cols.time):>{cols.time}} ", "dim")
    text.append(f"{fit(who, cols.who):>{cols.who}} ")
    text.append(f"{direction or '-':<3} ", DIR_STYLE[direction])
    text.append(f"{fit(marker, cols.link):<{cols.link}} ", "bold")
    if cols.delay:
        short_delay = fmt_delay(delay, cols.delay) if delay is not None else ""
        text.append(f"{fit(short_delay, cols.delay):>{cols.delay}} ", "dim")
    body = fit_call(summary, cols.summary) if is_syscall_ref(ref) else fit(summary, cols.summary)
    text.append(body, style)
    return text
