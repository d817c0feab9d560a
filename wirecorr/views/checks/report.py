"""The text a check prints: PASS/FAIL per rule, the evidence ids, and a short timeline of them."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TextIO

from wirecorr.engine.session import Session
from wirecorr.views import json_report
from wirecorr.views.checks.evaluation import EVIDENCE_IDS, Report
from wirecorr.views.syscall_format import format_syscall

# Events of evidence shown per failed rule, in time order.
TIMELINE_LINES = 8


# -- the report ---------------------------------------------------------------------------


def timeline(
    session: Session, syscalls: Iterable[int], packets: Iterable[int], limit: int = TIMELINE_LINES
) -> list[str]:
    """The evidence events in time order, syscalls as strace prints them, packets as analyze."""
    t0 = _t0(session)
    table = session.analyzer.table
    events: list[tuple[int, str]] = []
    for sid in dict.fromkeys(syscalls):
        sc = session.syscall(sid)
        if sc is not None:
            events.append(
                (sc.enter_ns, f"{(sc.enter_ns - t0) / 1e9:+.6f}  syscall {sc.id} pid {sc.pid} {format_syscall(sc)}")
            )
    for idx in dict.fromkeys(packets):
        if 0 <= idx < len(table):
            p = json_report.packet_record(session, idx)
            direction = {"c2s": "c→s", "s2c": "s→c"}.get(p["dir"] or "", "")
            flags = ", ".join(p["analysis"])
            events.append(
                (
                    p["ts_ns"],
                    f"{(p['ts_ns'] - t0) / 1e9:+.6f}  packet #{idx} conn {p['conn']} {direction} [{p['flags']}] "
                    f"seq {p['seq']} ack {p['ack']} len {p['len']}" + (f"  {flags}" if flags else ""),
                )
            )
    events.sort(key=lambda e: e[0])
    lines = [text for _, text in events[:limit]]
    if len(events) > limit:
        lines.append(f"… {len(events) - limit} more event(s)")
    return lines


def _t0(session: Session) -> int:
    starts = [session.first_ns] if session.first_ns is not None else []
    if session.syscalls:
        starts.append(session.syscalls[0].enter_ns)
    return min(starts, default=0)


def _ids(label: str, ids: list[int], prefix: str = "") -> str:
    unique = list(dict.fromkeys(ids))
    shown = ", ".join(f"{prefix}{i}" for i in unique[:EVIDENCE_IDS])
    return f"{label} {shown}" + (f" … ({len(unique)} in all)" if len(unique) > EVIDENCE_IDS else "")


def write_report(session: Session, report: Report, out: TextIO, *, title: str, failures_only: bool = False) -> None:
    out.write(f"{title}\n")
    for r in report.results:
        if r.passed:
            if not failures_only:
                out.write(f"PASS  {r.rule}: {r.summary}\n")
            continue
        out.write(f"FAIL  {r.rule}: {r.summary}\n")
        for note in r.notes[:EVIDENCE_IDS]:
            out.write(f"        {note}\n")
        if r.syscalls:
            out.write(f"        {_ids('syscalls', r.syscalls)}\n")
        if r.packets:
            out.write(f"        {_ids('packets', r.packets, '#')}\n")
        for line in timeline(session, r.syscalls, r.packets):
            out.write(f"          {line}\n")
    failed = len(report.failed)
    out.write(f"{len(report.results)} rule(s): {len(report.results) - failed} passed, {failed} failed\n")


def report_text(session: Session, report: Report, *, title: str, failures_only: bool = False) -> str:
    buf = io.StringIO()
    write_report(session, report, buf, title=title, failures_only=failures_only)
    return buf.getvalue()
