"""The `wire` pytest fixture, run by pytester against a real echo server and a traced function."""

from __future__ import annotations

import shutil
import sys
import textwrap

import pytest

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")

ECHO_SERVER = """
import socket, sys
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = srv.accept()
    with conn:
        while data := conn.recv(100):
            conn.sendall(data)
"""

TESTS = """
import socket, sys, threading
from pathlib import Path

SERVER = str(Path(__file__).with_name("echo_server.py"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def talk(port):
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"ping")
        return c.recv(10)


def test_server_passes(wire):
    port = free_port()
    with wire.record([sys.executable, SERVER, str(port)], ports=[port], listen_port=port, stop="terminate") as rec:
        assert rec.pid is not None
        assert talk(port) == b"ping"
    assert not wire.findings("close_wait_leak")
    (accept,) = wire.links("accept-ack")
    assert wire.syscalls()[0].pid == rec.pid
    assert [lk.kind for lk in wire.links("write-data")] == ["write-data"]
    assert len(wire.connections) == 1
    wire.expect({"counts": {"connections": 1}, "links": {"every": ["accept4|accept -> accept-ack"]}})


def test_server_fails(wire):
    port = free_port()
    with wire.record([sys.executable, SERVER, str(port)], ports=[port], listen_port=port, stop="terminate"):
        talk(port)
    wire.expect("[close]\\nactive_closer = 'server'\\n")


def test_call_returns_and_traces(wire):
    port = free_port()
    srv = socket.create_server(("127.0.0.1", port))

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(conn.recv(10))

    threading.Thread(target=serve, daemon=True).start()
    assert wire.call(talk, port, ports=[port]) == b"ping"
    (connect,) = wire.syscalls("connect")
    assert wire.links("connect-syn")[0].syscall == connect.id
    assert wire.check({"links": {"every": ["connect -> connect-syn"]}}).passed


def test_call_raises_what_the_child_raised(wire):
    def boom():
        raise KeyError("from the child")

    try:
        wire.call(boom)
    except KeyError as e:
        assert "from the child" in str(e)
    else:
        raise AssertionError("no exception")
"""


def test_wire_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(echo_server=ECHO_SERVER)
    pytester.makepyfile(test_wire=textwrap.dedent(TESTS))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=120)
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert "test_server_fails" in out
    assert "FAIL  close.active_closer: 1 of 1 connection(s) not server" in out
    assert "client: SYN_SENT(#0)" in out
    assert "wirecorr recordings" in out and "wire-0.pcapng" in out


def test_plugin_loads_without_harm(pytester: pytest.Pytester) -> None:
    """Installed as a pytest11 entry point it is in every session: a test that does not use it sees nothing."""
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-q", "--trace-config", timeout=60)
    result.assert_outcomes(passed=1)
    assert "wirecorr.pytest_plugin" in result.stdout.str()
    modules = pytester.run(
        sys.executable,
        "-c",
        "import sys, wirecorr.pytest_plugin; print(sorted(m for m in sys.modules if m.startswith('wirecorr.')))",
    )
    assert modules.stdout.lines[-1] == "['wirecorr.pytest_plugin']"
