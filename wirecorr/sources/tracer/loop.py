"""The tracer's event loop: one blocking waitpid(-1, __WALL) per event, dispatch, restart.

python-ptrace's PtraceDebugger.waitSyscall() polls each process with sleeps in between,
which costs ~30x with two or more processes; this loop blocks in the kernel instead and
spends per stop one waitpid, one PTRACE_GET_SYSCALL_INFO, the decoder and one restart.
Those stops run compiled for the data calls (wirecorr/_core/tracer.pyx, `_loop_core`),
which return here only for what needs Python (`_handle`); WIRECORR_PURE=1 runs this
module's own loop, the reference.

Launched commands run under a seccomp filter (see seccomp.py): recorded syscalls arrive as
PTRACE_EVENT_SECCOMP at entry, are restarted with PTRACE_SYSCALL to catch their exit, then
PTRACE_CONT; everything else never stops. Attached processes have no filter and run under
PTRACE_SYSCALL, their unrecorded syscalls dropped after a dict lookup.

All tracees are PTRACE_SEIZEd so group-stops can be left in place with PTRACE_LISTEN (a
SIGSTOP'd tracee really stops, SIGCONT resumes it) and PTRACE_INTERRUPT can stop a
running tracee for detaching.

waitpid uses __WNOTHREAD: only children of the thread that calls spawn/attach/run (which
must be the same thread, ptrace requires it) are reaped, never those of other threads.

The kernel reports a new task's first stop, its parent's fork/clone event and the task's
exit in any order (it scans the newest tracees first, so a busy child can live and die
before its parent's event is read). A task is therefore added by whichever of its first
stop or its creation event comes first and removed only by its own exit (or exec, or
detach); a task gone before its creation event was read is remembered in `_vanished`, so
the late event does not bring it back as a tracee that will never report again.

The blocking waitpid is woken by a waker child (see `_start_waker`) that exits when a byte
arrives on a pipe: stop() writes one, and so does a watchdog thread when none of the tasks
the loop waits for is still traced by it. On that wake-up the loop handles what is pending
without blocking, then ends if the traced tree is gone: whatever else is a child of the
recorder (tcpdump), the loop never waits for a task that cannot report.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import shutil
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, cast

from ptrace import PtraceError
from ptrace.binding.func import ptrace_cont, ptrace_detach, ptrace_geteventmsg

from wirecorr._core import pure_requested
from wirecorr.errors import WirecorrError
from wirecorr.model import Syscall
from wirecorr.sources.syscalls import DECODERS, Decoder
from wirecorr.sources.syscalls.consts import errno_name
from wirecorr.sources.syscalls.table import BY_ARCH, native_arch
from wirecorr.sources.tracer import ptrace_ext as px
from wirecorr.sources.tracer.fdtable import FdTable
from wirecorr.sources.tracer.launch import EXIT_NOT_FOUND, TraceError, fork_child
from wirecorr.sources.tracer.seccomp import Filter

OnSyscall = Callable[[Syscall], None]
# A drained batch of the compiled loop (wirecorr/_core/tracer.pyx `Batch`): `syscalls()`
# gives its Syscall objects, recording/columns.py `batch_table` its format-2 columns.
OnBatch = Callable[[Any], None]
OnProcess = Callable[[str, int, "int | None"], None]
Entry = tuple[str, Decoder | None, Decoder | None]

_STOP_SIGNALS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
_SYSCALL_TRAP = signal.SIGTRAP | 0x80
_WAIT = px.WALL | px.WNOTHREAD
_NONE: dict[int, Entry] = {}
# How long launched (seccomp-filtered) commands may run on after stop() before SIGKILL.
STOP_GRACE_S = 2.0
# How often the watchdog checks that some task the loop waits for is still traced by it.
WATCH_S = 0.5
# How long records may wait in the compiled loop's batch while the tracees are idle (it
# drains a busy tracee's batch by itself, every 4096 records or 20 ms): what a live view
# lags behind at most, and a SIGKILLed recorder loses on top of the writer's second.
STALE_S = 0.1


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
    """A traced task. `announced`: its creation event was read (or it was spawned/attached).

    A task removed before that event arrives must be remembered, or the event would add it
    again as a tracee that never reports. The compiled loop's `CoreThread` has the same
    fields, and in `cpending` whether a data call of the task is pending in its C fields.
    """

    __slots__ = ("announced", "args", "call", "exit", "proc", "tid")
    cpending = False

    def __init__(self, tid: int, proc: _Proc, announced: bool) -> None:
        self.tid = tid
        self.proc = proc
        self.announced = announced
        self.call: Syscall | None = None
        self.args: tuple[int, ...] = ()
        self.exit: Decoder | None = None


class Tracer:
    """Traces launched or attached processes and reports each recorded syscall at its exit."""

    def __init__(
        self,
        on_syscall: OnSyscall,
        *,
        data_bytes: int = 64,
        on_process: OnProcess | None = None,
        on_batch: OnBatch | None = None,
    ) -> None:
        """`on_syscall` gets each recorded syscall at its exit; with `on_batch`, the calls the
        compiled loop decoded itself come as batches instead (their records, not yet objects),
        and only the others through `on_syscall`."""
        arch = native_arch()
        if arch is None:
            raise TraceError("syscall tracing supports x86_64 and aarch64 only")
        self._arch = arch
        self._on_syscall = on_syscall
        self._on_batch = on_batch
        self._on_process = on_process or (lambda event, pid, info: None)
        self._data_bytes = max(0, data_bytes)
        self._dispatch: dict[int, dict[int, Entry]] = {
            audit: {nr: (name, *DECODERS[name]) for nr, name in table.items()} for audit, table in BY_ARCH.items()
        }
        self._info = px.SyscallInfo()
        self._threads: dict[int, _Thread] = {}
        self._core = None if pure_requested() else _compiled_core(self._threads, arch, self._data_bytes)
        self._thread_type: Callable[[int, _Proc, bool], _Thread] = _Thread if self._core is None else _core_thread()
        self._new_id: Callable[[], int] = (
            functools.partial(next, itertools.count(1)) if self._core is None else self._core.new_id
        )
        self._procs: dict[int, _Proc] = {}
        # Tasks gone (exit, detach, exec) before the fork/clone event that creates them was read.
        self._vanished: set[int] = set()
        self._root: int | None = None
        self._root_status: int | None = None
        self._stopping = False
        self._tracer_tid = threading.get_native_id()
        self._waker: int | None = None
        # The wake pipe lives as long as the Tracer: stop() may write to it at any moment,
        # from a signal handler, and must never hit a descriptor closed and reused meanwhile.
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._wake_w, False)
        weakref.finalize(self, _close_all, self._wake_r, self._wake_w)
        self._watch_done = threading.Event()
        self._kill_at: float | None = None

    # -- public API -----------------------------------------------------------------

    def spawn(self, argv: list[str], *, user: str | None = None, env: dict[str, str] | None = None) -> int:
        """Start CMD under the seccomp filter; returns its pid once it has exec'd."""
        self._tracer_tid = threading.get_native_id()
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
        thread = self._add_thread(pid, proc, announced=True)
        self._root = pid
        self._on_process("spawn", pid, None)
        self._restart(thread)
        return pid

    def attach(self, pids: list[int]) -> None:
        """Seize every thread of each pid and interrupt it so syscall tracing can begin."""
        self._tracer_tid = threading.get_native_id()
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
        self._tracer_tid = threading.get_native_id()
        watchdog = threading.Thread(target=self._watch, name="wirecorr-tracer-watchdog", daemon=True)
        try:
            self._start_waker()
            watchdog.start()
            self._loop()
        finally:
            try:
                self._detach_all()
            finally:
                self._watch_done.set()
                self._end_waker()
        if self._root_status is not None:
            return self._root_status
        return 0

    def stop(self) -> None:
        """Ask run() to detach and return. Safe from a signal handler or another thread.

        A second stop() does not wait out the grace period: launched commands are killed
        at once (a second Ctrl-C).
        """
        again = self._stopping
        self._stopping = True
        self._poke()
        if again:
            self._kill_at = time.monotonic()
            self._kill_filtered()

    # -- the hot loop -----------------------------------------------------------------

    def _loop(self) -> None:
        if self._core is not None:
            self._loop_core()
            return
        threads = self._threads
        waitpid = os.waitpid
        clock = time.time_ns
        flags = _WAIT
        while threads and not self._stopping:
            try:
                tid, status = waitpid(-1, flags)
            except ChildProcessError:
                return
            if tid == 0:  # woken up, and every pending report is handled
                flags = _WAIT
                if not self._tree_alive():
                    self._forget_all()
                    return
                self._start_waker()
                continue
            flags = self._handle(tid, status, clock(), flags)

    def _loop_core(self) -> None:
        """The compiled loop: it handles the data calls' stops and returns for everything
        else, which `_handle` takes as the pure loop does, after its records are drained."""
        core = self._core
        assert core is not None
        threads = self._threads
        flags = _WAIT
        try:
            while threads and not self._stopping:
                tid, status, now = core.run(flags)
                if core.buffered:
                    self._flush_core()
                if tid < 0:
                    if tid == _NO_CHILD:
                        return
                    continue  # a full batch, or a signal handler ran (maybe stop())
                if tid == 0:  # woken up, and every pending report is handled
                    flags = _WAIT
                    if not self._tree_alive():
                        self._forget_all()
                        return
                    self._start_waker()
                    continue
                flags = self._handle(tid, status, now, flags)
        finally:
            self._flush_core()

    def _handle(self, tid: int, status: int, now: int, flags: int) -> int:
        """One report of waitpid; returns the wait flags for the next (WNOHANG after the waker's exit)."""
        if status & 0xFF != 0x7F:
            if self._gone(tid, status):
                return _WAIT | os.WNOHANG
            return flags
        sig = (status >> 8) & 0xFF
        event = status >> 16
        if event == px.PTRACE_EVENT_EXEC:
            with _unless_gone():
                self._exec(tid)
            return flags
        thread = self._threads.get(tid) or self._adopt(tid)
        if sig == _SYSCALL_TRAP or event == px.PTRACE_EVENT_SECCOMP:
            op = self._info.fetch(tid)
            if op < 0:
                return flags
            done = self._exit(thread, now) if op == px.SYSCALL_INFO_EXIT else self._enter(thread, now)
            self._restart(thread)
            if done is not None:
                self._on_syscall(done)  # after the restart: the callback is off the tracee's path
        elif event:
            with _unless_gone():
                self._event(thread, event, sig)
        else:
            self._restart(thread, sig)  # signal-delivery-stop: deliver it
        return flags

    def _flush_core(self) -> None:
        """Hand the compiled loop's buffered records to the callbacks."""
        assert self._core is not None
        batch = self._core.drain()
        if batch is None:
            return
        if self._on_batch is not None:
            self._on_batch(batch)
        else:
            for call in batch.syscalls():
                self._on_syscall(call)

    def _enter(self, thread: _Thread, now: int) -> Syscall | None:
        info = self._info.entry()
        entry = self._dispatch.get(info[1], _NONE).get(info[2])
        if entry is None:
            return None
        name, enter, exit_ = entry
        call = Syscall(self._new_id(), thread.proc.pid, thread.tid, name, now)
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
        if thread.proc.filtered and thread.call is None and not thread.cpending:
            px.resume(px.PTRACE_CONT, thread.tid, sig)
        else:
            px.resume(px.PTRACE_SYSCALL, thread.tid, sig)

    # -- process and thread lifecycle -------------------------------------------------

    def _event(self, thread: _Thread, event: int, sig: int) -> None:
        if event in (px.PTRACE_EVENT_FORK, px.PTRACE_EVENT_VFORK, px.PTRACE_EVENT_CLONE):
            self._announce(thread.proc, ptrace_geteventmsg(thread.tid), event)
        elif event == px.PTRACE_EVENT_STOP and sig in _STOP_SIGNALS:
            px.listen(thread.tid)  # group-stop: stay stopped until SIGCONT, as if untraced
            return
        self._restart(thread)

    def _announce(self, parent: _Proc, child: int, event: int) -> None:
        """A fork/vfork/clone event: the child may have stopped, run and even gone already."""
        known = self._threads.get(child)
        if known is not None:
            known.announced = True
        elif child in self._vanished and not _traced_by(child, self._tracer_tid):
            self._vanished.discard(child)
        else:
            # Not seen yet, or the tid is already used again by a newer tracee of ours that
            # has not stopped yet: either way a live task that will report.
            self._vanished.discard(child)
            self._new_child(parent, child, event == px.PTRACE_EVENT_CLONE, announced=True)

    def _new_child(self, parent: _Proc, child: int, maybe_thread: bool, announced: bool) -> _Thread:
        if maybe_thread and _status_field(child, "Tgid") == parent.pid:
            return self._add_thread(child, parent, announced)
        proc = self._add_proc(child, parent.fds.copy(child), parent.filtered)
        self._on_process("fork", child, parent.pid)
        if proc.filtered and self._kill_at is not None and time.monotonic() >= self._kill_at:
            self._kill_filtered()
        return self._add_thread(child, proc, announced)

    def _adopt(self, tid: int) -> _Thread:
        """A new tracee whose first stop arrived before its parent's fork/clone event."""
        self._vanished.discard(tid)  # a tid used again: the earlier task's event is long past
        tgid = _status_field(tid, "Tgid")
        if tgid is not None and tgid in self._procs:
            return self._add_thread(tid, self._procs[tgid], announced=False)
        parent = self._procs.get(_status_field(tid, "PPid") or -1)
        if parent is None:
            parent = _Proc(0, FdTable(tid), self._data_bytes, filtered=False)
        return self._new_child(parent, tid, maybe_thread=False, announced=False)

    def _exec(self, tid: int) -> None:
        """PTRACE_EVENT_EXEC: a non-leader that execs takes over the leader's tid."""
        try:
            former = ptrace_geteventmsg(tid)
        except PtraceError as exc:
            if exc.errno != errno.ESRCH:
                raise
            former = -1  # killed meanwhile: only its exit report follows
        if former != tid:
            self._took_over(tid, former)
        thread = self._threads.get(tid) or self._adopt(tid)
        thread.proc.exec_done()
        self._on_process("exec", thread.proc.pid, None)
        self._restart(thread)

    def _took_over(self, tid: int, former: int) -> None:
        """After an exec the thread group is `tid` alone; the exec'ing thread's former tid
        and the old leader never report an exit, so they leave the books here."""
        leader = self._threads.get(tid)
        moved = self._threads.pop(former, None)
        if moved is not None:
            if not moved.announced:
                self._vanished.add(former)  # its clone event, still to come, names the old tid
            if leader is not None:
                del self._threads[tid]
                leader.proc.threads -= 1
                self._unfinished(leader)
            moved.announced = leader.announced if leader is not None else True
            moved.tid = tid
            self._threads[tid] = moved
        elif former == -1 and leader is not None:
            for other in list(self._threads.values()):
                if other.proc is leader.proc and other is not leader and not os.path.exists(f"/proc/{other.tid}"):
                    self._remove(other)

    def _gone(self, tid: int, status: int) -> bool:
        """An exit report; True if it is the waker's (the loop was woken up)."""
        if tid == self._waker:
            self._waker = None
            return True
        thread = self._threads.get(tid)
        if thread is None:
            self._vanished.add(tid)  # before its creation event, or a child that is no tracee
            return False
        self._remove(thread)
        if tid == thread.proc.pid:
            code = shell_status(status)
            if tid == self._root:
                self._root_status = code
            self._on_process("exit", tid, code)
        return False

    def _remove(self, thread: _Thread) -> None:
        """Take a task out of the books: it exited, or was detached."""
        if self._threads.get(thread.tid) is thread:
            del self._threads[thread.tid]
        if not thread.announced:
            self._vanished.add(thread.tid)
        self._unfinished(thread)
        self._forget(thread)

    def _forget_all(self) -> None:
        """Nothing left in the books can report again (see `_tree_alive`): drop it all."""
        for thread in list(self._threads.values()):
            self._remove(thread)

    def _unfinished(self, thread: _Thread) -> None:
        """The thread died (or is detached) inside a recorded call: report what we have."""
        call = thread.call
        if call is not None:
            thread.call = None
            self._on_syscall(call)
        elif thread.cpending and self._core is not None:
            self._core.unfinished(thread)
            self._flush_core()

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

    def _add_thread(self, tid: int, proc: _Proc, announced: bool) -> _Thread:
        thread = self._thread_type(tid, proc, announced)
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
        self._add_thread(tid, proc, announced=True)

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

    # -- waking and stopping ------------------------------------------------------------

    def _start_waker(self) -> None:
        """A child whose exit ends the blocking waitpid: it exits on a byte from the wake pipe.

        waitpid cannot time out and a signal handler cannot interrupt it (PEP 475 retries),
        and stop() may come from another thread that cannot issue ptrace requests. The
        waker reads the pipe's other end, so when this process dies, even by SIGKILL, it
        reads EOF and exits too: nothing of the recorder outlives it. A byte written while
        no waker runs waits in the pipe for the next one, so a stop() is never lost, and a
        new waker needs no poke of its own (after stop(), that would wake the drain at once,
        again and again, for the whole grace period).
        """
        self._waker = os.posix_spawn(
            _head(),
            ["head", "-c", "1"],
            {"LC_ALL": "C"},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, self._wake_r, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setpgroup=0,  # not in the terminal's process group: Ctrl-C is not for it
        )

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe wakes the waker just as well
            os.write(self._wake_w, b"w")

    def _end_waker(self) -> None:
        waker, self._waker = self._waker, None
        if waker is not None:
            with contextlib.suppress(OSError):
                os.kill(waker, signal.SIGKILL)
                os.waitpid(waker, 0)

    def _watch(self) -> None:
        """The watchdog thread: wake the loop when none of its tasks is traced by it any more.

        The books can only go stale through a kernel behaviour not foreseen here; then the
        loop would wait forever for reports that cannot come. This makes that impossible.
        """
        ticks = 0
        while not self._watch_done.wait(STALE_S):
            ticks += 1
            if ticks * STALE_S >= WATCH_S:
                ticks = 0
                if self._threads and not self._tree_alive():
                    self._poke()
                    continue
            if self._core is not None and self._core.stale(int(STALE_S * 1e9)):
                self._poke()  # an idle tracee: its last records wait in the compiled loop's batch

    def _tree_alive(self) -> bool:
        """Whether some task in the books is still a tracee of this thread (so it will report)."""
        return any(_traced_by(tid, self._tracer_tid) for tid in tuple(self._threads))

    def _detach_all(self) -> None:
        """Detach attached tracees (left running, or stopped if they were); end launched ones.

        A launched command carries the seccomp filter and would get ENOSYS from every
        recorded syscall once detached, so it runs on unrecorded for STOP_GRACE_S (it got the
        user's Ctrl-C too) and is then killed, as strace --seccomp-bpf does.
        """
        for thread in list(self._threads.values()):
            self._unfinished(thread)
        self._on_syscall = _drop
        self._on_batch = None
        if any(proc.filtered for proc in self._procs.values()):
            if self._kill_at is None:
                self._kill_at = time.monotonic() + STOP_GRACE_S
            timer = threading.Timer(max(0.0, self._kill_at - time.monotonic()), self._kill_filtered)
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
        flags = _WAIT
        while self._threads:
            if self._waker is None and flags == _WAIT:
                self._start_waker()
            try:
                tid, status = os.waitpid(-1, flags)
            except ChildProcessError:
                break
            if tid == 0:
                flags = _WAIT
                if not self._tree_alive():
                    break
                continue
            if status & 0xFF != 0x7F:
                if self._gone(tid, status):
                    flags = _WAIT | os.WNOHANG
                continue
            sig, event = (status >> 8) & 0xFF, status >> 16
            if event == px.PTRACE_EVENT_EXEC:
                with _unless_gone():
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
                    self._announce(thread.proc, ptrace_geteventmsg(tid), event)
                deliver = sig if not event and sig != _SYSCALL_TRAP else 0
                ptrace_detach(tid, deliver)
            self._remove(thread)
        self._forget_all()

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


