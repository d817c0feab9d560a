"""`[requests]` rules (docs/checks.md): how many requests, how fast, and what they got.

A table selects requests by `protocol`, `endpoint` (a glob on `Request.endpoint`, e.g.
`"GET /api/*"`) and the server's `port`, then asserts on them. The records checked are
`analyze --json`'s `requests` (`json_report.request_record`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from wirecorr.engine.requests import Request, requests_of
from wirecorr.engine.requests.dns import RCODES
from wirecorr.engine.requests.stats import percentile
from wirecorr.model import fmt_ns
from wirecorr.views.checks.evaluation import EVIDENCE_IDS, Bound, Facts, Result

SELECTORS = ("protocol", "endpoint", "port")
LIMITS = {"max_latency_ms": 100, "p50_ms": 50, "p90_ms": 90, "p99_ms": 99}
COUNTS = ("count", "errors", "unanswered")
ASSERTIONS = (*LIMITS, *COUNTS, "status")


def status_of(req: Request) -> str:
    """The outcome `status` rules compare: the HTTP status code, the DNS rcode's name,
    "error" or "ok" for Redis and PostgreSQL, "none" without an answer."""
    if req.response is None:
        return "none"
    f = req.fields
    if req.protocol == "http":
        return str(f.get("http.status", "none"))
    if req.protocol == "dns":
        rcode = f.get("dns.rcode")
        return RCODES.get(rcode, str(rcode)) if isinstance(rcode, int) else "none"
    return "error" if "redis.error" in f or "pgsql.error" in f else "ok"


def is_error(req: Request) -> bool:
    """An answer that says the request failed: HTTP 5xx, a DNS rcode other than NOERROR,
    a Redis error reply, a PostgreSQL ErrorResponse."""
    status = status_of(req)
    if req.protocol == "http":
        return status.isdigit() and int(status) >= 500
    if req.protocol == "dns":
        return status not in ("NOERROR", "none")
    return status == "error"


def status_matches(status: str, wanted: list[str]) -> bool:
    return any(status == w or (len(w) == 3 and w.endswith("xx") and status[:1] == w[0]) for w in wanted)


class Selection:
    def __init__(self, protocol: str | None, endpoint: str | None, port: int | None) -> None:
        self.protocol, self.endpoint, self.port = protocol, endpoint, port

    def pick(self, facts: Facts) -> list[Request]:
        out = []
        for r in requests_of(facts.session):
            if self.protocol is not None and r.protocol != self.protocol:
                continue
            if self.endpoint is not None and not fnmatch.fnmatchcase(r.endpoint, self.endpoint):
                continue
            if self.port is not None and r.server.rpartition(":")[2] != str(self.port):
                continue
            out.append(r)
        return out

    def describe(self) -> str:
        parts = [self.protocol or "", self.endpoint or "", f"port {self.port}" if self.port is not None else ""]
        return " ".join(p for p in parts if p) or "all"


def _evidence(result: Result, reqs: list[Request]) -> Result:
    for r in reqs[:EVIDENCE_IDS]:
        split = ", ".join(f"{name} {fmt_ns(ns)}" for name, ns in r.split)
        result.notes.append(
            f"request {r.id} #{r.conn} {r.summary}: {fmt_ns(r.total_ns)}" + (f" ({split})" if split else "")
        )
        result.syscalls += r.syscalls
        result.packets += r.packets
    return result


def limit_rule(sel: Selection, key: str, limit_ms: float) -> Callable[[Facts], Result]:
    limit_ns = limit_ms * 1e6

    def check(facts: Facts) -> Result:
        reqs = sel.pick(facts)
        timed = sorted((r for r in reqs if r.total_ns is not None), key=lambda r: -(r.total_ns or 0))
        if not timed:
            return Result("", False, f"no answered request ({sel.describe()})")
        if key == "max_latency_ms":
            over = [r for r in timed if (r.total_ns or 0) > limit_ns]
            summary = f"worst {fmt_ns(timed[0].total_ns)} of {len(timed)}, want ≤ {limit_ms:g} ms"
            if not over:
                return Result("", True, summary)
            return _evidence(Result("", False, f"{len(over)} over the limit; {summary}"), over)
        value = percentile(sorted(r.total_ns or 0 for r in timed), LIMITS[key])
        summary = f"p{LIMITS[key]} {fmt_ns(value)} of {len(timed)}, want ≤ {limit_ms:g} ms"
        if value is not None and value <= limit_ns:
            return Result("", True, summary)
        return _evidence(Result("", False, summary), [r for r in timed if (r.total_ns or 0) > limit_ns])

    return check


def count_rule(sel: Selection, key: str, bound: Bound) -> Callable[[Facts], Result]:
    def check(facts: Facts) -> Result:
        reqs = sel.pick(facts)
        if key == "errors":
            reqs = [r for r in reqs if is_error(r)]
        elif key == "unanswered":
            reqs = [r for r in reqs if r.response is None]
        ok = bound.holds(len(reqs))
        result = Result("", ok, f"{len(reqs)}, want {bound.describe()}")
        return result if ok else _evidence(result, reqs)

    return check


def status_rule(sel: Selection, wanted: list[str]) -> Callable[[Facts], Result]:
    def check(facts: Facts) -> Result:
        reqs = sel.pick(facts)
        if not reqs:
            return Result("", False, f"no request ({sel.describe()})")
        bad = [r for r in reqs if not status_matches(status_of(r), wanted)]
        want = " or ".join(wanted)
        if not bad:
            return Result("", True, f"{len(reqs)} request(s): {want}")
        return _evidence(Result("", False, f"{len(bad)} of {len(reqs)} request(s) not {want}"), bad)

    return check


def rules_of(table: dict[str, Any], bound: Callable[[Any], Bound]) -> list[tuple[str, Callable[[Facts], Result]]]:
    """(key, check) of one validated `[requests]` table; `bound` parses a count."""
    port = table.get("port")
    sel = Selection(table.get("protocol"), table.get("endpoint"), port)
    out: list[tuple[str, Callable[[Facts], Result]]] = []
    for key, value in table.items():
        if key in LIMITS:
            out.append((key, limit_rule(sel, key, value)))
        elif key in COUNTS:
            out.append((key, count_rule(sel, key, bound(value))))
        elif key == "status":
            values = value if isinstance(value, list) else [value]
            out.append((key, status_rule(sel, [str(v) for v in values])))
    return out
