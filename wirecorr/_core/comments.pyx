# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The annotator's packet comments (recording/annotate.py), compiled.

`wirecorr record` ends by rewriting the recording with one `opt_comment` per link on each
linked packet: on bench/correlate's recording 800k comments on 400k packets, whose text
(`format.link_comment`), option bytes and rebuilt EPBs took 1.4 s in Python (the
reference in annotate.py) and take 0.3 s here: a comment is written from the syscall's
fields into its option bytes, and an EPB is rebuilt with them, in C.

The text is `format.link_comment`'s for the common case: ASCII name and errno, integers
within 64 bits, a delay below a millisecond (whole microseconds). Any other link (a delay
of milliseconds or seconds, whose float formatting stays Python's, a non-ASCII name, an
int subclass) gets its option from the reference, the `fallback` the caller gives; an EPB
whose lengths do not add up is rebuilt by the reference `rebuild` too. `WIRECORR_PURE=1`
runs the reference alone; tests/test_annotate_core.py holds the two to the same bytes.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython cimport array as carray
from cpython.bytearray cimport PyByteArray_AS_STRING
from libc.string cimport memcpy, memset

from array import array

from wirecorr.recording.format import link_comment


cdef extern from "Python.h":
    bint PyLong_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)


cdef enum:
    OPT_COMMENT = 1
    BT_EPB = 6
    BT_SPB = 3
    BT_PB = 2
    # A longer comment goes to the reference (the option's length field takes 65535).
    CAP = 1024


# pcapng's fields are little-endian here (annotate.iter_blocks accepts no other file).
cdef inline unsigned int _u16(const unsigned char* b):
    return b[0] | (<unsigned int>b[1] << 8)


cdef inline Py_ssize_t _u32(const unsigned char* b):
    return b[0] | (<Py_ssize_t>b[1] << 8) | (<Py_ssize_t>b[2] << 16) | (<Py_ssize_t>b[3] << 24)


cdef inline void _put32(char* p, Py_ssize_t v) noexcept:
    p[0] = <char>(v & 0xFF)
    p[1] = <char>((v >> 8) & 0xFF)
    p[2] = <char>((v >> 16) & 0xFF)
    p[3] = <char>((v >> 24) & 0xFF)


cdef struct Text:
    char p[CAP]
    Py_ssize_t n
    bint refused


cdef inline void _raw(Text* t, const char* s, Py_ssize_t n):
    if t.refused or t.n + n > CAP:
        t.refused = True
        return
    memcpy(t.p + t.n, s, n)
    t.n += n


cdef void _ll(Text* t, long long v):
    cdef char tmp[24]
    cdef int i = 24
    cdef unsigned long long u
    if v < 0:
        _raw(t, b"-", 1)
        u = <unsigned long long>(-(v + 1)) + 1
    else:
        u = <unsigned long long>v
    while True:
        i -= 1
        tmp[i] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    _raw(t, tmp + i, 24 - i)


cdef bint _int(object v, long long* out) except -1:
    """An exact int within 64 bits into `out`; False for anything else."""
    cdef int overflow = 0
    if not PyLong_CheckExact(v):
        return False
    out[0] = PyLong_AsLongLongAndOverflow(v, &overflow)
    return overflow == 0


cdef void _ascii(Text* t, object s):
    if not PyUnicode_CheckExact(s) or not PyUnicode_IS_ASCII(s):
        t.refused = True
        return
    _raw(t, <const char*>PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s))


