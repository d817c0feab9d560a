"""Checks: rules a capture or recording must satisfy, for regression tests (docs/checks.md).

A rules file says what a correct run of a program looks like on the wire and in its
syscalls ("no CLOSE_WAIT leak", "every accept4 has its handshake", "no retransmission",
"the client closes first"). Rules are parsed and validated completely before any input
is read, and strictly: an unknown key or a misspelt kind is an error, never a rule that
silently passes. Evaluation reads the same records as `analyze --json`
(`json_report.connection_record`, `format.link_to_dict`), so a check and a report of the same
file cannot disagree.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from wirecorr.engine import findings
from wirecorr.engine.analysis_flags import ANY_RETRANSMISSION, SHORT_NAMES
from wirecorr.engine.connections import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    RESET,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
)
from wirecorr.engine.correlator import LINK_KINDS
from wirecorr.engine.session import Session
from wirecorr.errors import EXIT_BAD_INPUT, WirecorrError
from wirecorr.model import Finding, Syscall
from wirecorr.recording.format import finding_to_dict, link_to_dict
from wirecorr.views import json_report
from wirecorr.views.syscall_format import format_syscall
from wirecorr.vocab import DATA_CALLS

STATES = frozenset(
    (
        SYN_SENT,
        SYN_RECEIVED,
        ESTABLISHED,
        FIN_WAIT_1,
        FIN_WAIT_2,
        CLOSE_WAIT,
        CLOSING,
        LAST_ACK,
        TIME_WAIT,
        CLOSED,
        RESET,
    )
)
SIDES = ("client", "server")
ANALYSIS_NAMES = frozenset(SHORT_NAMES.values())
_RETRANS_NAMES = ("retransmission", "fast_retransmission", "spurious_retransmission")

SECTIONS = ("findings", "counts", "links", "max_delay_ms", "close")
_SYSCALL_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_ERRNO_NAME = re.compile(r"E[A-Z0-9]+")
_EVERY = re.compile(r"\s*([a-z0-9_|]+)\s*->\s*([a-z-]+)\s*")

# Evidence shown per failed rule: enough to find the spot in `analyze` or Wireshark.
EVIDENCE_IDS = 12
TIMELINE_LINES = 8


class RulesError(WirecorrError):
    """A rules file that cannot be evaluated: one line naming the file and the rule."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, source: str, rule: str, problem: str) -> None:
        super().__init__(f"{source}: {rule}: {problem}" if rule else f"{source}: {problem}")


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


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def parse_bound(value: Any, err: Callable[[str], RulesError]) -> Bound:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise err(f"a count cannot be negative, got {value}")
        return Bound(value, value)
    if isinstance(value, dict):
        unknown = set(value) - {"min", "max"}
        if unknown:
            raise err(f"unknown key {sorted(unknown)[0]!r} (a bound has min and/or max)")
        if not value:
            raise err("give min and/or max")
        for key in ("min", "max"):
            if key in value and not _number(value[key]):
                raise err(f"{key} must be a non-negative number, got {value[key]!r}")
        bound = Bound(value.get("min"), value.get("max"))
        if bound.min is not None and bound.max is not None and bound.min > bound.max:
            raise err(f"min {bound.min} is larger than max {bound.max}")
        return bound
    raise err(f"want a count (integer) or {{min = N, max = M}}, got {value!r}")


# -- parsing ------------------------------------------------------------------------------


# A rules file is a few hundred bytes; more than this is the wrong file (a capture, /dev/zero).
MAX_RULES_BYTES = 1 << 20


