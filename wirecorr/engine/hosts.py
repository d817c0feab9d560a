"""A merged recording (`wirecorr merge`) as the engine sees it: one Session per host, one clock.

Each host's packets, syscalls and process events are correlated on their own, exactly as
that host's recording alone would be: a client's connect links to the SYN on the client's
capture, the server's accept to the ACK on the server's. Putting both captures into one
TCP analysis instead would make every crossing a retransmission of itself. What ties the
hosts together is the common clock (the merge moved every host onto the first host's)
and the crossings: the packets both captured, each as (sender's copy, receiver's copy),
whose time difference is the one-way delay.
"""

from __future__ import annotations

import contextlib
import os
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from wirecorr.engine.ingest import PacketFilter, diagnose, load_capture
from wirecorr.engine.session import Session
from wirecorr.errors import InputError
from wirecorr.recording import format as fmt
from wirecorr.recording.merge import host_of_packet
from wirecorr.sources.capture_file import CaptureReader, CustomBlock

TAG_CROSSING = "crossing"


@dataclass
class Crossing:
    """One packet both hosts captured: `sent` is the sender's copy, `received` the other."""

    sent: int
    received: int
    sender: int
    receiver: int
    delay_ns: int


@dataclass
class HostSession:
    host: dict[str, Any]
    session: Session

    @property
    def name(self) -> str:
        return str(self.host.get("name") or self.host.get("id"))


@dataclass
class Conversation:
    """One connection as two hosts captured it: the client's end (on the host whose capture
    the client→server packets leave from) and the server's end, which NAT may have given
    other addresses. `client_host`/`server_host` are positions in `MergedSession.hosts`,
    the connection ids are those hosts' own; `crossings` are the packets both captured."""

    client_host: int
    client_conn: int
    server_host: int
    server_conn: int
    crossings: list[Crossing] = field(default_factory=list)


@dataclass
class MergedSession:
    path: str
    meta: dict[str, Any]
    hosts: list[HostSession] = field(default_factory=list)
    crossings: list[Crossing] = field(default_factory=list)

    @property
    def error(self) -> Any:
        return next((h.session.error for h in self.hosts if h.session.error is not None), None)

    def locate(self, index: int) -> tuple[int, int] | None:
        """(host position, that host's connection id) of packet `index`, or None."""
        for pos, h in enumerate(self.hosts):
            table = h.session.analyzer.table
            if index < len(table) and table.offset[index] and table.conn[index] >= 0:
                return pos, int(table.conn[index])
        return None

    def conversations(self) -> list[Conversation]:
        """The connections both ends of which were captured, each joined across hosts by
        the crossings: the same connection under its two names."""
        position = {h.host["id"]: pos for pos, h in enumerate(self.hosts)}
        found: dict[tuple[int, int, int, int], Conversation] = {}
        for c in self.crossings:
            sender, receiver = position.get(c.sender), position.get(c.receiver)
            if sender is None or receiver is None:
                continue
            sent_table = self.hosts[sender].session.analyzer.table
            received_table = self.hosts[receiver].session.analyzer.table
            ends = (sender, int(sent_table.conn[c.sent])), (receiver, int(received_table.conn[c.received]))
            if ends[0][1] < 0 or ends[1][1] < 0:
                continue
            # Direction 0 is client → server on the sender's own view of the connection.
            client, server = ends if sent_table.direction[c.sent] == 0 else ends[::-1]
            key = (*client, *server)
            if key not in found:
                found[key] = Conversation(*key)
            found[key].crossings.append(c)
        return sorted(found.values(), key=lambda cv: (cv.client_host, cv.client_conn, cv.server_host))

    def conversation_of(self, host: int, conn_id: int) -> Conversation | None:
        """The conversation one of whose ends is connection `conn_id` of host position `host`."""
        for cv in self.conversations():
            if (cv.client_host, cv.client_conn) == (host, conn_id) or (cv.server_host, cv.server_conn) == (
                host,
                conn_id,
            ):
                return cv
        return None


