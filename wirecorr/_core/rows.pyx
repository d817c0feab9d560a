# cython: language_level=3, wraparound=False, initializedcheck=False
"""Syscall objects straight from a format-2 block's columns, and a batch of links into
columns (recording/columns.py).

Every reader of a recording (`analyze`, the linking pass, `edit`) turns each syscall row
into a `Syscall`. `SyscallRows.rows` in Python made a list per column (Arrow's `to_pylist`
boxes through a scalar per value) and ran the dataclass `__init__`, ≈ 1 µs a row: 0.8 s of
bench/correlate's 800k. Here each object is allocated and its slots are filled from the
int64 buffers and the per-batch dictionaries, the way `__init__` would have.

Only sound while `Syscall` is a slots dataclass whose `__init__` does nothing but assign
its fields, in the order given; `_layout` checks that at import and refuses to load
otherwise (a missing build is an error too, see `_core/__init__.py`). `WIRECORR_PURE=1`
makes `SyscallRows.rows` use the reference, and tests/test_recording_v2.py holds the two to
equal objects.
"""

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.list cimport PyList_New, PyList_SET_ITEM
from libc.stdint cimport int32_t, int64_t, uint8_t

import dataclasses

import numpy as np

from wirecorr.model import Syscall


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    object PyLong_FromLongLong(long long v)
    object PyBytes_FromStringAndSize(const char* s, Py_ssize_t n)
    PyObject* PyType_GenericAlloc(PyTypeObject* t, Py_ssize_t n) except NULL
    int T_OBJECT_EX


# The fields in `Syscall.__init__`'s order, as the builder fills them.
_FIELDS = (
    "id", "pid", "tid", "name", "enter_ns", "args", "exit_ns", "ret", "errno",
    "fd", "fdinfo", "ret_fdinfo", "nbytes", "data", "msg_lens",
)
cdef enum:
    NFIELDS = 15
cdef Py_ssize_t _OFFSET[NFIELDS]


cdef _layout():
    """Each field's slot offset, after checking the class is what this builder assumes."""
    names = tuple(f.name for f in dataclasses.fields(Syscall))
    if names != _FIELDS or tuple(Syscall.__slots__) != _FIELDS:
        raise ImportError(f"wirecorr._core.rows: Syscall's fields changed ({names}); update rows.pyx")
    if hasattr(Syscall, "__post_init__") or Syscall.__new__ is not object.__new__:
        raise ImportError("wirecorr._core.rows: Syscall does more than assign its fields")
    cdef PyMemberDescrObject* descr
    for i, name in enumerate(_FIELDS):
        member = Syscall.__dict__[name]
        if type(member).__name__ != "member_descriptor":
            raise ImportError(f"wirecorr._core.rows: Syscall.{name} is not a slot")
        descr = <PyMemberDescrObject*>member
        if descr.d_member.type != T_OBJECT_EX:
            raise ImportError(f"wirecorr._core.rows: Syscall.{name} is not an object slot")
        _OFFSET[i] = descr.d_member.offset


_layout()


cdef inline void _set(PyObject* obj, int field, object value):
    """Fill an empty slot (a fresh object's slots are NULL, so nothing is released)."""
    Py_INCREF(value)
    (<PyObject**>((<char*>obj) + _OFFSET[field]))[0] = <PyObject*>value


cdef inline object _int_or_none(const int64_t[::1] values, const uint8_t[::1] valid, Py_ssize_t i):
    if valid.shape[0] and not valid[i]:
        return None
    return PyLong_FromLongLong(values[i])


cdef inline object _shared(object cache, int64_t value):
    """One int object per distinct pid or tid (a few per batch), not one per row."""
    got = cache.get(value)
    if got is None:
        got = PyLong_FromLongLong(value)
        cache[value] = got
    return got


