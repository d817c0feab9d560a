"""Keep-alive probes: the kernel checking an idle connection, which the app asked for.

Not a fault, so "info": worth seeing because probes keep NAT and firewall state alive,
detect a dead peer after idle + interval * count, and are kernel-only packets no syscall
explains — the finding names the setsockopt calls that configured them where traced.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from itertools import pairwise

from wirecorr.engine.analysis_flags import AnalysisFlag
from wirecorr.engine.connections import Connection
from wirecorr.engine.findings._base import (
    INFO,
    KEEPALIVE_MIN_IDLE_NS,
    Context,
    Thresholds,
    call_text,
    endpoint_of,
    evidence,
    side_name,
)
from wirecorr.model import Finding, Link, fmt_ns

KIND = "keepalive"
_OPTIONS = frozenset({"SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"})


def keeps_data(conn: Connection, links: list[Link], thresholds: Thresholds) -> bool:
    """The fds of the connection's calls name the setsockopt calls that configured the probes."""
    return bool(conn.analysis_counts.get("keep_alive"))


def detect(ctx: Context) -> Iterator[Finding]:
    table = ctx.session.analyzer.table
    for conn in ctx.connections:
        if conn.proto != "tcp" or not conn.analysis_counts.get("keep_alive"):
            continue
        for d in (0, 1):
            probes = [
                i
                for at, i in enumerate(conn.packet_indices)
                if table.direction[i] == d
                and table.analysis[i] & AnalysisFlag.KEEP_ALIVE
                and at
                and table.ts_ns[i] - table.ts_ns[conn.packet_indices[at - 1]] >= KEEPALIVE_MIN_IDLE_NS
            ]
            if not probes:
                continue
            answers = [a for a in (_answer(conn.packet_indices, table.direction, p) for p in probes) if a is not None]
            before = conn.packet_indices[bisect.bisect_left(conn.packet_indices, probes[0]) - 1]
            idle = table.ts_ns[probes[0]] - table.ts_ns[before]
            gaps = [table.ts_ns[b] - table.ts_ns[a] for a, b in pairwise(probes)]
            every = (
                f", then every {fmt_ns(min(gaps))}"
                + (f"-{fmt_ns(max(gaps))}" if max(gaps) - min(gaps) > 1_000_000 else "")
                if gaps
                else ""
            )
            message = (
                f"the {side_name(d)} {endpoint_of(conn, d)} sent {len(probes)} keep-alive probe(s) "
                f"(frames {ctx.frames(probes)}), the first after {fmt_ns(idle)} idle{every}; "
                f"{len(answers)} answered by the {side_name(1 - d)}"
            )
            fds = {(sc.pid, sc.fd) for sc in ctx.calls_of(conn.id, d)}
            setup = [
                sc
                for sc in ctx.syscalls
                if sc.name == "setsockopt"
                and (sc.pid, sc.fd) in fds
                and sc.args.get("optname") in _OPTIONS
                and sc.enter_ns < table.ts_ns[probes[0]]
                and sc.enter_ns >= conn.first_ts_ns - 1_000_000_000
            ]
            if setup:
                opts = ", ".join(f"{sc.args.get('optname')}={sc.args.get('optval')}" for sc in setup)
                message += f"; configured by {call_text(setup[0])}: {opts}"
            yield Finding(
                kind=KIND,
                severity=INFO,
                message=message,
                connection=conn.id,
                evidence=evidence([sc.id for sc in setup], [*probes, *answers], connections=[conn.id]),
            )


def _answer(indices: Sequence[int], direction: Sequence[int], probe: int) -> int | None:
    """The peer's packet right after a probe: its ACK (Wireshark flags only some as keep-alive ACKs)."""
    at = bisect.bisect_right(indices, probe)
    if at < len(indices) and direction[indices[at]] != direction[probe]:
        return indices[at]
    return None