_NO_CHILD = -2  # TraceCore.run: nothing left to wait for (tracer.pyx, NO_CHILD)


def _compiled_core(threads: dict[int, _Thread], arch: int, data_bytes: int) -> Any:
    """The compiled stop loop (wirecorr/_core/tracer.pyx) over the Tracer's books.

    An ImportError means the extension was not built: failing is deliberate, as for the
    packet core (engine/packet_feed.py); WIRECORR_PURE=1 selects the Python loop.
    """
    try:
        from wirecorr._core.tracer import TraceCore
    except ImportError as e:
        raise WirecorrError(
            f"the compiled tracer core is not built ({e}): run `make` or `pip install -e .`, "
            "or set WIRECORR_PURE=1 for the (slower) pure-Python tracer"
        ) from None
    return TraceCore(threads, arch, BY_ARCH[arch], data_bytes)


def _core_thread() -> Callable[[int, _Proc, bool], _Thread]:
    from wirecorr._core.tracer import CoreThread

    return cast("Callable[[int, _Proc, bool], _Thread]", CoreThread)


def _close_all(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@functools.cache
def _head() -> str:
    return shutil.which("head") or "/usr/bin/head"


def _traced_by(tid: int, tracer: int) -> bool:
    """Whether `tid` is a tracee of the thread `tracer` (TracerPid is a tid): it can still report.

    A zombie counts: a tracee's exit stays pending for its tracer until waitpid reaps it
    (the ptrace link ends only then), so the loop will read it. Counting zombies as gone
    would let a wake-up that races with the command's own exit end the loop before that
    exit is read, and lose CMD's exit status.
    """
    return _status_field(tid, "TracerPid") == tracer


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
