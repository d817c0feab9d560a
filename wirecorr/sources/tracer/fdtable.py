"""Per-process descriptor table: fd → FdInfo, as strace -yy would annotate it.

Sockets are identified exactly by duplicating the tracee's descriptor into this process
(pidfd_getfd, Linux 5.6+) and asking the socket itself: family, type, getsockname and
getpeername work in any state, cost a few syscalls, and do not depend on the size of
/proc/net/tcp (which a port-exhaustion experiment fills with thousands of lines). Where
pidfd_getfd is refused, the inode is looked up in /proc/PID/net/{tcp,udp,...} instead.

FdInfo objects are never mutated once stored: a Syscall keeps the one current at its call.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket

from wirecorr.model import FdInfo
from wirecorr.sources.syscalls.sockaddr import endpoint, unix_path

_libc = ctypes.CDLL(None, use_errno=True)
SYS_PIDFD_GETFD = 438  # same number on every architecture (unified table)

_KIND_BY_PROTO = {
    (socket.AF_INET, socket.SOCK_STREAM): "tcp",
    (socket.AF_INET, socket.SOCK_DGRAM): "udp",
    (socket.AF_INET6, socket.SOCK_STREAM): "tcp6",
    (socket.AF_INET6, socket.SOCK_DGRAM): "udp6",
}
_KIND_BY_FAMILY = {socket.AF_UNIX: "unix", socket.AF_NETLINK: "netlink"}
# /proc/PID/net files by FdInfo kind, and the names getxattr(system.sockprotoname) gives.
_PROC_NET = (("tcp", "tcp"), ("tcp6", "tcp6"), ("udp", "udp"), ("udp6", "udp6"), ("unix", "unix"))
_PROTONAME_KIND = {
    "TCP": "tcp",
    "TCPv6": "tcp6",
    "UDP": "udp",
    "UDPv6": "udp6",
    "UNIX": "unix",
    "NETLINK": "netlink",
    "RAW": "raw",
    "RAWv6": "raw",
}


def socket_kind(domain: int, sock_type: int) -> str:
    """FdInfo kind from socket()'s own arguments, before the socket is bound anywhere."""
    if domain in (socket.AF_INET, socket.AF_INET6) and sock_type & 0xF == socket.SOCK_RAW:
        return "raw"
    return _KIND_BY_PROTO.get((domain, sock_type & 0xF)) or _KIND_BY_FAMILY.get(domain, "socket")


def _hex_endpoint(text: str) -> str | None:
    """An address:port column of /proc/net/tcp{,6}, which prints host-order 32-bit words."""
    host, _, port = text.partition(":")
    raw = bytes.fromhex(host)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    ip, number = socket.inet_ntop(family, raw), int(port, 16)
    return None if number == 0 and ip in ("0.0.0.0", "::") else endpoint(ip, number)


def _from_proc_net(pid: int, fd: int, inode: int) -> FdInfo:
    """Fallback identification by inode; unbound sockets are in no table and keep their kind only."""
    kind = "socket"
    with contextlib.suppress(OSError):
        kind = _PROTONAME_KIND.get(os.getxattr(f"/proc/{pid}/fd/{fd}", "system.sockprotoname").decode(), "socket")
    needle = f" {inode} "
    for name, file_kind in _PROC_NET:
        if kind not in ("socket", file_kind):
            continue
        try:
            with open(f"/proc/{pid}/net/{name}") as table:
                text = table.read()
        except OSError:
            continue
        at = text.find(needle)
        if at < 0:
            continue
        line = text[text.rfind("\n", 0, at) + 1 : text.find("\n", at)].split()
        if name == "unix":
            return FdInfo("unix", local=line[7] if len(line) > 7 else None, inode=inode)
        return FdInfo(file_kind, local=_hex_endpoint(line[1]), remote=_hex_endpoint(line[2]), inode=inode)
    return FdInfo(kind, inode=inode)


def _classify(link: str, pid: int, fd: int) -> FdInfo:
    if link.startswith("pipe:["):
        return FdInfo("pipe", path=link, inode=int(link[6:-1]))
    if link.startswith("anon_inode:"):
        return FdInfo("anon", path=link)
    if link.startswith(("/dev/pts/", "/dev/tty")) or link == "/dev/console":
        return FdInfo("tty", path=link)
    inode = None
    with contextlib.suppress(OSError):
        inode = os.stat(f"/proc/{pid}/fd/{fd}").st_ino
    return FdInfo("file", path=link, inode=inode)