cdef int _comment(Text* t, object sc, object delay) except -1:
    """`format.link_comment(sc, delay)`, or `t.refused`."""
    cdef long long fd, nbytes, pid, tid, d
    cdef object v
    t.n = 0
    t.refused = False
    _ascii(t, sc.name)
    _raw(t, b"(", 1)
    v = sc.fd
    if v is not None:
        if not _int(v, &fd):
            t.refused = True
            return 0
        _raw(t, b"fd=", 3)
        _ll(t, fd)
    v = sc.nbytes
    if v is not None:
        if not _int(v, &nbytes):
            t.refused = True
            return 0
        if sc.fd is not None:
            _raw(t, b", ", 2)
        _ll(t, nbytes)
        _raw(t, b" B", 2)
    _raw(t, b")", 1)
    v = sc.errno
    if v is not None:
        _raw(t, b" = ", 3)
        _ascii(t, v)
    if not _int(sc.pid, &pid) or not _int(sc.tid, &tid):
        t.refused = True
        return 0
    _raw(t, b" pid ", 5)
    _ll(t, pid)
    if tid != pid:
        _raw(t, b" tid ", 5)
        _ll(t, tid)
    if delay is not None:
        if not _int(delay, &d) or not -1_000_000 < d < 1_000_000:
            t.refused = True
            return 0
        _raw(t, b" -" if d < 0 else b" +", 2)
        _ll(t, (-d if d < 0 else d) // 1000)
        _raw(t, b"\xc2\xb5s", 3)  # µs
    return 0


cdef bytes _option(Text* t):
    """The comment as an `opt_comment` option: code, length, text, zero padding."""
    cdef Py_ssize_t i, padded = (t.n + 3) & ~3
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 4 + padded)
    cdef char* p = PyBytes_AS_STRING(out)
    p[0] = OPT_COMMENT
    p[1] = 0
    p[2] = <char>(t.n & 0xFF)
    p[3] = <char>(t.n >> 8)
    memcpy(p + 4, t.p, t.n)
    for i in range(t.n, padded):
        p[4 + i] = 0
    return out


def comment_options(list links, syscall, fallback):
    """Packet index → the `opt_comment` options of the links naming it, in link order
    (`links` in id order, as the correlator lists them).

    `syscall(id)` finds a link's call (None: the link gets no comment); `fallback(sc,
    delay_ns)` gives the option of a comment this code does not write itself.
    """
    cdef PacketComments out = PacketComments(fallback)
    out.add(links, syscall)
    return out.options


