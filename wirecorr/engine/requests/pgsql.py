"""PostgreSQL frontend/backend protocol 3.0 framing (the protocol chapter of the PostgreSQL
manual, "Message Formats").

Written here: dpkt has no PostgreSQL parser. Every message but the first ones of a client
(SSLRequest, GSSENCRequest, CancelRequest, StartupMessage: a length and a code, no type
byte) and the server's one-byte answer to SSLRequest/GSSENCRequest is a type byte and a
length that counts itself, so a message's end is always known from its first five bytes.

A request is a unit of client messages that the server answers with ReadyForQuery ('Z'):
the startup (with any password messages), a simple Query, an extended-protocol sequence
up to Sync, a function call. An SSLRequest is a round trip of its own; Terminate is none.
"""

from __future__ import annotations

import struct

from wirecorr.engine.requests.streams import ByteSource, Frame

PORTS = frozenset((5432, 5433))
_CODES = {80877103: "ssl", 80877104: "gssenc", 80877102: "cancel", 196608: "startup"}
# Longest message a framer believes (1 GB is the server's own limit).
MAX_LEN = 1 << 30
QUERY_CHARS = 200


def is_startup(head: bytes) -> bool:
    """Whether a client stream starts with a startup-phase message."""
    if len(head) < 8:
        return False
    n, code = struct.unpack("!II", head[:8])
    return code in _CODES and 8 <= n < 10000


def frames(src: ByteSource, limit: int, *, client: bool = False, answer_byte: bool = False) -> list[Frame]:
    """Messages of one direction. A client stream starts untyped; a server stream starts
    with a one-byte answer when the client opened with SSLRequest or GSSENCRequest."""
    out: list[Frame] = []
    pos = 0
    untyped = client
    if answer_byte and limit > 0:
        b = src.get(0, 1)
        if not b:
            return out
        out.append(Frame(0, 1, {"pgsql.type": "answer", "pgsql.answer": chr(b[0])}))
        if b != b"N":
            return out
        pos = 1
    while pos < limit:
        if untyped:
            head = src.get(pos, 8)
            if len(head) < 8:
                break
            n, code = struct.unpack("!II", head)
            kind = _CODES.get(code)
            if kind is None or n < 8:
                break
            out.append(Frame(pos, min(pos + n, limit), {"pgsql.type": kind}, pos + n <= limit))
            pos += n
            untyped = kind in ("ssl", "gssenc")
            continue
        head = src.get(pos, 5)
        if len(head) < 5:
            break
        typ = chr(head[0])
        (n,) = struct.unpack("!I", head[1:5])
        if not typ.isalpha() or n < 4 or n > MAX_LEN:
            break
        end = pos + 1 + n
        fields: dict[str, object] = {"pgsql.type": typ}
        if typ in "QEPC" and (client or typ in "EC"):
            _detail(src, pos + 5, n - 4, typ, client, fields)
        out.append(Frame(pos, min(end, limit), fields, end <= limit))
        pos = end
    return out


def _detail(src: ByteSource, pos: int, n: int, typ: str, client: bool, fields: dict[str, object]) -> None:
    body = src.get(pos, min(n, 4096))
    if client and typ == "Q":
        fields["pgsql.query"] = body.split(b"\0", 1)[0][:QUERY_CHARS].decode("utf-8", "replace")
    elif client and typ == "P":
        parts = body.split(b"\0", 2)
        if len(parts) > 1:
            fields["pgsql.query"] = parts[1][:QUERY_CHARS].decode("utf-8", "replace")
    elif not client and typ == "C":
        fields["pgsql.tag"] = body.split(b"\0", 1)[0].decode("utf-8", "replace")
    elif not client and typ == "E":
        items = {p[:1]: p[1:].decode("utf-8", "replace") for p in body.split(b"\0") if p}
        fields["pgsql.error"] = items.get(b"C", "?")
        if b"M" in items:
            fields["pgsql.message"] = items[b"M"]


