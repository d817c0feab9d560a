"""Socket identity: (pid, fd) → socket → 4-tuple → Connection.

The correlator pairs by identity first (docs/architecture.md): a data call names a descriptor, and
only the socket behind it says which packets it can be about. A descriptor number is not
an identity — it is reused after close, shared by dup and fork, and a forked child's
table starts as a copy of its parent's — so this module keeps one `Socket` object per
kernel socket and binds every (pid, fd) that refers to it. A close() releases the socket
only when its last binding goes, which is what decides between a FIN and a close-noop.

Endpoints come from the syscalls themselves (fdinfo of `strace -yy` or the tracer, the
sockaddr of connect/bind/accept), never from the capture, so a syscall trace and a packet
capture taken independently meet only here: `ConnectionIndex.lookup` picks the Connection
whose endpoints equal the socket's 4-tuple and which had started when the call ended
(port reuse gives several connections per 4-tuple over time).
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field

from wirecorr.engine.connections import CLOSED, RESET, TIME_WAIT, Connection
from wirecorr.model import FdInfo, Syscall, parse_endpoint
from wirecorr.vocab import DUPS, FORKS

Endpoint = tuple[bytes, int]

_MAPPED_V4 = b"\x00" * 10 + b"\xff\xff"
_DUPFD = re.compile(r"F_DUPFD")
_SHARES_FILES = re.compile(r"CLONE_FILES|CLONE_THREAD")
# strace prints µs and the tracer's stops bracket the kernel work loosely: timestamps of a
# syscall and of its packet may disagree by this much in the "wrong" direction.
SLACK_NS = 10_000
# Later than any timestamp: an open end of a time window.
NEVER = 1 << 62
_SOCKET_KINDS = frozenset({"tcp", "tcp6", "udp", "udp6", "unix", "netlink", "raw", "socket"})


def endpoint_key(text: object) -> Endpoint | None:
    """(address bytes, port) of an "ip:port" string as packets carry it, None if not one.

    IPv4-mapped IPv6 addresses become plain IPv4: a tcp6 socket talking to 127.0.0.1
    prints "[::ffff:127.0.0.1]:80" while its packets are IPv4.
    """
    if not isinstance(text, str) or ":" not in text:
        return None
    try:
        addr, port = parse_endpoint(text)
    except ValueError:
        return None
    if len(addr) == 16 and addr.startswith(_MAPPED_V4):
        addr = addr[12:]
    return addr, port


def is_wildcard(addr: bytes) -> bool:
    return not any(addr)


def fits_local(end: Endpoint, local: Endpoint | None) -> bool:
    """Whether a packet endpoint can be a socket's local one (wildcard binds match any address)."""
    if local is None:
        return True
    return end[1] == local[1] and (is_wildcard(local[0]) or end[0] == local[0])


def is_peek(sc: Syscall) -> bool:
    """A MSG_PEEK receive: it returns bytes and leaves them queued for the next read."""
    return "MSG_PEEK" in str(sc.args.get("flags", ""))


@dataclass(slots=True, eq=False)
class Socket:
    """One kernel socket, however many descriptors refer to it.

    `refs` counts (fd table, fd) bindings; `local`/`remote` are parsed endpoints, filled
    as soon as any syscall reveals them (strace prints a connect()'s fd before the call
    gave it a local port, the next call on it shows the full 4-tuple).
    """

    id: int
    kind: str
    inode: int | None = None
    local: Endpoint | None = None
    remote: Endpoint | None = None
    refs: int = 0
    listening: bool = False
    closed: bool = False
    # Made by a traced socket()/accept(): its streams start at offset 0 of the trace. A
    # socket first met through fdinfo was open before tracing began (`record -p`).
    created: bool = False

    @property
    def is_tcp(self) -> bool:
        return self.kind in ("tcp", "tcp6")

    @property
    def is_udp(self) -> bool:
        return self.kind in ("udp", "udp6")

    @property
    def is_inet(self) -> bool:
        return self.kind in ("tcp", "tcp6", "udp", "udp6", "socket")


