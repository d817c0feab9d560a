"""Finding the requests of a session: per connection, pick the protocol, frame both
directions, pair requests with responses, and locate each message's calls and packets."""

from __future__ import annotations

from collections.abc import Callable

from wirecorr.engine.connections import Connection
from wirecorr.engine.requests import dns, http, pgsql, resp
from wirecorr.engine.requests.request import Gap, Message, Request
from wirecorr.engine.requests.split import split
from wirecorr.engine.requests.streams import ByteSource, Direction, Frame, calls_over, tcp_segments
from wirecorr.engine.session import Session
from wirecorr.model import Syscall

SIDES = ("client", "server")
# Bytes of a stream's start read to confirm its protocol by content.
SNIFF = 64


def build(session: Session) -> tuple[list[Request], list[Gap]]:
    """The session's requests in order of start, and where framing had to stop."""
    out: list[Request] = []
    gaps: list[Gap] = []
    for conn in session.analyzer.connections:
        if conn.proto == "tcp":
            out.extend(_tcp_requests(session, conn, gaps))
        elif conn.proto == "udp":
            out.extend(_udp_requests(session, conn))
    out.sort(key=lambda r: (r.start_ns, r.conn))
    for i, req in enumerate(out):
        req.id = i
    return out, gaps


def _directions(session: Session, conn: Connection) -> tuple[tuple[Direction, Direction], tuple[str, ...]]:
    corr = session.correlator
    segs = tcp_segments(session.analyzer.table, conn.packet_indices)
    dirs = (Direction(segments=segs[0]), Direction(segments=segs[1]))
    sides: set[int] = set()
    for sid, side in corr.calls_of(conn.id):
        rng = corr.stream_range(sid)
        if rng is None:
            continue
        d, start, end = rng
        sides.add(side)
        (dirs[d].writes if side == d else dirs[d].reads).append((start, end, sid))
    for dr in dirs:
        dr.writes.sort()
        dr.reads.sort()
        dr.max_seg = max((e - s for s, e, _ in dr.segments), default=0)
        dr.src = ByteSource(dr.segments, corr.payload)
        for calls in (dr.writes, dr.reads):
            for start, end, sid in calls:
                sc = session.syscall(sid)
                if sc is not None and sc.data:
                    dr.src.add(start, sc.data[: end - start])
    return dirs, tuple(SIDES[s] for s in sorted(sides))


def _protocol(conn: Connection, dirs: tuple[Direction, Direction]) -> str | None:
    """By port first, then by content; a port's protocol must be confirmed by content too.
    The server's bytes are read only when the client's do not decide."""
    c2s = dirs[0].src.get(0, SNIFF)
    port = conn.server_port
    on_port = port in resp.PORTS
    if (c2s[:1] == b"*" or on_port) and resp.is_command(c2s, dirs[1].src.get(0, SNIFF), port=on_port):
        return "redis"
    if http.is_request(c2s):
        return "http"
    if pgsql.is_startup(c2s):
        return "pgsql"
    if dns.is_tcp_query(c2s):
        return "dns"
    if c2s[:1].isalpha() and resp.is_command(c2s, dirs[1].src.get(0, SNIFF)):
        return "redis"
    if not c2s and http.is_response(dirs[1].src.get(0, SNIFF)):
        return "http"
    return None


