"""Reports of a merged recording: the hosts and their clocks, the crossings, then each host.

Each host's section is that host's ordinary report (connections, links, findings) on the
common clock; the header says how far each host's clock was moved and how well that is
known, because every cross-host time difference in the report is only as good as that bound.
"""

from __future__ import annotations

import statistics
from typing import Any, TextIO

from wirecorr import __version__
from wirecorr.engine.hosts import Conversation, Crossing, MergedSession, host_summary
from wirecorr.engine.requests.merged import MergedRequest, merged_requests
from wirecorr.json_codec import dumps
from wirecorr.model import fmt_ns as fmt_duration
from wirecorr.sources.netns import describe
from wirecorr.views import json_report, text_report

SCHEMA = "wirecorr.analyze-merged/1"
CONVERSATIONS_SHOWN = 10
REQUESTS_SHOWN = 10


def crossing_record(c: Crossing) -> dict[str, Any]:
    return {"sent": c.sent, "received": c.received, "sender": c.sender, "receiver": c.receiver, "delay_ns": c.delay_ns}


def delay_stats(crossings: list[Crossing]) -> dict[str, Any] | None:
    if not crossings:
        return None
    delays = [c.delay_ns for c in crossings]
    return {"min_ns": min(delays), "median_ns": int(statistics.median(delays)), "max_ns": max(delays)}


def _end(merged: MergedSession, host: int, conn_id: int) -> dict[str, Any]:
    h = merged.hosts[host]
    conn = h.session.analyzer.connections[conn_id]
    return {"host": h.host["id"], "connection": conn_id, "client": conn.client, "server": conn.server}


def conversation_record(merged: MergedSession, cv: Conversation) -> dict[str, Any]:
    """One connection's two ends (each host's connection id and the addresses that host saw)
    and its crossings' one-way delays in each direction: what a four-lane ladder is drawn from."""
    client_id = merged.hosts[cv.client_host].host["id"]
    return {
        "client": _end(merged, cv.client_host, cv.client_conn),
        "server": _end(merged, cv.server_host, cv.server_conn),
        "crossings": len(cv.crossings),
        "one_way_delay": {
            "client_to_server": delay_stats([c for c in cv.crossings if c.sender == client_id]),
            "server_to_client": delay_stats([c for c in cv.crossings if c.sender != client_id]),
        },
    }


def timeline(merged: MergedSession) -> list[dict[str, Any]]:
    """Every packet of the merged recording on the common clock, a crossing once: the
    sender's copy, with the receiver's copy and the one-way delay (both hosts' reports list
    their own copy of it)."""
    by_sent = {c.sent: c for c in merged.crossings}
    received = {c.received for c in merged.crossings}
    rows: list[tuple[int, int, int]] = []
    for h in merged.hosts:
        table = h.session.analyzer.table
        for index in range(len(table)):
            if table.offset[index] and index not in received:
                rows.append((int(table.ts_ns[index]), index, h.host["id"]))
    out = []
    for ts, index, host in sorted(rows):
        row: dict[str, Any] = {"index": index, "host": host, "ts_ns": ts}
        if (c := by_sent.get(index)) is not None:
            row["crossing"] = {"received": c.received, "to": c.receiver, "delay_ns": c.delay_ns}
        out.append(row)
    return out


def merged_request_record(m: MergedRequest) -> dict[str, Any]:
    """A request as both hosts measured it: the single-host record's fields, split on the
    common clock, plus where each side was and the one-way delays of its packets."""
    return json_report.request_record(m.request) | {
        "client_host": m.client_host,
        "server_host": m.server_host,
        "client_request": m.client_request,
        "server_request": m.server_request,
        "clock_error_ns": m.clock_error_ns,
        "one_way_delay": {
            way: None if span is None else {"min_ns": span[0], "max_ns": span[1]} for way, span in m.one_way_ns.items()
        },
    }


def document(merged: MergedSession, *, packets: bool) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "wirecorr": __version__,
        "sources": [merged.path],
        "merged": True,
        "hosts": [
            {**host_summary(h.host), "report": json_report.document(h.session, packets=packets)} for h in merged.hosts
        ],
        "crossings": [crossing_record(c) for c in merged.crossings],
        "one_way_delay": delay_stats(merged.crossings),
        "conversations": [conversation_record(merged, cv) for cv in merged.conversations()],
        "requests": [merged_request_record(m) for m in merged_requests(merged)],
    } | ({"timeline": timeline(merged)} if packets else {})


def write_json(merged: MergedSession, out: TextIO, *, packets: bool) -> None:
    out.write(dumps(document(merged, packets=packets)).decode())
    out.write("\n")


