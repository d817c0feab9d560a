"""`analyze` text output: a per-connection summary, then the packets worth a look."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, TextIO

from wirecorr.engine.session import Session
from wirecorr.model import fmt_ns
from wirecorr.views import json_report, requests_report
from wirecorr.views.syscall_format import format_syscall, is_network

# Findings of one kind shown in full; the rest are counted (see _write_findings).
FINDINGS_PER_KIND = 20


def fmt_abs(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + f".{frac:09d} UTC"


def fmt_options(opts: dict[str, Any] | None) -> str:
    if opts is None:
        return "(not captured)"
    parts = []
    if opts["mss"] is not None:
        parts.append(f"mss {opts['mss']}")
    if opts["wscale"] is not None:
        parts.append(f"wscale {opts['wscale']}")
    if opts["sack_perm"]:
        parts.append("sack_perm")
    if opts["timestamps"]:
        parts.append("ts")
    if opts["tfo"]:
        parts.append("tfo")
    return " ".join(parts) or "no options"


def fmt_states(changes: list[list[Any]]) -> str:
    return " → ".join(change[2] for change in changes) or "-"


def write(session: Session, out: TextIO, *, notable: int) -> None:
    doc = json_report.document(session, packets=False)
    conns = doc["connections"]
    first = doc["first_ts_ns"]
    span = (doc["last_ts_ns"] - first) if first is not None else None
    # Relative times count from the first event of either kind, so none is negative.
    starts = [first] if first is not None else []
    if session.syscalls:
        starts.append(session.syscalls[0].enter_ns)
    t0 = min(starts, default=0)
    sources = ", ".join(doc["sources"])
    out.write(
        f"{sources}: {doc['packets_read']} packets read, {doc['packets_analyzed']} analysed, "
        f"{len(conns)} connection(s), {fmt_ns(span)}\n"
    )
    if first is not None:
        out.write(f"  from {fmt_abs(first)} to {fmt_abs(doc['last_ts_ns'])}\n")
    for warning in doc["warnings"]:
        out.write(f"  warning: {warning}\n")
    for conn in conns:
        out.write("\n")
        _write_connection(out, conn, t0)
    if doc["analysis"]:
        totals = ", ".join(f"{name} {count}" for name, count in doc["analysis"].items())
        out.write(f"\nTCP analysis, all connections: {totals}\n")
    if session.syscalls:
        _write_syscalls(out, session, t0, notable)
        _write_links(out, session, notable)
    requests_report.write(out, session, doc["request_stats"])
    _write_findings(out, doc["findings"])
    indices = doc["notable"]
    if indices and notable > 0:
        out.write(f"\nNotable packets ({len(indices)}):\n")
        for index in indices[:notable]:
            _write_packet(out, json_report.packet_record(session, index), t0)
        if len(indices) > notable:
            out.write(f"  … {len(indices) - notable} more (--notable N, or --json --packets)\n")


def _write_syscalls(out: TextIO, session: Session, t0: int, limit: int) -> None:
    calls = session.syscalls
    network = [sc for sc in calls if is_network(sc)]
    pids = sorted({sc.pid for sc in calls})
    failed = sum(1 for sc in network if sc.errno)
    out.write(
        f"\nSyscalls: {len(calls)} recorded from pid(s) {', '.join(map(str, pids[:10]))}"
        f"{' …' if len(pids) > 10 else ''}; {len(network)} on sockets, {failed} of them failed\n"
    )
    for sc in network[:limit]:
        took = f" <{fmt_ns(sc.exit_ns - sc.enter_ns)}>" if sc.exit_ns is not None else ""
        out.write(f"  {(sc.enter_ns - t0) / 1e9:+.6f} {sc.pid:>6} {format_syscall(sc)}{took}\n")
    if len(network) > limit:
        out.write(f"  … {len(network) - limit} more (--notable N, or --json)\n")


def _write_links(out: TextIO, session: Session, limit: int) -> None:
    links = session.correlator.links
    if not links:
        out.write("\nLinks: none (no syscall matched a captured packet)\n")
        return
    kinds = Counter(link.kind for link in links)
    out.write(f"\nLinks ({len(links)}): " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()) + "\n")
    for link in links[:limit]:
        sc = session.syscall(link.syscall)
        call = f"{sc.pid} {sc.name}({sc.fd if sc.fd is not None else ''})" if sc else f"syscall {link.syscall}"
        frames = ", ".join(str(session.frame_number(i)) for i in link.packets[:8])
        frames += " …" if len(link.packets) > 8 else ""
        delay = f"  {fmt_ns(link.delay_ns)}" if link.delay_ns is not None else ""
        note = f"  ({link.note})" if link.note else ""
        out.write(f"  L{link.id:<5} {link.kind:<20} {call:<28} ↔ frames [{frames}]{delay}{note}\n")
    if len(links) > limit:
        out.write(f"  … {len(links) - limit} more (--notable N, or --json)\n")


def _write_findings(out: TextIO, findings: list[dict[str, Any]]) -> None:
    """Grouped by kind, the first FINDINGS_PER_KIND of each in full: a leak is one finding per
    connection (the fd-leak lab has 20, a real server thousands), and the first few say what
    the rest would. The JSON report has them all."""
    if not findings:
        return
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        by_kind.setdefault(f["kind"], []).append(f)
    counts = ", ".join(f"{kind} {len(group)}" for kind, group in by_kind.items())
    out.write(f"\nFindings ({len(findings)}): {counts}\n")
    for kind, group in by_kind.items():
        for f in group[:FINDINGS_PER_KIND]:
            out.write(f"  {f['severity']:<7} {kind}: {f['message']}\n")
        if len(group) > FINDINGS_PER_KIND:
            rest = [f["connection"] for f in group[FINDINGS_PER_KIND:] if f["connection"] is not None]
            which = f" (connections {_id_list(rest)})" if rest else ""
            out.write(f"          … {len(group) - FINDINGS_PER_KIND} more {kind}{which}; --json lists them all\n")


def _id_list(ids: list[int], most: int = 12) -> str:
    text = ", ".join(f"#{i}" for i in ids[:most])
    return text + (", …" if len(ids) > most else "")


def _write_connection(out: TextIO, conn: dict[str, Any], t0: int) -> None:
    proto = conn["proto"].upper()
    out.write(
        f"#{conn['id']} {proto} {conn['client']} → {conn['server']}  "
        f"start +{fmt_ns(conn['first_ts_ns'] - t0)}, lasted {fmt_ns(conn['duration_ns'])}\n"
    )
    pk, by = conn["packets"], conn["bytes"]
    out.write(
        f"  packets   client→server {pk['client_to_server']} ({by['client_to_server']} B), "
        f"server→client {pk['server_to_client']} ({by['server_to_client']} B)\n"
    )
    if conn["proto"] == "tcp":
        hs = conn["handshake"]
        scaling = "window scaling on" if hs["window_scaling"] else "window scaling off"
        out.write(
            f"  handshake client: {fmt_options(hs['client'])}; server: {fmt_options(hs['server'])}; "
            f"{scaling}; initial RTT {fmt_ns(hs['initial_rtt_ns'])}\n"
        )
        close = conn["close"]
        if close["reset_by"]:
            how = f"reset by the {close['reset_by']}"
        elif close["active_closer"]:
            how = f"the {close['active_closer']} closed first (its side goes to TIME_WAIT)"
        else:
            how = "not closed in the capture"
        final = conn["final_state"]
        out.write(f"  close     {how}; final client {final['client'] or '-'}, server {final['server'] or '-'}\n")
        out.write(f"  client    {fmt_states(conn['states']['client'])}\n")
        out.write(f"  server    {fmt_states(conn['states']['server'])}\n")
    if conn["analysis"]:
        out.write("  analysis  " + ", ".join(f"{k} {v}" for k, v in sorted(conn["analysis"].items())) + "\n")
    if conn["icmp_errors"]:
        out.write(f"  icmp      {conn['icmp_errors']} error(s) quoting this flow\n")
    for anchor in conn["anchored"]:
        out.write(f"  anchored  {_anchor_text(anchor)}\n")


def _anchor_text(anchor: dict[str, Any]) -> str:
    """A stream the trace joined mid-way: how its calls were placed (or that they were not)."""
    arrow = "client→server" if anchor["dir"] == "c2s" else "server→client"
    what = f"{anchor['calls']} of {anchor['endpoint']} ({arrow}): open before tracing began"
    if anchor["packet"] is None:
        return f"{what}, and {anchor['failed']}: not linked"
    return (
        f"{what}, placed by content: the bytes of syscall {anchor['syscall']} are in frame {anchor['frame']}, "
        f"its first traced byte is stream byte {anchor['offset']}"
    )


def _write_packet(out: TextIO, pkt: dict[str, Any], t0: int) -> None:
    extra = []
    if pkt["dupack_num"]:
        extra.append(f"dup #{pkt['dupack_num']}")
    if pkt["ack_rtt_ns"]:
        extra.append(f"rtt {fmt_ns(pkt['ack_rtt_ns'])}")
    direction = {"c2s": "c→s", "s2c": "s→c"}.get(pkt["dir"] or "", "   ")
    out.write(
        f"  {pkt['frame']:>7} +{(pkt['ts_ns'] - t0) / 1e9:.6f} conn {pkt['conn']} {direction} "
        f"[{pkt['flags']}] seq {pkt['seq']} ack {pkt['ack']} win {pkt['win']} len {pkt['len']}  "
        f"{', '.join(pkt['analysis'])}{'  (' + ', '.join(extra) + ')' if extra else ''}\n"
    )
