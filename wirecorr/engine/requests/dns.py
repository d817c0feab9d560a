"""DNS framing: over UDP one datagram is one message, over TCP each message has a two-byte
length prefix (RFC 1035 §4.2.2). Messages are parsed with dpkt.dns.

A response answers the oldest open query with the same id, name and type on the same
flow; a query repeated before its answer is a retry of the first (`dns.retries`). A
repeat from another flow (a new source port, as dig and most stub resolvers send each try)
is folded in the same way once every flow is framed (`build._merge_dns_retries`).
"""

from __future__ import annotations

import struct

import dpkt

from wirecorr.engine.requests.streams import ByteSource, Frame

PORTS = frozenset((53, 5353, 5053))
_TYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
    35: "NAPTR", 43: "DS", 46: "RRSIG", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 255: "ANY",
}  # fmt: skip
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def parse(payload: bytes) -> dict[str, object] | None:
    """A DNS message's fields, or None if the bytes are not one (with one question)."""
    try:
        msg = dpkt.dns.DNS(payload)
    except (dpkt.UnpackError, struct.error, IndexError, UnicodeDecodeError, ValueError):
        return None
    if len(msg.qd) != 1 or msg.opcode != 0:
        return None
    q = msg.qd[0]
    fields: dict[str, object] = {
        "dns.id": msg.id,
        "dns.qname": q.name,
        "dns.qtype": _TYPES.get(q.type, str(q.type)),
        "dns.response": bool(msg.qr),
    }
    if msg.qr:
        fields["dns.rcode"] = msg.rcode
        fields["dns.answers"] = len(msg.an)
    return fields


def key(fields: dict[str, object]) -> tuple[object, object, object]:
    return fields["dns.id"], fields["dns.qname"], fields["dns.qtype"]


def is_tcp_query(head: bytes) -> bool:
    """Whether a TCP stream starts with a length-prefixed DNS query."""
    if len(head) < 14:
        return False
    (n,) = struct.unpack("!H", head[:2])
    if n < 12 or head[4] & 0x80:
        return False
    return int.from_bytes(head[6:8], "big") == 1


def tcp_frames(src: ByteSource, limit: int) -> list[Frame]:
    out: list[Frame] = []
    pos = 0
    while pos + 2 <= limit:
        prefix = src.get(pos, 2)
        if len(prefix) < 2:
            break
        (n,) = struct.unpack("!H", prefix)
        end = pos + 2 + n
        body = src.get(pos + 2, n)
        fields = parse(body) if len(body) == n else None
        if fields is None:
            break
        out.append(Frame(pos, min(end, limit), fields, end <= limit))
        pos = end
    return out


def pair(queries: list[Frame], answers: list[Frame]) -> list[tuple[Frame, list[Frame]]]:
    """Each query with its answer, by id, name and type; repeats before the answer are
    retries, counted on the first query and dropped as requests of their own."""
    open_: dict[tuple[object, object, object], list[tuple[Frame, list[Frame]]]] = {}
    out: list[tuple[Frame, list[Frame]]] = []
    for q in queries:
        k = key(q.fields)
        waiting = [p for p in open_.get(k, []) if not p[1]]
        if waiting:
            first = waiting[0][0]
            first.fields["dns.retries"] = int(first.fields.get("dns.retries", 0)) + 1  # type: ignore[call-overload]
            continue
        entry: tuple[Frame, list[Frame]] = (q, [])
        open_.setdefault(k, []).append(entry)
        out.append(entry)
    for a in answers:
        for _, got in open_.get(key(a.fields), []):
            if not got:
                got.append(a)
                break
    return out


def describe(fields: dict[str, object], answered: bool) -> tuple[str, str]:
    qtype, qname = fields.get("dns.qtype", "?"), fields.get("dns.qname", "?")
    rcode = fields.get("dns.rcode")
    outcome = "no answer" if not answered or rcode is None else RCODES.get(int(rcode), str(rcode))  # type: ignore[call-overload]
    if answered and rcode == 0:
        outcome += f" ({fields.get('dns.answers', 0)} answers)"
    return f"{qtype} {qname} → {outcome}", f"{qtype} {qname}"