def clock_line(host: dict[str, Any], reference: str) -> str:
    if not host.get("sync"):
        return "reference clock"
    sync = host["sync"]
    if sync.get("model") == "same clock":
        crossed = sync["forward"] + sync["backward"]
        return f"same clock as {reference}'s (namespaces of one machine; {crossed} crossings)"
    drift = f", drift {host.get('drift_ppb', 0) / 1e3:+.3f} ppm" if host.get("drift_ppb") else ""
    shaky = "; timestamps contradict causality, bound widened to the overlap" if not sync.get("consistent") else ""
    return (
        f"clock moved by {-host['offset_ns'] / 1e6:+.6f} ms onto {reference}'s "
        f"(± {host['offset_error_ns'] / 1e3:.1f} µs{drift}; {sync['forward']} + {sync['backward']} crossings "
        f"over {fmt_duration(sync['span_ns'])}{shaky})"
    )


def write_text(merged: MergedSession, out: TextIO, *, notable: int) -> None:
    hosts = merged.hosts
    out.write(f"{merged.path}: merged recording of {len(hosts)} hosts, {len(merged.crossings)} packets seen by both\n")
    reference = hosts[0].name if hosts else "?"
    for h in hosts:
        info = h.host
        where = f"interface {info.get('interface')}" if info.get("interface") else "no capture interface named"
        pids = ", ".join(map(str, info.get("pids") or [])) or "-"
        out.write(f"  host {info['id']} {h.name} ({where}, pids {pids}): {clock_line(info, reference)}\n")
        if info.get("netns"):
            out.write(f"    captured in the {describe(info['netns'])}\n")
    stats = delay_stats(merged.crossings)
    if stats:
        out.write(
            f"  one-way delay of the crossings: min {fmt_duration(stats['min_ns'])}, median "
            f"{fmt_duration(stats['median_ns'])}, max {fmt_duration(stats['max_ns'])}\n"
        )
    conversations = merged.conversations()
    for cv in conversations[:CONVERSATIONS_SHOWN]:
        rec = conversation_record(merged, cv)
        ends = []
        for role in ("client", "server"):
            end = rec[role]
            ends.append(f"{hosts[cv.client_host if role == 'client' else cv.server_host].name} #{end['connection']} "
                        f"{end['client']} → {end['server']}")  # fmt: skip
        delays = [
            f"{way.replace('_to_', '→').replace('client', 'c').replace('server', 's')} median "
            f"{fmt_duration(d['median_ns'])} (max {fmt_duration(d['max_ns'])})"
            for way, d in rec["one_way_delay"].items()
            if d
        ]
        out.write(f"  connection {ends[0]} is {ends[1]}: {rec['crossings']} packets both saw; {', '.join(delays)}\n")
    if len(conversations) > CONVERSATIONS_SHOWN:
        more = len(conversations) - CONVERSATIONS_SHOWN
        out.write(f"  … and {more} more connections seen by two hosts (--json lists all)\n")
    _write_requests(merged, out)
    for h in hosts:
        out.write(f"\n=== host {h.host['id']} {h.name} ===\n")
        text_report.write(h.session, out, notable=notable)


def _write_requests(merged: MergedSession, out: TextIO) -> None:
    """The requests both hosts saw, the slowest first, each split with both sides measured."""
    found = merged_requests(merged)
    if not found:
        return
    names = {h.host["id"]: h.name for h in merged.hosts}
    out.write(f"  requests with both sides measured ({len(found)}), slowest first:\n")
    for m in sorted(found, key=lambda m: -(m.request.total_ns or 0))[:REQUESTS_SHOWN]:
        req = m.request
        total = fmt_duration(req.total_ns) if req.total_ns is not None else "no response"
        out.write(f"    {total:>12}  {req.summary}  [{names[m.client_host]} → {names[m.server_host]}]\n")
        if req.split:
            out.write("                  " + ", ".join(f"{name} {fmt_duration(ns)}" for name, ns in req.split) + "\n")
        ways = [f"{way} {fmt_duration(span[0])}" + (f" to {fmt_duration(span[1])}" if span[1] != span[0] else "")
                for way, span in m.one_way_ns.items() if span is not None]  # fmt: skip
        bound = f" (clocks ± {fmt_duration(m.clock_error_ns)})" if m.clock_error_ns else ""
        if ways:
            out.write(f"                  one-way delay: {', '.join(ways)}{bound}\n")
    if len(found) > REQUESTS_SHOWN:
        out.write(f"    … and {len(found) - REQUESTS_SHOWN} more (--json lists all)\n")
