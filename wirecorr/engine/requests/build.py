"""Finding the requests of a session: per connection, pick the protocol, frame both
directions, pair requests with responses, and locate each message's calls and packets."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from wirecorr.engine.connections import Connection
from wirecorr.engine.requests import dns, http, pgsql, resp
from wirecorr.engine.requests.request import Gap, Message, Request
from wirecorr.engine.requests.split import split
from wirecorr.engine.requests.streams import ByteSource, Direction, Frame, calls_over, printable, tcp_segments
from wirecorr.engine.session import Session
from wirecorr.model import PSH, Syscall

SIDES = ("client", "server")
# Bytes of a stream's start read to confirm its protocol by content.
SNIFF = 64
# Places tried to resume framing HTTP responses after bytes that were not recorded.
RESUME_TRIES = 256
# A DNS query repeated from another source port this soon after an unanswered one is its
# retry (dig and most stub resolvers open a new socket per try; their tries span ≤ 30 s).
RETRY_WINDOW_NS = 30_000_000_000
_RESPONSE_POINTS = ("server.write", "response.wire.first", "response.wire.last", "client.read")


def build(
    session: Session, settled: dict[int, tuple[list[Request], list[Gap]]] | None = None
) -> tuple[list[Request], list[Gap]]:
    """The session's requests in order of start, and where framing had to stop; `settled`
    holds those of connections computed before their calls were dropped."""
    out: list[Request] = []
    gaps: list[Gap] = []
    for conn in session.analyzer.connections:
        found = settled.get(conn.id) if settled else None
        if found is None:
            found = connection_requests(session, conn)
        out.extend(found[0])
        gaps.extend(found[1])
    out.sort(key=lambda r: (r.start_ns, r.conn))
    out = _merge_dns_retries(session, out)
    for i, req in enumerate(out):
        req.id = i
    return out, gaps


def connection_requests(session: Session, conn: Connection) -> tuple[list[Request], list[Gap]]:
    """One connection's requests and framing gaps."""
    gaps: list[Gap] = []
    if conn.proto == "tcp":
        return _tcp_requests(session, conn, gaps), gaps
    if conn.proto == "udp":
        return _udp_requests(session, conn), gaps
    return [], gaps


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


def protocol_ruled_out(session: Session, conn: Connection) -> tuple[bool, bool] | None:
    """Whether no framer takes the TCP connection as its first bytes stand, and whether
    those bytes are final: None while a direction has carried no data yet.

    The streaming analyze drops an open connection's settled calls only while no framer
    takes it (framing reads every call of a connection). The first bytes are final when
    each direction's first data segment starts its stream and was captured whole with at
    least `SNIFF` bytes; until then a call at offset 0 bound later (a late accept) may
    still add some, so the answer is asked again.
    """
    table = session.analyzer.table
    direction, seglen, rel_seq = table.direction, table.seglen, table.rel_seq
    firsts: list[int | None] = [None, None]
    for idx in conn.packet_indices:
        d = direction[idx]
        if firsts[d] is None and seglen[idx]:
            firsts[d] = idx
            if firsts[1 - d] is not None:
                break
    final = True
    for idx in firsts:
        if idx is None:
            return None
        if rel_seq[idx] != 1 or seglen[idx] < SNIFF:
            final = False
        else:
            payload = session.correlator.payload(idx)
            final = final and payload is not None and len(payload) >= seglen[idx]
    return _protocol(conn, _sniff(session, conn)) is None, final


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
    lost: set[int] = set()
    if proto == "http":
        c_frames = http.requests(dirs[0].src, limits[0])
        runs = _http_runs(session, dirs[1], limits[1], [str(f.fields.get("http.method", "")) for f in c_frames])
        s_frames = [f for run in runs for f in run]
        pairs, lost = _pair_http(session, dirs, c_frames, runs)
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
        for f, after in pairwise(frames):
            if after.start > f.end:
                gaps.append(Gap(conn.id, d, f.end, after.start, "not recorded"))
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
        if id(req_frame) in lost:
            fields["http.response"] = "not recorded"
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


def _http_runs(session: Session, dr: Direction, limit: int, methods: list[str]) -> list[list[Frame]]:
    """The responses, in runs: where a response's bytes were not recorded (a chunked body
    cut by the snaplen), framing resumes at the next point that starts a response, as
    tshark's dissector does at the next segment; what lay between is lost."""
    runs = [http.responses(dr.src, limit, methods)]
    while runs[-1]:
        last = runs[-1][-1]
        open_ended = bool(last.fields.get("http.end_unknown"))
        stop = last.start + 1 if open_ended else last.end
        if stop >= limit or (last.end >= limit and not open_ended):
            break
        resume = _resume(session, dr, stop, limit)
        if resume is None:
            break
        answered = sum(1 for run in runs for f in run if not f.fields.get("http.interim"))
        if open_ended:
            # Nothing was skipped: the open response ends where the next begins, and the
            # requests' order still holds.
            last.end, last.complete = resume, True
            del last.fields["http.end_unknown"]
        run = http.responses(dr.src, limit, methods[answered:] if open_ended else [], start=resume)
        if not run:
            break
        runs.append(run)
    if not runs[-1] and len(runs) > 1:
        runs.pop()
    return runs


