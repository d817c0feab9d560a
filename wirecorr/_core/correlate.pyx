# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The correlator's per-syscall hot path, compiled: data calls on bound TCP sockets.

On a busy recording nearly every syscall is a read or a write on a socket whose
connection is already known (bench/correlate: all but ~20 of 800k). For such a call the
Python correlator resolves (pid, fd) through the socket map, counts the bytes, makes a
Link and a claim, and walks the direction's segments; ≈ 18 µs of interpreted code.
`feed_syscalls` does the same work here on the correlator's own state (the same
dicts, lists, Links and claims), and hands every other call (socket, connect, accept,
close, shutdown, poll, UDP, fork, an fd it has not seen resolved, a stream not yet
anchored, a retransmitted segment) to `Correlator.on_syscall`, the reference. So the two
paths cannot drift apart in what they keep: there is one state, and the compiled lane
only skips steps that are proved to be no-ops for the call (see `_resolved`).

`WIRECORR_PURE=1` makes the correlator call `on_syscall` for every syscall
(tests/test_correlate_core.py runs both and compares links and connection identity).
"""

from cpython cimport array as carray
from cpython.object cimport Py_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.string cimport memmove

from wirecorr.engine.analysis_flags import ANY_RETRANSMISSION
from wirecorr.engine.seq import HALF, M32
from wirecorr.model import ACK, FIN, RST, SYN, Link
from wirecorr.vocab import READS, WRITES

# Writes and reads the lane takes: every one the vocabulary lists, except splice (its
# direction depends on which fd is the socket) and the mmsg calls (they count msg_lens).
_WRITES = frozenset(WRITES)
_READS = frozenset(READS)
_TCP_KINDS = frozenset(("tcp", "tcp6"))

cdef long long _RETRANS = ANY_RETRANSMISSION
cdef long long _CTRL = FIN | SYN | RST
cdef long long _ACK = ACK
cdef long long _HALF = HALF
cdef long long _M32 = M32
# Byte counts beyond this go the reference way (C integers hold the stream offsets here).
_BIG = 1 << 60


cdef Py_ssize_t _bisect_q(const long long* a, Py_ssize_t n, long long x, bint right) noexcept:
    """bisect_right (or bisect_left) of x in the sorted int64s a[:n] (an `array('q')`:
    a direction's segment starts, a role's claim starts), galloping from the end: a call's
    offsets are nearly always at the end of what its direction holds."""
    cdef Py_ssize_t lo = 0, hi = n, step = 1, mid
    cdef long long v
    while step <= n:
        v = a[n - step]
        if v < x or (right and v == x):
            lo = n - step + 1
            break
        hi = n - step
        step <<= 1
    while lo < hi:
        mid = (lo + hi) >> 1
        v = a[mid]
        if v < x or (right and v == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline object _link_at(object table, long long i):
    """`table[i]` of the correlator's LinkTable, without its Python `__getitem__`."""
    cdef long long at = i - <long long>table.base
    if at >= 0:
        return (<list>table.items)[at]
    return table.old.get(i)


cdef inline int _push(carray.array a, long long v) except -1:
    """`a.append(v)` for an `array('q')` without a method call and a boxed int."""
    cdef Py_ssize_t n = Py_SIZE(a)
    carray.resize_smart(a, n + 1)
    a.data.as_longlongs[n] = v
    return 0


cdef struct Row:
    int conn          # -1: no connection yet
    signed char side
    signed char d     # -1: no stream range
    long long link    # first link's id, -1: none
    long long start
    long long end


# Syscall ids are dense from 0 in recordings and strace logs; one this far past the rows
# held (or negative) goes to a dict instead of growing the rows to it.
cdef long long _DENSE_SLACK = 1 << 20


