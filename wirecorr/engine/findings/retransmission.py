"""Retransmissions, attributed to the connection and to the write that first carried the bytes.

Wireshark-style analysis flags a retransmitted segment; the correlator's byte-exact write
links already own it (a retransmission overlaps the stream offsets of the write whose
bytes it repeats), so the finding can name the app call and fd whose data had to be sent
again and how long after its first transmission.
"""

from __future__ import annotations

from collections.abc import Iterator

from wirecorr.engine.analysis_flags import ANY_RETRANSMISSION, SHORT_NAMES, AnalysisFlag
from wirecorr.engine.connections import Connection
from wirecorr.engine.findings._base import WARNING, Context, Thresholds, call_text, endpoint_of, evidence, side_name
from wirecorr.engine.packet_table import PacketTable
from wirecorr.engine.seq import M32
from wirecorr.model import Finding, Link, fmt_ns

KIND = "retransmission"
# Links whose packets the call itself sent, so a resent one is that call's data (or SYN/FIN).
_SENDING_KINDS = frozenset({"write-data", "connect-syn", "shutdown-fin", "close-fin"})
_RETRANS_FLAGS = (AnalysisFlag.RETRANSMISSION, AnalysisFlag.FAST_RETRANSMISSION, AnalysisFlag.SPURIOUS_RETRANSMISSION)
_RETRANS_NAMES = tuple(SHORT_NAMES[flag] for flag in _RETRANS_FLAGS)


def keeps_data(conn: Connection, links: list[Link], thresholds: Thresholds) -> bool:
    return any(name in conn.analysis_counts for name in _RETRANS_NAMES)


def detect(ctx: Context) -> Iterator[Finding]:
    table = ctx.session.analyzer.table
    packet_links = ctx.session.correlator.packet_links
    for conn in ctx.connections:
        # The analyzer's counts say which connections to scan packet by packet.
        if conn.proto != "tcp" or not any(name in conn.analysis_counts for name in _RETRANS_NAMES):
            continue
        for d in (0, 1):
            resent = [
                i for i in conn.packet_indices if table.direction[i] == d and table.analysis[i] & ANY_RETRANSMISSION
            ]
            if not resent:
                continue
            links = [
                ctx.link(lid) for i in resent for lid in packet_links.get(i, ()) if ctx.link(lid).kind in _SENDING_KINDS
            ]
            links = list({lk.id: lk for lk in links}.values())
            fast = sum(1 for i in resent if table.analysis[i] & AnalysisFlag.FAST_RETRANSMISSION)
            spurious = sum(1 for i in resent if table.analysis[i] & AnalysisFlag.SPURIOUS_RETRANSMISSION)
            kinds = ", ".join(f"{n} {what}" for n, what in ((fast, "fast"), (spurious, "spurious")) if n)
            message = (
                f"{len(resent)} retransmission(s){f' ({kinds})' if kinds else ''} by the {side_name(d)} "
                f"{endpoint_of(conn, d)} towards {endpoint_of(conn, 1 - d)}: frames {ctx.frames(resent)}"
            )
            originals: list[int] = []
            if links:
                lk = links[0]
                sc = ctx.syscall(lk.syscall)
                first_sent = [i for i in lk.packets if not table.analysis[i] & ANY_RETRANSMISSION]
                if sc is not None and first_sent:
                    again = next(i for i in resent if i in lk.packets)
                    what = "SYN" if lk.kind == "connect-syn" else "bytes"
                    orig = _original(table, first_sent, again)
                    after = fmt_ns(table.ts_ns[again] - table.ts_ns[orig])
                    message += (
                        f"; the {what} of {call_text(sc)} at {ctx.at(sc.enter_ns)} first left in frame "
                        f"{ctx.frame(orig)} and were sent again {after} later"
                    )
                    originals.append(orig)
                if len(links) > 1:
                    message += f" ({len(links)} calls' bytes resent in all)"
            else:
                message += " (the sending app is not traced)"
            yield Finding(
                kind=KIND,
                severity=WARNING,
                message=message,
                connection=conn.id,
                evidence=evidence(
                    [lk.syscall for lk in links], [*resent, *originals], [lk.id for lk in links], [conn.id]
                ),
            )


def _original(table: PacketTable, first_sent: list[int], again: int) -> int:
    """The first transmission of the bytes `again` repeats: a long write (sendfile) spans
    many segments, and the delay that matters is from the one that carried these bytes."""
    n = table.seglen[again]
    seq = table.rel_seq[again]
    for i in sorted(first_sent):
        m = table.seglen[i]
        if i < again and n and m and (((table.rel_seq[i] - seq) & M32) < n or ((seq - table.rel_seq[i]) & M32) < m):
            return i
    return first_sent[0]
