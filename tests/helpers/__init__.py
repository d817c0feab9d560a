"""What the tests share: a free port, the small echo program, network namespaces, the
synthetic echo recordings of bench/synth_echo.py, a recording stripped of its links, and
a child's peak memory.

Namespaces are the product's own (`wirecorr.labs.netns.private_network`), so a test runs
its programs in the same kind of namespace a lab does and there is one implementation to
keep right (removal on any exit, one MSS per packet on the wire).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from wirecorr.labs.netns import LabNet, private_network
from wirecorr.recording import annotate as an
from wirecorr.recording import format as fmt

REPO = Path(__file__).resolve().parent.parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")

# One client sends "hello!" to an echo server in the same process and checks the answer.
# argv[1]: the port.
ECHO_ONCE = r"""
import socket, sys, threading
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
def serve():
    conn, _ = srv.accept()
    with conn:
        while data := conn.recv(100):
            conn.sendall(data)
t = threading.Thread(target=serve)
t.start()
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as cli:
    cli.sendall(b"hello!")
    assert cli.recv(100) == b"hello!"
t.join()
"""

# A server process forked off to echo, and a client that sends three messages (the last
# one bigger than a segment), shuts down its writing side and waits for the EOF.
# argv[1]: the port.
FORK_ECHO = """
import os, socket, sys
port = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(4)
pid = os.fork()
if pid == 0:
    c, _ = srv.accept()
    while True:
        d = c.recv(4096)
        if not d:
            break
        c.sendall(d)
    c.close()
    os._exit(0)
srv.close()
c = socket.create_connection(("127.0.0.1", port))
for m in (b"hello", b"world!!", b"x" * 3000):
    c.sendall(m)
    got = 0
    while got < len(m):
        got += len(c.recv(65536))
c.shutdown(socket.SHUT_WR)
assert c.recv(10) == b""
c.close()
os.waitpid(pid, 0)
"""

# A client's small writes held by Nagle behind the server's delayed ACK, on one connection.
# argv[1]: the port.
NAGLE = """
import socket, sys
port = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)
c = socket.create_connection(("127.0.0.1", port))
s, _ = srv.accept()
# Request/response rounds put the server's end into delayed-ACK (pingpong) mode ...
for _ in range(3):
    c.send(b"?")
    s.recv(10)
    s.send(b"!")
    c.recv(10)
# ... so the first small write stays un-ACKed for a while and Nagle holds the next ones.
for m in (b"a", b"bb", b"ccc", b"dddd", b"eeeee"):
    c.send(m)
got = 0
while got < 15:
    got += len(s.recv(100))
c.close()
s.close()
"""


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port nothing is bound to right now (bound and released at once)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def netns(sysctls: dict[str, str] | None = None, *, pair: bool = False) -> Iterator[LabNet]:
    """A fresh namespace (or two joined by a veth pair) with lo up, removed afterwards."""
    with private_network(pair=pair, sysctls=sysctls) as net:
        yield net


def run_in(ns: str, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run cmd inside namespace ns; its output, or CalledProcessError."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout, check=True
    )


def synth_echo() -> ModuleType:
    """bench/synth_echo.py (a script, not a package module): `write(path, rounds,
    rounds_per_conn, end=...)` makes a format-2 echo recording without tracing anything."""
    spec = importlib.util.spec_from_file_location("synth_echo", REPO / "bench" / "synth_echo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stripped(src: Path, dst: Path) -> None:
    """The recording without its link and finding records, as `record` leaves it before its
    linking pass (its packets keep any comments, so a rewrite appends to their options)."""
    with src.open("rb") as f, dst.open("wb") as out:
        for btype, block in an.iter_blocks(f, str(src)):
            if btype == fmt.BT_CUSTOM and an._record_tag(block) in (fmt.TAG_LINK, fmt.TAG_LINKS, an.TAG_FINDING):
                continue
            out.write(block)


# Appended to a child's script: it reports its own high-water mark. VmHWM belongs to the
# process image, while ru_maxrss carries over the forked pytest process's size across exec
# (≈ 400 MB late in a full suite, which hid any growth below it).
_REPORT_PEAK = """
with open("/proc/self/status") as _status:
    sys.stderr.write(next(line for line in _status if line.startswith("VmHWM:")))
"""


def peak_kb(script: str, *args: str, env: dict[str, str] | None = None) -> int:
    """The peak resident memory of `python -c script args` (which imports sys), in KB."""
    done = subprocess.run(
        [PYTHON, "-c", f"import sys\ntry:\n{_indent(script)}\nfinally:\n{_indent(_REPORT_PEAK)}", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return int(done.stderr.split("VmHWM:")[1].split()[0])


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines())
