"""Save rows as a wirecorr recording (pcapng): a connection, or what the filter shows.

The packets are copied from the capture as they were recorded (frame bytes, wire length,
link type, timestamp); the syscalls go in as wirecorr's custom blocks. So the file opens in
Wireshark (packets) and in wirecorr (both halves, paired again when it is read).
"""

from __future__ import annotations

import os

from wirecorr.errors import InputError, WirecorrError
from wirecorr.recording import RecordingWriter
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.packets import FilePackets
from wirecorr.views.tui.rows import is_syscall_ref, packet_ref, ref_pos


def export_path(source: str, what: str, directory: str = ".") -> str:
    """`echo-conn3.pcapng` beside the others in `directory`, never over an existing file."""
    stem = os.path.basename(source)
    for ext in (".gz", ".pcapng", ".pcap"):
        stem = stem.removesuffix(ext)
    path = os.path.join(directory, f"{stem}-{what}.pcapng")
    n = 2
    while os.path.lexists(path):
        path = os.path.join(directory, f"{stem}-{what}-{n}.pcapng")
        n += 1
    return path


def export_rows(index: EventIndex, refs: list[int], path: str, *, note: str) -> tuple[int, int]:
    """Write the rows `refs` to `path`; (packets, syscalls) written."""
    packets = index.packets
    if not isinstance(packets, FilePackets):
        raise WirecorrError("export: the packets of a live trace are in its recording; open that file to export")
    table = index.session.analyzer.table
    refs = sorted(set(refs), key=lambda ref: (index.ts(ref), ref))
    saved_packets = {ref_pos(ref) for ref in refs if not is_syscall_ref(ref)}
    calls = [index.call(ref) for ref in refs if is_syscall_ref(ref)]
    writer = RecordingWriter(path)
    try:
        meta = dict(index.session.meta)
        meta.update(exported_from=index.session.sources[:1], export=note)
        writer.write_header(meta)
        for i in sorted(saved_packets):
            try:
                ts_ns, _, _, linktype, wirelen, frame, _ = packets.access.record(table.offset[i])
            except InputError as e:
                raise WirecorrError(f"export: cannot re-read frame {index.frame(i)}: {e}") from None
            writer.write_packet(ts_ns, frame, wirelen, linktype)
        for sc in calls:
            writer.write_syscall(sc)
    except BaseException:
        writer.close(None)
        raise
    writer.close({"exported": True, "packets": len(saved_packets), "syscalls": len(calls)})
    return len(saved_packets), len(calls)


def connection_rows(index: EventIndex, conn_id: int) -> list[int]:
    """Every row of connection `conn_id`: its packets and the syscalls the index puts on it."""
    conn = index.session.analyzer.connections[conn_id]
    refs = [packet_ref(i) for i in conn.packet_indices]
    refs += [ref for ref in index.rows.refs if is_syscall_ref(ref) and index.conn_of(ref) == conn_id]
    return refs
