"""Zero window from a slow reader, and what it did to the writer on the other end.

A receiver advertises window 0 when its receive buffer is full, which happens when the app
stops calling read. The wire alone shows the window; the trace shows why (how long the
reader had not read) and what it cost (the writer's call that blocked, returned EAGAIN or
moved only part of its buffer while the window stayed shut). A reader that was reading
all along is not flagged: that is a busy receiver, not a stalled app.
"""

from __future__ import annotations

from collections.abc import Iterator

from wirecorr.engine.analysis_flags import AnalysisFlag
from wirecorr.engine.connections import Connection
from wirecorr.engine.findings._base import (
    WARNING,
    Context,
    Thresholds,
    call_text,
    endpoint_of,
    evidence,
    side_name,
)
from wirecorr.model import Finding, Link, Syscall, fmt_ns
from wirecorr.vocab import READINESS_CALLS, READS, WRITES

KIND = "zero_window"
_ZERO = int(AnalysisFlag.ZERO_WINDOW)


def keeps_data(conn: Connection, links: list[Link], thresholds: Thresholds) -> bool:
    return bool(conn.analysis_counts.get("zero_window"))


def detect(ctx: Context) -> Iterator[Finding]:
    table = ctx.session.analyzer.table
    for conn in ctx.connections:
        if conn.proto != "tcp" or not conn.analysis_counts.get("zero_window"):
            continue
        for side in (0, 1):
            zeros = [i for i in conn.packet_indices if table.analysis[i] & _ZERO and table.direction[i] == side]
            if zeros:
                found = _episode(ctx, conn, side, zeros)
                if found is not None:
                    yield found


def _episode(ctx: Context, conn: Connection, side: int, zeros: list[int]) -> Finding | None:
    table = ctx.session.analyzer.table
    first = zeros[0]
    start = table.ts_ns[first]
    reopen = next(
        (i for i in conn.packet_indices if i > first and table.direction[i] == side and table.window[i] > 0), None
    )
    stop = table.ts_ns[reopen] if reopen is not None else ctx.end_ns
    reader_calls = ctx.calls_of(conn.id, side)
    reads = [sc for sc in reader_calls if sc.name in READS and sc.errno is None]
    before = [sc for sc in reads if sc.end_ns <= start]
    after = [sc for sc in reads if sc.end_ns > start]
    gap_ns = ctx.thresholds.zero_window_read_gap_ns
    who = f"{side_name(side)} {endpoint_of(conn, side)}"
    parts = [
        f"the {who} advertised a zero window (frame {ctx.frame(first)}, {ctx.at(start)}) for {fmt_ns(stop - start)}"
        + (
            f" until frame {ctx.frame(reopen)} reopened it"
            if reopen is not None
            else " (still shut when the input ended)"
        )
    ]
    reader_evidence: list[Syscall] = []
    if reader_calls:
        # The stall spans the zero window: from the last read before it (or the socket's
        # first call) to the first read after it (or the end of input).
        since = before[-1].end_ns if before else reader_calls[0].end_ns
        until = after[0].enter_ns if after else ctx.end_ns
        if until - since < gap_ns:
            return None  # the app was reading: the receiver is busy, not stalled
        last = call_text(before[-1]) if before else f"{call_text(reader_calls[0])}, no read before it"
        nxt = f"next {call_text(after[0])} at {ctx.at(after[0].enter_ns)}" if after else "no read before the end"
        parts.append(f"the app did not read for {fmt_ns(until - since)} (last: {last}; {nxt}) — a slow reader")
        reader_evidence = [before[-1] if before else reader_calls[0], *after[:1]]
    else:
        parts.append("the reading app is not traced")
    # The writer feels the stall once its send buffer is full, which can be before the
    # window reaches 0: look from the moment the reader stopped reading.
    stalled_from = before[-1].end_ns if before else conn.first_ts_ns if reader_calls else start
    writer_calls = ctx.calls_of(conn.id, 1 - side)
    affected = [
        sc
        for sc in writer_calls
        if sc.name in WRITES and sc.enter_ns <= stop and sc.end_ns >= stalled_from and _held(sc, gap_ns)
    ]
    waits: list[Syscall] = []
    if affected:
        parts.append(f"the {side_name(1 - side)}'s {call_text(affected[0])} {_how(affected[0])}")
        waits = [
            sc
            for sc in ctx.syscalls
            if sc.name in READINESS_CALLS
            and sc.tid == affected[0].tid
            and stalled_from <= sc.enter_ns <= stop
            and sc.end_ns - sc.enter_ns >= gap_ns
        ][:1]
        if waits:
            parts[-1] += f", then waited {fmt_ns(waits[0].end_ns - waits[0].enter_ns)} in {waits[0].name}()"
        if len(affected) > 1:
            parts[-1] += f" ({len(affected)} such writes while the window was shut)"
    calls = [*reader_evidence, *affected, *waits]
    packets = [*zeros, *([reopen] if reopen is not None else [])]
    return Finding(
        kind=KIND,
        severity=WARNING,
        message="; ".join(parts),
        connection=conn.id,
        evidence=evidence(
            [sc.id for sc in calls], packets, [lid for sc in calls for lid in ctx.link_ids(sc)], [conn.id]
        ),
    )


def _held(sc: Syscall, blocked_ns: int) -> bool:
    """A write the full window held up: EAGAIN, partial, or blocked for long."""
    if sc.errno == "EAGAIN" or sc.exit_ns is None:
        return True
    count = sc.args.get("count")
    if isinstance(sc.ret, int) and isinstance(count, int) and 0 <= sc.ret < count:
        return True
    return sc.exit_ns - sc.enter_ns >= blocked_ns


def _how(sc: Syscall) -> str:
    if sc.errno == "EAGAIN":
        return "returned EAGAIN"
    if sc.exit_ns is None:
        return "blocked and never returned"
    count = sc.args.get("count")
    if isinstance(sc.ret, int) and isinstance(count, int) and sc.ret < count:
        return f"was partial: {sc.ret} of {count} bytes"
    return f"blocked for {fmt_ns(sc.exit_ns - sc.enter_ns)}"
