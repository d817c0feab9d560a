"""One line per syscall, close to what `strace -yy` prints, so strace users read it at once."""

from __future__ import annotations

from wirecorr.model import FdInfo, Syscall
from wirecorr.vocab import SOCKET_CALLS


def format_fd(fd: int, info: FdInfo | None) -> str:
    if info is None:
        return str(fd)
    if info.local or info.remote:
        inner = f"{info.local or '?'}->{info.remote}" if info.remote else f"{info.local}"
        return f"{fd}<{info.kind.upper()}:[{inner}]>"
    if info.path:
        return f"{fd}<{info.path}>"
    return f"{fd}<{info.kind}>"


def _value(value: object) -> str:
    if isinstance(value, str) and not value.isupper() and ("." in value or ":" in value or "/" in value):
        return value
    if isinstance(value, bytes):
        return repr(value)[1:]
    return str(value)


def format_syscall(sc: Syscall) -> str:
    args = []
    for key, value in sc.args.items():
        if key == "fd" and sc.fd is not None:
            args.append(format_fd(sc.fd, sc.fdinfo))
        elif key != "raw":
            args.append(f"{key}={_value(value)}")
    if "fd" not in sc.args and sc.fd is not None:
        args.insert(0, format_fd(sc.fd, sc.fdinfo))
    if sc.data is not None and sc.nbytes:
        shown = sc.data[:32]
        args.append(repr(shown)[1:] + ("…" if sc.nbytes > len(shown) else ""))
    if sc.ret is None:
        result = "?"
    elif sc.errno:
        result = f"-1 {sc.errno}"
    elif sc.ret_fdinfo is not None:
        result = format_fd(sc.ret, sc.ret_fdinfo)
    else:
        result = str(sc.ret)
    return f"{sc.name}({', '.join(args)}) = {result}"


def is_network(sc: Syscall) -> bool:
    """Worth showing in a network report: socket calls, and any call on a socket fd."""
    if sc.name in SOCKET_CALLS:
        return True
    return any(info is not None and info.is_socket for info in (sc.fdinfo, sc.ret_fdinfo))
