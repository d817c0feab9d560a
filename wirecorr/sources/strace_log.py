"""Read `strace -f -ttt -T -yy [-xx] [-s N] -o LOG` output (single file or an `-ff` set).

Users often already have strace logs, and strace runs where our ptrace tracer cannot
(attached to a service, on another machine). This module turns such a log into the same
`Syscall` records the tracer produces, so the engine never knows which source it got.

strace's argument syntax nests (`msg_hdr={msg_iov=[{iov_base="..."}]}`), quotes strings
that may contain any delimiter, and decorates fds with `<...>` that themselves contain
`->`, `[`, `]` and nested `<char 1:3>`; regular expressions alone break on that, so the
arguments go through a small recursive-descent parser (`_Parser`). Regular expressions are
used only for flat tokens (atoms, quoted strings, the line head) because they run in C,
which is what keeps a 1M-line log in the tens of thousands of lines per second.

Files are read as latin-1 so every byte maps to one character: quoted data then goes back
to the exact bytes the program moved with `.encode("latin-1")`.

Results: `= ?` means the thread never returned (ret and exit_ns None); `= ? ERESTARTSYS
(...) <t>` did return, interrupted by a signal, so it gets ret -1 with that errno like any
failed call. A thread's tid maps to its process through the `clone(CLONE_THREAD) = tid` of
its creator, which has to be in the log (attach with -f from the start).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from wirecorr.bulk import paused_gc
from wirecorr.errors import InputError
from wirecorr.model import FdInfo, Syscall
from wirecorr.sources.capture_file import STDIN
from wirecorr.vocab import BYTE_CALLS, PARAMS, TARGETS

__all__ = ["StraceLog", "read_strace_log"]


@dataclass
class StraceLog:
    """Everything read from one strace log (or `-ff` set), plus how well it parsed."""

    syscalls: list[Syscall]
    lines: int
    unparsable: int
    first_unparsable: tuple[str, int] | None
    processes: dict[int, str]


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


class _Bad(Exception):
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
_INT = re.compile(r"-?(?:0x[0-9a-fA-F]+|\d+)\Z")


def _escape_repl(m: re.Match[str]) -> str:
    esc = m.group(1)
    c = esc[0]
    if c == "x":
        return chr(int(esc[1:], 16))
    if "0" <= c <= "7":
        return chr(int(esc, 8) & 0xFF)
    return _SIMPLE_ESCAPES.get(c, c)


def _unescape(body: str) -> bytes:
    """C string escapes (strace's default, `-x` and `-xx` forms) back to the original bytes."""
    if "\\" not in body:
        return body.encode("latin-1")
    if _ALL_HEX.fullmatch(body):  # -xx: every byte as \xNN
        return bytes.fromhex(body.replace("\\x", ""))
    return _ESCAPE.sub(_escape_repl, body).encode("latin-1")


def _text(raw: str | bytes) -> str:
    """Bytes from the log as text for people and JSON (paths, names), never failing on bad UTF-8."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    return raw.decode("utf-8", "replace")


class _Parser:
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
                    raise _Bad("unterminated comment")
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
                raise _Bad(f"expected ',' or {close!r} at column {self.pos}")

    def value(self) -> object:
        """One element; every nested one (struct, list, call, `=>`) comes through here, which
        is where the nesting is bounded. A _Bad abandons the whole line, so no unwinding."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _Bad(f"nested deeper than {MAX_NESTING} levels")
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
                raise _Bad("no progress")
            c = self.ws()
        return self.s[start : self.pos].rstrip()

    def primary(self) -> object:
        s = self.s
        pos = self.pos
        if pos >= self.n:
            raise _Bad("unexpected end of line")
        c = s[pos]
        if c == '"':
            m = _STRING.match(s, pos)
            if m is None:
                raise _Bad("unterminated string")
            self.pos = m.end()
            return Quoted(_unescape(m.group(1)), m.group(2) is not None)
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
            raise _Bad(f"unexpected {c!r} at column {pos}")
        atom = m.group()
        self.pos = end = m.end()
        if end < self.n:
            c = s[end]
            if c == "<":
                deco = self.decoration()
                return Fd(_number(atom) if atom.isdecimal() else atom, deco)
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
                raise _Bad(f"expected ',' or '}}' at column {self.pos} in {s[:40]!r}")

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
                        raise _Bad("unterminated string in fd decoration")
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
                raise _Bad("unterminated fd decoration")
            self.pos = i + 1
            body = s[pos + 1 : i]
        if s.startswith("(deleted)", self.pos):  # `1</tmp/x>(deleted)`: an unlinked file
            self.pos += 9
        return _text(_unescape(body)) if "\\" in body else body


# Only what changes nesting: strings, brackets, commas and fd decorations (`<` right after a word).
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|(?<=\w)<|[()\[\]{},>]', re.S)
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}


