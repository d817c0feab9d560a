"""Start a command under the tracer: fork, wait to be seized, install the filter, exec.

The child blocks on a pipe until the parent has PTRACE_SEIZEd it, so the tracer is in
place before the seccomp filter exists (a SECCOMP_RET_TRACE without a tracer fails the
syscall with ENOSYS) and before exec (so the exec event is seen). Between fork and exec
the child makes only untraced syscalls (read of the pipe, signal resets, prctl, set*id,
execve); everything it needs is prepared before the fork. The filter goes in before
`--user` drops privileges: still root, the child needs no no_new_privs for it, so setuid
programs the command runs keep their privilege as they would without wirecorr. Python ignores SIGPIPE and
SIGXFSZ and exec keeps ignored signals ignored, so the child restores them as subprocess
does, or the command would see EPIPE where it normally dies.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import signal
from dataclasses import dataclass

from wirecorr.errors import EXIT_BAD_INPUT, WirecorrError
from wirecorr.sources.tracer.seccomp import Filter

EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXECUTE = 126


class TraceError(WirecorrError):
    """A tracing problem the user can act on (no such process, no permission, no command).

    Exit status 2 as for the other things given wrong or missing (docs/record.md), except
    a command that cannot be run, which exits as a shell would (127, 126).
    """

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class _Identity:
    name: str
    uid: int
    gid: int
    groups: list[int]
    home: str


def resolve_command(argv: list[str], env: dict[str, str]) -> str:
    """The executable's path, as a shell would find it; TraceError (exit 127/126) if none."""
    if not argv:
        raise TraceError("no command given", EXIT_NOT_FOUND)
    name = argv[0]
    path = name if "/" in name else shutil.which(name, path=env.get("PATH", os.defpath))
    if path is None or not os.path.exists(path):
        raise TraceError(f"{name}: command not found", EXIT_NOT_FOUND)
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise TraceError(f"{name}: permission denied (not an executable file)", EXIT_CANNOT_EXECUTE)
    return path


def _identity(user: str | None) -> _Identity | None:
    if user is None:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise TraceError(f"no such user: {user}") from None
    return _Identity(entry.pw_name, entry.pw_uid, entry.pw_gid, os.getgrouplist(user, entry.pw_gid), entry.pw_dir)


def user_environment(environ: dict[str, str], ident: _Identity | None) -> dict[str, str]:
    """The environment CMD gets: as given, with HOME, USER and LOGNAME of `--user` as su sets them."""
    if ident is None:
        return environ
    return environ | {"HOME": ident.home, "USER": ident.name, "LOGNAME": ident.name}


def fork_child(argv: list[str], *, user: str | None, env: dict[str, str] | None, flt: Filter | None) -> tuple[int, int]:
    """Fork the command, stopped before exec; returns (pid, go_fd): write a byte to go_fd once seized."""
    ident = _identity(user)
    environ = user_environment(dict(os.environ) if env is None else env, ident)
    path = resolve_command(argv, environ)
    go_read, go_write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only execs or exits
        code = EXIT_CANNOT_EXECUTE
        try:
            os.read(go_read, 1)
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(sig, signal.SIG_DFL)
            if flt is not None:
                flt.install()
            if ident is not None:
                os.setgroups(ident.groups)
                os.setgid(ident.gid)
                os.setuid(ident.uid)
            os.execve(path, argv, environ)
        except OSError as exc:
            code = EXIT_NOT_FOUND if exc.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE
        finally:
            os._exit(code)
    os.close(go_read)
    return pid, go_write
