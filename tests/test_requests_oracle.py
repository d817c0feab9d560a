"""Requests found in real recordings, judged by tshark's dissectors and the clients' output.

Each module fixture records one real server with its real clients (requests_oracle.py),
once; the tests then compare what wirecorr's request layer finds with what tshark's
HTTP, RESP, DNS and PostgreSQL dissectors find on the same file and with what curl,
redis-cli, dig and psql printed: every request found, none invented, the same status,
and each request's time split adds up to its total.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from helpers import free_port
from requests_oracle import PYTHON, Recorded, pg_bindir, record_scenario, tshark_fields

from wirecorr.engine.ingest import analyze_file
from wirecorr.engine.requests import Request, requests_of
from wirecorr.engine.requests.split import PARTS
from wirecorr.engine.session import Session
from wirecorr.views.tui.display_filter import compile_filter
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.loader import FileLoader
from wirecorr.views.tui.packets import LivePackets
from wirecorr.views.tui.requests_pane import request_rows
from wirecorr.views.tui.rows import is_syscall_ref, ref_pos

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="record needs root (ptrace and tcpdump)")


# -- the scenarios ----------------------------------------------------------------------


def _docroot(root: Path) -> Path:
    docs = root / "www"
    docs.mkdir()
    (docs / "index.html").write_text("<html><body>hello</body></html>\n")
    (docs / "big.txt").write_text("".join(f"line {i:05d} of a text that compresses well\n" for i in range(900)))
    (docs / "blob.bin").write_bytes(bytes(range(256)) * 12)
    return docs


@pytest.fixture(scope="module")
def http_python(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """python's http.server (HTTP/1.0: one connection per request) and curl: two files and a 404."""
    tmp = tmp_path_factory.mktemp("http-python")
    docs, port = _docroot(tmp), free_port()
    base = f"http://127.0.0.1:{port}"
    curl = ["curl", "-s", "--max-time", "10", "-w", "%{http_code}\\n"]
    return record_scenario(
        tmp,
        "http-python",
        port,
        [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(docs)],
        [[*curl, "-o", "/dev/null", f"{base}/index.html", "-o", "/dev/null", f"{base}/nope", "-o", "/dev/null",
          f"{base}/big.txt"]],
    )  # fmt: skip


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
error_log {dir}/error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  default_type application/octet-stream;
  types {{ text/html html; text/plain txt; }}
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  keepalive_timeout 30;
  gzip on;
  gzip_types text/plain;
  server {{
    listen 127.0.0.1:{port};
    root {dir}/www;
  }}
}}
"""


@pytest.fixture(scope="module")
def http_nginx(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """nginx and one curl: four requests on one keep-alive connection, gzip's chunked
    responses, a Content-Length one and a 404."""
    tmp = tmp_path_factory.mktemp("http-nginx")
    _docroot(tmp)
    (tmp / "tmp").mkdir()
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=tmp, port=port))
    base = f"http://127.0.0.1:{port}"
    curl = ["curl", "-s", "--http1.1", "--compressed", "--max-time", "10", "-w", "%{http_code} %{num_connects}\\n"]
    urls = ("index.html", "big.txt", "missing.html", "blob.bin")
    args = [arg for url in urls for arg in ("-o", "/dev/null", f"{base}/{url}")]
    return record_scenario(
        tmp, "http-nginx", port, ["nginx", "-p", str(tmp), "-c", str(conf)], [[*curl, *args]], stop="SIGQUIT"
    )


REDIS_PIPE = "".join(
    f"*{len(cmd)}\r\n" + "".join(f"${len(arg)}\r\n{arg}\r\n" for arg in cmd)
    for cmd in (["SET", "p1", "one"], ["INCR", "counter"], ["INCR", "counter"], ["GET", "p1"], ["LPUSH", "l", "x"])
)


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """redis-server; redis-cli with single commands (one an error) and a --pipe of five."""
    tmp = tmp_path_factory.mktemp("redis")
    port = free_port()
    cli = ["redis-cli", "-p", str(port)]
    server = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    clients = [
        [*cli, "SET", "k", "v"],
        [*cli, "GET", "k"],
        [*cli, "GET", "nokey"],
        [*cli, "INCR", "k"],
        [*cli, "--pipe"],
    ]
    return record_scenario(tmp, "redis", port, server, clients, stdin={4: REDIS_PIPE})


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """dnsmasq answering from its own records only (never forwarding); dig over UDP and +tcp."""
    tmp = tmp_path_factory.mktemp("dns")
    port = free_port()
    hosts = tmp / "hosts"
    hosts.write_text("127.0.0.7 a.test\n127.0.0.8 b.test\n")
    server = [
        *("dnsmasq", "-k", "--conf-file=/dev/null", f"--port={port}", "--listen-address=127.0.0.1"),
        *("--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", "--local=/test/"),
        *("--address=/wild.test/127.0.0.9", "--pid-file=", "--user=root"),
    ]  # fmt: skip
    dig = ["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=5"]
    clients = [
        [*dig, "a.test"],
        [*dig, "nope.test"],
        [*dig, "+tcp", "b.test"],
        [*dig, "+tcp", "x.wild.test"],
    ]
    return record_scenario(tmp, "dns", port, server, clients)


# A DNS server that stays silent on the first query of each id and answers the next
# (NXDOMAIN, no records): dig's second try is a retry of the first. The TCP listener is
# there only for the driver, which waits for one.
SILENT_ONCE = """
import socket, sys
port = int(sys.argv[1])
ready = socket.create_server(("127.0.0.1", port))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
seen = set()
for _ in range(20):
    query, peer = s.recvfrom(512)
    if query[:2] not in seen:
        seen.add(query[:2])
        continue
    s.sendto(query[:2] + bytes([0x81, 0x83]) + query[4:], peer)