def _split_raw(s: str, pos: int) -> tuple[list[str], int]:
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
                    raise _Bad(f"unbalanced {tok!r}")
                last = s[start : m.start()].strip()
                if last:
                    raws.append(last)
                return raws, m.end()
            if stack[-1] == _CLOSERS[tok]:
                stack.pop()
            elif tok != ">":  # `->` inside `[...]` of a decoration
                raise _Bad(f"unbalanced {tok!r}")
        elif tok == ",":
            if not stack:
                raws.append(s[start : m.start()].strip())
                start = m.end()
        elif tok[0] != '"':
            stack.append(tok)
    raise _Bad("unterminated argument list")


# --------------------------------------------------------------------------- fd decorations

_SOCK_DECO = re.compile(r"([A-Z][A-Z0-9-]*?)(v6)?:\[(.*)\]\Z", re.S)
_DEVICE_SUFFIX = re.compile(r"<(?:char|block) \d+:\d+>\Z")
_SOCKET_KINDS = {"TCP": "tcp", "UDP": "udp", "UDPLITE": "udp", "NETLINK": "netlink", "RAW": "raw", "PING": "raw"}
_fdinfo_cache: dict[str, tuple[str, str | None, str | None, str | None, int | None]] = {}


def _fdinfo(deco: str) -> FdInfo:
    """FdInfo from an -yy decoration. Decorations repeat on every call of an fd, hence the cache."""
    hit = _fdinfo_cache.get(deco)
    if hit is None:
        hit = _decode_deco(deco)
        if len(_fdinfo_cache) < 100_000:
            _fdinfo_cache[deco] = hit
    return FdInfo(*hit)


def _decode_deco(deco: str) -> tuple[str, str | None, str | None, str | None, int | None]:
    m = _SOCK_DECO.match(deco)
    if m is not None:
        proto, v6, body = m.groups()
        if proto.startswith("UNIX"):
            inode, _, path = body.partition(",")
            inode = inode.split("->")[0]
            return ("unix", None, None, _text(_unescape(path.strip('"'))) if path else None, _int_or_none(inode))
        kind = _SOCKET_KINDS.get(proto)
        if kind in ("tcp", "udp"):
            kind += "6" if v6 else ""
            if body.isdecimal():
                return (kind, None, None, None, int(body))
            local, _, remote = body.partition("->")
            return (kind, local, remote or None, None, None)
        return (kind or "socket", None, None, None, _int_or_none(body.rpartition(":")[2]))
    if deco.startswith(("socket:[", "pipe:[")):
        kind, _, rest = deco.partition(":[")
        return (kind, None, None, None, _int_or_none(rest.rstrip("]")))
    if deco.startswith("anon_inode:"):
        return ("anon", None, None, deco, None)
    if deco.startswith("/"):
        path = _DEVICE_SUFFIX.sub("", deco)
        tty = path.startswith(("/dev/pts/", "/dev/tty", "/dev/console"))
        return ("tty" if tty else "file", None, None, path, None)
    return ("unknown", None, None, deco, None)


