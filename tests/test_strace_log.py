"""strace_log against real strace output of real programs on loopback.

Every expectation is derived independently of the parser: syscall counts by a line regex
over the raw log (grep -c style), bytes from what the test program was told to send,
ports from the sockets the test opened, timestamps with Decimal.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import free_port

from wirecorr.errors import InputError
from wirecorr.model import FdInfo, Syscall
from wirecorr.sources.strace_log import StraceLog, read_strace_log

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")

STRACE = ["strace", "-f", "-ttt", "-T", "-yy"]
# The start of a syscall line; `<... x resumed>` and `+++`/`---` lines do not match.
CALL_START = re.compile(r"^(?:\d+ +)?(\d+\.\d+) (\w+)\(")
PAYLOAD = b'hello\n\x00\x01\xff"\\world\t'


def strace(tmp_path: Path, argv: list[str], *opts: str, log: str = "trace.log", **kw) -> Path:
    out = tmp_path / log
    subprocess.run([*STRACE, *opts, "-o", str(out), *argv], check=True, timeout=30, cwd=tmp_path, **kw)
    return out


def grep_counts(*files: Path) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for f in files:
        for line in f.read_text("latin-1").splitlines():
            m = CALL_START.match(line)
            if m:
                counts[m.group(2)] += 1
    return counts


def assert_well_formed(log: StraceLog, *files: Path) -> None:
    assert log.unparsable == 0, log.first_unparsable
    assert collections.Counter(sc.name for sc in log.syscalls) == grep_counts(*files)
    assert [sc.id for sc in log.syscalls] == list(range(len(log.syscalls)))
    assert all(a.enter_ns <= b.enter_ns for a, b in zip(log.syscalls, log.syscalls[1:], strict=False))
    for sc in log.syscalls:
        assert sc.exit_ns is None or sc.exit_ns >= sc.enter_ns


def calls(log: StraceLog, name: str, **where: object) -> list[Syscall]:
    return [sc for sc in log.syscalls if sc.name == name and all(sc.args.get(k) == v for k, v in where.items())]


ECHO = """
import os, socket, sys
payload = {payload!r}
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(4)
port = s.getsockname()[1]
pid = os.fork()
if pid == 0:
    s.close()
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(payload)
    c.shutdown(socket.SHUT_WR)
    got = b""
    while len(got) < len(payload):
        got += c.recv(100)
    c.close()
    os._exit(0)
a, _ = s.accept()
got = b""
while len(got) < len(payload):
    got += a.recv(100)
