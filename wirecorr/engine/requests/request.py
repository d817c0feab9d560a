"""The request layer's objects: a Message (where one message's bytes sit, what carried
them) and a Request (a request, its response, and where its time went)."""

from __future__ import annotations

from dataclasses import dataclass, field

PROTOCOLS = ("http", "redis", "dns", "pgsql")


@dataclass(slots=True)
class Message:
    """One protocol message (or, for a response, the messages that answer one request).

    `direction` is 0 for client → server, 1 for server → client. `start`/`end` are the
    stream offsets [start, end) of that direction (for a datagram: 0 and its length).
    `syscalls` are the ids of the data calls, either side, that moved any of its bytes, in
    entry order; `packets` the indexes of the segments or datagrams that carried them,
    retransmissions included. `wire_first_ns` is when its first byte was first seen on the
    wire, `wire_last_ns` when its last byte was (last) seen; None without a capture of them.
    `complete` is False when the stream ended inside the message.
    """

    direction: int
    start: int
    end: int
    syscalls: list[int] = field(default_factory=list)
    packets: list[int] = field(default_factory=list)
    wire_first_ns: int | None = None
    wire_last_ns: int | None = None
    complete: bool = True

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(slots=True)
class Request:
    """One request and its response on one connection.

    `traced` names the sides whose syscalls the input has ("client", "server"). `summary`
    reads like `GET /index.html → 200`; `endpoint` is what the report groups percentiles by
    (`GET /index.html`, `GET` for Redis, `A example.org` for DNS, `SELECT` for PostgreSQL)
    and `server` the server's address. `fields` holds the protocol's values under the names
    the filter language and checks use: http.method, http.uri, http.status, redis.cmd,
    redis.error, dns.id, dns.qname, dns.qtype, dns.rcode, dns.retries, pgsql.kind,
    pgsql.query, pgsql.tag, pgsql.error.

    `points` are the timestamps of the split (ns, `split.POINTS` names: client.write,
    request.wire.first, request.wire.last, server.read, server.write, response.wire.first,
    response.wire.last, client.read), present where the input shows them. `split` lists
    (part, ns) in time order and adds up exactly to `total_ns`, which runs from the first
    point to the last; `total_ns` is None when the request got no response.
    """

    id: int
    protocol: str
    conn: int
    traced: tuple[str, ...]
    summary: str
    endpoint: str
    server: str
    request: Message
    response: Message | None
    fields: dict[str, object] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    split: list[tuple[str, int]] = field(default_factory=list)
    start_ns: int = 0
    total_ns: int | None = None

    @property
    def end_ns(self) -> int | None:
        return None if self.total_ns is None else self.start_ns + self.total_ns

    @property
    def syscalls(self) -> list[int]:
        """Every data call of the request and its response."""
        return self.request.syscalls + (self.response.syscalls if self.response else [])

    @property
    def packets(self) -> list[int]:
        return self.request.packets + (self.response.packets if self.response else [])

    def dominant(self) -> tuple[str, int] | None:
        """The part of the split that took longest."""
        return max(self.split, key=lambda p: p[1]) if self.split else None


@dataclass(slots=True)
class Gap:
    """Where framing a direction had to stop before its end: at stream offset `offset` of
    direction `direction` (0 client → server), `end` being where the stream ends. `reason`
    is "not recorded" (neither the capture, cut at its snaplen, nor the calls' recorded
    first bytes hold the bytes there) or "unparsable" (they are not the protocol's). The
    requests before it are exact; none after it is reported."""

    conn: int
    direction: int
    offset: int
    end: int
    reason: str
