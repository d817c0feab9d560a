"""One timeline row as styled text: time, who, side, link, delay, then the summary.

Fixed-width columns come first so the eye can run down them; the summary (strace-style
syscall line, tcpdump-style packet line) is last because its width varies. Only rows on
screen are ever formatted, and the timeline caches the result per row.
"""

from __future__ import annotations

import time

from rich.text import Text

from wirecorr.engine.analysis_flags import flag_names
from wirecorr.model import SYN, Packet, fmt_ns, format_flags
from wirecorr.views.syscall_format import format_syscall
from wirecorr.views.tui.index import IN, OUT, EventIndex
from wirecorr.views.tui.rows import is_syscall_ref, ref_pos

ERRORS_RED = frozenset({"ECONNRESET", "EPIPE", "ECONNREFUSED", "EAGAIN", "EWOULDBLOCK", "ETIMEDOUT", "EMFILE"})
SIDE_STYLE = {"app": "yellow", OUT: "cyan", IN: "green", "": "blue"}


def fmt_time(ts_ns: int, t0: int, absolute: bool) -> str:
    if absolute:
        secs, frac = divmod(ts_ns, 1_000_000_000)
        return time.strftime("%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}"
    return f"{(ts_ns - t0) / 1e9:+12.6f}"


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
    table = index.session.analyzer.table
    cid = table.conn[i]
    if cid < 0:
        return f"frame {i + 1}: no TCP/UDP connection"
    conn = index.session.analyzer.connections[cid]
    ports = (conn.client_port, conn.server_port) if table.direction[i] == 0 else (conn.server_port, conn.client_port)
    head = f"{ports[0]} → {ports[1]}"
    if conn.proto != "tcp":
        return f"{head} {conn.proto.upper()} len {table.seglen[i]}"
    flags = table.flags[i]
    text = f"{head} [{format_flags(flags)}] seq {table.rel_seq[i]} ack {table.rel_ack[i]} win {table.window[i]}"
    if table.seglen[i]:
        text += f" len {table.seglen[i]}"
    if flags & SYN:
        pkt = index.packets.get(i)
        if pkt is not None and (opts := fmt_options(pkt)):
            text += " " + opts
    if table.analysis[i]:
        text += "  " + ", ".join(flag_names(table.analysis[i]))
    return text


def row_text(index: EventIndex, ref: int, absolute: bool) -> Text:
    ts = index.ts(ref)
    text = Text(no_wrap=True, end="")
    findings = index.finding_refs.get(ref)
    text.append("!" if findings else " ", "bold magenta")
    text.append(fmt_time(ts, index.t0, absolute) + " ", "dim")
    links = index.links(ref)
    if is_syscall_ref(ref):
        sc = index.call(ref)
        who = f"{sc.pid}" if sc.tid == sc.pid else f"{sc.pid}/{sc.tid}"
        style = "bold red" if sc.errno in ERRORS_RED else "red" if sc.errno else "yellow"
        summary = format_syscall(sc)
        side = "app"
    else:
        who = f"#{ref_pos(ref) + 1}"
        side = index.side(ref)
        summary = packet_summary(index, ref_pos(ref))
        style = SIDE_STYLE[side] + (" dim" if index.kernel_only(ref) else "")
        if not links and (label := index.label(ref)) is not None:
            summary += f"  · {label}"
    text.append(f"{who:>13} ")
    text.append(f"{side or 'wire':<4}", SIDE_STYLE[side])
    marker = ",".join(f"L{link.id}" for link in links)
    if len(marker) > 7:
        marker = marker[:6] + "…"
    text.append(f"{marker:<8}", "bold")
    delay = next((link.delay_ns for link in links if link.delay_ns is not None), None)
    text.append(f"{fmt_ns(delay) if delay is not None else '':>9}  ", "dim")
    text.append(summary, style)
    return text