def _int_or_none(text: str) -> int | None:
    return _number(text) if text.isdecimal() else None


def _number(text: str, base: int = 10) -> int:
    """An integer strace could have printed: 64 bits at most, else the line is not strace's."""
    if len(text) > _MAX_DIGITS + 3:  # 0x and a sign
        raise _Bad(f"number of {len(text)} digits")
    value = int(text, base)
    if not _INT_MIN <= value <= _INT_MAX:
        raise _Bad("number beyond 64 bits")
    return value


# --------------------------------------------------------------------------- values


def _num(atom: str) -> int | str:
    """Numbers as ints (strace prints modes in octal: `0644`), names and flag sets unchanged."""
    if _INT.match(atom):
        if atom.startswith(("0x", "-0x")):
            return _number(atom, 16)
        if len(atom) > 1 and atom[0] == "0":
            return _number(atom, 8)
        return _number(atom)
    return atom


def _json(v: object) -> object:
    """A parsed value as JSON-ready data (the shape `Syscall.args` promises)."""
    if isinstance(v, str):
        return None if v == "NULL" else _num(v)
    if isinstance(v, Fd):
        return v.value
    if isinstance(v, Quoted):
        return _text(v.data)
    if isinstance(v, Struct):
        if "sa_family" in v:
            return _sockaddr(v)
        out = {k: _json(x) for k, x in v.items()}
        if v.pos:
            out["_"] = [_json(x) for x in v.pos]
        return out
    if isinstance(v, list):
        return [_json(x) for x in v]
    if isinstance(v, Call):
        return v.text
    return v


def _unwrap(v: object) -> object:
    """`[16]` (strace's pointer-to-int form) as 16, anything else as JSON."""
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    return _json(v)


def _sockaddr(sa: Struct) -> object:
    """`ip:port` / `[ip6]:port` / unix path, the form FdInfo endpoints use, so they compare equal."""
    fam = sa.get("sa_family")
    if fam == "AF_INET":
        port = _call_arg(sa.get("sin_port"))
        addr = _call_arg(sa.get("sin_addr"))
        return f"{addr}:{port}"
    if fam == "AF_INET6":
        port = _call_arg(sa.get("sin6_port"))
        addr = None
        for p in sa.pos:
            if isinstance(p, Call) and p.name == "inet_pton":
                addr = _call_arg(p, 1)
        if addr is None:
            addr = _call_arg(sa.get("sin6_addr"))
        return f"[{addr}]:{port}"
    if fam == "AF_UNIX":
        path = sa.get("sun_path")
        if isinstance(path, Quoted):
            return _text(path.data)
        if isinstance(path, str) and path.startswith("@"):
            # abstract names print as @"name"; the parser hands back the whole token
            return "@" + path[1:].strip('"')
        return ""
    return {k: _json(x) for k, x in sa.items()}


def _call_arg(v: object, index: int = 0) -> object:
    if isinstance(v, Call):
        v = v.args[index] if len(v.args) > index else None
    if isinstance(v, Quoted):
        return _text(v.data)
    return _json(v)


def _shown_data(pieces: list[object]) -> bytes | None:
    """Concatenate shown buffers, stopping after the first truncated one: later bytes would not be contiguous."""
    out = []
    for piece in pieces:
        if not isinstance(piece, Quoted):
            break
        out.append(piece.data)
        if piece.truncated:
            break
    return b"".join(out) if out else None


def _iov(iov: object) -> tuple[bytes | None, int | None, bool]:
    """Shown data, total iov_len and whether every element was shown, for an iovec array."""
    if not isinstance(iov, list):
        return None, None, False
    total = 0
    bases = []
    for el in iov:
        if not isinstance(el, Struct):
            return _shown_data(bases), None, False
        bases.append(el.get("iov_base"))
        n = _json(el.get("iov_len"))
        total += n if isinstance(n, int) else 0
    return _shown_data(bases), total, True


