"""A Session as Arrow tables, and a directory of them as Parquet: the export's schema (docs/export.md).

Many recordings are queried together by existing engines (DuckDB here, Spark or Trino over a
fleet's object store), not by wirecorr: this module turns what the engine built for one
recording into one Arrow table per kind of row, written under a Hive-style layout
`DIR/TABLE/host=H/date=D/RECORDING_ID.parquet` that those engines read and prune as it is.

Everything is read from the engine's Session (the same objects `analyze --json` reports), so
the export does not depend on the recording's file format. Keys join across tables and
files: `recording_id` plus the Session's own ids (connection id, packet index, syscall id,
link id, finding position), exactly the ids `analyze --json` prints.

Exporting the same recording twice writes byte-identical files: no export-time clock,
stable row order, fixed writer settings. `SCHEMA_VERSION` changes when a column changes
meaning or goes away; added columns keep it (readers union by name).
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import hashlib
import os
import re
import shlex
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wirecorr import __version__
from wirecorr.engine.analysis_flags import SHORT_NAMES, AnalysisFlag, flag_names
from wirecorr.json_codec import dumps
from wirecorr.model import format_flags
from wirecorr.recording.format import encode_value
from wirecorr.views import json_report
from wirecorr.views.columnar_sql import SCHEMA_MARKER, TABLES

if TYPE_CHECKING:
    # For the hints only: `wirecorr query` reads the schema without loading the engine.
    from wirecorr.engine.connections import Connection, HandshakeOptions
    from wirecorr.engine.session import Session
    from wirecorr.model import FdInfo, Link, Syscall

SCHEMA_VERSION = 1
SCHEMA_NAME = f"wirecorr.export/{SCHEMA_VERSION}"
# The Hive partition keys, in path order. They live in the path only: Spark refuses a column
# that is both in the files and in the partition path.
PARTITION_KEYS = ("host", "date")
UNKNOWN_HOST = "unknown"
# A recording with no event has no date; the epoch keeps the column a date for every engine.
NO_DATE = "1970-01-01"

I64 = pa.int64()
I32 = pa.int32()
STR = pa.string()
BOOL = pa.bool_()
I64_LIST = pa.list_(I64)

_ANALYSIS = [(flag, f"analysis_{SHORT_NAMES[flag]}") for flag in AnalysisFlag]


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in fields])


def _options_fields(side: str) -> list[tuple[str, pa.DataType]]:
    return [
        (f"{side}_mss", I32),
        (f"{side}_wscale", I32),
        (f"{side}_sack_perm", BOOL),
        (f"{side}_timestamps", BOOL),
        (f"{side}_tfo", BOOL),
    ]


SCHEMAS: dict[str, pa.Schema] = {
    "recordings": _schema(
        ("recording_id", STR),
        ("source_path", STR),
        ("content_sha256", STR),
        ("size_bytes", I64),
        ("is_recording", BOOL),
        ("complete", BOOL),
        ("error", STR),
        ("warnings", pa.list_(STR)),
        ("command", STR),
        ("pids", I64_LIST),
        ("attached", BOOL),
        ("user_name", STR),
        ("interface", STR),
        ("capture_filter", STR),
        ("start_ns", I64),
        ("start_time", pa.timestamp("us", tz="UTC")),
        ("end_ns", I64),
        ("duration_ns", I64),
        ("exit_status", I64),
        ("packets_lost", I64),
        ("packets", I64),
        ("connections", I64),
        ("syscalls", I64),
        ("links", I64),
        ("findings", I64),
        ("recorded_with", STR),
        ("exported_with", STR),
        ("schema_version", I32),
    ),
    "connections": _schema(
        ("recording_id", STR),
        ("connection_id", I64),
        ("stream", I64),
        ("proto", STR),
        ("client", STR),
        ("server", STR),
        ("client_ip", STR),
        ("client_port", I32),
        ("server_ip", STR),
        ("server_port", I32),
        ("first_ts_ns", I64),
        ("last_ts_ns", I64),
        ("duration_ns", I64),
        ("packets_c2s", I64),
        ("packets_s2c", I64),
        ("bytes_c2s", I64),
        ("bytes_s2c", I64),
        *_options_fields("client"),
        *_options_fields("server"),
        ("window_scaling", BOOL),
        ("initial_rtt_ns", I64),
        ("active_closer", STR),
        ("reset_by", STR),
        ("final_client_state", STR),
        ("final_server_state", STR),
        ("states_json", STR),
        ("icmp_errors", I64),
        *((name, I64) for _, name in _ANALYSIS),
    ),
    "packets": _schema(
        ("recording_id", STR),
        ("packet_index", I64),
        ("frame_number", I64),
        ("ts_ns", I64),
        ("file_offset", I64),
        ("connection_id", I64),
        ("direction", STR),
        ("proto", STR),
        ("src", STR),
        ("dst", STR),
        ("tcp_flags", STR),
        ("tcp_flags_bits", I32),
        ("rel_seq", I64),
        ("rel_ack", I64),
        ("seg_len", I64),
        ("window_size", I64),
        ("analysis_mask", I32),
        ("analysis", pa.list_(STR)),
        ("dupack_num", I64),
        ("ack_rtt_ns", I64),
        ("bytes_in_flight", I64),
        ("link_ids", I64_LIST),
        ("label", STR),
    ),
    "syscalls": _schema(
        ("recording_id", STR),
        ("syscall_id", I64),
        ("pid", I64),
        ("tid", I64),
        ("name", STR),
        ("enter_ns", I64),
        ("exit_ns", I64),
        ("duration_ns", I64),
        ("ret", I64),
        ("errno", STR),
        ("fd", I64),
        ("fd_kind", STR),
        ("fd_local", STR),
        ("fd_remote", STR),
        ("fd_path", STR),
        ("ret_fd_kind", STR),
        ("ret_fd_local", STR),
        ("ret_fd_remote", STR),
        ("nbytes", I64),
        ("msg_lens", I64_LIST),
        ("addr", STR),
        ("flags", STR),
        ("args_json", STR),
    ),
    "links": _schema(
        ("recording_id", STR),
        ("link_id", I64),
        ("kind", STR),
        ("syscall_id", I64),
        ("connection_id", I64),
        ("packet_count", I64),
        ("packet_indices", I64_LIST),
        ("delay_ns", I64),
        ("note", STR),
    ),
    "findings": _schema(
        ("recording_id", STR),
        ("finding_id", I64),
        ("kind", STR),
        ("severity", STR),
        ("connection_id", I64),
        ("message", STR),
        ("evidence_syscalls", I64_LIST),
        ("evidence_packets", I64_LIST),
        ("evidence_links", I64_LIST),
        ("evidence_connections", I64_LIST),
    ),
    # "requests" joins here once the engine reconstructs requests: one more schema and
    # builder below; it is an added table, so SCHEMA_VERSION stays.
}

# Fixed writer settings: part of what makes a re-export byte-identical. The parquet
# `created_by` field names pyarrow's version, which only an upgrade changes.
ROW_GROUP_ROWS = 1 << 17
WRITER_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_size": 1 << 20,
    "version": "2.6",
    "data_page_version": "1.0",
    "store_schema": True,
}

# A whole table, or its chunks in row order.
TableSource = pa.Table | Iterable[pa.Table]

T = TypeVar("T")

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class SourceFile:
    """What the export says about the file itself: where it was and what it held."""

    path: str
    size: int
    sha256: str


def describe_file(path: str) -> SourceFile:
    """Hash the file's bytes: two exports of one unchanged file agree, an edited file does not."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return SourceFile(os.path.abspath(path), size, digest.hexdigest())