@dataclass(slots=True)
class FdEvent:
    """What one syscall did to socket identity.

    socket: the socket the call acts on (its fd argument), if that is a socket.
    created: the socket a call returned (socket, accept, accept4).
    released: True when the call dropped the socket's last descriptor (the kernel closes it).
    """

    socket: Socket | None = None
    created: Socket | None = None
    released: bool = False


class _FdTable:
    """fd → Socket of one process; threads and CLONE_FILES children share the object."""

    __slots__ = ("fds", "touched")

    def __init__(self) -> None:
        self.fds: dict[int, Socket] = {}
        # fds the process used before its parent's fork record arrived (strace logs in
        # exit order, so a child's first calls can precede the parent's clone result).
        self.touched: set[int] = set()


@dataclass
class SocketMap:
    """Follows descriptors across socket/accept/dup/fork/close, in syscall exit order."""

    sockets: list[Socket] = field(default_factory=list)
    _tables: dict[int, _FdTable] = field(default_factory=dict)
    _by_inode: dict[int, Socket] = field(default_factory=dict)
    _by_tuple: dict[tuple[str, Endpoint, Endpoint], Socket] = field(default_factory=dict)

    def socket_of(self, pid: int, fd: int) -> Socket | None:
        table = self._tables.get(pid)
        return table.fds.get(fd) if table is not None else None

    def apply(self, sc: Syscall) -> FdEvent:
        """Update the map with one completed syscall and say which sockets it involved."""
        table = self._table(sc.pid)
        event = FdEvent()
        name = sc.name
        ret = sc.ret if isinstance(sc.ret, int) else None
        if name in FORKS:
            if ret is not None and ret > 0:
                self.fork(sc.pid, ret, share=bool(_SHARES_FILES.search(str(sc.args))))
            return event
        if name == "exit_group":
            self.exit(sc.pid)
            return event
        if sc.fd is not None:
            event.socket = self._resolve(table, sc.fd, sc.fdinfo)
        sock = event.socket
        if sock is not None:
            self._learn(sock, sc)
        if ret is None or ret < 0:
            return event
        if name in ("socket", "accept", "accept4"):
            event.created = self._created(table, ret, sc)
        elif name in DUPS or (name == "fcntl" and _DUPFD.match(str(sc.args.get("cmd", "")))):
            if sock is not None and ret != sc.fd:
                self._unbind(table, ret)
                self._bind(table, ret, sock)
        elif name == "close" and sc.fd is not None:
            event.released = self._unbind(table, sc.fd)
        elif name == "close_range":
            first, last = sc.args.get("first"), sc.args.get("last")
            if isinstance(first, int) and isinstance(last, int) and "CLOEXEC" not in str(sc.args.get("flags")):
                for fd in [fd for fd in table.fds if first <= fd <= last]:
                    self._unbind(table, fd)
        return event

    # -- descriptors -------------------------------------------------------------------

    def _table(self, pid: int) -> _FdTable:
        table = self._tables.get(pid)
        if table is None:
            table = self._tables[pid] = _FdTable()
        return table

    def fork(self, parent_pid: int, child_pid: int, *, share: bool = False) -> None:
        """A new process (share=False) or a thread / CLONE_FILES child (share=True).

        A forked child holds its own reference to every socket its parent had: the
        parent's close() of such a socket sends nothing until the child closes it too.
        """
        parent = self._table(parent_pid)
        if share:
            self._tables[child_pid] = parent
            return
        table = self._table(child_pid)
        for fd, sock in parent.fds.items():
            if fd not in table.touched and fd not in table.fds:
                self._bind(table, fd, sock)

    def exit(self, pid: int) -> None:
        """The process is gone: the kernel closed its descriptors (no close() to pair)."""
        table = self._tables.pop(pid, None)
        if table is not None and all(t is not table for t in self._tables.values()):
            for fd in list(table.fds):
                self._unbind(table, fd)

    def _bind(self, table: _FdTable, fd: int, sock: Socket) -> None:
        table.fds[fd] = sock
        table.touched.add(fd)
        sock.refs += 1

    def _unbind(self, table: _FdTable, fd: int) -> bool:
        """Forget fd; True when that was the socket's last descriptor."""
        table.touched.add(fd)
        sock = table.fds.pop(fd, None)
        if sock is None:
            return False
        sock.refs -= 1
        if sock.refs > 0:
            return False
        sock.closed = True
        if sock.inode is not None and self._by_inode.get(sock.inode) is sock:
            del self._by_inode[sock.inode]
        key = self._tuple_key(sock)
        if key is not None and self._by_tuple.get(key) is sock:
            del self._by_tuple[key]
        return True

    def _resolve(self, table: _FdTable, fd: int, info: FdInfo | None) -> Socket | None:
        """The socket behind fd: the bound one unless fdinfo proves the fd was reused."""
        sock = table.fds.get(fd)
        if info is None or not info.is_socket:
            if info is not None and sock is not None:
                self._unbind(table, fd)  # the fd now names a file: we missed a close
                return None
            return sock
        if sock is not None and not self._conflicts(sock, info):
            return sock
        if sock is not None:
            self._unbind(table, fd)
        found = self._find(info)
        if found is None:
            found = self._new(info.kind)
        self._bind(table, fd, found)
        self._update(found, info)
        return found

    def _created(self, table: _FdTable, fd: int, sc: Syscall) -> Socket:
        info = sc.ret_fdinfo
        kind = info.kind if info is not None and info.kind in _SOCKET_KINDS else _kind_from_args(sc)
        self._unbind(table, fd)
        sock = self._new(kind)
        sock.created = True
        self._bind(table, fd, sock)
        if info is not None:
            self._update(sock, info)
        if sc.name != "socket" and sock.remote is None:
            sock.remote = endpoint_key(sc.args.get("addr"))
            self._index(sock)
        return sock

    # -- identity ------------------------------------------------------------------------

    def _new(self, kind: str) -> Socket:
        sock = Socket(id=len(self.sockets), kind=kind)
        self.sockets.append(sock)
        return sock

    def _find(self, info: FdInfo) -> Socket | None:
        """An open socket this fdinfo names (a descriptor inherited without a fork record)."""
        if info.inode is not None and info.inode in self._by_inode:
            return self._by_inode[info.inode]
        local, remote = endpoint_key(info.local), endpoint_key(info.remote)
        if local is not None and remote is not None:
            return self._by_tuple.get((_family(info.kind), local, remote))
        return None

    @staticmethod
    def _conflicts(sock: Socket, info: FdInfo) -> bool:
        if info.inode is not None and sock.inode is not None and info.inode != sock.inode:
            return True
        remote = endpoint_key(info.remote)
        return remote is not None and sock.remote is not None and remote != sock.remote

    def _update(self, sock: Socket, info: FdInfo) -> None:
        if sock.kind == "socket" and info.kind in _SOCKET_KINDS:
            sock.kind = info.kind
        if info.inode is not None and sock.inode is None:
            sock.inode = info.inode
        local, remote = endpoint_key(info.local), endpoint_key(info.remote)
        if local is not None and (sock.local is None or is_wildcard(sock.local[0]) or sock.local[1] == 0):
            sock.local = local
        if remote is not None and sock.remote is None:
            sock.remote = remote
        self._index(sock)

    def _learn(self, sock: Socket, sc: Syscall) -> None:
        """Endpoints a call states in its arguments (connect's target, bind's address)."""
        name = sc.name
        if name == "connect" and sock.remote is None:
            sock.remote = endpoint_key(sc.args.get("addr"))
        elif name == "bind" and sc.ret == 0 and sock.local is None:
            local = endpoint_key(sc.args.get("addr"))
            if local is not None and local[1]:
                sock.local = local
        elif name == "listen" and sc.ret == 0:
            sock.listening = True
        if sc.fdinfo is not None:
            self._update(sock, sc.fdinfo)
        self._index(sock)

    @staticmethod
    def _tuple_key(sock: Socket) -> tuple[str, Endpoint, Endpoint] | None:
        if sock.local is None or sock.remote is None:
            return None
        return (_family(sock.kind), sock.local, sock.remote)

    def _index(self, sock: Socket) -> None:
        if sock.closed:
            return
        if sock.inode is not None:
            self._by_inode.setdefault(sock.inode, sock)
        key = self._tuple_key(sock)
        if key is not None:
            self._by_tuple.setdefault(key, sock)