a.sendall(got)
assert a.recv(100) == b""
a.close()
os.waitpid(pid, 0)
"""


def test_python_tcp_echo_with_fork(tmp_path: Path) -> None:
    script = tmp_path / "echo.py"
    script.write_text(ECHO.format(payload=PAYLOAD))
    path = strace(tmp_path, [sys.executable, str(script)])
    log = read_strace_log(path)
    assert_well_formed(log, path)

    (listener,) = calls(log, "listen")
    port = int(listener.fdinfo.local.rpartition(":")[2])
    server_addr = f"127.0.0.1:{port}"
    (conn,) = calls(log, "connect", addr=server_addr)
    assert conn.ret == 0 and conn.errno is None
    (acc,) = [sc for sc in calls(log, "accept4") if sc.ret is not None and sc.ret >= 0]
    assert acc.fd == listener.fd and acc.fdinfo.local == server_addr
    client_sends = [sc for sc in calls(log, "sendto") if sc.pid == conn.pid]
    client_addr = client_sends[0].fdinfo.local
    # accept's peer address and both decorations describe the same 4-tuple
    assert acc.args["addr"] == client_addr
    assert acc.ret_fdinfo == FdInfo("tcp", local=server_addr, remote=client_addr)
    assert client_sends[0].fdinfo == FdInfo("tcp", local=client_addr, remote=server_addr)

    assert b"".join(sc.data for sc in client_sends) == PAYLOAD
    assert sum(sc.nbytes for sc in client_sends) == len(PAYLOAD)
    server_reads = [sc for sc in calls(log, "recvfrom", fd=acc.ret) if sc.pid == acc.pid]
    assert b"".join(sc.data for sc in server_reads if sc.ret) == PAYLOAD
    assert server_reads[-1].ret == 0 and server_reads[-1].data == b""  # the peer's FIN
    assert [sc.args["how"] for sc in calls(log, "shutdown")] == ["SHUT_WR"]
    (opt,) = calls(log, "setsockopt", optname="SO_REUSEADDR")
    assert opt.args == {"fd": listener.fd, "level": "SOL_SOCKET", "optname": "SO_REUSEADDR", "optval": 1, "optlen": 4}

    # the forked child is its own process, and both ends are recorded
    assert conn.pid != acc.pid and conn.pid == conn.tid
    assert log.processes[conn.pid] == "exited 0" and log.processes[acc.pid] == "exited 0"
    # timestamps are the exact decimal values of the log, durations included
    line = next(ln for ln in path.read_text().splitlines() if " listen(" in ln)
    ts, dur = line.split()[1], line.rsplit("<", 1)[1].rstrip(">")
    assert listener.enter_ns == int(Decimal(ts) * 10**9)
    assert listener.exit_ns - listener.enter_ns == int(Decimal(dur) * 10**9)


def test_netcat_pair(tmp_path: Path) -> None:
    if shutil.which("nc") is None:
        pytest.skip("needs nc")
    port = free_port()
    srv_log = tmp_path / "srv.log"
    server = subprocess.Popen(
        [*STRACE, "-o", str(srv_log), "nc", "-d", "-l", "127.0.0.1", str(port)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while "listen(" not in (srv_log.read_text() if srv_log.exists() else ""):
            assert time.monotonic() < deadline, "nc -l did not start listening"
            time.sleep(0.02)
        cli_log = strace(
            tmp_path, ["nc", "-N", "127.0.0.1", str(port)], log="cli.log", input=PAYLOAD, stdout=subprocess.DEVNULL
        )
        received, _ = server.communicate(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert received == PAYLOAD
    srv, cli = read_strace_log(srv_log), read_strace_log(cli_log)
    assert_well_formed(srv, srv_log)
    assert_well_formed(cli, cli_log)

    server_addr = f"127.0.0.1:{port}"
    (conn,) = calls(cli, "connect", addr=server_addr)
    (acc,) = [sc for sc in calls(srv, "accept4") + calls(srv, "accept") if sc.ret is not None and sc.ret >= 0]
    client_addr = acc.ret_fdinfo.remote
    assert acc.ret_fdinfo == FdInfo("tcp", local=server_addr, remote=client_addr)
    writes = calls(cli, "write", fd=conn.fd)
    assert writes[0].fdinfo == FdInfo("tcp", local=client_addr, remote=server_addr)
    assert b"".join(sc.data for sc in writes) == PAYLOAD and sum(sc.nbytes for sc in writes) == len(PAYLOAD)
    reads = calls(srv, "read", fd=acc.ret)
    assert b"".join(sc.data for sc in reads) == PAYLOAD
    assert reads[-1].ret == 0  # EOF after the client's shutdown(SHUT_WR)
    assert calls(cli, "shutdown", fd=conn.fd, how="SHUT_WR")
    # nc connects non-blocking: EINPROGRESS, then waits for writability
    assert (conn.ret, conn.errno) == (-1, "EINPROGRESS")


UDP = """
import socket
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    a = socket.socket(fam, socket.SOCK_DGRAM); a.bind((host, 0))
    b = socket.socket(fam, socket.SOCK_DGRAM); b.bind((host, 0))
    for n in (1, 700, 1400):
        b.sendto((bytes(range(256)) * 6)[:n], a.getsockname())
    for n in (1, 700, 1400):
        data, peer = a.recvfrom(4096)
        assert len(data) == n and peer[1] == b.getsockname()[1]
    a.close(); b.close()