def recording_id(meta: dict[str, Any], source: SourceFile) -> str:
    """The key of one recording across tables, files and hosts (16 hex digits).

    A wirecorr recording is identified by its header (host, start time, command, pids), so
    the same recording re-exported after it grew or was annotated replaces its rows; a plain
    capture, which has no header, by its content.
    """
    if meta.get("start_ns") is not None:
        identity = [meta.get("hostname"), meta.get("start_ns"), meta.get("command"), meta.get("pids")]
        return hashlib.sha256(dumps(encode_value(identity))).hexdigest()[:16]
    return source.sha256[:16]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def partition_values(session: Session, host: str | None) -> tuple[str, str]:
    """(host, date) of the recording's partition: the recording's own hostname, else `host`.

    Path-unsafe characters become "_": engines differ in how they unescape partition values.
    """
    name = session.meta.get("hostname") or host or UNKNOWN_HOST
    start = _start_ns(session)
    date = NO_DATE if start is None else _utc(start).date().isoformat()
    return _UNSAFE.sub("_", str(name)) or UNKNOWN_HOST, date


def _utc(ns: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )


def _start_ns(session: Session) -> int | None:
    start = session.meta.get("start_ns")
    return start if isinstance(start, int) else session.first_ns


def _end_ns(session: Session) -> int | None:
    summary_end = (session.summary or {}).get("end_ns")
    ends = [t for t in (session.last_ns, summary_end) if isinstance(t, int)]
    ends.extend(sc.exit_ns if sc.exit_ns is not None else sc.enter_ns for sc in session.syscalls[-1:])
    return max(ends) if ends else None


