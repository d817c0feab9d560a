"""Decoder building blocks (tables, filter, constants, sockaddr, fd table) and a traced poll/epoll program."""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest
from ptrace.syscall.linux import aarch64, x86_64
from tracer_oracle import PYTHON

from wirecorr.model import Syscall
from wirecorr.sources.syscalls import DECODERS, consts, sockaddr
from wirecorr.sources.syscalls.table import AARCH64, AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64, X86_64
from wirecorr.sources.tracer import Tracer, fdtable
from wirecorr.sources.tracer.seccomp import SECCOMP_RET_ALLOW, SECCOMP_RET_TRACE, build


@pytest.mark.parametrize(("ours", "theirs"), [(X86_64, x86_64.SYSCALL_NAMES), (AARCH64, aarch64.SYSCALL_NAMES)])
def test_syscall_numbers_agree_with_python_ptrace(ours: dict[int, str], theirs: dict[int, str]) -> None:
    for nr, name in ours.items():
        if name != "epoll_pwait2":  # newer than python-ptrace's 5.8 table
            assert theirs[nr] == name
    assert set(ours.values()) <= set(DECODERS)


def _run_bpf(program: bytes, arch: int, nr: int) -> int:
    """Just enough of a classic-BPF interpreter for the filter's four opcodes."""
    insns = [struct.unpack_from("=HBBI", program, off) for off in range(0, len(program), 8)]
    acc, pc = 0, 0
    data = {0: nr, 4: arch}
    for _ in range(len(insns)):
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = data[k]
        elif code in (0x15, 0x35):
            pc += jt if (acc == k if code == 0x15 else acc >= k) else jf
        elif code == 0x06:
            return k
        pc += 1
    raise AssertionError("filter ran off its end")


def test_seccomp_filter_traces_only_recorded_native_calls() -> None:
    program = build(AUDIT_ARCH_X86_64, list(X86_64))
    assert _run_bpf(program, AUDIT_ARCH_X86_64, 0) == SECCOMP_RET_TRACE  # read
    assert _run_bpf(program, AUDIT_ARCH_X86_64, 441) == SECCOMP_RET_TRACE  # epoll_pwait2
    assert _run_bpf(program, AUDIT_ARCH_X86_64, 110) == SECCOMP_RET_ALLOW  # getppid
    assert _run_bpf(program, AUDIT_ARCH_X86_64, 0x40000000 | 1) == SECCOMP_RET_ALLOW  # x32 write
    assert _run_bpf(program, AUDIT_ARCH_AARCH64, 0) == SECCOMP_RET_ALLOW


def test_constants_render_like_strace() -> None:
    assert consts.sock_type(socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) == (
        "SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK"
    )
    assert consts.flags(0, consts.MSG) == 0
    assert consts.flags(0x40 | 0x4000, consts.MSG) == "MSG_DONTWAIT|MSG_NOSIGNAL"
    assert consts.flags(0x1 | 0x4 | 0x800000, consts.POLL) == "POLLIN|POLLOUT|0x800000"
    assert consts.open_flags(os.O_RDWR | os.O_NONBLOCK) == "O_RDWR|O_NONBLOCK"
    assert consts.protocol(2, 6) == "IPPROTO_TCP" and consts.protocol(1, 0) == 0
    assert consts.errno_name(11) == "EAGAIN" and consts.errno_name(512) == "ERESTARTSYS"


def test_sockaddr_decoding() -> None:
    v4 = struct.pack("=H", 2) + struct.pack("!H", 4444) + socket.inet_aton("127.0.0.1") + bytes(8)
    v6 = struct.pack("=H", 10) + struct.pack("!HI", 80, 0) + socket.inet_pton(socket.AF_INET6, "::1") + bytes(4)
    assert sockaddr.decode(v4) == "127.0.0.1:4444"
    assert sockaddr.decode(v6) == "[::1]:80"
    assert sockaddr.decode(struct.pack("=H", 1) + b"/run/x.sock\0junk") == "/run/x.sock"
    assert sockaddr.decode(struct.pack("=H", 1) + b"\0abstract") == "@abstract"
    assert sockaddr.decode(struct.pack("=H", 16) + bytes(10)) == "AF_NETLINK"