cdef class CallIndex:
    """Per syscall id: its connection and side, its links and its stream range, in 32 bytes
    a call (`correlator._CallIndex`, three dicts of tuples and lists, is the reference and
    held ≈ 400 bytes a call: bench/correlate's one long connection kept 800k of them).

    A call's first link is held by id (into the correlator's `links`, a LinkTable); a call
    with more links (connect, a refused connect) has them all listed in `more`.
    """

    cdef Row* rows
    cdef Py_ssize_t cap
    # rows[i] is the call with id base + i; ids below base are in `sparse` (`shed`).
    cdef long long base
    cdef long long top
    cdef dict sparse
    cdef dict more
    cdef object links

    def __cinit__(self, object links):
        self.rows = NULL
        self.cap = 0
        self.base = 0
        self.top = -1
        self.sparse = {}
        self.more = {}
        self.links = links

    def __dealloc__(self):
        PyMem_Free(self.rows)

    cdef Row* _row(self, long long sid, bint create) except? NULL:
        cdef Py_ssize_t n, i
        cdef long long at = sid - self.base
        cdef Row* grown
        if 0 <= at < self.cap:
            if create and sid > self.top:
                self.top = sid
            return &self.rows[at]
        if at < 0 or at > 2 * self.cap + _DENSE_SLACK:
            return NULL
        if not create:
            return NULL
        if sid > self.top:
            self.top = sid
        n = max(at + 1, 2 * self.cap, 1024)
        grown = <Row*>PyMem_Realloc(self.rows, n * sizeof(Row))
        if grown == NULL:
            raise MemoryError()
        for i in range(self.cap, n):
            grown[i].conn = -1
            grown[i].side = 0
            grown[i].d = -1
            grown[i].link = -1
            grown[i].start = 0
            grown[i].end = 0
        self.rows = grown
        self.cap = n
        if self.sparse:
            self._migrate()
        return &self.rows[at]

    cdef _migrate(self):
        """Calls kept in `sparse` whose ids the rows now reach move into them."""
        cdef Row* row
        cdef long long base = self.base, stop = self.base + self.cap
        for key in [k for k in self.sparse if base <= k < stop]:
            pair, links, found = self.sparse.pop(key)
            row = &self.rows[<long long>key - base]
            if pair is not None:
                row.conn, row.side = pair
            if links:
                row.link = links[0].id
                if len(links) > 1:
                    self.more[key] = links
            if found is not None:
                row.d, row.start, row.end = found

    def shed(self, long long window):
        """Keep rows for the `window` most recent ids only: the calls older ones still hold
        move to `sparse`. The streaming analyze sheds after settling calls, which leaves
        most old rows empty; the rows then follow the calls in flight, not the recording."""
        cdef long long new_base = self.top + 1 - window
        cdef long long shift, i, key
        cdef Row* row
        if new_base <= self.base or self.cap == 0:
            return
        shift = min(new_base - self.base, <long long>self.cap)
        for i in range(shift):
            row = &self.rows[i]
            if row.conn < 0 and row.link < 0 and row.d < 0:
                continue
            key = self.base + i
            links = None
            if row.link >= 0:
                links = self.more.pop(key, None) or [_link_at(self.links, row.link)]
            self.sparse[key] = [
                (row.conn, row.side) if row.conn >= 0 else None,
                links,
                (row.d, row.start, row.end) if row.d >= 0 else None,
            ]
        memmove(self.rows, self.rows + shift, (self.cap - shift) * sizeof(Row))
        for i in range(self.cap - shift, self.cap):
            self.rows[i].conn = -1
            self.rows[i].side = 0
            self.rows[i].d = -1
            self.rows[i].link = -1
            self.rows[i].start = 0
            self.rows[i].end = 0
        self.base = new_base

    cdef list _sparse(self, object sid, bint create):
        entry = self.sparse.get(sid)
        if entry is None and create:
            entry = self.sparse[sid] = [None, None, None]
        return entry

    cpdef bint assign(self, object sid, int conn, int side) except -1:
        """Put the call on (conn, side) unless it is on one already; True if it was not."""
        cdef Row* row = self._row(sid, True)
        cdef list entry
        if row != NULL:
            if row.conn >= 0:
                return False
            row.conn = conn
            row.side = side
            return True
        entry = self._sparse(sid, True)
        if entry[0] is not None:
            return False
        entry[0] = (conn, side)
        return True

    cpdef object conn_of(self, object sid):
        cdef Row* row = self._row(sid, False)
        if row != NULL:
            return (row.conn, row.side) if row.conn >= 0 else None
        entry = self._sparse(sid, False)
        return entry[0] if entry is not None else None

    cpdef unassign(self, object sid):
        cdef Row* row = self._row(sid, False)
        if row != NULL:
            row.conn = -1
            row.d = -1
            return
        entry = self._sparse(sid, False)
        if entry is not None:
            entry[0] = entry[2] = None

    cpdef add_link(self, object sid, object link):
        cdef Row* row = self._row(sid, True)
        cdef list entry
        if row != NULL:
            if row.link < 0:
                row.link = link.id
                return
            found = self.more.get(sid)
            if found is None:
                self.more[sid] = [_link_at(self.links, row.link), link]
            else:
                found.append(link)
            return
        entry = self._sparse(sid, True)
        if entry[1] is None:
            entry[1] = [link]
        else:
            entry[1].append(link)

    cpdef list links_of(self, object sid):
        cdef Row* row = self._row(sid, False)
        if row != NULL:
            if row.link < 0:
                return []
            found = self.more.get(sid)
            return list(found) if found is not None else [_link_at(self.links, row.link)]
        entry = self._sparse(sid, False)
        return list(entry[1]) if entry is not None and entry[1] is not None else []

    cpdef list pop_links(self, object sid):
        cdef list out = self.links_of(sid)
        cdef Row* row = self._row(sid, False)
        if row != NULL:
            row.link = -1
            self.more.pop(sid, None)
        else:
            entry = self._sparse(sid, False)
            if entry is not None:
                entry[1] = None
        return out

    cpdef set_range(self, object sid, int d, long long start, long long end):
        cdef Row* row = self._row(sid, True)
        if row != NULL:
            row.d = d
            row.start = start
            row.end = end
            return
        self._sparse(sid, True)[2] = (d, start, end)

    cpdef object range_of(self, object sid):
        cdef Row* row = self._row(sid, False)
        if row != NULL:
            return (row.d, row.start, row.end) if row.d >= 0 else None
        entry = self._sparse(sid, False)
        return entry[2] if entry is not None else None



