"""Format 2's syscall and link records: many per Custom Block, as columns in Arrow IPC.

Format 1 spent one JSON Custom Block per syscall, ≈ 450 bytes on the echo workload and a
JSON parse plus a Python object walk per syscall on every read (bench/RESULTS.md). Here a
flush of up to `BATCH_ROWS` syscalls becomes one `syscalls` block holding one Arrow IPC
stream: typed columns, LZ4-compressed, with the values that repeat on every call (names,
errnos, fd identities, args objects) dictionary-encoded, so a read turns a block into
numpy/Arrow columns in C and into `Syscall` objects with one constructor call per row.
Arrow rather than a struct layout of our own was chosen by measurement
(bench/format_v2, bench/RESULTS.md) and because Arrow is what Parquet, DuckDB and Spark
read. docs/recording-format.md is the specification.

Every block is a complete stream (its schema and dictionaries included), so a file cut by
a SIGKILL loses only the block being written. A syscall whose values the columns cannot
hold exactly (an integer beyond 64 bits, a string with lone surrogates, a value of the
wrong type) is written as a format-1 `syscall` record instead, which the reader takes in
either format: the common path stays columnar and the round trip stays exact.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc

from wirecorr._core import pure_requested
from wirecorr.errors import InputError, WirecorrError
from wirecorr.json_codec import dumps, loads
from wirecorr.model import FdInfo, Link, Syscall
from wirecorr.recording import format as fmt
from wirecorr.sources.capture_file import CaptureReader, CustomBlock, TruncatedCapture

TAG_SYSCALLS = fmt.TAG_SYSCALLS
TAG_LINKS = fmt.TAG_LINKS
# The block layout version, in the stream's schema metadata; columns may be added within it.
COLUMNS_KEY = b"wirecorr.syscalls"
COLUMNS_VERSION = b"1"
# Rows per block: large enough that the per-block schema and dictionaries (≈ 5 KB) cost
# well under a byte per syscall, small enough that the TUI decodes one into Syscall objects
# (≈ 1 µs a row) between two key presses, and that a block stays about a MB.
BATCH_ROWS = 16384
# Below this many rows a block of columns (≈ 5 KB of schema and dictionaries alone) is
# larger than format-1 records (≈ 350 B each on the echo workload): a nearly idle program's
# one-second flushes stay small.
SMALL_BATCH = 16
# Data preview bytes per block (before compression); `record --data-bytes` has no limit.
BATCH_DATA_BYTES = 8 << 20

_I64 = pa.int64()
_STR_DICT = pa.dictionary(pa.int32(), pa.string())
FDINFO_TYPE = pa.struct(
    [("kind", pa.string()), ("local", pa.string()), ("remote", pa.string()), ("path", pa.string()), ("inode", _I64)]
)
_FDINFO_DICT = pa.dictionary(pa.int32(), FDINFO_TYPE)
SCHEMA = pa.schema(
    [
        pa.field("id", _I64, nullable=False),
        pa.field("pid", _I64, nullable=False),
        pa.field("tid", _I64, nullable=False),
        pa.field("name", _STR_DICT, nullable=False),
        pa.field("enter_ns", _I64, nullable=False),
        pa.field("exit_ns", _I64),
        pa.field("ret", _I64),
        pa.field("errno", _STR_DICT),
        pa.field("fd", _I64),
        pa.field("fdinfo", _FDINFO_DICT),
        pa.field("ret_fdinfo", _FDINFO_DICT),
        pa.field("nbytes", _I64),
        pa.field("data", pa.binary()),
        pa.field("msg_lens", pa.list_(_I64)),
        # The args object in format 1's tagged JSON value encoding (format.encode_value).
        pa.field("args", _STR_DICT, nullable=False),
    ],
    metadata={COLUMNS_KEY: COLUMNS_VERSION},
)
LINK_SCHEMA = pa.schema(
    [
        pa.field("id", _I64, nullable=False),
        pa.field("kind", _STR_DICT, nullable=False),
        pa.field("syscall", _I64, nullable=False),
        pa.field("packets", pa.list_(_I64), nullable=False),
        pa.field("delay_ns", _I64),
        pa.field("note", _STR_DICT),
    ],
    metadata={b"wirecorr.links": b"1"},
)
# LZ4 rather than ZSTD: 26 against 11 bytes per syscall on the echo workload, but read 3x
# faster, as Arrow decompresses each of a block's ~45 buffers with a fresh ZSTD context
# (bench/format_v2, bench/RESULTS.md). The reader takes either.
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
# A block's buffers decompressed in the reading thread: Arrow's pool spreads a block's ~45
# small buffers over threads, which costs more than it saves at this size (the 24 blocks of
# bench/correlate's recording: 26 against 40 ms, medians of 15 alternating reads).
_READ_OPTIONS = pa.ipc.IpcReadOptions(use_threads=False)
_GETTERS = tuple(map(attrgetter, SCHEMA.names))
_LINK_GETTERS = tuple(map(attrgetter, LINK_SCHEMA.names))
_PREFIX = TAG_SYSCALLS.encode() + b"\n"
_V1_PREFIX = fmt.TAG_SYSCALL.encode() + b"\n"
_CUSTOM_HEAD = struct.Struct("<III")  # block type, total length, PEN
_TOTAL = struct.Struct("<I")
_INT64 = range(-(2**63), 2**63)
# What building the columns raises on a value they cannot hold (see `_fits`).
_CONVERSION_ERRORS = (pa.ArrowException, OverflowError, TypeError, ValueError, UnicodeEncodeError)


# -- writing ---------------------------------------------------------------------------


def syscall_blocks(syscalls: Sequence[Syscall]) -> bytes:
    """The Custom Blocks for `syscalls`, in order: `syscalls` blocks of up to `BATCH_ROWS`
    rows, plus a format-1 `syscall` block for each syscall the columns cannot hold (and for
    each of fewer than `SMALL_BATCH`)."""
    if len(syscalls) < SMALL_BATCH:
        return b"".join(map(fmt.syscall_block, syscalls))
    out: list[bytes] = []
    for start in range(0, len(syscalls), BATCH_ROWS):
        chunk = syscalls[start : start + BATCH_ROWS]
        try:
            table = build_table(chunk)
        except _CONVERSION_ERRORS:
            regular = [sc for sc in chunk if _fits(sc)]
            out.extend(fmt.syscall_block(sc) for sc in chunk if not _fits(sc))
            if not regular:
                continue
            table = build_table(regular)
        out.extend(_blocks(table))
    return b"".join(out)


def build_table(syscalls: Sequence[Syscall]) -> pa.Table:
    """The syscalls as one table of SCHEMA; raises one of `_CONVERSION_ERRORS` when a value
    does not fit its column."""
    ids, pids, tids, names, enter, exit_, ret, errno, fd, fdinfo, ret_fdinfo, nbytes, data, msg_lens, args = (
        list(map(get, syscalls)) for get in _GETTERS
    )
    columns = [
        pa.array(ids, _I64),
        pa.array(pids, _I64),
        pa.array(tids, _I64),
        pa.array(names, pa.string()).dictionary_encode(),
        pa.array(enter, _I64),
        pa.array(exit_, _I64),
        pa.array(ret, _I64),
        pa.array(errno, pa.string()).dictionary_encode(),
        pa.array(fd, _I64),
        _fdinfo_column(fdinfo),
        _fdinfo_column(ret_fdinfo),
        pa.array(nbytes, _I64),
        pa.array(data, pa.binary()),
        pa.array(msg_lens, pa.list_(_I64)),
        _args_column(args),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _args_column(args: list[dict[str, Any]]) -> pa.DictionaryArray:
    """Each distinct args value JSON-encoded once. The tracer makes a new dict per call, so
    repeats are found by `repr`, which is exact for every type `encode_value` takes (equal
    reprs, equal values) and, unlike JSON encoding each row, costs no large allocation."""
    keys = pa.array(list(map(repr, args)), pa.string()).dictionary_encode()
    _, first = np.unique(keys.indices.to_numpy(), return_index=True)
    encode = fmt.encode_value
    values = pa.array([dumps(encode(args[row])) for row in first.tolist()], pa.string())
    return pa.DictionaryArray.from_arrays(keys.indices, values)


class RecordBatch(Protocol):
    """What the tracer's compiled loop drains (wirecorr/_core/tracer.pyx `Batch`): its records
    as a numpy structured array, with the values they index kept once per batch."""

    names: list[str | None]
    fdinfos: list[FdInfo]
    data: bytes

    def __len__(self) -> int: ...

    def records(self) -> np.ndarray: ...

    def args_column(self) -> tuple[list[dict[str, Any]], np.ndarray]: ...

    def errno_name(self, code: int) -> str: ...

    def syscalls(self) -> list[Syscall]: ...


def batch_blocks(batches: Sequence[RecordBatch]) -> bytes:
    """The Custom Blocks for the tracer's record batches: their columns are taken from the
    records as numpy arrays, with Python work only per distinct value (names, errnos, fd
    identities, args), not per syscall. Few rows, or values the columns cannot hold, go
    through `syscall_blocks` as `Syscall` objects."""
    rows = sum(map(len, batches))
    if rows < SMALL_BATCH:
        return syscall_blocks([sc for batch in batches for sc in batch.syscalls()])
    try:
        table = batch_table(batches)
    except _CONVERSION_ERRORS:
        return syscall_blocks([sc for batch in batches for sc in batch.syscalls()])
    return b"".join(_blocks(table))


def batch_table(batches: Sequence[RecordBatch]) -> pa.Table:
    """The batches' records as one table of SCHEMA, the same rows `build_table` makes of
    their `syscalls()` (tests/test_tracer_core.py compares the two)."""
    recs = np.concatenate([batch.records() for batch in batches])
    infos: list[FdInfo] = []
    args: list[dict[str, Any]] = []
    info_index: list[np.ndarray] = []
    args_index: list[np.ndarray] = []
    data_off: list[np.ndarray] = []
    base = 0
    for batch in batches:
        part = batch.records()
        info_index.append(part["info"] + len(infos))
        infos.extend(batch.fdinfos)
        values, index = batch.args_column()
        args_index.append(index + len(args))
        args.extend(values)
        data_off.append(part["data_off"] + base)
        base += len(batch.data)
    first = batches[0]
    done = recs["done"] != 0
    err = recs["err"]
    failed = err != 0
    ret = recs["ret"]
    moved = recs["moved"] != 0  # nbytes = ret: a data call's bytes moved, or sendmsg/recvmsg's ret
    nrs, name_index = np.unique(recs["nr"], return_inverse=True)
    # With return_inverse: np.unique without it imports numpy.ma (≈ 50 ms, on the flush
    # thread, holding the GIL the tracer's loop needs) to check for a masked array.
    codes, code_index = np.unique(err[failed], return_inverse=True)
    errno_index = np.zeros(len(recs), np.int32)
    errno_index[failed] = code_index
    offsets = np.append(np.concatenate(data_off), base).astype(np.int32)
    has_data = recs["has_data"] != 0  # sendmsg/recvmsg of 0 bytes: b"", not None
    data = pa.Array.from_buffers(
        pa.binary(),
        len(recs),
        [
            pa.py_buffer(np.packbits(has_data, bitorder="little")),
            pa.py_buffer(offsets),
            pa.py_buffer(b"".join(b.data for b in batches)),
        ],
    )
    encode = fmt.encode_value
    columns = [
        pa.array(recs["id"], _I64),
        pa.array(recs["pid"], _I64),
        pa.array(recs["tid"], _I64),
        pa.DictionaryArray.from_arrays(
            pa.array(name_index.astype(np.int32)), pa.array([first.names[nr] for nr in nrs.tolist()], pa.string())
        ),
        pa.array(recs["enter_ns"], _I64),
        pa.array(recs["exit_ns"], _I64, mask=~done),
        pa.array(ret, _I64, mask=~done),
        pa.DictionaryArray.from_arrays(
            pa.array(errno_index, mask=~failed),
            pa.array([first.errno_name(code) for code in codes.tolist()], pa.string()),
        ),
        pa.array(recs["fd"], _I64),
        _fdinfo_dictionary(np.concatenate(info_index).astype(np.int32), infos),
        pa.DictionaryArray.from_arrays(pa.nulls(len(recs), pa.int32()), pa.array([], FDINFO_TYPE)),
        pa.array(ret, _I64, mask=~moved),
        data,
        pa.nulls(len(recs), pa.list_(_I64)),
        pa.DictionaryArray.from_arrays(
            pa.array(np.concatenate(args_index)), pa.array([dumps(encode(value)) for value in args], pa.string())
        ),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _fdinfo_dictionary(index: np.ndarray, infos: Sequence[FdInfo]) -> pa.DictionaryArray:
    for info in infos:
        if type(info) is not FdInfo:
            raise TypeError(f"fdinfo is a {type(info).__name__}")
    values = pa.array(
        [{"kind": i.kind, "local": i.local, "remote": i.remote, "path": i.path, "inode": i.inode} for i in infos],
        FDINFO_TYPE,
    )
    return pa.DictionaryArray.from_arrays(pa.array(index), values)


def link_blocks(links: Sequence[Link]) -> bytes:
    """The Custom Blocks for `links`: `links` blocks of up to `BATCH_ROWS` rows, plus a
    format-1 `link` block for each link the columns cannot hold (as `syscall_blocks`)."""
    if len(links) < SMALL_BATCH:
        return b"".join(fmt.custom_block(fmt.TAG_LINK, fmt.link_to_dict(link)) for link in links)
    out: list[bytes] = []
    for start in range(0, len(links), BATCH_ROWS):
        chunk = links[start : start + BATCH_ROWS]
        try:
            table = build_link_table(chunk)
        except _CONVERSION_ERRORS:
            regular = [link for link in chunk if _link_fits(link)]
            out.extend(fmt.custom_block(fmt.TAG_LINK, fmt.link_to_dict(link)) for link in chunk if not _link_fits(link))
            if not regular:
                continue
            table = build_link_table(regular)
        out.append(_custom_block(TAG_LINKS, _ipc(table, LINK_SCHEMA)))
    return b"".join(out)


def build_link_table(links: Sequence[Link]) -> pa.Table:
    """The columns of `links`, gathered compiled (`_core/rows.link_columns`) unless
    `WIRECORR_PURE` asks for the reference, or a value is not of its column's exact type:
    the reference then decides whether Arrow takes it."""
    if pure_requested() or type(links) is not list:
        return reference_link_table(links)
    try:
        ids, kind_codes, kinds, syscalls, offsets, packets, delays, valid, note_codes, noted, notes = _compiled(
            "link_columns"
        )(links)
    except (TypeError, OverflowError):
        return reference_link_table(links)
    columns = [
        pa.array(ids),
        pa.DictionaryArray.from_arrays(pa.array(kind_codes), pa.array(kinds, pa.string())),
        pa.array(syscalls),
        pa.ListArray.from_arrays(pa.array(offsets), pa.array(packets)),
        pa.array(delays, mask=~valid),
        pa.DictionaryArray.from_arrays(pa.array(note_codes, mask=~noted), pa.array(notes, pa.string())),
    ]
    return pa.Table.from_arrays(columns, schema=LINK_SCHEMA)


def reference_link_table(links: Sequence[Link]) -> pa.Table:
    ids, kinds, syscalls, packets, delays, notes = (list(map(get, links)) for get in _LINK_GETTERS)
    columns = [
        pa.array(ids, _I64),
        pa.array(kinds, pa.string()).dictionary_encode(),
        pa.array(syscalls, _I64),
        pa.array(packets, pa.list_(_I64)),
        pa.array(delays, _I64),
        pa.array(notes, pa.string()).dictionary_encode(),
    ]
    return pa.Table.from_arrays(columns, schema=LINK_SCHEMA)


def _link_fits(link: Link) -> bool:
    return (
        _is_int64(link.id)
        and _is_text(link.kind)
        and _is_int64(link.syscall)
        and type(link.packets) is list
        and all(map(_is_int64, link.packets))
        and (link.delay_ns is None or _is_int64(link.delay_ns))
        and (link.note is None or _is_text(link.note))
    )


def _fdinfo_column(infos: Sequence[FdInfo | None]) -> pa.DictionaryArray:
    """One dictionary entry per distinct FdInfo object: the tracer shares one object per
    descriptor, so identity finds the repeats without hashing five fields per row."""
    ids = pa.array([None if info is None else id(info) for info in infos], pa.uint64()).dictionary_encode()
    by_id = {id(info): info for info in infos}
    unique = [by_id[i] for i in ids.dictionary.to_pylist()]
    for info in unique:
        if type(info) is not FdInfo:
            raise TypeError(f"fdinfo is a {type(info).__name__}")
    values = pa.array(
        [{"kind": i.kind, "local": i.local, "remote": i.remote, "path": i.path, "inode": i.inode} for i in unique],
        FDINFO_TYPE,
    )
    return pa.DictionaryArray.from_arrays(ids.indices, values)


def _blocks(table: pa.Table) -> Iterable[bytes]:
    """One block per `BATCH_DATA_BYTES` of data previews (usually the whole table)."""
    data = table.column("data")
    if data.nbytes <= BATCH_DATA_BYTES or table.num_rows == 1:
        yield _custom_block(TAG_SYSCALLS, _ipc(table, SCHEMA))
        return
    half = table.num_rows // 2
    yield from _blocks(table.slice(0, half))
    yield from _blocks(table.slice(half))


def _ipc(table: pa.Table, schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table, max_chunksize=BATCH_ROWS)
    return sink.getvalue().to_pybytes()


def _custom_block(tag: str, stream: bytes) -> bytes:
    body = tag.encode() + b"\n" + stream
    pad = -len(body) % 4
    total = 16 + len(body) + pad
    return b"".join((_CUSTOM_HEAD.pack(fmt.BT_CUSTOM, total, fmt.PEN), body, b"\0" * pad, _TOTAL.pack(total)))


def _fits(sc: Syscall) -> bool:
    """Whether the columns hold `sc` exactly: what pyarrow accepts, stated per row for the
    one batch in many that held a value it refused (`args` go through JSON, any value)."""
    return (
        all(map(_is_int64, (sc.id, sc.pid, sc.tid, sc.enter_ns)))
        and all(v is None or _is_int64(v) for v in (sc.exit_ns, sc.ret, sc.fd, sc.nbytes))
        and _is_text(sc.name)
        and (sc.errno is None or _is_text(sc.errno))
        and _fdinfo_fits(sc.fdinfo)
        and _fdinfo_fits(sc.ret_fdinfo)
        and (sc.data is None or type(sc.data) is bytes)
        and (sc.msg_lens is None or (type(sc.msg_lens) is list and all(map(_is_int64, sc.msg_lens))))
    )


def _is_int64(value: object) -> bool:
    return type(value) is int and value in _INT64


def _fdinfo_fits(info: FdInfo | None) -> bool:
    if info is None:
        return True
    return (
        type(info) is FdInfo
        and _is_text(info.kind)
        and all(v is None or _is_text(v) for v in (info.local, info.remote, info.path))
        and (info.inode is None or _is_int64(info.inode))
    )


def _is_text(value: object) -> bool:
    """A str that UTF-8 holds: not one with lone surrogates (undecodable file names)."""
    if type(value) is not str:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


# -- reading ---------------------------------------------------------------------------


def decode_block(data: bytes) -> pa.Table:
    """A `syscalls` block's data (after the PEN, tag line included) as a table of SCHEMA's
    columns; raises RecordFormatError for anything else."""
    return _decode(data, TAG_SYSCALLS, SCHEMA)


def decode_link_block(data: bytes) -> pa.Table:
    """A `links` block's data as a table of LINK_SCHEMA's columns (see `decode_block`)."""
    return _decode(data, TAG_LINKS, LINK_SCHEMA)


def _decode(data: bytes, tag: str, schema: pa.Schema) -> pa.Table:
    prefix = tag.encode() + b"\n"
    if not data.startswith(prefix):
        raise fmt.RecordFormatError(f"not a {tag} record")
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)[len(prefix) :], options=_READ_OPTIONS).read_all()
        table.validate(full=True)
    except (pa.ArrowException, OSError) as e:
        raise fmt.RecordFormatError(f"{tag} record is not an Arrow IPC stream: {e}") from None
    key, version = next(iter(schema.metadata.items()))
    found = (table.schema.metadata or {}).get(key)
    if found != version:
        raise fmt.RecordFormatError(f"{tag} record has column layout {found!r}, this wirecorr reads {version!r}")
    names = set(table.column_names)
    for want in schema:
        if want.name not in names:
            raise fmt.RecordFormatError(f"{tag} record has no `{want.name}` column")
        got = table.schema.field(want.name).type
        if got != want.type:
            raise fmt.RecordFormatError(f"{tag} record: `{want.name}` is {got}, wants {want.type}")
        column = table.column(want.name)
        if not want.nullable and column.null_count:
            raise fmt.RecordFormatError(f"{tag} record: `{want.name}` has nulls")
        # Nulls no Python value of the model can be: in a list, or an fd identity without a kind.
        if pa.types.is_list(want.type) and any(chunk.values.null_count for chunk in column.chunks):
            raise fmt.RecordFormatError(f"{tag} record: `{want.name}` holds a null in a list")
        if want.type == _FDINFO_DICT and any(chunk.dictionary.field("kind").null_count for chunk in column.chunks):
            raise fmt.RecordFormatError(f"{tag} record: `{want.name}` has an entry without a kind")
        # Timestamps within ±2^62, as format 1's schema has them (format.NS_LIMIT).
        if want.name.endswith("_ns") and column.length() - column.null_count:
            low, high = pc.min_max(column).values()
            if not -fmt.NS_LIMIT <= low.as_py() <= high.as_py() <= fmt.NS_LIMIT:
                raise fmt.RecordFormatError(f"{tag} record: `{want.name}` is out of the timestamp range")
    return table


def syscalls_from_table(table: pa.Table) -> list[Syscall]:
    """`Syscall` objects for the rows of a decoded block, sharing the repeated values
    (names, FdInfo, args dicts) between rows as the format-1 reader does."""
    out: list[Syscall] = []
    for batch in table.to_batches():
        rows = SyscallRows(batch)
        out.extend(rows.rows(0, len(rows)))
    return out


class SyscallRows:
    """One record batch of syscall columns, made into `Syscall` objects a range at a time.

    The TUI shows a million syscalls without an object per row until one is looked at or
    fed to the correlator: each distinct dictionary value (name, args, errno, FdInfo) is
    converted once per batch, and `rows(lo, hi)` builds only the objects asked for.
    """

    __slots__ = ("_batch", "_buffers", "_dicts", "_indices")

    def __init__(self, batch: pa.RecordBatch) -> None:
        self._batch = batch
        self._buffers: tuple[Any, ...] | None = None
        self._dicts: dict[str, list[Any]] = {}
        self._indices: dict[str, np.ndarray] = {}
        dict_columns = (
            ("name", _same),
            ("args", _decode_args),
            ("errno", _same),
            ("fdinfo", fmt.fdinfo_from_dict),
            ("ret_fdinfo", fmt.fdinfo_from_dict),
        )
        for name, convert in dict_columns:
            column = batch.column(name)
            values = [convert(v) for v in column.dictionary.to_pylist()]
            values.append(None)
            self._dicts[name] = values
            self._indices[name] = column.indices.fill_null(len(values) - 1).to_numpy(zero_copy_only=False)

    def __len__(self) -> int:
        return self._batch.num_rows

    def values(self, name: str) -> list[Any]:
        """A dictionary column's distinct values, converted, with None last (for nulls)."""
        return self._dicts[name]

    def indices(self, name: str) -> np.ndarray:
        """Each row's position in `values(name)`."""
        return self._indices[name]

    def int_column(self, name: str, fill: int = 0) -> np.ndarray:
        """An int64 column as numpy, nulls as `fill`."""
        return self._batch.column(name).fill_null(fill).to_numpy(zero_copy_only=False)

    def end_ns(self) -> np.ndarray:
        """`Syscall.end_ns` of every row: the exit, or the entry for a call that never returned."""
        exit_ns = self._batch.column("exit_ns")
        enter = self._batch.column("enter_ns").to_numpy(zero_copy_only=False)
        if not exit_ns.null_count:
            return exit_ns.to_numpy(zero_copy_only=False)
        return np.where(exit_ns.is_null().to_numpy(zero_copy_only=False), enter, exit_ns.fill_null(0).to_numpy())

    def rows(self, lo: int, hi: int) -> list[Syscall]:
        """The `Syscall`s of rows lo..hi-1, built compiled (`_core/rows.pyx`) unless
        `WIRECORR_PURE` asks for the reference."""
        if pure_requested():
            return self.reference_rows(lo, hi)
        if self._buffers is None:
            self._buffers = self._prepare()
        return _build_rows()(lo, hi, *self._buffers)

    def _prepare(self) -> tuple[Any, ...]:
        """The batch's columns as the compiled builder takes them: int64 buffers, a
        validity mask only where the column has nulls, the dictionary columns as
        (values, indices), the previews as Arrow's offsets and bytes."""
        batch = self._batch

        def ints(name: str) -> np.ndarray:
            return np.ascontiguousarray(batch.column(name).fill_null(0).to_numpy(zero_copy_only=False), np.int64)

        def valid(column: pa.Array) -> np.ndarray:
            if not column.null_count:
                return _NO_MASK
            return np.ascontiguousarray(column.is_valid().to_numpy(zero_copy_only=False), np.uint8)

        def nullable(name: str) -> tuple[np.ndarray, np.ndarray]:
            return ints(name), valid(batch.column(name))

        def lookup(name: str) -> tuple[list[Any], np.ndarray]:
            return self._dicts[name], np.ascontiguousarray(self._indices[name], np.int64)

        data = batch.column("data")
        buffers = data.buffers()
        offsets = np.frombuffer(buffers[1], np.int32)[data.offset : data.offset + len(data) + 1]
        values = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else _NO_MASK
        lens = batch.column("msg_lens")
        return (
            ints("id"),
            ints("pid"),
            ints("tid"),
            ints("enter_ns"),
            *nullable("exit_ns"),
            *nullable("ret"),
            *nullable("fd"),
            *nullable("nbytes"),
            *lookup("name"),
            *lookup("args"),
            *lookup("errno"),
            *lookup("fdinfo"),
            *lookup("ret_fdinfo"),
            np.ascontiguousarray(offsets),
            valid(data),
            values,
            None if lens.null_count == len(lens) else lens.to_pylist(),
        )

    def reference_rows(self, lo: int, hi: int) -> list[Syscall]:
        """`rows` in Python: the reference the compiled builder is tested against."""
        part = self._batch.slice(lo, hi - lo)
        col = part.column

        def lookup(name: str) -> list[Any]:
            return list(map(self._dicts[name].__getitem__, self._indices[name][lo:hi].tolist()))

        return list(
            map(
                Syscall,
                col("id").to_pylist(),
                _shared(col("pid").to_pylist()),
                _shared(col("tid").to_pylist()),
                lookup("name"),
                col("enter_ns").to_pylist(),
                lookup("args"),
                col("exit_ns").to_pylist(),
                col("ret").to_pylist(),
                lookup("errno"),
                col("fd").to_pylist(),
                lookup("fdinfo"),
                lookup("ret_fdinfo"),
                col("nbytes").to_pylist(),
                col("data").to_pylist(),
                col("msg_lens").to_pylist(),
            )
        )


