"""A subset of tcpdump's filter language (pcap-filter(7)) compiled to a Packet predicate.

Files are filtered after decoding rather than with libpcap's BPF so the same expression
works on pcap, pcapng and recordings alike, and on any link type. Supported:

    host A | src host A | dst host A        net 10.0.0.0/8 | src net … | dst net …
    port N | src port N | dst port N        portrange 4000-4100 (with src/dst too)
    tcp | udp | icmp | icmp6 | ip | ip6     tcp port 80, udp dst port 53 (protocol qualifier)
    and/&&, or/||, not/!, parentheses       a bare value repeats the previous qualifier,
                                            as in tcpdump: `port 80 or 443`, `host a or b`
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from wirecorr.errors import WirecorrError
from wirecorr.model import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Packet

Predicate = Callable[[Packet], bool]
# The same expression in postfix for the compiled packet core (wirecorr._core.packets.
# FilterProgram), which decides on its C packet without a Packet object. Each predicate
# made here carries its program as `.program`.
Instr = tuple[object, ...]

_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[^\s()!]+)")
_PROTOS = {"tcp": PROTO_TCP, "udp": PROTO_UDP, "icmp": PROTO_ICMP, "icmp6": PROTO_ICMPV6}
# Parentheses and `not`s nest at most this deep: the parser and the compiled predicate
# recurse once per level, and no hand-written filter comes near it.
MAX_NESTING = 64


class FilterError(WirecorrError):
    """The expression is not in the supported subset; says where."""

    exit_code = 2


@dataclass(slots=True)
class _Qualifier:
    direction: str  # "src", "dst" or "" (either)
    kind: str  # "host", "net", "port", "portrange"
    proto: int | None


def compile_filter(expr: str) -> Predicate:
    tokens = _TOKEN.findall(expr)
    if "".join(tokens) != re.sub(r"\s+", "", expr):
        raise FilterError(f"filter: cannot read {expr!r}")
    if not tokens:
        return _with(lambda pkt: True, [("true",)])
    parser = _Parser(tokens, expr)
    pred = parser.parse_or()
    if parser.pos != len(tokens):
        raise FilterError(f"filter: unexpected {tokens[parser.pos]!r} in {expr!r}")
    return pred


class _Parser:
    def __init__(self, tokens: list[str], expr: str) -> None:
        self.tokens = tokens
        self.expr = expr
        self.pos = 0
        self.last: _Qualifier | None = None
        self.depth = 0

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise FilterError(f"filter: parentheses and `not` nested deeper than {MAX_NESTING} levels in the filter")

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise FilterError(f"filter: {self.expr!r} ends too early")
        self.pos += 1
        return tok

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.peek() in ("or", "||"):
            self.take()
            parts.append(self.parse_and())
        return _either(parts)

    def parse_and(self) -> Predicate:
        parts = [self.parse_not()]
        while self.peek() in ("and", "&&"):
            self.take()
            parts.append(self.parse_not())
        return _both(parts)

    def parse_not(self) -> Predicate:
        if self.peek() in ("not", "!"):
            self.take()
            self.nest()
            inner = self.parse_not()
            self.depth -= 1
            return _with(lambda pkt: not inner(pkt), [*_program(inner), ("not",)])
        return self.parse_primary()

    def parse_primary(self) -> Predicate:
        tok = self.peek()
        if tok == "(":
            self.take()
            self.nest()
            inner = self.parse_or()
            self.depth -= 1
            if self.take() != ")":
                raise FilterError(f"filter: missing ')' in {self.expr!r}")
            return inner
        return self.parse_term()

    def parse_term(self) -> Predicate:
        proto: int | None = None
        direction = ""
        tok = self.take()
        if tok in _PROTOS:
            proto = _PROTOS[tok]
            if self.peek() not in ("src", "dst", "host", "net", "port", "portrange"):
                return _proto(proto)
            tok = self.take()
        elif tok in ("ip", "ip6"):
            version = 4 if tok == "ip" else 6
            return _with(lambda pkt: pkt.ip_version == version, [("version", version)])
        if tok in ("src", "dst"):
            direction = tok
            tok = self.take()
        if tok in ("host", "net", "port", "portrange"):
            qual = _Qualifier(direction, tok, proto)
            value = self.take()
        elif self.last is not None and not direction and proto is None:
            qual, value = self.last, tok  # tcpdump's "port 80 or 443"
        elif _looks_like_address(tok):
            qual, value = _Qualifier(direction, "host", proto), tok
        else:
            raise FilterError(f"filter: unknown word {tok!r} in {self.expr!r}")
        self.last = qual
        return _primitive(qual, value, self.expr)


def _with(pred: Predicate, program: list[Instr]) -> Predicate:
    pred.program = program  # type: ignore[attr-defined]
    return pred


def _program(pred: Predicate) -> list[Instr]:
    return pred.program  # type: ignore[attr-defined, no-any-return]


def _chain(parts: list[Predicate], op: str) -> list[Instr]:
    """Postfix of a chain: a b op c op …, so the evaluation stack stays two deep."""
    program = list(_program(parts[0]))
    for part in parts[1:]:
        program += _program(part)
        program.append((op,))
    return program


# A flat list per `or`/`and` chain, not one closure per operator: `port 1 or 2 or … or 5000`
# would otherwise recurse 5000 deep on every packet.
def _either(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return _with(lambda pkt: a(pkt) or b(pkt), _chain(parts, "or"))
    return _with(lambda pkt: any(p(pkt) for p in parts), _chain(parts, "or"))


def _both(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return _with(lambda pkt: a(pkt) and b(pkt), _chain(parts, "and"))
    return _with(lambda pkt: all(p(pkt) for p in parts), _chain(parts, "and"))


def _proto(proto: int) -> Predicate:
    return _with(lambda pkt: pkt.proto == proto, [("proto", proto)])


def _looks_like_address(tok: str) -> bool:
    try:
        ipaddress.ip_address(tok)
    except ValueError:
        return False
    return True


def _primitive(qual: _Qualifier, value: str, expr: str) -> Predicate:
    src = qual.direction in ("", "src")
    dst = qual.direction in ("", "dst")
    if qual.kind in ("host", "net"):
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise FilterError(f"filter: {value!r} is not an address or network in {expr!r}") from None
        if qual.kind == "host" and net.num_addresses != 1:
            raise FilterError(f"filter: host {value!r} is a network; use 'net'")
        base = net.network_address.packed
        plen = net.prefixlen

        def match_addr(addr: bytes) -> bool:
            if len(addr) != len(base):
                return False
            if plen == len(base) * 8:
                return addr == base
            bits = int.from_bytes(addr, "big") >> (len(base) * 8 - plen)
            return bits == int.from_bytes(base, "big") >> (len(base) * 8 - plen)

        pred: Predicate = lambda pkt: (src and match_addr(pkt.src)) or (dst and match_addr(pkt.dst))  # noqa: E731
        instr: Instr = ("net", qual.proto, src, dst, base, plen)
    else:
        try:
            if qual.kind == "port":
                lo = hi = int(value)
            else:
                lo_s, _, hi_s = value.partition("-")
                lo, hi = int(lo_s), int(hi_s)
        except ValueError:
            raise FilterError(f"filter: {value!r} is not a port in {expr!r}") from None
        if not (0 <= lo <= hi <= 65535):
            raise FilterError(f"filter: port {value!r} out of range")

        def pred(pkt: Packet) -> bool:
            if pkt.proto not in (PROTO_TCP, PROTO_UDP):
                return False
            return (src and lo <= pkt.sport <= hi) or (dst and lo <= pkt.dport <= hi)

        instr = ("port", qual.proto, src, dst, lo, hi)

    if qual.proto is None:
        return _with(pred, [instr])
    proto = qual.proto
    # The program's net/port instruction tests the protocol itself.
    return _with(lambda pkt: pkt.proto == proto and pred(pkt), [instr])
