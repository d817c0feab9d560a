# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The streaming `analyze --json`'s syscall and link records, encoded straight to JSON bytes.

views/json_report.py spools one record per syscall and per link: 1.6M records on
bench/correlate's recording, where building each record's dict and handing it to orjson
cost ≈ 1.4 µs a syscall. Here a record is written from the object's fields into one
buffer for the whole batch, ≈ 0.45 µs.

The bytes are orjson's (`json_codec.dumps`): the same key order, integers in decimal,
strings as UTF-8 with `"`, `\\` and control characters escaped as orjson escapes them.
Whatever this encoder does not write itself (a float, an integer beyond 64 bits, a string
with lone surrogates, a non-string key, any other type) sends the whole record to the
reference encoder, the `fallback` the caller gives, so the values where orjson gives way to
the standard library (json_codec.py) are encoded by that same code. `WIRECORR_PURE=1` runs
the reference for every record; tests/test_json_records.py holds the two to the same bytes.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.string cimport memcpy

from wirecorr.model import FdInfo, Link, Syscall


cdef extern from "Python.h":
    bint PyLong_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyBytes_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    bint PyDict_CheckExact(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int* overflow) except? -1
    unsigned long long PyLong_AsUnsignedLongLong(object o) except? <unsigned long long>-1
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bytes PyUnicode_AsUTF8String(object o)
    int PyDict_Next(object d, Py_ssize_t* pos, PyObject** key, PyObject** value)


# Containers nest no deeper than this here (a syscall's args nest 4 levels); a deeper one,
# and the recursion limits of orjson and the standard library, are the reference's to meet.
cdef enum:
    MAX_DEPTH = 64
    OK = 0
    REFUSED = 1

cdef const char* _HEX = b"0123456789abcdef"
# Per byte: 0 copied as it is, 1 escaped as \u00XX, else the letter after the backslash.
cdef unsigned char _ESCAPE[256]


cdef void _init_escape():
    cdef int i
    for i in range(256):
        _ESCAPE[i] = 0
    for i in range(32):
        _ESCAPE[i] = 1
    _ESCAPE[8] = ord("b")
    _ESCAPE[9] = ord("t")
    _ESCAPE[10] = ord("n")
    _ESCAPE[12] = ord("f")
    _ESCAPE[13] = ord("r")
    _ESCAPE[34] = ord('"')
    _ESCAPE[92] = ord("\\")


_init_escape()


cdef struct Out:
    char* p
    Py_ssize_t n
    Py_ssize_t cap


cdef int _grow(Out* o, Py_ssize_t more) except -1:
    cdef Py_ssize_t cap
    cdef char* p
    if o.n + more <= o.cap:
        return 0
    cap = max(o.cap * 2, o.n + more + 4096)
    p = <char*>PyMem_Realloc(o.p, cap)
    if p == NULL:
        raise MemoryError()
    o.p = p
    o.cap = cap
    return 0


cdef inline int _raw(Out* o, const char* s, Py_ssize_t n) except -1:
    if o.n + n > o.cap:
        _grow(o, n)
    memcpy(o.p + o.n, s, n)
    o.n += n
    return 0


cdef inline int _byte(Out* o, char c) except -1:
    if o.n + 1 > o.cap:
        _grow(o, 1)
    o.p[o.n] = c
    o.n += 1
    return 0


# "00" .. "99": integers are written two digits a step (timestamps have 19).
cdef char _DIGITS[200]