def _family(kind: str) -> str:
    """tcp and tcp6 sockets share one 4-tuple space once mapped addresses are folded."""
    return "udp" if kind.startswith("udp") else "tcp"


_ENDED = frozenset({CLOSED, RESET, TIME_WAIT})


def _ended_ns(conn: Connection) -> int | None:
    """When the connection was over on the wire: one side closed, reset or in TIME_WAIT."""
    ends = [ts for ts, _, state in conn.client_state + conn.server_state if state in _ENDED]
    return min(ends) if ends else None


def _kind_from_args(sc: Syscall) -> str:
    sock_type = str(sc.args.get("type", ""))
    domain = str(sc.args.get("domain", ""))
    suffix = "6" if domain == "AF_INET6" else ""
    if domain in ("AF_INET", "AF_INET6"):
        if "SOCK_STREAM" in sock_type:
            return "tcp" + suffix
        if "SOCK_DGRAM" in sock_type:
            return "udp" + suffix
    if sc.name in ("accept", "accept4"):
        return "tcp"
    return "unix" if domain == "AF_UNIX" else "socket"


class ConnectionIndex:
    """Connections by endpoints, in order of first packet, for identity lookups."""

    __slots__ = ("_by_pair", "_by_server", "_count")

    def __init__(self) -> None:
        self._by_pair: dict[tuple[str, Endpoint, Endpoint], list[Connection]] = {}
        self._by_server: dict[tuple[str, Endpoint], list[Connection]] = {}
        self._count = 0

    def sync(self, connections: list[Connection]) -> None:
        """Index connections the analyzer added since the last call."""
        for conn in connections[self._count :]:
            family = "udp" if conn.proto == "udp" else "tcp"
            client = (conn.client_addr, conn.client_port)
            server = (conn.server_addr, conn.server_port)
            self._by_pair.setdefault((family, client, server), []).append(conn)
            self._by_pair.setdefault((family, server, client), []).append(conn)
            self._by_server.setdefault((family, server), []).append(conn)
        self._count = len(connections)

    def lookup(self, sock: Socket, since_ns: int, taken: Container[tuple[int, int]]) -> tuple[Connection, int] | None:
        """The connection of sock's 4-tuple, and sock's side (0 client, 1 server).

        The earliest connection on the tuple that had not ended by `since_ns` (the
        entry of the socket's first call) and is not bound on that side to another socket
        (`taken` holds (connection id, side) pairs). Entry times are what a trace gets
        right: strace stamps a call when it stops at entry, which is never after the call
        began, while its exit (entry + -T) can be early by the tracee's scheduling delay.
        Port reuse gives several connections per tuple; an older one has ended (or belongs
        to the older socket) by the time the newer socket makes its first call.
        """
        local, remote = sock.local, sock.remote
        if local is None or remote is None:
            return None
        family = _family(sock.kind)
        if is_wildcard(local[0]):
            # A socket that connect()ed without bind keeps a wildcard address once the
            # connection is gone (refused): only its port is known, and it is the client.
            conns = [c for c in self._by_server.get((family, remote), ()) if c.client_port == local[1]]
        else:
            conns = self._by_pair.get((family, local, remote), [])
        for conn in conns:
            side = 0 if (conn.client_addr, conn.client_port) == local or is_wildcard(local[0]) else 1
            ended = _ended_ns(conn)
            if (ended is None or ended >= since_ns) and (conn.id, side) not in taken:
                return conn, side
        return None

    def connects_to(self, family: str, server: Endpoint, since_ns: int) -> list[Connection]:
        """Connections to `server` that began at or after since_ns, oldest first: for a
        connect() whose local port the trace never showed (refused, or closed at once)."""
        return [c for c in self._by_server.get((family, server), ()) if c.first_ts_ns >= since_ns]
