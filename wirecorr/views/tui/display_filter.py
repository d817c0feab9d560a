"""The `/` display filter: a small language over timeline rows, compiled to a predicate.

Grammar (Wireshark-like, so its users can guess it):

    expr    := or
    or      := and (("or" | "||") and)*
    and     := unary (("and" | "&&") unary)*
    unary   := ("not" | "!") unary | "(" expr ")" | test
    test    := FIELD [OP VALUE]          OP: == != < <= > >=
    VALUE   := NUMBER | NAME | "string"

A bare field is a truth test (`linked`, `tcp.flags.syn`, `errno`, `net`: packets and the
syscalls that touch sockets, the TUI's starting view); a comparison against a
row that lacks the field (a syscall's `tcp.len`, a packet's `pid`) is false, as in
Wireshark. The parser knows every field and its type, so `tcp.len > x` or `fd == accept4`
fail at parse time with the column of the mistake instead of silently matching nothing.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from wirecorr.model import ACK, FIN, PSH, RST, SYN, URG

FieldValue = int | str | tuple[int, ...] | None


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
}
ALIASES = {"tcp.win": "tcp.window", "tcp.flags.reset": "tcp.flags.rst", "kernel": "kernel_only"}
FLAG_BITS = {"syn": SYN, "ack": ACK, "fin": FIN, "rst": RST, "psh": PSH, "urg": URG}

_OPS: dict[str, Callable[[object, object], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>==|!=|<=|>=|<|>|&&|\|\||!|\(|\))
      | (?P<num>0[xX][0-9a-fA-F]+|\d+)
      | (?P<str>"[^"]*")
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"and": "&&", "or": "||", "not": "!"}
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
        self.fields.add(name)
        op_tok = self.tok
        if not (op_tok.kind == "op" and op_tok.text in _OPS):
            # A bare field: does the row have it (and is it true/non-zero)?
            return lambda facts, ref: bool(facts.field(ref, name))
        if kind == BOOL:
            raise FilterError(f"{tok.text} is a flag: use it alone, without {op_tok.text}", op_tok.pos)
        self.take()
        value_tok = self.take()
        value = _value(kind, tok.text, value_tok)
        if kind == TEXT and op_tok.text not in ("==", "!="):
            raise FilterError(f"{tok.text} compares with == or != only", op_tok.pos)
        compare = _OPS[op_tok.text]

        def pred(facts: RowFacts, ref: int) -> bool:
            have = facts.field(ref, name)
            if isinstance(have, tuple):  # a row of several links or findings matches if any does
                return any(compare(one, value) for one in have)
            return have is not None and compare(have, value)

        return pred


def _value(kind: str, field_name: str, tok: Token) -> int | str:
    if kind == INT:
        if tok.kind != "num":
            raise FilterError(f"{field_name} wants a number, found {tok.text or 'end of filter'!r}", tok.pos)
        text = tok.text
        if len(text) > 20:  # no field holds more than 64 bits
            raise FilterError(f"{field_name}: number {text[:12]}… is too long", tok.pos)
        return int(text, 16) if text[:2] in ("0x", "0X") else int(text)
    if tok.kind == "str":
        return tok.text[1:-1]
    if tok.kind in ("name", "num"):
        return tok.text
    raise FilterError(f"{field_name} wants a name, found {tok.text or 'end of filter'!r}", tok.pos)


# Fields whose answer changes as the correlator links events that arrived later.
LINK_FIELDS = frozenset({"conn", "link", "linked", "kernel_only", "finding"})


@dataclass(frozen=True, slots=True)
class Filter:
    text: str
    predicate: Predicate
    fields: frozenset[str]

    @property
    def depends_on_links(self) -> bool:
        return bool(self.fields & LINK_FIELDS)


def compile_filter(text: str) -> Filter:
    """Parse `text` into a predicate over (facts, row ref); raise FilterError when invalid."""
    parser = _Parser(text)
    predicate = parser.parse()
    return Filter(text.strip(), predicate, frozenset(parser.fields))
