# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The tracer's per-stop path, compiled: waitpid → PTRACE_GET_SYSCALL_INFO → reads → restart.

Issue 13: in Python a ptrace stop cost ≈ 14 µs of interpreter (ctypes calls, tuple unpacking,
a `Syscall` and its args dict, the decoder) against strace's ≈ 2.5 µs. Here the stops of the
data calls (read, write, pread64, pwrite64, readv, writev, recvfrom, sendto, recvmsg,
sendmsg) — the ones a busy program makes by the hundred thousand — are handled without a
Python object: the entry is kept in the thread's C fields, the exit reads the data preview
(and the peer sockaddr; for recvmsg/sendmsg the msghdr and its iovecs) with
process_vm_readv, and a fixed-size record plus its bytes go into a buffer that `drain()`
turns into `Syscall` objects in one pass, batch by batch.

Everything else comes back to `Tracer` in sources/tracer/loop.py, which handles it exactly
as the pure-Python loop does (WIRECORR_PURE=1 runs that loop alone; tests/test_tracer_core.py
holds the two to the same records): the other recorded syscalls and their decoders, a data
call on a descriptor the fd table does not know yet (the table resolves it from /proc while
the process is alive), a send on a socket without a local address (the send binds it and
the table must refresh), ptrace events, signal-delivery and group stops, exits, the waker.
The buffer is drained before Python handles any of those, so a record's fd identity is the
one of its call: every change of the fd table goes through Python, after the drain.

`CoreThread` is the loop's task object (the pure loop's `_Thread` with C fields): the
Tracer's own `tid → thread` dict is what this loop looks stops up in, so the race-free
bookkeeping of loop.py (creation events, `_vanished`, exec takeovers) stays in one place.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from libc.errno cimport EINTR, ESRCH, ECHILD, errno
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset

from ptrace import PtraceError

from wirecorr.model import Syscall
from wirecorr.sources.syscalls import consts, sockaddr

cdef extern from "<sys/types.h>":
    ctypedef int pid_t

cdef extern from "<sys/wait.h>" nogil:
    pid_t waitpid(pid_t pid, int *status, int options)
    int WNOHANG

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *tp)
    int CLOCK_REALTIME
    int CLOCK_MONOTONIC

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t process_vm_readv(pid_t pid, const iovec *local, unsigned long liovcnt,
                             const iovec *remote, unsigned long riovcnt, unsigned long flags)

cdef extern from "<sys/ptrace.h>" nogil:
    long ptrace(int request, pid_t pid, void *addr, void *data)

cdef extern from *:
    """
    struct wc_syscall_info {
        unsigned char op;
        unsigned char pad[3];
        unsigned int arch;
        unsigned long long ip;
        unsigned long long sp;
        union {
            struct { unsigned long long nr; unsigned long long args[6]; } entry;
            struct { long long rval; unsigned char is_error; } exit;
        } u;
        unsigned int ret_data;
    };
    """
    struct _entry:
        uint64_t nr
        uint64_t args[6]
    struct _exit:
        int64_t rval
        uint8_t is_error
    union _u:
        _entry entry
        _exit exit
    struct wc_syscall_info:
        uint8_t op
        uint32_t arch
        _u u

DEF PTRACE_CONT = 7
DEF PTRACE_SYSCALL = 24
DEF PTRACE_GET_SYSCALL_INFO = 0x420E
DEF PTRACE_EVENT_SECCOMP = 7
DEF OP_ENTRY = 1
DEF OP_EXIT = 2
DEF OP_SECCOMP = 3
DEF SYSCALL_TRAP = 0x85  # SIGTRAP | 0x80
DEF NR_MAX = 512
DEF IOV_MAX = 1024
DEF SOCKADDR_MAX = 128

# Fast kinds: how the data calls' arguments are decoded (as sources/syscalls/io.py does).
DEF K_NONE = 0
DEF K_RW = 1        # read, write: fd, count
DEF K_PRW = 2       # pread64, pwrite64: fd, count, offset
DEF K_RWV = 3       # readv, writev: fd, iovcnt
DEF K_RECVFROM = 4  # fd, count, flags; peer address at exit
DEF K_SENDTO = 5    # fd, count, flags, target address at entry
DEF K_SENDMSG = 6   # fd, flags; the msghdr (address, iovecs) at exit
DEF K_RECVMSG = 7   # as sendmsg
DEF MSGHDR_SIZE = 56  # struct msghdr on 64-bit Linux

