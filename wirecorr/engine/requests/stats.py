"""Latency distributions of requests: per protocol and per endpoint, nearest-rank
percentiles (the value below which the given share of requests fall, one of the
measured values, never an interpolation)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from wirecorr.engine.requests.request import Request

PERCENTILES = (50, 90, 99)


def percentile(sorted_values: list[int], p: float) -> int | None:
    if not sorted_values:
        return None
    rank = max(math.ceil(p / 100 * len(sorted_values)), 1)
    return sorted_values[rank - 1]


@dataclass(slots=True)
class Group:
    """The requests of one protocol (endpoint None) or one endpoint of a server."""

    protocol: str
    server: str | None
    endpoint: str | None
    count: int
    answered: int
    p50_ns: int | None
    p90_ns: int | None
    p99_ns: int | None
    max_ns: int | None


def _group(protocol: str, server: str | None, endpoint: str | None, reqs: list[Request]) -> Group:
    times = sorted(r.total_ns for r in reqs if r.total_ns is not None)
    p50, p90, p99 = (percentile(times, p) for p in PERCENTILES)
    return Group(protocol, server, endpoint, len(reqs), len(times), p50, p90, p99, times[-1] if times else None)


def by_protocol(requests: list[Request]) -> list[Group]:
    found: dict[str, list[Request]] = {}
    for r in requests:
        found.setdefault(r.protocol, []).append(r)
    return [_group(p, None, None, rs) for p, rs in found.items()]


def by_endpoint(requests: list[Request]) -> list[Group]:
    found: dict[tuple[str, str, str], list[Request]] = {}
    for r in requests:
        found.setdefault((r.protocol, r.server, r.endpoint), []).append(r)
    groups = [_group(p, s, e, rs) for (p, s, e), rs in found.items()]
    groups.sort(key=lambda g: (-g.count, g.protocol, g.server or "", g.endpoint or ""))
    return groups


def slowest(requests: list[Request], n: int) -> list[Request]:
    answered = [r for r in requests if r.total_ns is not None]
    answered.sort(key=lambda r: -(r.total_ns or 0))
    return answered[:n]