cdef void _init_digits():
    cdef int i
    for i in range(100):
        _DIGITS[2 * i] = <char>(48 + i // 10)
        _DIGITS[2 * i + 1] = <char>(48 + i % 10)


_init_digits()


cdef int _u64(Out* o, unsigned long long v) except -1:
    cdef char tmp[24]
    cdef int i = 24
    cdef unsigned int d
    while v >= 100:
        d = <unsigned int>(v % 100)
        v //= 100
        i -= 2
        tmp[i] = _DIGITS[2 * d]
        tmp[i + 1] = _DIGITS[2 * d + 1]
    if v >= 10:
        i -= 2
        tmp[i] = _DIGITS[2 * v]
        tmp[i + 1] = _DIGITS[2 * v + 1]
    else:
        i -= 1
        tmp[i] = <char>(48 + v)
    return _raw(o, tmp + i, 24 - i)


cdef int _int(Out* o, object v) except -1:
    """An exact int: OK, or REFUSED beyond orjson's range (-2**63 .. 2**64-1)."""
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    cdef unsigned long long u
    if overflow == 0:
        if x < 0:
            _byte(o, b"-")
            return _u64(o, <unsigned long long>(-(x + 1)) + 1)
        return _u64(o, <unsigned long long>x)
    if overflow < 0:
        return REFUSED
    try:
        u = PyLong_AsUnsignedLongLong(v)
    except OverflowError:
        return REFUSED
    return _u64(o, u)


cdef int _utf8(Out* o, const unsigned char* s, Py_ssize_t n) except -1:
    """A JSON string of UTF-8 bytes, escaped as orjson escapes."""
    cdef Py_ssize_t i, start = 0
    cdef unsigned char c, e
    _grow(o, n + 2)
    o.p[o.n] = b'"'
    o.n += 1
    for i in range(n):
        c = s[i]
        e = _ESCAPE[c]
        if e == 0:
            continue
        _raw(o, <const char*>s + start, i - start)
        start = i + 1
        if e == 1:
            _raw(o, b"\\u00", 4)
            _byte(o, _HEX[c >> 4])
            _byte(o, _HEX[c & 15])
        else:
            _byte(o, b"\\")
            _byte(o, <char>e)
    _raw(o, <const char*>s + start, n - start)
    return _byte(o, b'"')


cdef int _str(Out* o, object s) except -1:
    """An exact str: OK, or REFUSED for lone surrogates (orjson refuses them too)."""
    cdef bytes encoded
    if PyUnicode_IS_ASCII(s):
        return _utf8(o, <const unsigned char*>PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s))
    try:
        encoded = PyUnicode_AsUTF8String(s)
    except UnicodeEncodeError:
        return REFUSED
    return _utf8(o, <const unsigned char*>PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded))


cdef int _value(Out* o, object v, int depth) except -1:
    """Any value orjson takes without options, where this encoder writes the same bytes."""
    cdef Py_ssize_t pos = 0, i, n
    cdef PyObject* key
    cdef PyObject* item
    cdef int r
    if v is None:
        return _raw(o, b"null", 4)
    if v is True:
        return _raw(o, b"true", 4)
    if v is False:
        return _raw(o, b"false", 5)
    if PyLong_CheckExact(v):
        return _int(o, v)
    if PyUnicode_CheckExact(v):
        return _str(o, v)
    if depth >= MAX_DEPTH:
        return REFUSED
    if PyDict_CheckExact(v):
        _byte(o, b"{")
        n = 0
        while PyDict_Next(v, &pos, &key, &item):
            if not PyUnicode_CheckExact(<object>key):
                return REFUSED
            if n:
                _byte(o, b",")
            n += 1
            r = _str(o, <object>key)
            if r != OK:
                return r
            _byte(o, b":")
            r = _value(o, <object>item, depth + 1)
            if r != OK:
                return r
        return _byte(o, b"}")
    if PyList_CheckExact(v) or PyTuple_CheckExact(v):
        _byte(o, b"[")
        n = len(v)
        for i in range(n):
            if i:
                _byte(o, b",")
            r = _value(o, v[i], depth + 1)
            if r != OK:
                return r
        return _byte(o, b"]")
    return REFUSED


# Field values are read from the objects' slots, where the class's member descriptors say
# they are: `getattr` on each of a syscall's 25 fields (its FdInfos' too) cost ≈ 0.2 µs a
# record. Objects of other classes (a subclass) go to the reference.
cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    int T_OBJECT_EX