"""


def test_udp_exchange(tmp_path: Path) -> None:
    script = tmp_path / "udp.py"
    script.write_text(UDP)
    path = strace(tmp_path, [sys.executable, str(script)], "-s", "2000")
    log = read_strace_log(path)
    assert_well_formed(log, path)
    expected = [(bytes(range(256)) * 6)[:n] for n in (1, 700, 1400)]
    for kind in ("udp", "udp6"):
        sends = [sc for sc in calls(log, "sendto") if sc.fdinfo and sc.fdinfo.kind == kind]
        recvs = [sc for sc in calls(log, "recvfrom") if sc.fdinfo and sc.fdinfo.kind == kind]
        assert [sc.data for sc in sends] == expected == [sc.data for sc in recvs]
        assert [sc.nbytes for sc in recvs] == [1, 700, 1400] == [sc.args["count"] for sc in sends]
        # each datagram names the other socket: the sender's bound address is the receiver's peer
        for s, r in zip(sends, recvs, strict=True):
            assert s.args["addr"] == r.fdinfo.local
            assert r.args["addr"] == s.fdinfo.local
            assert r.args["count"] == 4096 and r.args["flags"] == 0
        loop = "127.0.0.1" if kind == "udp" else "[::1]"
        assert recvs[0].fdinfo.local.startswith(loop + ":")


THREADS = """
import socket, threading, time
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
got = []
t = threading.Thread(target=lambda: got.append(a.recv(100)))
t.start()
time.sleep(0.3)  # the thread is now blocked in recvfrom: strace must split that line
b.sendto(b"wake up", a.getsockname())
t.join()
assert got == [b"wake up"]
"""


def test_threads_unfinished_resumed(tmp_path: Path) -> None:
    script = tmp_path / "threads.py"
    script.write_text(THREADS)
    path = strace(tmp_path, [sys.executable, str(script)])
    text = path.read_text()
    assert "<... recvfrom resumed>" in text
    log = read_strace_log(path)
    assert_well_formed(log, path)
    (recv,) = calls(log, "recvfrom")
    (send,) = [sc for sc in calls(log, "sendto") if sc.data == b"wake up"]
    assert recv.tid != recv.pid and recv.pid == send.pid == send.tid  # a thread of the same process
    assert (recv.ret, recv.nbytes, recv.data) == (7, 7, b"wake up")
    assert recv.enter_ns < send.enter_ns < recv.exit_ns
    resumed = next(ln for ln in text.splitlines() if "<... recvfrom resumed>" in ln)
    assert recv.exit_ns == recv.enter_ns + int(Decimal(resumed.rsplit("<", 1)[1].rstrip(">")) * 10**9)
    assert recv.fdinfo.kind == "udp" and recv.args["addr"] == send.fdinfo.local
    assert set(log.processes) == {send.pid}  # thread exits are not process exits


C_PROGRAM = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void) {
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bind(l, (void *)&a, sizeof a);
    listen(l, 8);
    getsockname(l, (void *)&a, &al);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(c, (void *)&a, sizeof a);                       /* EINPROGRESS */
    struct pollfd p[2] = {{c, POLLOUT, 0}, {l, POLLIN, 0}};
    poll(p, 2, 2000);
    struct sockaddr_in peer; socklen_t pl = sizeof peer;
    int s = accept4(l, (void *)&peer, &pl, SOCK_CLOEXEC);
    fcntl(l, F_SETFL, O_NONBLOCK);
    accept4(l, NULL, NULL, 0);                              /* EAGAIN */
    struct iovec iv[2] = {{"abc", 3}, {"defgh", 5}};
    writev(c, iv, 2);
    char buf[400];
    read(s, buf, sizeof buf);
    struct linger lg = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    write(c, "unread", 6);
    usleep(20000);
    close(s);                                               /* unread data: RST */
    close(c);

    int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
    a.sin_port = 0;
    bind(u1, (void *)&a, sizeof a);
    al = sizeof a;
    getsockname(u1, (void *)&a, &al);
    connect(u2, (void *)&a, sizeof a);
    struct iovec mi[3] = {{"one", 3}, {"two2", 4}, {"three", 5}};
    struct mmsghdr mm[3];
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) { mm[i].msg_hdr.msg_iov = &mi[i]; mm[i].msg_hdr.msg_iovlen = 1; }
    sendmmsg(u2, mm, 3, 0);
    char rb[3][16];
    struct iovec ri[3];
    struct mmsghdr rm[3];
    memset(rm, 0, sizeof rm);
    for (int i = 0; i < 3; i++) {
        ri[i].iov_base = rb[i]; ri[i].iov_len = 16;
        rm[i].msg_hdr.msg_iov = &ri[i]; rm[i].msg_hdr.msg_iovlen = 1;
    }
    usleep(20000);
    recvmmsg(u1, rm, 3, MSG_DONTWAIT, NULL);
    recvmmsg(u1, rm, 3, MSG_DONTWAIT, NULL);                /* EAGAIN */

    struct sockaddr_in6 b = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT, .sin6_port = htons(1)};
    int t6 = socket(AF_INET6, SOCK_STREAM, 0);
    connect(t6, (void *)&b, sizeof b);                      /* ECONNREFUSED */

    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    shutdown(sv[0], SHUT_WR);

    int pp[2];
    char big[300];
    for (int i = 0; i < 300; i++) big[i] = (char)i;
    pipe(pp);
    write(pp[1], big, 300);
    read(pp[0], buf, 300);
    return 0;
}
"""