# --------------------------------------------------------------------------- per-syscall mapping


def _fill(sc: Syscall, values: list[object], raws: list[str], annotation: str) -> None:
    """Name the arguments like the man pages (and the tracer) do and fill the data fields."""
    params = PARAMS.get(sc.name)
    if params is None:
        sc.args["raw"] = raws
        return
    args = sc.args
    named = dict(zip(params, values, strict=False))
    target = named.get(TARGETS.get(sc.name, "fd"))
    if isinstance(target, Fd) and isinstance(target.value, int):
        sc.fd = target.value
        sc.fdinfo = _fdinfo(target.deco)
    elif isinstance(target, str) and target.lstrip("-").isdecimal():
        sc.fd = _number(target)
    ok = sc.errno is None and sc.ret is not None
    for key, v in named.items():
        if key in ("buf", "iov", "msg", "msgvec", "fds", "event", "events"):
            continue
        if key in ("addrlen", "optlen", "optval"):
            args[key] = _optval(v) if key == "optval" else _unwrap(v)
        else:
            args[key] = _json(v)
    if "buf" in named:
        sc.data = _shown_data([named["buf"]])
    if "iov" in named:
        sc.data, count, _ = _iov(named["iov"])
        args["count"] = count
    if "msg" in named:
        _fill_msghdr(sc, named["msg"])
    if "msgvec" in named:
        _fill_mmsg(sc, named["msgvec"])
    if "fds" in named:
        args["fds"] = _poll_fds(named["fds"], annotation)
    if "event" in named:
        ev = named["event"]
        if isinstance(ev, Struct):
            args["events"] = _json(ev.get("events"))
            args["data"] = _epoll_data(ev)
    if "events" in named:
        evs = named["events"]
        args["events"] = (
            [{"events": _json(e.get("events")), "data": _epoll_data(e)} for e in evs if isinstance(e, Struct)]
            if isinstance(evs, list)
            else _json(evs)
        )
    if ok and sc.name in BYTE_CALLS:
        sc.nbytes = sc.ret


def _optval(v: object) -> object:
    if isinstance(v, Struct) and "l_onoff" in v:
        return {"onoff": _json(v["l_onoff"]), "linger": _json(v.get("l_linger"))}
    return _unwrap(v)


def _epoll_data(ev: Struct) -> object:
    data = ev.get("data")
    if isinstance(data, Struct):
        return _json(data.get("u64", data.get("fd")))
    return _json(data)


def _fill_msghdr(sc: Syscall, msg: object) -> None:
    if not isinstance(msg, Struct):
        sc.args["msg"] = _json(msg)
        return
    name = msg.get("msg_name")
    sc.args["addr"] = _json(name) if name is not None else None
    sc.data, count, _ = _iov(msg.get("msg_iov"))
    sc.args["count"] = count
    sc.args["iovcnt"] = _json(msg.get("msg_iovlen"))


def _fill_mmsg(sc: Syscall, vec: object) -> None:
    """msg_lens from the vector; nbytes only when every message's msg_len was shown."""
    if not isinstance(vec, list):
        return
    lens: list[int] = []
    pieces: list[object] = []
    complete = True
    for el in vec:
        if not isinstance(el, Struct):
            complete = False
            break
        n = _json(el.get("msg_len"))
        if not isinstance(n, int):
            complete = False
            break
        lens.append(n)
        hdr = el.get("msg_hdr")
        data, _, whole = _iov(hdr.get("msg_iov") if isinstance(hdr, Struct) else None)
        pieces.append(Quoted(data or b"", not whole or data is None or len(data) < n))
    if isinstance(sc.ret, int) and sc.errno is None and len(lens) != sc.ret:
        complete = False
    sc.msg_lens = lens or None
    sc.nbytes = sum(lens) if complete and lens else None
    sc.data = _shown_data(pieces)