def test_fdtable_pidfd_and_proc_net_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        server = "{}:{}".format(*srv.getsockname())
        with socket.create_connection(srv.getsockname()) as cli:
            exact = fdtable.FdTable(os.getpid()).get(cli.fileno())
            monkeypatch.setattr(fdtable, "SYS_PIDFD_GETFD", -1)  # force the /proc/net fallback
            fallback = fdtable.FdTable(os.getpid()).get(cli.fileno())
            listener = fdtable.FdTable(os.getpid()).get(srv.fileno())
    assert exact is not None and exact.kind == "tcp" and exact.remote == server
    assert fallback == exact
    assert listener is not None and listener.local == exact.remote and listener.remote is None
    read_end, write_end = os.pipe()
    try:
        pipe = fdtable.FdTable(os.getpid()).get(read_end)
        assert pipe is not None and pipe.kind == "pipe"
    finally:
        os.close(read_end)
        os.close(write_end)
    assert fdtable.FdTable(os.getpid()).get(999_999) is None


POLLER = """
import fcntl, os, select, socket
a, b = socket.socketpair()
b.setblocking(False)
try:
    b.recv(10)
except BlockingIOError:
    pass
fcntl.fcntl(a.fileno(), fcntl.F_SETFL, os.O_RDWR | os.O_NONBLOCK)
a.send(b"x")
p = select.poll(); p.register(b, select.POLLIN); p.poll(1000)
ep = select.epoll(); ep.register(b.fileno(), select.EPOLLIN); ep.poll(1)
os.dup2(b.fileno(), 50)
os.close(50)
"""


def test_poll_epoll_fcntl_ioctl_decoding() -> None:
    calls: list[Syscall] = []
    errors: list[BaseException] = []

    def trace() -> None:
        try:
            tracer = Tracer(calls.append)
            tracer.spawn([PYTHON, "-c", POLLER])
            assert tracer.run() == 0
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=trace)
    worker.start()
    worker.join(20)
    assert not worker.is_alive() and not errors, errors
    pair = next(c for c in calls if c.name == "socketpair")
    sv = pair.args["sv"]
    assert isinstance(sv, list)
    b_fd = sv[1]
    eagain = next(c for c in calls if c.name == "recvfrom" and c.fd == b_fd)
    assert eagain.errno == "EAGAIN" and eagain.ret == -1 and eagain.fdinfo is not None
    assert eagain.fdinfo.kind == "unix"
    assert any(c.name == "ioctl" and c.args == {"fd": b_fd, "request": "FIONBIO", "arg": 1} for c in calls)
    setfl = next(c for c in calls if c.name == "fcntl" and c.args["cmd"] == "F_SETFL")
    assert setfl.args["arg"] == "O_RDWR|O_NONBLOCK"
    poll = next(c for c in calls if c.name == "poll")
    assert poll.ret == 1 and poll.args["fds"] == [{"fd": b_fd, "events": "POLLIN", "revents": "POLLIN"}]
    ctl = next(c for c in calls if c.name == "epoll_ctl")
    assert ctl.args["op"] == "EPOLL_CTL_ADD" and ctl.fd == b_fd and ctl.args["events"] == "EPOLLIN"
    wait = next(c for c in calls if c.name.startswith("epoll_wait") or c.name == "epoll_pwait")
    assert wait.ret == 1 and wait.args["events"] == [{"events": "EPOLLIN", "data": ctl.args["data"], "fd": b_fd}]
    dup2 = next(c for c in calls if c.name == "dup2")
    assert dup2.ret == 50 and dup2.ret_fdinfo == eagain.fdinfo
    close = next(c for c in calls if c.name == "close" and c.fd == 50)
    assert close.fdinfo == eagain.fdinfo