def _sniff(session: Session, conn: Connection) -> tuple[Direction, Direction]:
    """Each direction's first bytes only: the first data segment (if it starts the stream)
    and the calls' bytes at offset 0. Enough to rule a connection out without walking all
    its packets, which on a plain capture of many connections is most of the cost."""
    table = session.analyzer.table
    corr = session.correlator
    direction, seglen, rel_seq = table.direction, table.seglen, table.rel_seq
    firsts: list[list[tuple[int, int, int]]] = [[], []]
    for idx in conn.packet_indices:
        d = direction[idx]
        if firsts[d] or not seglen[idx]:
            continue
        # Only a segment at the stream's start (relative sequence 1) can begin a message.
        firsts[d].append((0, seglen[idx], idx) if rel_seq[idx] == 1 else (-1, -1, idx))
        if firsts[0] and firsts[1]:
            break
    at_start = [[s for s in f if s[0] == 0] for f in firsts]
    out = (Direction(src=ByteSource(at_start[0], corr.payload)), Direction(src=ByteSource(at_start[1], corr.payload)))
    for sid, _ in corr.calls_of(conn.id):
        rng = corr.stream_range(sid)
        if rng is not None and rng[1] == 0:
            sc = session.syscall(sid)
            if sc is not None and sc.data:
                out[rng[0]].src.add(0, sc.data[: rng[2]])
    return out


def _tcp_requests(session: Session, conn: Connection, gaps: list[Gap]) -> list[Request]:
    if not conn.packet_indices or _protocol(conn, _sniff(session, conn)) is None:
        return []
    dirs, traced = _directions(session, conn)
    proto = _protocol(conn, dirs)
    if proto is None:
        return []
    limits = (dirs[0].end, dirs[1].end)
    c_frames: list[Frame]
    s_frames: list[Frame]
    if proto == "http":
        c_frames = http.requests(dirs[0].src, limits[0])
        s_frames = http.responses(dirs[1].src, limits[1], [str(f.fields.get("http.method", "")) for f in c_frames])
        pairs = _pair_http(c_frames, s_frames)
    elif proto == "redis":
        c_frames, s_frames = resp.frames(dirs[0].src, limits[0]), resp.frames(dirs[1].src, limits[1])
        pairs = _in_order(c_frames, s_frames)
    elif proto == "pgsql":
        c_frames = pgsql.frames(dirs[0].src, limits[0], client=True)
        opened = bool(c_frames) and c_frames[0].fields["pgsql.type"] in ("ssl", "gssenc")
        s_frames = pgsql.frames(dirs[1].src, limits[1], answer_byte=opened)
        pairs = pgsql.pair(c_frames, s_frames)
    else:
        c_frames, s_frames = dns.tcp_frames(dirs[0].src, limits[0]), dns.tcp_frames(dirs[1].src, limits[1])
        pairs = dns.pair(c_frames, s_frames)
    for d, frames in enumerate((c_frames, s_frames)):
        stop = frames[-1].end if frames else 0
        if stop < limits[d]:
            known = bool(dirs[d].src.get(stop, 1))
            gaps.append(Gap(conn.id, d, stop, limits[d], "unparsable" if known else "not recorded"))
    describe = _DESCRIBE[proto]
    out = []
    for req_frame, resp_frames in pairs:
        request = _message(session, dirs[0], 0, req_frame.start, req_frame.end, req_frame.complete)
        response = None
        if resp_frames:
            start, end = resp_frames[0].start, resp_frames[-1].end
            response = _message(session, dirs[1], 1, start, end, resp_frames[-1].complete)
        fields = _fields(proto, req_frame, resp_frames)
        summary, endpoint = describe(fields, bool(resp_frames))
        out.append(_request(session, proto, conn, traced, summary, endpoint, request, response, fields, dirs))
    return out


def _fields(proto: str, request: Frame, answer: list[Frame]) -> dict[str, object]:
    """A request's fields: its own, then the answer's where the request has none."""
    if proto == "redis":
        return resp.pair_fields(request, answer[0] if answer else None)
    if proto == "pgsql":
        return {**request.fields, **pgsql.answer_fields(answer)}
    fields = dict(request.fields)
    for f in reversed(answer):
        for k, v in f.fields.items():
            fields.setdefault(k, v)
    fields.pop("http.interim", None)
    fields.pop("dns.response", None)
    return fields