def merged_header(path: str) -> dict[str, Any] | None:
    """The header of `path` when it is a merged recording, else None; reads no packets."""
    if not os.path.isfile(path):
        # A named pipe or a device is read once, by the ordinary reading; never peeked at.
        return None
    found: dict[str, Any] = {}

    def on_custom(block: CustomBlock) -> None:
        if not found and block.pen == fmt.PEN:
            tag, payload = fmt.decode_record(block.data)
            found[tag] = payload

    try:
        reader = CaptureReader(path, on_custom=on_custom)
        try:
            for _ in reader.records():
                break
        finally:
            reader.close()
    except (InputError, fmt.RecordFormatError):
        # Damage is for the ordinary reading to report, with what came before it.
        return None
    header = found.get(fmt.TAG_HEADER)
    return header if header and header.get("hosts") else None


@dataclass(frozen=True)
class CrossingPair:
    """A `crossing` record's pair as read from the file: packet indices and host ids."""

    sent: int
    received: int
    sender: int
    receiver: int


def read_crossings(path: str, meta: dict[str, Any]) -> list[CrossingPair]:
    """The crossings of the merged recording at `path` whose header is `meta`.

    A merge writes them before the packets, each pair with its sender's host, so the
    reading stops at the first packet; a file whose records lack the senders (or come
    after the packets) is walked to the end for each packet's interface, which names its host.
    """
    records: list[dict[str, Any]] = []

    def on_custom(block: CustomBlock) -> None:
        if block.pen == fmt.PEN and block.data.startswith(TAG_CROSSING.encode() + b"\n"):
            records.append(fmt.decode_record(block.data)[1])

    ifaces = array("l")
    reader = CaptureReader(path, on_custom=on_custom)
    try:
        # Damage stops here quietly: each host's Session meets it too and reports it.
        with contextlib.suppress(InputError, fmt.RecordFormatError):
            for raw in reader.records():
                if not ifaces and records and all("senders" in r for r in records):
                    break
                ifaces.append(raw[2])
    finally:
        reader.close()
    host_of = host_of_packet(meta)
    out: list[CrossingPair] = []
    for record in records:
        hosts = record.get("hosts") or [0, 0]
        senders = record.get("senders")
        for k, (sent, received) in enumerate(record.get("pairs", [])):
            if senders is not None:
                sender = senders[k]
            elif sent < len(ifaces) and ifaces[sent] in host_of:
                sender = host_of[ifaces[sent]]
            else:
                continue
            out.append(CrossingPair(sent, received, sender, hosts[1] if sender == hosts[0] else hosts[0]))
    return out


def crossing_rows(path: str, meta: dict[str, Any]) -> dict[int, tuple[int, str, str]]:
    """For a timeline that shows each crossing once: the sender's copy → (the receiver's
    copy, the sending host's name, the receiving host's name)."""
    names = {h["id"]: str(h.get("name") or h["id"]) for h in meta.get("hosts") or []}
    return {
        p.sent: (p.received, names.get(p.sender, "?"), names.get(p.receiver, "?")) for p in read_crossings(path, meta)
    }


