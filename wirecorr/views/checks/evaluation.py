"""Rules evaluated on a finished Session: the checks, the counts, and the evidence of each verdict.

Checks read the same records as `analyze --json` (`json_report.connection_record`,
`format.link_to_dict`), so a check and a report of the same file cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wirecorr.engine.analysis_flags import ANY_RETRANSMISSION, SHORT_NAMES
from wirecorr.engine.connections import CLOSE_WAIT, RESET, TIME_WAIT
from wirecorr.engine.session import Session
from wirecorr.model import Finding, Syscall
from wirecorr.recording.format import finding_to_dict, link_to_dict
from wirecorr.views import json_report
from wirecorr.vocab import DATA_CALLS

SIDES = ("client", "server")

# Evidence shown per failed rule: enough to find the spot in `analyze` or Wireshark.
EVIDENCE_IDS = 12


# -- results ------------------------------------------------------------------------------


@dataclass
class Result:
    """One rule's verdict. Evidence names events by the ids `analyze --json` uses:
    syscall `id`s and packet indices (0-based, as in `Link.packets`)."""

    rule: str
    passed: bool
    summary: str
    syscalls: list[int] = field(default_factory=list)
    packets: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    results: list[Result]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if not r.passed]


@dataclass
class Rule:
    name: str
    evaluate: Callable[[Facts], Result]


# -- what rules look at -------------------------------------------------------------------


class Facts:
    """A finished Session seen as the records every output shares, computed once per check."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.connections = [json_report.connection_record(c) for c in session.analyzer.connections]
        self.links = [link_to_dict(link) for link in session.correlator.links]
        self.findings: list[Finding] = list(getattr(session, "findings", []))

    def links_of(self, sc: Syscall) -> list[dict[str, Any]]:
        return [self.links[lk.id] for lk in self.session.correlator.links_of(sc.id)]

    def finding_record(self, finding: Finding) -> dict[str, Any]:
        return finding_to_dict(finding)

    def retransmitted(self) -> list[int]:
        analysis = self.session.analyzer.table.analysis
        return [i for i, mask in enumerate(analysis) if mask & ANY_RETRANSMISSION]

    def analysis_packets(self, name: str) -> list[int]:
        # As tshark's tcp.analysis.retransmission, which fast and spurious ones carry too.
        if name == "retransmission":
            flag = ANY_RETRANSMISSION
        else:
            flag = next(int(f) for f, short in SHORT_NAMES.items() if short == name)
        analysis = self.session.analyzer.table.analysis
        return [i for i, mask in enumerate(analysis) if mask & flag]