def _pair_http(reqs: list[Frame], resps: list[Frame]) -> list[tuple[Frame, list[Frame]]]:
    """Responses answer requests in order (pipelining included); interim ones go with the
    final response that follows them."""
    grouped: list[list[Frame]] = []
    pending: list[Frame] = []
    for f in resps:
        pending.append(f)
        if not f.fields.get("http.interim"):
            grouped.append(pending)
            pending = []
    if pending:
        grouped.append(pending)
    return [(r, grouped[i] if i < len(grouped) else []) for i, r in enumerate(reqs)]


def _in_order(reqs: list[Frame], resps: list[Frame]) -> list[tuple[Frame, list[Frame]]]:
    return [(r, [resps[i]] if i < len(resps) else []) for i, r in enumerate(reqs)]


def _message(session: Session, dr: Direction, d: int, start: int, end: int, complete: bool) -> Message:
    """A message's calls, segments and wire times from its stream offsets."""
    msg = Message(d, start, end, complete=complete)
    if end <= start:
        return msg
    table = session.analyzer.table
    ts = table.ts_ns
    segs = dr.segments_over(start, end)
    msg.packets = sorted(idx for _, _, idx in segs)
    first = [ts[idx] for s, e, idx in segs if s <= start < e]
    last = [ts[idx] for s, e, idx in segs if s <= end - 1 < e]
    if first:
        msg.wire_first_ns = min(first)
    reads = calls_over(dr.reads, end - 1, end)
    read = session.syscall(reads[0][2]) if reads else None
    if last:
        before = [t for t in last if read is None or t <= read.end_ns]
        msg.wire_last_ns = max(before or last)
    calls = [sid for _, _, sid in calls_over(dr.writes, start, end) + calls_over(dr.reads, start, end)]
    found = [sc for sc in map(session.syscall, calls) if sc is not None]
    found.sort(key=lambda sc: (sc.enter_ns, sc.id))
    msg.syscalls = [sc.id for sc in found]
    return msg


def _first_write(session: Session, dr: Direction, offset: int) -> Syscall | None:
    calls = calls_over(dr.writes, offset, offset + 1)
    return session.syscall(calls[0][2]) if calls else None


def _last_read(session: Session, dr: Direction, offset: int) -> Syscall | None:
    calls = calls_over(dr.reads, offset, offset + 1)
    return session.syscall(calls[0][2]) if calls else None


def _request(
    session: Session,
    proto: str,
    conn: Connection,
    traced: tuple[str, ...],
    summary: str,
    endpoint: str,
    request: Message,
    response: Message | None,
    fields: dict[str, object],
    dirs: tuple[Direction, Direction],
) -> Request:
    points: dict[str, int] = {}
    _put(points, "client.write", _first_write(session, dirs[0], request.start), enter=True)
    _put(points, "request.wire.first", request.wire_first_ns)
    _put(points, "request.wire.last", request.wire_last_ns)
    _put(points, "server.read", _last_read(session, dirs[0], request.end - 1), enter=False)
    if response is not None:
        _put(points, "server.write", _first_write(session, dirs[1], response.start), enter=True)
        _put(points, "response.wire.first", response.wire_first_ns)
        _put(points, "response.wire.last", response.wire_last_ns)
        _put(points, "client.read", _last_read(session, dirs[1], response.end - 1), enter=False)
    return finish_request(proto, conn, traced, summary, endpoint, request, response, fields, points)


def _put(points: dict[str, int], name: str, value: Syscall | int | None, enter: bool = True) -> None:
    if value is None:
        return
    if isinstance(value, int):
        points[name] = value
    else:
        points[name] = value.enter_ns if enter else value.end_ns


def finish_request(
    proto: str,
    conn: Connection,
    traced: tuple[str, ...],
    summary: str,
    endpoint: str,
    request: Message,
    response: Message | None,
    fields: dict[str, object],
    points: dict[str, int],
) -> Request:
    """A Request with its split computed from `points`."""
    start, total, parts = split(points)
    return Request(
        id=0,
        protocol=proto,
        conn=conn.id,
        traced=traced,
        summary=summary,
        endpoint=endpoint,
        server=conn.server,
        request=request,
        response=response,
        fields=fields,
        points=points,
        split=parts if response is not None else [],
        start_ns=start if points else conn.first_ts_ns,
        total_ns=total if response is not None and points else None,
    )