_SYSCALL_FIELDS = (
    "id", "pid", "tid", "name", "enter_ns", "exit_ns", "ret", "errno", "fd", "fdinfo", "ret_fdinfo", "nbytes",
    "data", "msg_lens", "args",
)
_FDINFO_FIELDS = ("kind", "local", "remote", "path", "inode")
_LINK_FIELDS = ("id", "kind", "syscall", "packets", "delay_ns", "note")
# Each key as it precedes its value in the record (the record's first with its brace).
cdef list _SYSCALL_KEYS = [(',"%s":' % f).encode() for f in _SYSCALL_FIELDS]
cdef list _FDINFO_KEYS = [(',"%s":' % f).encode() for f in _FDINFO_FIELDS]
cdef list _LINK_KEYS = [(',"%s":' % f).encode() for f in _LINK_FIELDS]
_SYSCALL_KEYS[0] = b"{" + _SYSCALL_KEYS[0][1:]
_FDINFO_KEYS[0] = b"{" + _FDINFO_KEYS[0][1:]
_LINK_KEYS[0] = b"{" + _LINK_KEYS[0][1:]

cdef Py_ssize_t _SYSCALL_AT[15]
cdef Py_ssize_t _FDINFO_AT[5]
cdef Py_ssize_t _LINK_AT[6]
cdef type _SYSCALL = Syscall
cdef type _FDINFO = FdInfo
cdef type _LINK = Link


cdef void _offsets(type cls, tuple names, Py_ssize_t* out) except *:
    cdef object descr
    cdef PyMemberDef* member
    for i, name in enumerate(names):
        descr = cls.__dict__[name]
        if type(descr).__name__ != "member_descriptor":
            raise TypeError(f"{cls.__name__}.{name} is not a slot")
        member = (<PyMemberDescrObject*>descr).d_member
        if member.type != T_OBJECT_EX:
            raise TypeError(f"{cls.__name__}.{name} is not an object slot")
        out[i] = member.offset


_offsets(Syscall, _SYSCALL_FIELDS, _SYSCALL_AT)
_offsets(FdInfo, _FDINFO_FIELDS, _FDINFO_AT)
_offsets(Link, _LINK_FIELDS, _LINK_AT)


cdef inline PyObject* _slot(object obj, Py_ssize_t offset):
    """The slot's value, borrowed; NULL when unset (the reference then raises AttributeError)."""
    return (<PyObject**>((<char*><PyObject*>obj) + offset))[0]


cdef inline int _keyed(Out* o, list keys, Py_ssize_t i) except -1:
    cdef bytes key = <bytes>keys[i]
    return _raw(o, PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))


cdef int _fields(Out* o, object obj, list keys, Py_ssize_t* at, Py_ssize_t lo, Py_ssize_t hi) except -1:
    """Fields lo..hi-1 of `obj`, each with its key."""
    cdef Py_ssize_t i
    cdef PyObject* v
    cdef int r
    for i in range(lo, hi):
        v = _slot(obj, at[i])
        if v == NULL:
            return REFUSED
        _keyed(o, keys, i)
        r = _value(o, <object>v, 1)
        if r != OK:
            return r
    return OK


cdef int _fdinfo(Out* o, object info) except -1:
    cdef int r
    if info is None:
        return _raw(o, b"null", 4)
    if type(info) is not _FDINFO:
        return REFUSED
    r = _fields(o, info, _FDINFO_KEYS, _FDINFO_AT, 0, 5)
    if r != OK:
        return r
    return _byte(o, b"}")


cdef int _hex(Out* o, bytes data) except -1:
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(data)
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef char* p
    _grow(o, 2 * n + 2)
    p = o.p + o.n
    p[0] = b'"'
    for i in range(n):
        p[1 + 2 * i] = _HEX[s[i] >> 4]
        p[2 + 2 * i] = _HEX[s[i] & 15]
    p[2 * n + 1] = b'"'
    o.n += 2 * n + 2
    return 0