cdef class Claim:
    """Stream offsets [start, end) of one direction that one data syscall moved: the
    compiled lane's `correlator._Claim` (same fields, read and written by the correlator's
    Python code alike)."""

    cdef public object link
    cdef public long long start
    cdef public long long end
    cdef public bint write
    cdef public long long enter_ns
    cdef public long long exit_ns
    cdef public object note
    # first_ts / last_ts: C integers with a flag for None (two int objects a claim were
    # 51 MB on bench/correlate's 800k claims).
    cdef long long _first
    cdef long long _last
    cdef bint _has_first
    cdef bint _has_last
    cdef public object retrans
    cdef public long long covered_to

    def __init__(self, link, long long start, long long end, bint write, long long enter_ns, long long exit_ns, note):
        self.link = link
        self.start = start
        self.end = end
        self.write = write
        self.enter_ns = enter_ns
        self.exit_ns = exit_ns
        self.note = note
        self._has_first = False
        self._has_last = False
        self.retrans = None
        self.covered_to = -1


    @property
    def first_ts(self):
        return self._first if self._has_first else None

    @first_ts.setter
    def first_ts(self, value):
        self._has_first = value is not None
        if self._has_first:
            self._first = value

    @property
    def last_ts(self):
        return self._last if self._has_last else None

    @last_ts.setter
    def last_ts(self, value):
        self._has_last = value is not None
        if self._has_last:
            self._last = value


