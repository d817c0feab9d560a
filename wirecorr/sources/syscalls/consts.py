"""Names for constants and flag sets, spelled and ordered the way strace prints them.

An empty flag set renders as the integer 0 (strace prints `0`); bits without a name are
appended in hex so nothing is silently dropped.
"""

from __future__ import annotations

import errno as _errno
import os

Names = tuple[tuple[int, str], ...]

# Tables kept dense, one line per strace group, as strace's own xlat files are.
# fmt: off
AF: dict[int, str] = {
    0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET",
    31: "AF_BLUETOOTH", 38: "AF_ALG", 40: "AF_VSOCK",
}
SOCK_TYPE: dict[int, str] = {
    1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET", 6: "SOCK_DCCP",
    10: "SOCK_PACKET",
}
SOCK_CLOEXEC = 0o2000000
SOCK_NONBLOCK = 0o4000
SOCK_FLAGS: Names = ((SOCK_CLOEXEC, "SOCK_CLOEXEC"), (SOCK_NONBLOCK, "SOCK_NONBLOCK"))
IPPROTO: dict[int, str] = {
    0: "IPPROTO_IP", 1: "IPPROTO_ICMP", 6: "IPPROTO_TCP", 17: "IPPROTO_UDP", 41: "IPPROTO_IPV6",
    58: "IPPROTO_ICMPV6", 132: "IPPROTO_SCTP", 136: "IPPROTO_UDPLITE", 255: "IPPROTO_RAW", 262: "IPPROTO_MPTCP",
}
NETLINK: dict[int, str] = {
    0: "NETLINK_ROUTE", 4: "NETLINK_SOCK_DIAG", 9: "NETLINK_AUDIT", 15: "NETLINK_KOBJECT_UEVENT",
    16: "NETLINK_GENERIC",
}
SOL: dict[int, str] = {0: "SOL_IP", 1: "SOL_SOCKET", 6: "SOL_TCP", 17: "SOL_UDP", 41: "SOL_IPV6"}
SO: dict[int, str] = {
    1: "SO_DEBUG", 2: "SO_REUSEADDR", 3: "SO_TYPE", 4: "SO_ERROR", 5: "SO_DONTROUTE", 6: "SO_BROADCAST",
    7: "SO_SNDBUF", 8: "SO_RCVBUF", 9: "SO_KEEPALIVE", 10: "SO_OOBINLINE", 11: "SO_NO_CHECK",
    12: "SO_PRIORITY", 13: "SO_LINGER", 14: "SO_BSDCOMPAT", 15: "SO_REUSEPORT", 16: "SO_PASSCRED",
    17: "SO_PEERCRED", 18: "SO_RCVLOWAT", 19: "SO_SNDLOWAT", 20: "SO_RCVTIMEO_OLD", 21: "SO_SNDTIMEO_OLD",
    25: "SO_BINDTODEVICE", 29: "SO_TIMESTAMP_OLD", 30: "SO_ACCEPTCONN", 32: "SO_SNDBUFFORCE",
    33: "SO_RCVBUFFORCE", 38: "SO_PROTOCOL", 39: "SO_DOMAIN", 46: "SO_BUSY_POLL", 49: "SO_INCOMING_CPU",
    60: "SO_ZEROCOPY", 66: "SO_RCVTIMEO_NEW", 67: "SO_SNDTIMEO_NEW",
}
TCP: dict[int, str] = {
    1: "TCP_NODELAY", 2: "TCP_MAXSEG", 3: "TCP_CORK", 4: "TCP_KEEPIDLE", 5: "TCP_KEEPINTVL", 6: "TCP_KEEPCNT",
    7: "TCP_SYNCNT", 8: "TCP_LINGER2", 9: "TCP_DEFER_ACCEPT", 10: "TCP_WINDOW_CLAMP", 11: "TCP_INFO",
    12: "TCP_QUICKACK", 13: "TCP_CONGESTION", 14: "TCP_MD5SIG", 16: "TCP_THIN_LINEAR_TIMEOUTS",
    18: "TCP_USER_TIMEOUT", 19: "TCP_REPAIR", 23: "TCP_FASTOPEN", 25: "TCP_NOTSENT_LOWAT",
    30: "TCP_FASTOPEN_CONNECT", 31: "TCP_ULP",
}
IP: dict[int, str] = {
    1: "IP_TOS", 2: "IP_TTL", 3: "IP_HDRINCL", 4: "IP_OPTIONS", 8: "IP_PKTINFO", 10: "IP_MTU_DISCOVER",
    11: "IP_RECVERR", 15: "IP_FREEBIND", 24: "IP_BIND_ADDRESS_NO_PORT", 33: "IP_MULTICAST_TTL",
    35: "IP_ADD_MEMBERSHIP",
}
IPV6: dict[int, str] = {
    16: "IPV6_UNICAST_HOPS", 23: "IPV6_MTU_DISCOVER", 25: "IPV6_RECVERR", 26: "IPV6_V6ONLY",
    49: "IPV6_RECVPKTINFO", 67: "IPV6_TCLASS",
}
UDP: dict[int, str] = {1: "UDP_CORK", 100: "UDP_ENCAP", 103: "UDP_SEGMENT", 104: "UDP_GRO"}
OPTNAMES_BY_LEVEL: dict[int, dict[int, str]] = {0: IP, 1: SO, 6: TCP, 17: UDP, 41: IPV6}

