"""The request framers on byte streams: split points anywhere give the same messages, and
each protocol's length rules (Content-Length, chunked, HEAD, RESP aggregates, DNS length
prefix, PostgreSQL startup and ReadyForQuery) find every message's end."""

from __future__ import annotations

import struct
from itertools import pairwise

import dpkt
from hypothesis import given, settings
from hypothesis import strategies as st

from wirecorr.engine.requests import dns, http, pgsql, resp
from wirecorr.engine.requests.split import PEER, split
from wirecorr.engine.requests.streams import ByteSource, Frame

HTTP_REQ = (
    b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
    b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    b"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
    b"PUT /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
)
HTTP_RESP = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnot f\r\n4;x=1\r\nound\r\n0\r\nX-T: 1\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
    b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)
RESP_CMDS = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n" + (
    b"PING\r\n\r\n*2\r\n$3\r\nGET\r\n$2\r\nno\r\n"
)
RESP_REPLIES = b"+OK\r\n$5\r\nhello\r\n+PONG\r\n$-1\r\n*2\r\n*1\r\n:1\r\n-ERR x\r\n"


def _pg(typ: bytes, body: bytes) -> bytes:
    return typ + struct.pack("!I", len(body) + 4) + body


PG_CLIENT = (
    struct.pack("!II", 8, 80877103)
    + struct.pack("!II", 17, 196608)
    + b"user\0pg\0\0"
    + _pg(b"Q", b"select 1\0")
    + _pg(b"Q", b"select * from nosuch\0")
    + _pg(b"X", b"")
)
PG_SERVER = (
    b"N"
    + _pg(b"R", b"\0\0\0\0")
    + _pg(b"S", b"a\0b\0")
    + _pg(b"Z", b"I")
    + _pg(b"T", b"\0\1" + b"x" * 20)
    + _pg(b"D", b"\0\1\0\0\0\1" + b"1")
    + _pg(b"C", b"SELECT 1\0")
    + _pg(b"Z", b"I")
    + _pg(b"E", b"SERROR\0C42P01\0Mrelation does not exist\0\0")
    + _pg(b"Z", b"I")
)


def _source(data: bytes, cuts: list[int]) -> ByteSource:
    """The stream as runs cut at `cuts`, added in a scrambled order (as segments and calls come)."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    runs = [(a, data[a:b]) for a, b in pairwise(points)]
    src = ByteSource()
    for off, chunk in runs[1::2] + runs[0::2]:
        src.add(off, chunk)
    return src


def _ends(frames: list[Frame]) -> list[tuple[int, int, bool]]:
    return [(f.start, f.end, f.complete) for f in frames]


def test_http_frames_every_message() -> None:
    reqs = http.requests(_source(HTTP_REQ, []), len(HTTP_REQ))
    assert [f.fields["http.method"] for f in reqs] == ["GET", "POST", "HEAD", "PUT"]
    assert reqs[-1].end == len(HTTP_REQ) and all(f.complete for f in reqs)
    resps = http.responses(_source(HTTP_RESP, []), len(HTTP_RESP), ["GET", "POST", "HEAD", "PUT"])
    assert [f.fields["http.status"] for f in resps] == [200, 100, 404, 200, 201]
    assert resps[1].fields.get("http.interim") is True
    # The 200 to HEAD has no body despite its Content-Length.
    assert resps[3].end == resps[4].start
    assert resps[-1].end == len(HTTP_RESP)


def test_http_head_parse_agrees_with_dpkt() -> None:
    """The header values framing uses are dpkt's own parse of the same head."""
    head = HTTP_REQ[HTTP_REQ.index(b"POST") : HTTP_REQ.index(b"hello") + 5]
    msg = dpkt.http.Request(head)
    frame = http.requests(_source(head, []), len(head))[0]
    assert (frame.fields["http.method"], frame.fields["http.uri"]) == (msg.method, msg.uri)
    assert frame.end - frame.start == len(head)


