"""sockaddr decoding into the endpoint strings the rest of wirecorr keys on.

IPv4 is `1.2.3.4:80`, IPv6 `[::1]:80` (v4-mapped addresses stay in their IPv6 form, as
strace prints them), a unix path as is and an abstract unix name as `@name`.
"""

from __future__ import annotations

import socket
import struct

from wirecorr.sources.syscalls.consts import AF

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10


def endpoint(ip: str, port: int) -> str:
    """`ip:port`, bracketing IPv6 so the port separator stays unambiguous."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def unix_path(raw: bytes) -> str | None:
    """sun_path bytes: None for an unnamed socket, `@name` for the abstract namespace."""
    if not raw:
        return None
    if raw[0] == 0:
        return "@" + raw[1:].decode("utf-8", "backslashreplace")
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def decode(raw: bytes) -> str | None:
    """The endpoint a sockaddr names; other families render as their AF name."""
    if len(raw) < 2:
        return None
    family = struct.unpack_from("=H", raw)[0]
    if family == AF_INET and len(raw) >= 8:
        return endpoint(socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack_from("!H", raw, 2)[0])
    if family == AF_INET6 and len(raw) >= 24:
        return endpoint(socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack_from("!H", raw, 2)[0])
    if family == AF_UNIX:
        return unix_path(raw[2:])
    return str(AF.get(family, family))