cdef int _syscall(Out* o, object sc) except -1:
    """`json_report.syscall_record(sc)` as orjson writes it, or REFUSED."""
    cdef int r
    cdef Py_ssize_t i
    cdef PyObject* v
    if type(sc) is not _SYSCALL:
        return REFUSED
    # id .. fd; fdinfo, ret_fdinfo; nbytes; data (as hex); msg_lens, args.
    r = _fields(o, sc, _SYSCALL_KEYS, _SYSCALL_AT, 0, 9)
    if r != OK:
        return r
    for i in range(9, 11):
        v = _slot(sc, _SYSCALL_AT[i])
        if v == NULL:
            return REFUSED
        _keyed(o, _SYSCALL_KEYS, i)
        r = _fdinfo(o, <object>v)
        if r != OK:
            return r
    r = _fields(o, sc, _SYSCALL_KEYS, _SYSCALL_AT, 11, 12)
    if r != OK:
        return r
    v = _slot(sc, _SYSCALL_AT[12])
    if v == NULL:
        return REFUSED
    _keyed(o, _SYSCALL_KEYS, 12)
    if <object>v is None:
        _raw(o, b"null", 4)
    elif PyBytes_CheckExact(<object>v):
        _hex(o, <bytes>v)
    else:
        return REFUSED
    r = _fields(o, sc, _SYSCALL_KEYS, _SYSCALL_AT, 13, 15)
    if r != OK:
        return r
    return _byte(o, b"}")


cdef int _link(Out* o, object link) except -1:
    """`link_to_dict(link)` as orjson writes it, or REFUSED."""
    cdef int r
    if type(link) is not _LINK:
        return REFUSED
    r = _fields(o, link, _LINK_KEYS, _LINK_AT, 0, 6)
    if r != OK:
        return r
    return _byte(o, b"}")


# Records are written here first, then copied to the caller's bytearray every `_SPILL`
# bytes: one buffer for the life of the process, as a fresh one per batch was mapped anew
# by the kernel each time (its page faults were a quarter of the encoding's samples), and a
# small one, as it is never freed.
cdef Out _scratch
_scratch.p = NULL
_scratch.n = 0
_scratch.cap = 0
cdef Py_ssize_t _SPILL = 1 << 18


cdef int _spill(Out* o, bytearray buf) except -1:
    cdef Py_ssize_t at = PyByteArray_GET_SIZE(buf)
    if o.n:
        PyByteArray_Resize(buf, at + o.n)
        memcpy(PyByteArray_AS_STRING(buf) + at, o.p, o.n)
        o.n = 0
    return 0


cdef bint _scratch_taken = False


cdef int _encode(list items, bytearray buf, list sizes, object fallback, bint links) except -1:
    """Into `_scratch`, unless a call is already using it: a fallback runs Python code,
    where another thread may call the encoder too; that one gets a buffer of its own."""
    global _scratch_taken
    cdef Out own
    cdef Out* o = &_scratch
    if _scratch_taken:
        own.p = NULL
        own.n = 0
        own.cap = 0
        o = &own
    else:
        _scratch_taken = True
    try:
        o.n = 0
        return _encode_into(o, items, buf, sizes, fallback, links)
    finally:
        if o == &_scratch:
            _scratch_taken = False
        else:
            PyMem_Free(own.p)


cdef int _encode_into(Out* o, list items, bytearray buf, list sizes, object fallback, bint links) except -1:
    cdef Py_ssize_t start
    cdef int r
    cdef bytes record
    for item in items:
        start = o.n
        r = _link(o, item) if links else _syscall(o, item)
        if r != OK:
            o.n = start
            record = fallback(item)
            _raw(o, PyBytes_AS_STRING(record), PyBytes_GET_SIZE(record))
        _byte(o, b",")
        sizes.append(o.n - start)
        if o.n >= _SPILL:
            _spill(o, buf)
    return _spill(o, buf)


def encode_syscalls(list calls, bytearray buf, list sizes, fallback):
    """Append each call's record and a comma to `buf`, and its length with the comma to
    `sizes`; `fallback(sc)` gives the bytes of a record this encoder refuses."""
    _encode(calls, buf, sizes, fallback, False)


def encode_links(list links, bytearray buf, list sizes, fallback):
    """`encode_syscalls` for links."""
    _encode(links, buf, sizes, fallback, True)
