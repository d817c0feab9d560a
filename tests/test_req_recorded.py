"""Requests on real recordings: python's http.server (HTTP/1.1 keep-alive) with curl, and
redis-server with redis-cli (single commands and a pipeline), both sides traced. Truth is
what the clients asked for and got (curl's -w output, redis-cli's replies)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import free_port

from wirecorr.engine.ingest import analyze_file
from wirecorr.engine.requests import requests_of, settle

pytest.importorskip("wirecorr.sources.tracer", reason="the ptrace tracer has not landed yet")

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")


def _record(out: Path, port: int, script: str) -> None:
    cmd = [PYTHON, "-m", "wirecorr", "record", "-i", "lo", "-f", f"tcp port {port}", "-o", str(out)]
    proc = subprocess.run(
        [*cmd, "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def _check_split(req) -> None:  # type: ignore[no-untyped-def]
    assert req.total_ns is not None and req.total_ns > 0
    assert sum(ns for _, ns in req.split) == req.total_ns
    assert [name for name, _ in req.split] == [
        "send", "request wire", "server read", "server processing", "server send", "response wire", "delivery",
    ]  # fmt: skip
    assert req.request.syscalls and req.request.packets and req.response is not None and req.response.packets


def test_http_keepalive_requests(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<html>hello</html>\n")
    port = free_port()
    out = tmp_path / "http.pcapng"
    url = f"http://127.0.0.1:{port}"
    _record(
        out,
        port,
        f"cd {www} && {sys.executable} -m http.server {port} --bind 127.0.0.1 --protocol HTTP/1.1 "
        f">/dev/null 2>&1 & srv=$!; "
        f"for i in $(seq 1 100); do curl -s -o /dev/null {url}/index.html && break; sleep 0.05; done; "
        f"curl -s -w '%{{http_code}}\\n' -o /dev/null -o /dev/null -o /dev/null -o /dev/null "
        f"{url}/index.html {url}/index.html {url}/missing {url}/index.html > {tmp_path}/codes; kill $srv",
    )
    codes = [int(c) for c in (tmp_path / "codes").read_text().split()]
    assert codes == [200, 200, 404, 200]
    session = analyze_file(str(out))
    reqs = requests_of(session)
    last = reqs[-4:]
    assert [(r.fields["http.method"], r.fields["http.uri"], r.fields["http.status"]) for r in last] == [
        ("GET", "/index.html", 200), ("GET", "/index.html", 200), ("GET", "/missing", 404), ("GET", "/index.html", 200),
    ]  # fmt: skip
    # curl kept one connection for three requests; http.server closes it after its 404.
    assert len({r.conn for r in last[:3]}) == 1 and last[3].conn != last[0].conn
    assert last[2].fields["http.connection"] == "close"
    assert last[0].summary == "GET /index.html → 200"
    for r in reqs:
        assert r.protocol == "http" and r.traced == ("client", "server")
        _check_split(r)
    # Keep-alive: each response ends where the next begins in the server's stream.
    assert [r.response.start for r in last[1:3]] == [r.response.end for r in last[:2]]  # type: ignore[union-attr]
    doc = json.loads(
        subprocess.run([PYTHON, "-m", "wirecorr", "analyze", "--json", str(out)], capture_output=True, text=True).stdout
    )
    assert doc["schema"] == "wirecorr.analyze/2"
    assert [r["summary"] for r in doc["requests"]] == [r.summary for r in reqs]
    assert doc["request_stats"]["protocols"][0]["count"] == len(reqs)


def test_redis_commands_and_pipeline(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "redis.pcapng"
    cli = f"redis-cli -p {port}"
    _record(
        out,
        port,
        f"redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & srv=$!; "
        f"for i in $(seq 1 100); do {cli} ping >/dev/null 2>&1 && break; sleep 0.05; done; "
        f"{cli} set k1 v1 >/dev/null; {cli} lpush k1 x > {tmp_path}/err; "
        f"printf 'SET a 1\\r\\nGET a\\r\\nINCR a\\r\\nGET nosuch\\r\\n' | {cli} --pipe > {tmp_path}/pipe; "
        f"kill $srv; wait $srv",
    )
    assert "WRONGTYPE" in (tmp_path / "err").read_text()
    assert "replies: 4" in (tmp_path / "pipe").read_text()
    reqs = [r for r in requests_of(analyze_file(str(out))) if r.fields.get("redis.cmd") != "PING"]
    summaries = [r.summary for r in reqs]
    assert summaries[:2] == ["SET k1 → OK", "LPUSH k1 → -WRONGTYPE"]
    # The pipeline: four inline commands and redis-cli's closing ECHO on one connection.
    piped = reqs[2:]
    assert [r.fields["redis.cmd"] for r in piped] == ["SET", "GET", "INCR", "GET", "ECHO"]
    assert len({r.conn for r in piped}) == 1
    assert piped[3].summary == "GET nosuch → nil" and piped[2].summary == "INCR a → integer"
    for r in reqs:
        _check_split(r)
    # Settled before a streaming analysis drops the calls, a connection's requests stay whole.
    session = analyze_file(str(out))
    for conn in session.analyzer.connections:
        settle(session, conn.id)
    session._by_id.clear()  # what the streaming analyze's drop_syscalls does to the calls it wrote out
    session.syscalls.clear()
    assert [(r.summary, r.split, r.syscalls) for r in requests_of(session) if r.fields.get("redis.cmd") != "PING"] == [
        (r.summary, r.split, r.syscalls) for r in reqs
    ]


def test_wire_fixture_server_side_only(wire, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Only the server traced (curl runs outside the recording): the split starts on the
    wire and has the server's parts; `wire.requests` and `[requests]` rules see them."""
    (tmp_path / "index.html").write_text("hi\n")
    port = free_port()
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--protocol", "HTTP/1.1"]
    url = f"http://127.0.0.1:{port}"
    with wire.record(
        ["sh", "-c", f"cd {tmp_path} && exec {' '.join(server)}"], ports=[port], listen_port=port, stop="terminate"
    ):
        done = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}\n",
                f"{url}/index.html",
                f"{url}/nope",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert done.stdout.split() == ["200", "404"]
    reqs = wire.requests("http")
    assert [r.fields["http.status"] for r in reqs] == [200, 404]
    for r in reqs:
        assert r.traced == ("server",)
        assert [name for name, _ in r.split] == [
            "request wire", "server read", "server processing", "server send", "response wire",
        ]  # fmt: skip
        assert sum(ns for _, ns in r.split) == r.total_ns
        assert r.points["request.wire.first"] == r.start_ns
    assert wire.requests(endpoint="GET /nope")[0].summary == "GET /nope → 404"
    wire.expect({"requests": {"protocol": "http", "count": 2, "status": [200, "4xx"], "max_latency_ms": 5000}})
    report = wire.check({"requests": [{"endpoint": "GET /index.html", "status": 404}, {"count": {"min": 3}}]})
    assert [r.passed for r in report.results] == [False, False]
    assert "GET /index.html → 200" in report.results[0].notes[0]