def test_http_body_without_bytes_is_skipped_by_length() -> None:
    """A body that was never recorded does not stop framing: its length is enough."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    data = head + b"x" * 5000 + b"HTTP/1.1 304 Not Modified\r\n\r\n"
    src = ByteSource()
    src.add(0, head)
    src.add(len(head) + 5000, data[len(head) + 5000 :])
    frames = http.responses(src, len(data), ["GET", "GET"])
    assert [(f.fields["http.status"], f.end) for f in frames] == [(200, len(head) + 5000), (304, len(data))]


def test_http_response_until_close_and_cut_stream() -> None:
    data = b"HTTP/1.0 200 OK\r\n\r\nall of it"
    assert _ends(http.responses(_source(data, []), len(data), ["GET"])) == [(0, len(data), True)]
    cut = HTTP_REQ[: HTTP_REQ.index(b"hello") + 2]
    frames = http.requests(_source(cut, []), len(cut))
    assert frames[-1].complete is False and frames[-1].fields["http.method"] == "POST"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_split_points_do_not_change_messages(cuts: list[int]) -> None:
    whole = {
        "http-req": _ends(http.requests(_source(HTTP_REQ, []), len(HTTP_REQ))),
        "http-resp": _ends(http.responses(_source(HTTP_RESP, []), len(HTTP_RESP), ["GET", "POST", "HEAD", "PUT"])),
        "resp-cmd": _ends(resp.frames(_source(RESP_CMDS, []), len(RESP_CMDS))),
        "resp-reply": _ends(resp.frames(_source(RESP_REPLIES, []), len(RESP_REPLIES))),
        "pg-client": _ends(pgsql.frames(_source(PG_CLIENT, []), len(PG_CLIENT), client=True)),
        "pg-server": _ends(pgsql.frames(_source(PG_SERVER, []), len(PG_SERVER), answer_byte=True)),
    }
    split_up = {
        "http-req": _ends(http.requests(_source(HTTP_REQ, cuts), len(HTTP_REQ))),
        "http-resp": _ends(http.responses(_source(HTTP_RESP, cuts), len(HTTP_RESP), ["GET", "POST", "HEAD", "PUT"])),
        "resp-cmd": _ends(resp.frames(_source(RESP_CMDS, cuts), len(RESP_CMDS))),
        "resp-reply": _ends(resp.frames(_source(RESP_REPLIES, cuts), len(RESP_REPLIES))),
        "pg-client": _ends(pgsql.frames(_source(PG_CLIENT, cuts), len(PG_CLIENT), client=True)),
        "pg-server": _ends(pgsql.frames(_source(PG_SERVER, cuts), len(PG_SERVER), answer_byte=True)),
    }
    assert split_up == whole
    assert len(whole["http-req"]) == 4 and len(whole["resp-cmd"]) == 4 and len(whole["resp-reply"]) == 5


def test_resp_commands_and_replies_pair_in_order() -> None:
    cmds = resp.frames(_source(RESP_CMDS, []), len(RESP_CMDS))
    replies = resp.frames(_source(RESP_REPLIES, []), len(RESP_REPLIES))
    fields = [resp.pair_fields(c, r) for c, r in zip(cmds, replies, strict=False)]
    assert [f["redis.cmd"] for f in fields] == ["SET", "GET", "PING", "GET"]
    assert fields[3]["redis.reply"] == "nil"
    # The last reply is one nested array holding an error: one reply, not three.
    assert len(replies) == 5 and replies[-1].end == len(RESP_REPLIES)
    assert replies[-1].fields["redis.error"] == "ERR x"


def test_pgsql_units_pair_with_ready_for_query() -> None:
    client = pgsql.frames(_source(PG_CLIENT, []), len(PG_CLIENT), client=True)
    server = pgsql.frames(_source(PG_SERVER, []), len(PG_SERVER), answer_byte=True)
    pairs = pgsql.pair(client, server)
    kinds = [unit.fields["pgsql.kind"] for unit, _ in pairs]
    assert kinds == ["ssl", "startup", "query", "query"]
    answers = [pgsql.answer_fields(a) for _, a in pairs]
    assert answers[0]["pgsql.answer"] == "N"
    assert answers[2] == {"pgsql.tag": "SELECT 1", "pgsql.rows": 1}
    assert answers[3]["pgsql.error"] == "42P01"
    assert pgsql.describe({**pairs[3][0].fields, **answers[3]}, True)[0] == "select * from nosuch → ERROR 42P01"


def test_dns_tcp_frames_and_retries() -> None:
    q = dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="example.test", type=dpkt.dns.DNS_A)])
    a = dpkt.dns.DNS(id=7, qr=1, rcode=3, qd=[dpkt.dns.DNS.Q(name="example.test", type=dpkt.dns.DNS_A)])
    qb, ab = bytes(q), bytes(a)
    stream = struct.pack("!H", len(qb)) + qb
    assert dns.is_tcp_query(stream)
    frames = dns.tcp_frames(_source(stream * 2, [5, 17]), 2 * len(stream))
    assert [(f.start, f.end) for f in frames] == [(0, len(stream)), (len(stream), 2 * len(stream))]
    answer = Frame(0, len(ab), dns.parse(ab) or {})
    pairs = dns.pair(frames, [answer])
    assert len(pairs) == 1 and pairs[0][0].fields["dns.retries"] == 1 and pairs[0][1] == [answer]
    assert dns.describe({**pairs[0][0].fields, "dns.rcode": 3}, True)[0] == "A example.test → NXDOMAIN"


def test_split_parts_add_up_and_name_the_peer() -> None:
    both = dict(zip(split.__globals__["POINTS"], [0, 10, 20, 35, 60, 61, 70, 75], strict=True))
    start, total, parts = split(both)
    assert (start, total, sum(ns for _, ns in parts)) == (0, 75, 75)
    assert [name for name, _ in parts][3] == "server processing"
    client_only = {k: v for k, v in both.items() if not k.startswith("server.")}
    _, total, parts = split(client_only)
    assert total == 75 and dict(parts)[PEER] == 41
    # A point a hair early (clocks agree to µs) never makes a part negative.
    _, total, parts = split({**both, "request.wire.first": -3})
    assert min(ns for _, ns in parts) >= 0 and sum(ns for _, ns in parts) == total


def test_framing_stops_where_bytes_were_not_recorded() -> None:
    """Bytes missing inside a pipeline stop framing there (no message is guessed past it);
    a stream that ends inside a message, every byte known, gives an incomplete last one."""
    src = ByteSource()
    src.add(0, RESP_CMDS[:40])
    src.add(60, RESP_CMDS[60:])
    frames = resp.frames(src, len(RESP_CMDS))
    assert _ends(frames) == [(0, 31, True)]
    cut = RESP_CMDS[:36]
    assert _ends(resp.frames(_source(cut, []), len(cut))) == [(0, 31, True), (31, 36, False)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n", b"*2\r\n$3\r\n"]))
def test_framers_take_any_bytes(data: bytes, prefix: bytes) -> None:
    """Whatever the wire carries: no framer raises, frames are in order and inside the stream."""
    stream = prefix + data
    src = _source(stream, [])
    n = len(stream)
    results = [
        http.requests(src, n),
        http.responses(src, n, ["GET", "HEAD"]),
        resp.frames(src, n),
        pgsql.frames(src, n, client=True),
        pgsql.frames(src, n, answer_byte=True),
        dns.tcp_frames(src, n),
    ]
    for frames in results:
        ends = [(f.start, f.end) for f in frames]
        assert all(0 <= s <= e <= n for s, e in ends)
        assert all(a[1] <= b[0] for a, b in pairwise(ends))
    dns.parse(stream)
    pgsql.pair(results[3], results[4])