def load_rules(path: str) -> list[Rule]:
    """Read and validate a TOML rules file; every problem is a RulesError naming the rule.

    Read like any stream, at most MAX_RULES_BYTES: a pipe (`--expect <(…)`) works, a
    device or a huge file is refused without being read to its end.
    """
    try:
        with open(path, "rb") as f:
            if not (stat.S_ISREG(os.fstat(f.fileno()).st_mode) or stat.S_ISFIFO(os.fstat(f.fileno()).st_mode)):
                raise RulesError(path, "", "not a regular file or a pipe")
            data = f.read(MAX_RULES_BYTES + 1)
    except OSError as e:
        raise RulesError(path, "", e.strerror or str(e)) from None
    if len(data) > MAX_RULES_BYTES:
        raise RulesError(path, "", f"larger than {MAX_RULES_BYTES >> 20} MiB: not a rules file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RulesError(path, "", f"not UTF-8 text (byte {e.start}): TOML files are UTF-8") from None
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        raise RulesError(path, "", "not valid TOML: arrays or tables nested too deeply") from None
    except ValueError as e:
        # TOMLDecodeError, and ValueError itself for an integer of more digits than Python converts.
        raise RulesError(path, "", f"not valid TOML: {e}") from None
    return parse_rules(doc, path)


def parse_rules(doc: dict[str, Any], source: str = "<rules>") -> list[Rule]:
    """Rules from an already-parsed TOML document (the pytest fixture passes dicts)."""
    rules: list[Rule] = []
    for section, body in doc.items():
        if section not in SECTIONS:
            raise RulesError(source, section, f"unknown section (known: {', '.join(SECTIONS)})")
        parser = _PARSERS[section]
        if section == "close":
            rules += parser(source, body)
        else:
            if not isinstance(body, dict):
                raise RulesError(source, section, f"want a table [{section}], got {body!r}")
            rules += parser(source, body)
    if not rules:
        raise RulesError(source, "", "no rules")
    return rules


def _errors(source: str, rule: str) -> Callable[[str], RulesError]:
    return lambda problem: RulesError(source, rule, problem)


def _string_list(value: Any, err: Callable[[str], RulesError]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise err(f"want a list of strings, got {value!r}")
    return value


def _known(value: str, known: Iterable[str], what: str, err: Callable[[str], RulesError]) -> str:
    known = sorted(known)
    if value not in known:
        raise err(f"unknown {what} {value!r} (known: {', '.join(known)})")
    return value


def _syscall_names(spec: str, err: Callable[[str], RulesError]) -> frozenset[str]:
    names = spec.split("|")
    for name in names:
        if not _SYSCALL_NAME.fullmatch(name):
            raise err(f"{name!r} is not a syscall name")
    return frozenset(names)


def _parse_findings(source: str, body: dict[str, Any]) -> list[Rule]:
    rules = []
    for key, value in body.items():
        rule = f"findings.{key}"
        err = _errors(source, rule)
        if key not in ("no", "yes"):
            raise err("unknown key (findings takes `no` and `yes`)")
        for kind in _string_list(value, err):
            _known(kind, findings.kinds(), "finding kind", err)
            rules.append(Rule(f"{rule}: {kind}", _finding_rule(kind, present=key == "yes")))
    return rules


# A count's value and its evidence: syscall ids, packet indices, notes.
Counted = tuple[int, list[int], list[int], list[str]]
# Top-level counts by name (docs/checks.md lists them).
COUNTS: dict[str, Callable[[Facts], Counted]] = {}


def _count(name: str) -> Callable[[Callable[[Facts], Counted]], Any]:
    def register(fn: Callable[[Facts], Counted]) -> Any:
        COUNTS[name] = fn
        return fn

    return register


def _parse_counts(source: str, body: dict[str, Any]) -> list[Rule]:
    rules = []
    for key, value in body.items():
        rule = f"counts.{key}"
        err = _errors(source, rule)
        if key in _COUNT_TABLES:
            if not isinstance(value, dict):
                raise err(f"want a table [counts.{key}] of NAME = count, got {value!r}")
            validate = _COUNT_TABLES[key]
            for name, spec in value.items():
                sub = _errors(source, f"{rule}.{name}")
                what = validate(name, sub)
                rules.append(Rule(f"{rule}.{name}", _table_count_rule(key, what, parse_bound(spec, sub))))
        elif key in COUNTS:
            rules.append(Rule(rule, _count_rule(key, parse_bound(value, err))))
        else:
            known = sorted([*COUNTS, *_COUNT_TABLES])
            raise err(f"unknown count (known: {', '.join(known)})")
    return rules


def _validate_syscalls(name: str, err: Callable[[str], RulesError]) -> frozenset[str]:
    return _syscall_names(name, err)


def _validate_links(name: str, err: Callable[[str], RulesError]) -> str:
    return _known(name, LINK_KINDS, "link kind", err)


def _validate_findings(name: str, err: Callable[[str], RulesError]) -> str:
    return _known(name, findings.kinds(), "finding kind", err)


def _validate_analysis(name: str, err: Callable[[str], RulesError]) -> str:
    return _known(name, ANALYSIS_NAMES, "tcp.analysis flag", err)


def _validate_errno(name: str, err: Callable[[str], RulesError]) -> str:
    if not _ERRNO_NAME.fullmatch(name):
        raise err(f"{name!r} is not an errno name like ECONNREFUSED")
    return name


_COUNT_TABLES: dict[str, Callable[[str, Callable[[str], RulesError]], Any]] = {
    "syscalls": _validate_syscalls,
    "links": _validate_links,
    "findings": _validate_findings,
    "analysis": _validate_analysis,
    "errno": _validate_errno,
}


def _parse_links(source: str, body: dict[str, Any]) -> list[Rule]:
    rules = []
    for key, value in body.items():
        rule = f"links.{key}"
        err = _errors(source, rule)
        if key not in ("every", "never"):
            raise err("unknown key (links takes `every` and `never`)")
        for spec in _string_list(value, err):
            sub = _errors(source, f"{rule}: {spec}")
            m = _EVERY.fullmatch(spec)
            if m is None:
                raise sub('want "SYSCALL -> LINK-KIND", e.g. "accept4 -> accept-ack"')
            names = _syscall_names(m.group(1), sub)
            kind = _known(m.group(2), LINK_KINDS, "link kind", sub)
            label = f"{rule}: {m.group(1)} -> {kind}"
            rules.append(Rule(label, _every_rule(names, kind) if key == "every" else _never_rule(names, kind)))
    return rules


def _parse_delays(source: str, body: dict[str, Any]) -> list[Rule]:
    rules = []
    for kind, limit in body.items():
        rule = f"max_delay_ms.{kind}"
        err = _errors(source, rule)
        _known(kind, LINK_KINDS, "link kind", err)
        if not _number(limit):
            raise err(f"want milliseconds (a non-negative number), got {limit!r}")
        rules.append(Rule(rule, _delay_rule(kind, limit)))
    return rules


def _parse_close(source: str, body: Any) -> list[Rule]:
    """`[close]` holds for every TCP connection; `[[close]]` tables may select by `port`."""
    tables = body if isinstance(body, list) else [body]
    rules = []
    for table in tables:
        if not isinstance(table, dict):
            raise RulesError(source, "close", f"want a table [close] or tables [[close]], got {table!r}")
        port = table.get("port")
        prefix = "close" if port is None else f"close[port={port}]"
        if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
            raise RulesError(source, f"{prefix}.port", f"want a port number, got {port!r}")
        for key, value in table.items():
            rule = f"{prefix}.{key}"
            err = _errors(source, rule)
            if key == "port":
                continue
            if key in ("active_closer", "reset_by"):
                if not isinstance(value, str):
                    raise err(f'want "client", "server" or "none", got {value!r}')
                _known(value, (*SIDES, "none"), "side", err)
                rules.append(Rule(rule, _close_rule(port, key, None, frozenset((value,)))))
            elif key == "final_state":
                if not isinstance(value, dict) or not value:
                    raise err("want client = STATE and/or server = STATE")
                for side, states in value.items():
                    sub = _errors(source, f"{rule}.{side}")
                    _known(side, SIDES, "side", sub)
                    wanted = [states] if isinstance(states, str) else _string_list(states, sub)
                    for state in wanted:
                        _known(state, STATES, "TCP state", sub)
                    rules.append(Rule(f"{rule}.{side}", _close_rule(port, key, side, frozenset(wanted))))
            else:
                raise err("unknown key (close takes port, active_closer, reset_by, final_state)")
    return rules


_PARSERS: dict[str, Callable[[str, Any], list[Rule]]] = {
    "findings": _parse_findings,
    "counts": _parse_counts,
    "links": _parse_links,
    "max_delay_ms": _parse_delays,
    "close": _parse_close,
}


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


def _finding_rule(kind: str, *, present: bool) -> Callable[[Facts], Result]:
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
    return len(facts.connections), [], [], [_conn_line(c) for c in facts.connections]


@_count("tcp_connections")
def _tcp_connections(facts: Facts) -> Counted:
    conns = [c for c in facts.connections if c["proto"] == "tcp"]
    return len(conns), [], [], [_conn_line(c) for c in conns]


@_count("udp_flows")
def _udp_flows(facts: Facts) -> Counted:
    conns = [c for c in facts.connections if c["proto"] == "udp"]
    return len(conns), [], [], [_conn_line(c) for c in conns]


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
    total = sum(c["analysis"].get(name, 0) for c in facts.connections for name in _RETRANS_NAMES)
    return total, [], facts.retransmitted(), []


@_count("resets")
def _resets(facts: Facts) -> Counted:
    conns = [c for c in facts.connections if c["close"]["reset_by"]]
    return len(conns), [], _state_packets(conns, RESET), [_conn_line(c) for c in conns]


@_count("time_wait")
def _time_wait(facts: Facts) -> Counted:
    conns = [c for c in facts.connections if TIME_WAIT in c["final_state"].values()]
    return len(conns), [], _state_packets(conns, TIME_WAIT), [_conn_line(c) for c in conns]


@_count("close_wait")
def _close_wait(facts: Facts) -> Counted:
    conns = [c for c in facts.connections if CLOSE_WAIT in c["final_state"].values()]
    return len(conns), [], _state_packets(conns, CLOSE_WAIT), [_conn_line(c) for c in conns]


def _state_packets(conns: list[dict[str, Any]], state: str) -> list[int]:
    """The packet that put a side into `state`: where on the wire to look."""
    return [idx for c in conns for side in SIDES for _, idx, s in c["states"][side] if s == state]


def _count_rule(name: str, bound: Bound) -> Callable[[Facts], Result]:
    def check(facts: Facts) -> Result:
        value, syscalls, packets, notes = COUNTS[name](facts)
        ok = bound.holds(value)
        result = Result("", ok, f"{value}, want {bound.describe()}")
        if not ok:
            result.syscalls, result.packets, result.notes = syscalls, packets, notes
        return result

    return check


def _table_count_rule(table: str, what: Any, bound: Bound) -> Callable[[Facts], Result]:
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
        ok = bound.holds(value)
        result = Result("", ok, f"{value}, want {bound.describe()}")
        if not ok:
            result.syscalls, result.packets, result.notes = syscalls, packets, notes
        return result

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


def _every_rule(names: frozenset[str], kind: str) -> Callable[[Facts], Result]:
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


def _never_rule(names: frozenset[str], kind: str) -> Callable[[Facts], Result]:
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


def _delay_rule(kind: str, limit_ms: float) -> Callable[[Facts], Result]:
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


def _close_rule(port: int | None, key: str, side: str | None, wanted: frozenset[str]) -> Callable[[Facts], Result]:
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
            result.notes.append(f"{_conn_line(c)}: {got}")
            for s in SIDES:
                history = " → ".join(f"{state}(#{idx})" for _, idx, state in c["states"][s])
                result.notes.append(f"  {s}: {history or '-'}")
            result.packets += [idx for s in SIDES for _, idx, _ in c["states"][s][-2:]]
        return result

    return check


def _conn_line(c: dict[str, Any]) -> str:
    return f"connection #{c['id']} {c['proto'].upper()} {c['client']} → {c['server']}"


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