def test_requests_rules_are_validated() -> None:
    from wirecorr.views.checks import parse_rules
    from wirecorr.views.checks.rules import RulesError

    for doc, problem in (
        ({"requests": {"protocol": "htp", "count": 1}}, "unknown protocol 'htp'"),
        ({"requests": {"protocol": "http"}}, "nothing to check"),
        ({"requests": {"max_latency": 5}}, "unknown key"),
        ({"requests": {"status": [True]}}, "want a status"),
        ({"requests": {"count": {"mn": 1}}}, "unknown key 'mn'"),
    ):
        with pytest.raises(RulesError, match=problem):
            parse_rules(doc, "r.toml")


SLOW_SERVER = r"""
import socket, sys, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(8)
for _ in range(2):
    conn, _ = srv.accept()
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            break
        buf += data
        while b"\r\n\r\n" in buf:
            head, buf = buf.split(b"\r\n\r\n", 1)
            if head.startswith(b"GET /slow"):
                time.sleep(0.15)
            if head.startswith(b"GET /big"):
                body = b"x" * 3000 + b"ok"
                chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    conn.close()
"""
PIPELINING_CLIENT = r"""
import socket, sys, time
port = int(sys.argv[1])
def get(sock, paths):
    sock.sendall(b"".join(b"GET " + p + b" HTTP/1.1\r\nHost: x\r\n\r\n" for p in paths))
    got = b""
    while got.count(b"ok") < len(paths):
        got += sock.recv(4096)
for _ in range(200):
    try:
        a = socket.create_connection(("127.0.0.1", port))
        break
    except ConnectionRefusedError:
        time.sleep(0.02)
for path in (b"/fast", b"/fast", b"/big", b"/fast", b"/fast"):
    get(a, [path])
a.close()
b = socket.create_connection(("127.0.0.1", port))
get(b, [b"/slow", b"/after"])
b.close()
"""