_FAST = {
    "read": K_RW, "write": K_RW, "pread64": K_PRW, "pwrite64": K_PRW, "readv": K_RWV, "writev": K_RWV,
    "recvfrom": K_RECVFROM, "sendto": K_SENDTO, "sendmsg": K_SENDMSG, "recvmsg": K_RECVMSG,
}

# What run() returns besides a (tid, status, now) for Python to handle.
BATCH_FULL = -1
INTERRUPTED = -3
NO_CHILD = -2

# Records per batch; a batch is also drained once its first record is DRAIN_NS old, and the
# Tracer's watchdog wakes an idle loop whose records wait (loop.py, STALE_S).
BATCH = 4096
DEF DRAIN_NS = 20000000


cdef struct Rec:
    # All 64-bit, so that `Batch.records()` is a numpy view with one field per member.
    int64_t id
    int64_t pid
    int64_t tid
    int64_t enter_ns
    int64_t exit_ns
    int64_t ret
    int64_t a2          # count, or iovcnt; sendmsg/recvmsg: the iovecs' total length, low 64 bits
    int64_t a3          # offset of pread64/pwrite64; sendmsg/recvmsg: the total's high bits
    int64_t nr
    int64_t fd
    int64_t kind
    int64_t err         # errno of a failed call, else 0
    int64_t flags       # MSG_* of recvfrom/sendto
    int64_t info        # index into the batch's distinct fdinfo objects
    int64_t done        # 0: the thread died inside the call (no exit)
    int64_t moved       # nbytes is ret
    int64_t counted     # sendmsg/recvmsg: the msghdr was read (args has `count`)
    int64_t has_data    # data is the preview at data_off (else None)
    int64_t addr        # index into the batch's distinct sockaddrs; -1: no `addr` key
    int64_t data_off    # the data preview in the batch's data bytes
    int64_t data_len


REC_FIELDS = (
    "id", "pid", "tid", "enter_ns", "exit_ns", "ret", "a2", "a3", "nr", "fd", "kind", "err", "flags", "info",
    "done", "moved", "counted", "has_data", "addr", "data_off", "data_len",
)


cdef class CoreThread:
    """A traced task, as loop.py's `_Thread`, with the pending data call in C fields."""

    cdef public int tid
    cdef public object proc
    cdef public bint announced
    cdef public object call
    cdef public object args
    cdef public object exit
    cdef public bint cpending
    cdef int pid
    cdef bint filtered
    cdef dict fds
    # The pending data call (cpending).
    cdef int64_t c_id
    cdef int64_t c_enter_ns
    cdef uint64_t c_args[6]
    cdef int32_t c_nr
    cdef int32_t c_kind
    cdef int32_t c_fd
    cdef object c_fdinfo
    cdef int64_t c_addr_len
    cdef bint c_has_addr
    cdef char c_addr[SOCKADDR_MAX]

    def __init__(self, int tid, object proc, bint announced):
        self.tid = tid
        self.proc = proc
        self.announced = announced
        self.call = None
        self.args = ()
        self.exit = None
        self.cpending = False
        self.pid = proc.pid
        self.filtered = proc.filtered
        # The descriptor table's dict itself: threads share it, exec clears it in place.
        self.fds = proc.fds._fds


cdef inline int64_t _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline int64_t _mono() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline int32_t _s32(uint64_t word) noexcept nogil:
    return <int32_t><uint32_t>word


