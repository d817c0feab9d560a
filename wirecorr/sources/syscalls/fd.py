"""Descriptor bookkeeping calls: close, close_range, dup*, fcntl, ioctl (and exit, exit_group).

Besides decoding, these keep the fd table true: a closed fd is dropped, a duplicate
inherits the original's FdInfo, so later data calls on either number resolve without /proc.
"""

from __future__ import annotations

from wirecorr.model import Syscall
from wirecorr.sources.syscalls import consts
from wirecorr.sources.syscalls.base import Args, Decoders, Tracee, read_int, s32, set_fd


def _close_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))


def _close_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret == 0 and call.fd is not None:
        t.fds.drop(call.fd)


def _close_range_enter(call: Syscall, a: Args, t: Tracee) -> None:
    call.args.update(first=a[0] & 0xFFFFFFFF, last=a[1] & 0xFFFFFFFF, flags=consts.flags(a[2], consts.CLOSE_RANGE))


def _close_range_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret == 0 and not a[2] & consts.CLOSE_RANGE_CLOEXEC:
        t.fds.drop_range(a[0] & 0xFFFFFFFF, a[1] & 0xFFFFFFFF)


def _dup_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]), key="oldfd")


def _dup2_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]), key="oldfd")
    call.args["newfd"] = s32(a[1])


def _dup3_enter(call: Syscall, a: Args, t: Tracee) -> None:
    _dup2_enter(call, a, t)
    call.args["flags"] = consts.flags(s32(a[2]), consts.O_CLOEXEC)


def _dup_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret is not None and call.ret >= 0 and call.fd is not None:
        call.ret_fdinfo = t.fds.dup(call.fd, call.ret)


def _fcntl_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))
    cmd = s32(a[1])
    call.args["cmd"] = consts.name(cmd, consts.F_CMD)
    if cmd == 4:  # F_SETFL
        call.args["arg"] = consts.open_flags(s32(a[2]))
    elif cmd == 2:  # F_SETFD
        call.args["arg"] = consts.flags(s32(a[2]), consts.FD_FLAGS)
    elif cmd in (consts.F_DUPFD, consts.F_DUPFD_CLOEXEC) or cmd in (8, 10, 1024, 1031, 1033):
        call.args["arg"] = s32(a[2])


def _fcntl_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if s32(a[1]) in (consts.F_DUPFD, consts.F_DUPFD_CLOEXEC):
        _dup_exit(call, a, t)


def _ioctl_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))
    request = a[1] & 0xFFFFFFFF
    call.args["request"] = consts.name(request, consts.IOCTL) if request in consts.IOCTL else hex(request)
    if request == consts.FIONBIO:
        call.args["arg"] = read_int(t, a[2])


def _ioctl_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret == 0 and a[1] & 0xFFFFFFFF == consts.FIONREAD:
        call.args["arg"] = read_int(t, a[2])


def _exit_enter(call: Syscall, a: Args, t: Tracee) -> None:
    call.args["status"] = s32(a[0])


DECODERS: Decoders = {
    "close": (_close_enter, _close_exit),
    "close_range": (_close_range_enter, _close_range_exit),
    "dup": (_dup_enter, _dup_exit),
    "dup2": (_dup2_enter, _dup_exit),
    "dup3": (_dup3_enter, _dup_exit),
    "fcntl": (_fcntl_enter, _fcntl_exit),
    "ioctl": (_ioctl_enter, _ioctl_exit),
    "exit": (_exit_enter, None),
    "exit_group": (_exit_enter, None),
}
