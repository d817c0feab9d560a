"""Helpers for the tracer tests: strace as the oracle, and small programs to trace.

strace -f -yy annotates every fd with what it is at the call (`3<TCP:[a:p->b:q]>`); the
tests reduce both strace's log and our Syscall records to (name, fd kind, endpoints, ret)
per process and compare. Ephemeral ports differ between runs, so every port except the
fixed ones a test chooses is replaced by `*`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from wirecorr.model import FdInfo, Syscall
from wirecorr.sources.tracer import Tracer

PYTHON = os.path.realpath(sys.executable)
SOCKET_CALLS = {
    "socket",
    "socketpair",
    "bind",
    "listen",
    "connect",
    "accept",
    "accept4",
    "getsockname",
    "getpeername",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "read",
    "write",
    "readv",
    "writev",
    "close",
}
_READS = {"read", "recvfrom", "recvmsg", "readv"}
STRACE_SET = ",".join(sorted(SOCKET_CALLS))
_KINDS = {
    "TCP": "tcp",
    "TCPv6": "tcp6",
    "UDP": "udp",
    "UDPv6": "udp6",
    "UNIX": "unix",
    "UNIX-STREAM": "unix",
    "UNIX-DGRAM": "unix",
    "NETLINK": "netlink",
}
_LINE = re.compile(r"^(\d+) +(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_FD = re.compile(r"^(-?\d+)<([A-Za-z0-9-]+):\[(.*?)\]>")
_RET = re.compile(r"\)\s+= (-?\d+|\?)(<([A-Za-z0-9-]+):\[(.*?)\]>)?")

Step = tuple[str, str, object, int | None]


def _norm_port(endpoint: str | None, keep: set[int]) -> str | None:
    if endpoint is None:
        return None
    host, _, port = endpoint.rpartition(":")
    return endpoint if port.isdigit() and int(port) in keep else f"{host}:*"


def _strace_endpoints(text: str) -> tuple[str | None, str | None] | None:
    """`a:p->b:q` / `a:p` / an inode; None when strace shows no endpoint."""
    if text.isdigit() or ("->" not in text and ":" not in text):
        return None
    local, _, remote = text.partition("->")
    return local or None, remote or None


def parse_strace(path: Path, keep: set[int]) -> dict[int, list[Step]]:
    """Per pid: (name, kind, (local, remote) or None, ret) of calls on sockets."""
    pending: dict[int, str] = {}
    out: dict[int, list[Step]] = defaultdict(list)
    for raw in path.read_text(errors="replace").splitlines():
        match = _LINE.match(raw)
        if not match:
            continue
        pid, rest = int(match.group(1)), match.group(2)
        resumed = _RESUMED.match(rest)
        if resumed:
            rest = pending.pop(pid, "") + resumed.group(2)
        elif rest.endswith("<unfinished ...>"):
            pending[pid] = rest[: -len("<unfinished ...>")]
            continue
        call = _CALL.match(rest)
        if not call or call.group(1) not in SOCKET_CALLS:
            continue
        name, args = call.group(1), call.group(2)
        ret_match = _RET.search(rest)
        ret = None if ret_match is None or ret_match.group(1) == "?" else int(ret_match.group(1))
        if name in ("socket", "socketpair"):
            out[pid].append((name, "", None, ret))
            continue
        fd = _FD.match(args)
        if not fd or fd.group(2) not in _KINDS:
            continue
        ends = _strace_endpoints(fd.group(3))
        if name.startswith("accept") and ret_match and ret_match.group(4):
            ends = _strace_endpoints(ret_match.group(4))
        kind = _KINDS[fd.group(2)]
        if kind not in ("tcp", "tcp6", "udp", "udp6"):
            ends = None  # strace shows unix sockets as inode->peer inode, we show paths
        if ends is not None:
            ends = (_norm_port(ends[0], keep), _norm_port(ends[1], keep))
        out[pid].append((name, kind, ends, ret))
    return out


def our_steps(calls: list[Syscall], keep: set[int]) -> dict[int, list[tuple[Step, FdInfo | None]]]:
    out: dict[int, list[tuple[Step, FdInfo | None]]] = defaultdict(list)
    for call in sorted(calls, key=lambda c: c.id):
        if call.name not in SOCKET_CALLS:
            continue
        if call.name in ("socket", "socketpair"):
            out[call.tid].append(((call.name, "", None, call.ret), None))
            continue
        info = call.ret_fdinfo if call.name.startswith("accept") and call.ret_fdinfo else call.fdinfo
        if info is None or not info.is_socket:
            continue
        ends = (_norm_port(info.local, keep), _norm_port(info.remote, keep))
        out[call.tid].append(((call.name, info.kind, ends, call.ret), info))
    return out


def _coalesce(seq: list[Step]) -> list[Step]:
    """Join back-to-back successful reads of one socket: how a response splits over reads is timing."""
    out: list[Step] = []
    for step in seq:
        prev = out[-1] if out else None
        if (
            prev is not None
            and step[0] in _READS
            and prev[:3] == step[:3]
            and (prev[3] or 0) > 0
            and (step[3] or 0) > 0
        ):
            out[-1] = (*prev[:3], (prev[3] or 0) + (step[3] or 0))
        else:
            out.append(step)
    return out


def compare(ours: dict[int, list[tuple[Step, FdInfo | None]]], theirs: dict[int, list[Step]]) -> None:
    """Same per-process sequences (as a multiset of processes); endpoints where strace shows them."""
    ours_seqs = sorted((_coalesce([s for s, _ in seq]) for seq in ours.values()), key=repr)
    their_seqs = sorted((_coalesce(seq) for seq in theirs.values()), key=repr)
    assert len(ours_seqs) == len(their_seqs), (ours_seqs, their_seqs)
    for mine, oracle in zip(ours_seqs, their_seqs, strict=True):
        assert [s[:2] + s[3:] for s in mine] == [s[:2] + s[3:] for s in oracle], (mine, oracle)
        for a, b in zip(mine, oracle, strict=True):
            if b[2] is not None:
                assert a[2] == b[2], (a, b)


def run_both(
    argv: list[str], tmp: Path, keep: set[int], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[list[Syscall], int]:
    """Run argv under strace and under our Tracer; compare; return our records and status."""
    log = tmp / "strace.log"
    subprocess.run(
        ["strace", "-f", "-yy", "-qq", "-e", f"trace={STRACE_SET}", "-e", "signal=none", "-o", str(log), *argv],
        check=True,
        cwd=cwd,
        env=env,
        timeout=30,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    calls: list[Syscall] = []
    tracer = Tracer(calls.append)
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with open(os.devnull, "wb") as null:
            saved = os.dup(1), os.dup(2)
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            try:
                tracer.spawn(argv, env=env)
                status = tracer.run()
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
    finally:
        os.chdir(old)
    compare(our_steps(calls, keep), parse_strace(log, keep))
    return calls, status


def compile_c(source: str, out: Path) -> Path:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", "-O2", "-o", str(out), str(src)], check=True, timeout=60)
    return out


C_SOCKETS = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int port = atoi(argv[1]), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct linger lg = {1, 5};
    setsockopt(srv, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (bind(srv, (void *)&a, sizeof a) || listen(srv, 8)) return 2;
    int cli = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(cli, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(cli, (void *)&a, sizeof a)) return 3;
    struct sockaddr_in peer; socklen_t plen = sizeof peer;
    int acc = accept4(srv, (void *)&peer, &plen, SOCK_CLOEXEC);
    char buf[256];
    write(cli, "hello wire", 10);
    read(acc, buf, sizeof buf);
    write(acc, "olleh", 5);
    read(cli, buf, sizeof buf);
    shutdown(cli, SHUT_WR);
    read(acc, buf, sizeof buf);
    close(acc); close(cli); close(srv);

    struct sockaddr_in u = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &u.sin_addr);
    int rx = socket(AF_INET, SOCK_DGRAM, 0);
    if (bind(rx, (void *)&u, sizeof u)) return 4;
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(tx, (void *)&u, sizeof u)) return 5;
    struct mmsghdr msgs[3]; struct iovec iov[3]; char out[3][8] = {"one", "two!", "three"};
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < 3; i++) {
        iov[i].iov_base = out[i]; iov[i].iov_len = strlen(out[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
    }
    if (sendmmsg(tx, msgs, 3, 0) != 3) return 6;
    char in[3][16]; struct iovec riov[3]; struct mmsghdr rmsgs[3];
    memset(rmsgs, 0, sizeof rmsgs);
    for (int i = 0; i < 3; i++) {
        riov[i].iov_base = in[i]; riov[i].iov_len = sizeof in[i];
        rmsgs[i].msg_hdr.msg_iov = &riov[i]; rmsgs[i].msg_hdr.msg_iovlen = 1;
    }
    if (recvmmsg(rx, rmsgs, 3, MSG_WAITFORONE, NULL) != 3) return 7;
    close(tx); close(rx);
    return 0;
}
"""

PY_ECHO = """
import os, socket, sys
port = int(sys.argv[1])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(4)
pid = os.fork()
if pid == 0:
    c, _ = srv.accept()
    while True:
        d = c.recv(100)
        if not d:
            break
        c.sendall(d)
    c.close(); os._exit(0)
srv.close()
c = socket.create_connection(("127.0.0.1", port))
for i in range(5):
    c.sendall(b"ping %d" % i)
    got = b""
    while len(got) < 6:
        got += c.recv(100)
c.shutdown(socket.SHUT_WR); c.recv(10); c.close()
os.waitpid(pid, 0)
"""

PY_UDP = """
import socket, sys
port = int(sys.argv[1])
rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); rx.bind(("::1", port))
tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for i in range(3):
    tx.sendto(b"dgram %d" % i, ("::1", port))
    data, peer = rx.recvfrom(100)
    rx.sendto(data.upper(), peer)
    tx.recvfrom(100)
tx.close(); rx.close()
"""