def _poll_fds(fds: object, annotation: str) -> object:
    """poll's fds with revents taken from the result annotation `([{fd=3, revents=POLLIN}])`."""
    if not isinstance(fds, list):
        return _json(fds)
    out = [
        {"fd": _json(f.get("fd")), "events": _json(f.get("events")), "revents": None}
        for f in fds
        if isinstance(f, Struct)
    ]
    if annotation.startswith("(["):
        try:
            revs = _Parser(annotation, 1).value()
        except _Bad:
            return out
        i = 0
        for r in revs if isinstance(revs, list) else ():
            if not isinstance(r, Struct):
                continue
            fd = _json(r.get("fd"))
            while i < len(out) and out[i]["fd"] != fd:
                i += 1
            if i < len(out):
                out[i]["revents"] = _json(r.get("revents"))
                i += 1
    return out


# --------------------------------------------------------------------------- lines

# `PID ` with -o, `[pid PID] ` when strace wrote to stderr, nothing with -ff or a single process.
_HEAD = re.compile(r"(?:(\d{1,10}) +|\[pid +(\d{1,10})\] )?(\d{1,12})\.(\d+) (.*)\Z", re.S)
_CALL = re.compile(r"(\w+)\(")
_RESUMED = re.compile(r"<\.\.\. (\w+) resumed>")
_UNFINISHED = " <unfinished ...>"
_RESULT = re.compile(
    r" *= *(\?|0x[0-9a-fA-F]+|-?\d+)(<)?"  # ret, maybe with an fd decoration after it
)
_ERRNO = re.compile(r" +(E[A-Z0-9_]+) \((?:[^()]|\([^()]*\))*\)")
_DURATION = re.compile(r" <(\d+)\.(\d+)>\Z")


def _ns(sec: str, frac: str) -> int:
    """Decimal seconds to integer ns without going through float (which loses the last digits)."""
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


class _Pending(NamedTuple):
    name: str
    text: str  # `name(args...` up to the unfinished marker
    enter_ns: int