cdef class TraceCore:
    """The compiled stop loop over the Tracer's `threads` dict; records go to a batch buffer."""

    cdef object threads
    cdef uint32_t arch
    cdef int64_t data_bytes
    cdef uint8_t recorded[NR_MAX]
    cdef uint8_t kinds[NR_MAX]
    cdef readonly list names
    cdef public int64_t next_id
    # Stops handled here without Python (the tests check that this loop is the one used).
    cdef public int64_t stops
    cdef Rec *recs
    cdef int nrec
    cdef char *arena
    cdef int64_t arena_used
    cdef int64_t arena_size
    cdef int64_t first_mono
    cdef list infos
    cdef dict info_index
    cdef list addrs
    cdef dict addr_index
    cdef dict errnames
    cdef dict msgflags
    cdef dict addr_text
    cdef wc_syscall_info info

    def __cinit__(self):
        self.recs = NULL
        self.arena = NULL

    def __init__(self, dict threads, uint32_t arch, dict table, int64_t data_bytes):
        """`table`: the recorded syscalls of `arch` (sources/syscalls/table.py), nr → name."""
        self.threads = threads
        self.arch = arch
        self.data_bytes = max(0, data_bytes)
        self.names = [None] * NR_MAX
        memset(self.recorded, 0, NR_MAX)
        memset(self.kinds, 0, NR_MAX)
        for nr, name in table.items():
            if 0 <= nr < NR_MAX:
                self.recorded[nr] = 1
                self.kinds[nr] = _FAST.get(name, K_NONE)
                self.names[nr] = name
        self.next_id = 1
        self.stops = 0
        self.recs = <Rec *>malloc(BATCH * sizeof(Rec))
        self.arena_size = max(1 << 20, 4 * (self.data_bytes + 2 * SOCKADDR_MAX))
        self.arena = <char *>malloc(self.arena_size)
        if self.recs == NULL or self.arena == NULL:
            raise MemoryError()
        self.nrec = 0
        self.arena_used = 0
        self.infos = []
        self.info_index = {}
        self.addrs = []
        self.addr_index = {}
        self.errnames = {}
        self.msgflags = {}
        self.addr_text = {}

    def __dealloc__(self):
        free(self.recs)
        free(self.arena)

    @property
    def buffered(self):
        """Records waiting for drain()."""
        return self.nrec

    def stale(self, int64_t age_ns):
        """Whether records have waited longer than `age_ns` (the watchdog then wakes the loop)."""
        return self.nrec > 0 and _mono() - self.first_mono > age_ns

    def new_id(self):
        """The next syscall id: one sequence for the compiled and the Python-decoded calls."""
        cdef int64_t value = self.next_id
        self.next_id += 1
        return value

    # -- the loop ------------------------------------------------------------------------

    def run(self, int flags):
        """Handle stops until one needs Python: returns (tid, status, now_ns), or
        (BATCH_FULL, 0, 0) to drain, (NO_CHILD, 0, 0) when there is nothing to wait for,
        (INTERRUPTED, 0, 0) after a signal handler ran, (0, 0, 0) for WNOHANG and nothing."""
        cdef int status = 0
        cdef pid_t tid
        cdef int sig, event
        cdef int64_t now
        cdef CoreThread thread
        cdef object found
        cdef int blocking = not (flags & WNOHANG)
        while True:
            if self.nrec and (
                self.nrec >= BATCH
                or self.arena_size - self.arena_used < self.data_bytes + 2 * SOCKADDR_MAX + 16
                or _mono() - self.first_mono > DRAIN_NS
            ):
                return (BATCH_FULL, 0, 0)
            # Poll first, holding the GIL: a busy tracee has a stop pending, and handing the
            # GIL to another thread and back per stop costs more than this syscall.
            tid = waitpid(-1, &status, flags | WNOHANG)
            if tid == 0:
                if not blocking:
                    return (0, 0, 0)
                with nogil:
                    tid = waitpid(-1, &status, flags)
            if tid < 0:
                if errno == EINTR:
                    PyErr_CheckSignals()
                    return (INTERRUPTED, 0, 0)
                if errno == ECHILD:
                    return (NO_CHILD, 0, 0)
                PyErr_SetFromErrno(OSError)
                return None
            now = _now()
            if status & 0xFF != 0x7F:
                return (tid, status, now)
            sig = (status >> 8) & 0xFF
            event = status >> 16
            if sig != SYSCALL_TRAP and event != PTRACE_EVENT_SECCOMP:
                return (tid, status, now)
            found = self.threads.get(tid)
            if type(found) is not CoreThread:  # not (yet) in the books: loop.py adopts it
                return (tid, status, now)
            thread = <CoreThread>found
            if thread.call is not None:
                return (tid, status, now)
            if ptrace(PTRACE_GET_SYSCALL_INFO, tid, <void *>sizeof(wc_syscall_info), &self.info) < 0:
                if errno == ESRCH:
                    continue  # killed meanwhile: its exit report follows
                return (tid, status, now)
            self.stops += 1
            if self.info.op == OP_EXIT:
                if thread.cpending:
                    self._finish(thread, now)
                self._restart(thread)
            elif self.info.op == OP_ENTRY or self.info.op == OP_SECCOMP:
                if self.info.arch != self.arch:
                    return (tid, status, now)
                if thread.cpending:
                    return (tid, status, now)
                if self.info.u.entry.nr >= NR_MAX or not self.recorded[self.info.u.entry.nr]:
                    self._restart(thread)  # an attached process's unrecorded call
                    continue
                if not self._begin(thread, now):
                    self.stops -= 1
                    return (tid, status, now)
                self._restart(thread)
            else:
                return (tid, status, now)

    cdef int _restart(self, CoreThread thread) except -1:
        cdef int request = PTRACE_SYSCALL
        if thread.filtered and not thread.cpending:
            request = PTRACE_CONT
        if ptrace(request, thread.tid, NULL, NULL) < 0 and errno != ESRCH:
            code = errno
            raise PtraceError(f"ptrace({request:#x}, {thread.tid}) failed: {code}", errno=code, pid=thread.tid)
        return 0

    cdef bint _begin(self, CoreThread thread, int64_t now) except -1:
        """A recorded call's entry: keep it in C if it is a data call on a known descriptor."""
        cdef int32_t nr = <int32_t>self.info.u.entry.nr
        cdef int32_t kind = self.kinds[nr]
        cdef int32_t fd
        cdef int64_t length
        if kind == K_NONE:
            return False
        fd = _s32(self.info.u.entry.args[0])
        fdinfo = thread.fds.get(fd)
        if fdinfo is None:
            return False  # resolved by the Python path, from /proc, while the process lives
        if (kind == K_SENDTO or kind == K_SENDMSG) and fdinfo.local is None:
            return False  # the send may bind it: the Python path refreshes at exit
        thread.cpending = True
        thread.c_nr = nr
        thread.c_kind = kind
        thread.c_fd = fd
        thread.c_id = self.next_id
        self.next_id += 1
        thread.c_enter_ns = now
        memcpy(thread.c_args, self.info.u.entry.args, sizeof(thread.c_args))
        thread.c_fdinfo = fdinfo
        thread.c_has_addr = False
        thread.c_addr_len = 0
        if kind == K_SENDTO and thread.c_args[4]:
            # read_sockaddr at entry, as io._sendto_enter: the target of the datagram.
            thread.c_has_addr = True
            length = _s32(thread.c_args[5])
            if length > 0:
                thread.c_addr_len = max(0, self._peek(thread.tid, thread.c_args[4], thread.c_addr,
                                                      min(length, SOCKADDR_MAX)))
        return True

    cdef int64_t _read(self, int tid, uint64_t addr, int64_t size) noexcept:
        """Up to `size` bytes of the tracee at `addr` appended to the arena; the count read."""
        cdef iovec local, remote
        cdef ssize_t got
        if size <= 0:
            return 0
        local.iov_base = self.arena + self.arena_used
        local.iov_len = size
        remote.iov_base = <void *>addr
        remote.iov_len = size
        got = process_vm_readv(tid, &local, 1, &remote, 1, 0)
        if got <= 0:
            return 0
        self.arena_used += got
        return got

    cdef Rec *_record(self, CoreThread thread) except NULL:
        cdef Rec *rec
        if self.nrec >= BATCH:
            raise RuntimeError("tracer batch full: drain() first")
        rec = &self.recs[self.nrec]
        if self.nrec == 0:
            self.first_mono = _mono()
        self.nrec += 1
        memset(rec, 0, sizeof(Rec))
        rec.id = thread.c_id
        rec.pid = thread.pid
        rec.tid = thread.tid
        rec.enter_ns = thread.c_enter_ns
        rec.nr = thread.c_nr
        rec.kind = thread.c_kind
        rec.fd = thread.c_fd
        rec.info = self._intern(self.info_index, self.infos, id(thread.c_fdinfo), thread.c_fdinfo)
        thread.c_fdinfo = None
        if thread.c_kind == K_SENDMSG or thread.c_kind == K_RECVMSG:
            rec.flags = _s32(thread.c_args[2])  # a2, a3: the iovecs' total, set at exit
        else:
            rec.a2 = thread.c_args[2]
            rec.a3 = thread.c_args[3]
            rec.flags = _s32(thread.c_args[3])
        rec.addr = -1
        rec.data_off = self.arena_used
        if thread.c_has_addr:
            raw = PyBytes_FromStringAndSize(thread.c_addr, thread.c_addr_len)
            rec.addr = self._intern(self.addr_index, self.addrs, raw, raw)
        thread.cpending = False
        return rec

    cdef int _finish(self, CoreThread thread, int64_t now) except -1:
        """The exit of a pending data call: return value, data preview, peer address."""
        cdef Rec *rec = self._record(thread)
        cdef int64_t ret, got
        cdef uint32_t alen
        cdef char addr[SOCKADDR_MAX]
        rec.done = 1
        rec.exit_ns = now
        if self.info.u.exit.is_error:
            rec.ret = -1
            rec.err = <int32_t>(-self.info.u.exit.rval)
            return 0
        ret = self.info.u.exit.rval
        rec.ret = ret
        if rec.kind == K_SENDMSG or rec.kind == K_RECVMSG:
            return self._finish_msg(thread, rec, ret)
        if ret > 0:
            rec.moved = 1
        if ret > 0 and self.data_bytes:
            rec.has_data = 1
            rec.data_off = self.arena_used
            if rec.kind == K_RWV:
                rec.data_len = self._gather(thread, min(ret, self.data_bytes))
            else:
                rec.data_len = self._read(thread.tid, thread.c_args[1], min(ret, self.data_bytes))
        if rec.kind == K_RECVFROM and ret >= 0 and thread.c_args[4]:
            # read_sockaddr(a[4], read_u32(a[5]) or 0), as io._recvfrom_exit.
            alen = 0
            if thread.c_args[5]:
                if self._peek(thread.tid, thread.c_args[5], &alen, 4) != 4:
                    alen = 0
            got = self._peek(thread.tid, thread.c_args[4], addr, min(<int64_t>alen, SOCKADDR_MAX)) if alen else 0
            raw = PyBytes_FromStringAndSize(addr, max(0, got))
            rec.addr = self._intern(self.addr_index, self.addrs, raw, raw)
        return 0

    cdef int _finish_msg(self, CoreThread thread, Rec *rec, int64_t ret) except -1:
        """sendmsg/recvmsg's exit, as io._msg_exit: the msghdr's address, the iovecs' total
        length, the bytes moved and their first bytes; nothing more if the msghdr is unreadable."""
        cdef uint8_t hdr[MSGHDR_SIZE]
        cdef uint64_t vec[2 * IOV_MAX]
        cdef uint64_t name, iov, iovlen, lo = 0, hi = 0
        cdef uint32_t namelen
        cdef int64_t entries, got, i
        cdef char addr[SOCKADDR_MAX]
        if self._peek(thread.tid, thread.c_args[1], hdr, MSGHDR_SIZE) != MSGHDR_SIZE:
            return 0
        memcpy(&name, hdr, 8)
        memcpy(&namelen, hdr + 8, 4)
        memcpy(&iov, hdr + 16, 8)
        memcpy(&iovlen, hdr + 24, 8)
        rec.counted = 1
        rec.moved = 1
        entries = self._iovecs(thread.tid, iov, <int64_t>min(iovlen, <uint64_t>IOV_MAX), vec)
        for i in range(entries):
            lo += vec[2 * i + 1]
            if lo < vec[2 * i + 1]:
                hi += 1  # carried: 1024 lengths of up to 2^64 - 1 need 74 bits
        rec.a2 = <int64_t>lo
        rec.a3 = <int64_t>hi
        if name:
            got = self._peek(thread.tid, name, addr, min(<int64_t>namelen, SOCKADDR_MAX)) if namelen else 0
            raw = PyBytes_FromStringAndSize(addr, max(0, got))
            rec.addr = self._intern(self.addr_index, self.addrs, raw, raw)
        if self.data_bytes:
            rec.has_data = 1
            rec.data_off = self.arena_used
            if ret > 0:
                rec.data_len = self._gather_from(thread.tid, vec, entries, min(ret, self.data_bytes))
        return 0

    cdef int64_t _intern(self, dict index, list values, object key, object value) except -1:
        """The position of `value` in the batch's list of distinct values, added if new."""
        found = index.get(key)
        if found is None:
            found = index[key] = len(values)
            values.append(value)
        return found

    cdef int64_t _peek(self, int tid, uint64_t addr, void *out, int64_t size) noexcept:
        cdef iovec local, remote
        if size <= 0:
            return 0
        local.iov_base = out
        local.iov_len = size
        remote.iov_base = <void *>addr
        remote.iov_len = size
        return process_vm_readv(tid, &local, 1, &remote, 1, 0)

    cdef int64_t _gather(self, CoreThread thread, int64_t want) noexcept:
        """The first `want` bytes over readv/writev's iovecs (base.read_iovecs + base.gather)."""
        cdef uint64_t vec[2 * IOV_MAX]
        cdef int64_t count = _s32(thread.c_args[2])
        cdef int64_t entries = self._iovecs(thread.tid, thread.c_args[1], max(0, min(count, IOV_MAX)), vec)
        return self._gather_from(thread.tid, vec, entries, want)

    cdef int64_t _iovecs(self, int tid, uint64_t addr, int64_t count, uint64_t *vec) noexcept:
        """The (base, len) pairs of up to `count` iovecs at `addr` into `vec`; how many were read."""
        cdef int64_t got
        if not addr or count <= 0:
            return 0
        got = self._peek(tid, addr, vec, count * 16)
        return got // 16 if got > 0 else 0

    cdef int64_t _gather_from(self, int tid, uint64_t *vec, int64_t entries, int64_t want) noexcept:
        """The first `want` bytes scattered over `entries` iovecs, into the arena (base.gather)."""
        cdef int64_t i, take, total = 0
        for i in range(entries):
            if want <= 0:
                break
            take = min(<int64_t>min(vec[2 * i + 1], <uint64_t>0x7FFFFFFFFFFFFFFF), want)
            if take:
                total += self._read(tid, vec[2 * i], take)
                want -= take
        return total

    def unfinished(self, CoreThread thread):
        """The thread died (or is detached) inside a pending data call: record what it has."""
        if thread.cpending:
            self._record(thread)

    # -- draining ------------------------------------------------------------------------

    def drain(self):
        """The buffered records as a `Batch` (None when there are none); empties the buffer."""
        if self.nrec == 0:
            return None
        batch = Batch(
            PyBytes_FromStringAndSize(<char *>self.recs, self.nrec * sizeof(Rec)),
            PyBytes_FromStringAndSize(self.arena, self.arena_used),
            self.infos,
            self.addrs,
            self,
        )
        self.nrec = 0
        self.arena_used = 0
        self.infos = []
        self.info_index = {}
        self.addrs = []
        self.addr_index = {}
        return batch

    cdef object _msg_flags(self, int32_t value):
        name = self.msgflags.get(value)
        if name is None:
            name = self.msgflags[value] = consts.flags(value, consts.MSG)
        return name

    cdef object _addr(self, bytes raw):
        text = self.addr_text.get(raw, _MISSING)
        if text is _MISSING:
            text = self.addr_text[raw] = sockaddr.decode(raw)
        return text

    cdef object _errno(self, int32_t code):
        name = self.errnames.get(code)
        if name is None:
            name = self.errnames[code] = consts.errno_name(code)
        return name



