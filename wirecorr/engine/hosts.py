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
from dataclasses import dataclass, field
from typing import Any

from wirecorr.engine.ingest import PacketFilter, diagnose, load_capture
from wirecorr.engine.session import Session
from wirecorr.errors import InputError
from wirecorr.recording import format as fmt
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
class MergedSession:
    path: str
    meta: dict[str, Any]
    hosts: list[HostSession] = field(default_factory=list)
    crossings: list[Crossing] = field(default_factory=list)

    @property
    def error(self) -> Any:
        return next((h.session.error for h in self.hosts if h.session.error is not None), None)


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


def _crossing_records(path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def on_custom(block: CustomBlock) -> None:
        if block.pen == fmt.PEN and block.data.startswith(TAG_CROSSING.encode() + b"\n"):
            out.append(fmt.decode_record(block.data)[1])

    reader = CaptureReader(path, on_custom=on_custom)
    # Damage stops here quietly: each host's Session has met it too and reports it.
    with contextlib.suppress(InputError, fmt.RecordFormatError):
        for _ in reader.records():
            pass
    return out


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
    for record in _crossing_records(path):
        for sent, received in record.get("pairs", []):
            a, b = _row(merged, sent), _row(merged, received)
            if a is not None and b is not None:
                merged.crossings.append(Crossing(sent, received, a[0], b[0], b[1] - a[1]))
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