def pair(client: list[Frame], server: list[Frame]) -> list[tuple[Frame, list[Frame]]]:
    """Client units with the server messages that answer them (up to ReadyForQuery)."""
    units: list[list[Frame]] = []
    current: list[Frame] = []
    for f in client:
        typ = f.fields["pgsql.type"]
        in_startup = bool(current) and current[0].fields["pgsql.type"] == "startup"
        if typ == "p" and in_startup:
            current.append(f)
            continue
        if in_startup:
            units.append(current)
            current = []
        if typ in ("ssl", "gssenc", "cancel", "Q", "F"):
            units.append([f])
        elif typ == "startup":
            current = [f]
        elif typ == "S":
            current.append(f)
            units.append(current)
            current = []
        elif typ in ("d", "c", "f") and units and not current:
            # COPY … FROM STDIN data goes with the query that started it.
            units[-1].append(f)
        elif typ != "X":
            current.append(f)
    if current:
        units.append(current)
    groups: list[list[Frame]] = []
    group: list[Frame] = []
    for f in server:
        group.append(f)
        if f.fields["pgsql.type"] in ("Z", "answer"):
            groups.append(group)
            group = []
    if group:
        groups.append(group)
    out: list[tuple[Frame, list[Frame]]] = []
    gi = 0
    for unit in units:
        kind = unit[0].fields["pgsql.type"]
        answer: list[Frame] = []
        if kind != "cancel" and gi < len(groups):
            answer = groups[gi]
            gi += 1
        out.append((_unit_frame(unit), answer))
    return out


def _unit_frame(unit: list[Frame]) -> Frame:
    first = unit[0]
    typ = str(first.fields["pgsql.type"])
    kind = {"Q": "query", "F": "function"}.get(typ, typ if typ in _CODES.values() else "extended")
    fields: dict[str, object] = {"pgsql.kind": kind}
    query = next((f.fields["pgsql.query"] for f in unit if "pgsql.query" in f.fields), None)
    if query is not None:
        fields["pgsql.query"] = query
    return Frame(first.start, unit[-1].end, fields, unit[-1].complete)


def answer_fields(answer: list[Frame]) -> dict[str, object]:
    """What the server said: the last CommandComplete tag, the first error, rows sent."""
    fields: dict[str, object] = {}
    tags = [f.fields["pgsql.tag"] for f in answer if "pgsql.tag" in f.fields]
    if tags:
        fields["pgsql.tag"] = tags[-1]
    errors = [f for f in answer if "pgsql.error" in f.fields]
    if errors:
        fields["pgsql.error"] = errors[0].fields["pgsql.error"]
        if "pgsql.message" in errors[0].fields:
            fields["pgsql.message"] = errors[0].fields["pgsql.message"]
    rows = sum(1 for f in answer if f.fields["pgsql.type"] == "D")
    if rows:
        fields["pgsql.rows"] = rows
    answers = [f.fields["pgsql.answer"] for f in answer if "pgsql.answer" in f.fields]
    if answers:
        fields["pgsql.answer"] = answers[0]
    return fields


def describe(fields: dict[str, object], answered: bool) -> tuple[str, str]:
    kind = str(fields.get("pgsql.kind", "?"))
    query = str(fields.get("pgsql.query", ""))
    names = {"ssl": "SSLRequest", "gssenc": "GSSENCRequest", "cancel": "CancelRequest"}
    what = " ".join(query.split())[:60] if query else names.get(kind, kind)
    endpoint = query.split(None, 1)[0].upper() if query.split() else names.get(kind, kind)
    if not answered:
        outcome = "no answer"
    elif "pgsql.error" in fields:
        outcome = f"ERROR {fields['pgsql.error']}"
    else:
        answer = {"N": "N (no encryption)", "S": "S (TLS follows)", "G": "G (GSSAPI follows)"}
        outcome = str(fields.get("pgsql.tag") or answer.get(str(fields.get("pgsql.answer")), "ready"))
    return f"{what} → {outcome}", endpoint
