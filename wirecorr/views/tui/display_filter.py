"""The `/` display filter: a small language over timeline rows, compiled to a predicate.

Grammar (Wireshark-like, so its users can guess it):

    expr    := or
    or      := and (("or" | "||") and)*
    and     := unary (("and" | "&&") unary)*
    unary   := ("not" | "!") unary | "(" expr ")" | test
    test    := FIELD [OP VALUE] | FIELD "in" "{" VALUE* "}"
               OP: == != < <= > >= (eq ne lt le gt ge)  contains  matches
    VALUE   := NUMBER | NUMBER ".." NUMBER (in a set) | NAME | "string" | ADDRESS[/PREFIX]

Wireshark's own fields work beside wirecorr's (`ip.addr == 10.0.0.0/8`, `tcp.port in {80
443}`, `tcp.flags.syn == 1`, `tcp.analysis.retransmission`, `frame contains "GET"`), so a
filter can be carried over from Wireshark or termshark as it is.

A bare field is a truth test (`linked`, `tcp.flags.syn`, `errno`, `net`: packets and the
syscalls that touch sockets, the TUI's starting view); a comparison against a
row that lacks the field (a syscall's `tcp.len`, a packet's `pid`) is false, as in
Wireshark. The parser knows every field and its type, so `tcp.len > x` or `fd == accept4`
fail at parse time with the column of the mistake instead of silently matching nothing.
"""

from __future__ import annotations

import difflib
import errno
import ipaddress
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ptrace.syscall import SYSCALL_NAMES

from wirecorr.engine.analysis_flags import FIELD_NAMES
from wirecorr.model import ACK, FIN, PSH, RST, SYN, URG
from wirecorr.sources.syscalls.table import AARCH64, X86_64

FieldValue = int | str | bytes | tuple[int, ...] | tuple[bytes, ...] | None


class RowFacts(Protocol):
    """What the filter asks about a timeline row; `EventIndex` answers it."""

    def field(self, ref: int, name: str) -> FieldValue: ...


Predicate = Callable[[RowFacts, int], bool]