@pytest.fixture(scope="module")
def c_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("cprog")
    (d / "prog.c").write_text(C_PROGRAM)
    subprocess.run(["gcc", "-O0", "-o", str(d / "prog"), str(d / "prog.c")], check=True, timeout=60)
    return d / "prog"


def test_c_program(tmp_path: Path, c_program: Path) -> None:
    path = strace(tmp_path, [str(c_program)], "-s", "200")
    log = read_strace_log(path)
    assert_well_formed(log, path)

    (listener,) = calls(log, "listen")
    server_addr = listener.fdinfo.local
    assert listener.fdinfo.kind == "tcp" and listener.args["backlog"] == 8
    (conn,) = calls(log, "connect", addr=server_addr)
    assert (conn.ret, conn.errno, conn.fdinfo.kind) == (-1, "EINPROGRESS", "tcp")
    assert conn.args["addrlen"] == 16
    (pl,) = calls(log, "poll")
    assert pl.ret == 2 and pl.args["nfds"] == 2 and pl.args["timeout"] == 2000
    assert pl.args["fds"] == [
        {"fd": conn.fd, "events": "POLLOUT", "revents": "POLLOUT"},
        {"fd": listener.fd, "events": "POLLIN", "revents": "POLLIN"},
    ]
    ok, again = calls(log, "accept4")
    client_addr = ok.args["addr"]
    assert ok.args["flags"] == "SOCK_CLOEXEC" and ok.args["addrlen"] == 16
    assert ok.ret_fdinfo == FdInfo("tcp", local=server_addr, remote=client_addr)
    (wv,) = calls(log, "writev")
    assert wv.fdinfo == FdInfo("tcp", local=client_addr, remote=server_addr)  # the same 4-tuple, reversed
    assert (wv.ret, wv.nbytes, wv.data, wv.args["count"], wv.args["iovcnt"]) == (8, 8, b"abcdefgh", 8, 2)
    assert (again.ret, again.errno, again.ret_fdinfo) == (-1, "EAGAIN", None)
    (rd,) = calls(log, "read", fd=ok.ret)
    assert (rd.ret, rd.data, rd.args["count"]) == (8, b"abcdefgh", 400)
    (linger,) = calls(log, "setsockopt", optname="SO_LINGER")
    assert linger.args["optval"] == {"onoff": 1, "linger": 0}
    closes = calls(log, "close", fd=ok.ret)
    assert closes[0].fdinfo.remote == client_addr and closes[0].ret == 0

    (smm,) = calls(log, "sendmmsg")
    assert (smm.ret, smm.msg_lens, smm.nbytes, smm.data, smm.args["vlen"]) == (3, [3, 4, 5], 12, b"onetwo2three", 3)
    assert smm.fdinfo.kind == "udp" and smm.fdinfo.remote is not None
    rmm, rmm_again = calls(log, "recvmmsg")
    assert (rmm.ret, rmm.msg_lens, rmm.nbytes, rmm.data) == (3, [3, 4, 5], 12, b"onetwo2three")
    assert rmm.args["flags"] == "MSG_DONTWAIT" and rmm.fdinfo.local == smm.fdinfo.remote
    assert (rmm_again.ret, rmm_again.errno, rmm_again.msg_lens, rmm_again.nbytes) == (-1, "EAGAIN", None, None)

    (refused,) = calls(log, "connect", addr="[::1]:1")
    assert (refused.ret, refused.errno, refused.fdinfo.kind) == (-1, "ECONNREFUSED", "tcp6")
    (pair,) = calls(log, "socketpair")
    assert pair.args["domain"] == "AF_UNIX" and len(pair.args["sv"]) == 2
    (sh,) = calls(log, "shutdown")
    assert sh.fd == pair.args["sv"][0] and sh.args["how"] == "SHUT_WR" and sh.fdinfo.kind == "unix"

    big = bytes(range(256)) + bytes(range(44))
    (pw,) = [sc for sc in calls(log, "write") if sc.args["count"] == 300]
    assert pw.fdinfo.kind == "pipe" and pw.nbytes == 300 and pw.data == big[:200]  # -s 200 truncates
    (pr,) = [sc for sc in calls(log, "read") if sc.args["count"] == 300]
    assert pr.fdinfo.inode == pw.fdinfo.inode and pr.data == big[:200]
    assert log.processes == {conn.pid: "exited 0"}


