"""Our tracer against strace -f -yy on the same deterministic programs (see tracer_oracle.py)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import free_port
from tracer_oracle import C_SOCKETS, PY_ECHO, PY_UDP, PYTHON, compile_c, run_both

from wirecorr.model import Syscall

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is the oracle")


def test_python_tcp_echo_with_fork(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "echo.py"
    script.write_text(PY_ECHO)
    calls, status = run_both([PYTHON, str(script), str(port)], tmp_path, {port})
    assert status == 0
    assert len({c.pid for c in calls}) == 2
    sends = [c for c in calls if c.name == "sendto" and c.data and c.data.startswith(b"ping")]
    assert [c.data for c in sends[:2]] == [b"ping 0", b"ping 0"] or b"ping 0" in {c.data for c in sends}
    connect = next(c for c in calls if c.name == "connect")
    assert connect.fdinfo is not None and connect.fdinfo.remote == f"127.0.0.1:{port}" and connect.fdinfo.local
    accept = next(c for c in calls if c.name == "accept4")
    assert accept.ret_fdinfo is not None and accept.ret_fdinfo.remote == connect.fdinfo.local
    assert accept.args["addr"] == connect.fdinfo.local


def test_python_udp6_exchange(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "udp.py"
    script.write_text(PY_UDP)
    calls, status = run_both([PYTHON, str(script), str(port)], tmp_path, {port})
    assert status == 0
    first = next(c for c in calls if c.name == "sendto")
    assert first.args["addr"] == f"[::1]:{port}" and first.fdinfo is not None and first.fdinfo.kind == "udp6"
    assert first.fdinfo.local is not None  # implicitly bound by this very call
    recv = next(c for c in calls if c.name == "recvfrom")
    # bound to the wildcard [::]:P, the datagram came from [::1]:P
    assert recv.args["addr"] == "[::1]:" + first.fdinfo.local.rpartition(":")[2] and recv.data == b"dgram 0"


def test_c_sockets_and_mmsg(tmp_path: Path) -> None:
    port = free_port()
    exe = compile_c(C_SOCKETS, tmp_path / "socks")
    calls, status = run_both([str(exe), str(port)], tmp_path, {port})
    assert status == 0
    by_name: dict[str, Syscall] = {}
    for call in calls:
        by_name.setdefault(call.name, call)
    assert by_name["setsockopt"].args == {
        "fd": 3,
        "level": "SOL_SOCKET",
        "optname": "SO_REUSEADDR",
        "optlen": 4,
        "optval": 1,
    }
    linger = [c for c in calls if c.name == "setsockopt" and c.args["optname"] == "SO_LINGER"]
    assert linger[0].args["optval"] == {"onoff": 1, "linger": 5}
    nodelay = [c for c in calls if c.name == "setsockopt" and c.args["optname"] == "TCP_NODELAY"]
    assert nodelay[0].args["level"] == "SOL_TCP"
    assert by_name["accept4"].args["flags"] == "SOCK_CLOEXEC"
    assert by_name["shutdown"].args["how"] == "SHUT_WR"
    send, recv = by_name["sendmmsg"], by_name["recvmmsg"]
    assert send.ret == 3 and send.msg_lens == [3, 4, 5] and send.nbytes == 12 and send.data == b"onetwo!three"
    assert recv.ret == 3 and recv.msg_lens == [3, 4, 5] and recv.args["flags"] == "MSG_WAITFORONE"
    assert send.fdinfo is not None and send.fdinfo.remote == f"127.0.0.1:{port}"


def test_netcat_openbsd(tmp_path: Path) -> None:
    if shutil.which("nc") is None:
        pytest.skip("nc not installed")
    port = free_port()
    payload = tmp_path / "payload"
    payload.write_bytes(b"hello from nc\n")
    listener = subprocess.Popen(
        ["nc", "-lk", "127.0.0.1", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(port)
        script = f"nc -N 127.0.0.1 {port} < {payload}"
        calls, status = run_both(["/bin/sh", "-c", script], tmp_path, {port})
    finally:
        listener.send_signal(signal.SIGTERM)
        listener.wait(timeout=5)
    assert status == 0
    connect = next(c for c in calls if c.name == "connect" and c.fdinfo is not None and c.fdinfo.kind == "tcp")
    assert connect.args["addr"] == f"127.0.0.1:{port}" and connect.errno == "EINPROGRESS"  # nc connects non-blocking
    assert connect.fdinfo.local is not None and connect.fdinfo.remote == f"127.0.0.1:{port}"
    sent = [c for c in calls if c.fd == connect.fd and c.name == "write" and c.pid == connect.pid]
    assert sent[0].data == b"hello from nc\n"


def test_curl_against_http_server(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    port = free_port()
    (tmp_path / "index.html").write_text("hello\n")
    server = subprocess.Popen(
        [PYTHON, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port)
        calls, status = run_both(
            ["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/index.html"], tmp_path, {port}
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=5)
    assert status == 0
    sent = b"".join(c.data or b"" for c in calls if c.name in ("sendto", "write") and c.fdinfo and c.fdinfo.is_socket)
    assert sent.startswith(b"GET /index.html HTTP/1.1")


def _wait_listening(port: int) -> None:
    needle = f":{port:04X} "
    for _ in range(200):
        if needle in Path("/proc/net/tcp").read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port}")