def _int64(value: Any) -> int | None:
    """A value for an int64 column: other types and out-of-range numbers become null."""
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _table(name: str, columns: dict[str, Any]) -> pa.Table:
    schema = SCHEMAS[name]
    arrays = [_as_array(columns[field.name], field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _as_array(values: Any, kind: pa.DataType) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values if values.type == kind else values.cast(kind)
    return pa.array(values, type=kind)


# -- tables ------------------------------------------------------------------------------


def build_tables(session: Session, rid: str, source: SourceFile) -> dict[str, TableSource]:
    """Every table of one finished Session, keyed by table name (see `SCHEMAS`); the large
    one as chunks produced while it is written."""
    return {
        "recordings": recordings_table(session, rid, source),
        "connections": connections_table(session, rid),
        "packets": packets_chunks(session, rid),
        "syscalls": syscalls_chunks(session, rid),
        "links": links_chunks(session, rid),
        "findings": findings_table(session, rid),
    }


def recordings_table(session: Session, rid: str, source: SourceFile) -> pa.Table:
    meta = session.meta
    start, end = _start_ns(session), _end_ns(session)
    command = meta.get("command")
    pids = meta.get("pids")
    error = session.error
    summary = session.summary or {}
    row = {
        "recording_id": rid,
        "source_path": source.path,
        "content_sha256": source.sha256,
        "size_bytes": source.size,
        "is_recording": bool(meta),
        "complete": session.summary is not None,
        "error": None if error is None else str(error),
        "warnings": json_report.warnings(session),
        "command": shlex.join(map(str, command)) if isinstance(command, list) and command else None,
        "pids": [p for p in pids if _int64(p) is not None] if isinstance(pids, list) else None,
        "attached": meta.get("attached") if isinstance(meta.get("attached"), bool) else None,
        "user_name": _str(meta.get("user")),
        "interface": _str(meta.get("interface")),
        "capture_filter": _str(meta.get("filter")) or None,
        "start_ns": start,
        "start_time": None if start is None else _utc(start),
        "end_ns": end,
        "duration_ns": None if start is None or end is None else end - start,
        "exit_status": _int64(summary.get("exit_status")),
        "packets_lost": _int64(summary.get("lost")),
        "packets": session.packets_kept,
        "connections": len(session.analyzer.connections),
        "syscalls": len(session.syscalls),
        "links": len(session.correlator.links),
        "findings": len(session.findings),
        "recorded_with": _str(meta.get("wirecorr")),
        "exported_with": __version__,
        "schema_version": SCHEMA_VERSION,
    }
    return _table("recordings", {k: [v] for k, v in row.items()})


def _options(opts: HandshakeOptions | None) -> tuple[Any, ...]:
    if opts is None:
        return (None,) * 5
    return (opts.mss, opts.wscale, opts.sack_perm, opts.timestamps, opts.tfo)


def connections_table(session: Session, rid: str) -> pa.Table:
    conns: list[Connection] = session.analyzer.connections
    cols: dict[str, list[Any]] = {field.name: [] for field in SCHEMAS["connections"]}
    option_names = [[name for name, _ in _options_fields(side)] for side in ("client", "server")]
    for c in conns:
        client_ip, _, _ = c.client.rpartition(":")
        server_ip, _, _ = c.server.rpartition(":")
        values: dict[str, Any] = {
            "recording_id": rid,
            "connection_id": c.id,
            "stream": c.stream,
            "proto": c.proto,
            "client": c.client,
            "server": c.server,
            "client_ip": client_ip.strip("[]"),
            "client_port": c.client_port,
            "server_ip": server_ip.strip("[]"),
            "server_port": c.server_port,
            "first_ts_ns": c.first_ts_ns,
            "last_ts_ns": c.last_ts_ns,
            "duration_ns": c.duration_ns,
            "packets_c2s": c.packets_c2s,
            "packets_s2c": c.packets_s2c,
            "bytes_c2s": c.bytes_c2s,
            "bytes_s2c": c.bytes_s2c,
            "window_scaling": c.wscale_in_use,
            "initial_rtt_ns": c.initial_rtt_ns,
            "active_closer": c.active_closer,
            "reset_by": c.reset_by,
            "final_client_state": c.final_client_state,
            "final_server_state": c.final_server_state,
            "states_json": dumps(
                {"client": [list(s) for s in c.client_state], "server": [list(s) for s in c.server_state]}
            ).decode(),
            "icmp_errors": c.icmp_errors,
        }
        for names, opts in zip(option_names, (c.client_options, c.server_options), strict=True):
            values.update(zip(names, _options(opts), strict=True))
        counts = c.analysis_counts
        for flag, name in _ANALYSIS:
            values[name] = counts.get(SHORT_NAMES[flag], 0)
        for name, column in cols.items():
            column.append(values[name])
    return _table("connections", cols)


_ARROW_OF_TYPECODE = {"q": I64, "i": I32, "I": pa.uint32(), "H": pa.uint16(), "b": pa.int8(), "B": pa.uint8()}


def _column(values: Any, kind: pa.DataType | None = None) -> pa.Array:
    """An `array.array` column as Arrow without copying it, cast to `kind` if given (a copy)."""
    source = _ARROW_OF_TYPECODE[values.typecode]
    arr = pa.Array.from_buffers(source, len(values), [None, pa.py_buffer(values)])
    return arr if kind is None or source == kind else arr.cast(kind)


def _sparse(column: Any, start: int, end: int) -> pa.Array:
    """Rows [start, end) of a packet table's sparse column (index → value), null where it has none."""
    keys = column.keys_
    lo, hi = bisect_left(keys, start), bisect_left(keys, end)
    if lo == hi:
        return pa.nulls(end - start, I64)
    present = _column(keys[lo:hi], I64)
    values = _column(column.values_[lo:hi], I64)
    return pc.take(values, pc.index_in(pa.array(range(start, end), I64), value_set=present))


def _frame_numbers(custom_at: Sequence[int], start: int, end: int) -> pa.Array:
    """Wireshark's frame numbers of packets [start, end): `Session.frame_number`, one pass.

    `custom_at` holds, per Custom Block in file order, how many packets preceded it.
    """
    if not custom_at:
        return pa.array(range(start + 1, end + 1), I64)
    k, total = bisect_left(custom_at, start), len(custom_at)
    out = []
    for i in range(start, end):
        while k < total and custom_at[k] <= i:
            k += 1
        out.append(i + 1 + k)
    return pa.array(out, I64)


def _by_value(codes: pa.Array, render: Callable[[int], Any], kind: pa.DataType) -> pa.Array:
    """`render` of each code, computed once per distinct code (flag bytes, analysis masks)."""
    distinct = pc.unique(codes)
    rendered = pa.array([render(code) for code in distinct.to_pylist()], type=kind)
    return pc.take(rendered, pc.index_in(codes, value_set=distinct))


def packets_chunks(session: Session, rid: str, rows: int = ROW_GROUP_ROWS) -> Iterator[pa.Table]:
    """The packets table, `rows` packets at a time: a million-packet table built at once
    would cost hundreds of MB beside the Session, a chunk a few MB.

    Endpoints and protocol come from the packet's connection and direction; a packet of no
    connection (ARP, ICMP quoting nothing known) has nulls there. No payload bytes.
    """
    table = session.analyzer.table
    n = len(table)
    conns = session.analyzer.connections
    clients = pa.array([c.client for c in conns], type=STR)
    servers = pa.array([c.server for c in conns], type=STR)
    protos = pa.array([c.proto for c in conns], type=STR)
    # Zero-copy views of the engine's columns, sliced and widened per chunk.
    full = {name: (_column(getattr(table, name)), kind) for name, kind in _PACKET_COLUMNS}
    correlator = session.correlator
    packet_links = correlator.packet_links
    null_str, null_int = pa.scalar(None, STR), pa.scalar(None, I64)
    for start in range(0, n, rows) if n else ():
        end = min(n, start + rows)
        col = {name: arr.slice(start, end - start).cast(kind) for name, (arr, kind) in full.items()}
        in_conn = pc.greater_equal(col["conn"], 0)
        conn = pc.if_else(in_conn, col["conn"], null_int)
        c2s = pc.equal(col["direction"], 0)
        link_ids: list[list[int] | None] = [None] * (end - start)
        labels: list[str | None] = [None] * (end - start)
        for j in pc.indices_nonzero(in_conn).to_pylist():
            lab = packet_links.get(start + j)
            if lab is None:
                lab = correlator.label(start + j)
            if isinstance(lab, list):
                link_ids[j] = sorted(lab)
            else:
                labels[j] = lab
        bif = col["bytes_in_flight"]
        chunk = _table(
            "packets",
            {
                "recording_id": pa.repeat(pa.scalar(rid, STR), end - start),
                "packet_index": pa.array(range(start, end), I64),
                "frame_number": _frame_numbers(session.custom_at, start, end),
                "ts_ns": col["ts_ns"],
                "file_offset": col["offset"],
                "connection_id": conn,
                "direction": pc.if_else(in_conn, pc.if_else(c2s, "c2s", "s2c"), null_str),
                "proto": pc.take(protos, conn),
                "src": pc.if_else(c2s, pc.take(clients, conn), pc.take(servers, conn)),
                "dst": pc.if_else(c2s, pc.take(servers, conn), pc.take(clients, conn)),
                "tcp_flags": pc.if_else(in_conn, _by_value(col["flags"], format_flags, STR), null_str),
                "tcp_flags_bits": col["flags"],
                "rel_seq": col["rel_seq"],
                "rel_ack": col["rel_ack"],
                "seg_len": col["seglen"],
                "window_size": col["window"],
                "analysis_mask": col["analysis"],
                "analysis": _by_value(col["analysis"], flag_names, pa.list_(STR)),
                "dupack_num": _sparse(table.dupack_num, start, end),
                "ack_rtt_ns": _sparse(table.ack_rtt_ns, start, end),
                "bytes_in_flight": pc.if_else(pc.equal(bif, 0), null_int, bif),
                "link_ids": pa.array(link_ids, type=I64_LIST),
                "label": pa.array(labels, type=STR),
            },
        )
        # Rows of packets a --filter dropped are padding at offset 0, where no record starts.
        kept = pc.not_equal(chunk["file_offset"], 0)
        yield chunk if pc.all(kept).as_py() is not False else chunk.filter(kept)


# The engine's packet columns as the export reads them (all integers: signed, widened).
_PACKET_COLUMNS = (
    ("ts_ns", I64),
    ("offset", I64),
    ("conn", I64),
    ("direction", I32),
    ("flags", I32),
    ("rel_seq", I64),
    ("rel_ack", I64),
    ("seglen", I64),
    ("window", I64),
    ("analysis", I32),
    ("bytes_in_flight", I64),
)


def _fd(info: FdInfo | None) -> tuple[str | None, str | None, str | None, str | None]:
    if info is None:
        return (None, None, None, None)
    return (info.kind, info.local, info.remote, info.path)


def _chunks(items: Sequence[T], build: Callable[[Sequence[T]], pa.Table]) -> Iterator[pa.Table]:
    """`build` over `items` one row group at a time: Python lists of a whole recording's
    columns would cost hundreds of MB beside the Session."""
    for start in range(0, len(items), ROW_GROUP_ROWS):
        yield build(items[start : start + ROW_GROUP_ROWS])


def syscalls_chunks(session: Session, rid: str) -> Iterator[pa.Table]:
    return _chunks(session.syscalls, lambda part: _syscalls_table(part, rid))


def _syscalls_table(syscalls: Sequence[Syscall], rid: str) -> pa.Table:
    """One row per syscall: typed columns for what every call has, `args_json` for the rest.

    `args_json` holds the decoded arguments as the recording stores them ({"$bytes": base64}
    and the other tagged values of docs/recording-format.md); the data bytes are left out.
    """
    cols: dict[str, list[Any]] = {field.name: [] for field in SCHEMAS["syscalls"]}
    (
        ids,
        pids,
        tids,
        names,
        enters,
        exits,
        durations,
        rets,
        errnos,
        fds,
        fd_kinds,
        fd_locals,
        fd_remotes,
        fd_paths,
        ret_kinds,
        ret_locals,
        ret_remotes,
        nbytes,
        msg_lens,
        addrs,
        flags,
        args_json,
    ) = (cols[name] for name in list(cols)[1:])
    for sc in syscalls:
        ids.append(sc.id)
        pids.append(sc.pid)
        tids.append(sc.tid)
        names.append(sc.name)
        enters.append(sc.enter_ns)
        exits.append(sc.exit_ns)
        durations.append(None if sc.exit_ns is None else sc.exit_ns - sc.enter_ns)
        rets.append(_int64(sc.ret))
        errnos.append(sc.errno)
        fds.append(_int64(sc.fd))
        kind, local, remote, path = _fd(sc.fdinfo)
        fd_kinds.append(kind)
        fd_locals.append(local)
        fd_remotes.append(remote)
        fd_paths.append(path)
        kind, local, remote, _ = _fd(sc.ret_fdinfo)
        ret_kinds.append(kind)
        ret_locals.append(local)
        ret_remotes.append(remote)
        nbytes.append(_int64(sc.nbytes))
        msg_lens.append(sc.msg_lens)
        args = sc.args
        addrs.append(_str(args.get("addr")))
        flags.append(_str(args.get("flags")))
        args_json.append(dumps(encode_value(args)).decode())
    cols["recording_id"] = [rid] * len(ids)
    return _table("syscalls", cols)


def links_chunks(session: Session, rid: str) -> Iterator[pa.Table]:
    conn = session.analyzer.table.conn
    return _chunks(session.correlator.links, lambda part: _links_table(part, conn, rid))


def _links_table(links: Sequence[Link], conn: Sequence[int], rid: str) -> pa.Table:
    """One row per link; `connection_id` is the connection of its first packet."""
    cols: dict[str, list[Any]] = {field.name: [] for field in SCHEMAS["links"]}
    for link in links:
        first = link.packets[0] if link.packets else None
        cid = conn[first] if first is not None and first < len(conn) else -1
        cols["recording_id"].append(rid)
        cols["link_id"].append(link.id)
        cols["kind"].append(link.kind)
        cols["syscall_id"].append(link.syscall)
        cols["connection_id"].append(cid if cid >= 0 else None)
        cols["packet_count"].append(len(link.packets))
        cols["packet_indices"].append(link.packets)
        cols["delay_ns"].append(link.delay_ns)
        cols["note"].append(link.note)
    return _table("links", cols)


def findings_table(session: Session, rid: str) -> pa.Table:
    """One row per finding; `finding_id` is its position in `analyze --json`'s list."""
    cols: dict[str, list[Any]] = {field.name: [] for field in SCHEMAS["findings"]}
    for i, f in enumerate(session.findings):
        cols["recording_id"].append(rid)
        cols["finding_id"].append(i)
        cols["kind"].append(f.kind)
        cols["severity"].append(f.severity)
        cols["connection_id"].append(f.connection)
        cols["message"].append(f.message)
        for key in ("syscalls", "packets", "links", "connections"):
            cols[f"evidence_{key}"].append(list(f.evidence.get(key, ())))
    return _table("findings", cols)


# -- the directory -----------------------------------------------------------------------


def recording_files(root: str, rid: str) -> dict[str, list[str]]:
    """The files of one recording in each table (normally one; none when not exported).

    Looked up by name in each partition directory, not by listing every file: a batch
    into a DIR of many recordings would otherwise list them all once per recording.
    """
    base = glob.escape(root)
    return {table: sorted(glob.glob(os.path.join(base, table, "*", "*", f"{rid}.parquet"))) for table in TABLES}


def write_recording(root: str, rid: str, host: str, date: str, tables: dict[str, TableSource]) -> None:
    """Write one recording's tables, replacing its rows and nothing else.

    Each file is written beside its destination under a dot name (which Hive readers skip)
    and renamed into place, so a reader never sees half a file; copies of the recording in
    another partition (its host or date was different before) are removed afterwards.
    """
    old = recording_files(root, rid)
    for table in TABLES:
        directory = os.path.join(root, table, f"host={host}", f"date={date}")
        os.makedirs(directory, exist_ok=True)
        final = os.path.join(directory, f"{rid}.parquet")
        # Per process: two exports of one recording at once (query caches) must not share it.
        tmp = os.path.join(directory, f".{rid}.{os.getpid()}.parquet.tmp")
        schema = SCHEMAS[table].with_metadata({"wirecorr.export": SCHEMA_NAME, "wirecorr.table": table})
        source = tables[table]
        try:
            with pq.ParquetWriter(tmp, schema, **WRITER_OPTIONS) as writer:
                for chunk in [source] if isinstance(source, pa.Table) else source:
                    writer.write_table(chunk.replace_schema_metadata(schema.metadata), row_group_size=ROW_GROUP_ROWS)
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        marker = os.path.join(root, table, SCHEMA_MARKER + _schema_digest(SCHEMAS[table]))
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o644))
        for stale in old[table]:
            if stale != final:
                os.unlink(stale)
                _remove_empty_dirs(os.path.dirname(stale), os.path.join(root, table))


def _schema_digest(schema: pa.Schema) -> str:
    columns = ",".join(f"{field.name}:{field.type}" for field in schema)
    return hashlib.sha256(columns.encode()).hexdigest()[:16]


def _remove_empty_dirs(directory: str, stop: str) -> None:
    while os.path.abspath(directory) != os.path.abspath(stop):
        try:
            os.rmdir(directory)
        except OSError:
            return
        directory = os.path.dirname(directory)


def empty_table(table: str) -> pa.Table:
    """A table with no rows, with the partition columns as engines add them."""
    schema = SCHEMAS[table].append(pa.field("host", STR)).append(pa.field("date", pa.date32()))
    return schema.empty_table()
