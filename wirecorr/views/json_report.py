"""`analyze --json`: one JSON document per run; its schema is docs/json-schema.md.

Dicts are built here, from the engine's objects, and nowhere else: the text report and
later the checks read the same records, so the two outputs cannot disagree.
"""

from __future__ import annotations

import codecs
import functools
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import compress, islice, pairwise
from operator import attrgetter
from typing import IO, Any, TextIO

import numpy as np

from wirecorr import __version__
from wirecorr._core import pure_requested
from wirecorr.engine.analysis_flags import flag_names
from wirecorr.engine.connections import Connection, HandshakeOptions
from wirecorr.engine.correlator import Anchor
from wirecorr.engine.requests import Message, Request, framing_gaps, requests_of
from wirecorr.engine.requests.stats import Group, by_endpoint, by_protocol
from wirecorr.engine.session import Session
from wirecorr.errors import WirecorrError
from wirecorr.json_codec import dumps
from wirecorr.model import Link, Syscall, format_flags
from wirecorr.recording.format import finding_to_dict as finding_record
from wirecorr.recording.format import link_to_dict as link_record
from wirecorr.recording.format import syscall_to_dict

SCHEMA = "wirecorr.analyze/2"
# Appends the records of some items to a run's buffer, each followed by a comma, and the
# records' sizes with their commas to its list (`_Spool.add`).
Encoder = Callable[[list[Any], bytearray, list[int]], None]
_LINK_ID = attrgetter("id")


def options_record(opts: HandshakeOptions | None) -> dict[str, Any] | None:
    if opts is None:
        return None
    return {
        "mss": opts.mss,
        "wscale": opts.wscale,
        "sack_perm": opts.sack_perm,
        "timestamps": opts.timestamps,
        "tfo": opts.tfo,
    }


def anchor_record(session: Session, anchor: Anchor) -> dict[str, Any]:
    """Which traced socket's stream was placed by content, by which call, on which packet."""
    conn = session.analyzer.connections[anchor.conn]
    return {
        "side": ("client", "server")[anchor.side],
        "endpoint": conn.client if anchor.side == 0 else conn.server,
        "calls": "writes" if anchor.side == anchor.direction else "reads",
        "dir": ("c2s", "s2c")[anchor.direction],
        "syscall": anchor.syscall,
        "packet": anchor.packet,
        "frame": session.frame_number(anchor.packet) if anchor.packet is not None else None,
        "offset": anchor.offset,
        "failed": anchor.failed,
    }


def connection_record(conn: Connection, anchored: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": conn.id,
        "stream": conn.stream,
        "proto": conn.proto,
        "client": conn.client,
        "server": conn.server,
        "first_ts_ns": conn.first_ts_ns,
        "last_ts_ns": conn.last_ts_ns,
        "duration_ns": conn.duration_ns,
        "packets": {"client_to_server": conn.packets_c2s, "server_to_client": conn.packets_s2c},
        "bytes": {"client_to_server": conn.bytes_c2s, "server_to_client": conn.bytes_s2c},
        "handshake": {
            "client": options_record(conn.client_options),
            "server": options_record(conn.server_options),
            "window_scaling": conn.wscale_in_use,
            "initial_rtt_ns": conn.initial_rtt_ns,
        },
        "close": {"active_closer": conn.active_closer, "reset_by": conn.reset_by},
        "final_state": {"client": conn.final_client_state, "server": conn.final_server_state},
        "states": {
            "client": [list(change) for change in conn.client_state],
            "server": [list(change) for change in conn.server_state],
        },
        "analysis": dict(conn.analysis_counts),
        "icmp_errors": conn.icmp_errors,
        "anchored": anchored or [],
    }


