"""The tracer's event loop: one blocking waitpid(-1, __WALL) per event, dispatch, restart.

python-ptrace's PtraceDebugger.waitSyscall() polls each process with sleeps in between,
which costs ~30x with two or more processes; this loop blocks in the kernel instead and
spends per stop one waitpid, one PTRACE_GET_SYSCALL_INFO, the decoder and one restart.

Launched commands run under a seccomp filter (see seccomp.py): recorded syscalls arrive as
PTRACE_EVENT_SECCOMP at entry, are restarted with PTRACE_SYSCALL to catch their exit, then
PTRACE_CONT; everything else never stops. Attached processes have no filter and run under
PTRACE_SYSCALL, their unrecorded syscalls dropped after a dict lookup.

All tracees are PTRACE_SEIZEd so group-stops can be left in place with PTRACE_LISTEN (a
SIGSTOP'd tracee really stops, SIGCONT resumes it) and PTRACE_INTERRUPT can stop a
running tracee for detaching.

waitpid uses __WNOTHREAD: only children of the thread that calls spawn/attach/run (which
must be the same thread, ptrace requires it) are reaped, never those of other threads.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator

from ptrace import PtraceError
from ptrace.binding.func import ptrace_cont, ptrace_detach, ptrace_geteventmsg

from wirecorr.model import Syscall
from wirecorr.sources.syscalls import DECODERS, Decoder
from wirecorr.sources.syscalls.consts import errno_name
from wirecorr.sources.syscalls.table import BY_ARCH, native_arch
from wirecorr.sources.tracer import ptrace_ext as px
from wirecorr.sources.tracer.fdtable import FdTable
from wirecorr.sources.tracer.launch import EXIT_NOT_FOUND, TraceError, fork_child
from wirecorr.sources.tracer.seccomp import Filter

OnSyscall = Callable[[Syscall], None]
OnProcess = Callable[[str, int, "int | None"], None]
Entry = tuple[str, Decoder | None, Decoder | None]

_STOP_SIGNALS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
_SYSCALL_TRAP = signal.SIGTRAP | 0x80
_WAIT = px.WALL | px.WNOTHREAD
_NONE: dict[int, Entry] = {}
# How long launched (seccomp-filtered) commands may run on after stop() before SIGKILL.
STOP_GRACE_S = 2.0


def shell_status(status: int) -> int:
    """A wait status the way a shell reports it: the exit code, or 128 + signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class _Proc:
    """A traced process (thread group): what decoders see as the `Tracee`."""

    __slots__ = ("_mem", "data_bytes", "fds", "filtered", "pid", "threads")

    def __init__(self, pid: int, fds: FdTable, data_bytes: int, filtered: bool) -> None:
        self.pid = pid
        self.fds = fds
        self.data_bytes = data_bytes
        self.filtered = filtered
        self.threads = 0
        self._mem: int | None = None

    def read(self, addr: int, size: int) -> bytes:
        """pread on /proc/PID/mem: one syscall, ~3x cheaper than process_vm_readv via ctypes."""
        try:
            if self._mem is None:
                self._mem = os.open(f"/proc/{self.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
            return os.pread(self._mem, size, addr)
        except (OSError, OverflowError):
            return b""

    def exec_done(self) -> None:
        """A new program image: the old /proc/PID/mem handle reads nothing any more."""
        self._close_mem()
        self.fds.forget_all()

    def close(self) -> None:
        self._close_mem()
        self.fds.close()

    def _close_mem(self) -> None:
        if self._mem is not None:
            os.close(self._mem)
            self._mem = None


class _Thread:
    __slots__ = ("args", "call", "exit", "proc", "tid")

    def __init__(self, tid: int, proc: _Proc) -> None:
        self.tid = tid
        self.proc = proc
        self.call: Syscall | None = None
        self.args: tuple[int, ...] = ()
        self.exit: Decoder | None = None


class Tracer:
    """Traces launched or attached processes and reports each recorded syscall at its exit."""

    def __init__(self, on_syscall: OnSyscall, *, data_bytes: int = 64, on_process: OnProcess | None = None) -> None:
        arch = native_arch()
        if arch is None:
            raise TraceError("syscall tracing supports x86_64 and aarch64 only")
        self._arch = arch
        self._on_syscall = on_syscall
        self._on_process = on_process or (lambda event, pid, info: None)
        self._data_bytes = max(0, data_bytes)
        self._dispatch: dict[int, dict[int, Entry]] = {
            audit: {nr: (name, *DECODERS[name]) for nr, name in table.items()} for audit, table in BY_ARCH.items()
        }
        self._info = px.SyscallInfo()
        self._ids = itertools.count(1)
        self._threads: dict[int, _Thread] = {}
        self._procs: dict[int, _Proc] = {}
        self._root: int | None = None
        self._root_status: int | None = None
        self._stopping = False
        self._waker: int | None = None
        self._kill_at: float | None = None

    # -- public API -----------------------------------------------------------------

    def spawn(self, argv: list[str], *, user: str | None = None, env: dict[str, str] | None = None) -> int:
        """Start CMD under the seccomp filter; returns its pid once it has exec'd."""
        flt = Filter(self._arch, list(BY_ARCH[self._arch]))
        pid, go = fork_child(argv, user=user, env=env, flt=flt)
        try:
            px.seize(pid, px.OPTIONS | px.PTRACE_O_TRACESECCOMP | px.PTRACE_O_EXITKILL)
        except PtraceError as exc:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TraceError(_ptrace_problem(pid, exc)) from None
        finally:
            os.write(go, b"g")
            os.close(go)
        self._await_exec(pid, argv[0])
        filtered = _seccomp_mode(pid) == 2
        proc = self._add_proc(pid, FdTable(pid), filtered)
        thread = self._add_thread(pid, proc)
        self._root = pid
        self._on_process("spawn", pid, None)
        self._restart(thread)
        return pid

    def attach(self, pids: list[int]) -> None:
        """Seize every thread of each pid and interrupt it so syscall tracing can begin."""
        for pid in pids:
            if not os.path.isdir(f"/proc/{pid}/task"):
                raise TraceError(f"no such process: {pid}")
            proc = self._add_proc(pid, FdTable(pid), filtered=False)
            seen: set[int] = set()
            for _ in range(100):  # threads may be created while we seize; stop when none are new
                try:
                    tids = {int(name) for name in os.listdir(f"/proc/{pid}/task")} - seen
                except FileNotFoundError:
                    raise TraceError(f"no such process: {pid}") from None
                if not tids:
                    break
                for tid in sorted(tids):
                    seen.add(tid)
                    self._seize_thread(pid, tid, proc)
            if proc.threads == 0:
                del self._procs[pid]
                raise TraceError(f"no such process: {pid}")
            self._on_process("attach", pid, None)

    def run(self) -> int:
        """Trace until every tracee is gone or stop() is called; returns CMD's shell-style status."""
        self._start_waker()
        try:
            self._loop()
        finally:
            try:
                self._detach_all()
            finally:
                self._end_waker()
        if self._root_status is not None:
            return self._root_status
        return 0

    def stop(self) -> None:
        """Ask run() to detach and return. Safe from a signal handler or another thread."""
        self._stopping = True
        waker = self._waker
        if waker is not None:
            with contextlib.suppress(OSError):
                os.kill(waker, signal.SIGKILL)

    # -- the hot loop -----------------------------------------------------------------

    def _loop(self) -> None:
        threads = self._threads
        waitpid = os.waitpid
        clock = time.time_ns
        info = self._info
        while threads and not self._stopping:
            try:
                tid, status = waitpid(-1, _WAIT)
            except ChildProcessError:
                return
            now = clock()
            if status & 0xFF != 0x7F:
                self._gone(tid, status)
                continue
            sig = (status >> 8) & 0xFF
            event = status >> 16
            if event == px.PTRACE_EVENT_EXEC:
                with _unless_gone():
                    self._exec(tid)
                continue
            thread = threads.get(tid) or self._adopt(tid)
            if sig == _SYSCALL_TRAP or event == px.PTRACE_EVENT_SECCOMP:
                op = info.fetch(tid)
                if op < 0:
                    continue
                done = self._exit(thread, now) if op == px.SYSCALL_INFO_EXIT else self._enter(thread, now)
                self._restart(thread)
                if done is not None:
                    self._on_syscall(done)  # after the restart: the callback is off the tracee's path
            elif event:
                with _unless_gone():
                    self._event(thread, event, sig)
            else:
                self._restart(thread, sig)  # signal-delivery-stop: deliver it

    def _enter(self, thread: _Thread, now: int) -> Syscall | None:
        info = self._info.entry()
        entry = self._dispatch.get(info[1], _NONE).get(info[2])
        if entry is None:
            return None
        name, enter, exit_ = entry
        call = Syscall(next(self._ids), thread.proc.pid, thread.tid, name, now)
        args = info[3:]
        if enter is not None:
            enter(call, args, thread.proc)
        thread.call = call
        thread.args = args
        thread.exit = exit_
        return None

    def _exit(self, thread: _Thread, now: int) -> Syscall | None:
        """Complete the pending call; the caller reports it once the thread runs again."""
        call = thread.call
        if call is None:
            return None
        thread.call = None
        _, _, rval, is_error = self._info.exit()
        call.exit_ns = now
        if is_error:
            call.ret = -1
            call.errno = errno_name(-rval)
        else:
            call.ret = rval
        if thread.exit is not None:
            thread.exit(call, thread.args, thread.proc)
        return call

    def _restart(self, thread: _Thread, sig: int = 0) -> None:
        """PTRACE_CONT where the filter will stop us at the next recorded call, else PTRACE_SYSCALL."""
        if thread.proc.filtered and thread.call is None:
            px.resume(px.PTRACE_CONT, thread.tid, sig)
        else:
            px.resume(px.PTRACE_SYSCALL, thread.tid, sig)

    # -- process and thread lifecycle -------------------------------------------------

    def _event(self, thread: _Thread, event: int, sig: int) -> None:
        if event in (px.PTRACE_EVENT_FORK, px.PTRACE_EVENT_VFORK, px.PTRACE_EVENT_CLONE):
            child = ptrace_geteventmsg(thread.tid)
            if child not in self._threads:
                self._new_child(thread.proc, child, event == px.PTRACE_EVENT_CLONE)
        elif event == px.PTRACE_EVENT_STOP and sig in _STOP_SIGNALS:
            px.listen(thread.tid)  # group-stop: stay stopped until SIGCONT, as if untraced
            return
        self._restart(thread)

    def _new_child(self, parent: _Proc, child: int, maybe_thread: bool) -> _Thread:
        if maybe_thread and _status_field(child, "Tgid") == parent.pid:
            return self._add_thread(child, parent)
        proc = self._add_proc(child, parent.fds.copy(child), parent.filtered)
        self._on_process("fork", child, parent.pid)
        if proc.filtered and self._kill_at is not None and time.monotonic() >= self._kill_at:
            self._kill_filtered()
        return self._add_thread(child, proc)

    def _adopt(self, tid: int) -> _Thread:
        """A new tracee whose first stop arrived before its parent's fork/clone event."""
        tgid = _status_field(tid, "Tgid")
        if tgid in self._procs:
            return self._add_thread(tid, self._procs[tgid])
        parent = self._procs.get(_status_field(tid, "PPid") or -1)
        if parent is None:
            parent = _Proc(0, FdTable(tid), self._data_bytes, filtered=False)
        return self._new_child(parent, tid, maybe_thread=False)

    def _exec(self, tid: int) -> None:
        """PTRACE_EVENT_EXEC: a non-leader that execs takes over the leader's tid."""
        former = ptrace_geteventmsg(tid)
        if former != tid and former in self._threads:
            leader = self._threads.pop(tid, None)
            if leader is not None:
                leader.proc.threads -= 1
                self._unfinished(leader)
            thread = self._threads.pop(former)
            thread.tid = tid
            self._threads[tid] = thread
        thread = self._threads.get(tid) or self._adopt(tid)
        thread.proc.exec_done()
        self._on_process("exec", thread.proc.pid, None)
        self._restart(thread)

    def _gone(self, tid: int, status: int) -> None:
        if tid == self._waker:
            self._waker = None
            return
        thread = self._threads.pop(tid, None)
        if thread is None:
            return
        self._unfinished(thread)
        self._forget(thread)
        if tid == thread.proc.pid:
            code = shell_status(status)
            if tid == self._root:
                self._root_status = code
            self._on_process("exit", tid, code)

    def _unfinished(self, thread: _Thread) -> None:
        """The thread died (or is detached) inside a recorded call: report what we have."""
        call = thread.call
        if call is not None:
            thread.call = None
            self._on_syscall(call)

    def _forget(self, thread: _Thread) -> None:
        proc = thread.proc
        proc.threads -= 1
        if proc.threads <= 0 and self._procs.get(proc.pid) is proc:
            del self._procs[proc.pid]
            proc.close()

    def _add_proc(self, pid: int, fds: FdTable, filtered: bool) -> _Proc:
        proc = _Proc(pid, fds, self._data_bytes, filtered)
        self._procs[pid] = proc
        return proc

    def _add_thread(self, tid: int, proc: _Proc) -> _Thread:
        thread = _Thread(tid, proc)
        proc.threads += 1
        self._threads[tid] = thread
        return thread

    def _seize_thread(self, pid: int, tid: int, proc: _Proc) -> None:
        try:
            px.seize(tid, px.OPTIONS)
            px.interrupt(tid)
        except PtraceError as exc:
            if exc.errno == errno.ESRCH:
                return  # the thread exited meanwhile
            raise TraceError(_ptrace_problem(pid, exc)) from None
        self._add_thread(tid, proc)

    def _await_exec(self, pid: int, name: str) -> None:
        """Let the seized child run to its exec; an exit first means exec failed."""
        while True:
            _, status = os.waitpid(pid, px.WALL)
            if status & 0xFF != 0x7F:
                code = shell_status(status)
                what = "command not found" if code == EXIT_NOT_FOUND else "cannot execute"
                raise TraceError(f"{name}: {what}", code)
            sig, event = (status >> 8) & 0xFF, status >> 16
            if event == px.PTRACE_EVENT_EXEC:
                return
            ptrace_cont(pid, 0 if event or sig == _SYSCALL_TRAP else sig)

    # -- stopping -----------------------------------------------------------------------

    def _start_waker(self) -> None:
        """A child that exists only to be killed by stop(): its exit ends the blocking waitpid.

        waitpid cannot time out and a signal handler cannot interrupt it (PEP 475 retries),
        and stop() may come from another thread that cannot issue ptrace requests.
        """
        sleep = shutil.which("sleep") or "/bin/sleep"
        self._waker = os.posix_spawn(sleep, ["sleep", "infinity"], dict(os.environ), setpgroup=0)
        if self._stopping:
            self.stop()

    def _end_waker(self) -> None:
        waker, self._waker = self._waker, None
        if waker is not None:
            with contextlib.suppress(OSError):
                os.kill(waker, signal.SIGKILL)
                os.waitpid(waker, 0)

    def _detach_all(self) -> None:
        """Detach attached tracees (left running, or stopped if they were); end launched ones.

        A launched command carries the seccomp filter and would get ENOSYS from every
        recorded syscall once detached, so it runs on unrecorded for STOP_GRACE_S (it got the
        user's Ctrl-C too) and is then killed, as strace --seccomp-bpf does.
        """
        for thread in self._threads.values():
            self._unfinished(thread)
        self._on_syscall = _drop
        if any(proc.filtered for proc in self._procs.values()):
            self._kill_at = time.monotonic() + STOP_GRACE_S
            timer = threading.Timer(STOP_GRACE_S, self._kill_filtered)
            timer.daemon = True
            timer.start()
        else:
            timer = None
        for thread in list(self._threads.values()):
            if not thread.proc.filtered:
                with contextlib.suppress(PtraceError):
                    px.interrupt(thread.tid)
        try:
            self._drain()
        finally:
            if timer is not None:
                timer.cancel()

    def _drain(self) -> None:
        while self._threads:
            try:
                tid, status = os.waitpid(-1, _WAIT)
            except ChildProcessError:
                return
            if status & 0xFF != 0x7F:
                self._gone(tid, status)
                continue
            sig, event = (status >> 8) & 0xFF, status >> 16
            if event == px.PTRACE_EVENT_EXEC:
                self._exec(tid)
                continue
            thread = self._threads.get(tid) or self._adopt(tid)
            with contextlib.suppress(PtraceError):
                if thread.proc.filtered:
                    if event:
                        self._event(thread, event, sig)
                    else:
                        self._restart(thread, 0 if sig == _SYSCALL_TRAP else sig)
                    continue
                if event in (px.PTRACE_EVENT_FORK, px.PTRACE_EVENT_VFORK, px.PTRACE_EVENT_CLONE):
                    child = ptrace_geteventmsg(tid)
                    if child not in self._threads:
                        self._new_child(thread.proc, child, event == px.PTRACE_EVENT_CLONE)
                deliver = sig if not event and sig != _SYSCALL_TRAP else 0
                ptrace_detach(tid, deliver)
            self._threads.pop(tid, None)
            self._unfinished(thread)
            self._forget(thread)

    def _kill_filtered(self) -> None:
        for proc in list(self._procs.values()):
            if proc.filtered:
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def _unless_gone() -> Iterator[None]:
    """A tracee killed while stopped fails requests with ESRCH; its exit report follows."""
    try:
        yield
    except PtraceError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _drop(call: Syscall) -> None:
    """on_syscall after stop(): nothing is recorded any more."""


def _status_field(tid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{tid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _seccomp_mode(pid: int) -> int | None:
    return _status_field(pid, "Seccomp")


def _ptrace_problem(pid: int, exc: PtraceError) -> str:
    if exc.errno == errno.EPERM:
        return (
            f"cannot trace process {pid}: operation not permitted (needs CAP_SYS_PTRACE, or "
            "kernel.yama.ptrace_scope forbids it; a process already traced by strace/gdb cannot be traced)"
        )
    if exc.errno == errno.ESRCH:
        return f"no such process: {pid}"
    return f"cannot trace process {pid}: {os.strerror(exc.errno or 0)}"