def _resume(session: Session, dr: Direction, after: int, limit: int) -> int | None:
    """The first offset past `after` where a write began or a segment followed a pushed one
    (where the sender's messages usually begin) and the bytes there start an HTTP response."""
    flags = session.analyzer.table.flags
    starts = {s for s, _, _ in dr.writes if after < s < limit}
    pushed = True
    for s, _, idx in dr.segments:
        if pushed and after < s < limit:
            starts.add(s)
        pushed = bool(flags[idx] & PSH)
    for s in sorted(starts)[:RESUME_TRIES]:
        if http.is_response(dr.src.get(s, 16)):
            return s
    return None


def _pair_http(
    session: Session, dirs: tuple[Direction, Direction], reqs: list[Frame], runs: list[list[Frame]]
) -> tuple[list[tuple[Frame, list[Frame]]], set[int]]:
    """Responses answer requests in order (pipelining included); interim ones go with the
    final response that follows them. A run of responses after lost bytes answers, from
    the latest request that was on the wire before it began: with one request at a time on
    a keep-alive connection that is exact, and the requests skipped had their answers in
    the lost bytes (returned by id, to be marked)."""
    answers: dict[int, list[Frame]] = {}
    lost: set[int] = set()
    ts = session.analyzer.table.ts_ns
    next_free = 0
    for n, run in enumerate(runs):
        groups = _group_interim(run)
        k = next_free
        if n > 0 and groups and groups[0][0].start != runs[n - 1][-1].end:
            first = [ts[idx] for s, e, idx in dirs[1].segments_over(groups[0][0].start, groups[0][0].start + 1)]
            began = min(first) if first else None
            for i in range(next_free, len(reqs)):
                sent = [ts[idx] for s, e, idx in dirs[0].segments_over(reqs[i].end - 1, reqs[i].end)]
                if began is not None and sent and min(sent) <= began:
                    k = i
        lost.update(id(reqs[i]) for i in range(next_free, min(k, len(reqs))))
        for j, group in enumerate(groups):
            answers[k + j] = group
        next_free = k + len(groups)
    return [(r, answers.get(i, [])) for i, r in enumerate(reqs)], lost


def _group_interim(resps: list[Frame]) -> list[list[Frame]]:
    grouped: list[list[Frame]] = []
    pending: list[Frame] = []
    for f in resps:
        pending.append(f)
        if not f.fields.get("http.interim"):
            grouped.append(pending)
            pending = []
    if pending:
        grouped.append(pending)
    return grouped


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
    """A Request with its split computed from `points`; text from the wire made printable."""
    start, total, parts = split(points)
    summary, endpoint = printable(summary), printable(endpoint)
    fields = {k: printable(v) if isinstance(v, str) else v for k, v in fields.items()}
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
    if status is None:
        status = "response not recorded" if fields.get("http.response") == "not recorded" else "no response"
    return f"{method} {uri} → {status}", f"{method} {path}"


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


def _merge_dns_retries(session: Session, reqs: list[Request]) -> list[Request]:
    """Fold a UDP DNS query sent again from a new flow into the unanswered one it repeats
    (same client address, server, id, name and type), as a same-flow repeat already is
    (`dns.pair`): one lookup, its retries counted, its total from the first try to the
    answer. The request side keeps the first try's points, the response side the answer's."""
    connections = session.analyzer.connections
    waiting: dict[tuple[object, ...], Request] = {}
    out: list[Request] = []
    for req in reqs:
        conn = connections[req.conn]
        if req.protocol != "dns" or conn.proto != "udp":
            out.append(req)
            continue
        key = (conn.client_addr, req.server, *dns.key(req.fields))
        first = waiting.get(key)
        if first is None or req.start_ns - first.start_ns > RETRY_WINDOW_NS:
            out.append(req)
            if req.response is None:
                waiting[key] = req
            continue
        merged = _fold_retry(session, first, req)
        out[out.index(first)] = merged
        if merged.response is None:
            waiting[key] = merged
        else:
            del waiting[key]
    return out


def _fold_retry(session: Session, first: Request, retry: Request) -> Request:
    request = first.request
    request.packets = sorted(request.packets + retry.request.packets)
    request.syscalls = sorted(set(request.syscalls) | set(retry.request.syscalls))
    fields = dict(first.fields)
    fields["dns.retries"] = int(first.fields.get("dns.retries", 0)) + 1 + int(retry.fields.get("dns.retries", 0))  # type: ignore[call-overload]
    for name in ("dns.rcode", "dns.answers"):
        if name in retry.fields:
            fields[name] = retry.fields[name]
    points = {k: v for k, v in first.points.items() if k not in _RESPONSE_POINTS}
    points.update((k, v) for k, v in retry.points.items() if k in _RESPONSE_POINTS)
    traced = tuple(side for side in SIDES if side in first.traced or side in retry.traced)
    summary, endpoint = dns.describe(fields, retry.response is not None)
    conn = session.analyzer.connections[first.conn]
    return finish_request("dns", conn, traced, summary, endpoint, request, retry.response, fields, points)


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
