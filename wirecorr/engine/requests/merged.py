"""Requests of a merged recording with both sides measured: the client's host gives the
client's points, the server's host the server's, one clock (the merge's) joins them.

Each host alone sees half a request: the client's split has "peer + network" where the
server's work is, the server's has no client calls. The same request on both ends of a
conversation (engine/hosts.py) is found by its stream offset, which both ends number
from 0 after the handshake (NAT and a sequence-rewriting middlebox leave it alone), and
its points are taken from where they happen:

- `client.write`, `client.read`: the client host's calls;
- `request.wire.first`: the request's first byte leaving, on the client's capture;
  `request.wire.last`: its last byte arriving, on the server's;
- `server.read`, `server.write`: the server host's calls;
- `response.wire.first` on the server's capture, `response.wire.last` on the client's.

So `split.split` gives the whole request with every part measured: the client's send,
the request's way across (transmission and one-way delay), its delivery to the server,
the server's processing and send, the response's way back, the delivery to the client.
The parts that span two hosts ("request wire", "server read", "response wire",
"delivery" when the server's host is not the reference) are as exact as the clock
estimate, `clock_error_ns`; the one-way delays of the message's packets both captured
are given beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wirecorr.engine.requests import requests_of
from wirecorr.engine.requests.build import finish_request
from wirecorr.engine.requests.request import Message, Request

if TYPE_CHECKING:
    from wirecorr.engine.hosts import Conversation, MergedSession


@dataclass
class MergedRequest:
    """`request`: the request with both sides' points on the common clock (its messages,
    calls and packets are the client host's); `client_request`/`server_request`: the ids
    of the same request in each host's own list (`requests_of` of that host's session);
    `one_way_ns`: (min, max) one-way delay of the request's and the response's packets
    both hosts captured, None where none crossed."""

    request: Request
    client_host: int
    server_host: int
    client_request: int
    server_request: int
    clock_error_ns: int
    one_way_ns: dict[str, tuple[int, int] | None] = field(default_factory=dict)


def merged_requests(merged: MergedSession) -> list[MergedRequest]:
    """Every request whose client and server were each captured (and traced) on a host of
    the merged recording, in order of start."""
    out: list[MergedRequest] = []
    for cv in merged.conversations():
        out.extend(_conversation(merged, cv))
    out.sort(key=lambda m: (m.request.start_ns, m.client_host, m.request.conn))
    for i, m in enumerate(out):
        m.request.id = i
    return out


def _conversation(merged: MergedSession, cv: Conversation) -> list[MergedRequest]:
    client, server = merged.hosts[cv.client_host], merged.hosts[cv.server_host]
    client_reqs = [r for r in requests_of(client.session) if r.conn == cv.client_conn]
    server_reqs = {r.request.start: r for r in requests_of(server.session) if r.conn == cv.server_conn}
    delays: dict[int, int] = {}  # the sender's copy → one-way delay
    for c in cv.crossings:
        delays[c.sent] = c.delay_ns
        delays[c.received] = c.delay_ns
    error = max(int(client.host.get("offset_error_ns") or 0), int(server.host.get("offset_error_ns") or 0))
    conn = client.session.analyzer.connections[cv.client_conn]
    out = []
    for creq in client_reqs:
        sreq = server_reqs.get(creq.request.start)
        if sreq is None or sreq.protocol != creq.protocol:
            continue
        points = _points(creq, sreq)
        joined = finish_request(
            creq.protocol,
            conn,
            tuple(sorted(set(creq.traced) | set(sreq.traced))),
            creq.summary,
            creq.endpoint,
            creq.request,
            creq.response,
            creq.fields,
            points,
        )
        one_way = {"request": _span(creq.request, delays), "response": _span(creq.response, delays)}
        out.append(MergedRequest(joined, client.host["id"], server.host["id"], creq.id, sreq.id, error, one_way))
    return out


def _points(client: Request, server: Request) -> dict[str, int]:
    """Each point from the host where it happens (see the module docstring)."""
    take = {
        "client.write": client,
        "request.wire.first": client,
        "request.wire.last": server,
        "server.read": server,
        "server.write": server,
        "response.wire.first": server,
        "response.wire.last": client,
        "client.read": client,
    }
    return {name: req.points[name] for name, req in take.items() if name in req.points}


def _span(msg: Message | None, delays: dict[int, int]) -> tuple[int, int] | None:
    found = [delays[i] for i in msg.packets if i in delays] if msg is not None else []
    return (min(found), max(found)) if found else None
