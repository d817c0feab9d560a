"""The seccomp-bpf filter that makes unrecorded syscalls free for a launched command.

The filter returns SECCOMP_RET_TRACE for the recorded syscalls (the tracer gets a
PTRACE_EVENT_SECCOMP stop at their entry) and SECCOMP_RET_ALLOW for everything else, so
a getppid() costs nothing. Syscalls of another ABI (i386 via int 0x80 on x86_64) are let
through: their numbers mean other calls.

Caveat the tracer must respect: with the filter installed and no tracer attached, every
recorded syscall fails with ENOSYS, so a filtered process may never be detached and left
running (strace --seccomp-bpf implies --kill-on-exit for the same reason).
"""

from __future__ import annotations

import ctypes
import errno
import struct

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_TRACE = 0x7FF00000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
X32_SYSCALL_BIT = 0x40000000

# Classic BPF opcodes used here.
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
# Offsets in struct seccomp_data.
_NR = 0
_ARCH = 4

_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def build(arch: int, numbers: list[int]) -> bytes:
    """The BPF program: wrong arch or x32 → allow; a recorded number → trace; else allow."""
    numbers = sorted(set(numbers))
    count = len(numbers)
    if count > 250:
        raise ValueError("too many syscalls for 8-bit jump offsets")
    insns = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 0, count + 2, arch),  # to ALLOW
        (_LD_W_ABS, 0, 0, _NR),
        (_JGE_K, count, 0, X32_SYSCALL_BIT),  # x32 numbers: to ALLOW
    ]
    insns += [(_JEQ_K, count - i, 0, nr) for i, nr in enumerate(numbers)]  # to TRACE
    insns += [(_RET_K, 0, 0, SECCOMP_RET_ALLOW), (_RET_K, 0, 0, SECCOMP_RET_TRACE)]
    return b"".join(struct.pack("=HBBI", *insn) for insn in insns)


class Filter:
    """A filter prepared in the parent so the forked child only makes two prctl calls.

    Everything that allocates (the program buffer, the ctypes structure, the function
    pointer) happens here, before fork; `install` is the async-signal-safe-ish part.
    """

    def __init__(self, arch: int, numbers: list[int]) -> None:
        program = build(arch, numbers)
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._prog = _SockFprog(len(program) // 8, ctypes.addressof(self._buffer))
        self._prog_addr = ctypes.addressof(self._prog)

    def install(self) -> int:
        """In the child: 0 on success, else the errno.

        With CAP_SYS_ADMIN (wirecorr as root, before `--user` drops privileges) the kernel
        takes the filter as it is; only without it does it demand no_new_privs, which would
        also take setuid programs (ping, su, sudo) their privilege, so that is the fallback.
        The child goes on to exec either way; the tracer reads the outcome from
        /proc/PID/status (`Seccomp: 2`) and traces an unfiltered child with PTRACE_SYSCALL.
        """
        prog = ctypes.c_void_p(self._prog_addr)
        if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) == 0:
            return 0
        if ctypes.get_errno() != errno.EACCES:
            return ctypes.get_errno()
        if _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return ctypes.get_errno()
        if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) != 0:
            return ctypes.get_errno()
        return 0
