"""Requests found in real recordings, judged by tshark's dissectors and the clients' output.

Each module fixture records one real server with its real clients (requests_oracle.py),
once; the tests then compare what wirecorr's request layer finds with what tshark's
HTTP, RESP, DNS and PostgreSQL dissectors find on the same file and with what curl,
redis-cli, dig and psql printed: every request found, none invented, the same status,
and each request's time split adds up to its total.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port
from requests_oracle import PYTHON, Recorded, pg_bindir, record_scenario, tshark_fields

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


@pytest.fixture(scope="module")
def pg() -> Iterator[Recorded]:
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
        yield record_scenario(tmp / "rec", "pg", port, server, clients, stop="SIGINT", user="postgres")


# -- the truth itself: the recording holds what the clients said ------------------------


def test_http_python_truth(http_python: Recorded) -> None:
    assert http_python.client_output(0).split() == ["200", "404", "200"]
    rows = tshark_fields(
        http_python.path, "http", ["tcp.stream", "http.request.method", "http.response.code", "http.time"]
    )
    methods = [r["http.request.method"] for r in rows if r["http.request.method"]]
    codes = [r["http.response.code"] for r in rows if r["http.response.code"]]
    assert methods == ["GET"] * 3 and codes == ["200", "404", "200"]


def test_http_nginx_truth(http_nginx: Recorded) -> None:
    out = http_nginx.client_output(0).split("\n")
    assert [line.split()[0] for line in out if line] == ["200", "200", "404", "200"]
    assert [line.split()[1] for line in out if line] == ["1", "0", "0", "0"], "one keep-alive connection"
    rows = tshark_fields(
        http_nginx.path, "http", ["tcp.stream", "http.response.code", "http.transfer_encoding", "http.time"]
    )
    codes = [r["http.response.code"] for r in rows if r["http.response.code"]]
    assert codes == ["200", "200", "404", "200"]
    assert {r["tcp.stream"] for r in rows} == {"0"}
    assert any(r["http.transfer_encoding"] == "chunked" for r in rows)


def test_redis_truth(redis: Recorded) -> None:
    assert [redis.client_output(i).strip() for i in range(4)] == [
        "OK",
        "v",
        "",
        "ERR value is not an integer or out of range",
    ]
    assert "errors: 0, replies: 5" in redis.clients[4]["stdout"] + redis.clients[4]["stderr"]
    rows = tshark_fields(redis.path, "resp", ["tcp.stream", "tcp.srcport"], [f"tcp.port=={redis.port},resp"])
    assert rows


def test_dns_truth(dns: Recorded) -> None:
    statuses = [next(w for w in out["stdout"].split(", ") if w.startswith("status:")) for out in dns.clients]
    assert statuses == ["status: NOERROR", "status: NXDOMAIN", "status: NOERROR", "status: NOERROR"]
    rows = tshark_fields(
        dns.path, "dns", ["dns.id", "dns.flags.response", "dns.flags.rcode", "dns.time", "tcp.stream"],
        [f"udp.port=={dns.port},dns", f"tcp.port=={dns.port},dns"],
    )  # fmt: skip
    assert len(rows) == 8, rows


def test_pg_truth(pg: Recorded) -> None:
    assert [c["status"] for c in pg.clients] == [0, 0, 1, 0]
    assert "no_such_table" in pg.clients[2]["stderr"]
    rows = tshark_fields(pg.path, "pgsql", ["tcp.stream", "pgsql.type"], [f"tcp.port=={pg.port},pgsql"])
    types = [t for r in rows for t in r["pgsql.type"].split("|")]
    assert types.count("Simple query") == 4 and types.count("Error") == 1, types