class _Reader:
    """Turns the lines of one file into Syscalls; keeps what has to outlive a line (unfinished calls)."""

    def __init__(self, default_pid: int) -> None:
        self.default_pid = default_pid
        self.syscalls: list[Syscall] = []
        self.pending: dict[int, _Pending] = {}
        self.threads: list[tuple[int, int, int]] = []  # (enter_ns, creator tid, new thread tid)
        self.exits: list[tuple[int, str]] = []  # (tid, how it ended)

    def line(self, text: str) -> bool:
        """Consume one line; False when it is not strace output."""
        m = _HEAD.match(text)
        if m is None:
            return False
        pid_s, pid_b, sec, frac, body = m.groups()
        tid = int(pid_s or pid_b) if (pid_s or pid_b) else self.default_pid
        ts = _ns(sec, frac)
        c = body[:1]
        if c == "+":
            return self._exit(tid, body)
        if c == "-":
            return body.startswith("--- ") and body.endswith(" ---")
        if c == "<":
            r = _RESUMED.match(body)
            pend = self.pending.pop(tid, None)
            if r is None or pend is None or pend.name != r.group(1):
                return False
            rest = body[r.end() :].replace(_UNFINISHED, "", 1)
            return self._complete(tid, pend.name, pend.text + rest, pend.enter_ns, ts)
        m = _CALL.match(body)
        if m is None:
            return False
        name = m.group(1)
        if body.endswith(_UNFINISHED):
            self.pending[tid] = _Pending(name, body[: -len(_UNFINISHED)], ts)
            return True
        return self._complete(tid, name, body, ts, None)

    def _exit(self, tid: int, body: str) -> bool:
        if not (body.startswith("+++ ") and body.endswith(" +++")):
            return False
        what = body[4:-4]
        if what.startswith("exited with "):
            self.exits.append((tid, "exited " + what[12:]))
        elif what.startswith("killed by "):
            self.exits.append((tid, what))
        return True

    def _complete(self, tid: int, name: str, text: str, enter_ns: int, resumed_ns: int | None) -> bool:
        try:
            sc = self._build(tid, name, text, enter_ns, resumed_ns, strict=True)
        except (_Bad, ValueError):  # ValueError: a number strace would never print
            return False
        self.syscalls.append(sc)
        return True

    def _build(self, tid: int, name: str, text: str, enter_ns: int, resumed_ns: int | None, strict: bool) -> Syscall:
        if not strict:
            text += ")"  # the arguments strace printed before the thread vanished
        values: list[object] = []
        raws: list[str] = []
        end = len(text)
        try:
            if name in PARAMS:
                p = _Parser(text, len(name) + 1)
                values = p.args(")")
                end = p.pos
            else:
                raws, end = _split_raw(text, len(name) + 1)
        except _Bad:
            if strict:
                raise
        sc = Syscall(id=0, pid=tid, tid=tid, name=name, enter_ns=enter_ns)
        annotation = ""
        if strict:
            annotation = self._result(sc, text, end, resumed_ns)
        if name in ("clone", "clone3") and isinstance(sc.ret, int) and sc.ret > 0 and "CLONE_THREAD" in text:
            self.threads.append((enter_ns, tid, sc.ret))
        _fill(sc, values, raws, annotation)
        return sc

    def _result(self, sc: Syscall, text: str, pos: int, resumed_ns: int | None) -> str:
        """Parse ` = ret [ERRNO (msg)] [(annotation)] [<duration>]`; return the annotation."""
        m = _RESULT.match(text, pos)
        if m is None:
            raise _Bad("no result")
        ret, deco = m.groups()
        end = m.end()
        if deco:
            p = _Parser(text, end - 1)
            sc.ret_fdinfo = _fdinfo(p.decoration())
            end = p.pos
        d = _DURATION.search(text, end)
        tail_end = d.start() if d else len(text)
        e = _ERRNO.match(text, end, tail_end)
        if e is not None:
            sc.errno = e.group(1)
            end = e.end()
        if ret == "?":
            sc.ret = -1 if sc.errno else None
        else:
            sc.ret = _number(ret, 16) if ret.startswith("0x") else _number(ret)
        if d is not None:
            sc.exit_ns = sc.enter_ns + _ns(d.group(1), d.group(2))
        elif ret != "?":
            sc.exit_ns = resumed_ns  # a log without -T: only a resumed line tells when the call ended
        return text[end:tail_end].strip()

    def finish(self) -> None:
        """Calls still unfinished at the end of the log: the thread died in them or strace stopped."""
        for tid, pend in self.pending.items():
            # Its arguments are read loosely (_build), but a number strace could not have printed still
            # drops the call.
            with contextlib.suppress(_Bad):
                self.syscalls.append(self._build(tid, pend.name, pend.text, pend.enter_ns, None, strict=False))
        self.pending.clear()


def _files(path: Path) -> list[tuple[Path, int | None]]:
    """The file(s) behind `path`: itself, its `-ff` siblings `path.PID`, or the `*.PID` files in it."""
    if str(path) == STDIN or path.is_file():
        return [(path, None)]
    if path.exists() and not path.is_dir():
        # A pipe (`--strace <(zcat log.gz)`, a FIFO) is read as standard input is; a device
        # (/dev/zero) would be read without end.
        if not stat.S_ISFIFO(path.stat().st_mode):
            raise InputError(str(path), "not a regular file or a pipe")
        return [(path, None)]
    if path.is_dir():
        candidates = list(path.iterdir())
    else:
        parent = path.parent
        candidates = [f for f in parent.iterdir() if f.name.startswith(path.name + ".")] if parent.is_dir() else []
    found = []
    for f in candidates:
        suffix = f.name.rpartition(".")[2]
        if suffix.isdecimal() and f.is_file():
            found.append((f, int(suffix)))
    if not found:
        what = "no strace -ff files (NAME.PID) in directory" if path.is_dir() else "no such file (nor PATH.PID files)"
        raise InputError(str(path), what)
    return sorted(found, key=lambda item: item[1])


