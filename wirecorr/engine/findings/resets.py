"""Resets: close() with unread data, refused connections, and RSTs in the middle of a stream.

The three look alike on the wire (one RST) and mean different things to the app, so the
correlator's links decide: a `close-rst` link is a close() that discarded received bytes
or aborted on purpose (SO_LINGER with a 0 s timeout; the peer may lose data it already
sent either way), a RST answering a SYN is a port nobody listens on, and any other RST of
an established connection is an abort (a crash, a middlebox, a process killed with
connections in its accept queue) that the peer learns about as ECONNRESET or EPIPE.

A RST after both ends finished an orderly close is none of these: it answers a segment
that reached a socket already gone — seen on Linux loopback when a delayed ACK leaves
right after the FIN, the TIME_WAIT end acknowledges it and the closed end resets that
(captures/stray-rst-after-close.pcap). Every byte was delivered and no call failed, so it
is no finding.
"""

from __future__ import annotations

from collections.abc import Iterator

from wirecorr.engine.connections import CLOSED, ESTABLISHED, TIME_WAIT, Connection
from wirecorr.engine.findings._base import WARNING, Context, Thresholds, call_text, endpoint_of, evidence, side_name
from wirecorr.engine.packet_table import PacketTable
from wirecorr.engine.seq import HALF, M32
from wirecorr.engine.socket_map import is_peek
from wirecorr.model import RST, SYN, Finding, Link, Syscall, fmt_ns

RST_ON_CLOSE = "rst_on_close"
REFUSED = "connection_refused"
RESET = "connection_reset"
KINDS = (RST_ON_CLOSE, REFUSED, RESET)
_CLOSED = frozenset({TIME_WAIT, CLOSED})


def keeps_data(conn: Connection, links: list[Link], thresholds: Thresholds) -> bool:
    """A reset's finding counts the bytes read before a close and names the calls that failed."""
    return conn.reset_by is not None


def detect(ctx: Context) -> Iterator[Finding]:
    table = ctx.session.analyzer.table
    close_rsts = {idx: lk for lk in ctx.links if lk.kind == "close-rst" for idx in lk.packets}
    refused_calls: set[int] = set()
    for conn in ctx.connections:
        if conn.proto != "tcp" or conn.reset_by is None:
            continue
        rst = next(i for i in conn.packet_indices if table.flags[i] & RST)
        if rst in close_rsts:
            yield _rst_on_close(ctx, conn, rst, close_rsts[rst].syscall)
        elif not any(state == ESTABLISHED for _, _, state in conn.client_state):
            found = _refused(ctx, conn, rst)
            refused_calls.update(found.evidence["syscalls"])
            yield found
        elif not _closed_before(conn, rst):
            yield _reset(ctx, conn, rst)
    # Refusals whose packets were not captured: the errno alone still says it.
    for sc in ctx.syscalls:
        if sc.name == "connect" and sc.errno == "ECONNREFUSED" and sc.id not in refused_calls:
            yield Finding(
                kind=REFUSED,
                severity=WARNING,
                message=f"{call_text(sc)} to {sc.args.get('addr')} failed with ECONNREFUSED at {ctx.at(sc.enter_ns)} "
                "(no packets of it captured): nothing listens on that port",
                evidence=evidence([sc.id]),
            )


def _closed_before(conn: Connection, rst: int) -> bool:
    """Both ends had reached TIME_WAIT or CLOSED through the FIN exchange before packet `rst`."""
    return all(
        any(idx < rst and state in _CLOSED for _, idx, state in history)
        for history in (conn.client_state, conn.server_state)
    )


def _peer_resets(ctx: Context, conn: Connection, side: int, rst: int) -> list[Syscall]:
    """The peer's calls that failed because of this RST (ECONNRESET/EPIPE, linked to it)."""
    return [
        sc
        for sc in ctx.calls_of(conn.id, 1 - side)
        if any(rst in lk.packets for lk in ctx.links_of(sc) if lk.kind == "reset")
    ]


def _rst_on_close(ctx: Context, conn: Connection, rst: int, close_id: int) -> Finding:
    table = ctx.session.analyzer.table
    side = table.direction[rst]
    close = next(sc for sc in ctx.calls_of(conn.id, side) if sc.id == close_id)
    delivered = _stream_bytes(
        table,
        [i for i in conn.packet_indices if table.direction[i] != side and table.ts_ns[i] <= close.enter_ns],
    )
    read = sum(
        sc.ret
        for sc in ctx.calls_of(conn.id, side)
        if isinstance(sc.ret, int)
        and sc.ret > 0
        and not is_peek(sc)
        and ctx.link_ids(sc, ("read-data",))
        and sc.enter_ns < close.enter_ns
    )
    unread = max(delivered - read, 0)
    peer_calls = _peer_resets(ctx, conn, side, rst)
    linger = _linger_zero(ctx.calls_of(conn.id, side), close)
    where = f"{call_text(close)} on the {side_name(side)} {endpoint_of(conn, side)}"
    if linger is not None:
        message = (
            f"{where} aborted the connection with RST (frame {ctx.frame(rst)}) instead of FIN: "
            f"{call_text(linger)} had set SO_LINGER with a 0 s timeout"
        )
        if unread:
            message += f", and {unread} received byte(s) were unread"
    else:
        what = f"with {unread} received byte(s) unread" if unread else "with received data unread"
        message = (
            f"{where} closed the socket {what} (read {read} of {delivered}): "
            f"the kernel sent RST (frame {ctx.frame(rst)}) instead of FIN"
        )
    message += f", so the {side_name(1 - side)} may lose data it had already sent"
    if peer_calls:
        message += f"; {call_text(peer_calls[0])} then failed with {peer_calls[0].errno}"
    calls = [close, *peer_calls] if linger is None else [linger, close, *peer_calls]
    return Finding(
        kind=RST_ON_CLOSE,
        severity=WARNING,
        message=message,
        connection=conn.id,
        evidence=evidence(
            [sc.id for sc in calls],
            [rst],
            [lid for sc in calls for lid in ctx.link_ids(sc, ("close-rst", "reset"))],
            [conn.id],
        ),
    )


