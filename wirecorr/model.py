"""The vocabulary of wirecorr (docs/architecture.md): Packet, Syscall, FdInfo, Link, Finding.

Packet and Syscall are the hot event types: plain slotted dataclasses, cheap to build in
the decode loop and never kept by the thousand longer than the engine needs them (the
engine keeps per-packet results in columnar arrays and re-decodes a packet from its file
offset when a view asks for it).

Addresses on packets stay raw bytes (4 or 16 bytes) because hashing bytes is cheap and
formatting every address of a million packets is not; `format_ip` renders them for people.
Syscall endpoints are already strings ("127.0.0.1:4444", "[::1]:4444") because syscalls
are few and are read by people and JSON far more often than they are hashed.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from dataclasses import dataclass, field

# TCP flag bits as on the wire (RFC 793 + RFC 3168), so `flags & SYN` works on the raw byte.
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58


def format_ip(addr: bytes) -> str:
    """Render a raw 4- or 16-byte address the way tcpdump and tshark print it."""
    if len(addr) == 4:
        return socket.inet_ntop(socket.AF_INET, addr)
    return socket.inet_ntop(socket.AF_INET6, addr)


def format_endpoint(addr: bytes, port: int) -> str:
    """`1.2.3.4:80` or `[::1]:80`: the bracket form keeps IPv6 colons unambiguous."""
    text = format_ip(addr)
    return f"[{text}]:{port}" if len(addr) == 16 else f"{text}:{port}"


@functools.lru_cache(maxsize=65536)
def parse_endpoint(text: str) -> tuple[bytes, int]:
    """Inverse of `format_endpoint`, so syscall endpoints can be matched against packets.

    Cached: a trace names the same few endpoints on every call of a connection, and
    `ipaddress` parsing costs microseconds each time.
    """
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    return ipaddress.ip_address(host).packed, int(port)


def fmt_ns(ns: int | None) -> str:
    """A duration in the unit people read fastest at its size, the same in every report,
    finding and view ("-" when unknown)."""
    if ns is None:
        return "-"
    if ns < 1_000:
        return f"{ns} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.3f} ms"
    return f"{ns / 1_000_000_000:.3f} s"


_FLAG_LETTERS = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (URG, "U"), (ECE, "E"), (CWR, "W"))


def format_flags(flags: int) -> str:
    """tcpdump's compact flag notation: S, F, R, P, U, E, W and '.' for ACK."""
    out = "".join(ch for bit, ch in _FLAG_LETTERS if flags & bit)
    if flags & ACK:
        out += "."
    return out or "none"


@dataclass(slots=True)
class Packet:
    """One captured frame, decoded down to the transport header.

    `index` is the 0-based frame position in its source (Wireshark's frame.number - 1) and
    `offset` the byte offset of its record in the file, so a view can re-read it exactly.
    Fields of layers the frame does not have keep their defaults (0 / None).
    """

    index: int
    ts_ns: int
    offset: int
    caplen: int
    wirelen: int
    iface: int = 0
    ip_version: int = 0
    src: bytes = b""
    dst: bytes = b""
    proto: int = 0
    sport: int = 0
    dport: int = 0
    # TCP
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 0
    # TCP / UDP payload length as the headers state it (tcp.len, udp payload), not the captured part.
    payload_len: int = 0
    # TCP options, None when absent.
    mss: int | None = None
    wscale: int | None = None
    sack_perm: bool = False
    ts_val: int | None = None
    ts_ecr: int | None = None
    sack: tuple[tuple[int, int], ...] | None = None
    tfo_cookie: bytes | None = None
    # ICMP / ICMPv6 errors: type, code and the flow of the quoted datagram
    # (proto, src, sport, dst, dport) as the original sender saw it.
    icmp_type: int | None = None
    icmp_code: int | None = None
    quoted: tuple[int, bytes, int, bytes, int] | None = None
    # The frame bytes and where the transport payload starts in them (captured bytes only).
    frame: bytes = b""
    payload_offset: int = 0
    comment: str | None = None

    @property
    def payload(self) -> bytes:
        return self.frame[self.payload_offset : self.payload_offset + self.payload_len]

    @property
    def flow(self) -> tuple[bytes, int, bytes, int]:
        return (self.src, self.sport, self.dst, self.dport)


@dataclass(slots=True)
class FdInfo:
    """What a file descriptor is, as strace -yy would print it.

    kind: "tcp", "tcp6", "udp", "udp6", "unix", "netlink", "raw", "file", "pipe", "tty",
    "anon", "socket" (a socket whose protocol is not known yet) or "unknown".
    """

    kind: str
    local: str | None = None
    remote: str | None = None
    path: str | None = None
    inode: int | None = None

    @property
    def is_socket(self) -> bool:
        return self.kind in {"tcp", "tcp6", "udp", "udp6", "unix", "netlink", "raw", "socket"}


@dataclass(slots=True)
class Syscall:
    """One system call of one thread, entry to exit.

    `args` is JSON-ready: numbers, strings with names for flags/constants
    ("SOCK_STREAM|SOCK_NONBLOCK"), endpoints as "ip:port". `fd` is the descriptor the call
    acts on and `fdinfo` what it was at the call; `ret_fdinfo` describes a descriptor the
    call created (socket, accept4, dup). `exit_ns`/`ret` stay None when the thread died
    inside the call. `nbytes` counts bytes moved by data calls; `data` keeps their first
    bytes (the tracer's --data-bytes). `msg_lens` lists per-message sizes of
    sendmmsg/recvmmsg and per-datagram sizes where a call moves several.
    """

    id: int
    pid: int
    tid: int
    name: str
    enter_ns: int
    args: dict[str, object] = field(default_factory=dict)
    exit_ns: int | None = None
    ret: int | None = None
    errno: str | None = None
    fd: int | None = None
    fdinfo: FdInfo | None = None
    ret_fdinfo: FdInfo | None = None
    nbytes: int | None = None
    data: bytes | None = None
    msg_lens: list[int] | None = None

    @property
    def failed(self) -> bool:
        return self.errno is not None

    @property
    def end_ns(self) -> int:
        """When the call ended: its exit, or its entry when the thread died inside it."""
        return self.exit_ns if self.exit_ns is not None else self.enter_ns


@dataclass(slots=True)
class Link:
    """A syscall paired with the packets it caused or consumed (docs/architecture.md, pairing rules)."""

    id: int
    kind: str
    syscall: int
    packets: list[int]
    delay_ns: int | None = None
    note: str | None = None


@dataclass(slots=True)
class Finding:
    """A diagnosis with the events that support it."""

    kind: str
    severity: str
    message: str
    connection: int | None = None
    evidence: dict[str, list[int]] = field(default_factory=dict)
