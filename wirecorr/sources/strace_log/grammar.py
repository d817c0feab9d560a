"""strace's argument syntax: tokens, the recursive-descent value parser and the raw splitter.

Nested values, quoted strings that may hold any delimiter and `<...>` fd decorations defeat
regular expressions alone, so values go through `Parser`; regular expressions only take flat
tokens, because they run in C, which keeps a 1M-line log at tens of thousands of lines a second.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# --------------------------------------------------------------------------- tokens


class Quoted(NamedTuple):
    """A quoted string exactly as strace showed it; `truncated` marks a `...` suffix (-s limit)."""

    data: bytes
    truncated: bool


class Fd(NamedTuple):
    """A value with an -y/-yy decoration: `5<TCP:[...]>` or `AT_FDCWD</cwd>`."""

    value: int | str
    deco: str


class Call(NamedTuple):
    """strace's pseudo-calls inside structs: `htons(80)`, `inet_addr("1.2.3.4")`, `makedev(...)`."""

    name: str
    args: list[object]
    text: str


class Struct(dict):
    """A `{a=1, b=2}` struct; elements without `name=` (e.g. sockaddr's `inet_pton(...)`) go to `pos`."""

    __slots__ = ("pos",)

    def __init__(self) -> None:
        super().__init__()
        self.pos: list[object] = []


class BadSyntax(Exception):
    """The text does not follow strace's syntax; the line counts as unparsable."""


# Deepest nesting of values on one line: strace's own is under 10 (msghdr → iov → struct);
# deeper is not strace output, and refusing it keeps the parser's recursion bounded.
MAX_NESTING = 64
# strace prints 64-bit values: a number of more digits (or beyond 64 bits) is not its output.
_MAX_DIGITS = 20
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


_ATOM = re.compile(r"[^\s,(){}\[\]\"=<]+")
_STRING = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"(\.\.\.)?', re.S)
# One level of bracket nesting covers `TCP:[[::1]:80->[::1]:99]`; anything else takes the slow path.
_DECO_FAST = re.compile(r"<([^<>\[\]\"\\]*(?:\[(?:[^\[\]]|\[[^\]]*\])*\])?)>")
_ALL_HEX = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)", re.S)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "a": "\a", "b": "\b", "e": "\x1b"}


def _escape_repl(m: re.Match[str]) -> str:
    esc = m.group(1)
    c = esc[0]
    if c == "x":
        return chr(int(esc[1:], 16))
    if "0" <= c <= "7":
        return chr(int(esc, 8) & 0xFF)
    return _SIMPLE_ESCAPES.get(c, c)


def unescape(body: str) -> bytes:
    """C string escapes (strace's default, `-x` and `-xx` forms) back to the original bytes."""
    if "\\" not in body:
        return body.encode("latin-1")
    if _ALL_HEX.fullmatch(body):  # -xx: every byte as \xNN
        return bytes.fromhex(body.replace("\\x", ""))
    return _ESCAPE.sub(_escape_repl, body).encode("latin-1")