def test_hex_and_no_strings(tmp_path: Path, c_program: Path) -> None:
    """-xx hex-escapes data and path decorations; -s 0 shows no bytes (and hides mmsg vectors)."""
    hexed = read_strace_log(strace(tmp_path, [str(c_program)], "-xx", "-s", "200", log="xx.log"))
    big = bytes(range(256)) + bytes(range(44))
    (pw,) = [sc for sc in calls(hexed, "write") if sc.args["count"] == 300]
    assert pw.data == big[:200] and pw.fdinfo.kind == "pipe" and pw.fdinfo.inode is not None
    (smm,) = calls(hexed, "sendmmsg")
    assert smm.data == b"onetwo2three" and smm.msg_lens == [3, 4, 5]

    path = strace(tmp_path, [str(c_program)], "-xx", "-s", "0", log="s0.log")
    bare = read_strace_log(path)
    assert_well_formed(bare, path)
    (wv,) = calls(bare, "writev")
    assert (wv.nbytes, wv.data) == (8, None)  # iovecs are elided entirely
    (pw,) = [sc for sc in calls(bare, "write") if sc.args["count"] == 300]
    assert (pw.nbytes, pw.data) == (300, b"")
    (smm,) = calls(bare, "sendmmsg")
    assert (smm.ret, smm.msg_lens, smm.nbytes) == (3, None, None)


THREAD_FORK = """
import os, socket, threading
def worker():
    s = socket.socket(); s.close()
t = threading.Thread(target=worker); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os._exit(3)
os.waitpid(pid, 0)
"""


def test_ff_set_and_directory(tmp_path: Path) -> None:
    script = tmp_path / "tf.py"
    script.write_text(THREAD_FORK)
    logs = tmp_path / "logs"
    logs.mkdir()
    subprocess.run(
        ["strace", "-ff", "-ttt", "-T", "-yy", "-o", str(logs / "t"), sys.executable, str(script)],
        check=True,
        timeout=30,
    )
    files = sorted(logs.iterdir())
    assert len(files) >= 3  # main thread, worker thread, forked child
    by_base = read_strace_log(logs / "t")
    by_dir = read_strace_log(logs)
    assert_well_formed(by_base, *files)
    assert [(sc.pid, sc.tid, sc.name, sc.enter_ns) for sc in by_base.syscalls] == [
        (sc.pid, sc.tid, sc.name, sc.enter_ns) for sc in by_dir.syscalls
    ]
    tids = {int(f.name.rpartition(".")[2]) for f in files}
    assert {sc.tid for sc in by_base.syscalls} == tids
    (sock,) = calls(by_base, "socket")
    main_pid = sock.pid
    assert sock.tid != main_pid and sock.ret_fdinfo.kind == "tcp"  # made by the worker thread
    child = {sc.pid for sc in by_base.syscalls} - {main_pid}
    assert len(child) == 1
    assert by_base.processes == {main_pid: "exited 0", child.pop(): "exited 3"}


