"""Lab `slow-request`: one HTTP request slowed by each cause, and the part of its time that grew.

A client in namespace `a` talks HTTP/1.1 to a server in namespace `b` across a veth pair;
both are traced. Each cause is a pair of requests, one normal and one slowed, and the lab
compares their time splits (engine/requests) part by part:

- **server think time**: `GET /think` makes the server sleep before it answers; the
  server's processing (its read of the request → its first response write) grows.
- **Nagle + delayed ACK**: a POST whose headers and body are two small writes on a
  connection in delayed-ACK ("ping-pong") mode; with Nagle the body waits in the client's
  kernel for the ACK of the headers, which the server delays because it has nothing to
  send yet. The client's send delay grows; the same request with TCP_NODELAY is the
  normal one.
- **a lossy link**: nftables in the server's namespace drops the first copy of the
  segment carrying `GET /lossy` (netem is not in this kernel); the client's kernel sends
  it again, and the request's time on the network grows.
"""

from __future__ import annotations

from wirecorr.engine.analysis_flags import AnalysisFlag
from wirecorr.engine.requests import Request, requests_of
from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import fmt_ns

PORT = 80
THINK_S = 0.15

SERVER = (
    PRELUDE
    + """
addr, port, think = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port))
srv.listen(8)


def serve(s):
    buf = b""
    while True:
        while b"\\r\\n\\r\\n" not in buf:
            data = s.recv(65536)
            if not data:
                return
            buf += data
        head, buf = buf.split(b"\\r\\n\\r\\n", 1)
        length = 0
        for line in head.split(b"\\r\\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buf) < length:
            buf += s.recv(65536)
        buf = buf[length:]
        path = head.split(b" ")[1]
        if path == b"/think":
            time.sleep(think)
        body = b"done " + path + b"\\n"
        s.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(body), body))


for _ in range(4):
    s, _ = srv.accept()
    serve(s)
    s.close()
"""
)

CLIENT = (
    PRELUDE
    + """
ns_b, server_py, addr, port, think = sys.argv[1:6]
port = int(port)
server = subprocess.Popen(["ip", "netns", "exec", ns_b, sys.executable, "-I", server_py, addr, str(port), think])
wait_listening(port, "/proc/%d/net/tcp" % server.pid)


def request(c, method, path, body=b"", split=False):
    head = b"%s %s HTTP/1.1\\r\\nHost: lab\\r\\n" % (method, path)
    if body:
        head += b"Content-Length: %d\\r\\n" % len(body)
    head += b"\\r\\n"
    if split:  # write, write, read: the pattern Nagle and delayed ACKs punish
        c.send(head)
        c.send(body)
    else:
        c.sendall(head + body)
    reply = b""
    while b"\\r\\n\\r\\n" not in reply:
        reply += c.recv(65536)
    head, rest = reply.split(b"\\r\\n\\r\\n", 1)
    length = int(head.lower().split(b"content-length:")[1].split(b"\\r\\n")[0])
    while len(rest) < length:
        rest += c.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head


# 1. think time, then 3. loss: a normal request before each slowed one, on one connection.
c = socket.create_connection((addr, port))
request(c, b"GET", b"/fast")
request(c, b"GET", b"/think")
c.close()
# 2. Nagle: the same split POST with TCP_NODELAY (normal), then without (slowed). A few
# request/response rounds first put the server's end into delayed-ACK (ping-pong) mode.
body = b"name=value&other=thing"
for nodelay in (True, False):
    c = socket.create_connection((addr, port))
    if nodelay:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(3):
        request(c, b"GET", b"/warm")
    request(c, b"POST", b"/nodelay" if nodelay else b"/nagle", body, split=True)
    c.close()
c = socket.create_connection((addr, port))
request(c, b"GET", b"/quick")
request(c, b"GET", b"/lossy")
c.close()
sys.exit(server.wait())
"""
)

# The first copy of the segment whose payload starts "GET /loss" is dropped on arrival in
# the server's namespace (drops on the sender's own output hook would be retried locally
# and never reach the wire). The connection's conntrack mark remembers the drop, so its
# retransmission passes; the chain runs after conntrack (priority -150) for that.
NFT = f"""
table inet wclab {{
    chain pre {{
        type filter hook prerouting priority -150; policy accept;
        tcp dport {PORT} @ih,0,40 0x474554202f @ih,40,32 0x6c6f7373 ct mark != 7 ct mark set 7 drop
    }}
}}
"""


def command(work: Workdir, net: LabNet) -> list[str]:
    assert net.b is not None
    server = work.python("server", SERVER)[-1]
    return work.python("client", CLIENT, net.b, server, net.addr_b, PORT, THINK_S)