def _stream_bytes(table: PacketTable, indices: list[int]) -> int:
    """Distinct stream bytes the segments carry: a retransmitted range counts once."""
    spans = []
    top = 0
    for i in indices:
        n = table.seglen[i]
        if n:
            start = top + ((table.rel_seq[i] - 1 - top + HALF) & M32) - HALF
            spans.append((start, start + n))
            top = max(top, start + n)
    total = 0
    reach = None
    for start, end in sorted(spans):
        if reach is not None and start < reach:
            start = reach
        if end > start:
            total += end - start
            reach = end
    return total


def _linger_zero(calls: list[Syscall], close: Syscall) -> Syscall | None:
    """The last setsockopt(SO_LINGER) before `close`, if it asked for an abortive close."""
    found = None
    for sc in calls:
        if sc.enter_ns >= close.enter_ns:
            break
        if sc.name == "setsockopt" and sc.args.get("optname") == "SO_LINGER" and sc.errno is None:
            found = sc
    if found is None:
        return None
    value = found.args.get("optval")
    return found if isinstance(value, dict) and value.get("onoff") and value.get("linger") == 0 else None


def _refused(ctx: Context, conn: Connection, rst: int) -> Finding:
    table = ctx.session.analyzer.table
    syns = [i for i in conn.packet_indices if table.flags[i] & SYN and table.direction[i] == 0 and i < rst]
    # A blocking connect() fails itself; a non-blocking one (EINPROGRESS) learns of the
    # refusal from a later call: getsockopt(SO_ERROR), or a read/write failing.
    connects = [
        sc
        for sc in ctx.syscalls
        if sc.name == "connect"
        and sc.errno in ("ECONNREFUSED", "EINPROGRESS")
        and (ctx.conn_side(sc) == (conn.id, 0) or any(rst in lk.packets for lk in ctx.links_of(sc)))
    ]
    reporters = [
        sc for sc in ctx.syscalls if any(rst in lk.packets and lk.kind == "connect-refused" for lk in ctx.links_of(sc))
    ]
    who = call_text(connects[0]) if connects else f"the client {conn.client}"
    took = fmt_ns(table.ts_ns[rst] - table.ts_ns[syns[0]]) if syns else "?"
    message = (
        f"{who} connecting to {conn.server} was refused: the SYN (frame {ctx.frame(syns[0]) if syns else '?'}) "
        f"was answered by RST (frame {ctx.frame(rst)}) {took} later — nothing listens on that port"
    )
    if reporters:
        # The call that named the error; a poll only woke with POLLERR before it.
        named = [sc for sc in reporters if sc.name not in ("poll", "ppoll")]
        told = (named or reporters)[0]
        if told.name in ("poll", "ppoll"):
            message += f"; {told.name}() woke with POLLERR at {ctx.at(told.enter_ns)}"
        else:
            how = "returned" if told.errno == "ECONNREFUSED" else "reported"
            message += f"; {told.name}() {how} ECONNREFUSED at {ctx.at(told.enter_ns)}"
    connects += [sc for sc in reporters if sc not in connects]
    return Finding(
        kind=REFUSED,
        severity=WARNING,
        message=message,
        connection=conn.id,
        evidence=evidence(
            [sc.id for sc in connects],
            [*syns, rst],
            [lid for sc in connects for lid in ctx.link_ids(sc, ("connect-syn", "connect-refused"))],
            [conn.id],
        ),
    )


def _reset(ctx: Context, conn: Connection, rst: int) -> Finding:
    table = ctx.session.analyzer.table
    side = table.direction[rst]
    sent = sum(table.seglen[i] for i in conn.packet_indices if i < rst and table.direction[i] == 0)
    received = sum(table.seglen[i] for i in conn.packet_indices if i < rst and table.direction[i] == 1)
    peer_calls = _peer_resets(ctx, conn, side, rst)
    listener = ctx.never_accepted(conn) if side == 1 else None
    if listener is not None:
        # The handshake completed in the kernel, but no accept() ever took the connection:
        # when the listening socket goes (closed, or its process exits) the queue is reset.
        message = (
            f"the server {conn.server} reset a connection its application never accepted (RST frame {ctx.frame(rst)}, "
            f"{fmt_ns(table.ts_ns[rst] - conn.first_ts_ns)} after the handshake, {sent} B from the client unread): "
            f"it waited in the accept queue of {call_text(listener)} until the listening socket was closed "
            "(by close() or its process exiting)"
        )
    else:
        message = (
            f"the {side_name(side)} {endpoint_of(conn, side)} reset the connection mid-stream "
            f"(RST frame {ctx.frame(rst)}, "
            f"{fmt_ns(table.ts_ns[rst] - conn.first_ts_ns)} after it began, after {sent} B client→server and "
            f"{received} B server→client)"
        )
    if peer_calls:
        message += f"; {call_text(peer_calls[0])} failed with {peer_calls[0].errno}"
    return Finding(
        kind=RESET,
        severity=WARNING,
        message=message,
        connection=conn.id,
        evidence=evidence(
            [sc.id for sc in [*([listener] if listener else []), *peer_calls]],
            [rst],
            [lid for sc in peer_calls for lid in ctx.link_ids(sc, ("reset",))],
            [conn.id],
        ),
    )
