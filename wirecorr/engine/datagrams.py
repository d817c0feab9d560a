"""UDP conversations and ICMP errors: the packets off the TCP fast path.

A UDP conversation is a flow and its reverse, its client the first sender; an ICMP error
is attributed to the TCP or UDP conversation whose packet it quotes (and to nothing else:
see tcp_analysis's known differences from Wireshark). Both share the analyzer's packet
table and connection list, so connection ids and rows stay in one numbering.
"""

from __future__ import annotations

from typing import Any

from wirecorr.engine.connections import Connection
from wirecorr.engine.packet_table import PacketTable
from wirecorr.model import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, Packet

FlowKey = tuple[bytes, int, bytes, int]


class Datagrams:
    """UDP conversations by flow; `tcp` is the analyzer's TCP lookup, for quoted TCP flows."""

    def __init__(self, table: PacketTable, connections: list[Connection], tcp: dict[FlowKey, Any]) -> None:
        self.table = table
        self.connections = connections
        self.tcp = tcp
        self.udp: dict[FlowKey, tuple[Connection, int]] = {}
        self.streams = 0

    def _new(self, pkt: Packet, key: tuple[bytes, int, bytes, int]) -> tuple[Connection, int]:
        conn = Connection(
            id=len(self.connections),
            stream=self.streams,
            proto="udp",
            client_addr=pkt.src,
            client_port=pkt.sport,
            server_addr=pkt.dst,
            server_port=pkt.dport,
            first_ts_ns=pkt.ts_ns,
            last_ts_ns=pkt.ts_ns,
        )
        self.streams += 1
        self.connections.append(conn)
        entry = (conn, 0)
        self.udp[key] = entry
        self.udp[(key[2], key[3], key[0], key[1])] = (conn, 1)
        return entry

    def feed(self, pkt: Packet) -> None:
        """One packet that is not a TCP segment: a row in the table, and a conversation's
        counts for a datagram or an ICMP error about a known flow."""
        conn_id = -1
        direction = 0
        seglen = 0
        proto = pkt.proto
        if proto == PROTO_UDP and pkt.payload_offset:
            key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
            entry = self.udp.get(key) or self._new(pkt, key)
            conn, direction = entry
            seglen = pkt.payload_len
            if direction:
                conn.packets_s2c += 1
                conn.bytes_s2c += seglen
            else:
                conn.packets_c2s += 1
                conn.bytes_c2s += seglen
            conn.last_ts_ns = pkt.ts_ns
            conn.packet_indices.append(pkt.index)
            conn_id = conn.id
        elif proto in (PROTO_ICMP, PROTO_ICMPV6) and pkt.quoted is not None:
            qproto, qsrc, qsport, qdst, qdport = pkt.quoted
            qkey = (qsrc, qsport, qdst, qdport)
            found: Connection | None = None
            qdir = 0
            if qproto == PROTO_TCP and qkey in self.tcp:
                tcp_entry = self.tcp[qkey]
                found, qdir = tcp_entry[0].conn, tcp_entry[3]
            elif qproto == PROTO_UDP and qkey in self.udp:
                found, qdir = self.udp[qkey]
            if found is not None:
                found.icmp_errors += 1
                found.icmp_indices.append(pkt.index)
                conn_id = found.id
                # The error travels back towards the sender of the quoted packet.
                direction = 1 - qdir
        table = self.table
        table.ts_ns.append(pkt.ts_ns)
        table.offset.append(pkt.offset)
        table.conn.append(conn_id)
        table.direction.append(direction)
        table.flags.append(0)
        table.seglen.append(seglen)
        table.rel_seq.append(0)
        table.rel_ack.append(0)
        table.window.append(0)
        table.analysis.append(0)
        table.bytes_in_flight.append(0)
