"""EventIndex: the Session as timeline rows, and every question a view asks about a row.

Events go in through `add_packet`/`add_syscall` (which feed the Session, whose correlator
and analyzer are incremental) and become rows at `flush()`, so a file being indexed and
a live trace are the same thing to the views. All of it runs on the UI thread in short
slices (see loader.py): the correlator is not thread-safe, and `label()` itself updates
its state, so one thread owns the Session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from wirecorr.engine.analysis_flags import FIELD_NAMES, wireshark_fields
from wirecorr.engine.connections import Connection
from wirecorr.engine.session import Session
from wirecorr.engine.socket_map import Endpoint, endpoint_key
from wirecorr.model import ACK, FIN, PSH, RST, SYN, URG, Finding, Link, Packet, Syscall
from wirecorr.recording.columns import SyscallRows
from wirecorr.views.tui.calls import CallList, owner_mask
from wirecorr.views.tui.display_filter import REQUEST_FIELDS, FieldValue
from wirecorr.views.tui.packets import PacketSource
from wirecorr.views.tui.rows import RowIndex, is_syscall_ref, packet_ref, ref_pos, syscall_ref
from wirecorr.vocab import OWNER_CALLS

_FLAGS = {
    "tcp.flags.syn": SYN,
    "tcp.flags.ack": ACK,
    "tcp.flags.fin": FIN,
    "tcp.flags.rst": RST,
    "tcp.flags.psh": PSH,
    "tcp.flags.urg": URG,
}

# A packet's direction by the connection's roles (the capture's direction flag says which
# end sent it; the client is the end that sent the SYN, or the first datagram).
C2S = "c→s"
S2C = "s→c"
_BYTES_FIELDS = frozenset({"frame.bytes", "tcp.payload", "udp.payload", "data"})
# New links past which `sync` marks every row changed instead of naming each: the
# timeline caches 4096 rows, and the end of a large file's indexing brings 500k links
# (0.4 s to name their rows one by one, for a cache that is simply dropped).
DIRTY_LINKS_MAX = 1024
_WIRESHARK_FIELDS = frozenset(
    {"ip.addr", "ip.src", "ip.dst", "tcp.port", "tcp.srcport", "tcp.dstport", "udp.port", "udp.srcport"}
    | {"udp.dstport", "tcp.stream", "udp.stream", "udp.length", "tcp.analysis.flags"}
    | set(FIELD_NAMES.values())
)


@dataclass
class EventIndex:
    # Fields `mask` answers for many rows at once, from columns.
    MASK_FIELDS: ClassVar[frozenset[str]] = frozenset({"net", "packet"})

    session: Session
    packets: PacketSource
    calls: CallList = field(default_factory=CallList)
    rows: RowIndex = field(default_factory=RowIndex)
    pos_of_id: dict[int, int] = field(default_factory=dict)
    # Findings by row ref (index into session.findings), rebuilt when findings change.
    finding_refs: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # The refs a finding names itself (not only through its links): they get the `!` mark.
    finding_direct: set[int] = field(default_factory=set)
    # Rows whose text changed since the timeline last asked (they gained a link): it
    # redraws those instead of dropping its whole line cache at every batch.
    dirty: set[int] = field(default_factory=set)
    dirty_all: bool = False
    # The row as the timeline shows it, for the filter's `text` field (set by the app: the
    # formatting lives in row_text, which imports this module).
    text_of: Callable[[int], str] | None = None
    # The request fields of the filter (request, http.status, req.time…), answered by the
    # Requests pane's row map once indexing has ended (requests_pane.RequestRows).
    request_field: Callable[[int, str], FieldValue] | None = None
    # A merged recording's packets both hosts captured (engine/hosts.py, `set_crossings`):
    # the sender's copy → (the receiver's copy, sender's name, receiver's name). Each is one
    # row, the sender's; `shown_as` sends the receiver's copy there.
    crossings: dict[int, tuple[int, str, str]] = field(default_factory=dict)
    shown_as: dict[int, int] = field(default_factory=dict)
    # When each receiver's copy the engine was not fed (`hosts.one_copy`) was captured.
    arrived_ns: dict[int, int] = field(default_factory=dict)
    _hidden: np.ndarray | None = None
    _nlinks: int = 0
    # (pid, fd) strings of the sockets behind each connection, as the app knew them.
    owners: dict[int, set[str]] = field(default_factory=dict)
    # Rows not flushed yet: (timestamps, refs) array pairs, and single rows as they come live.
    pending: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    _pending_one: list[tuple[int, int]] = field(default_factory=list)
    # connect/accept rows whose connection is not known yet (they name its pid/fd owner).
    unowned: list[int] = field(default_factory=list)
    events: int = 0
    # Replaying a recording, hold rows newer than the last syscall's exit: the recorder
    # writes syscalls in batches up to ~1 s late, and rows placed before them would
    # otherwise have to be merged with a large batch of late syscalls at every slice.
    hold_back: bool = False
    _watermark: int | None = None
    _watermark_moved: bool = False
    _nfindings: int = -1
    _local: set[Endpoint] = field(default_factory=set)
    _conn_cache: dict[int, int] = field(default_factory=dict)

    # -- input ------------------------------------------------------------------------

    def add_packet(self, pkt: Packet) -> None:
        self.session.feed_packet(pkt)
        self._pending_one.append((pkt.ts_ns, packet_ref(pkt.index)))

    def add_packet_rows(self, start: int, end: int) -> None:
        """Rows for packets `start`..`end` - 1, which went into the Session's table by
        themselves (the loader's compiled feed): their times come from the table."""
        if end > start:
            ts = np.frombuffer(self.session.analyzer.table.ts_ns, dtype=np.int64)[start:end].copy()
            self.pending.append((ts, np.arange(start, end, dtype=np.int64) << 1))

    def add_call_rows(self, rows: SyscallRows) -> None:
        """Rows for a batch of a recording's syscall columns, before the Session is fed
        them (`feed_call`): objects are made only for rows that are looked at."""
        calls = self.calls
        start = calls.extend_rows(rows)
        n = len(rows)
        if not n:
            return
        positions = np.arange(start, start + n, dtype=np.int64)
        self.pos_of_id.update(zip(calls.ids[start:].tolist(), positions.tolist(), strict=True))
        enter = np.frombuffer(calls.enter_ns, dtype=np.int64)[start:].copy()
        self.pending.append((enter, positions << 1 | 1))
        self.unowned.extend((positions[owner_mask(rows)] << 1 | 1).tolist())
        for column in ("fdinfo", "ret_fdinfo"):
            for info in rows.values(column):
                key = endpoint_key(info.local) if info is not None else None
                if key is not None:
                    self._local.add(key)
        self.raise_watermark(int(np.frombuffer(calls.end_ns, dtype=np.int64)[start:].max()))

    def feed_call(self, sc: Syscall) -> None:
        """Give the Session a syscall whose row `add_call_rows` made already."""
        self.session.feed_syscall(sc)

    def raise_watermark(self, end: int) -> None:
        if self._watermark is None or end > self._watermark:
            self._watermark = end
            self._watermark_moved = True

    def add_syscall(self, sc: Syscall) -> None:
        self.session.feed_syscall(sc)
        self.adopt([sc])
        self.raise_watermark(sc.end_ns)

    def adopt(self, calls: Iterable[Syscall]) -> None:
        """Make rows of syscalls already fed to the Session (an strace log loads whole)."""
        for sc in calls:
            pos = len(self.calls)
            self.calls.append(sc)
            self.pos_of_id[sc.id] = pos
            self._pending_one.append((sc.enter_ns, syscall_ref(pos)))
            if sc.name in OWNER_CALLS and sc.errno in (None, "EINPROGRESS"):
                self.unowned.append(syscall_ref(pos))
            for info in (sc.fdinfo, sc.ret_fdinfo):
                key = endpoint_key(info.local) if info is not None else None
                if key is not None:
                    self._local.add(key)

    def one_way_ns(self, sent: int) -> int:
        """The one-way delay of the crossing whose sender's copy is packet `sent`."""
        received = self.crossings[sent][0]
        ts = self.session.analyzer.table.ts_ns
        arrived = self.arrived_ns.get(received)
        return (ts[received] if arrived is None else arrived) - ts[sent]

    def set_crossings(self, crossings: dict[int, tuple[int, str, str]]) -> None:
        """Show each crossing once (before any packet has a row): its receiver's copy gets none."""
        self.crossings = crossings
        self.shown_as = {received: sent for sent, (received, _, _) in crossings.items()}
        self._hidden = np.sort(np.fromiter((packet_ref(i) for i in self.shown_as), dtype=np.int64))

    def flush(self) -> RowIndex:
        """Turn pending events into rows; return them (sorted) for views that filter."""
        new = RowIndex()
        if self.hold_back and self._watermark is not None and not self._watermark_moved:
            return new
        self._watermark_moved = False
        if self._pending_one:
            pairs = np.array(self._pending_one, dtype=np.int64).reshape(-1, 2)
            self.pending.append((pairs[:, 0], pairs[:, 1]))
            self._pending_one = []
        if not self.pending:
            return new
        ts = np.concatenate([p[0] for p in self.pending])
        refs = np.concatenate([p[1] for p in self.pending])
        if self._hidden is not None:
            shown = ~np.isin(refs, self._hidden)
            ts, refs = ts[shown], refs[shown]
        order = np.lexsort((refs, ts))
        ts, refs = ts[order], refs[order]
        self.pending = []
        if self.hold_back and self._watermark is not None:
            cut = int(np.searchsorted(ts, self._watermark, side="right"))
            if cut < len(ts):
                self.pending.append((ts[cut:], refs[cut:]))
            ts, refs = ts[:cut], refs[:cut]
        new.add_arrays(ts, refs)
        t0 = self.t0
        self.rows.add_arrays(ts, refs)
        self.events += len(new)
        if self.t0 != t0:  # an earlier first row: every relative time moved
            self.dirty_all = True
        self.sync()
        return new

    def sync(self) -> None:
        """Pick up what the engine added since: connection owners, findings, and which
        rows gained links (their text changed)."""
        links = self.session.correlator.links
        if len(links) - self._nlinks > DIRTY_LINKS_MAX:
            self.dirty_all = True
        else:
            dirty = self.dirty
            for link in links[self._nlinks :]:
                call = self.ref_of_call_id(link.syscall)
                if call is not None:
                    dirty.add(call)
                dirty.update(packet_ref(i) for i in link.packets)
        self._nlinks = len(links)
        if self.session.syscall_count:  # before the first, no call has a connection to own
            self.unowned = [ref for ref in self.unowned if self.conn_of(ref) is None]
        findings = self.findings
        if len(findings) != self._nfindings:
            self._nfindings = len(findings)
            self.finding_refs = self._index_findings(findings)
            self.dirty_all = True

    @property
    def findings(self) -> list[Finding]:
        return self.session.findings

    # -- rows -----------------------------------------------------------------------------

    def call(self, ref: int) -> Syscall:
        return self.calls[ref_pos(ref)]

    def ts(self, ref: int) -> int:
        if is_syscall_ref(ref):
            return self.calls.enter_ns[ref_pos(ref)]
        return self.session.analyzer.table.ts_ns[ref_pos(ref)]

    def ref_of_call_id(self, call_id: int) -> int | None:
        pos = self.pos_of_id.get(call_id)
        return None if pos is None else syscall_ref(pos)

    @property
    def t0(self) -> int:
        """Relative times count from the first event of either kind, so none is negative."""
        return self.rows.ts[0] if len(self.rows) else 0

    def links(self, ref: int) -> list[Link]:
        correlator = self.session.correlator
        if is_syscall_ref(ref):
            return correlator.links_of(self.calls.ids[ref_pos(ref)])
        return [correlator.links[i] for i in correlator.packet_links.get(ref_pos(ref), ())]

    def related(self, ref: int) -> list[int]:
        """Rows linked to `ref` (through any of its links), in time order, `ref` excluded."""
        out: set[int] = set()
        for link in self.links(ref):
            call = self.ref_of_call_id(link.syscall)
            if call is not None:
                out.add(call)
            out.update(packet_ref(self.shown_as.get(i, i)) for i in link.packets)
        out.discard(ref)
        return sorted(out, key=lambda r: (self.ts(r), r))

    def label(self, ref: int) -> list[int] | str | None:
        return self.session.correlator.label(ref_pos(ref))

    def kernel_only(self, ref: int) -> bool:
        """A packet of a connection that no syscall caused or consumed."""
        if is_syscall_ref(ref):
            return False
        index = ref_pos(ref)
        return self.session.analyzer.table.conn[index] >= 0 and index not in self.session.correlator.packet_links

    def frame(self, index: int) -> int:
        """The frame number Wireshark shows for packet `index` (a recording's custom blocks
        are frames there too)."""
        return self.session.frame_number(index)

    def direction(self, ref: int) -> str:
        """c→s or s→c for a packet of a connection, "" otherwise."""
        table = self.session.analyzer.table
        index = ref_pos(ref)
        if is_syscall_ref(ref) or table.conn[index] < 0:
            return ""
        return C2S if table.direction[index] == 0 else S2C

    def traced_ends(self, ref: int) -> tuple[bool, bool]:
        """(client traced, server traced) for a packet: whose socket the trace saw."""
        table = self.session.analyzer.table
        cid = table.conn[ref_pos(ref)]
        if is_syscall_ref(ref) or cid < 0:
            return False, False
        conn = self.session.analyzer.connections[cid]
        return (conn.client_addr, conn.client_port) in self._local, (conn.server_addr, conn.server_port) in self._local

    def conn_of(self, ref: int) -> int | None:
        """The engine's answer (`Correlator.connection_of`), the one findings and the ladder use."""
        if not is_syscall_ref(ref):
            cid = self.session.analyzer.table.conn[ref_pos(ref)]
            return cid if cid >= 0 else None
        cached = self._conn_cache.get(ref)
        if cached is not None:
            return cached
        found = self.session.correlator.connection_of(self.calls.ids[ref_pos(ref)])
        cid = found[0] if found is not None else None
        if cid is not None:
            self._conn_cache[ref] = cid
            sc = self.calls[ref_pos(ref)]
            if sc.name in OWNER_CALLS and sc.fd is not None:
                fd = sc.ret if sc.name != "connect" and isinstance(sc.ret, int) and sc.ret >= 0 else sc.fd
                self.owners.setdefault(cid, set()).add(f"{sc.pid}/{fd}")
        return cid

    def mask(self, name: str, refs: np.ndarray) -> np.ndarray:
        """`field` of a MASK_FIELDS name for every ref in `refs` (int64), as a bool array."""
        packet = (refs & 1) == 0
        if name == "packet":
            return packet
        net = np.frombuffer(self.calls.net, dtype=np.uint8)
        hit = packet.copy()
        calls = ~packet
        hit[calls] = net[refs[calls] >> 1] != 0
        return hit

    def field(self, ref: int, name: str) -> FieldValue:
        """The display filter's view of a row (display_filter.RowFacts)."""
        if name == "conn":
            return self.conn_of(ref)
        if name == "linked":
            return (
                bool(self.links(ref)) if is_syscall_ref(ref) else ref_pos(ref) in self.session.correlator.packet_links
            )
        if name == "link":
            return tuple(link.id for link in self.links(ref)) or None
        if name == "finding":
            return self.finding_refs.get(ref)
        if name == "kernel_only":
            return self.kernel_only(ref)
        if name == "packet":
            return not is_syscall_ref(ref)
        if name == "net":
            return not is_syscall_ref(ref) or bool(self.calls.net[ref_pos(ref)])
        if name == "text":
            return self.text_of(ref) if self.text_of is not None else None
        if name in REQUEST_FIELDS:
            return self.request_field(ref, name) if self.request_field is not None else None
        if is_syscall_ref(ref):
            return _call_field(self.calls[ref_pos(ref)], name)
        return self._packet_field(ref_pos(ref), name)

    def _packet_field(self, index: int, name: str) -> FieldValue:
        table = self.session.analyzer.table
        if name == "frame":
            return self.frame(index)
        if name in _BYTES_FIELDS:
            return self._bytes(index, name)
        if name == "frame.len":
            pkt = self.packets.get(index)
            return pkt.wirelen if pkt is not None else None
        cid = table.conn[index]
        if cid < 0:
            return None
        bit = _FLAGS.get(name)
        if bit is not None:
            return bool(table.flags[index] & bit)
        conn = self.session.analyzer.connections[cid]
        if name in ("tcp", "udp"):
            return conn.proto == name
        if name.startswith(("ip.", "tcp.", "udp.")) and name in _WIRESHARK_FIELDS:
            return self._wireshark_field(index, conn, name)
        if name == "tcp.len":
            return table.seglen[index]
        if name == "tcp.seq":
            return table.rel_seq[index]
        if name == "tcp.ack":
            return table.rel_ack[index]
        if name == "tcp.window":
            return table.window[index]
        return None

    def _wireshark_field(self, index: int, conn: Connection, name: str) -> FieldValue:
        """Wireshark's ip/tcp/udp fields, from the connection's ends and the packet's direction."""
        table = self.session.analyzer.table
        forward = table.direction[index] == 0
        src = (conn.client_addr, conn.client_port) if forward else (conn.server_addr, conn.server_port)
        dst = (conn.server_addr, conn.server_port) if forward else (conn.client_addr, conn.client_port)
        proto, field_name = name.split(".", 1)
        if proto == "ip":
            return {"addr": (src[0], dst[0]), "src": src[0], "dst": dst[0]}[field_name]
        if proto != conn.proto:
            return None
        if field_name == "port":
            return (src[1], dst[1])
        if field_name == "srcport":
            return src[1]
        if field_name == "dstport":
            return dst[1]
        if field_name == "stream":
            return conn.stream
        if field_name == "length":
            return table.seglen[index] + 8
        if name.startswith("tcp.analysis."):
            return name in wireshark_fields(table.analysis[index])
        return None

    def _bytes(self, index: int, name: str) -> bytes | None:
        pkt = self.packets.get(index)
        if pkt is None:
            return None
        if name == "frame.bytes":
            return pkt.frame
        if name == "data":
            return pkt.payload
        cid = self.session.analyzer.table.conn[index]
        proto = self.session.analyzer.connections[cid].proto if cid >= 0 else ""
        return pkt.payload if name.startswith(f"{proto}.") else None

    def _index_findings(self, findings: list[Finding]) -> dict[int, tuple[int, ...]]:
        """Evidence keys: "packets" (packet indices), "syscalls" (ids), "links" (ids)."""
        out: dict[int, list[int]] = {}
        links = self.session.correlator.links
        direct: set[int] = set()
        for number, finding in enumerate(findings):
            refs: set[int] = {packet_ref(i) for i in finding.evidence.get("packets", ())}
            calls = list(finding.evidence.get("syscalls", ()))
            direct.update(refs)
            direct.update(r for r in map(self.ref_of_call_id, calls) if r is not None)
            for link_id in finding.evidence.get("links", ()):
                if 0 <= link_id < len(links):
                    calls.append(links[link_id].syscall)
                    refs.update(packet_ref(i) for i in links[link_id].packets)
            refs.update(r for r in map(self.ref_of_call_id, calls) if r is not None)
            for ref in refs:
                out.setdefault(ref, []).append(number)
        self.finding_direct = direct
        return {ref: tuple(numbers) for ref, numbers in out.items()}

    def finding_rows(self, number: int) -> list[int]:
        return [ref for ref, numbers in self.finding_refs.items() if number in numbers]


def _call_field(sc: Syscall, name: str) -> FieldValue:
    if name == "data":
        return sc.data
    if name == "syscall":
        return sc.name
    if name == "fd":
        return sc.fd
    if name == "pid":
        return sc.pid
    if name == "tid":
        return sc.tid
    if name == "ret":
        return sc.ret
    if name == "errno":
        return sc.errno
    return None
