"""Redis RESP framing (RESP2 and RESP3): commands from the client, replies from the server.

Written here: dpkt has no RESP parser. A value's end follows from its type byte and its
length lines; bulk payloads are skipped by length, so only the length lines and the first
bytes (the command name) need to have been recorded. The client may also send inline
commands (a plain line). Replies answer commands in order, which covers pipelines.
"""

from __future__ import annotations

from wirecorr.engine.requests.streams import ByteSource, Frame, line_at, runs_to

PORTS = frozenset((6379, 6380, 26379))
_LINE_TYPES = frozenset(b"+-:_,#(")
_BLOB_TYPES = frozenset(b"$=!")
_AGGREGATES = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}
# Inline commands that confirm Redis off its ports (with a RESP reply).
INLINE_COMMANDS = frozenset(
    (b"PING", b"SET", b"GET", b"DEL", b"INCR", b"DECR", b"EXISTS", b"EXPIRE", b"KEYS", b"MGET", b"MSET",
     b"LPUSH", b"RPUSH", b"LPOP", b"RPOP", b"HSET", b"HGET", b"SADD", b"ZADD", b"INFO", b"AUTH", b"SELECT",
     b"ECHO", b"FLUSHALL", b"FLUSHDB", b"DBSIZE", b"TTL", b"TYPE", b"QUIT", b"HELLO", b"CLIENT")
)  # fmt: skip
# Arguments kept per command in the fields (the name and its key, usually).
KEEP_ARGS = 2


def is_command(head: bytes, reply: bytes = b"", port: bool = False) -> bool:
    """Whether a client stream starts like a RESP command: an array of bulk strings, or an
    inline command (`PING\r\n`) on a Redis port or answered by a RESP reply."""
    if not head.startswith(b"*"):
        word = head.split(b"\r\n", 1)[0].split(b" ", 1)[0]
        answered = reply[:1] in (b"+", b"-", b":", b"$", b"*", b"_", b"%")
        return word.isalpha() and b"\r\n" in head and (port or (answered and word.upper() in INLINE_COMMANDS))
    line, sep, rest = head.partition(b"\r\n")
    return line[1:].isdigit() and (not sep or rest[:1] in (b"$", b""))


def _value(src: ByteSource, pos: int, keep: list[bytes], errors: list[bytes]) -> int | None:
    """Just past the value at `pos`; the first KEEP_ARGS bulk/simple strings of its top level
    go to `keep`, an error's text to `errors`. None when a length line is not known."""
    todo = 1
    top = True
    while todo:
        line = line_at(src, pos)
        if not line:
            return None
        kind = line[0]
        todo -= 1
        if kind in _LINE_TYPES:
            if kind == ord("-"):
                errors.append(line[1:])
            elif len(keep) < KEEP_ARGS and kind == ord("+"):
                keep.append(line[1:])
            pos += len(line) + 2
        elif kind in _BLOB_TYPES:
            try:
                n = int(line[1:])
            except ValueError:
                return None
            pos += len(line) + 2
            if n >= 0:
                if kind == ord("!"):
                    errors.append(src.get(pos, min(n, 200)))
                elif len(keep) < KEEP_ARGS:
                    keep.append(src.get(pos, min(n, 200)))
                pos += n + 2
        elif kind in _AGGREGATES:
            try:
                n = int(line[1:])
            except ValueError:
                return None
            pos += len(line) + 2
            if n > 0:
                todo += n * _AGGREGATES[kind]
            if top and kind == ord("*") and n <= 0:
                keep.append(b"")
        else:
            return None
        top = False
    return pos


def frames(src: ByteSource, limit: int) -> list[Frame]:
    """The commands (client stream) or replies (server stream) up to offset `limit`."""
    out: list[Frame] = []
    pos = 0
    while pos < limit:
        head = src.get(pos, 1)
        if not head:
            break
        keep: list[bytes] = []
        errors: list[bytes] = []
        if head[0] in _LINE_TYPES or head[0] in _BLOB_TYPES or head[0] in _AGGREGATES:
            end = _value(src, pos, keep, errors)
        else:
            line = line_at(src, pos)
            if line is not None and not line.strip():
                # An empty inline line is skipped by the server, unanswered.
                pos += len(line) + 2
                continue
            end = None if line is None else pos + len(line) + 2
            if line is not None:
                keep = line.split()[:KEEP_ARGS]
        fields = _fields(head, keep, errors)
        if head[:1] in (b"$", b"*", b"_") and (head[:1] == b"_" or src.get(pos, 3)[1:3] == b"-1"):
            fields["redis.nil"] = True
        if end is None and not runs_to(src, pos, limit):
            break
        if end is None or end > limit:
            out.append(Frame(pos, limit, fields, False))
            break
        out.append(Frame(pos, end, fields))
        pos = end
    return out


def _fields(head: bytes, keep: list[bytes], errors: list[bytes]) -> dict[str, object]:
    words = [k.decode("utf-8", "replace") for k in keep]
    fields: dict[str, object] = {"redis.type": chr(head[0])}
    if words:
        fields["redis.words"] = words
    if errors:
        fields["redis.error"] = errors[0].decode("utf-8", "replace")
    return fields


def pair_fields(command: Frame, reply: Frame | None) -> dict[str, object]:
    """A request's fields: the command's name and key, the reply's type and error."""
    words = command.fields.get("redis.words") or []
    assert isinstance(words, list)
    fields: dict[str, object] = {"redis.cmd": words[0].upper() if words else ""}
    if len(words) > 1:
        fields["redis.key"] = words[1]
    if reply is not None:
        fields["redis.reply"] = "nil" if reply.fields.get("redis.nil") else reply.fields.get("redis.type")
        if "redis.error" in reply.fields:
            fields["redis.error"] = reply.fields["redis.error"]
    return fields


def describe(fields: dict[str, object], answered: bool) -> tuple[str, str]:
    cmd = str(fields.get("redis.cmd", "?"))
    key = f" {fields['redis.key']}" if "redis.key" in fields else ""
    if not answered:
        outcome = "no reply"
    elif "redis.error" in fields:
        outcome = "-" + str(fields["redis.error"]).split(" ", 1)[0]
    else:
        outcome = {"+": "OK", "$": "bulk", "nil": "nil", "*": "array", ":": "integer", "_": "null"}.get(
            str(fields.get("redis.reply")), str(fields.get("redis.reply"))
        )
    return f"{cmd}{key} → {outcome}", cmd
