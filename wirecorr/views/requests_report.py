"""`analyze`'s requests section: counts and latency percentiles per protocol and per
endpoint, then the slowest requests with where their time went (docs/requests.md).

It prints the records `json_report` builds, so the two outputs agree."""

from __future__ import annotations

from typing import Any, TextIO

from wirecorr.engine.requests import requests_of
from wirecorr.engine.requests.stats import slowest
from wirecorr.engine.session import Session
from wirecorr.model import fmt_ns
from wirecorr.views import json_report

# Endpoint rows and slow requests shown; --json has them all.
ENDPOINTS = 15
SLOWEST = 5


def write(out: TextIO, session: Session, stats: dict[str, Any]) -> None:
    if not stats["protocols"] and not stats["gaps"]:
        return
    total = sum(g["count"] for g in stats["protocols"])
    out.write(f"\nRequests ({total}):\n")
    out.write(f"  {'protocol':<8} {'endpoint':<36} {'count':>6} {'p50':>11} {'p90':>11} {'p99':>11}\n")
    for g in stats["protocols"]:
        _row(out, g["protocol"], "(all)", g)
    endpoints = stats["endpoints"]
    for g in endpoints[:ENDPOINTS]:
        _row(out, g["protocol"], f"{g['endpoint']} @{g['server']}", g)
    if len(endpoints) > ENDPOINTS:
        out.write(f"  … {len(endpoints) - ENDPOINTS} more endpoints (--json)\n")
    _write_gaps(out, stats["gaps"])
    slow = slowest(requests_of(session), SLOWEST)
    if slow:
        out.write("  slowest:\n")
    for req in slow:
        record = json_report.request_record(req)
        parts = ", ".join(f"{p['part']} {fmt_ns(p['ns'])}" for p in record["split"])
        traced = "+".join(record["traced"]) or "wire only"
        out.write(f"    {fmt_ns(record['total_ns']):>11}  #{record['conn']} {record['summary']}  [{traced}]\n")
        out.write(f"                 {parts}\n")


def _row(out: TextIO, proto: str, name: str, g: dict[str, Any]) -> None:
    count = f"{g['count']}" + ("" if g["answered"] == g["count"] else f" ({g['count'] - g['answered']} unanswered)")
    if len(name) > 36:
        name = name[:35] + "…"
    out.write(
        f"  {proto:<8} {name:<36} {count:>6} {fmt_ns(g['p50_ns']):>11} {fmt_ns(g['p90_ns']):>11} "
        f"{fmt_ns(g['p99_ns']):>11}\n"
    )


def _write_gaps(out: TextIO, gaps: list[dict[str, Any]]) -> None:
    """Where framing stopped: the requests after it are missing, not absent."""
    if not gaps:
        return
    g = gaps[0]
    arrow = "client→server" if g["dir"] == "c2s" else "server→client"
    lost = sum(x["end"] - x["offset"] for x in gaps)
    out.write(
        f"  framing stopped early in {len(gaps)} stream direction(s), {lost} bytes unframed; first: #{g['conn']} "
        f"{arrow} at byte {g['offset']} of {g['end']} ({g['reason']})"
    )
    if any(x["reason"] == "not recorded" for x in gaps):
        out.write(": the capture cut those segments at its snaplen; record with -s 65535 (or a larger --data-bytes)")
    out.write("\n")
