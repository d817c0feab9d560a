"""Rules files: read, parsed and validated completely before any input is read (docs/checks.md).

Strict on purpose: an unknown key or a misspelt kind is a RulesError naming the file and
the rule, never a rule that silently passes. Each parsed rule carries its check from
`evaluation`.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable
from typing import Any

from wirecorr.engine import findings
from wirecorr.engine.analysis_flags import SHORT_NAMES
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
from wirecorr.engine.requests import PROTOCOLS
from wirecorr.errors import EXIT_BAD_INPUT, WirecorrError
from wirecorr.views.checks import request_rules
from wirecorr.views.checks.evaluation import (
    COUNTS,
    SIDES,
    Bound,
    Rule,
    close_rule,
    count_rule,
    delay_rule,
    every_rule,
    finding_rule,
    never_rule,
    table_count_rule,
)

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
ANALYSIS_NAMES = frozenset(SHORT_NAMES.values())

SECTIONS = ("findings", "counts", "links", "max_delay_ms", "close", "requests")
_SYSCALL_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_ERRNO_NAME = re.compile(r"E[A-Z0-9]+")
_EVERY = re.compile(r"\s*([a-z0-9_|]+)\s*->\s*([a-z-]+)\s*")


class RulesError(WirecorrError):
    """A rules file that cannot be evaluated: one line naming the file and the rule."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, source: str, rule: str, problem: str) -> None:
        super().__init__(f"{source}: {rule}: {problem}" if rule else f"{source}: {problem}")


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
        if section in ("close", "requests"):
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
            rules.append(Rule(f"{rule}: {kind}", finding_rule(kind, present=key == "yes")))
    return rules


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
                rules.append(Rule(f"{rule}.{name}", table_count_rule(key, what, parse_bound(spec, sub))))
        elif key in COUNTS:
            rules.append(Rule(rule, count_rule(key, parse_bound(value, err))))
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
            rules.append(Rule(label, every_rule(names, kind) if key == "every" else never_rule(names, kind)))
    return rules


def _parse_delays(source: str, body: dict[str, Any]) -> list[Rule]:
    rules = []
    for kind, limit in body.items():
        rule = f"max_delay_ms.{kind}"
        err = _errors(source, rule)
        _known(kind, LINK_KINDS, "link kind", err)
        if not _number(limit):
            raise err(f"want milliseconds (a non-negative number), got {limit!r}")
        rules.append(Rule(rule, delay_rule(kind, limit)))
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
                rules.append(Rule(rule, close_rule(port, key, None, frozenset((value,)))))
            elif key == "final_state":
                if not isinstance(value, dict) or not value:
                    raise err("want client = STATE and/or server = STATE")
                for side, states in value.items():
                    sub = _errors(source, f"{rule}.{side}")
                    _known(side, SIDES, "side", sub)
                    wanted = [states] if isinstance(states, str) else _string_list(states, sub)
                    for state in wanted:
                        _known(state, STATES, "TCP state", sub)
                    rules.append(Rule(f"{rule}.{side}", close_rule(port, key, side, frozenset(wanted))))
            else:
                raise err("unknown key (close takes port, active_closer, reset_by, final_state)")
    return rules


def _parse_requests(source: str, body: Any) -> list[Rule]:
    """`[requests]` holds for every request; `[[requests]]` tables may select by protocol,
    endpoint and port (docs/checks.md)."""
    tables = body if isinstance(body, list) else [body]
    rules = []
    for table in tables:
        if not isinstance(table, dict):
            raise RulesError(source, "requests", f"want a table [requests] or tables [[requests]], got {table!r}")
        picked = [f"{k}={table[k]}" for k in request_rules.SELECTORS if k in table]
        prefix = f"requests[{','.join(picked)}]" if picked else "requests"
        for key, value in table.items():
            err = _errors(source, f"{prefix}.{key}")
            if key == "protocol":
                if not isinstance(value, str):
                    raise err(f"want a protocol name, got {value!r}")
                _known(value, PROTOCOLS, "protocol", err)
            elif key == "endpoint":
                if not isinstance(value, str):
                    raise err(f'want an endpoint glob like "GET /api/*", got {value!r}')
            elif key == "port":
                if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
                    raise err(f"want a port number, got {value!r}")
            elif key in request_rules.LIMITS:
                if not _number(value):
                    raise err(f"want milliseconds (a non-negative number), got {value!r}")
            elif key in request_rules.COUNTS:
                parse_bound(value, err)
            elif key == "status":
                values = value if isinstance(value, list) else [value]
                if not values or not all(isinstance(v, int | str) and not isinstance(v, bool) for v in values):
                    raise err(f'want a status or a list: 200, "4xx", "NXDOMAIN", "ok", "error", got {value!r}')
            else:
                known = ", ".join((*request_rules.SELECTORS, *request_rules.ASSERTIONS))
                raise err(f"unknown key (requests takes {known})")
        if not any(k in request_rules.ASSERTIONS for k in table):
            raise RulesError(source, prefix, "nothing to check (give count, max_latency_ms, status, …)")
        err = _errors(source, prefix)
        for key, check in request_rules.rules_of(table, lambda v, e=err: parse_bound(v, e)):
            rules.append(Rule(f"{prefix}.{key}", check))
    return rules


_PARSERS: dict[str, Callable[[str, Any], list[Rule]]] = {
    "findings": _parse_findings,
    "counts": _parse_counts,
    "links": _parse_links,
    "max_delay_ms": _parse_delays,
    "close": _parse_close,
    "requests": _parse_requests,
}