def _sock_name(sock: socket.socket, peer: bool) -> str | None:
    try:
        addr = sock.getpeername() if peer else sock.getsockname()
    except OSError:
        return None
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(addr, tuple):
        return None if addr[1] == 0 and addr[0] in ("0.0.0.0", "::") else endpoint(addr[0], addr[1])
    if sock.family == socket.AF_UNIX:
        return unix_path(addr) if isinstance(addr, bytes) else (addr or None)
    return None


class FdTable:
    """One process's descriptors (threads share the object, as they share the kernel table)."""

    __slots__ = ("_epoll", "_fds", "_pidfd", "pid")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fds: dict[int, FdInfo] = {}
        self._epoll: dict[int, dict[int, int]] = {}
        self._pidfd: int | None = None

    def get(self, fd: int) -> FdInfo | None:
        """What `fd` is; resolved from /proc the first time it is seen, None if not open."""
        info = self._fds.get(fd)
        return info if info is not None else self.refresh(fd)

    def refresh(self, fd: int) -> FdInfo | None:
        """Re-identify `fd` now (after bind/listen/connect/accept changed what it is)."""
        info = self._resolve(fd)
        if info is None:
            self._fds.pop(fd, None)
        else:
            self._fds[fd] = info
        return info

    def put(self, fd: int, info: FdInfo) -> None:
        self._fds[fd] = info

    def created_socket(self, fd: int, domain: int, sock_type: int) -> FdInfo:
        """A fresh socket: its kind is in socket()'s arguments; only the inode needs /proc."""
        inode = None
        with contextlib.suppress(OSError, ValueError):
            inode = int(os.readlink(f"/proc/{self.pid}/fd/{fd}")[8:-1])
        info = FdInfo(socket_kind(domain, sock_type), inode=inode)
        self._fds[fd] = info
        return info

    def dup(self, oldfd: int, newfd: int) -> FdInfo | None:
        info = self.get(oldfd)
        if info is not None and newfd != oldfd:
            self.drop(newfd)
            self._fds[newfd] = info
        return info

    def drop(self, fd: int) -> None:
        self._fds.pop(fd, None)
        self._epoll.pop(fd, None)

    def drop_range(self, first: int, last: int) -> None:
        for fd in [fd for fd in self._fds if first <= fd <= last]:
            self.drop(fd)

    def forget_all(self) -> None:
        """After exec: close-on-exec descriptors are gone; survivors are re-identified lazily."""
        self._fds.clear()
        self._epoll.clear()

    def copy(self, pid: int) -> FdTable:
        """The child's table after fork: same descriptors, its own from now on."""
        table = FdTable(pid)
        table._fds = dict(self._fds)
        table._epoll = {epfd: dict(regs) for epfd, regs in self._epoll.items()}
        return table

    def epoll_register(self, epfd: int, fd: int, data: int) -> None:
        self._epoll.setdefault(epfd, {})[data] = fd

    def epoll_forget(self, epfd: int, fd: int) -> None:
        regs = self._epoll.get(epfd)
        if regs:
            for data in [data for data, target in regs.items() if target == fd]:
                del regs[data]

    def epoll_lookup(self, epfd: int, data: int) -> int | None:
        regs = self._epoll.get(epfd)
        return regs.get(data) if regs else None

    def close(self) -> None:
        """Release the pidfd; call when the process is gone."""
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def _resolve(self, fd: int) -> FdInfo | None:
        try:
            link = os.readlink(f"/proc/{self.pid}/fd/{fd}")
        except OSError:
            return None
        if link.startswith("socket:["):
            return self._socket(fd, int(link[8:-1]))
        return _classify(link, self.pid, fd)

    def _socket(self, fd: int, inode: int) -> FdInfo:
        try:
            if self._pidfd is None:
                self._pidfd = os.pidfd_open(self.pid)
            dup = _libc.syscall(SYS_PIDFD_GETFD, self._pidfd, fd, 0)
        except OSError:
            dup = -1
        if dup < 0:
            return _from_proc_net(self.pid, fd, inode)
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            return _from_proc_net(self.pid, fd, inode)
        with sock:
            return FdInfo(
                socket_kind(sock.family, sock.type),
                local=_sock_name(sock, peer=False),
                remote=_sock_name(sock, peer=True),
                inode=inode,
            )
