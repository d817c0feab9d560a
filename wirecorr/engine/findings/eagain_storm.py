"""EAGAIN storm: a non-blocking socket polled by retrying the call instead of waiting.

EAGAIN is the normal answer of a non-blocking socket; what is wrong is asking again at
once, over and over, without a poll/select/epoll wait in between — the thread spins on a
CPU and, traced, floods the trace. A run is the EAGAIN results of one thread on one fd
with no readiness wait of that thread between them (successful calls do not end a run:
a spinning reader still spins between its reads).
"""

from __future__ import annotations

from collections.abc import Iterator

from wirecorr.engine.findings._base import WARNING, Context, call_text, evidence
from wirecorr.model import Finding, Syscall, fmt_ns

KIND = "eagain_storm"


def detect(ctx: Context) -> Iterator[Finding]:
    runs: dict[tuple[int, int], list[list[Syscall]]] = {}
    for sc in ctx.syscalls:
        if sc.errno != "EAGAIN" or sc.fd is None:
            continue
        seq = runs.setdefault((sc.tid, sc.fd), [])
        if seq and not ctx.waited_between(sc.tid, seq[-1][-1].enter_ns, sc.enter_ns):
            seq[-1].append(sc)
        else:
            seq.append([sc])
    t = ctx.thresholds
    for run in (run for seq in runs.values() for run in seq):
        span = run[-1].enter_ns - run[0].enter_ns
        rate = (len(run) - 1) * 1e9 / span if span > 0 else float("inf")
        if len(run) < t.eagain_min_calls or rate < t.eagain_min_rate:
            continue
        first = run[0]
        names = sorted({sc.name for sc in run})
        message = (
            f"{call_text(first)} (tid {first.tid}) got EAGAIN {len(run)} times in {fmt_ns(span)} "
            f"({rate:.0f}/s, {'/'.join(names)}) from {ctx.at(first.enter_ns)} with no poll/select/epoll wait "
            "in between: the thread busy-waits instead of waiting for readiness"
        )
        cs = ctx.conn_side(first)
        yield Finding(
            kind=KIND,
            severity=WARNING,
            message=message,
            connection=cs[0] if cs else None,
            evidence=evidence([sc.id for sc in run], connections=[cs[0]] if cs else []),
        )
