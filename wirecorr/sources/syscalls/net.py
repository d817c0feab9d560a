"""Socket lifecycle calls: socket, socketpair, bind, listen, connect, accept(4), get*name, shutdown.

For bind, listen and connect `fdinfo` is taken at exit, after the fd table refreshed the
socket: those calls change what the socket is, and its new identity (the 4-tuple a SYN
carries) is what the correlator pairs with packets.
"""

from __future__ import annotations

import dataclasses

from wirecorr.model import Syscall
from wirecorr.sources.syscalls import consts
from wirecorr.sources.syscalls.base import Args, Decoders, Tracee, read_int, read_sockaddr, read_u32, s32, set_fd


def _socket_enter(call: Syscall, a: Args, t: Tracee) -> None:
    domain, kind = s32(a[0]), s32(a[1])
    call.args.update(
        domain=consts.name(domain, consts.AF), type=consts.sock_type(kind), protocol=consts.protocol(domain, s32(a[2]))
    )


def _socket_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret is not None and call.ret >= 0:
        call.ret_fdinfo = t.fds.created_socket(call.ret, s32(a[0]), s32(a[1]))


def _socketpair_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret != 0:
        return
    pair = [read_int(t, a[3]), read_int(t, a[3] + 4)]
    call.args["sv"] = pair
    for fd in pair:
        if fd is not None:
            info = t.fds.created_socket(fd, s32(a[0]), s32(a[1]))
            call.ret_fdinfo = call.ret_fdinfo or info


def _addr_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))
    call.args["addr"] = read_sockaddr(t, a[1], s32(a[2]))
    call.args["addrlen"] = s32(a[2])


def _refresh_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret == 0 and call.fd is not None:
        call.fdinfo = t.fds.refresh(call.fd) or call.fdinfo


def _connect_exit(call: Syscall, a: Args, t: Tracee) -> None:
    """Keep the target as remote even when the kernel no longer reports one (refused, in progress)."""
    if call.fd is None:
        return
    before = call.fdinfo
    info = t.fds.refresh(call.fd) or before
    remote = call.args.get("addr")
    if info is not None and info.remote is None and isinstance(remote, str):
        local = info.local or (before.local if before is not None else None)
        info = dataclasses.replace(info, remote=remote, local=local)
        t.fds.put(call.fd, info)
    call.fdinfo = info


def _listen_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))
    call.args["backlog"] = s32(a[1])


def _accept4_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))
    call.args["flags"] = consts.flags(s32(a[3]), consts.SOCK_FLAGS)


def _accept_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))


def _accept_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret is None or call.ret < 0:
        return
    if a[1]:
        call.args["addr"] = read_sockaddr(t, a[1], read_u32(t, a[2]) or 0)
    call.ret_fdinfo = t.fds.refresh(call.ret)


def _name_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret == 0:
        call.args["addr"] = read_sockaddr(t, a[1], read_u32(t, a[2]) or 0)


def _shutdown_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))
    call.args["how"] = consts.name(s32(a[1]), consts.SHUT)


DECODERS: Decoders = {
    "socket": (_socket_enter, _socket_exit),
    "socketpair": (_socket_enter, _socketpair_exit),
    "bind": (_addr_enter, _refresh_exit),
    "listen": (_listen_enter, _refresh_exit),
    "connect": (_addr_enter, _connect_exit),
    "accept": (_accept_enter, _accept_exit),
    "accept4": (_accept4_enter, _accept_exit),
    "getsockname": (_accept_enter, _name_exit),
    "getpeername": (_accept_enter, _name_exit),
    "shutdown": (_shutdown_enter, None),
}
