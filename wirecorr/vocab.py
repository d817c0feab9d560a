"""The syscall vocabulary: one row per call, as strace's syscallent.h has one.

A row names the call's arguments (the man pages' names, which the tracer's decoders and the
strace reader both use as `Syscall.args` keys), the argument holding the descriptor the call
acts on, whether a successful return counts bytes moved, and the classes the engine and the
views ask about ("is this a write?"). Every set of call names elsewhere is derived from
here, so a new call is one row (docs/architecture.md, where new code goes).
"""

from __future__ import annotations

from dataclasses import dataclass

WRITE = "write"  # sends stream bytes on a TCP socket
READ = "read"  # takes stream bytes from a TCP socket
UDP_SEND = "udp-send"  # sends datagrams
UDP_RECV = "udp-recv"  # receives datagrams
READINESS = "readiness"  # waits for descriptors to become ready
OWNER = "owner"  # gives a socket its connection (the TUI names a connection's owner by it)
SOCKET = "socket"  # exists only for sockets, whatever its fd turns out to be
FORK = "fork"  # makes a process or thread
DUP = "dup"  # makes a second descriptor for one file


@dataclass(frozen=True, slots=True)
class Call:
    """args: names of the arguments in order. derived: further `args` keys a decoder fills
    from what the arguments point to (the total of an iovec, a msghdr's address). target:
    the argument naming the descriptor acted on. raw_in_strace: the strace reader keeps the
    arguments as strace printed them (`args["raw"]`) instead of naming them."""

    args: tuple[str, ...]
    classes: frozenset[str] = frozenset()
    target: str = "fd"
    moves_bytes: bool = False
    derived: tuple[str, ...] = ()
    raw_in_strace: bool = False


def _c(
    args: tuple[str, ...],
    *classes: str,
    target: str = "fd",
    moves_bytes: bool = False,
    derived: tuple[str, ...] = (),
    raw_in_strace: bool = False,
) -> Call:
    return Call(args, frozenset(classes), target, moves_bytes, derived, raw_in_strace)


_SOCKADDR = ("fd", "addr", "addrlen")
_EPOLL_WAIT = ("epfd", "events", "maxevents", "timeout")
_MSG = ("count", "addr", "iovcnt")