cdef class PacketComments:
    """Packet index → its links' `opt_comment` options in link id order, from links given
    in batches in any order: the streaming linking pass (engine/linking.py) gets each
    connection's links when they become final, and a packet's links (a write's and the
    read's of the same bytes, a partial write settled late) may come in different batches.

    This is the output the pass holds until the rewrite, so it is kept small (a dict of
    joined bytes cost ≈ 200 B a packet). Each link's option is stored once in one
    bytearray (`_arena`) however many packets it names. Most packets have one or two
    links (a data segment: its write's and its read's): int64 columns indexed by packet
    hold the offset and length of each of the two parts (length 0: none; the first part's
    length -1: the packet is in `_many`) and the lowest and highest link id. A packet with
    three or more parts keeps its joined options in `_many` and its ids in `_ids`; a part
    goes in at its place by walking the options it comes between (each part is one
    option). `annotate.PacketCommentsReference` is the reference; `get` and `len` are what
    the rewrite asks.
    """

    cdef object _fallback
    cdef bytearray _arena
    cdef carray.array _off1
    cdef carray.array _len1
    cdef carray.array _off2
    cdef carray.array _len2
    cdef carray.array _first
    cdef carray.array _last
    cdef dict _many
    cdef dict _ids
    cdef Py_ssize_t _count

    def __init__(self, fallback):
        """`fallback` as `comment_options` takes it."""
        self._fallback = fallback
        self._arena = bytearray()
        self._off1 = array("q")
        self._len1 = array("q")
        self._off2 = array("q")
        self._len2 = array("q")
        self._first = array("q")
        self._last = array("q")
        self._many = {}
        self._ids = {}
        self._count = 0

    def add(self, list links, syscall):
        """The comments of `links`; `syscall` as `comment_options` takes it."""
        cdef object fallback = self._fallback
        cdef Text t
        cdef object sc, delay, packets, idx
        cdef bytes option
        cdef long long lid
        cdef Py_ssize_t off
        for link in links:
            sc = syscall(link.syscall)
            if sc is None:
                continue
            delay = link.delay_ns
            _comment(&t, sc, delay)
            packets = link.packets
            if not packets:
                # The reference words the comment of a link without packets, and encodes none.
                if t.refused:
                    link_comment(sc, delay)
                continue
            option = fallback(sc, delay) if t.refused else _option(&t)
            off = len(self._arena)
            self._arena += option
            lid = link.id
            for idx in packets:
                self._put(idx, lid, option, off)

    cpdef object get(self, Py_ssize_t idx):
        """Packet `idx`'s options, or None."""
        cdef long long len1, len2
        cdef const char* arena
        cdef bytes out
        if idx < 0 or idx >= len(self._len1):
            return None
        len1 = self._len1.data.as_longlongs[idx]
        if len1 == 0:
            return None
        if len1 < 0:
            return self._many[idx]
        arena = PyByteArray_AS_STRING(self._arena)
        len2 = self._len2.data.as_longlongs[idx]
        out = PyBytes_FromStringAndSize(NULL, len1 + len2)
        memcpy(PyBytes_AS_STRING(out), arena + self._off1.data.as_longlongs[idx], len1)
        if len2:
            memcpy(PyBytes_AS_STRING(out) + len1, arena + self._off2.data.as_longlongs[idx], len2)
        return out

    def __len__(self):
        return self._count

    @property
    def options(self):
        """Every packet's options as a dict (the tests' view; the rewrite uses `get`)."""
        cdef Py_ssize_t idx
        cdef long long* len1 = self._len1.data.as_longlongs
        return {idx: self.get(idx) for idx in range(len(self._len1)) if len1[idx] != 0}

    cdef int _grow(self, Py_ssize_t idx) except -1:
        """Columns long enough for `idx`, the new rows zero (no comment)."""
        cdef Py_ssize_t n = len(self._len1), grown = max(idx + 1, 2 * n, 1024)
        cdef carray.array column
        for column in (self._off1, self._len1, self._off2, self._len2, self._first, self._last):
            carray.resize(column, grown)
            memset(column.data.as_longlongs + n, 0, (grown - n) * sizeof(long long))
        return 0

    cdef int _put(self, Py_ssize_t idx, long long lid, bytes option, Py_ssize_t off) except -1:
        cdef long long* len1
        cdef long long* len2
        cdef long long* off1
        cdef long long* off2
        cdef long long* first
        cdef long long* last
        cdef list ids
        cdef bytes have
        cdef Py_ssize_t i
        if idx < 0:
            raise ValueError(f"packet index {idx} is negative")
        if idx >= len(self._len1):
            self._grow(idx)
        len1 = self._len1.data.as_longlongs
        len2 = self._len2.data.as_longlongs
        off1 = self._off1.data.as_longlongs
        off2 = self._off2.data.as_longlongs
        first = self._first.data.as_longlongs
        last = self._last.data.as_longlongs
        if len1[idx] == 0:
            off1[idx] = off
            len1[idx] = PyBytes_GET_SIZE(option)
            first[idx] = lid
            last[idx] = lid
            self._count += 1
            return 0
        if len1[idx] > 0 and len2[idx] == 0:
            # A second part: after the one there if its id is not lower (as the links'
            # order puts a part after those of the same id), else before it.
            if lid >= first[idx]:
                off2[idx] = off
                len2[idx] = PyBytes_GET_SIZE(option)
                last[idx] = lid
            else:
                off2[idx] = off1[idx]
                len2[idx] = len1[idx]
                off1[idx] = off
                len1[idx] = PyBytes_GET_SIZE(option)
                first[idx] = lid
            return 0
        ids = self._ids.get(idx)
        if ids is None:
            have = self.get(idx)
            len1[idx] = -1
            len2[idx] = 0
            ids = [first[idx], last[idx]]
            self._ids[idx] = ids
        else:
            have = self._many[idx]
        # After the parts of the same id or lower, as the links' order puts it.
        i = len(ids)
        while i and ids[i - 1] > lid:
            i -= 1
        ids.insert(i, lid)
        self._many[idx] = _insert_part(have, i, option)
        if lid < first[idx]:
            first[idx] = lid
        if lid > last[idx]:
            last[idx] = lid
        return 0


cdef bytes _insert_part(bytes have, Py_ssize_t before, bytes option):
    """`have`'s options with `option` put after the first `before` of them."""
    cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(have)
    cdef Py_ssize_t pos = 0, n = PyBytes_GET_SIZE(have)
    while before and pos + 4 <= n:
        pos += 4 + ((_u16(b + pos + 2) + 3) & ~3)
        before -= 1
    return have[:pos] + option + have[pos:]