MSG: Names = (
    (0x1, "MSG_OOB"), (0x2, "MSG_PEEK"), (0x4, "MSG_DONTROUTE"), (0x8, "MSG_CTRUNC"), (0x10, "MSG_PROXY"),
    (0x20, "MSG_TRUNC"), (0x40, "MSG_DONTWAIT"), (0x80, "MSG_EOR"), (0x100, "MSG_WAITALL"), (0x200, "MSG_FIN"),
    (0x400, "MSG_SYN"), (0x800, "MSG_CONFIRM"), (0x1000, "MSG_RST"), (0x2000, "MSG_ERRQUEUE"),
    (0x4000, "MSG_NOSIGNAL"), (0x8000, "MSG_MORE"), (0x10000, "MSG_WAITFORONE"), (0x40000, "MSG_BATCH"),
    (0x4000000, "MSG_ZEROCOPY"), (0x20000000, "MSG_FASTOPEN"), (0x40000000, "MSG_CMSG_CLOEXEC"),
)
SHUT: dict[int, str] = {0: "SHUT_RD", 1: "SHUT_WR", 2: "SHUT_RDWR"}

POLL: Names = (
    (0x1, "POLLIN"), (0x2, "POLLPRI"), (0x4, "POLLOUT"), (0x8, "POLLERR"), (0x10, "POLLHUP"),
    (0x20, "POLLNVAL"), (0x40, "POLLRDNORM"), (0x80, "POLLRDBAND"), (0x100, "POLLWRNORM"),
    (0x200, "POLLWRBAND"), (0x400, "POLLMSG"), (0x2000, "POLLRDHUP"),
)
EPOLL: Names = (
    (0x1, "EPOLLIN"), (0x2, "EPOLLPRI"), (0x4, "EPOLLOUT"), (0x8, "EPOLLERR"), (0x10, "EPOLLHUP"),
    (0x20, "EPOLLNVAL"), (0x40, "EPOLLRDNORM"), (0x80, "EPOLLRDBAND"), (0x100, "EPOLLWRNORM"),
    (0x200, "EPOLLWRBAND"), (0x400, "EPOLLMSG"), (0x2000, "EPOLLRDHUP"), (1 << 28, "EPOLLEXCLUSIVE"),
    (1 << 29, "EPOLLWAKEUP"), (1 << 30, "EPOLLONESHOT"), (1 << 31, "EPOLLET"),
)
EPOLL_CTL: dict[int, str] = {1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"}
EPOLL_CLOEXEC: Names = ((0o2000000, "EPOLL_CLOEXEC"),)
O_CLOEXEC: Names = ((0o2000000, "O_CLOEXEC"),)

F_CMD: dict[int, str] = {
    0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK", 6: "F_SETLK",
    7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG", 11: "F_GETSIG", 36: "F_OFD_GETLK",
    37: "F_OFD_SETLK", 38: "F_OFD_SETLKW", 1024: "F_SETLEASE", 1025: "F_GETLEASE", 1030: "F_DUPFD_CLOEXEC",
    1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS", 1034: "F_GET_SEALS",
}
F_DUPFD = 0
F_DUPFD_CLOEXEC = 1030
FD_FLAGS: Names = ((1, "FD_CLOEXEC"),)
# File status flags differ between architectures; the tracer only traces its own, so take
# the values from this Python's os module.
O_FLAGS: Names = tuple(
    (getattr(os, name), name)
    for name in ("O_APPEND", "O_ASYNC", "O_DIRECT", "O_DSYNC", "O_LARGEFILE", "O_NOATIME", "O_NONBLOCK",
                 "O_SYNC", "O_PATH", "O_CLOEXEC", "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_DIRECTORY")
    if getattr(os, name, 0)
)
O_ACCMODE: dict[int, str] = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}
CLOSE_RANGE: Names = ((1 << 1, "CLOSE_RANGE_UNSHARE"), (1 << 2, "CLOSE_RANGE_CLOEXEC"))
CLOSE_RANGE_CLOEXEC = 1 << 2