cdef class Lane:
    """What the lane remembers between batches: which FdInfo was last applied to which
    socket through each (pid, fd), and how many calls it took."""

    # (pid, fd) -> (socket, fdinfo applied to it, socket.local after that)
    cdef dict resolved
    cdef public long long taken
    cdef public long long passed

    def __init__(self):
        self.resolved = {}
        self.taken = 0
        self.passed = 0

    def feed(self, corr, list syscalls):
        """Feed `syscalls` (in completion order) to `corr`: the common data calls here,
        every other one through `corr.on_syscall`."""
        cdef object sc, sock, state, tcp, args, ret, count, flags, note, link, claims, shift
        cdef Claim claim
        cdef object key, entry, info, table
        cdef bint write, peek
        cdef long long n, start, end, s
        cdef int role, d, i, lo, hi
        cdef dict tables = corr.sockets._tables
        cdef dict states = corr._states
        cdef CallIndex calls = corr._calls
        cdef dict calls_by_conn = corr._calls_by_conn
        cdef dict packet_links = corr.packet_links
        # The correlator's LinkTable: appended to as a list (only `shed` moves its base, and
        # not during a batch).
        cdef list links = corr.links.items
        cdef long long link_base = corr.links.base
        cdef carray.array seg_start, seg_end, seg_idx, claim_starts
        cdef list ids, lst
        cdef const long long[:] ts_col = corr.table.ts_ns
        cdef const unsigned short[:] an_col = corr.table.analysis
        cdef object on_syscall = corr.on_syscall
        cdef object claim_segment = corr._claim_segment
        cdef dict resolved = self.resolved
        cdef long long idx, ts, first, last, seg_stop
        for sc in syscalls:
            name = sc.name
            write = name in _WRITES
            if not write and name not in _READS:
                self._slow(on_syscall, tables, sc)
                continue
            ret = sc.ret
            if sc.errno is not None or not isinstance(ret, int) or not 0 < ret < _BIG or sc.fd is None:
                self._slow(on_syscall, tables, sc)
                continue
            args = sc.args
            if type(args) is not dict:
                self._slow(on_syscall, tables, sc)
                continue
            key = (sc.pid, sc.fd)
            entry = resolved.get(key)
            if entry is None:
                self._slow(on_syscall, tables, sc)
                continue
            sock = entry[0]
            table = tables.get(sc.pid)
            if table is None or table.fds.get(sc.fd) is not sock or sock.local is not entry[2]:
                self._slow(on_syscall, tables, sc)
                continue
            info = sc.fdinfo
            if info is not None and info is not entry[1] and not info == entry[1]:
                self._slow(on_syscall, tables, sc)
                continue
            if sock.kind not in _TCP_KINDS or sock.listening:
                self._slow(on_syscall, tables, sc)
                continue
            state = states.get(sock.id)
            if state is None:
                self._slow(on_syscall, tables, sc)
                continue
            tcp = state.tcp
            if tcp is None:
                self._slow(on_syscall, tables, sc)
                continue
            peek = False
            if not write:
                flags = args.get("flags", "")
                peek = "MSG_PEEK" in str(flags)
            role = 0 if write else 1
            shift = state.shift[role]
            if shift is None:
                self._slow(on_syscall, tables, sc)
                continue
            # From here on this is on_syscall's path for the call, step by step.
            self.taken += 1
            side = state.side
            conn_id = tcp.conn.id
            sid = sc.id
            if calls.assign(sid, conn_id, side):
                lst = calls_by_conn.get(conn_id)
                if lst is None:
                    calls_by_conn[conn_id] = [(sid, side)]
                else:
                    lst.append((sid, side))
            n = ret
            if write:
                start = state.sent
                state.sent = start + n
            else:
                start = state.received
                if not peek:
                    state.received = start + n
            end = start + n
            note = None
            if write:
                count = args.get("count")
                if isinstance(count, int) and 0 < n < count:
                    note = f"partial write: {n} of {count} bytes"
            elif peek:
                note = "MSG_PEEK: bytes left in the receive queue"
            kind = "write-data" if write else "read-data"
            link = Link(link_base + len(links), kind, sid, [], None, note)
            links.append(link)
            calls.add_link(sid, link)
            enter_ns = sc.enter_ns
            exit_ns = sc.exit_ns
            claim = Claim(link, start, end, write, enter_ns, exit_ns if exit_ns is not None else enter_ns, note)
            # _place: offsets in the capture's stream, into the sorted claims, then the segments.
            start += shift
            end += shift
            claim.start = start
            claim.end = end
            d = side if write else 1 - side
            if not peek:
                calls.set_range(sid, d, start, end)
            dr = tcp.dirs[d]
            claims = dr.writes if write else (dr.peeks if peek else dr.reads)
            claim_starts = claims.starts
            i = _bisect_q(claim_starts.data.as_longlongs, len(claim_starts), start, True)
            if i == len(claim_starts):
                _push(claim_starts, start)
                claims.claims.append(claim)
            else:
                claim_starts.insert(i, start)
                claims.claims.insert(i, claim)
            seg_start = dr.seg_start
            seg_end = dr.seg_end
            seg_idx = dr.seg_idx
            lo = _bisect_q(seg_start.data.as_longlongs, len(seg_start), start - <long long>dr.max_len, True)
            hi = _bisect_q(seg_start.data.as_longlongs, len(seg_start), end, False)
            for i in range(lo, hi):
                seg_stop = seg_end.data.as_longlongs[i]
                if seg_stop <= start:
                    continue
                s = seg_start.data.as_longlongs[i]
                idx = seg_idx.data.as_longlongs[i]
                if an_col[idx] & _RETRANS or claim.retrans is not None:
                    claim_segment(claim, idx, s, seg_stop)
                    continue
                _claim_fresh(claim, link, idx, s, seg_stop, ts_col[idx], packet_links)

    def rows(self, corr, Py_ssize_t lo, Py_ssize_t hi):
        """`Correlator.on_rows`: a TCP segment with no SYN, FIN or RST on a tracked
        connection is placed here (its segment list, the claims it overlaps); every
        other packet goes through the correlator's own `_tcp_packet` or UDP matcher."""
        table = corr.table
        cdef const int[:] conns = table.conn
        cdef const long long[:] ts = table.ts_ns
        cdef const unsigned char[:] flags = table.flags
        cdef const signed char[:] direction = table.direction
        cdef const unsigned int[:] seglen = table.seglen
        cdef const unsigned int[:] rel_seq = table.rel_seq
        cdef const unsigned short[:] an_col = table.analysis
        cdef list connections = corr.analyzer.connections
        cdef dict tcps = corr._tcp
        cdef dict packet_links = corr.packet_links
        cdef list heap = corr._heap
        cdef object tcp_packet = corr._tcp_packet
        cdef object claim_segment = corr._claim_segment
        cdef long long watermark = corr._watermark, t
        cdef long long nconns = corr._nconns
        cdef Py_ssize_t idx
        cdef int cid
        cdef object conn, tcp
        for idx in range(lo, hi):
            cid = conns[idx]
            if cid >= nconns:
                corr._sync_connections()
                nconns = corr._nconns
                connections = corr.analyzer.connections
            t = ts[idx]
            if t > watermark:
                watermark = t
                corr._watermark = t
            if cid >= 0:
                conn = connections[cid]
                if conn.icmp_errors and idx in conn.icmp_indices:
                    pass
                elif conn.proto == "tcp":
                    tcp = tcps.get(cid)
                    if tcp is not None and idx > tcp.last_idx:
                        _place_packet(tcp, idx, flags, direction, seglen, rel_seq, an_col, t, packet_links,
                                      tcp_packet, claim_segment)
                elif conn.proto == "udp" and corr._udp_claims:
                    corr._udp.on_packet(idx)
            if heap and heap[0][0] <= watermark:
                corr._drain()

    def packets(self, corr, tcp, indices):
        """`Correlator._tcp_state`'s catch-up: the connection's packets so far, given to its new
        state in order (on a whole recording, every packet of the connection at once)."""
        table = corr.table
        cdef const long long[:] ts = table.ts_ns
        cdef const unsigned char[:] flags = table.flags
        cdef const signed char[:] direction = table.direction
        cdef const unsigned int[:] seglen = table.seglen
        cdef const unsigned int[:] rel_seq = table.rel_seq
        cdef const unsigned short[:] an_col = table.analysis
        cdef dict packet_links = corr.packet_links
        cdef object tcp_packet = corr._tcp_packet
        cdef object claim_segment = corr._claim_segment
        cdef Py_ssize_t idx
        for idx in indices:
            _place_packet(tcp, idx, flags, direction, seglen, rel_seq, an_col, ts[idx], packet_links,
                          tcp_packet, claim_segment)

    # -- settling data calls of open connections (`Streamer.compact`) ---------------------

    def settled(self, corr, tcp, long long horizon):
        """`Correlator.settled_claims` for a tracked connection with every stream anchored."""
        cdef list out = []
        cdef object dr, role, claim, last
        cdef long long acked
        cdef int d
        _scan_acks(corr.table, tcp)
        for d in range(2):
            dr = tcp.dirs[d]
            acked = dr.acked
            for role in (dr.writes, dr.reads):
                # Either claim class: the lane's `Claim` or, from `on_syscall`, the reference's.
                for claim in role.claims:
                    last = claim.last_ts
                    if claim.start >= acked or (last is not None and last > horizon):
                        break
                    if (
                        claim.end <= acked
                        and claim.covered_to == claim.end
                        and claim.retrans is None
                        and claim.link.note is None
                        and last is not None
                    ):
                        out.append((d, claim))
        return out

    def drop_claims(self, tcp, list settled):
        """`Correlator.drop_claims`: the claims `settled` returned, out of their roles."""
        cdef set gone = {pair[1] for pair in settled}
        cdef list kept, claims
        cdef carray.array starts
        cdef object dr, role, claim
        for dr in tcp.dirs:
            for role in (dr.writes, dr.reads):
                claims = role.claims
                kept = []
                starts = carray.array("q")
                for claim in claims:
                    if claim not in gone:
                        kept.append(claim)
                        _push(starts, claim.start)
                if len(kept) != len(claims):
                    role.claims = kept
                    role.starts = starts

    def forget(self, corr, int conn_id, syscall_ids):
        """`Correlator.forget`: a connection's calls out of every index, their links returned."""
        cdef dict calls_by_conn = corr._calls_by_conn
        cdef CallIndex calls = corr._calls
        cdef dict packet_links = corr.packet_links
        cdef object table = corr.links
        cdef list items = table.items
        cdef dict old = table.old
        cdef long long base = table.base, at
        cdef list out = [], ids
        cdef object link, idx
        entries = calls_by_conn.get(conn_id)
        if entries:
            calls_by_conn[conn_id] = [e for e in entries if e[0] not in syscall_ids]
        for sid in syscall_ids:
            calls.unassign(sid)
            for link in calls.pop_links(sid):
                out.append(link)
                at = link.id - base
                if at >= 0:
                    items[at] = None
                else:
                    old.pop(link.id, None)
                for idx in link.packets:
                    ids = packet_links.get(idx)
                    if ids is not None:
                        ids.remove(link.id)
                        if not ids:
                            del packet_links[idx]
        return out

    cdef inline void _slow(self, object on_syscall, dict tables, object sc):
        """The reference path, then what it left (pid, fd) bound to, for the next call."""
        on_syscall(sc)
        self.passed += 1
        fd = sc.fd
        if fd is None:
            return
        table = tables.get(sc.pid)
        sock = table.fds.get(fd) if table is not None else None
        key = (sc.pid, fd)
        if sock is None:
            self.resolved.pop(key, None)
        else:
            self.resolved[key] = (sock, sc.fdinfo, sock.local)


