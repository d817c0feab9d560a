"""Readiness calls: poll, ppoll, select, pselect6 and the epoll family.

Interest sets are decoded at entry and readiness at exit, because the kernel overwrites
the same memory (revents, fd_sets) on the way out. epoll_wait results carry the user's
opaque `data`; the fd table remembers which fd each epoll_ctl registered under which data
so the returned events name their fd whenever the program registered it here.
"""

from __future__ import annotations

import platform
import struct

from wirecorr.model import Syscall
from wirecorr.sources.syscalls import consts
from wirecorr.sources.syscalls.base import Args, Decoders, Tracee, s32, set_fd, timespec

_POLLFD = struct.Struct("=ihh")
# struct epoll_event is packed on x86_64 only.
_EPOLL_EVENT = struct.Struct("=IQ" if platform.machine() == "x86_64" else "=I4xQ")
NFDS_MAX = 1024
FD_SETSIZE = 1024


def _pollfds(t: Tracee, addr: int, nfds: int) -> list[tuple[int, int, int]]:
    nfds = max(0, min(nfds, NFDS_MAX))
    raw = t.read(addr, nfds * _POLLFD.size) if addr and nfds else b""
    return [_POLLFD.unpack_from(raw, off) for off in range(0, len(raw) - _POLLFD.size + 1, _POLLFD.size)]


def _poll_enter(call: Syscall, a: Args, t: Tracee) -> None:
    nfds = a[1] & 0xFFFFFFFF
    call.args["fds"] = [
        {"fd": fd, "events": consts.flags(ev & 0xFFFF, consts.POLL)} for fd, ev, _ in _pollfds(t, a[0], nfds)
    ]
    call.args["nfds"] = nfds


def _poll_timeout(call: Syscall, a: Args, t: Tracee) -> None:
    _poll_enter(call, a, t)
    call.args["timeout"] = s32(a[2])


def _ppoll_enter(call: Syscall, a: Args, t: Tracee) -> None:
    _poll_enter(call, a, t)
    call.args["timeout"] = timespec(t, a[2])


def _poll_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret is None or call.ret <= 0:
        return
    entries = call.args.get("fds")
    if not isinstance(entries, list):
        return
    for entry, (_, _, revents) in zip(entries, _pollfds(t, a[0], len(entries)), strict=False):
        if revents:
            entry["revents"] = consts.flags(revents & 0xFFFF, consts.POLL)


def _fdset(t: Tracee, addr: int, nfds: int) -> list[int] | None:
    if not addr:
        return None
    nfds = max(0, min(nfds, FD_SETSIZE))
    raw = t.read(addr, ((nfds + 63) // 64) * 8)
    bits = int.from_bytes(raw, "little")
    return [fd for fd in range(min(nfds, len(raw) * 8)) if bits >> fd & 1]


def _select_enter(call: Syscall, a: Args, t: Tracee) -> None:
    nfds = s32(a[0])
    call.args["nfds"] = nfds
    for key, addr in (("readfds", a[1]), ("writefds", a[2]), ("exceptfds", a[3])):
        call.args[key] = _fdset(t, addr, nfds)
    call.args["timeout"] = timespec(t, a[4], usec=call.name == "select")


def _select_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret is None or call.ret <= 0:
        return
    nfds = s32(a[0])
    ready = {key: _fdset(t, addr, nfds) for key, addr in (("in", a[1]), ("out", a[2]), ("except", a[3]))}
    call.args["ready"] = {key: fds for key, fds in ready.items() if fds}


def _epoll_create1_enter(call: Syscall, a: Args, t: Tracee) -> None:
    call.args["flags"] = consts.flags(s32(a[0]), consts.EPOLL_CLOEXEC)


def _epoll_create_enter(call: Syscall, a: Args, t: Tracee) -> None:
    call.args["size"] = s32(a[0])


def _epoll_create_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret is not None and call.ret >= 0:
        call.ret_fdinfo = t.fds.refresh(call.ret)


def _epoll_ctl_enter(call: Syscall, a: Args, t: Tracee) -> None:
    """`fd` is the registered descriptor (usually the socket); the epoll instance is `epfd`."""
    call.args["epfd"] = s32(a[0])
    call.args["op"] = consts.name(s32(a[1]), consts.EPOLL_CTL)
    set_fd(call, t, s32(a[2]))
    raw = t.read(a[3], _EPOLL_EVENT.size) if a[3] else b""
    if len(raw) == _EPOLL_EVENT.size:
        events, data = _EPOLL_EVENT.unpack(raw)
        call.args["events"] = consts.flags(events, consts.EPOLL)
        call.args["data"] = data


def _epoll_ctl_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret != 0:
        return
    epfd, op, fd = s32(a[0]), s32(a[1]), s32(a[2])
    data = call.args.get("data")
    if op == 2:
        t.fds.epoll_forget(epfd, fd)
    elif isinstance(data, int):
        t.fds.epoll_register(epfd, fd, data)


def _epoll_wait_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]), key="epfd")
    call.args["maxevents"] = s32(a[2])
    if call.name == "epoll_pwait2":
        call.args["timeout"] = timespec(t, a[3])
    else:
        call.args["timeout"] = s32(a[3])


def _epoll_wait_exit(call: Syscall, a: Args, t: Tracee) -> None:
    count = call.ret
    if count is None or count <= 0 or call.fd is None:
        return
    raw = t.read(a[1], min(count, NFDS_MAX) * _EPOLL_EVENT.size)
    events: list[dict[str, object]] = []
    for off in range(0, len(raw) - _EPOLL_EVENT.size + 1, _EPOLL_EVENT.size):
        mask, data = _EPOLL_EVENT.unpack_from(raw, off)
        entry: dict[str, object] = {"events": consts.flags(mask, consts.EPOLL), "data": data}
        fd = t.fds.epoll_lookup(call.fd, data)
        if fd is not None:
            entry["fd"] = fd
        events.append(entry)
    call.args["events"] = events


DECODERS: Decoders = {
    "poll": (_poll_timeout, _poll_exit),
    "ppoll": (_ppoll_enter, _poll_exit),
    "select": (_select_enter, _select_exit),
    "pselect6": (_select_enter, _select_exit),
    "epoll_create": (_epoll_create_enter, _epoll_create_exit),
    "epoll_create1": (_epoll_create1_enter, _epoll_create_exit),
    "epoll_ctl": (_epoll_ctl_enter, _epoll_ctl_exit),
    "epoll_wait": (_epoll_wait_enter, _epoll_wait_exit),
    "epoll_pwait": (_epoll_wait_enter, _epoll_wait_exit),
    "epoll_pwait2": (_epoll_wait_enter, _epoll_wait_exit),
}
