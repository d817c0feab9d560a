"""setsockopt/getsockopt: level and option names, and option values decoded by type.

Most options are an int; SO_LINGER is {onoff, linger}, SO_ERROR an errno name, timeouts a
timeval, TCP_CONGESTION a string. Anything else keeps its raw bytes as hex so the record
stays JSON-ready without guessing.
"""

from __future__ import annotations

import struct

from wirecorr.model import Syscall
from wirecorr.sources.syscalls import consts
from wirecorr.sources.syscalls.base import Args, Decoders, Tracee, read_u32, s32, set_fd

SOL_SOCKET = 1
SOL_TCP = 6
SO_ERROR = 4
SO_LINGER = 13
_TIMEVALS = {20, 21, 66, 67}
TCP_CONGESTION = 13
TCP_ULP = 31
OPTVAL_MAX = 256


def _value(level: int, optname: int, raw: bytes) -> object:
    if level == SOL_SOCKET and optname == SO_LINGER and len(raw) >= 8:
        onoff, linger = struct.unpack_from("=ii", raw)
        return {"onoff": onoff, "linger": linger}
    if level == SOL_SOCKET and optname in _TIMEVALS and len(raw) >= 16:
        sec, usec = struct.unpack_from("=qq", raw)
        return {"tv_sec": sec, "tv_usec": usec}
    if level == SOL_TCP and optname in (TCP_CONGESTION, TCP_ULP):
        return raw.split(b"\0", 1)[0].decode("ascii", "replace")
    if len(raw) == 4:
        value = struct.unpack("=i", raw)[0]
        if level == SOL_SOCKET and optname == SO_ERROR and value:
            return consts.errno_name(value)
        return value
    return raw.hex()


def _common(call: Syscall, a: Args, t: Tracee) -> tuple[int, int]:
    set_fd(call, t, s32(a[0]))
    level, optname = s32(a[1]), s32(a[2])
    call.args["level"] = consts.name(level, consts.SOL)
    call.args["optname"] = consts.name(optname, consts.OPTNAMES_BY_LEVEL.get(level, {}))
    return level, optname


def _set_enter(call: Syscall, a: Args, t: Tracee) -> None:
    level, optname = _common(call, a, t)
    length = s32(a[4])
    call.args["optlen"] = length
    if a[3] and length > 0:
        call.args["optval"] = _value(level, optname, t.read(a[3], min(length, OPTVAL_MAX)))
    else:
        call.args["optval"] = None


def _get_enter(call: Syscall, a: Args, t: Tracee) -> None:
    _common(call, a, t)


def _get_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret != 0:
        return
    length = read_u32(t, a[4]) or 0
    call.args["optlen"] = length
    raw = t.read(a[3], min(length, OPTVAL_MAX)) if a[3] and length else b""
    call.args["optval"] = _value(s32(a[1]), s32(a[2]), raw)


DECODERS: Decoders = {
    "setsockopt": (_set_enter, None),
    "getsockopt": (_get_enter, _get_exit),
}