cdef _place_packet(object tcp, Py_ssize_t idx, const unsigned char[:] flags, const signed char[:] direction,
                   const unsigned int[:] seglen, const unsigned int[:] rel_seq, const unsigned short[:] an_col,
                   long long t, dict packet_links, object tcp_packet, object claim_segment):
    """`Correlator._tcp_packet` for one packet of a tracked connection: a segment with no
    SYN, FIN or RST, past the handshake, on a connection with no stream waiting to be
    anchored, is placed here; any other goes to `tcp_packet`."""
    cdef long long top, pos, start, end, seg
    cdef Py_ssize_t i, n
    cdef int d
    cdef carray.array seg_start, starts
    cdef list claims_list
    cdef object dr, claims, claim
    if flags[idx] & _CTRL or tcp.unanchored or (tcp.final_ack is None and tcp.synacks):
        tcp_packet(tcp, idx)
        return
    tcp.last_idx = idx
    d = direction[idx]
    dr = tcp.dirs[d]
    top = dr.top
    pos = top + ((<long long>rel_seq[idx] - top + _HALF) & _M32) - _HALF
    seg = seglen[idx]
    if seg:
        start = pos - 1
        end = start + seg
        seg_start = dr.seg_start
        n = len(seg_start)
        i = _bisect_q(seg_start.data.as_longlongs, n, start, True)
        if i == n:
            _push(seg_start, start)
            _push(dr.seg_end, end)
            _push(dr.seg_idx, idx)
        else:
            seg_start.insert(i, start)
            dr.seg_end.insert(i, end)
            dr.seg_idx.insert(i, idx)
        if seg > dr.max_len:
            dr.max_len = seg
        for claims in (dr.writes, dr.reads, dr.peeks):
            starts = claims.starts
            n = len(starts)
            if not n:
                continue
            claims_list = claims.claims
            i = _bisect_q(starts.data.as_longlongs, n, start, True) - 1
            if i < 0:
                i = 0
            while i < n:
                claim = claims_list[i]
                if claim.start >= end:
                    break
                if claim.end > start:
                    if type(claim) is Claim and not an_col[idx] & _RETRANS and claim.retrans is None:
                        _claim_fresh(claim, claim.link, idx, start, end, t, packet_links)
                    else:
                        claim_segment(claim, idx, start, end)
                i += 1
    if pos + seg > top:
        dr.top = pos + seg


