"""The compiled stop loop (wirecorr/_core/tracer.pyx) against the Python loop it replaces.

A C program making every kind of data call the compiled loop decodes itself — read/write,
pread/pwrite, readv/writev (data spread over iovecs), sendto/recvfrom and sendmsg/recvmsg
with and without addresses, failed calls, an unbound UDP socket that a send binds,
descriptors first seen by a data call — and the calls that stay on the Python path between
them, is traced by both
loops (WIRECORR_PURE=1 and unset): the records must be the same, timestamps aside.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tracer_oracle import PYTHON, compile_c

from wirecorr.errors import WirecorrError
from wirecorr.model import FdInfo, Syscall
from wirecorr.recording.columns import batch_table, build_table, syscalls_from_table
from wirecorr.recording.reader import read_recording
from wirecorr.recording.writer import RecordingWriter
from wirecorr.sources.tracer import Tracer

PROGRAM = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char buf[256];
    memset(buf, 0, sizeof buf);
    struct sockaddr_in a = {.sin_family = AF_INET}, from;
    socklen_t alen = sizeof a, flen;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);

    /* TCP: the listening and accepted sockets are first met by socket/accept (Python path). */
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(srv, (void *)&a, sizeof a) || listen(srv, 4) || getsockname(srv, (void *)&a, &alen)) return 2;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (void *)&a, sizeof a)) return 3;
    int s = accept(srv, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        write(c, "hello, compiled tracer", 22);
        read(s, buf, sizeof buf);
    }
    struct iovec out[3] = {{"abc", 3}, {"", 0}, {"defghijklmnopqrstuvwxyz0123456789", 33}};
    writev(c, out, 3);
    char p1[2], p2[40];
    struct iovec in[2] = {{p1, 2}, {p2, 40}};
    readv(s, in, 2);
    sendto(c, "flags", 5, MSG_NOSIGNAL | MSG_DONTWAIT, NULL, 0);
    recvfrom(s, buf, sizeof buf, MSG_PEEK, NULL, NULL);
    flen = sizeof from;
    recvfrom(s, buf, sizeof buf, 0, (void *)&from, &flen);
    fcntl(s, F_SETFL, O_NONBLOCK);
    read(s, buf, sizeof buf);                      /* EAGAIN */
    read(987, buf, 4);                              /* EBADF: never a known descriptor */
    write(c, (char *)argv[0] - (long)argv[0] + 8, 4);  /* EFAULT */
    write(c, "x", 0);                               /* nothing moved */
    struct msghdr m = {.msg_iov = out, .msg_iovlen = 3};
    sendmsg(c, &m, MSG_NOSIGNAL);                   /* TCP: no address, data over iovecs */
    char q1[1], q2[64];
    struct iovec qin[2] = {{q1, 1}, {q2, 64}};
    struct msghdr r = {.msg_iov = qin, .msg_iovlen = 2};
    recvmsg(s, &r, 0);
    recvmsg(s, &r, MSG_DONTWAIT);                   /* EAGAIN */
    struct msghdr empty = {0};
    sendmsg(c, &empty, 0);                          /* no iovecs: 0 bytes, data b"" */
    sendmsg(c, (struct msghdr *)8, 0);              /* EFAULT */
    struct iovec huge[2] = {{"yz", 2}, {"", (size_t)-1}};
    struct msghdr h = {.msg_iov = huge, .msg_iovlen = 2};
    sendmsg(c, &h, MSG_DONTWAIT);                   /* EINVAL: the lengths total more than SSIZE_MAX */

    /* UDP: the first send binds the socket (Python path), the next ones are compiled. */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    int v = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in b = {.sin_family = AF_INET};
    socklen_t blen = sizeof b;
    inet_pton(AF_INET, "127.0.0.1", &b.sin_addr);
    bind(v, (void *)&b, sizeof b);
    getsockname(v, (void *)&b, &blen);
    for (int i = 0; i < 3; i++) {
        sendto(u, "dgram", 5, 0, (void *)&b, sizeof b);
        flen = sizeof from;
        recvfrom(v, buf, sizeof buf, 0, (void *)&from, &flen);
    }
    sendto(u, "bad", 3, 0, (void *)&b, 3);          /* EINVAL, short address */
    recvfrom(v, buf, sizeof buf, MSG_DONTWAIT, (void *)&from, &flen);  /* EAGAIN */
    struct iovec dg[2] = {{"msg", 3}, {"-dgram", 6}};
    struct msghdr to = {.msg_name = &b, .msg_namelen = sizeof b, .msg_iov = dg, .msg_iovlen = 2};
    sendmsg(u, &to, 0);
    struct sockaddr_in peer;
    struct msghdr got = {.msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = qin, .msg_iovlen = 2};
    recvmsg(v, &got, 0);
    sendmsg(u, &to, 0);
    got.msg_namelen = 0;                            /* a name buffer of no length */
    recvmsg(v, &got, 0);
    int w = socket(AF_INET, SOCK_DGRAM, 0);
    sendmsg(w, &to, 0);                             /* unbound: the send binds it (Python path) */
    recvmsg(v, &r, 0);

    /* A file opened by an unrecorded call: its first data call goes through Python. */
    int f = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    pwrite(f, "positional bytes", 16, 100);
    pread(f, buf, 64, 96);
    write(f, "appended", 8);
    close(f);
    int pipefd[2];
    pipe(pipefd);
    write(pipefd[1], "through a pipe", 14);
    read(pipefd[0], buf, 3);
    dup2(pipefd[0], 40);
    read(40, buf, sizeof buf);

    /* A child: its descriptors are a copy of the parent's. */
    pid_t pid = fork();
    if (pid == 0) {
        write(c, "from the child", 14);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    read(s, buf, sizeof buf);
    close(c);
    read(s, buf, sizeof buf);
    return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_c(PROGRAM, tmp_path_factory.mktemp("core") / "calls")


def _trace(argv: list[str], pure: bool, monkeypatch: pytest.MonkeyPatch, data_bytes: int) -> tuple[Tracer, list]:
    with monkeypatch.context() as m:
        if pure:
            m.setenv("WIRECORR_PURE", "1")
        else:
            m.delenv("WIRECORR_PURE", raising=False)
        calls: list[Syscall] = []
        tracer = Tracer(calls.append, data_bytes=data_bytes)
    tracer.spawn(argv)
    assert tracer.run() == 0
    return tracer, calls


_PORT = re.compile(r":\d+$")
_INODE = re.compile(r"\[\d+\]")


def _info(info: FdInfo | None) -> tuple[Any, ...] | None:
    """An fd identity without what differs between runs: ephemeral ports and inodes."""
    if info is None:
        return None
    path = None if info.path is None else _INODE.sub("[*]", info.path)
    return (info.kind, *(None if v is None else _PORT.sub(":*", v) for v in (info.local, info.remote)), path)


def _facts(calls: list[Syscall]) -> list[tuple[Any, ...]]:
    pids = {pid: n for n, pid in enumerate(dict.fromkeys(c.pid for c in calls))}
    out = []
    for c in sorted(calls, key=lambda c: c.id):
        args = {k: _PORT.sub(":*", v) if isinstance(v, str) else v for k, v in c.args.items()}
        identity = (c.fd, _info(c.fdinfo), _info(c.ret_fdinfo))
        out.append((c.id, pids[c.pid], c.name, list(args.items()), c.ret, c.errno, *identity, c.nbytes, c.data))
        out.append((c.msg_lens, c.exit_ns is None))
    return out


@pytest.mark.parametrize("data_bytes", [64, 5, 0])
def test_compiled_loop_records_what_the_python_loop_records(
    program: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_bytes: int
) -> None:
    argv = [str(program), str(tmp_path / "file")]
    _, pure = _trace(argv, True, monkeypatch, data_bytes)
    tracer, compiled = _trace(argv, False, monkeypatch, data_bytes)
    assert _facts(compiled) == _facts(pure)
    names = {c.name for c in pure}
    assert {"read", "write", "readv", "writev", "pread64", "pwrite64", "sendto", "recvfrom", "dup2"} <= names
    assert {"sendmsg", "recvmsg"} <= names
    # Most data calls were the compiled loop's own, not handed back to Python.
    assert tracer._core is not None and tracer._core.stops >= 40


def test_compiled_loop_is_built_and_used(program: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without WIRECORR_PURE the tracer runs the compiled loop; a missing build is one clear error."""
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    from wirecorr._core.tracer import CoreThread, TraceCore

    tracer, calls = _trace([str(program), str(tmp_path / "file")], False, monkeypatch, 64)
    assert isinstance(tracer._core, TraceCore) and tracer._core.stops > 0
    assert calls and all(type(c) is Syscall for c in calls)
    tracer = Tracer(lambda call: None)
    tracer.spawn(["true"])
    assert all(type(t) is CoreThread for t in tracer._threads.values())
    assert tracer.run() == 0

    monkeypatch.setitem(sys.modules, "wirecorr._core.tracer", None)  # as if the .so were missing
    with pytest.raises(WirecorrError, match=r"compiled tracer core is not built.*WIRECORR_PURE=1"):
        Tracer(lambda call: None)


