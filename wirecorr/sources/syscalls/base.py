"""What a decoder sees of a stopped tracee, and the helpers every family shares.

Decoders are plain functions `enter(call, args, tracee)` and `exit(call, args, tracee)`
filling a `Syscall`; `args` are the six raw argument words. Keeping the interface this
small lets the hot loop dispatch through one dict lookup per stop.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from wirecorr.model import Syscall
from wirecorr.sources.syscalls import sockaddr

if TYPE_CHECKING:
    from wirecorr.sources.tracer.fdtable import FdTable

Args = tuple[int, ...]
_I32 = struct.Struct("=i")
_U32 = struct.Struct("=I")
_IOVEC = struct.Struct("=QQ")
IOV_MAX = 1024
SOCKADDR_MAX = 128


class Tracee(Protocol):
    """A stopped process: its memory, its descriptors, and how much payload to keep."""

    pid: int
    fds: FdTable
    data_bytes: int

    def read(self, addr: int, size: int) -> bytes:
        """Up to `size` bytes at `addr`; short or empty when the memory is not readable."""
        ...


Decoder = Callable[[Syscall, Args, Tracee], None]
Decoders = dict[str, tuple[Decoder | None, Decoder | None]]


def s32(word: int) -> int:
    """A register word as the C `int` it carries (fds, flags, timeouts)."""
    word &= 0xFFFFFFFF
    return word - 0x100000000 if word & 0x80000000 else word


def set_fd(call: Syscall, tracee: Tracee, fd: int, key: str = "fd") -> None:
    """Record the descriptor a call acts on and what it is right now."""
    call.args[key] = fd
    call.fd = fd
    call.fdinfo = tracee.fds.get(fd)


def bound_by_send(call: Syscall, tracee: Tracee) -> None:
    """A datagram sent from an unbound socket bound it: re-identify so the call shows its source port."""
    info = call.fdinfo
    if call.fd is not None and info is not None and info.local is None and info.is_socket and call.errno is None:
        call.fdinfo = tracee.fds.refresh(call.fd) or info


def read_int(tracee: Tracee, addr: int) -> int | None:
    """The `int` behind a pointer argument, None for NULL or unreadable memory."""
    if not addr:
        return None
    raw = tracee.read(addr, 4)
    return _I32.unpack(raw)[0] if len(raw) == 4 else None


def read_u32(tracee: Tracee, addr: int) -> int | None:
    """As read_int, unsigned (socklen_t)."""
    if not addr:
        return None
    raw = tracee.read(addr, 4)
    return _U32.unpack(raw)[0] if len(raw) == 4 else None


def read_sockaddr(tracee: Tracee, addr: int, length: int) -> str | None:
    """Endpoint string of a sockaddr of `length` bytes in the tracee."""
    if not addr or length <= 0:
        return None
    return sockaddr.decode(tracee.read(addr, min(length, SOCKADDR_MAX)))


def read_iovecs(tracee: Tracee, addr: int, count: int) -> list[tuple[int, int]]:
    """(base, len) of an iovec array, capped at IOV_MAX entries."""
    count = max(0, min(count, IOV_MAX))
    raw = tracee.read(addr, count * _IOVEC.size) if addr and count else b""
    return [_IOVEC.unpack_from(raw, off) for off in range(0, len(raw) - _IOVEC.size + 1, _IOVEC.size)]


def gather(tracee: Tracee, iovecs: list[tuple[int, int]], moved: int) -> bytes:
    """The first `data_bytes` of the `moved` bytes scattered over `iovecs`."""
    want = min(moved, tracee.data_bytes)
    parts: list[bytes] = []
    for base, length in iovecs:
        if want <= 0:
            break
        take = min(length, want)
        if take:
            parts.append(tracee.read(base, take))
            want -= take
    return b"".join(parts)


def moved(call: Syscall, tracee: Tracee, buf: int) -> None:
    """For a data call that succeeded: bytes moved, and the first of them from `buf`."""
    ret = call.ret
    if ret is not None and ret > 0:
        call.nbytes = ret
        if tracee.data_bytes:
            call.data = tracee.read(buf, min(ret, tracee.data_bytes))


def timespec(tracee: Tracee, addr: int, usec: bool = False) -> dict[str, int] | None:
    """A struct timespec (or timeval) pointer argument as strace's {tv_sec, tv_nsec}."""
    if not addr:
        return None
    raw = tracee.read(addr, 16)
    if len(raw) < 16:
        return None
    sec, frac = struct.unpack("=qq", raw)
    return {"tv_sec": sec, "tv_usec" if usec else "tv_nsec": frac}