cdef inline void _claim_fresh(Claim claim, object link, long long idx, long long start, long long end,
                              long long ts, dict packet_links):
    """`Correlator._claim_segment` for a segment that is no retransmission, on a claim
    that has seen none: its packet, its coverage, its first/last time and the delay."""
    cdef list packets = link.packets
    cdef list ids
    cdef long long covered, first, last, cend
    if idx not in packets:
        packets.append(idx)
        ids = packet_links.get(idx)
        if ids is None:
            packet_links[idx] = [link.id]
        else:
            ids.append(link.id)
    cend = claim.end
    covered = claim.covered_to
    if covered < claim.start:
        covered = claim.start
    if start <= covered < end:
        claim.covered_to = end if end < cend else cend
    first = ts if not claim._has_first or ts < claim._first else claim._first
    last = ts if not claim._has_last or ts > claim._last else claim._last
    claim._first = first
    claim._last = last
    claim._has_first = claim._has_last = True
    link.delay_ns = first - claim.enter_ns if claim.write else claim.exit_ns - last


cdef _scan_acks(table, tcp):
    """`Correlator._scan_acks`: each direction's `acked` moved over the ACKs of the packets
    the correlator took since the last scan."""
    cdef const unsigned char[:] flags = table.flags
    cdef const signed char[:] direction = table.direction
    cdef const unsigned int[:] rel_ack = table.rel_ack
    cdef const unsigned int[:] indices = tcp.conn.packet_indices
    cdef Py_ssize_t pos = tcp.ack_scan, n = indices.shape[0]
    cdef long long last = tcp.last_idx, idx, top, off
    cdef long long acked[2]
    cdef long long tops[2]
    cdef object dirs = tcp.dirs
    cdef int d
    for d in range(2):
        acked[d] = dirs[d].acked
        tops[d] = dirs[d].top
    while pos < n:
        idx = indices[pos]
        if idx > last:
            break
        if flags[idx] & _ACK:
            d = 1 - direction[idx]
            top = tops[d]
            off = top + ((<long long>rel_ack[idx] - top + _HALF) & _M32) - _HALF - 1
            if off > acked[d]:
                acked[d] = off
        pos += 1
    tcp.ack_scan = pos
    for d in range(2):
        if acked[d] != dirs[d].acked:
            dirs[d].acked = acked[d]