def _describe_http(fields: dict[str, object], answered: bool) -> tuple[str, str]:
    method, uri = fields.get("http.method", "?"), str(fields.get("http.uri", "?"))
    path = uri.split("?", 1)[0]
    status = fields.get("http.status") if answered else None
    return f"{method} {uri} → {status if status is not None else 'no response'}", f"{method} {path}"


_DESCRIBE: dict[str, Callable[[dict[str, object], bool], tuple[str, str]]] = {
    "http": _describe_http,
    "redis": resp.describe,
    "pgsql": pgsql.describe,
    "dns": dns.describe,
}


def _udp_requests(session: Session, conn: Connection) -> list[Request]:
    """DNS over UDP: one datagram, one message; the datagram's own calls give the points."""
    corr = session.correlator
    table = session.analyzer.table
    sent: list[tuple[Frame, int]] = []
    answered: list[tuple[Frame, int]] = []
    calls: dict[int, list[Syscall]] = {}
    for idx in conn.packet_indices:
        if table.flags[idx]:
            continue
        linked = [corr.links[i] for i in corr.packet_links.get(idx, [])]
        found = [sc for sc in (session.syscall(link.syscall) for link in linked) if sc is not None]
        calls[idx] = found
        payload = corr.payload(idx)
        if not payload:
            payload = next((sc.data for sc in found if sc.data), None)
        fields = dns.parse(payload) if payload else None
        if fields is None:
            if conn.server_port in dns.PORTS:
                continue
            return []
        frame = Frame(0, table.seglen[idx], fields)
        (answered if fields["dns.response"] else sent).append((frame, idx))
    if not sent:
        return []
    where = {id(f): idx for f, idx in sent + answered}
    traced = tuple(SIDES[s] for s in sorted({side for _, side in corr.calls_of(conn.id)}))
    ts = table.ts_ns
    out = []
    for query, answers in dns.pair([f for f, _ in sent], [f for f, _ in answered]):
        q_idx = where[id(query)]
        retries = [where[id(f)] for f, _ in sent if f is not query and dns.key(f.fields) == dns.key(query.fields)]
        request = _datagram(q_idx, ts[q_idx], 0, calls, retries)
        points: dict[str, int] = {"request.wire.first": ts[q_idx], "request.wire.last": ts[q_idx]}
        _put_datagram_calls(points, session, calls[q_idx], "client.write", "server.read")
        response = None
        if answers:
            a_idx = where[id(answers[0])]
            response = _datagram(a_idx, ts[a_idx], 1, calls, [])
            points["response.wire.first"] = points["response.wire.last"] = ts[a_idx]
            _put_datagram_calls(points, session, calls[a_idx], "server.write", "client.read")
        fields = _fields("dns", query, answers)
        if retries:
            fields["dns.retries"] = len(retries)
        summary, endpoint = dns.describe(fields, bool(answers))
        out.append(finish_request("dns", conn, traced, summary, endpoint, request, response, fields, points))
    return out


def _datagram(idx: int, ts: int, d: int, calls: dict[int, list[Syscall]], retries: list[int]) -> Message:
    packets = sorted([idx, *retries])
    syscalls = sorted({sc.id for i in packets for sc in calls.get(i, [])})
    return Message(d, 0, 0, syscalls=syscalls, packets=packets, wire_first_ns=ts, wire_last_ns=ts)


def _put_datagram_calls(points: dict[str, int], session: Session, found: list[Syscall], send: str, recv: str) -> None:
    """The sending call's entry and the receiving call's exit of one datagram."""
    for sc in found:
        side = session.correlator.connection_of(sc.id)
        if side is None:
            continue
        sender = (side[1] == 0) == (send == "client.write")
        if sender and send not in points:
            points[send] = sc.enter_ns
        elif not sender and recv not in points:
            points[recv] = sc.end_ns