def as_text(raw: str | bytes) -> str:
    """Bytes from the log as text for people and JSON (paths, names), never failing on bad UTF-8."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    return raw.decode("utf-8", "replace")


class Parser:
    """Recursive descent over one line: values are Quoted, Fd, Call, Struct, list or str atoms.

    `a => b` (a value the kernel changed) yields b: what the call returned is what the
    correlator needs (`[128 => 16]` is a 16-byte address). Comments and `...` elements are
    dropped; callers see truncation through `Quoted.truncated` and short lists.
    """

    __slots__ = ("depth", "n", "pos", "s")

    def __init__(self, s: str, pos: int = 0) -> None:
        self.s = s
        self.pos = pos
        self.n = len(s)
        self.depth = 0

    def ws(self) -> str:
        """Skip blanks and `/* ... */` comments; return the next character or '' at the end."""
        s, n = self.s, self.n
        pos = self.pos
        while pos < n:
            c = s[pos]
            if c == " ":
                pos += 1
            elif c == "/" and s.startswith("/*", pos):
                end = s.find("*/", pos + 2)
                if end < 0:
                    raise BadSyntax("unterminated comment")
                pos = end + 2
            else:
                self.pos = pos
                return c
        self.pos = pos
        return ""

    def args(self, close: str) -> list[object]:
        """Comma-separated values up to `close`."""
        values: list[object] = []
        c = self.ws()
        if c == close:
            self.pos += 1
            return values
        while True:
            v = self.value()
            if self.ws() == "=" and isinstance(v, str):  # clone(child_stack=NULL, flags=...)
                self.pos += 1
                self.ws()
                v = self.value()
            if v is not ...:
                values.append(v)
            c = self.ws()
            if c == ",":
                self.pos += 1
                if self.ws() == close:  # `a, )`: an unfinished call glued to its resumed half
                    self.pos += 1
                    return values
            elif c == close:
                self.pos += 1
                return values
            else:
                raise BadSyntax(f"expected ',' or {close!r} at column {self.pos}")

    def value(self) -> object:
        """One element; every nested one (struct, list, call, `=>`) comes through here, which
        is where the nesting is bounded. A BadSyntax abandons the whole line, so no unwinding."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise BadSyntax(f"nested deeper than {MAX_NESTING} levels")
        v = self._value()
        self.depth -= 1
        return v

    def _value(self) -> object:
        """One element, including `a => b` and strace's unseparated expressions (`WIFEXITED(s) && ...`)."""
        start = self.pos
        v = self.primary()
        c = self.ws()
        if c in (",", ")", "]", "}", ""):
            return v
        if c == "=":
            nxt = self.s[self.pos + 1 : self.pos + 2]
            if nxt == ">":
                self.pos += 2
                self.ws()
                return self.value()
            if nxt != "=":
                return v  # `name=` of a struct field: the struct parser takes it from here
        while c not in (",", ")", "]", "}", ""):  # an expression: keep its text
            if c == "=" and self.s[self.pos + 1 : self.pos + 2] == ">":
                self.pos += 2
                self.ws()
                return self.value()
            before = self.pos
            if c == "=":
                self.pos += 2 if self.s.startswith("==", self.pos) else 1
            else:
                self.primary()
            if self.pos == before:
                raise BadSyntax("no progress")
            c = self.ws()
        return self.s[start : self.pos].rstrip()

    def primary(self) -> object:
        s = self.s
        pos = self.pos
        if pos >= self.n:
            raise BadSyntax("unexpected end of line")
        c = s[pos]
        if c == '"':
            m = _STRING.match(s, pos)
            if m is None:
                raise BadSyntax("unterminated string")
            self.pos = m.end()
            return Quoted(unescape(m.group(1)), m.group(2) is not None)
        if c == "{":
            self.pos = pos + 1
            return self.struct()
        if c == "[":
            self.pos = pos + 1
            return self.args("]")
        if c == "." and s.startswith("...", pos):
            self.pos = pos + 3
            return ...
        if c == "~" and s.startswith("~[", pos):  # complemented signal set
            self.pos = pos + 2
            self.args("]")
            return s[pos : self.pos]
        m = _ATOM.match(s, pos)
        if m is None:
            raise BadSyntax(f"unexpected {c!r} at column {pos}")
        atom = m.group()
        self.pos = end = m.end()
        if end < self.n:
            c = s[end]
            if c == "<":
                deco = self.decoration()
                return Fd(number(atom) if atom.isdecimal() else atom, deco)
            if c == "(":
                self.pos = end + 1
                args = self.args(")")
                return Call(atom, args, s[pos : self.pos])
        return atom

    def struct(self) -> Struct:
        out = Struct()
        c = self.ws()
        if c == "}":
            self.pos += 1
            return out
        s = self.s
        while True:
            v = self.value()
            if self.ws() == "=" and isinstance(v, str):  # `name=value`
                self.pos += 1
                self.ws()
                out[v] = self.value()
            elif v is not ...:
                out.pos.append(v)
            c = self.ws()
            if c == ",":
                self.pos += 1
                self.ws()
            elif c == "}":
                self.pos += 1
                return out
            else:
                raise BadSyntax(f"expected ',' or '}}' at column {self.pos} in {s[:40]!r}")

    def decoration(self) -> str:
        """The `<...>` after an fd; `->` and `[...]` inside it make a plain `find('>')` wrong."""
        s = self.s
        pos = self.pos
        m = _DECO_FAST.match(s, pos)
        if m is not None:
            self.pos = m.end()
            body = m.group(1)
        else:
            depth = brackets = 0
            i = pos
            n = self.n
            while i < n:
                c = s[i]
                if c == '"':
                    q = _STRING.match(s, i)
                    if q is None:
                        raise BadSyntax("unterminated string in fd decoration")
                    i = q.end()
                    continue
                if c == "\\":
                    i += 2
                    continue
                if c == "[":
                    brackets += 1
                elif c == "]":
                    brackets -= 1
                elif brackets == 0 and c == "<":
                    depth += 1
                elif brackets == 0 and c == ">":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            else:
                raise BadSyntax("unterminated fd decoration")
            self.pos = i + 1
            body = s[pos + 1 : i]
        if s.startswith("(deleted)", self.pos):  # `1</tmp/x>(deleted)`: an unlinked file
            self.pos += 9
        return as_text(unescape(body)) if "\\" in body else body


# Only what changes nesting: strings, brackets, commas and fd decorations (`<` right after a word).
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|(?<=\w)<|[()\[\]{},>]', re.S)
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}


def split_raw(s: str, pos: int) -> tuple[list[str], int]:
    """Top-level argument texts up to the closing `)`, and the position after it.

    Calls wirecorr does not interpret only need their arguments as text; skipping the
    value parser for them (mmap, openat, ... dominate real logs) doubles throughput.
    """
    stack: list[str] = []
    raws: list[str] = []
    start = pos
    for m in _STRUCTURE.finditer(s, pos):
        tok = m.group()
        if tok in _CLOSERS:
            if not stack:
                if tok != ")":
                    if tok == ">":
                        continue  # `a > b` in an expression
                    raise BadSyntax(f"unbalanced {tok!r}")
                last = s[start : m.start()].strip()
                if last:
                    raws.append(last)
                return raws, m.end()
            if stack[-1] == _CLOSERS[tok]:
                stack.pop()
            elif tok != ">":  # `->` inside `[...]` of a decoration
                raise BadSyntax(f"unbalanced {tok!r}")
        elif tok == ",":
            if not stack:
                raws.append(s[start : m.start()].strip())
                start = m.end()
        elif tok[0] != '"':
            stack.append(tok)
    raise BadSyntax("unterminated argument list")


# --------------------------------------------------------------------------- fd decorations


def int_or_none(text: str) -> int | None:
    return number(text) if text.isdecimal() else None


def number(text: str, base: int = 10) -> int:
    """An integer strace could have printed: 64 bits at most, else the line is not strace's."""
    if len(text) > _MAX_DIGITS + 3:  # 0x and a sign
        raise BadSyntax(f"number of {len(text)} digits")
    value = int(text, base)
    if not _INT_MIN <= value <= _INT_MAX:
        raise BadSyntax("number beyond 64 bits")
    return value