def test_batches_become_the_same_columns_as_their_syscalls(
    program: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder writes the compiled loop's batches straight into format-2 columns; read
    back, they are the rows `build_table` makes of the same calls as `Syscall` objects."""
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    batches: list[Any] = []
    others: list[Syscall] = []
    tracer = Tracer(others.append, data_bytes=5, on_batch=batches.append)
    tracer.spawn([str(program), str(tmp_path / "file")])
    assert tracer.run() == 0
    assert batches and others
    objects = [sc for batch in batches for sc in batch.syscalls()]
    assert {sc.name for sc in objects} >= {"read", "readv", "sendto", "recvfrom", "pread64", "sendmsg", "recvmsg"}
    assert syscalls_from_table(batch_table(batches)) == syscalls_from_table(build_table(objects))

    out = tmp_path / "rec.pcapng"
    writer = RecordingWriter(str(out))
    writer.write_header({})
    for batch in batches:
        writer.write_syscall_batch(batch)
    for sc in others:
        writer.write_syscall(sc)
    writer.close({})
    assert sorted(read_recording(str(out)).syscalls, key=lambda sc: sc.id) == sorted(
        objects + others, key=lambda sc: sc.id
    )


def test_records_of_an_idle_tracee_are_handed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call made just before the tracee goes quiet does not wait in the compiled loop's
    batch for the next stop: the watchdog wakes the loop (a live view shows it, a SIGKILLed
    recorder has written it)."""
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    seen: list[tuple[float, Syscall]] = []

    def on_batch(batch: Any) -> None:
        seen.extend((time.monotonic(), sc) for sc in batch.syscalls())

    tracer = Tracer(lambda sc: None, on_batch=on_batch)
    tracer.spawn([PYTHON, "-c", "import os, time; os.write(1, b''); os.write(1, b'quiet'); time.sleep(3)"])
    timer = threading.Timer(8, tracer.stop)
    timer.start()
    try:
        start = time.monotonic()
        assert tracer.run() == 0
    finally:
        timer.cancel()
    writes = [at - start for at, sc in seen if sc.name == "write" and sc.data == b"quiet"]
    assert writes and writes[0] < 1.5, writes  # not at the end of the 3 s sleep