cdef inline int _push_b(carray.array a, signed char v) except -1:
    """`_push` for an `array('b')`."""
    cdef Py_ssize_t n = Py_SIZE(a)
    carray.resize_smart(a, n + 1)
    a.data.as_schars[n] = v
    return 0


def spill_claims(list claims, dict cols, carray.array packets, carray.array bounds):
    """`streaming._Spill.add`'s columns for settled (direction, claim) pairs: each link's
    packets sorted, then its numbers appended to the spill's arrays."""
    cdef carray.array sids = cols["sids"], link_ids = cols["link_ids"], delays = cols["delays"]
    cdef carray.array starts = cols["starts"], ends = cols["ends"]
    cdef carray.array sides = cols["sides"], ds = cols["ds"], kinds = cols["kinds"]
    cdef object link, claim, delay, idx
    cdef list pk
    cdef int d
    cdef bint write
    for pair in claims:
        d = pair[0]
        claim = pair[1]
        link = claim.link
        pk = link.packets
        if len(pk) > 1:
            pk.sort()
        write = claim.write
        _push(sids, link.syscall)
        _push(link_ids, link.id)
        delay = link.delay_ns
        _push(delays, delay if delay else 0)
        _push(starts, claim.start)
        _push(ends, claim.end)
        _push_b(sides, d if write else 1 - d)
        _push_b(ds, d)
        _push_b(kinds, 0 if write else 1)
        for idx in pk:
            _push(packets, idx)
        _push(bounds, len(packets))