def packet_record(session: Session, index: int) -> dict[str, Any]:
    row = session.analyzer.table.row(index)
    return {
        "index": row.index,
        "frame": session.frame_number(row.index),
        "ts_ns": row.ts_ns,
        "offset": row.offset,
        "conn": row.conn if row.conn >= 0 else None,
        "dir": ("c2s", "s2c")[row.direction] if row.conn >= 0 else None,
        "flags": format_flags(row.flags) if row.conn >= 0 else None,
        "seq": row.rel_seq,
        "ack": row.rel_ack,
        "len": row.seglen,
        "win": row.window,
        "analysis": flag_names(row.analysis),
        "dupack_num": row.dupack_num,
        "ack_rtt_ns": row.ack_rtt_ns,
        "bytes_in_flight": row.bytes_in_flight or None,
        "label": session.correlator.label(index),
    }


def syscall_record(sc: Syscall) -> dict[str, Any]:
    """The recording's syscall record with `data` as hex (JSON has no bytes).

    Built field by field: `dataclasses.asdict` deep-copies every value and cost more than
    all the rest of a report on a recording with 800k syscalls.
    """
    record = syscall_to_dict(sc)
    if sc.data is not None:
        record["data"] = sc.data.hex()
    return record


def _message_record(msg: Message | None) -> dict[str, Any] | None:
    if msg is None:
        return None
    return {
        "dir": ("c2s", "s2c")[msg.direction],
        "start": msg.start,
        "end": msg.end,
        "complete": msg.complete,
        "syscalls": msg.syscalls,
        "packets": msg.packets,
        "wire_first_ns": msg.wire_first_ns,
        "wire_last_ns": msg.wire_last_ns,
    }


def request_record(req: Request) -> dict[str, Any]:
    return {
        "id": req.id,
        "protocol": req.protocol,
        "conn": req.conn,
        "server": req.server,
        "traced": list(req.traced),
        "summary": req.summary,
        "endpoint": req.endpoint,
        "fields": req.fields,
        "start_ns": req.start_ns,
        "total_ns": req.total_ns,
        "split": [{"part": name, "ns": ns} for name, ns in req.split],
        "points": req.points,
        "request": _message_record(req.request),
        "response": _message_record(req.response),
    }


def group_record(g: Group) -> dict[str, Any]:
    record: dict[str, Any] = {"protocol": g.protocol}
    if g.endpoint is not None:
        record["server"] = g.server
        record["endpoint"] = g.endpoint
    record.update(
        count=g.count, answered=g.answered, p50_ns=g.p50_ns, p90_ns=g.p90_ns, p99_ns=g.p99_ns, max_ns=g.max_ns
    )
    return record


def request_stats(session: Session) -> dict[str, Any]:
    """Counts and latency percentiles of the requests, per protocol and per endpoint."""
    reqs = requests_of(session)
    return {
        "protocols": [group_record(g) for g in by_protocol(reqs)],
        "endpoints": [group_record(g) for g in by_endpoint(reqs)],
        "gaps": [
            {"conn": g.conn, "dir": ("c2s", "s2c")[g.direction], "offset": g.offset, "end": g.end, "reason": g.reason}
            for g in framing_gaps(session)
        ],
    }


def analysis_totals(session: Session) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for conn in session.analyzer.connections:
        totals.update(conn.analysis_counts)
    return dict(sorted(totals.items()))


def notable_indices(session: Session) -> list[int]:
    """Packets with a tcp.analysis flag: what a reader of the report should look at."""
    analysis = session.analyzer.table.analysis
    return list(compress(range(len(analysis)), analysis))


def warnings(session: Session) -> list[str]:
    out = list(session.warnings)
    if session.skipped_blocks:
        out.append(f"skipped {session.skipped_blocks} pcapng block(s) of unknown type")
    for linktype, offset in session.unknown_linktypes.items():
        out.append(f"link type {linktype} is not decoded (first such record at byte {offset})")
    return out


def _connection_records(session: Session) -> Iterator[dict[str, Any]]:
    anchored: dict[int, list[dict[str, Any]]] = {}
    for anchor in session.correlator.anchors:
        anchored.setdefault(anchor.conn, []).append(anchor_record(session, anchor))
    return (connection_record(c, anchored.get(c.id)) for c in session.analyzer.connections)