def one_copy(crossings: dict[int, tuple[int, str, str]], arrived_ns: dict[int, int]) -> PacketFilter:
    """The packet filter for a merged recording read as one capture (the TUI's timeline):
    a receiver's copy of a packet on the same connection as its sender's copy is left out,
    so the one session sees each crossing once — otherwise it reads the copy as a
    retransmission (a false finding per direction) and counts the connection's bytes twice,
    and its links end on the sender's copy, the row the timeline shows. Under NAT the
    receiver's copy carries other addresses: it is its host's own connection and is kept.
    `crossings` is `crossing_rows`'s; packets must come in file order. The time each
    copy left out was captured goes into `arrived_ns` (by its index): the one-way delay."""
    sender_of = {received: sent for sent, (received, _, _) in crossings.items()}
    sent_as: dict[int, tuple[int, bytes, int, bytes, int]] = {}

    def keep(pkt: Any) -> bool:
        ends = (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
        if pkt.index in crossings:
            sent_as[pkt.index] = ends
            return True
        sent = sender_of.get(pkt.index)
        if sent is None or sent_as.pop(sent, None) != ends:
            return True
        arrived_ns[pkt.index] = pkt.ts_ns
        return False

    return keep


class SecondCopies:
    """`live` across network namespaces of one machine: a packet that crosses from one of
    them to another (a veth) is captured in both, on one clock, before any merge has paired
    the copies. Read as one capture, the second copy would be its own row and a
    retransmission of itself to the engine (`one_copy` is the same rule for a merged file).

    A copy is a packet equal in addresses, ports, TCP numbers, flags, window and payload to
    one another capture (`Packet.iface`: which capture saw it) saw within `window_ns`. A
    repeat the same capture saw is a retransmission and stays. Under NAT the addresses
    differ: the copy is its namespace's own connection and stays too.
    """

    def __init__(self, window_ns: int = 1_000_000_000) -> None:
        self.window_ns = window_ns
        self._seen: dict[tuple[Any, ...], tuple[int, int]] = {}  # key → (capture, ts_ns)
        self._order: deque[tuple[int, tuple[Any, ...]]] = deque()

    def is_copy(self, pkt: Any) -> bool:
        payload = pkt.frame[pkt.payload_offset :] if pkt.payload_offset else b""
        key = (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.seq, pkt.ack, pkt.flags, pkt.window,
               pkt.payload_len, hash(payload))  # fmt: skip
        order, seen = self._order, self._seen
        while order and order[0][0] < pkt.ts_ns - self.window_ns:
            ts, old = order.popleft()
            if seen.get(old, (0, None))[1] == ts:
                del seen[old]
        first = seen.get(key)
        if first is not None and first[0] != pkt.iface and abs(pkt.ts_ns - first[1]) <= self.window_ns:
            return True
        seen[key] = (pkt.iface, pkt.ts_ns)
        order.append((pkt.ts_ns, key))
        return False


def load_merged(path: str, meta: dict[str, Any], *, packet_filter: PacketFilter | None = None) -> MergedSession:
    """Each host of the merged recording at `path` correlated on its own, plus the crossings."""
    merged = MergedSession(path, meta)
    host_of = {iface: h["id"] for h in meta["hosts"] for iface in h.get("interfaces") or []}
    for spec in meta["hosts"]:
        hid = spec["id"]

        def mine(pkt: Any, hid: int = hid) -> bool:
            return host_of.get(pkt.iface) == hid and (packet_filter is None or packet_filter(pkt))

        session = Session()
        load_capture(session, path, packet_filter=mine, host=hid)
        diagnose(session)
        merged.hosts.append(HostSession(spec, session))
    for pair in read_crossings(path, meta):
        a, b = _row(merged, pair.sent), _row(merged, pair.received)
        if a is not None and b is not None:
            merged.crossings.append(Crossing(pair.sent, pair.received, a[0], b[0], b[1] - a[1]))
    return merged


def _row(merged: MergedSession, index: int) -> tuple[int, int] | None:
    """(host id, timestamp) of packet `index`, from the host whose table holds it."""
    for h in merged.hosts:
        table = h.session.analyzer.table
        if index < len(table) and table.offset[index]:
            return h.host["id"], int(table.ts_ns[index])
    return None


def host_summary(host: dict[str, Any]) -> dict[str, Any]:
    """The header's description of one host, as reports show it."""
    keys = ("id", "name", "hostname", "source", "interface", "interfaces", "pids", "command", "netns")
    out = {k: host.get(k) for k in keys}
    out |= {
        "offset_ns": host.get("offset_ns", 0),
        "offset_error_ns": host.get("offset_error_ns", 0),
        "drift_ppb": host.get("drift_ppb", 0.0),
        "sync": host.get("sync"),
    }
    return out
