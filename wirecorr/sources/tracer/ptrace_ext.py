"""The ptrace requests and options python-ptrace 0.9.9 does not define, on its own binding.

PTRACE_SEIZE/INTERRUPT/LISTEN give group-stops that behave as untraced (a SIGSTOP'd tracee
really stops, SIGCONT resumes it) and a way to stop a running tracee for detaching;
PTRACE_GET_SYSCALL_INFO (Linux 5.3) tells entry from exit and hands over the syscall number,
arguments and return value without per-architecture register layouts.
"""

from __future__ import annotations

import ctypes
import errno
import struct

from ptrace import PtraceError
from ptrace.binding.func import ptrace

PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_GET_SYSCALL_INFO = 0x420E
PTRACE_CONT = 7
PTRACE_SYSCALL = 24

PTRACE_O_TRACESYSGOOD = 0x1
PTRACE_O_TRACEFORK = 0x2
PTRACE_O_TRACEVFORK = 0x4
PTRACE_O_TRACECLONE = 0x8
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_SECCOMP = 7
PTRACE_EVENT_STOP = 128

SYSCALL_INFO_ENTRY = 1
SYSCALL_INFO_EXIT = 2
SYSCALL_INFO_SECCOMP = 3

WALL = 0x40000000  # __WALL: threads too
WNOTHREAD = 0x20000000  # __WNOTHREAD: only children of the calling thread

OPTIONS = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC

# struct ptrace_syscall_info: op, pad, arch, ip, sp, then the entry/seccomp or exit union.
_INFO_SIZE = 88
_OP = struct.Struct("=B")
_ENTRY = struct.Struct("=B3xI16xQ6Q")
_EXIT = struct.Struct("=B3xI16xqB")


# The per-stop requests (get info, restart) skip python-ptrace's wrapper: it converts and
# re-checks the result in Python on every call, ~0.4 µs that sit on the tracee's critical path.
# No argtypes either: converting four arguments through them cost another 0.7 µs a call
# (bench/RESULTS.md). Callers pass small ints, which ctypes hands over as C ints and libffi
# widens to the full register glibc's variadic ptrace() reads, and buffer addresses as
# prepared c_void_p objects.
_libc = ctypes.CDLL(None, use_errno=True)
_raw = _libc.ptrace
_raw.restype = ctypes.c_long


def resume(request: int, tid: int, sig: int) -> bool:
    """PTRACE_CONT or PTRACE_SYSCALL; False when the thread is gone (its exit report follows)."""
    if _raw(request, tid, 0, sig) < 0:
        return _gone(request, tid)
    return True


def _gone(request: int, tid: int) -> bool:
    code = ctypes.get_errno()
    if code == errno.ESRCH:
        return False
    raise PtraceError(f"ptrace({request:#x}, {tid}) failed: {errno.errorcode.get(code, code)}", errno=code, pid=tid)


def seize(pid: int, options: int) -> None:
    ptrace(PTRACE_SEIZE, pid, 0, options)


def interrupt(pid: int) -> None:
    ptrace(PTRACE_INTERRUPT, pid)


def listen(pid: int) -> None:
    ptrace(PTRACE_LISTEN, pid)


class SyscallInfo:
    """One reusable buffer for PTRACE_GET_SYSCALL_INFO: no allocation per stop."""

    __slots__ = ("_addr", "_buf")

    def __init__(self) -> None:
        self._buf = ctypes.create_string_buffer(_INFO_SIZE)
        self._addr = ctypes.c_void_p(ctypes.addressof(self._buf))

    def fetch(self, tid: int) -> int:
        """Fill the buffer for a stopped thread; returns the op (entry, exit, seccomp, none), -1 if it is gone."""
        if _raw(PTRACE_GET_SYSCALL_INFO, tid, _INFO_SIZE, self._addr) < 0:
            _gone(PTRACE_GET_SYSCALL_INFO, tid)
            return -1
        return _OP.unpack_from(self._buf)[0]

    def entry(self) -> tuple[int, ...]:
        """(op, arch, nr, arg0..arg5) of an entry or seccomp stop."""
        return _ENTRY.unpack_from(self._buf)

    def exit(self) -> tuple[int, ...]:
        """(op, arch, rval, is_error) of an exit stop."""
        return _EXIT.unpack_from(self._buf)
