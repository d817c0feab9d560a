"""The vocabulary table names every argument the tracer and the strace reader produce.

One C program makes most of the calls in wirecorr/vocab.py once; it runs under strace and
under our tracer, and every `args` key either side produces must be one the table lists
for that call, so the two sources cannot drift apart from it (or from each other).
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers import free_port
from tracer_oracle import compile_c

from wirecorr.model import Syscall
from wirecorr.sources.strace_log import read_strace_log
from wirecorr.sources.syscalls.table import BY_ARCH, native_arch
from wirecorr.sources.tracer import Tracer
from wirecorr.vocab import CALLS, DATA_CALLS, PARAMS, READINESS_CALLS, arg_names

PROGRAM = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int port = atoi(argv[1]), one = 1, n;
    char buf[64], path[] = "/tmp/wirecorr-vocab-XXXXXX";
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    socklen_t alen = sizeof a;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(srv, (void *)&a, sizeof a) || listen(srv, 4)) return 2;
    int cli = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cli, (void *)&a, sizeof a)) return 3;
    int acc = accept(srv, NULL, NULL);
    getsockname(cli, (void *)&a, &alen);
    getpeername(cli, (void *)&a, &alen);
    getsockopt(cli, SOL_SOCKET, SO_ERROR, &n, &alen);
    send(cli, "ab", 2, 0);
    recv(acc, buf, sizeof buf, 0);
    struct iovec iov = {.iov_base = "cd", .iov_len = 2};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    sendmsg(cli, &m, 0);
    struct iovec riov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1};
    recvmsg(acc, &rm, 0);
    writev(cli, &iov, 1);
    readv(acc, &riov, 1);
    sendto(cli, "ef", 2, 0, NULL, 0);
    recvfrom(acc, buf, sizeof buf, 0, NULL, NULL);
    struct pollfd p = {.fd = acc, .events = POLLIN};
    poll(&p, 1, 0);
    struct timespec ts = {0, 0};
    ppoll(&p, 1, &ts, NULL);
    fd_set rs; FD_ZERO(&rs); FD_SET(acc, &rs);
    struct timeval tv = {0, 0};
    select(acc + 1, &rs, NULL, NULL, &tv);
    pselect(acc + 1, &rs, NULL, NULL, &ts, NULL);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = acc}, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, acc, &ev);
    epoll_wait(ep, &got, 1, 0);
    epoll_pwait(ep, &got, 1, 0, NULL);
    fcntl(cli, F_GETFL);
    ioctl(acc, FIONREAD, &n);
    int d = dup(cli), d2 = dup2(cli, 20), d3 = dup3(cli, 21, 0);
    close(d); close(d2); close(d3);
    int f = mkstemp(path);
    unlink(path);
    write(f, "0123456789", 10);
    pwrite(f, "x", 1, 0);
    pread(f, buf, 1, 0);
    pwritev(f, &iov, 1, 0);
    preadv(f, &riov, 1, 0);
    lseek(f, 0, SEEK_SET);
    read(f, buf, 4);
    sendfile(cli, f, NULL, 4);
    int pp[2];
    pipe2(pp, 0);
    write(pp[1], "gh", 2);
    splice(pp[0], NULL, cli, NULL, 2, 0);
    shutdown(cli, SHUT_WR);
    while (read(acc, buf, sizeof buf) > 0) {}
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    bind(u, (void *)&a, sizeof a);
    struct mmsghdr mm = {.msg_hdr = m};
    connect(u, (void *)&a, sizeof a);
    sendmmsg(u, &mm, 1, 0);
    struct mmsghdr rmm = {.msg_hdr = rm};
    recvmmsg(u, &rmm, 1, 0, NULL);
    close(acc); close(cli); close(srv);
    syscall(SYS_close_range, 30, 40, 0);
    return 0;
}
"""


def _check(calls: list[Syscall], source: str) -> set[str]:
    wrong = []
    for sc in calls:
        if sc.name not in CALLS:
            continue
        extra = set(sc.args) - arg_names(sc.name) - ({"raw"} if sc.name not in PARAMS else set())
        if extra:
            wrong.append(f"{source}: {sc.name} has {sorted(extra)}, the table names {sorted(arg_names(sc.name))}")
    assert not wrong, "\n".join(wrong)
    return {sc.name for sc in calls}


def test_tracer_and_strace_reader_use_the_tables_argument_names(tmp_path: Path) -> None:
    exe = compile_c(PROGRAM, tmp_path / "vocab")
    argv = [str(exe), str(free_port())]
    log = tmp_path / "strace.log"
    os.spawnvp(os.P_WAIT, "strace", ["strace", "-f", "-yy", "-ttt", "-T", "-qq", "-o", str(log), *argv])
    calls: list[Syscall] = []
    tracer = Tracer(calls.append)
    tracer.spawn(argv)
    assert tracer.run() == 0

    traced = _check(calls, "tracer")
    read = _check(read_strace_log(str(log)).syscalls, "strace reader")
    # The program reached the calls the table's classes are about, in both sources (libc
    # makes send/recv/select sendto/recvfrom/pselect6; the *2 variants it does not call).
    wanted = (DATA_CALLS | READINESS_CALLS) - {"pwritev2", "preadv2", "epoll_pwait2", "recv", "send", "select"}
    assert not (wanted - read), sorted(wanted - read)
    arch = native_arch()
    recorded = set(BY_ARCH[arch].values()) if arch is not None else set()
    assert not (wanted & recorded) - traced, sorted((wanted & recorded) - traced)
