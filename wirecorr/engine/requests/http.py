"""HTTP/1.0 and 1.1 framing (RFC 9112 §6.3, message body length).

Heads are parsed with dpkt's header parser (`dpkt.http.parse_headers`); the start line and
the body length are read here, because dpkt's `Request`/`Response` parse only a message
whose whole body is in hand, while framing needs just the head and the length fields: the
body bytes of a recording are often not recorded at all, and need not be.

A request has a body only with Content-Length or chunked Transfer-Encoding. A response has
none for HEAD, 1xx, 204 and 304; otherwise chunked, then Content-Length, else it runs to
the end of the stream (the server closes). 1xx responses are interim: they come before the
final one for the same request. After 101 (a protocol switch) the stream is no longer HTTP.
"""

from __future__ import annotations

from io import BytesIO

import dpkt

from wirecorr.engine.requests.streams import ByteSource, Frame, line_at, runs_to

MAX_HEAD = 65536
METHODS = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE", b"PROPFIND")
)
PORTS = frozenset((80, 8000, 8008, 8080, 8081, 8888, 3000, 5000))


def is_request(head: bytes) -> bool:
    """Whether bytes start like an HTTP/1.x request line (a method, a space, a target)."""
    method, _, rest = head.partition(b" ")
    return method in METHODS and rest[:1] in (b"/", b"*", b"h")


def is_response(head: bytes) -> bool:
    return head.startswith(b"HTTP/1.") and len(head) >= 12 and head[8:9] == b" " and head[9:12].isdigit()


def _head(src: ByteSource, pos: int) -> tuple[bytes, list[bytes], dict[str, str]] | None:
    """(start line, its fields, lower-cased headers) and the head's length, or None."""
    data = src.get(pos, MAX_HEAD)
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[: end + 4]
    line, _, rest = head.partition(b"\r\n")
    try:
        parsed = dpkt.http.parse_headers(BytesIO(rest))
    except dpkt.UnpackError:
        return None
    headers = {k: (v[-1] if isinstance(v, list) else v) for k, v in parsed.items()}
    return head, line.split(b" ", 2), headers


def _chunked_end(src: ByteSource, pos: int) -> int | None:
    """Just past the last chunk and trailers of a chunked body starting at `pos`."""
    while True:
        line = line_at(src, pos)
        if line is None:
            return None
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            return None
        pos += len(line) + 2
        if size == 0:
            data = src.get(pos, MAX_HEAD)
            if data.startswith(b"\r\n"):
                return pos + 2
            end = data.find(b"\r\n\r\n")
            return None if end < 0 else pos + end + 4
        pos += size + 2


def _body_end(src: ByteSource, pos: int, headers: dict[str, str], limit: int, response: bool) -> int | None:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _chunked_end(src, pos)
    length = headers.get("content-length")
    if length is not None:
        try:
            return pos + int(length.split(",")[0])
        except ValueError:
            return None
    return limit if response else pos


def requests(src: ByteSource, limit: int) -> list[Frame]:
    """The requests of a client → server stream, up to offset `limit`."""
    out: list[Frame] = []
    pos = 0
    while pos < limit:
        got = _head(src, pos)
        if got is None:
            if is_request(src.get(pos, 64)) and runs_to(src, pos, limit):
                out.append(Frame(pos, limit, _request_fields(src.get(pos, 8192).split(b"\r\n", 1)[0]), False))
            break
        head, line, headers = got
        if len(line) != 3 or line[0] not in METHODS or not line[2].startswith(b"HTTP/1."):
            break
        end = _body_end(src, pos + len(head), headers, limit, response=False)
        fields = _request_fields(b" ".join(line))
        if headers.get("connection"):
            fields["http.connection"] = headers["connection"].lower()
        if end is None and not runs_to(src, pos, limit):
            break
        if end is None or end > limit:
            out.append(Frame(pos, limit, fields, False))
            break
        out.append(Frame(pos, end, fields))
        pos = end
    return out


def _request_fields(line: bytes) -> dict[str, object]:
    parts = line.split(b" ", 2)
    fields: dict[str, object] = {"http.method": parts[0].decode("latin-1")}
    if len(parts) > 1:
        fields["http.uri"] = parts[1].decode("latin-1")
    if len(parts) > 2:
        fields["http.version"] = parts[2].decode("latin-1")
    return fields


def responses(src: ByteSource, limit: int, methods: list[str], start: int = 0) -> list[Frame]:
    """The responses of a server → client stream from offset `start`; `methods` are the
    requests' methods in order (a response to HEAD has no body). Interim (1xx) responses
    are frames of their own with `http.interim`."""
    out: list[Frame] = []
    pos = start
    n_final = 0
    while pos < limit:
        got = _head(src, pos)
        if got is None:
            if is_response(src.get(pos, 16)) and runs_to(src, pos, limit):
                out.append(Frame(pos, limit, _status_fields(src.get(pos, 64)), False))
            break
        head, line, headers = got
        if len(line) < 2 or not line[0].startswith(b"HTTP/1.") or not line[1].isdigit():
            break
        status = int(line[1])
        fields = _status_fields(head)
        body_start = pos + len(head)
        method = methods[n_final] if n_final < len(methods) else ""
        if 100 <= status < 200:
            fields["http.interim"] = True
            out.append(Frame(pos, body_start, fields))
            pos = body_start
            if status == 101:
                break
            continue
        n_final += 1
        if method == "HEAD" or status in (204, 304):
            end: int | None = body_start
        else:
            end = _body_end(src, body_start, headers, limit, response=True)
        if headers.get("transfer-encoding"):
            fields["http.transfer_encoding"] = headers["transfer-encoding"].lower()
        if headers.get("connection"):
            fields["http.connection"] = headers["connection"].lower()
        if end is None and not runs_to(src, pos, limit):
            # The head is known, the body's end is not (a chunk header was not recorded):
            # the caller ends it where framing resumes.
            fields["http.end_unknown"] = True
            out.append(Frame(pos, limit, fields, False))
            break
        if end is None or end > limit:
            out.append(Frame(pos, limit, fields, False))
            break
        out.append(Frame(pos, end, fields))
        pos = end
    return out


def _status_fields(head: bytes) -> dict[str, object]:
    line = head.split(b"\r\n", 1)[0].split(b" ", 2)
    fields: dict[str, object] = {"http.version": line[0].decode("latin-1")}
    if len(line) > 1 and line[1].isdigit():
        fields["http.status"] = int(line[1])
    if len(line) > 2:
        fields["http.reason"] = line[2].decode("latin-1")
    return fields