_MISSING = object()


cdef class Batch:
    """A drained batch of records: a numpy view for the recording's columns
    (recording/columns.py, `batch_table`), or `Syscall` objects for everyone else."""

    cdef readonly bytes raw
    cdef readonly bytes data
    cdef readonly list fdinfos
    cdef list raw_addrs
    cdef TraceCore core

    def __init__(self, bytes raw, bytes data, list fdinfos, list raw_addrs, TraceCore core):
        self.raw = raw
        self.data = data
        self.fdinfos = fdinfos
        self.raw_addrs = raw_addrs
        self.core = core

    def __len__(self):
        return len(self.raw) // sizeof(Rec)

    def records(self):
        """The records as a numpy structured array (fields: REC_FIELDS, all int64)."""
        import numpy as np

        return np.frombuffer(self.raw, np.dtype([(name, "<i8") for name in REC_FIELDS]))

    @property
    def names(self):
        """nr → syscall name (a list indexed by the `nr` field)."""
        return self.core.names

    @property
    def addrs(self):
        """The sockaddrs the `addr` field indexes, as endpoint strings (or None)."""
        return [self.core._addr(raw) for raw in self.raw_addrs]

    def errno_name(self, int code):
        return self.core._errno(code)

    def msg_flags(self, int value):
        return self.core._msg_flags(value)

    def args(self, record):
        """The args dict of one record (a row of `records()`), as the decoders build it."""
        return self._args(
            record["kind"], record["fd"], record["a2"], record["a3"], record["flags"], record["addr"], record["counted"]
        )

    cdef dict _args(self, int64_t kind, int64_t fd, int64_t a2, int64_t a3, int64_t flags, int64_t addr,
                    int64_t counted):
        cdef dict args = {"fd": fd}
        if kind == K_SENDMSG or kind == K_RECVMSG:
            # In io._msg_enter/_msghdr's order: flags at entry; at exit the address, then the count.
            args["flags"] = self.core._msg_flags(<int32_t>flags)
            if counted:
                if addr >= 0:
                    args["addr"] = self.core._addr(self.raw_addrs[addr])
                args["count"] = (<object><uint64_t>a3 << 64) | <uint64_t>a2
            return args
        if kind == K_RWV:
            args["iovcnt"] = _s32(<uint64_t>a2)
        else:
            args["count"] = <uint64_t>a2
        if kind == K_PRW:
            args["offset"] = <uint64_t>a3
        elif kind == K_RECVFROM or kind == K_SENDTO:
            args["flags"] = self.core._msg_flags(<int32_t>flags)
            if addr >= 0:
                args["addr"] = self.core._addr(self.raw_addrs[addr])
        return args

    def args_column(self):
        """(distinct args dicts, per-record index into them): the recording's dictionary column."""
        import numpy as np

        cdef const Rec *recs = <const Rec *><const char *>self.raw
        cdef Py_ssize_t n = len(self.raw) // sizeof(Rec), i
        cdef const Rec *rec
        cdef dict seen = {}
        cdef list values = []
        index = np.empty(n, np.int32)
        cdef int32_t[:] out = index
        for i in range(n):
            rec = &recs[i]
            key = (rec.kind, rec.fd, rec.a2, rec.a3 if rec.kind in (K_PRW, K_SENDMSG, K_RECVMSG) else 0, rec.flags,
                   rec.addr, rec.counted)
            found = seen.get(key)
            if found is None:
                found = seen[key] = len(values)
                values.append(self._args(rec.kind, rec.fd, rec.a2, rec.a3, rec.flags, rec.addr, rec.counted))
            out[i] = found
        return values, index

    def syscalls(self):
        """The records as `Syscall` objects, in completion order."""
        cdef const Rec *recs = <const Rec *><const char *>self.raw
        cdef Py_ssize_t n = len(self.raw) // sizeof(Rec), i
        cdef const Rec *rec
        cdef list out = []
        cdef list infos = self.fdinfos
        cdef list names = self.core.names
        cdef const char *blob = self.data
        for i in range(n):
            rec = &recs[i]
            data = None
            nbytes = None
            errname = None
            exit_ns = None
            ret = None
            if rec.done:
                exit_ns = rec.exit_ns
                ret = rec.ret
                if rec.err:
                    errname = self.core._errno(<int32_t>rec.err)
                else:
                    if rec.moved:
                        nbytes = rec.ret
                    if rec.has_data:
                        data = PyBytes_FromStringAndSize(blob + rec.data_off, rec.data_len)
            out.append(
                Syscall(
                    rec.id, rec.pid, rec.tid, names[rec.nr], rec.enter_ns,
                    self._args(rec.kind, rec.fd, rec.a2, rec.a3, rec.flags, rec.addr, rec.counted),
                    exit_ns, ret, errname, rec.fd, infos[rec.info], None, nbytes, data, None,
                )
            )
        return out