def with_options(bytes block, bytes options, rebuild):
    """The EPB `block` with `options` after its own (what `annotate._with_options` gives);
    `rebuild(block, options)` for a block whose lengths run past its end."""
    return _with(block, options, rebuild)


def copy_packets(bytes data, Py_ssize_t pos, Py_ssize_t index, options, rebuild):
    """The packet blocks of `data` from `pos` on, with the comments of `options` (packet
    index → options, a dict or a `PacketComments`: what has `get`) added to their EPBs:
    (the output, the position after them, the next packet index). It stops at the first
    block that is not a whole packet block (any other type, one cut by the end of `data`,
    one of a bad length), which the caller reads the reference way (`annotate._Blocks.next`
    checks and words errors)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), blen, btype, keep, extra = 0, total, at = 0, cap
    cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef char* out = NULL
    cdef char* grown
    cdef object own
    cdef bytes piece
    # The output is the input plus the comments: room for the input, then grown as needed.
    cap = n - pos + 4096
    out = <char*>PyMem_Malloc(cap)
    if out == NULL:
        raise MemoryError()
    try:
        while pos + 8 <= n:
            btype = _u32(b + pos)
            blen = _u32(b + pos + 4)
            if blen < 12 or blen % 4 or blen > n - pos:
                break
            if btype != BT_EPB and btype != BT_SPB and btype != BT_PB:
                break
            own = options.get(index) if btype == BT_EPB else None
            piece = None
            keep = -1
            total = blen
            if own:
                keep = _kept(b + pos, blen)
                if keep < 0:
                    piece = rebuild(data[pos : pos + blen], own)
                    total = PyBytes_GET_SIZE(piece)
                else:
                    extra = PyBytes_GET_SIZE(own)
                    total = keep + extra + 8
            if at + total > cap:
                cap = max(2 * cap, at + total)
                grown = <char*>PyMem_Realloc(out, cap)
                if grown == NULL:
                    raise MemoryError()
                out = grown
            if piece is not None:
                memcpy(out + at, PyBytes_AS_STRING(piece), total)
            elif keep >= 0:
                _epb(out + at, b + pos, keep, <const char*>PyBytes_AS_STRING(own), extra)
            else:
                memcpy(out + at, b + pos, blen)
            at += total
            index += 1
            pos += blen
        return PyBytes_FromStringAndSize(out, at), pos, index
    finally:
        PyMem_Free(out)


cdef Py_ssize_t _kept(const unsigned char* b, Py_ssize_t n):
    """Where the EPB's own options end (at its end-of-options or its end); -1 when its
    lengths run past its end, which the reference rebuilds as it does."""
    cdef Py_ssize_t pos, end, size
    if n < 32:
        return -1
    pos = 28 + ((_u32(b + 20) + 3) & ~3)
    end = n - 4
    if pos > end:
        return -1
    while pos + 4 <= end:
        if _u16(b + pos) == 0:
            break
        size = 4 + ((<Py_ssize_t>_u16(b + pos + 2) + 3) & ~3)
        if pos + size > end:
            return -1
        pos += size
    return pos


cdef void _epb(char* p, const unsigned char* b, Py_ssize_t keep, const char* options, Py_ssize_t extra) noexcept:
    """The EPB `b` up to `keep`, then `options` and an end-of-options: keep + extra + 8 bytes."""
    cdef Py_ssize_t total = keep + extra + 8
    _put32(p, BT_EPB)
    _put32(p + 4, total)
    memcpy(p + 8, b + 8, keep - 8)
    memcpy(p + keep, options, extra)
    _put32(p + keep + extra, 0)  # the end-of-options option: code 0, length 0
    _put32(p + total - 4, total)


cdef bytes _with(bytes block, bytes options, rebuild):
    cdef Py_ssize_t keep = _kept(<const unsigned char*>PyBytes_AS_STRING(block), PyBytes_GET_SIZE(block))
    cdef Py_ssize_t extra = PyBytes_GET_SIZE(options)
    cdef bytes out
    if keep < 0:
        return rebuild(block, options)
    out = PyBytes_FromStringAndSize(NULL, keep + extra + 8)
    _epb(PyBytes_AS_STRING(out), <const unsigned char*>PyBytes_AS_STRING(block), keep, PyBytes_AS_STRING(options), extra)
    return out
