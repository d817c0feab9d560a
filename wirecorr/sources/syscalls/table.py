"""Syscall numbers of the recorded set, per architecture, keyed by the AUDIT_ARCH value.

Only the recorded set is listed: the seccomp filter is built from it, and a number missing
here is by definition a syscall wirecorr lets through untouched. Arguments are not read from
registers by convention per arch: PTRACE_GET_SYSCALL_INFO hands over number, six arguments
and return value arch-independently, so the register layout lives in the kernel, not here.
"""

from __future__ import annotations

import platform

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7

# fmt: off
X86_64: dict[int, str] = {
    0: "read", 1: "write", 3: "close", 7: "poll", 16: "ioctl", 17: "pread64", 18: "pwrite64",
    19: "readv", 20: "writev", 23: "select", 32: "dup", 33: "dup2", 40: "sendfile", 41: "socket",
    42: "connect", 43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg",
    48: "shutdown", 49: "bind", 50: "listen", 51: "getsockname", 52: "getpeername",
    53: "socketpair", 54: "setsockopt", 55: "getsockopt", 60: "exit", 72: "fcntl",
    213: "epoll_create", 231: "exit_group", 232: "epoll_wait", 233: "epoll_ctl", 270: "pselect6",
    271: "ppoll", 275: "splice", 281: "epoll_pwait", 288: "accept4", 291: "epoll_create1",
    292: "dup3", 299: "recvmmsg", 307: "sendmmsg", 436: "close_range", 441: "epoll_pwait2",
}

# The generic table (asm-generic/unistd.h): no poll, select, dup2, epoll_wait or epoll_create.
AARCH64: dict[int, str] = {
    20: "epoll_create1", 21: "epoll_ctl", 22: "epoll_pwait", 23: "dup", 24: "dup3", 25: "fcntl",
    29: "ioctl", 57: "close", 63: "read", 64: "write", 65: "readv", 66: "writev", 67: "pread64",
    68: "pwrite64", 71: "sendfile", 72: "pselect6", 73: "ppoll", 76: "splice", 93: "exit",
    94: "exit_group", 198: "socket", 199: "socketpair", 200: "bind", 201: "listen", 202: "accept",
    203: "connect", 204: "getsockname", 205: "getpeername", 206: "sendto", 207: "recvfrom",
    208: "setsockopt", 209: "getsockopt", 210: "shutdown", 211: "sendmsg", 212: "recvmsg",
    242: "accept4", 243: "recvmmsg", 269: "sendmmsg", 436: "close_range", 441: "epoll_pwait2",
}
# fmt: on


BY_ARCH: dict[int, dict[int, str]] = {AUDIT_ARCH_X86_64: X86_64, AUDIT_ARCH_AARCH64: AARCH64}

_MACHINES = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}


def native_arch() -> int | None:
    """AUDIT_ARCH of this machine, or None where wirecorr has no table (the tracer refuses)."""
    return _MACHINES.get(platform.machine())