def _summary(session: Session, *, connections: bool = True) -> dict[str, Any]:
    """The document without its long arrays; `connections=False` leaves None in the
    connections' place, for `write` to stream them there."""
    error = session.error
    return {
        "schema": SCHEMA,
        "wirecorr": __version__,
        "sources": session.sources,
        "packets_read": session.packets_read,
        "packets_analyzed": session.packets_kept,
        "first_ts_ns": session.first_ns,
        "last_ts_ns": session.last_ns,
        "error": None if error is None else {"message": str(error), "offset": error.offset, "line": error.line},
        "warnings": warnings(session),
        "connections": list(_connection_records(session)) if connections else None,
        "analysis": analysis_totals(session),
        "notable": notable_indices(session),
        "request_stats": request_stats(session),
    }


def _arrays(session: Session, *, packets: bool) -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
    """The document's long arrays, as generators: `write` streams them record by record."""
    if packets:
        table = session.analyzer.table
        # Rows of packets a --filter dropped are padding with offset 0, where no record can start.
        yield "packets", (packet_record(session, i) for i in range(len(table)) if table.offset[i])
    if session.syscalls:
        yield "syscalls", (syscall_record(sc) for sc in session.syscalls)
        yield "links", (link_record(link) for link in session.correlator.links)
    yield "requests", (request_record(r) for r in requests_of(session))
    yield "findings", (finding_record(f) for f in session.findings)


def document(session: Session, *, packets: bool) -> dict[str, Any]:
    doc = _summary(session)
    for key, records in _arrays(session, packets=packets):
        doc[key] = list(records)
    return doc


_CHUNK = 4096


def _dumps(value: Any) -> str:
    return dumps(value).decode()


def write(session: Session, out: TextIO, *, packets: bool) -> None:
    """Write `document()` without building it: a recording's syscalls and links would
    otherwise exist three times at once (objects, dicts, one JSON string), and so would
    the connections of a large capture (100k of them: 0.5 GB of dicts and text).

    The arrays go out in chunks of `_CHUNK` records, each encoded by one `dumps` call and
    one write: per record, the two writes and the call were half the cost of the output.
    """
    _write_summary(session, out)
    for key, records in _arrays(session, packets=packets):
        out.write(f',"{key}":[')
        _write_records(out, records)
        out.write("]")
    out.write("}\n")


def _write_summary(session: Session, out: TextIO) -> None:
    """The document up to its long arrays, its connections streamed."""
    summary = _summary(session, connections=False)
    keys = list(summary)
    at = keys.index("connections")
    out.write(_dumps({k: summary[k] for k in keys[:at]})[:-1])
    out.write(',"connections":[')
    _write_records(out, _connection_records(session))
    out.write("]")
    rest = _dumps({k: summary[k] for k in keys[at + 1 :]})[1:-1]
    if rest:
        out.write("," + rest)


def _write_records(out: TextIO, records: Iterator[dict[str, Any]]) -> None:
    sep = ""
    while chunk := list(islice(records, _CHUNK)):
        out.write(sep)
        out.write(_dumps(chunk)[1:-1])
        sep = ","


# -- the streaming analyze (engine/streaming.py) ------------------------------------------