def build(
    Py_ssize_t lo,
    Py_ssize_t hi,
    const int64_t[::1] ids,
    const int64_t[::1] pids,
    const int64_t[::1] tids,
    const int64_t[::1] enter,
    const int64_t[::1] exit_ns,
    const uint8_t[::1] exit_valid,
    const int64_t[::1] ret,
    const uint8_t[::1] ret_valid,
    const int64_t[::1] fd,
    const uint8_t[::1] fd_valid,
    const int64_t[::1] nbytes,
    const uint8_t[::1] nbytes_valid,
    list names,
    const int64_t[::1] name_idx,
    list args,
    const int64_t[::1] args_idx,
    list errnos,
    const int64_t[::1] errno_idx,
    list fdinfos,
    const int64_t[::1] fdinfo_idx,
    list ret_fdinfos,
    const int64_t[::1] ret_fdinfo_idx,
    const int32_t[::1] data_offsets,
    const uint8_t[::1] data_valid,
    const unsigned char[::1] data_values,
    list msg_lens,
):
    """The `Syscall`s of rows lo..hi-1. An empty `*_valid` means the column has no null;
    `data_offsets` has a row more than the batch (Arrow's binary layout); `msg_lens` is
    None when every row's is null, else the column as Python lists."""
    cdef Py_ssize_t i, n = hi - lo, start, end
    cdef PyObject* obj
    cdef PyTypeObject* cls = <PyTypeObject*>Syscall
    cdef const char* base = NULL
    if data_values.shape[0]:
        base = <const char*>&data_values[0]
    out = PyList_New(n)
    pid_cache = {}
    tid_cache = {}
    for i in range(lo, hi):
        obj = PyType_GenericAlloc(cls, 0)
        # The list owns the new reference; the slots below are filled before any code
        # could look at the object.
        PyList_SET_ITEM(out, i - lo, <object>obj)
        _set(obj, 0, PyLong_FromLongLong(ids[i]))
        _set(obj, 1, _shared(pid_cache, pids[i]))
        _set(obj, 2, _shared(tid_cache, tids[i]))
        _set(obj, 3, names[name_idx[i]])
        _set(obj, 4, PyLong_FromLongLong(enter[i]))
        _set(obj, 5, args[args_idx[i]])
        _set(obj, 6, _int_or_none(exit_ns, exit_valid, i))
        _set(obj, 7, _int_or_none(ret, ret_valid, i))
        _set(obj, 8, errnos[errno_idx[i]])
        _set(obj, 9, _int_or_none(fd, fd_valid, i))
        _set(obj, 10, fdinfos[fdinfo_idx[i]])
        _set(obj, 11, ret_fdinfos[ret_fdinfo_idx[i]])
        _set(obj, 12, _int_or_none(nbytes, nbytes_valid, i))
        if data_valid.shape[0] and not data_valid[i]:
            _set(obj, 13, None)
        else:
            start = data_offsets[i]
            end = data_offsets[i + 1]
            _set(obj, 13, PyBytes_FromStringAndSize(base + start, end - start) if base != NULL else b"")
        _set(obj, 14, None if msg_lens is None else msg_lens[i])
    return out


cdef inline int32_t _code(dict codes, list values, str value) except -1:
    """`value`'s index in `values`, appended at its first appearance (as `dictionary_encode` numbers)."""
    code = codes.get(value)
    if code is None:
        code = codes[value] = len(values)
        values.append(value)
    return code


def link_columns(list links):
    """The columns of a format-2 `links` block for `links` (`columns.build_link_table`'s
    values, as numpy arrays and two short lists): ids, kind codes and the kinds in order of
    first appearance (as `dictionary_encode` numbers them), syscall ids, the packets' list
    offsets and values, delays with their validity, note codes with their validity and
    the notes in order of first appearance.

    Raises TypeError on a value of another type than the reference's columns hold (a bool
    or an int subclass included, which Arrow may take or refuse its own way): the caller
    then builds the chunk the reference way, which decides what fits.
    """
    cdef Py_ssize_t n = len(links), i, total = 0
    cdef object link, v, pk, p, kind, note
    cdef dict codes = {}, note_codes = {}
    cdef list kinds = [], notes = []
    for link in links:
        pk = link.packets
        if type(pk) is not list:
            raise TypeError("packets is not a list")
        total += len(<list>pk)
    if total >= 2**31:
        raise TypeError("too many packets for one list column")
    ids_a = np.empty(n, np.int64)
    sys_a = np.empty(n, np.int64)
    delay_a = np.zeros(n, np.int64)
    valid_a = np.empty(n, np.bool_)
    kind_a = np.empty(n, np.int32)
    note_a = np.zeros(n, np.int32)
    noted_a = np.zeros(n, np.bool_)
    off_a = np.empty(n + 1, np.int32)
    val_a = np.empty(total, np.int64)
    cdef int64_t[::1] ids = ids_a, sysc = sys_a, delays = delay_a, values = val_a
    cdef uint8_t[::1] valid = valid_a.view(np.uint8)
    cdef uint8_t[::1] noted = noted_a.view(np.uint8)
    cdef int32_t[::1] kcode = kind_a, ncode = note_a, offsets = off_a
    cdef Py_ssize_t at = 0
    offsets[0] = 0
    for i in range(n):
        link = links[i]
        v = link.id
        if type(v) is not int:
            raise TypeError("id is not an int")
        ids[i] = v
        v = link.syscall
        if type(v) is not int:
            raise TypeError("syscall is not an int")
        sysc[i] = v
        kind = link.kind
        if type(kind) is not str:
            raise TypeError("kind is not a str")
        kcode[i] = _code(codes, kinds, kind)
        v = link.delay_ns
        if v is None:
            valid[i] = 0
        elif type(v) is not int:
            raise TypeError("delay_ns is not an int")
        else:
            delays[i] = v
            valid[i] = 1
        note = link.note
        if note is not None:
            if type(note) is not str:
                raise TypeError("note is not a str")
            ncode[i] = _code(note_codes, notes, note)
            noted[i] = 1
        for p in <list>link.packets:
            if type(p) is not int:
                raise TypeError("a packet is not an int")
            values[at] = p
            at += 1
        offsets[i + 1] = at
    return ids_a, kind_a, kinds, sys_a, off_a, val_a, delay_a, valid_a, note_a, noted_a, notes
