"""Data calls: read/write and their vector, positional, socket and zero-copy variants.

`count` is what the program asked for, `nbytes` what moved (the return value), `data` the
first `data_bytes` of it, read at exit from the buffer the kernel filled or drained, using
the returned length so a short write shows exactly the bytes that left. A datagram sent
from an unbound socket binds it; such a call's `fdinfo` is the socket after that implicit
bind, so the datagram's source port is on the record.
"""

from __future__ import annotations

import struct

from wirecorr.model import Syscall
from wirecorr.sources.syscalls import consts
from wirecorr.sources.syscalls.base import (
    Args,
    Decoders,
    Tracee,
    bound_by_send,
    gather,
    moved,
    read_iovecs,
    read_sockaddr,
    read_u32,
    s32,
    set_fd,
    timespec,
)

# struct msghdr on LP64: name, namelen(+pad), iov, iovlen, control, controllen, flags(+pad).
_MSGHDR = struct.Struct("=QI4xQQQQi4x")
# struct mmsghdr: a msghdr then msg_len (+pad).
_MMSGHDR = struct.Struct("=QI4xQQQQi4xI4x")
MMSG_MAX = 1024


def _rw_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))
    call.args["count"] = a[2]


def _rw_exit(call: Syscall, a: Args, t: Tracee) -> None:
    moved(call, t, a[1])


def _prw_enter(call: Syscall, a: Args, t: Tracee) -> None:
    _rw_enter(call, a, t)
    call.args["offset"] = a[3]


def _rwv_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))
    call.args["iovcnt"] = s32(a[2])


def _rwv_exit(call: Syscall, a: Args, t: Tracee) -> None:
    ret = call.ret
    if ret is not None and ret > 0:
        call.nbytes = ret
        if t.data_bytes:
            call.data = gather(t, read_iovecs(t, a[1], s32(a[2])), ret)


def _sendto_enter(call: Syscall, a: Args, t: Tracee) -> None:
    _rw_enter(call, a, t)
    call.args["flags"] = consts.flags(s32(a[3]), consts.MSG)
    if a[4]:
        call.args["addr"] = read_sockaddr(t, a[4], s32(a[5]))


def _send_exit(call: Syscall, a: Args, t: Tracee) -> None:
    bound_by_send(call, t)
    moved(call, t, a[1])


def _recvfrom_enter(call: Syscall, a: Args, t: Tracee) -> None:
    """glibc's recv() is recvfrom(): its flags (MSG_PEEK above all) decide whether bytes were consumed."""
    _rw_enter(call, a, t)
    call.args["flags"] = consts.flags(s32(a[3]), consts.MSG)


def _recvfrom_exit(call: Syscall, a: Args, t: Tracee) -> None:
    moved(call, t, a[1])
    if call.ret is not None and call.ret >= 0 and a[4]:
        call.args["addr"] = read_sockaddr(t, a[4], read_u32(t, a[5]) or 0)


def _msg_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))
    call.args["flags"] = consts.flags(s32(a[2]), consts.MSG)


def _msghdr(call: Syscall, t: Tracee, raw: bytes, offset: int, ret: int) -> tuple[bytes, int]:
    """Record a msghdr's address (the first one seen); return the first bytes moved and the bytes asked for."""
    name, namelen, iov, iovlen = _MSGHDR.unpack_from(raw, offset)[:4]
    iovecs = read_iovecs(t, iov, iovlen)
    if name and "addr" not in call.args:
        call.args["addr"] = read_sockaddr(t, name, namelen)
    data = gather(t, iovecs, ret) if t.data_bytes and ret > 0 else b""
    return data, sum(length for _, length in iovecs)


def _msg_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.name == "sendmsg":
        bound_by_send(call, t)
    raw = t.read(a[1], _MSGHDR.size)
    if call.ret is None or call.ret < 0 or len(raw) < _MSGHDR.size:
        return
    data, call.args["count"] = _msghdr(call, t, raw, 0, call.ret)
    call.nbytes = call.ret
    call.data = data if t.data_bytes else None


def _mmsg_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]))
    call.args["vlen"] = s32(a[2])
    call.args["flags"] = consts.flags(s32(a[3]), consts.MSG)


def _recvmmsg_enter(call: Syscall, a: Args, t: Tracee) -> None:
    _mmsg_enter(call, a, t)
    call.args["timeout"] = timespec(t, a[4])


def _mmsg_exit(call: Syscall, a: Args, t: Tracee) -> None:
    count = call.ret
    if count is None or count <= 0:
        return
    if call.name == "sendmmsg":
        bound_by_send(call, t)
    raw = t.read(a[1], min(count, MMSG_MAX) * _MMSGHDR.size)
    lens: list[int] = []
    data: list[bytes] = []
    want = t.data_bytes
    for offset in range(0, len(raw) - _MMSGHDR.size + 1, _MMSGHDR.size):
        length = _MMSGHDR.unpack_from(raw, offset)[7]
        lens.append(length)
        part = _msghdr(call, t, raw, offset, min(length, want))[0]
        want -= len(part)
        data.append(part)
    call.msg_lens = lens
    call.nbytes = sum(lens)
    call.data = b"".join(data) if t.data_bytes else None


def _sendfile_enter(call: Syscall, a: Args, t: Tracee) -> None:
    set_fd(call, t, s32(a[0]), key="out_fd")
    call.args["in_fd"] = s32(a[1])
    call.args["count"] = a[3]


def _splice_enter(call: Syscall, a: Args, t: Tracee) -> None:
    """The socket end is the one the correlator cares about: fd_out, unless only fd_in is one."""
    fd_in, fd_out = s32(a[0]), s32(a[2])
    call.args.update(fd_in=fd_in, fd_out=fd_out, len=a[4])
    out_info = t.fds.get(fd_out)
    in_info = t.fds.get(fd_in)
    if in_info is not None and in_info.is_socket and not (out_info is not None and out_info.is_socket):
        call.fd, call.fdinfo = fd_in, in_info
    else:
        call.fd, call.fdinfo = fd_out, out_info


def _count_exit(call: Syscall, a: Args, t: Tracee) -> None:
    if call.ret is not None and call.ret > 0:
        call.nbytes = call.ret


DECODERS: Decoders = {
    "read": (_rw_enter, _rw_exit),
    "write": (_rw_enter, _rw_exit),
    "pread64": (_prw_enter, _rw_exit),
    "pwrite64": (_prw_enter, _rw_exit),
    "readv": (_rwv_enter, _rwv_exit),
    "writev": (_rwv_enter, _rwv_exit),
    "sendto": (_sendto_enter, _send_exit),
    "recvfrom": (_recvfrom_enter, _recvfrom_exit),
    "sendmsg": (_msg_enter, _msg_exit),
    "recvmsg": (_msg_enter, _msg_exit),
    "sendmmsg": (_mmsg_enter, _mmsg_exit),
    "recvmmsg": (_recvmmsg_enter, _mmsg_exit),
    "sendfile": (_sendfile_enter, _count_exit),
    "splice": (_splice_enter, _count_exit),
}
