"""`-yy` fd decorations (`5<TCP:[1.2.3.4:5->6.7.8.9:80]>`) as the FdInfo the tracer reports."""

from __future__ import annotations

import re

from wirecorr.model import FdInfo
from wirecorr.sources.strace_log.grammar import as_text, int_or_none, unescape

_SOCK_DECO = re.compile(r"([A-Z][A-Z0-9-]*?)(v6)?:\[(.*)\]\Z", re.S)
_DEVICE_SUFFIX = re.compile(r"<(?:char|block) \d+:\d+>\Z")
_SOCKET_KINDS = {"TCP": "tcp", "UDP": "udp", "UDPLITE": "udp", "NETLINK": "netlink", "RAW": "raw", "PING": "raw"}
_fdinfo_cache: dict[str, tuple[str, str | None, str | None, str | None, int | None]] = {}


def fdinfo(deco: str) -> FdInfo:
    """FdInfo from an -yy decoration. Decorations repeat on every call of an fd, hence the cache."""
    hit = _fdinfo_cache.get(deco)
    if hit is None:
        hit = _decode_deco(deco)
        if len(_fdinfo_cache) < 100_000:
            _fdinfo_cache[deco] = hit
    return FdInfo(*hit)


def _decode_deco(deco: str) -> tuple[str, str | None, str | None, str | None, int | None]:
    m = _SOCK_DECO.match(deco)
    if m is not None:
        proto, v6, body = m.groups()
        if proto.startswith("UNIX"):
            inode, _, path = body.partition(",")
            inode = inode.split("->")[0]
            return ("unix", None, None, as_text(unescape(path.strip('"'))) if path else None, int_or_none(inode))
        kind = _SOCKET_KINDS.get(proto)
        if kind in ("tcp", "udp"):
            kind += "6" if v6 else ""
            if body.isdecimal():
                return (kind, None, None, None, int(body))
            local, _, remote = body.partition("->")
            return (kind, local, remote or None, None, None)
        return (kind or "socket", None, None, None, int_or_none(body.rpartition(":")[2]))
    if deco.startswith(("socket:[", "pipe:[")):
        kind, _, rest = deco.partition(":[")
        return (kind, None, None, None, int_or_none(rest.rstrip("]")))
    if deco.startswith("anon_inode:"):
        return ("anon", None, None, deco, None)
    if deco.startswith("/"):
        path = _DEVICE_SUFFIX.sub("", deco)
        tty = path.startswith(("/dev/pts/", "/dev/tty", "/dev/console"))
        return ("tty" if tty else "file", None, None, path, None)
    return ("unknown", None, None, deco, None)
