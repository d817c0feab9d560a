"""CLOSE_WAIT leak: the peer closed, this end's app did not.

The wire says when a side entered CLOSE_WAIT (the peer's FIN arrived) and when it left it
(its own FIN or an RST). Only the app can end CLOSE_WAIT, by closing the socket, so a side
that stays there past the threshold — or until the input ends, when that comes first — is
an app that lost track of the descriptor; the trace names the descriptor and shows that
the app even read the EOF (read() == 0) and still kept it. The peer meanwhile waits in
FIN_WAIT_2, which is why the finding names it too.
"""

from __future__ import annotations

from collections.abc import Iterator

from wirecorr.engine.connections import CLIENT, CLOSE_WAIT, FIN_WAIT_2, LAST_ACK, SERVER, Connection
from wirecorr.engine.findings._base import WARNING, Context, Thresholds, call_text, endpoint_of, evidence, side_name
from wirecorr.model import Finding, Link, fmt_ns

KIND = "close_wait_leak"


def keeps_data(conn: Connection, links: list[Link], thresholds: Thresholds) -> bool:
    """A leak names the side's first call, which may be a transfer (a socket open before tracing)."""
    for side in (CLIENT, SERVER):
        history = conn.state_of(side)
        at = next((i for i, change in enumerate(history) if change[2] == CLOSE_WAIT), None)
        held = history[at + 1][0] - history[at][0] if at is not None and at + 1 < len(history) else None
        if at is not None and (held is None or held > thresholds.close_wait_ns):
            return True
    return False


def detect(ctx: Context) -> Iterator[Finding]:
    for conn in ctx.connections:
        if conn.proto != "tcp":
            continue
        for side in (0, 1):
            found = _leak(ctx, conn, side)
            if found is not None:
                yield found


def _leak(ctx: Context, conn: Connection, side: int) -> Finding | None:
    history = conn.state_of(side_name(side))
    at = next((i for i, change in enumerate(history) if change[2] == CLOSE_WAIT), None)
    if at is None:
        return None
    fin_ts, fin_idx, _ = history[at]
    left = history[at + 1] if at + 1 < len(history) else None
    limit = ctx.thresholds.close_wait_ns
    if left is not None and left[0] - fin_ts <= limit:
        return None
    peer = 1 - side
    who, other = side_name(side), side_name(peer)
    packets = [fin_idx]
    if left is None:
        held = f"for {fmt_ns(ctx.end_ns - fin_ts)} (still there when the input ended)"
    else:
        how = "closed" if left[2] == LAST_ACK else f"left by {left[2]}"
        held = f"for {fmt_ns(left[0] - fin_ts)} ({how} in frame {ctx.frame(left[1])})"
        packets.append(left[1])
    parts = [
        f"{who} {endpoint_of(conn, side)} sat in CLOSE_WAIT {held}: "
        f"the {other}'s FIN arrived in frame {ctx.frame(fin_idx)} at {ctx.at(fin_ts)}"
    ]
    calls = ctx.calls_of(conn.id, side)
    eofs = [sc for sc in calls if ctx.link_ids(sc, ("eof-fin",))]
    closes = [sc for sc in calls if sc.name == "close" and sc.errno is None]
    if eofs:
        eof = eofs[0]
        end = eof.end_ns
        parts.append(f"{call_text(eof)} returned 0 (EOF) {fmt_ns(max(end - fin_ts, 0))} later")
    listener = ctx.never_accepted(conn) if side == 1 else None
    if listener is not None:
        parts.append(f"the application never accepted it: it waited in the accept queue of {call_text(listener)}")
    if calls:
        fd = calls[0].ret if calls[0].name in ("accept", "accept4") else calls[0].fd
        if closes:
            parts.append(f"{call_text(closes[0])} came only at {ctx.at(closes[0].enter_ns)}")
        else:
            parts.append(f"pid {calls[0].pid} never closed fd {fd}")
    peer_states = [change for change in conn.state_of(other) if change[0] >= fin_ts]
    if any(change[2] == FIN_WAIT_2 for change in peer_states):
        still = conn.state_of(other)[-1][2] == FIN_WAIT_2
        parts.append(f"the {other} {endpoint_of(conn, peer)} {'waits' if still else 'waited'} in FIN_WAIT_2")
    evidence_calls = [*calls[:1], *eofs, *closes, *([listener] if listener else [])]
    links = [lid for sc in evidence_calls for lid in ctx.link_ids(sc, ("accept-ack", "connect-syn", "eof-fin"))]
    links += [lid for sc in closes for lid in ctx.link_ids(sc)]
    return Finding(
        kind=KIND,
        severity=WARNING,
        message="; ".join(parts),
        connection=conn.id,
        evidence=evidence([sc.id for sc in evidence_calls], packets, links, [conn.id]),
    )
