"""Nagle / delayed-ACK stall: small writes held back until the peer's (delayed) ACK.

With Nagle on, a segment smaller than the MSS waits while earlier data is unacknowledged;
a peer in delayed-ACK mode answers only after its timer (40 ms on Linux). The pair turns a
request/response protocol into one round per 40 ms. The byte-exact write links make it
measurable: the write's bytes left the host ≈ 40 ms after the call, right after an ACK
from the peer arrived. TCP_NODELAY on the socket would have sent them at once.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from wirecorr.engine.analysis_flags import ANY_RETRANSMISSION, AnalysisFlag
from wirecorr.engine.connections import Connection
from wirecorr.engine.findings._base import (
    NAGLE_ACK_GAP_NS,
    WARNING,
    Context,
    Thresholds,
    call_text,
    endpoint_of,
    evidence,
    side_name,
)
from wirecorr.model import Finding, Link, Syscall, fmt_ns

KIND = "nagle_stall"
_FLOW_CONTROL = int(AnalysisFlag.WINDOW_UPDATE | AnalysisFlag.ZERO_WINDOW | AnalysisFlag.ZERO_WINDOW_PROBE_ACK)
# The MSS Linux assumes when the handshake did not say (RFC 1122's default is 536).
_DEFAULT_MSS = 536


def keeps_data(conn: Connection, links: list[Link], thresholds: Thresholds) -> bool:
    """A write that reached the wire late is a candidate stall."""
    limit = thresholds.nagle_delay_ns
    return any(lk.kind == "write-data" and lk.delay_ns is not None and lk.delay_ns >= limit for lk in links)


def detect(ctx: Context) -> Iterator[Finding]:
    table = ctx.session.analyzer.table
    nodelay = {
        (sc.pid, sc.fd): sc.enter_ns
        for sc in ctx.syscalls
        if sc.name == "setsockopt" and sc.args.get("optname") == "TCP_NODELAY" and sc.args.get("optval")
    }
    stalls: dict[tuple[int, int], list[tuple[Syscall, Link, int, int]]] = {}
    for link in ctx.links:
        if link.kind != "write-data" or link.delay_ns is None or link.delay_ns < ctx.thresholds.nagle_delay_ns:
            continue
        sc = ctx.syscall(link.syscall)
        if sc is None or nodelay.get((sc.pid, sc.fd), sc.enter_ns + 1) <= sc.enter_ns:
            continue
        sent = [i for i in link.packets if not table.analysis[i] & ANY_RETRANSMISSION]
        if not sent:
            continue
        seg = sent[0]
        cid, d = table.conn[seg], table.direction[seg]
        conn = ctx.connections[cid]
        peer_opts = conn.server_options if d == 0 else conn.client_options
        mss = peer_opts.mss if peer_opts is not None and peer_opts.mss else _DEFAULT_MSS
        if not isinstance(sc.ret, int) or sc.ret >= mss:
            continue
        ack = _ack_before(ctx, cid, d, seg)
        # Only a delayed ACK explains the hold; an ACK that reopened a shut window is flow control.
        if (
            ack is not None
            and table.ack_rtt_ns.get(ack, 0) >= ctx.thresholds.nagle_delay_ns
            and not table.analysis[ack] & _FLOW_CONTROL
        ):
            stalls.setdefault((cid, d), []).append((sc, link, seg, ack))
    for (cid, d), held in stalls.items():
        conn = ctx.connections[cid]
        first_sc = held[0][0]
        delays = sorted(link.delay_ns or 0 for _, link, _, _ in held)
        sizes = sorted(sc.ret for sc, _, _, _ in held if isinstance(sc.ret, int))
        ack = held[0][3]
        rtt = table.ack_rtt_ns[ack]
        delayed = f", itself sent {fmt_ns(rtt)} after the data it acknowledged: a delayed ACK"
        message = (
            f"{len(held)} small write(s) ({_span(sizes, ' B')}) by the {side_name(d)} {endpoint_of(conn, d)}, "
            f"first {call_text(first_sc)} at {ctx.at(first_sc.enter_ns)}, reached the wire only "
            f"{_span([fmt_ns(x) for x in delays], '')} after the call: Nagle held each until the "
            f"{side_name(1 - d)}'s ACK arrived (frame {ctx.frame(ack)}{delayed}); "
            f"TCP_NODELAY is not set on fd {first_sc.fd}"
        )
        yield Finding(
            kind=KIND,
            severity=WARNING,
            message=message,
            connection=cid,
            evidence=evidence(
                [sc.id for sc, _, _, _ in held],
                [p for _, _, seg, ack in held for p in (seg, ack)],
                [link.id for _, link, _, _ in held],
                [cid],
            ),
        )


def _ack_before(ctx: Context, cid: int, d: int, seg: int) -> int | None:
    """The peer's packet just before seg, if it arrived at most NAGLE_ACK_GAP_NS before it."""
    table = ctx.session.analyzer.table
    indices = ctx.connections[cid].packet_indices
    for i in reversed(indices[: bisect.bisect_left(indices, seg)]):
        if table.direction[i] != d:
            return i if table.ts_ns[seg] - table.ts_ns[i] <= NAGLE_ACK_GAP_NS else None
    return None


def _span(values: Sequence[object], unit: str) -> str:
    return f"{values[0]}{unit}" if values[0] == values[-1] else f"{values[0]}-{values[-1]}{unit}"