class _Run:
    """One sorted run of a `_Spool`: its records comma-joined in the spool's data file from
    `base`, and each record's key (major, minor) and end offset (relative to `base`) as
    three int64 columns of `n` values in the spool's key file from `keys_at`.

    The keys stay on disk: only a window of them is read while the run takes part in a
    merge step, and the key at `pos` (`head`) otherwise (24 bytes a record written were
    the one part of the streaming analyze's memory that grew with the recording)."""

    __slots__ = ("_ends", "_major", "_minor", "_wlo", "base", "cursor", "data", "head", "keys", "keys_at", "n", "pos")

    def __init__(self, data: IO[bytes], base: int, keys: IO[bytes], keys_at: int, n: int) -> None:
        self.data = data
        self.base = base
        self.cursor = base
        self.keys = keys
        self.keys_at = keys_at
        self.n = n
        self.pos = 0
        self._wlo = 0
        self._major = self._minor = self._ends = np.empty(0, dtype=np.int64)
        self.head = self.key(0)

    def _column(self, col: int, lo: int, hi: int) -> np.ndarray:
        self.keys.seek(self.keys_at + 8 * (col * self.n + lo))
        return np.frombuffer(self.keys.read(8 * (hi - lo)), dtype=np.int64)

    def window(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Major, minor and end columns of records lo..hi-1 (read if not held already)."""
        hi = min(hi, self.n)
        if not self._wlo <= lo or hi > self._wlo + len(self._major):
            top = min(max(hi, lo + 2 * _Spool.STEP), self.n)
            self._major, self._minor, self._ends = (self._column(c, lo, top) for c in range(3))
            self._wlo = lo
        at = lo - self._wlo
        return self._major[at : at + hi - lo], self._minor[at : at + hi - lo], self._ends[at : at + hi - lo]

    def key(self, i: int) -> tuple[int, int]:
        if self._wlo <= i < self._wlo + len(self._major):
            return int(self._major[i - self._wlo]), int(self._minor[i - self._wlo])
        return int(self._column(0, i, i + 1)[0]), int(self._column(1, i, i + 1)[0])

    def release(self) -> None:
        """Drop the window (the run sits out this merge step)."""
        self._major = self._minor = self._ends = np.empty(0, dtype=np.int64)

    def take(self, count: int) -> bytes:
        """The next `count` records, comma-joined: one contiguous stretch of the data file."""
        end = self.base + int(self.window(self.pos + count - 1, self.pos + count)[2][0])
        self.data.seek(self.cursor)
        piece = self.data.read(end - self.cursor)
        self.cursor = end + 1
        self.pos += count
        if self.pos < self.n:
            self.head = self.key(self.pos)
        else:
            self.release()
        return piece


class _Spool:
    """Encoded records in temporary files, handed back in key order.

    Records come in any order (syscalls as they complete, links as their connection
    retires) and leave sorted: each run of up to `RUN` records is sorted in memory (numpy,
    on its keys) and appended comma-joined to one data file, its keys to one key file; and
    `merged` merges the runs in steps of up to `STEP` records a run, sorting each step's
    keys at once and copying every stretch of records that comes from one run as one piece
    of the file. Nearly sorted input (a recording's syscalls end about in the order they
    began) is a few stretches per run, so no Python code runs per record after its
    encoding, and a step reads the keys of the few runs whose records it takes. Memory
    holds one run of records, and two files stay open however many runs there are.
    """

    RUN = 1 << 16
    STEP = 1 << 15

    def __init__(self) -> None:
        self._major: list[int] = []
        self._minor: list[int] = []
        self._sizes: list[int] = []
        self._buf = bytearray()
        self._runs: list[_Run] = []
        self._data: IO[bytes] | None = None
        self._keys: IO[bytes] | None = None

    def add(self, majors: list[int], minors: list[int], items: list[Any], encode: Encoder) -> None:
        """Items with their keys (major, minor): int64 values, unique pairs.

        `encode` appends the items' records to the run's buffer, each followed by a comma,
        and their sizes with it: a run whose records came in key order (nearly every run of
        a recording's syscalls) then goes to its file as the one piece of memory it is.
        """
        at = 0
        while at < len(items):
            take = min(len(items) - at, self.RUN - len(self._sizes))
            encode(items[at : at + take], self._buf, self._sizes)
            self._major += majors[at : at + take]
            self._minor += minors[at : at + take]
            at += take
            if len(self._sizes) >= self.RUN:
                self._flush()

    def _flush(self) -> None:
        if not self._sizes:
            return
        if self._data is None or self._keys is None:
            self._data = tempfile.TemporaryFile(prefix="wirecorr-analyze-")  # noqa: SIM115 - closed by `merged`
            self._keys = tempfile.TemporaryFile(prefix="wirecorr-analyze-")  # noqa: SIM115 - closed by `merged`
        major = np.array(self._major, dtype=np.int64)
        minor = np.array(self._minor, dtype=np.int64)
        order = np.lexsort((minor, major))
        sizes = np.array(self._sizes, dtype=np.int64)
        starts = np.cumsum(sizes) - sizes
        # Stretches of the sorted run that are consecutive in the buffer, each one write.
        breaks = np.flatnonzero(order[1:] != order[:-1] + 1) + 1
        firsts = order[np.concatenate(([0], breaks))]
        lasts = order[np.concatenate((breaks - 1, [len(order) - 1]))]
        view = memoryview(self._buf)
        base = self._data.seek(0, os.SEEK_END)
        # Written from the run's buffer: a joined copy of the run was twice its size again
        # at the peak.
        self._data.writelines(
            view[begin:end]
            for begin, end in zip(starts[firsts].tolist(), (starts[lasts] + sizes[lasts]).tolist(), strict=True)
        )
        view.release()
        keys_at = self._keys.seek(0, os.SEEK_END)
        # Each record is followed by a comma: its end is the comma's offset.
        for column in (major[order], minor[order], np.cumsum(sizes[order]) - 1):
            self._keys.write(column.tobytes())
        self._runs.append(_Run(self._data, base, self._keys, keys_at, len(order)))
        self._major, self._minor, self._sizes, self._buf = [], [], [], bytearray()

    def merged(self) -> Iterator[bytes]:
        """Every record, in key order, as pieces of one or more comma-joined records; the
        files are closed once read."""
        self._flush()
        try:
            while True:
                live = [r for r in self._runs if r.pos < r.n]
                if not live:
                    return
                yield from self._step(live)
        finally:
            for f in (self._data, self._keys):
                if f is not None:
                    f.close()

    def _step(self, live: list[_Run]) -> Iterator[bytes]:
        """The records up to the smallest key that ends a run's window: no record of any run
        past its window can come before it. Runs are visited by their next key; one whose
        next key is past the cut so far has nothing to give and sits the step out."""
        step = self.STEP
        cut: tuple[int, int] | None = None
        taking: list[_Run] = []
        for r in sorted(live, key=lambda r: r.head):
            if cut is not None and r.head > cut:
                r.release()
                continue
            taking.append(r)
            last = r.pos + step - 1
            if last < r.n - 1:
                key = r.key(last)
                if cut is None or key < cut:
                    cut = key
        majors, minors, owners, positions = [], [], [], []
        for n, r in enumerate(taking):
            major, minor, _ = r.window(r.pos, r.pos + step)
            if cut is not None:
                take = int(np.count_nonzero((major < cut[0]) | ((major == cut[0]) & (minor <= cut[1]))))
                major, minor = major[:take], minor[:take]
            majors.append(major)
            minors.append(minor)
            owners.append(np.full(len(major), n, dtype=np.int32))
            positions.append(np.arange(r.pos, r.pos + len(major), dtype=np.int64))
        major, minor = np.concatenate(majors), np.concatenate(minors)
        order = np.lexsort((minor, major))
        owner = np.concatenate(owners)[order]
        position = np.concatenate(positions)[order]
        # Stretches: consecutive output records from one run (consecutive in its file too).
        breaks = np.flatnonzero(owner[1:] != owner[:-1]) + 1
        bounds = np.concatenate(([0], breaks, [len(owner)])).tolist()
        for lo, hi in pairwise(bounds):
            r = taking[int(owner[lo])]
            assert int(position[lo]) == r.pos, "a run's records leave in order"
            yield r.take(hi - lo)


class StreamWriter:
    """`write` for the streaming analyze: the `Sink` of engine/streaming.py.

    Syscall and link records are encoded as they become final and spooled to temporary
    files; `finish` writes the document in the order and bytes `write` gives (one record
    per `dumps` call instead of a chunk's: equal unless a chunk holds a value orjson
    refuses, when `write` encodes that whole chunk with the standard library).
    """

    def __init__(self, *, compiled: bool | None = None) -> None:
        """`compiled` chooses the records' encoder: `_core.records` or `dumps` of each
        record's dict (the reference); None lets WIRECORR_PURE decide."""
        self._calls = _Spool()
        self._links = _Spool()
        if not pure_requested() if compiled is None else compiled:
            self._encode_calls, self._encode_links = _compiled_encoders()
        else:
            self._encode_calls = functools.partial(_encode_each, _syscall_bytes)
            self._encode_links = functools.partial(_encode_each, _link_bytes)

    def syscalls(self, calls: list[Syscall]) -> None:
        self._calls.add([sc.enter_ns for sc in calls], [sc.id for sc in calls], calls, self._encode_calls)

    def links(self, links: list[Link]) -> None:
        # In id order, a batch goes to its run's file as one piece: a connection's settled
        # links come a direction and a role at a time, interleaved ids that would be one
        # piece a link (800k writes on bench/correlate's recording).
        links = sorted(links, key=_LINK_ID)
        self._links.add([link.id for link in links], [0] * len(links), links, self._encode_links)

    def finish(self, session: Session, out: TextIO) -> None:
        _write_summary(session, out)
        if session.syscall_count:
            for key, spool in (("syscalls", self._calls), ("links", self._links)):
                out.write(f',"{key}":[')
                _write_encoded(out, spool.merged())
                out.write("]")
        out.write(',"requests":[')
        _write_records(out, (request_record(r) for r in requests_of(session)))
        out.write("]")
        out.write(',"findings":[')
        _write_records(out, (finding_record(f) for f in session.findings))
        out.write("]}\n")


def _syscall_bytes(sc: Syscall) -> bytes:
    return dumps(syscall_record(sc))


def _link_bytes(link: Link) -> bytes:
    return dumps(link_record(link))


def _encode_each(record: Callable[[Any], bytes], items: list[Any], buf: bytearray, sizes: list[int]) -> None:
    """The reference `Encoder`: each record copied into the run's buffer at once, as
    orjson's bytes keep the capacity they were encoded in (≈ 4 KB for a 400-byte record)."""
    for item in items:
        data = record(item)
        buf += data
        buf += b","
        sizes.append(len(data) + 1)


def _compiled_encoders() -> tuple[Encoder, Encoder]:
    """The compiled encoders, with the reference for the records they leave to it; a
    missing build is an error, never a silent fall back (as `correlator._new_lane`)."""
    try:
        from wirecorr._core.records import encode_links, encode_syscalls
    except ImportError as e:
        raise WirecorrError(
            f"the compiled JSON records are not built ({e}): run `make` or `pip install -e .`, "
            "or set WIRECORR_PURE=1 for the (slower) pure-Python path"
        ) from None
    return (
        functools.partial(encode_syscalls, fallback=_syscall_bytes),
        functools.partial(encode_links, fallback=_link_bytes),
    )


def _write_encoded(out: TextIO, pieces: Iterator[bytes]) -> None:
    """Pieces of whole records (`_Spool.merged`), comma-joined.

    They go to the text stream's binary buffer as they are when the stream writes UTF-8
    (standard output, as a rule): decoding 444 MB of records for the stream to encode them
    again cost ≈ 0.35 s on bench/correlate's recording. A stream of another encoding, or
    with no buffer (a StringIO), is given text: it encodes what it is given its own way.
    """
    binary = getattr(out, "buffer", None)
    encoding = getattr(out, "encoding", None)
    if binary is None or encoding is None or codecs.lookup(encoding).name != "utf-8":
        sep = ""
        for piece in pieces:
            out.write(sep)
            out.write(piece.decode())
            sep = ","
        return
    out.flush()
    comma = b""
    for piece in pieces:
        binary.write(comma)
        binary.write(piece)
        comma = b","