"""


@pytest.fixture(scope="module")
def dns_retry(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """dig with two tries of one second against a server that ignores each first query."""
    tmp = tmp_path_factory.mktemp("dns-retry")
    port = free_port()
    dig = ["dig", "@127.0.0.1", "-p", str(port), "+tries=2", "+time=1", "+nocookie", "+noedns"]
    return record_scenario(tmp, "dns-retry", port, [PYTHON, "-c", SILENT_ONCE, str(port)], [[*dig, "gone.test"]])


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """postgres (as user postgres, a throwaway cluster, unix socket + 127.0.0.1) and psql:
    three queries and one error."""
    bindir = pg_bindir()
    if bindir is None or shutil.which("psql") is None:
        pytest.fail("PostgreSQL is not installed: `make system` installs it (APT_TOOLS postgresql)")
    # Not under pytest's 0700 temporary directory: the server runs as postgres.
    with tempfile.TemporaryDirectory(prefix="wirecorr-pg-") as top:
        tmp = Path(top)
        os.chmod(tmp, 0o777)
        data = tmp / "data"
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
            user="postgres",
            capture_output=True,
            check=True,
            timeout=120,
            cwd=tmp,
        )
        port = free_port()
        server = [
            *(str(bindir / "postgres"), "-D", str(data), "-k", str(tmp), "-p", str(port)),
            *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "autovacuum=off"),
        ]  # fmt: skip
        psql = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres", "-X", "-A", "-t"]
        queries = ["select 1", "select 'two', 2", "select * from no_such_table", "select count(*) from pg_class"]
        clients = [[*psql, "-c", q] for q in queries]
        done = record_scenario(tmp / "rec", "pg", port, server, clients, stop="SIGINT", user="postgres")
        kept = tmp_path_factory.mktemp("pg") / done.path.name
        shutil.copyfile(done.path, kept)
        done.path = kept
    yield done


# -- what wirecorr finds -----------------------------------------------------------------


@cache
def _found(path: Path) -> tuple[Session, list[Request]]:
    session = analyze_file(str(path))
    return session, requests_of(session)


def found(rec: Recorded, protocol: str) -> tuple[Session, list[Request]]:
    session, reqs = _found(rec.path)
    return session, [r for r in reqs if r.protocol == protocol]


def stream_of(session: Session, req: Request) -> int:
    """Wireshark's tcp.stream / udp.stream of the request's connection."""
    return session.analyzer.connections[req.conn].stream


def check_split(reqs: list[Request]) -> None:
    """Both ends were traced: every part is measured, and the parts add up to the total."""
    for req in reqs:
        assert req.traced == ("client", "server"), req
        assert req.total_ns is not None and req.total_ns > 0, req
        assert [part for part, _ in req.split] == list(PARTS), req
        assert all(ns >= 0 for _, ns in req.split), req
        assert sum(ns for _, ns in req.split) == req.total_ns, req
        assert req.points["client.write"] == req.start_ns and req.points["client.read"] == req.end_ns, req


def _ns(seconds: str) -> int:
    return round(float(seconds) * 1e9)


def wire_gap(req: Request) -> int:
    """From the request's last byte on the wire to the response's first: what tshark's
    http.time and dns.time measure (request frame → response frame)."""
    return req.points["response.wire.first"] - req.points["request.wire.last"]


# -- HTTP ---------------------------------------------------------------------------------


def http_truth(rec: Recorded) -> list[tuple[int, str, str, int | None, int | None]]:
    """(tcp.stream, method, uri, status, http.time ns) per request, from tshark's HTTP dissector;
    a response is paired with its request by http.request_in."""
    rows = tshark_fields(
        rec.path,
        "http",
        ["tcp.stream", "http.request.method", "http.request.uri", "http.response.code", "http.time", "http.request_in"],
    )
    requests = {r["frame.number"]: r for r in rows if r["http.request.method"]}
    answers = {r["http.request_in"]: r for r in rows if r["http.response.code"]}
    out = []
    for frame, r in requests.items():
        answer = answers.get(frame)
        code = int(answer["http.response.code"]) if answer else None
        took = _ns(answer["http.time"]) if answer and answer["http.time"] else None
        out.append((int(r["tcp.stream"]), r["http.request.method"], r["http.request.uri"], code, took))
    return out


def check_http(rec: Recorded, truth: list[tuple[int, str, str, int | None, int | None]]) -> None:
    session, reqs = found(rec, "http")
    got = [
        (stream_of(session, r), r.fields["http.method"], r.fields["http.uri"], r.fields.get("http.status"))
        for r in reqs
    ]
    assert got == [t[:4] for t in truth]
    check_split(reqs)
    for req, (*_, took) in zip(reqs, truth, strict=True):
        assert took is not None
        assert abs(wire_gap(req) - took) <= 1_000, (req.summary, wire_gap(req), took)


def test_http_python(http_python: Recorded) -> None:
    """HTTP/1.0, one connection per request (python's http.server closes after each)."""
    assert http_python.client_output(0).split() == ["200", "404", "200"]
    truth = http_truth(http_python)
    assert [(t[0], t[3]) for t in truth] == [(0, 200), (1, 404), (2, 200)]
    check_http(http_python, truth)


def test_http_nginx_keepalive_chunked(http_nginx: Recorded) -> None:
    """Four requests on one keep-alive connection; gzip makes three responses chunked."""
    out = [line.split() for line in http_nginx.client_output(0).splitlines()]
    assert [code for code, _ in out] == ["200", "200", "404", "200"]
    assert [n for _, n in out] == ["1", "0", "0", "0"], "curl reused one connection"
    truth = http_truth(http_nginx)
    assert [(t[0], t[3]) for t in truth] == [(0, 200), (0, 200), (0, 404), (0, 200)]
    chunked = tshark_fields(http_nginx.path, 'http.transfer_encoding == "chunked"', ["http.response.code"])
    assert chunked, "tshark saw no chunked response"
    check_http(http_nginx, truth)
    _, reqs = found(http_nginx, "http")
    assert reqs[0].fields.get("http.transfer_encoding") == "chunked"


# -- Redis --------------------------------------------------------------------------------


def resp_truth(rec: Recorded) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(tcp.stream, command) per request and (tcp.stream, reply type) per reply, from tshark's
    RESP dissector: a request is an array whose first bulk string is the command."""
    fields = ["tcp.stream", "tcp.srcport", "resp.array.length", "resp.bulk_string.value"]
    fields += ["resp.string", "resp.error", "resp.integer", "resp.bulk_string.length"]
    rows = tshark_fields(rec.path, "resp", fields, [f"tcp.port=={rec.port},resp"])
    commands, replies = [], []

    def split(value: str) -> list[str]:
        return value.split("|") if value else []

    for r in rows:
        stream = int(r["tcp.stream"])
        if int(r["tcp.srcport"]) != rec.port:
            values = split(r["resp.bulk_string.value"])
            for n in map(int, split(r["resp.array.length"])):
                commands.append((stream, bytes.fromhex(values[0].replace(":", "")).decode().upper()))
                values = values[n:]
        else:
            for kind, name in (("+", "resp.string"), ("-", "resp.error"), (":", "resp.integer")):
                replies += [(stream, kind)] * len(split(r[name]))
            replies += [(stream, "$")] * len(split(r["resp.bulk_string.length"]))
    return commands, replies


def test_redis_single_and_pipelined(redis: Recorded) -> None:
    """Four redis-cli commands (one error), then --pipe: five commands in one write and the
    ECHO redis-cli adds to find the last reply."""
    assert [redis.client_output(i).strip() for i in range(4)] == [
        "OK",
        "v",
        "",
        "ERR value is not an integer or out of range",
    ]
    assert "errors: 0, replies: 5" in redis.client_output(4)
    commands, replies = resp_truth(redis)
    pipe = ["SET", "INCR", "INCR", "GET", "LPUSH", "ECHO"]
    assert commands == [(0, "SET"), (1, "GET"), (2, "GET"), (3, "INCR")] + [(4, c) for c in pipe]
    assert len(replies) == len(commands)
    session, reqs = found(redis, "redis")
    assert [(stream_of(session, r), r.fields["redis.cmd"]) for r in reqs] == commands
    check_split(reqs)
    errors = [r for r in reqs if r.fields.get("redis.error")]
    assert [r.fields["redis.error"] for r in errors] == [redis.client_output(3).strip()]
    pipelined = [r for r in reqs if stream_of(session, r) == 4]
    assert len({r.request.syscalls[0] for r in pipelined[:5]}) == 1, "the pipe's five commands are one write"


# -- DNS ----------------------------------------------------------------------------------


def dns_truth(rec: Recorded) -> list[tuple[str, int, str, int, int]]:
    """(transport, id, qname, rcode, dns.time ns) per answered query, from tshark's DNS dissector."""
    rows = tshark_fields(
        rec.path,
        "dns.flags.response == 1",
        ["udp", "dns.id", "dns.qry.name", "dns.flags.rcode", "dns.time"],
        [f"udp.port=={rec.port},dns", f"tcp.port=={rec.port},dns"],
    )
    return [
        (
            "udp" if r["udp"] else "tcp",
            int(r["dns.id"], 0),
            r["dns.qry.name"],
            int(r["dns.flags.rcode"]),
            _ns(r["dns.time"]),
        )
        for r in rows
    ]


def test_dns_udp_and_tcp(dns: Recorded) -> None:
    """dig over UDP (an answer, an NXDOMAIN) and over TCP (+tcp): ids and rcodes as dig printed them."""
    headers = [re.search(r"status: (\w+), id: (\d+)", c["stdout"]) for c in dns.clients]
    assert all(headers)
    dig = [(m.group(1), int(m.group(2))) for m in headers if m]
    assert [status for status, _ in dig] == ["NOERROR", "NXDOMAIN", "NOERROR", "NOERROR"]
    truth = dns_truth(dns)
    assert [(t[0], t[1]) for t in truth] == list(zip(["udp", "udp", "tcp", "tcp"], [i for _, i in dig], strict=True))
    session, reqs = found(dns, "dns")
    got = [
        (session.analyzer.connections[r.conn].proto, r.fields["dns.id"], r.fields["dns.qname"], r.fields["dns.rcode"])
        for r in reqs
    ]
    assert got == [t[:4] for t in truth]
    check_split(reqs)
    for req, (*_, took) in zip(reqs, truth, strict=True):
        assert abs(wire_gap(req) - took) <= 1_000, (req.summary, wire_gap(req), took)


def test_dns_retry_counted_on_its_query(dns_retry: Recorded) -> None:
    """dig sent its query twice, the second from a new source port (tshark's DNS dissector
    sees two conversations, so it does not call it a retransmission), and got one NXDOMAIN:
    one lookup, its retry counted, timed from the first try, and one dns_error finding."""
    assert "status: NXDOMAIN" in dns_retry.client_output(0), dns_retry.client_output(0)
    queries = tshark_fields(
        dns_retry.path, "dns.flags.response == 0", ["dns.id", "udp.srcport"], [f"udp.port=={dns_retry.port},dns"]
    )
    assert [q["dns.id"] for q in queries] == [queries[0]["dns.id"]] * 2
    assert queries[0]["udp.srcport"] != queries[1]["udp.srcport"]
    session, reqs = found(dns_retry, "dns")
    assert [(r.fields["dns.id"], r.fields["dns.rcode"], r.fields.get("dns.retries")) for r in reqs] == [
        (int(queries[0]["dns.id"], 0), 3, 1)
    ]
    check_split(reqs)
    assert reqs[0].total_ns is not None and reqs[0].total_ns >= 900_000_000, "timed from the try dig gave up on"
    assert len(reqs[0].request.packets) == 2
    messages = [f.message for f in session.findings if f.kind == "dns_error"]
    assert len(messages) == 1 and "was sent 2 times" in messages[0], messages


# -- PostgreSQL ----------------------------------------------------------------------------


def test_pg_queries_and_error(pg: Recorded) -> None:
    """psql: four connections (SSL request refused, startup, one simple query each), one error."""
    assert [c["status"] for c in pg.clients] == [0, 0, 1, 0]
    assert "no_such_table" in pg.clients[2]["stderr"]
    rows = tshark_fields(
        pg.path, "pgsql", ["tcp.stream", "pgsql.type", "pgsql.query", "pgsql.code"], [f"tcp.port=={pg.port},pgsql"]
    )
    queries = [(int(r["tcp.stream"]), r["pgsql.query"]) for r in rows if r["pgsql.query"]]
    errors = [(int(r["tcp.stream"]), r["pgsql.code"]) for r in rows if r["pgsql.code"]]
    startups = [int(r["tcp.stream"]) for r in rows if "Startup message" in r["pgsql.type"].split("|")]
    ssl = [int(r["tcp.stream"]) for r in rows if "SSL request" in r["pgsql.type"].split("|")]
    assert [q for _, q in queries] == ["select 1", "select 'two', 2", "select * from no_such_table",
                                       "select count(*) from pg_class"]  # fmt: skip
    assert errors == [(2, "42P01")]
    session, reqs = found(pg, "pgsql")
    by_kind: dict[str, list[Request]] = {}
    for r in reqs:
        by_kind.setdefault(str(r.fields["pgsql.kind"]), []).append(r)
    assert set(by_kind) == {"ssl", "startup", "query"}
    assert [(stream_of(session, r), r.fields["pgsql.query"]) for r in by_kind["query"]] == queries
    assert [stream_of(session, r) for r in by_kind["startup"]] == startups
    assert [stream_of(session, r) for r in by_kind["ssl"]] == ssl
    failed = [(stream_of(session, r), r.fields["pgsql.error"]) for r in reqs if r.fields.get("pgsql.error")]
    assert failed == errors
    tags = [r.fields.get("pgsql.tag") for r in by_kind["query"]]
    assert tags == ["SELECT 1", "SELECT 1", None, "SELECT 1"]
    check_split(reqs)


# -- the TUI filter's Wireshark fields, against tshark -Y on the same recordings -------------


def _indexed(path: Path) -> EventIndex:
    """The recording as the TUI indexes it, with the filter's request fields answering."""
    index = EventIndex(Session(), LivePackets())
    loader = FileLoader(index, str(path))
    for _ in range(100_000):
        if loader.done:
            break
        loader.step(0.05)
    index.flush()
    index.request_field = request_rows(index, ready=lambda: True)
    return index


def _frames(index: EventIndex, expr: str) -> list[int]:
    pred = compile_filter(expr).predicate
    return [index.frame(ref_pos(ref)) for ref in index.rows.refs if pred(index, ref) and not is_syscall_ref(ref)]


def _tshark_frames(rec: Recorded, expr: str, decode: list[str]) -> list[int]:
    """Frames tshark -Y selects with its default preferences, as a user's Wireshark would."""
    rows = tshark_fields(rec.path, expr, [], decode, options=())
    return [int(r["frame.number"]) for r in rows]


def test_filter_dns_fields_match_tshark(dns: Recorded) -> None:
    index = _indexed(dns.path)
    _, reqs = found(dns, "dns")
    nx = next(r for r in reqs if r.fields["dns.rcode"] == 3)
    for expr in (
        "dns.flags.rcode == 3",
        "dns.flags.rcode != 0",
        "dns.flags.rcode == 0",
        f"dns.id == {nx.fields['dns.id']}",
    ):
        assert _frames(index, expr) == _tshark_frames(
            dns, expr, [f"tcp.port=={dns.port},dns", f"udp.port=={dns.port},dns"]
        ), expr
    # wirecorr's own name answers for every row of the request: the query too, and the calls.
    assert len(_frames(index, "dns.rcode != 0")) == len(nx.packets) == 2


def test_filter_http_fields_match_tshark(http_python: Recorded) -> None:
    """The 404 and the requests; big.txt's 200 is left out: its body is cut at the snaplen, so
    tshark, reassembling it, never dissects that response at all."""
    index = _indexed(http_python.path)
    for expr in ("http.response.code == 404", 'http.request.method == "GET"', 'http.request.uri == "/nope"'):
        ours = _frames(index, expr)
        assert ours and ours == _tshark_frames(http_python, expr, [f"tcp.port=={http_python.port},http"]), expr