def test_damaged_log_counts_without_raising(tmp_path: Path, c_program: Path) -> None:
    path = strace(tmp_path, [str(c_program)], log="good.log")
    good = read_strace_log(path)
    lines = path.read_text("latin-1").splitlines()
    i = next(n for n, ln in enumerate(lines) if " writev(" in ln)
    j = next(n for n, ln in enumerate(lines) if " sendmmsg(" in ln)
    lines[i] = lines[i][: len(lines[i]) // 2]  # cut mid-argument
    lines.insert(j, "this is not strace output")
    bad = tmp_path / "bad.log"
    bad.write_text("\n".join(lines) + "\n", "latin-1")
    log = read_strace_log(bad)
    assert log.unparsable == 2 and log.lines == len(lines)
    assert log.first_unparsable == (str(bad), i + 1)
    assert len(log.syscalls) == len(good.syscalls) - 1
    assert not calls(log, "writev") and calls(log, "sendmmsg")


def test_unreadable_inputs(tmp_path: Path) -> None:
    junk = tmp_path / "junk.log"
    junk.write_text("\nhello\nworld\n")
    with pytest.raises(InputError) as err:
        read_strace_log(junk)
    assert err.value.line == 2 and err.value.path == str(junk)
    assert "not strace -ttt output" in str(err.value) and "strace -f -ttt -T -yy" in str(err.value)
    with pytest.raises(InputError):
        read_strace_log(tmp_path / "missing.log")
    with pytest.raises(InputError):
        read_strace_log(tmp_path)  # a directory without NAME.PID files


@pytest.mark.parametrize("flag", ["-t", "-tt"])
def test_time_of_day_logs_are_named(tmp_path: Path, flag: str) -> None:
    """strace -t/-tt, the common mistake: the error says why, and how to record instead."""
    log = tmp_path / "tt.log"
    subprocess.run(["strace", "-f", flag, "-o", str(log), "true"], check=True)
    with pytest.raises(InputError) as err:
        read_strace_log(log)
    assert err.value.line == 1
    assert "strace -t/-tt give the time of day only" in str(err.value)
    assert "strace -f -ttt -T -yy -o LOG CMD" in str(err.value)


KILLED = """
import os, signal, threading, time
threading.Thread(target=lambda: time.sleep(30), daemon=True).start()
time.sleep(0.2)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_and_interrupted(tmp_path: Path) -> None:
    """Calls cut short by death have no result; ERESTART* calls returned and will be restarted."""
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    path = tmp_path / "killed.log"
    proc = subprocess.run([*STRACE, "-o", str(path), sys.executable, str(script)], timeout=30)
    assert proc.returncode != 0
    log = read_strace_log(path)
    assert_well_formed(log, path)
    (kill,) = calls(log, "kill")
    assert (kill.ret, kill.exit_ns, kill.errno) == (None, None, None)
    assert log.processes == {kill.pid: "killed by SIGKILL"}
    (sleeper,) = [sc for sc in calls(log, "clock_nanosleep") if sc.tid != kill.pid and sc.ret is None]
    assert sleeper.pid == kill.pid and sleeper.exit_ns is None

    path = tmp_path / "sh.log"
    cmd = "sleep 5 & sleep 0.1; kill -TERM $!; wait; exit 3"
    proc = subprocess.run([*STRACE, "-o", str(path), "sh", "-c", cmd], timeout=30)
    assert proc.returncode == 3
    log = read_strace_log(path)
    assert_well_formed(log, path)
    (sh,) = {sc.pid for sc in calls(log, "kill")}
    assert sorted(log.processes.values()) == ["exited 0", "exited 3", "killed by SIGTERM"]
    assert log.processes[sh] == "exited 3"
    for sc in log.syscalls:
        if sc.errno and sc.errno.startswith("ERESTART"):
            assert sc.ret == -1 and sc.exit_ns is not None