# A column without nulls: the compiled builder reads an empty mask as "all valid".
_NO_MASK = np.zeros(0, np.uint8)


def _build_rows() -> Any:
    """The compiled row builder; a missing build is an error, never a silent fall back to
    the slower path (as `correlator._new_lane`)."""
    return _compiled("build")


def _compiled(name: str) -> Any:
    try:
        rows = importlib.import_module("wirecorr._core.rows")
    except ImportError as e:
        raise WirecorrError(
            f"the compiled syscall rows are not built ({e}): run `make` or `pip install -e .`, "
            "or set WIRECORR_PURE=1 for the (slower) pure-Python path"
        ) from None
    return getattr(rows, name)


def _shared(values: list[Any]) -> list[Any]:
    """One int object per distinct value (pids, tids: a few per batch), not one per row:
    64 bytes a syscall kept (51 MB on bench/correlate's 800k)."""
    seen: dict[Any, Any] = {}
    return [seen.setdefault(v, v) for v in values]


def links_from_table(table: pa.Table) -> list[Link]:
    """`Link` objects for the rows of a decoded `links` block."""
    out: list[Link] = []
    for batch in table.to_batches():
        col = batch.column
        out.extend(
            map(
                Link,
                col("id").to_pylist(),
                _lookup(col("kind"), _same),
                col("syscall").to_pylist(),
                col("packets").to_pylist(),
                col("delay_ns").to_pylist(),
                _lookup(col("note"), _same),
            )
        )
    return out