# (cause, the normal request's path, the slowed one's, the part of the split that must grow)
CAUSES = (
    ("server think time", "/fast", "/think", "server processing"),
    ("Nagle + delayed ACK", "/nodelay", "/nagle", "request wire"),
    ("a lost segment", "/quick", "/lossy", "request wire"),
)


def growth(normal: Request, slowed: Request) -> list[tuple[str, int]]:
    """Each part's time in the slowed request minus the normal one's, largest growth first."""
    before: dict[str, int] = {}
    for part, ns in normal.split:
        before[part] = before.get(part, 0) + ns
    after: dict[str, int] = {}
    for part, ns in slowed.split:
        after[part] = after.get(part, 0) + ns
    return sorted(((p, after.get(p, 0) - before.get(p, 0)) for p in after.keys() | before.keys()), key=lambda x: -x[1])


def explain(ev: Evidence) -> None:
    by_uri = {str(r.fields.get("http.uri")): r for r in requests_of(ev.session) if r.protocol == "http"}
    ev.fact("requests", len(requests_of(ev.session)))
    for cause, normal_uri, slowed_uri, part in CAUSES:
        normal, slowed = by_uri.get(normal_uri), by_uri.get(slowed_uri)
        if not ev.expect(normal and slowed, f"{cause}: the requests {normal_uri} and {slowed_uri} were not found"):
            continue
        assert normal is not None and slowed is not None
        if not ev.expect(
            normal.total_ns is not None and slowed.total_ns is not None, f"{cause}: a request got no response"
        ):
            continue
        assert normal.total_ns is not None and slowed.total_ns is not None
        grew = growth(normal, slowed)
        top, extra = grew[0]
        ev.fact(f"{slowed_uri} total_ns", slowed.total_ns)
        ev.fact(f"{slowed_uri} grew", top)
        ev.say(
            f"{cause}: {slowed.summary} took {fmt_ns(slowed.total_ns)}, {normal.summary} {fmt_ns(normal.total_ns)}; "
            f"the part that grew: {top} (+{fmt_ns(extra)})"
        )
        ev.say("  " + ", ".join(f"{p} {fmt_ns(ns)}" for p, ns in slowed.split))
        ev.expect(top == part, f"{cause}: {top} grew most, not {part}")
        ev.expect(extra > 5_000_000, f"{cause}: {slowed_uri} was not slower by more than 5 ms ({fmt_ns(extra)})")
        if slowed_uri == "/nagle":
            _held(ev, slowed)
        elif slowed_uri == "/lossy":
            _resent(ev, slowed)
    # The engine's own diagnosis in its words: the same lines `wirecorr analyze` prints.
    ev.cite_findings("slow_request", limit=3)
    ev.cite_findings("request_nagle_delay", "retransmission", limit=1)


def _held(ev: Evidence, req: Request) -> None:
    """Nagle: the body's write entered at once but its segment left only after the peer's ACK."""
    writes = [lk for lk in ev.links("write-data") if lk.syscall in req.request.syscalls and lk.packets]
    late = max(writes, key=lambda lk: lk.delay_ns or 0, default=None)
    if not ev.expect(late is not None and (late.delay_ns or 0) > 5_000_000, "Nagle: no write of /nagle was held"):
        return
    assert late is not None
    ev.say(
        f"  {ev.describe(late)}: the body's write waited {fmt_ns(late.delay_ns)} in the client's kernel for the "
        "ACK of the headers, which the server delayed; no segment was lost"
    )
    ev.expect(not _retransmitted(ev, req), "Nagle: /nagle's segments include a retransmission")


def _resent(ev: Evidence, req: Request) -> None:
    """Loss: the request's segment is on the wire twice; the server read it after the second."""
    again = _retransmitted(ev, req)
    if not ev.expect(again, "loss: no retransmission of /lossy's segment was captured"):
        return
    first = min(req.request.packets)
    ev.say(
        f"  {ev.frame(first)} carried the request and was dropped before the server; {ev.frames(again)} sent "
        f"it again {fmt_ns(ev.ts(again[0]) - ev.ts(first))} later (the client's retransmission timer)"
    )


def _retransmitted(ev: Evidence, req: Request) -> list[int]:
    bits = AnalysisFlag.RETRANSMISSION | AnalysisFlag.FAST_RETRANSMISSION
    return [i for i in req.request.packets if ev.table.analysis[i] & bits]


LAB = Lab(
    name="slow-request",
    summary="an HTTP request slowed by think time, Nagle + delayed ACK, a lost segment: which part of its time grew",
    command=command,
    explain=explain,
    pair=True,
    nft=NFT,
    capture_filter=f"tcp port {PORT}",
    snaplen=256,
)