# What strace -t or -tt put first on a line (after a pid, with -f): a time of day.
_TIME_OF_DAY = re.compile(r"(?:\[?(?:pid\s+)?\d+\]?\s+)?\d\d:\d\d:\d\d(?:\.\d+)?\s")
_WANTED = "record the log with strace -f -ttt -T -yy -o LOG CMD"


def _read_file(name: str, reader: _Reader) -> tuple[int, int, int | None]:
    """Feed one file to `reader`; returns (lines read, unparsable lines, first unparsable line).

    A file with no strace line at all is almost certainly the wrong file, so that raises.
    """
    lineno = good = bad = 0
    first_bad = None
    first_bad_text = ""
    try:
        # "-": standard input (`strace … 2>&1 >/dev/null CMD | wirecorr analyze --strace -`).
        source: str | int = 0 if name == STDIN else name
        with open(source, encoding="latin-1", newline="\n", closefd=source != 0) as fh:
            for lineno, raw in enumerate(fh, 1):
                text = raw.rstrip("\r\n")
                if not text:
                    continue
                if reader.line(text):
                    good += 1
                else:
                    bad += 1
                    if first_bad is None:
                        first_bad, first_bad_text = lineno, text
    except OSError as exc:
        raise InputError(name, exc.strerror or str(exc)) from exc
    if good == 0:
        if first_bad is None:
            raise InputError(name, "empty strace log")
        if _TIME_OF_DAY.match(first_bad_text):
            why = "strace -t/-tt give the time of day only, wirecorr needs seconds since the epoch"
            raise InputError(name, f"{why}: {_WANTED}", line=first_bad)
        raise InputError(name, f"not strace -ttt output (no line could be parsed): {_WANTED}", line=first_bad)
    return lineno, bad, first_bad


def read_strace_log(path: str | os.PathLike[str]) -> StraceLog:
    """Read a strace log, an `-ff` set (by its `-o` base name) or a directory of `-ff` files.

    Unparsable lines are counted, not fatal: a log cut off by a crash still has value.
    """
    lines = unparsable = 0
    first_bad: tuple[str, int] | None = None
    readers: list[_Reader] = []
    files = _files(Path(path))
    with paused_gc():
        for file, pid in files:
            name = str(file)
            reader = _Reader(pid if pid is not None else 0)
            n, bad, file_first_bad = _read_file(name, reader)
            lines += n
            unparsable += bad
            if file_first_bad is not None and first_bad is None:
                first_bad = (name, file_first_bad)
            reader.finish()
            readers.append(reader)
    return _merge(readers, lines, unparsable, first_bad)


def _merge(readers: list[_Reader], lines: int, unparsable: int, first_bad: tuple[str, int] | None) -> StraceLog:
    """Resolve thread ids to processes (clone with CLONE_THREAD), sort by entry time, number the calls."""
    threads = sorted(t for r in readers for t in r.threads)
    tgid: dict[int, int] = {}
    for _, creator, new in threads:
        tgid[new] = tgid.get(creator, creator)
    syscalls = [sc for r in readers for sc in r.syscalls]
    if tgid:
        for sc in syscalls:
            sc.pid = tgid.get(sc.tid, sc.tid)
    syscalls.sort(key=lambda sc: sc.enter_ns)
    for i, sc in enumerate(syscalls):
        sc.id = i
    processes = {tid: how for r in readers for tid, how in r.exits if tid not in tgid}
    return StraceLog(syscalls, lines, unparsable, first_bad, processes)
