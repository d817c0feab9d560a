"""TIME_WAIT accumulation on the active closer, and the ephemeral-port exhaustion it leads to.

The end that closes first keeps the 4-tuple in TIME_WAIT for 60 s. On a client that means
its ephemeral port towards that server stays taken, so a client that opens and closes
connections faster than 60 s / (ports in range) runs out and connect() fails with
EADDRNOTAVAIL. The wire shows who closed first and when each TIME_WAIT began; the port
range is this host's setting at analysis time unless the caller says otherwise, since a
capture does not record it. A RST that reaches the TIME_WAIT end ends it early (Linux
follows RFC 1337's "assassination" unless net.ipv4.tcp_rfc1337 is set), so such a
connection counts as a close but no longer holds its port.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from wirecorr.engine.connections import CLIENT, CLOSED, FIN_WAIT_1, RESET, TIME_WAIT, Connection
from wirecorr.engine.findings._base import ERROR, WARNING, Context, call_text, evidence
from wirecorr.engine.socket_map import endpoint_key
from wirecorr.model import Finding, Syscall, fmt_ns, format_endpoint, format_ip

KIND = "time_wait_accumulation"
EXHAUSTION = "ephemeral_port_exhaustion"
KINDS = (KIND, EXHAUSTION)


@dataclass(slots=True)
class _Closed:
    conn: Connection
    ts: int  # entered TIME_WAIT
    fin: int | None  # the closer's first FIN
    ended: int | None  # left TIME_WAIT early, on a RST


def detect(ctx: Context) -> Iterator[Finding]:
    groups: dict[tuple[int, bytes, bytes, int], list[_Closed]] = {}
    for conn in ctx.connections:
        if conn.proto != "tcp" or conn.active_closer is None:
            continue
        side = 0 if conn.active_closer == CLIENT else 1
        history = conn.state_of(conn.active_closer)
        tw = next((ts for ts, _, state in history if state == TIME_WAIT), None)
        if tw is None:
            continue
        fin = next((idx for _, idx, state in history if state == FIN_WAIT_1), None)
        # Out of TIME_WAIT only a RST takes a side (see tcp_analysis._track_state).
        ended = next((ts for ts, _, state in history if state == CLOSED and ts >= tw), None)
        addr = conn.client_addr if side == 0 else conn.server_addr
        closed = _Closed(conn, tw, fin, ended)
        groups.setdefault((side, addr, conn.server_addr, conn.server_port), []).append(closed)
    low, high = ctx.port_range()
    size = high - low + 1
    for (side, addr, server_addr, server_port), closed in groups.items():
        window = _busiest_window(closed, ctx.thresholds.time_wait_window_ns)
        count = len(window)
        early = sum(1 for c in window if c.ended is not None)
        in_range = sum(1 for c in window if c.ended is None and low <= c.conn.client_port <= high) if side == 0 else 0
        if count < ctx.thresholds.time_wait_min and in_range < ctx.thresholds.time_wait_range_fraction * size:
            continue
        server = format_endpoint(server_addr, server_port)
        span = window[-1].ts - window[0].ts
        if side == 0:
            head = f"client {format_ip(addr)} actively closed {count} connections to {server} within {fmt_ns(span)}"
            cost = (
                f"each keeps its ephemeral port for {fmt_ns(ctx.thresholds.time_wait_window_ns)} in TIME_WAIT: "
                f"{in_range} of the {size} ports in {low}-{high} taken, {size - in_range} left towards that server"
            )
        else:
            head = f"server {server} actively closed {count} connections within {fmt_ns(span)}"
            cost = (
                f"{count - early} sockets sit in TIME_WAIT on the server "
                f"for {fmt_ns(ctx.thresholds.time_wait_window_ns)}"
            )
        if early:
            cost += f"; {early} of them left TIME_WAIT early, reset by the peer (RFC 1337 assassination)"
        yield Finding(
            kind=KIND,
            severity=WARNING,
            message=f"{head}; {cost}",
            connection=None,
            evidence=_closer_evidence(ctx, window),
        )
    yield from _exhaustion(ctx, groups, low, high)


def _busiest_window(closed: list[_Closed], window_ns: int) -> list[_Closed]:
    """The most TIME_WAIT entries that fall in one window: the ones that coexisted."""
    closed = sorted(closed, key=lambda c: c.ts)
    best = (0, 0)
    lo = 0
    for hi in range(len(closed)):
        while closed[hi].ts - closed[lo].ts >= window_ns:
            lo += 1
        if hi + 1 - lo > best[1] - best[0]:
            best = (lo, hi + 1)
    return closed[best[0] : best[1]]


def _closer_evidence(ctx: Context, closed: list[_Closed]) -> dict[str, list[int]]:
    """The closers' FINs and, where traced, the close()/shutdown() calls that sent them."""
    fins = {c.fin for c in closed if c.fin is not None}
    links = [lk for lk in ctx.links if lk.kind in ("close-fin", "shutdown-fin") and fins.intersection(lk.packets)]
    return evidence([lk.syscall for lk in links], sorted(fins), [lk.id for lk in links], [c.conn.id for c in closed])


def _exhaustion(
    ctx: Context, groups: dict[tuple[int, bytes, bytes, int], list[_Closed]], low: int, high: int
) -> Iterator[Finding]:
    failed: dict[tuple[bytes, int], list[Syscall]] = {}
    for sc in ctx.syscalls:
        if sc.name == "connect" and sc.errno == "EADDRNOTAVAIL":
            target = endpoint_key(sc.args.get("addr"))
            if target is not None:
                failed.setdefault(target, []).append(sc)
    for (server_addr, server_port), calls in failed.items():
        first = calls[0]
        at = first.enter_ns
        waiting = [
            c
            for (side, _, s_addr, s_port), closed in groups.items()
            if side == 0 and (s_addr, s_port) == (server_addr, server_port)
            for c in closed
            if c.ts <= at < c.ts + ctx.thresholds.time_wait_window_ns
            and (c.ended is None or at < c.ended)
            and low <= c.conn.client_port <= high
        ]
        open_ = [
            conn
            for conn in ctx.connections
            if conn.proto == "tcp"
            and (conn.server_addr, conn.server_port) == (server_addr, server_port)
            and low <= conn.client_port <= high
            and conn.first_ts_ns <= at
            and not any(ts <= at and state in (TIME_WAIT, CLOSED, RESET) for ts, _, state in conn.client_state)
        ]
        server = format_endpoint(server_addr, server_port)
        size = high - low + 1
        ports = sorted(c.conn.client_port for c in waiting) + sorted(c.client_port for c in open_)
        held = len(ports)
        taken = f"all {size}" if held >= size else f"{held} of the {size}"
        message = (
            f"connect() to {server} failed with EADDRNOTAVAIL {len(calls)} time(s) from {ctx.at(at)} "
            f"(first: {call_text(first)}): no local port left — at the first failure {taken} ports of "
            f"{low}-{high} were held by connections to {server}, {len(waiting)} in TIME_WAIT and "
            f"{len(open_)} not yet closed"
        )
        if 0 < held < size:
            message += (
                f"; the failing host's range must be narrower than this one (ports seen: {min(ports)}-{max(ports)})"
            )
        ev = _closer_evidence(ctx, waiting)
        ev["syscalls"] = sorted({*ev["syscalls"], *(sc.id for sc in calls)})
        ev["connections"] = sorted({*ev["connections"], *(c.id for c in open_)})
        yield Finding(kind=EXHAUSTION, severity=ERROR, message=message, connection=None, evidence=ev)