def test_slow_request_and_head_of_line_findings(tmp_path: Path) -> None:
    """A server that thinks 150 ms on /slow: the slow request is an outlier dominated by
    server processing, and /after, pipelined behind it, waited at the head of the line.
    Its chunked /big response is cut by the capture's snaplen, and framing carries on."""
    (tmp_path / "server.py").write_text(SLOW_SERVER)
    (tmp_path / "client.py").write_text(PIPELINING_CLIENT)
    port = free_port()
    out = tmp_path / "slow.pcapng"
    _record(
        out,
        port,
        f"{sys.executable} {tmp_path}/server.py {port} & srv=$!; "
        f"{sys.executable} {tmp_path}/client.py {port}; wait $srv",
    )
    session = analyze_file(str(out))
    reqs = [r for r in requests_of(session) if r.fields.get("http.uri") != "/"]
    assert [r.fields["http.uri"] for r in reqs] == ["/fast", "/fast", "/big", "/fast", "/fast", "/slow", "/after"]
    # /big's chunked body went out in one segment longer than the snaplen (2048): framing
    # resumed at the next response, so every request still has its own.
    assert all(r.fields.get("http.status") == 200 and r.response is not None for r in reqs)
    big = reqs[2]
    assert big.response.size > 3000 and big.response.end == reqs[3].response.start  # type: ignore[union-attr]
    assert big.fields["http.transfer_encoding"] == "chunked"
    slow, after = reqs[-2], reqs[-1]
    assert slow.dominant()[0] == "server processing" and dict(slow.split)["server processing"] >= 150_000_000
    findings = {(f.kind, f.connection): f for f in session.findings}
    assert ("slow_request", slow.conn) in findings
    assert "most of it in server processing" in findings[("slow_request", slow.conn)].message
    hol = findings[("head_of_line_blocking", after.conn)]
    assert "GET /after" in hol.message and "GET /slow" in hol.message


NAGLE_HTTP = r"""
import socket, sys
port = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.create_connection(("127.0.0.1", port))
s, _ = srv.accept()
def serve(body_len):
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    got = 0
    while got < body_len:
        got += len(s.recv(body_len - got))
    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
def answer(n):
    got = b""
    while len(got) < n:
        got += c.recv(100)
# Request/response rounds put the server's end into delayed-ACK (pingpong) mode ...
for _ in range(3):
    c.send(b"GET / HTTP/1.1\r\n\r\n")
    serve(0)
    answer(40)
# ... so the body's small write waits, by Nagle, for the ACK of the head's.
c.send(b"POST /form HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
c.send(b"hello")
serve(5)
answer(40)
# A server that answers before it has read the body.
c.send(b"POST /early HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
s.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
answer(len(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"))
c.send(b"early")
s.recv(5)
c.close()
s.close()
"""


def test_nagle_and_early_response_findings(tmp_path: Path) -> None:
    """A POST written as head + body behind a delayed ACK is a request_nagle_delay; a 413
    sent before the body was read is an early_response."""
    (tmp_path / "prog.py").write_text(NAGLE_HTTP)
    port = free_port()
    out = tmp_path / "nagle.pcapng"
    _record(out, port, f"{sys.executable} {tmp_path}/prog.py {port}")
    session = analyze_file(str(out))
    reqs = requests_of(session)
    assert [r.summary for r in reqs] == ["GET / → 200"] * 3 + ["POST /form → 200", "POST /early → 413"]
    form, early = reqs[3], reqs[4]
    nagle = [f for f in session.findings if f.kind == "request_nagle_delay"]
    assert len(nagle) == 1 and "POST /form → 200" in nagle[0].message and "request" in nagle[0].message
    # The wait shows in the split: the request's last byte left ≥ 30 ms after its first.
    assert dict(form.split)["request wire"] >= 30_000_000
    (found,) = [f for f in session.findings if f.kind == "early_response"]
    assert found.connection == early.conn and "POST /early → 413" in found.message