def _lookup(column: pa.DictionaryArray, convert: Any) -> list[Any]:
    """The column's values, each distinct one converted once and shared by its rows."""
    table = [convert(v) for v in column.dictionary.to_pylist()]
    table.append(None)
    return list(map(table.__getitem__, column.indices.fill_null(len(table) - 1).to_pylist()))


def _same(value: Any) -> Any:
    return value


def _decode_args(text: str) -> dict[str, Any]:
    try:
        args = fmt.decode_value(loads(text.encode()))
    except RecursionError:
        raise fmt.RecordFormatError(f"{TAG_SYSCALLS} record: an `args` value nests too deep") from None
    except (ValueError, TypeError) as e:
        raise fmt.RecordFormatError(f"{TAG_SYSCALLS} record: an `args` value is not valid JSON: {e}") from None
    if not isinstance(args, dict):
        raise fmt.RecordFormatError(f"{TAG_SYSCALLS} record: an `args` value is not a JSON object")
    # Shared by every row of the block with this value already; not through format 1's
    # cache of args dicts, whose keys take False for 0 and 1.0 for 1 (equal in Python).
    return args


def read_syscall_columns(path: str) -> pa.Table:
    """Every syscall of the recording at `path` as one table of SCHEMA, in file order
    (completion order), with no Python object per row: each block's columns are chunks.

    Format-1 `syscall` records (a format-1 recording, or the rare odd row of a format-2
    one) are converted; a row the columns cannot hold (see `_fits`) is left out, as only
    `read_recording`'s Syscall objects can carry it. A file cut short reads up to the cut.
    """
    tables: list[pa.Table] = []
    legacy: list[Syscall] = []

    def on_custom(block: CustomBlock) -> None:
        if block.pen != fmt.PEN:
            return
        try:
            if block.data.startswith(_PREFIX):
                tables.append(decode_block(block.data))
            elif block.data.startswith(_V1_PREFIX):
                legacy.append(fmt.syscall_from_dict(fmt.decode_record(block.data)[1]))
        except (fmt.RecordFormatError, KeyError, TypeError) as e:
            raise InputError(path, f"bad wirecorr record: {e}", offset=block.offset) from None

    reader = CaptureReader(path, on_custom=on_custom)
    try:
        for _ in reader.records():
            pass
    except TruncatedCapture:
        pass
    finally:
        reader.close()
    regular = [sc for sc in legacy if _fits(sc)]
    if regular:
        tables.extend(build_table(regular[i : i + BATCH_ROWS]) for i in range(0, len(regular), BATCH_ROWS))
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()
