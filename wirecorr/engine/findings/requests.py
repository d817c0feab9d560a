"""Findings from requests (docs/requests.md): slow outliers and the part of their time that
dominated, head-of-line blocking on a connection carrying several requests, a request held
by Nagle + delayed ACK, DNS errors and retries, and a server that answered before it had
read the whole request."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from itertools import pairwise

from wirecorr.engine.analysis_flags import ANY_RETRANSMISSION
from wirecorr.engine.findings._base import INFO, NAGLE_ACK_GAP_NS, WARNING, Context, evidence
from wirecorr.engine.requests import Message, Request, requests_of
from wirecorr.model import Finding, fmt_ns

KINDS = ("slow_request", "head_of_line_blocking", "request_nagle_delay", "dns_error", "early_response")
# A request this many times the median of the others of its protocol, and at least
# SLOW_REQUEST_MIN_NS, is an outlier; the median needs SLOW_REQUEST_PEERS others.
SLOW_REQUEST_FACTOR = 5
SLOW_REQUEST_MIN_NS = 10_000_000
SLOW_REQUEST_PEERS = 3
# A request that waited this long, and for at least half its time, behind the response to
# an earlier request on its connection was blocked at the head of the line.
HOL_MIN_NS = 10_000_000


def detect(ctx: Context) -> Iterator[Finding]:
    reqs = requests_of(ctx.session)
    yield from _slow(ctx, reqs)
    yield from _head_of_line(ctx, reqs)
    for req in reqs:
        yield from _nagle(ctx, req)
        yield from _early(ctx, req)
        if req.protocol == "dns":
            yield from _dns(ctx, req)


def _evidence(req: Request) -> dict[str, list[int]]:
    return evidence(req.syscalls, req.packets, (), [req.conn])


def _slow(ctx: Context, reqs: list[Request]) -> Iterator[Finding]:
    by_proto: dict[str, list[Request]] = {}
    for r in reqs:
        if r.total_ns is not None:
            by_proto.setdefault(r.protocol, []).append(r)
    for group in by_proto.values():
        if len(group) <= SLOW_REQUEST_PEERS:
            continue
        times = sorted(r.total_ns or 0 for r in group)
        for r in group:
            total = r.total_ns or 0
            others = list(times)
            others.remove(total)
            median = statistics.median_low(others)
            if total < SLOW_REQUEST_MIN_NS or total < SLOW_REQUEST_FACTOR * max(median, 1):
                continue
            part = r.dominant()
            why = f"; most of it in {part[0]} ({fmt_ns(part[1])})" if part else ""
            yield Finding(
                kind="slow_request",
                severity=WARNING,
                message=(
                    f"{r.summary} on connection #{r.conn} to {r.server} took {fmt_ns(total)} at {ctx.at(r.start_ns)}, "
                    f"{total / max(median, 1):.0f} times the median {r.protocol} request ({fmt_ns(median)}){why}"
                ),
                connection=r.conn,
                evidence=_evidence(r),
            )


def _head_of_line(ctx: Context, reqs: list[Request]) -> Iterator[Finding]:
    by_conn: dict[int, list[Request]] = {}
    for r in reqs:
        if r.protocol != "dns":
            by_conn.setdefault(r.conn, []).append(r)
    for conn_reqs in by_conn.values():
        for prev, r in pairwise(conn_reqs):
            sent = r.points.get("request.wire.last")
            prev_done = prev.points.get("response.wire.last")
            if sent is None or prev_done is None or r.total_ns is None or prev_done <= sent:
                continue
            waited = prev_done - sent
            if waited < HOL_MIN_NS or 2 * waited < r.total_ns:
                continue
            yield Finding(
                kind="head_of_line_blocking",
                severity=WARNING,
                message=(
                    f"{r.summary} on connection #{r.conn} was on the wire at {ctx.at(sent)} but waited "
                    f"{fmt_ns(waited)} of its {fmt_ns(r.total_ns)} behind the response to {prev.summary} "
                    f"(done at {ctx.at(prev_done)}): one connection serves its requests in order"
                ),
                connection=r.conn,
                evidence=evidence(r.syscalls + prev.syscalls, r.packets + prev.packets, (), [r.conn]),
            )


def _nagle(ctx: Context, req: Request) -> Iterator[Finding]:
    """A segment of the message that left ≥ the Nagle threshold after the one before it
    (or after the write, for the first) right after a delayed ACK from the peer."""
    table = ctx.session.analyzer.table
    for msg, write_point in ((req.request, "client.write"), (req.response, "server.write")):
        if msg is None or req.protocol == "dns":
            continue
        segs = [i for i in msg.packets if not table.analysis[i] & ANY_RETRANSMISSION]
        prev_ts = req.points.get(write_point)
        for seg in segs:
            ts = table.ts_ns[seg]
            if prev_ts is not None and ts - prev_ts >= ctx.thresholds.nagle_delay_ns:
                ack = _ack_before(ctx, req.conn, msg.direction, seg)
                if ack is not None and table.ack_rtt_ns.get(ack, 0) >= ctx.thresholds.nagle_delay_ns:
                    yield _nagle_finding(ctx, req, msg, seg, ack, ts - prev_ts)
                    break
            prev_ts = ts


def _nagle_finding(ctx: Context, req: Request, msg: Message, seg: int, ack: int, held: int) -> Finding:
    which = "request" if msg.direction == 0 else "response"
    return Finding(
        kind="request_nagle_delay",
        severity=WARNING,
        message=(
            f"part of the {which} of {req.summary} on connection #{req.conn} (frame {ctx.frame(seg)}) was held "
            f"{fmt_ns(held)} until the peer's delayed ACK (frame {ctx.frame(ack)}): Nagle + delayed ACK; "
            f"TCP_NODELAY or one write per message avoids it"
        ),
        connection=req.conn,
        evidence=evidence(req.syscalls, [seg, ack], (), [req.conn]),
    )


def _ack_before(ctx: Context, cid: int, d: int, seg: int) -> int | None:
    table = ctx.session.analyzer.table
    indices = ctx.connections[cid].packet_indices
    best = None
    for i in indices:
        if i >= seg:
            break
        if table.direction[i] != d:
            best = i
    if best is not None and table.ts_ns[seg] - table.ts_ns[best] <= NAGLE_ACK_GAP_NS:
        return best
    return None


def _early(ctx: Context, req: Request) -> Iterator[Finding]:
    read, write = req.points.get("server.read"), req.points.get("server.write")
    first, last = req.points.get("response.wire.first"), req.points.get("request.wire.last")
    if req.response is None or req.protocol == "dns" or req.request.size <= 0:
        return
    if read is not None and write is not None:
        early = write < read
    elif first is not None and last is not None:
        early = first < last
    else:
        return
    if not early:
        return
    yield Finding(
        kind="early_response",
        severity=INFO,
        message=(
            f"the server answered {req.summary} on connection #{req.conn} before it had read the whole request "
            f"({req.request.size} B): the rest of the body may be read as the next request, or reset the connection"
        ),
        connection=req.conn,
        evidence=_evidence(req),
    )


def _dns(ctx: Context, req: Request) -> Iterator[Finding]:
    rcode = req.fields.get("dns.rcode")
    retries = req.fields.get("dns.retries", 0)
    problems = []
    if req.response is None:
        problems.append("got no answer")
    elif isinstance(rcode, int) and rcode != 0:
        problems.append(f"was answered {req.summary.rsplit('→ ', 1)[-1]} (rcode {rcode})")
    if retries:
        problems.append(f"was sent {1 + int(retries)} times")  # type: ignore[call-overload]
    if not problems:
        return
    yield Finding(
        kind="dns_error",
        severity=WARNING,
        message=f"DNS query {req.endpoint} (id {req.fields.get('dns.id')}) to {req.server} " + " and ".join(problems),
        connection=req.conn,
        evidence=_evidence(req),
    )