class FilterError(ValueError):
    """A filter that does not parse; `pos` is the 0-based column of the mistake."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(f"{message} (at column {pos + 1})")
        self.pos = pos


INT = "int"
TEXT = "text"
BOOL = "bool"
ADDR = "addr"  # packed IP address(es); compared with an address or a network
BYTES = "bytes"  # payload or syscall data: contains / matches only
DURATION = "duration"  # ns; written 100ms, 1.5s, 250us, 80ns (a bare number is seconds, as Wireshark's)

# Field name → type. Row-kind fields answer for one kind of row only.
FIELDS: dict[str, str] = {
    "syscall": TEXT,
    "fd": INT,
    "pid": INT,
    "tid": INT,
    "ret": INT,
    "errno": TEXT,
    "conn": INT,
    "link": INT,
    "frame": INT,
    "finding": INT,
    "tcp.len": INT,
    "tcp.seq": INT,
    "tcp.ack": INT,
    "tcp.window": INT,
    "tcp.flags.syn": BOOL,
    "tcp.flags.ack": BOOL,
    "tcp.flags.fin": BOOL,
    "tcp.flags.rst": BOOL,
    "tcp.flags.psh": BOOL,
    "tcp.flags.urg": BOOL,
    "packet": BOOL,
    "net": BOOL,
    "linked": BOOL,
    "kernel_only": BOOL,
    # Wireshark's names
    "tcp": BOOL,
    "udp": BOOL,
    "ip.addr": ADDR,
    "ip.src": ADDR,
    "ip.dst": ADDR,
    "tcp.port": INT,
    "tcp.srcport": INT,
    "tcp.dstport": INT,
    "udp.port": INT,
    "udp.srcport": INT,
    "udp.dstport": INT,
    "tcp.stream": INT,
    "udp.stream": INT,
    "udp.length": INT,
    "frame.len": INT,
    "tcp.payload": BYTES,
    "udp.payload": BYTES,
    "frame.bytes": BYTES,  # `frame contains …` (the bare name `frame` is the frame number)
    # wirecorr's: a syscall's captured bytes or a packet's payload, and the row as shown
    "data": BYTES,
    "text": TEXT,
    **{name: BOOL for name in FIELD_NAMES.values()},
    "tcp.analysis.flags": BOOL,
}
# The request layer's fields (engine/requests): wirecorr's own names answer for every row of
# a request (its syscalls and segments, both messages); Wireshark's names answer, as in
# Wireshark, for the packet that completes the message (tshark dissects a PDU where its
# reassembly ends).
REQUEST_FIELDS: dict[str, str] = {
    "request": INT,
    "req.time": DURATION,
    "req.proto": TEXT,
    "http.method": TEXT,
    "http.uri": TEXT,
    "http.status": INT,
    "redis.cmd": TEXT,
    "dns.qname": TEXT,
    "dns.qtype": TEXT,
    "dns.rcode": INT,
    "pgsql.tag": TEXT,
    "http.request.method": TEXT,
    "http.request.uri": TEXT,
    "http.response.code": INT,
    "dns.id": INT,
    "dns.flags.rcode": INT,
}
FIELDS.update(REQUEST_FIELDS)
ALIASES = {
    "tcp.win": "tcp.window",
    "tcp.window_size": "tcp.window",
    "tcp.window_size_value": "tcp.window",
    "tcp.flags.reset": "tcp.flags.rst",
    "tcp.flags.push": "tcp.flags.psh",
    "kernel": "kernel_only",
    "frame.number": "frame",
    "ipv6.addr": "ip.addr",
    "ipv6.src": "ip.src",
    "ipv6.dst": "ip.dst",
    "syscall.name": "syscall",
}
FLAG_BITS = {"syn": SYN, "ack": ACK, "fin": FIN, "rst": RST, "psh": PSH, "urg": URG}

_OPS: dict[str, Callable[[object, object], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Names a `syscall ==` or `errno ==` test may use: a typo would otherwise match nothing,
# silently. Syscalls: every Linux syscall of this architecture (an strace log may have any)
# and the recorded set of both; errnos: the C library's, and the kernel-internal ones strace
# prints for interrupted calls.
SYSCALLS = frozenset(SYSCALL_NAMES.values()) | frozenset(X86_64.values()) | frozenset(AARCH64.values())
ERRNOS = frozenset(name for name in dir(errno) if name.startswith("E")) | frozenset(
    {"ERESTARTSYS", "ERESTARTNOINTR", "ERESTARTNOHAND", "ERESTART_RESTARTBLOCK", "ENOTSUPP"}
)
_NAMES = {"syscall": (SYSCALLS, "syscall"), "errno": (ERRNOS, "errno name")}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<addr>\d+\.\d+\.\d+\.\d+(?:/\d+)?|[0-9a-fA-F]*:[0-9a-fA-F:.]*:[0-9a-fA-F.]*(?:/\d+)?)
      | (?P<dur>\d+(?:\.\d+)?(?:ns|us|µs|ms|s)\b|\d+\.\d+)
      | (?P<op>==|!=|<=|>=|<|>|&&|\|\||!|\(|\)|\{|\}|,|\.\.)
      | (?P<num>0[xX][0-9a-fA-F]+|\d+)
      | (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {
    "and": "&&", "or": "||", "not": "!", "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
    "contains": "contains", "matches": "matches", "in": "in",
}  # fmt: skip
# Parentheses and `not`s nest at most this deep: parsing and the predicate recurse per level.
MAX_NESTING = 64


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "op", "num", "str", "name", "end"
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            start = len(text) - len(text[pos:].lstrip())
            raise FilterError(f"unexpected character {text[start]!r}", start)
        kind = m.lastgroup or ""
        value = m.group(kind)
        start = m.start(kind)
        if kind == "name" and value.lower() in _WORD_OPS:
            kind, value = "op", _WORD_OPS[value.lower()]
        elif kind == "str":
            value = '"' + re.sub(r"\\(.)", r"\1", value[1:-1]) + '"'  # \" and \\ as in Wireshark
        tokens.append(Token(kind, value, start))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.at = 0
        self.fields: set[str] = set()
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        tok = self.tokens[self.at]
        self.at += 1
        return tok

    def parse(self) -> Predicate:
        if self.tok.kind == "end":
            raise FilterError("empty filter", 0)
        pred = self.or_()
        if self.tok.kind != "end":
            raise FilterError(f"expected 'and', 'or' or end of filter, found {self.tok.text!r}", self.tok.pos)
        return pred

    def or_(self) -> Predicate:
        parts = [self.and_()]
        while self.tok.text == "||" and self.tok.kind == "op":
            self.take()
            parts.append(self.and_())
        if len(parts) == 1:
            return parts[0]
        return lambda facts, ref: any(p(facts, ref) for p in parts)

    def and_(self) -> Predicate:
        parts = [self.unary()]
        while self.tok.text == "&&" and self.tok.kind == "op":
            self.take()
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        return lambda facts, ref: all(p(facts, ref) for p in parts)

    def unary(self) -> Predicate:
        tok = self.tok
        if tok.kind == "op" and tok.text in ("!", "("):
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise FilterError(f"parentheses and `not` nested deeper than {MAX_NESTING} levels", tok.pos)
            try:
                return self._nested(tok.text)
            finally:
                self.depth -= 1
        if tok.kind != "name":
            raise FilterError(f"expected a field name, found {tok.text or 'end of filter'!r}", tok.pos)
        return self.test()

    def _nested(self, op: str) -> Predicate:
        self.take()
        if op == "!":
            inner = self.unary()
            return lambda facts, ref: not inner(facts, ref)
        inner = self.or_()
        if self.tok.text != ")" or self.tok.kind != "op":
            raise FilterError(f"expected ')', found {self.tok.text or 'end of filter'!r}", self.tok.pos)
        self.take()
        return inner

    def test(self) -> Predicate:
        tok = self.take()
        name = ALIASES.get(tok.text, tok.text)
        kind = FIELDS.get(name)
        if kind is None:
            raise FilterError(f"unknown field {tok.text!r}", tok.pos)
        op_tok = self.tok
        op = op_tok.text if op_tok.kind == "op" else ""
        if op in ("contains", "matches") and name == "frame":
            name, kind = "frame.bytes", BYTES
        self.fields.add(name)
        if op == "in":
            self.take()
            return self._member(name, kind, tok.text)
        if op in ("contains", "matches"):
            self.take()
            return self._search(name, kind, tok.text, op, self.take())
        if op not in _OPS:
            # A bare field: does the row have it (and is it true/non-zero)?
            return lambda facts, ref: bool(facts.field(ref, name))
        if kind == BYTES:
            raise FilterError(f"{tok.text} takes contains or matches", op_tok.pos)
        self.take()
        value_tok = self.take()
        if kind == BOOL:
            if op not in ("==", "!=") or value_tok.text.lower() not in ("0", "1", "true", "false"):
                raise FilterError(f"{tok.text} is a flag: use it alone, or == 1 / == 0", op_tok.pos)
            want = value_tok.text.lower() in ("1", "true")
            if op == "!=":
                want = not want
            return lambda facts, ref: bool(facts.field(ref, name)) is want
        if kind == ADDR:
            if op not in ("==", "!="):
                raise FilterError(f"{tok.text} compares with == or != only", op_tok.pos)
            network = _network(value_tok, tok.text)
            equal = _addr_test(name, [network])
            return equal if op == "==" else lambda facts, ref: _has(facts, ref, name) and not equal(facts, ref)
        value = _value(kind, tok.text, value_tok)
        if kind == TEXT and op not in ("==", "!="):
            raise FilterError(f"{tok.text} compares with == or != only", op_tok.pos)
        compare = _OPS[op]
        if op == "!=":  # Wireshark 4: a != b is !(a == b), also for fields with several values
            return lambda facts, ref: _has(facts, ref, name) and not _any(facts.field(ref, name), value, operator.eq)
        return lambda facts, ref: _any(facts.field(ref, name), value, compare)

    def _member(self, name: str, kind: str, shown: str) -> Predicate:
        """`FIELD in {a b c..d}`: a set of values and ranges, separated by spaces or commas."""
        open_tok = self.take()
        if open_tok.text != "{":
            raise FilterError(f"expected '{{' after in, found {open_tok.text or 'end of filter'!r}", open_tok.pos)
        singles: list[object] = []
        ranges: list[tuple[int, int]] = []
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        while self.tok.text != "}":
            value_tok = self.take()
            if value_tok.kind == "end":
                raise FilterError("expected '}'", value_tok.pos)
            if value_tok.text == ",":
                continue
            if kind == ADDR:
                networks.append(_network(value_tok, shown))
            elif kind == INT and self.tok.text == "..":
                self.take()
                high = self.take()
                ranges.append((int(_value(kind, shown, value_tok)), int(_value(kind, shown, high))))
            elif kind in (INT, TEXT, DURATION):
                singles.append(_value(kind, shown, value_tok))
            else:
                raise FilterError(f"{shown} cannot be tested with in", value_tok.pos)
        self.take()
        if kind == ADDR:
            return _addr_test(name, networks)
        members = frozenset(singles)

        def one(have: object) -> bool:
            return have in members or any(lo <= have <= hi for lo, hi in ranges)  # type: ignore[operator]

        def pred(facts: RowFacts, ref: int) -> bool:
            have = facts.field(ref, name)
            if isinstance(have, tuple):
                return any(one(h) for h in have)
            return have is not None and one(have)

        return pred

    def _search(self, name: str, kind: str, shown: str, op: str, value_tok: Token) -> Predicate:
        if kind not in (TEXT, BYTES):
            raise FilterError(f"{shown} is not text: {op} works on names, payload and data", value_tok.pos)
        if value_tok.kind not in ("str", "name", "num"):
            raise FilterError(f'{op} wants a "string", found {value_tok.text or "end of filter"!r}', value_tok.pos)
        text = value_tok.text[1:-1] if value_tok.kind == "str" else value_tok.text
        if op == "contains":
            needle: str | bytes = text.encode() if kind == BYTES else text

            def contains(facts: RowFacts, ref: int) -> bool:
                have = facts.field(ref, name)
                return have is not None and needle in have  # type: ignore[operator]

            return contains
        try:
            pattern = re.compile(text.encode() if kind == BYTES else text)
        except re.error as e:
            raise FilterError(f"bad regular expression: {e}", value_tok.pos) from None

        def matches(facts: RowFacts, ref: int) -> bool:
            have = facts.field(ref, name)
            return have is not None and pattern.search(have) is not None  # type: ignore[arg-type]

        return matches


def _has(facts: RowFacts, ref: int, name: str) -> bool:
    return facts.field(ref, name) is not None


def _any(have: FieldValue, value: object, compare: Callable[[object, object], bool]) -> bool:
    """A row of several values (links, findings, both ports) matches if any of them does."""
    if isinstance(have, tuple):
        return any(compare(one, value) for one in have)
    return have is not None and compare(have, value)


def _network(tok: Token, shown: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(tok.text, strict=False)
    except ValueError:
        wanted = "an address (10.0.0.1, ::1, 10.0.0.0/8)"
        raise FilterError(f"{shown} wants {wanted}, found {tok.text!r}", tok.pos) from None


def _addr_test(name: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> Predicate:
    def pred(facts: RowFacts, ref: int) -> bool:
        have = facts.field(ref, name)
        if have is None:
            return False
        for packed in have if isinstance(have, tuple) else (have,):
            address = ipaddress.ip_address(packed)
            if any(address in network for network in networks):
                return True
        return False

    return pred


_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def _value(kind: str, field_name: str, tok: Token) -> int | str:
    if kind == DURATION:
        if tok.kind not in ("dur", "num"):
            raise FilterError(
                f"{field_name} wants a time (100ms, 1.5s, 250us), found {tok.text or 'end of filter'!r}", tok.pos
            )
        number = tok.text.rstrip("nuµms")
        unit = tok.text[len(number) :] or "s"
        return round(float(number) * _UNITS_NS[unit])
    if kind == INT:
        if tok.kind != "num":
            raise FilterError(f"{field_name} wants a number, found {tok.text or 'end of filter'!r}", tok.pos)
        text = tok.text
        if len(text) > 20:  # no field holds more than 64 bits
            raise FilterError(f"{field_name}: number {text[:12]}… is too long", tok.pos)
        return int(text, 16) if text[:2] in ("0x", "0X") else int(text)
    if tok.kind == "str":
        value = tok.text[1:-1]
    elif tok.kind in ("name", "num"):
        value = tok.text
    else:
        raise FilterError(f"{field_name} wants a name, found {tok.text or 'end of filter'!r}", tok.pos)
    known = _NAMES.get(field_name)
    if known is not None and value not in known[0]:
        close = difflib.get_close_matches(value, known[0], n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise FilterError(f"unknown {known[1]} {value!r}{hint}", tok.pos)
    return value


# Fields whose answer changes as the correlator links events that arrived later.
LINK_FIELDS = frozenset({"conn", "link", "linked", "kernel_only", "finding", "text", *REQUEST_FIELDS})


@dataclass(frozen=True, slots=True)
class Filter:
    text: str
    predicate: Predicate
    fields: frozenset[str]
    # The field when the whole filter is that one field alone (`net`): the index may answer
    # it for many rows at once from its columns.
    lone_field: str | None = None

    @property
    def depends_on_links(self) -> bool:
        return bool(self.fields & LINK_FIELDS)


def compile_filter(text: str) -> Filter:
    """Parse `text` into a predicate over (facts, row ref); raise FilterError when invalid."""
    parser = _Parser(text)
    predicate = parser.parse()
    first = parser.tokens[0]
    lone = ALIASES.get(first.text, first.text) if len(parser.tokens) == 2 and first.kind == "name" else None
    return Filter(text.strip(), predicate, frozenset(parser.fields), lone)