# -- bounds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """`n` (exactly n) or `{min = a, max = b}` (either end optional)."""

    min: int | float | None = None
    max: int | float | None = None

    def holds(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        if self.min is not None and self.min == self.max:
            return f"= {self.min:g}"
        if self.min is not None and self.max is not None:
            return f"between {self.min:g} and {self.max:g}"
        return f"≥ {self.min:g}" if self.min is not None else f"≤ {self.max:g}"


# A count's value and its evidence: syscall ids, packet indices, notes.
Counted = tuple[int, list[int], list[int], list[str]]
# Top-level counts by name (docs/checks.md lists them).
COUNTS: dict[str, Callable[[Facts], Counted]] = {}


def _count(name: str) -> Callable[[Callable[[Facts], Counted]], Any]:
    def register(fn: Callable[[Facts], Counted]) -> Any:
        COUNTS[name] = fn
        return fn

    return register


# -- evaluation ---------------------------------------------------------------------------


def evaluate(session: Session, rules: list[Rule]) -> Report:
    """Evaluate `rules` against a finished session."""
    facts = Facts(session)
    results = []
    for rule in rules:
        # Rule functions describe the verdict; the name is the rule's, set once here.
        result = rule.evaluate(facts)
        result.rule = rule.name
        results.append(result)
    return Report(results)


def _finding_evidence(facts: Facts, findings: list[Finding], result: Result) -> None:
    """Findings carry evidence as {name: ids}; names say what the ids are."""
    for finding in findings[:EVIDENCE_IDS]:
        record = facts.finding_record(finding)
        conn = record.get("connection")
        where = f" (connection #{conn})" if conn is not None else ""
        result.notes.append(f"{record.get('severity', '')} {record.get('kind')}{where}: {record.get('message')}")
        for name, ids in (record.get("evidence") or {}).items():
            if "syscall" in name:
                result.syscalls += ids
            elif "packet" in name:
                result.packets += ids
            elif "link" in name:
                for link in (facts.links[i] for i in ids if 0 <= i < len(facts.links)):
                    result.syscalls.append(link["syscall"])
                    result.packets += link["packets"]


def finding_rule(kind: str, *, present: bool) -> Callable[[Facts], Result]:
    def check(facts: Facts) -> Result:
        found = [f for f in facts.findings if f.kind == kind]
        if present:
            result = Result("", bool(found), f"{len(found)} reported" if found else "not reported")
        else:
            result = Result("", not found, f"{len(found)} reported" if found else "none")
            _finding_evidence(facts, found, result)
        return result

    return check


@_count("connections")
def _connections(facts: Facts) -> Counted:
    return len(facts.connections), [], [], [conn_line(c) for c in facts.connections]


@_count("tcp_connections")
def _tcp_connections(facts: Facts) -> Counted:
    conns = [c for c in facts.connections if c["proto"] == "tcp"]
    return len(conns), [], [], [conn_line(c) for c in conns]


@_count("udp_flows")
def _udp_flows(facts: Facts) -> Counted:
    conns = [c for c in facts.connections if c["proto"] == "udp"]
    return len(conns), [], [], [conn_line(c) for c in conns]


@_count("packets")
def _packets(facts: Facts) -> Counted:
    return facts.session.packets_kept, [], [], []


@_count("syscalls")
def _all_syscalls(facts: Facts) -> Counted:
    return len(facts.session.syscalls), [], [], []


@_count("failed_syscalls")
def _failed(facts: Facts) -> Counted:
    ids = [sc.id for sc in facts.session.syscalls if sc.errno is not None]
    return len(ids), ids, [], []


@_count("links")
def _all_links(facts: Facts) -> Counted:
    return len(facts.links), [], [], []


@_count("findings")
def _all_findings(facts: Facts) -> Counted:
    result = Result("", True, "")
    _finding_evidence(facts, facts.findings, result)
    return len(facts.findings), result.syscalls, result.packets, result.notes


@_count("retransmissions")
def _retransmissions(facts: Facts) -> Counted:
    # "retransmission" counts fast and spurious ones too, as tshark's field does.
    total = sum(c["analysis"].get("retransmission", 0) for c in facts.connections)
    return total, [], facts.retransmitted(), []


@_count("resets")
def _resets(facts: Facts) -> Counted:
    conns = [c for c in facts.connections if c["close"]["reset_by"]]
    return len(conns), [], _state_packets(conns, RESET), [conn_line(c) for c in conns]


@_count("time_wait")
def _time_wait(facts: Facts) -> Counted:
    conns = [c for c in facts.connections if TIME_WAIT in c["final_state"].values()]
    return len(conns), [], _state_packets(conns, TIME_WAIT), [conn_line(c) for c in conns]


@_count("close_wait")
def _close_wait(facts: Facts) -> Counted:
    conns = [c for c in facts.connections if CLOSE_WAIT in c["final_state"].values()]
    return len(conns), [], _state_packets(conns, CLOSE_WAIT), [conn_line(c) for c in conns]


def _state_packets(conns: list[dict[str, Any]], state: str) -> list[int]:
    """The packet that put a side into `state`: where on the wire to look."""
    return [idx for c in conns for side in SIDES for _, idx, s in c["states"][side] if s == state]


def _counted(bound: Bound, value: int, syscalls: list[int], packets: list[int], notes: list[str]) -> Result:
    """A count's verdict; the evidence is shown only when the count is out of bounds."""
    ok = bound.holds(value)
    result = Result("", ok, f"{value}, want {bound.describe()}")
    if not ok:
        result.syscalls, result.packets, result.notes = syscalls, packets, notes
    return result


def count_rule(name: str, bound: Bound) -> Callable[[Facts], Result]:
    def check(facts: Facts) -> Result:
        return _counted(bound, *COUNTS[name](facts))

    return check


def table_count_rule(table: str, what: Any, bound: Bound) -> Callable[[Facts], Result]:
    def check(facts: Facts) -> Result:
        syscalls: list[int] = []
        packets: list[int] = []
        notes: list[str] = []
        if table == "syscalls":
            syscalls = [sc.id for sc in facts.session.syscalls if sc.name in what]
            value = len(syscalls)
        elif table == "errno":
            syscalls = [sc.id for sc in facts.session.syscalls if sc.errno == what]
            value = len(syscalls)
        elif table == "links":
            links = [link for link in facts.links if link["kind"] == what]
            value = len(links)
            syscalls = [link["syscall"] for link in links]
            packets = [i for link in links for i in link["packets"]]
        elif table == "findings":
            found = [f for f in facts.findings if f.kind == what]
            value = len(found)
            ev = Result("", True, "")
            _finding_evidence(facts, found, ev)
            syscalls, packets, notes = ev.syscalls, ev.packets, ev.notes
        else:  # analysis
            value = sum(c["analysis"].get(what, 0) for c in facts.connections)
            packets = facts.analysis_packets(what)
        return _counted(bound, value, syscalls, packets, notes)

    return check


def _on_ip_socket(sc: Syscall) -> bool:
    info = sc.fdinfo
    return info is not None and info.kind in ("tcp", "tcp6", "udp", "udp6", "socket")


def _expects(sc: Syscall, kind: str) -> bool:
    """Whether the outcome of `sc` implies a wire event of link `kind` (the calls `every` checks).

    Data links need bytes moved; a read that returned 0 is EOF and implies eof-fin instead.
    connect-refused and reset follow from their errnos. Everything else needs success, where
    EINPROGRESS counts (a non-blocking connect still sends its SYN), and a close or shutdown
    only implies a FIN on a socket that had a peer (closing a listener sends nothing).
    """
    if sc.ret is None:
        return False
    if kind == "connect-refused":
        return sc.errno == "ECONNREFUSED"
    if kind == "reset":
        return sc.errno in ("ECONNRESET", "EPIPE")
    if sc.errno not in (None, "EINPROGRESS"):
        return False
    if kind == "eof-fin":
        return sc.name in DATA_CALLS and sc.ret == 0
    if sc.name in DATA_CALLS:
        return sc.ret > 0
    if sc.name in ("close", "shutdown"):
        return sc.fdinfo is not None and sc.fdinfo.remote is not None
    return True


def every_rule(names: frozenset[str], kind: str) -> Callable[[Facts], Result]:
    def check(facts: Facts) -> Result:
        calls = [sc for sc in facts.session.syscalls if sc.name in names and _on_ip_socket(sc) and _expects(sc, kind)]
        missing = [sc for sc in calls if not any(lk["kind"] == kind and lk["packets"] for lk in facts.links_of(sc))]
        if not calls:
            return Result("", False, f"no call on a TCP/UDP socket whose result implies {kind}")
        if not missing:
            return Result("", True, f"{len(calls)} call(s)")
        result = Result("", False, f"{len(missing)} of {len(calls)} call(s) without a {kind} link")
        for sc in missing[:EVIDENCE_IDS]:
            result.syscalls.append(sc.id)
            has = [f"{lk['kind']}{'' if lk['packets'] else ' (no packet)'}" for lk in facts.links_of(sc)]
            result.notes.append(f"syscall {sc.id} {sc.name}: links {', '.join(has) or 'none'}")
        return result

    return check


def never_rule(names: frozenset[str], kind: str) -> Callable[[Facts], Result]:
    def check(facts: Facts) -> Result:
        bad = [
            lk
            for lk in facts.links
            if lk["kind"] == kind
            and lk["packets"]
            and (sc := facts.session.syscall(lk["syscall"]))
            and sc.name in names
        ]
        result = Result("", not bad, f"{len(bad)} link(s)" if bad else "none")
        for lk in bad[:EVIDENCE_IDS]:
            result.syscalls.append(lk["syscall"])
            result.packets += lk["packets"]
        return result

    return check


def delay_rule(kind: str, limit_ms: float) -> Callable[[Facts], Result]:
    limit_ns = limit_ms * 1e6

    def check(facts: Facts) -> Result:
        timed = [lk for lk in facts.links if lk["kind"] == kind and lk["delay_ns"] is not None]
        if not timed:
            return Result("", True, "no timed link of this kind")
        over = sorted((lk for lk in timed if lk["delay_ns"] > limit_ns), key=lambda lk: -lk["delay_ns"])
        worst = max(timed, key=lambda lk: lk["delay_ns"])
        summary = f"worst {worst['delay_ns'] / 1e6:.3f} ms of {len(timed)} link(s), want ≤ {limit_ms:g} ms"
        if not over:
            return Result("", True, summary)
        result = Result("", False, f"{len(over)} over the limit; {summary}")
        for lk in over[:EVIDENCE_IDS]:
            result.syscalls.append(lk["syscall"])
            result.packets += lk["packets"]
            result.notes.append(f"link {lk['id']}: {lk['delay_ns'] / 1e6:.3f} ms")
        return result

    return check


def close_rule(port: int | None, key: str, side: str | None, wanted: frozenset[str]) -> Callable[[Facts], Result]:
    def check(facts: Facts) -> Result:
        conns = [
            c
            for c in facts.connections
            if c["proto"] == "tcp" and (port is None or c["server"].rpartition(":")[2] == str(port))
        ]
        if not conns:
            return Result("", False, "no TCP connection" + (f" to port {port}" if port is not None else ""))
        bad = []
        for c in conns:
            got = c["final_state"][side] if side is not None else c["close"][key]
            if (got or "none") not in wanted:
                bad.append((c, got or "none"))
        want = " or ".join(sorted(wanted))
        if not bad:
            return Result("", True, f"{len(conns)} connection(s): {want}")
        result = Result("", False, f"{len(bad)} of {len(conns)} connection(s) not {want}")
        for c, got in bad[:EVIDENCE_IDS]:
            result.notes.append(f"{conn_line(c)}: {got}")
            for s in SIDES:
                history = " → ".join(f"{state}(#{idx})" for _, idx, state in c["states"][s])
                result.notes.append(f"  {s}: {history or '-'}")
            result.packets += [idx for s in SIDES for _, idx, _ in c["states"][s][-2:]]
        return result

    return check


def conn_line(c: dict[str, Any]) -> str:
    return f"connection #{c['id']} {c['proto'].upper()} {c['client']} → {c['server']}"