# fmt: off
CALLS: dict[str, Call] = {
    "socket": _c(("domain", "type", "protocol"), SOCKET),
    "socketpair": _c(("domain", "type", "protocol", "sv"), SOCKET),
    "bind": _c(_SOCKADDR, SOCKET),
    "connect": _c(_SOCKADDR, SOCKET, OWNER),
    "listen": _c(("fd", "backlog"), SOCKET),
    "accept": _c(_SOCKADDR, SOCKET, OWNER),
    "accept4": _c((*_SOCKADDR, "flags"), SOCKET, OWNER),
    "getsockname": _c(_SOCKADDR, SOCKET),
    "getpeername": _c(_SOCKADDR, SOCKET),
    "setsockopt": _c(("fd", "level", "optname", "optval", "optlen"), SOCKET),
    "getsockopt": _c(("fd", "level", "optname", "optval", "optlen"), SOCKET),
    "shutdown": _c(("fd", "how"), SOCKET),
    "close": _c(("fd",)),
    "read": _c(("fd", "buf", "count"), READ, UDP_RECV, moves_bytes=True),
    "write": _c(("fd", "buf", "count"), WRITE, UDP_SEND, moves_bytes=True),
    "pread64": _c(("fd", "buf", "count", "offset"), READ, moves_bytes=True),
    "pwrite64": _c(("fd", "buf", "count", "offset"), WRITE, moves_bytes=True),
    "readv": _c(("fd", "iov", "iovcnt"), READ, UDP_RECV, moves_bytes=True, derived=("count",)),
    "writev": _c(("fd", "iov", "iovcnt"), WRITE, UDP_SEND, moves_bytes=True, derived=("count",)),
    "preadv": _c(("fd", "iov", "iovcnt", "offset"), READ, moves_bytes=True, derived=("count",)),
    "pwritev": _c(("fd", "iov", "iovcnt", "offset"), WRITE, moves_bytes=True, derived=("count",)),
    "preadv2": _c(("fd", "iov", "iovcnt", "offset", "flags"), READ, moves_bytes=True, derived=("count",)),
    "pwritev2": _c(("fd", "iov", "iovcnt", "offset", "flags"), WRITE, moves_bytes=True, derived=("count",)),
    "send": _c(("fd", "buf", "count", "flags"), WRITE, UDP_SEND, moves_bytes=True),
    "recv": _c(("fd", "buf", "count", "flags"), READ, UDP_RECV, moves_bytes=True),
    "sendto": _c(("fd", "buf", "count", "flags", "addr", "addrlen"), SOCKET, WRITE, UDP_SEND, moves_bytes=True),
    "recvfrom": _c(("fd", "buf", "count", "flags", "addr", "addrlen"), SOCKET, READ, UDP_RECV, moves_bytes=True),
    "sendmsg": _c(("fd", "msg", "flags"), SOCKET, WRITE, UDP_SEND, moves_bytes=True, derived=_MSG),
    "recvmsg": _c(("fd", "msg", "flags"), SOCKET, READ, UDP_RECV, moves_bytes=True, derived=_MSG),
    "sendmmsg": _c(("fd", "msgvec", "vlen", "flags"), SOCKET, UDP_SEND, derived=_MSG),
    "recvmmsg": _c(("fd", "msgvec", "vlen", "flags", "timeout"), SOCKET, UDP_RECV, derived=_MSG),
    "sendfile": _c(("out_fd", "in_fd", "offset", "count"), WRITE, target="out_fd", moves_bytes=True),
    "splice": _c(("fd_in", "off_in", "fd_out", "off_out", "len", "flags"), raw_in_strace=True),
    "poll": _c(("fds", "nfds", "timeout"), READINESS),
    "ppoll": _c(("fds", "nfds", "timeout", "sigmask", "sigsetsize"), READINESS),
    "select": _c(("nfds", "readfds", "writefds", "exceptfds", "timeout"), READINESS),
    "pselect6": _c(("nfds", "readfds", "writefds", "exceptfds", "timeout", "sigmask"), READINESS),
    "epoll_create": _c(("size",)),
    "epoll_create1": _c(("flags",)),
    "epoll_ctl": _c(("epfd", "op", "fd", "event"), derived=("events", "data")),
    "epoll_wait": _c(_EPOLL_WAIT, READINESS, target="epfd"),
    "epoll_pwait": _c((*_EPOLL_WAIT, "sigmask", "sigsetsize"), READINESS, target="epfd"),
    "epoll_pwait2": _c((*_EPOLL_WAIT, "sigmask", "sigsetsize"), READINESS, target="epfd"),
    "fcntl": _c(("fd", "cmd", "arg")),
    "ioctl": _c(("fd", "request", "arg")),
    "dup": _c(("oldfd",), DUP, target="oldfd"),
    "dup2": _c(("oldfd", "newfd"), DUP, target="oldfd"),
    "dup3": _c(("oldfd", "newfd", "flags"), DUP, target="oldfd"),
    "pipe": _c(("pipefd",)),
    "pipe2": _c(("pipefd", "flags")),
    "close_range": _c(("first", "last", "flags"), raw_in_strace=True),
    "exit": _c(("status",), raw_in_strace=True),
    "exit_group": _c(("status",), raw_in_strace=True),
    "clone": _c(("flags", "stack", "parent_tid", "child_tid", "tls"), FORK, raw_in_strace=True),
    "clone3": _c(("cl_args", "size"), FORK, raw_in_strace=True),
    "fork": _c((), FORK, raw_in_strace=True),
    "vfork": _c((), FORK, raw_in_strace=True),
}
# fmt: on


def calls_in(cls: str) -> frozenset[str]:
    """Names of the calls of one class."""
    return frozenset(name for name, call in CALLS.items() if cls in call.classes)


# The derived sets the engine and the views read.
WRITES = calls_in(WRITE)
READS = calls_in(READ)
UDP_SENDS = calls_in(UDP_SEND)
UDP_RECVS = calls_in(UDP_RECV)
DATA_CALLS = READS | WRITES | UDP_RECVS | UDP_SENDS
READINESS_CALLS = calls_in(READINESS)
OWNER_CALLS = calls_in(OWNER)
SOCKET_CALLS = calls_in(SOCKET)
FORKS = calls_in(FORK)
DUPS = calls_in(DUP)
BYTE_CALLS = frozenset(name for name, call in CALLS.items() if call.moves_bytes)
# What the strace reader parses: argument names by call, and the target when it is not `fd`.
PARAMS = {name: call.args for name, call in CALLS.items() if not call.raw_in_strace}
TARGETS = {name: call.target for name, call in CALLS.items() if call.target != "fd"}


def arg_names(name: str) -> frozenset[str]:
    """Every `args` key a decoded call of this name may carry."""
    call = CALLS[name]
    return frozenset((*call.args, *call.derived))