IOCTL: dict[int, str] = {
    0x5401: "TCGETS", 0x5402: "TCSETS", 0x540F: "TIOCGPGRP", 0x5410: "TIOCSPGRP", 0x5411: "TIOCOUTQ",
    0x5413: "TIOCGWINSZ", 0x5414: "TIOCSWINSZ", 0x541B: "FIONREAD", 0x5421: "FIONBIO", 0x5450: "FIONCLEX",
    0x5451: "FIOCLEX", 0x5452: "FIOASYNC",
}
FIONBIO = 0x5421
FIONREAD = 0x541B

# The kernel's restart codes never reach user space but do show at syscall-exit-stops.
_RESTART = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
            516: "ERESTART_RESTARTBLOCK"}
# fmt: on


def flags(value: int, names: Names) -> str | int:
    """`A|B|0x40` for the set bits, or 0 when none is set."""
    if not value:
        return 0
    parts = []
    rest = value
    for bit, name in names:
        if value & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def name(value: int, names: dict[int, str]) -> str | int:
    """The constant's name, or the number itself when it has none (strace does the same)."""
    return names.get(value, value)


def sock_type(value: int) -> str:
    """`SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK`: the base type, then the creation flags."""
    base = SOCK_TYPE.get(value & 0xF, str(value & 0xF))
    extra = flags(value & ~0xF, SOCK_FLAGS)
    return f"{base}|{extra}" if extra else base


def protocol(domain: int, value: int) -> str | int:
    """socket()'s third argument named within its domain, as strace does."""
    if domain in (2, 10):
        return IPPROTO.get(value, value)
    if domain == 16:
        return NETLINK.get(value, value)
    return value


def open_flags(value: int) -> str:
    """F_GETFL/F_SETFL flags: the access mode always shows, as in `O_RDWR|O_NONBLOCK`."""
    mode = O_ACCMODE.get(value & 3, str(value & 3))
    extra = flags(value & ~3, O_FLAGS)
    return f"{mode}|{extra}" if extra else mode


def errno_name(code: int) -> str:
    """Name for a positive errno as strace prints it (`EAGAIN`, `ERESTARTSYS`)."""
    return _errno.errorcode.get(code) or _RESTART.get(code) or f"E{code}"
