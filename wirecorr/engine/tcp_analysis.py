"""Connections and per-packet TCP analysis, equal to Wireshark 4.0's tcp.analysis.*.

The algorithm is a port of Wireshark 4.0's epan/dissectors/packet-tcp.c:
`tcp_analyze_sequence_number` (flags, duplicate ACKs, RTT of ACKs, bytes in flight),
the conversation lookup and port-reuse test of `dissect_tcp`, the window-scale bookkeeping
of `verify_tcp_window_scaling` and the initial-RTT rule. Rules are kept in Wireshark's
order and with its quirks (32-bit sequence arithmetic, 0 meaning "not seen yet", the first
matching segment of the ACK list winning), because users compare our output with
Wireshark's and a "better" rule would read as a bug. Packet numbers that Wireshark shows
as frame numbers are stored as packet indices (frame number - 1).

Speed: the analyze budget is a few µs per packet in Python (DESIGN.md), so `feed` is a
closure over its state (cell lookups instead of attribute lookups), the common path of a
data segment or an ACK is written inline without helper calls, and only rare packets
(new connections, SYN/FIN/RST, handshake or close in progress, flagged packets, ICMP)
call helpers. Unacknowledged segments are kept oldest-first; while they are in sequence
order (no retransmission among them) an ACK trims a prefix and bytes in flight are the
span of first and last, which is what Wireshark's full list walk computes in that case;
otherwise the walk is done exactly as Wireshark does it.

Known differences from Wireshark, none of them met by the tests' captures:
- ICMP errors are attributed to the connection they quote and nothing else. Wireshark
  dissects the quoted TCP header as TCP: for a flow it has not seen it opens a
  conversation (a tcp.stream number with no packets, shifting later stream numbers),
  and a quoted pure SYN resets that flow's nextseq.
- IP fragments are not reassembled (Wireshark reassembles by default): the first
  fragment is analysed with the length its IP header states, later ones carry no TCP.
- Packets must be fed in increasing index order (rows are appended, sparse columns bisect).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from wirecorr.engine.analysis_flags import AnalysisFlag, flag_names
from wirecorr.engine.connections import (
    CLIENT,
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    RESET,
    SERVER,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    Connection,
    HandshakeOptions,
)
from wirecorr.engine.packet_table import PacketTable
from wirecorr.model import ACK, FIN, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, RST, SYN, Packet

M32 = 0xFFFFFFFF
HALF = 0x80000000
# Wireshark's TCP_MAX_UNACKED_SEGMENTS: past this many, segments are no longer tracked.
MAX_UNACKED = 10000
FAST_RETRANS_NS = 20_000_000
# Out-of-order threshold when no initial RTT is known (packet-tcp.c: 3 ms).
OOO_DEFAULT_NS = 3_000_000
BIF_LIMIT = 2_000_000_000

_RETRANSMISSION = int(AnalysisFlag.RETRANSMISSION)
_LOST_SEGMENT = int(AnalysisFlag.LOST_SEGMENT)
_ACK_LOST_SEGMENT = int(AnalysisFlag.ACK_LOST_SEGMENT)
_KEEP_ALIVE = int(AnalysisFlag.KEEP_ALIVE)
_DUPLICATE_ACK = int(AnalysisFlag.DUPLICATE_ACK)
_ZERO_WINDOW = int(AnalysisFlag.ZERO_WINDOW)
_ZERO_WINDOW_PROBE = int(AnalysisFlag.ZERO_WINDOW_PROBE)
_ZERO_WINDOW_PROBE_ACK = int(AnalysisFlag.ZERO_WINDOW_PROBE_ACK)
_KEEP_ALIVE_ACK = int(AnalysisFlag.KEEP_ALIVE_ACK)
_OUT_OF_ORDER = int(AnalysisFlag.OUT_OF_ORDER)
_FAST_RETRANSMISSION = int(AnalysisFlag.FAST_RETRANSMISSION)
_WINDOW_UPDATE = int(AnalysisFlag.WINDOW_UPDATE)
_WINDOW_FULL = int(AnalysisFlag.WINDOW_FULL)
_REUSED_PORTS = int(AnalysisFlag.REUSED_PORTS)
_SPURIOUS_RETRANSMISSION = int(AnalysisFlag.SPURIOUS_RETRANSMISSION)

# States in which a plain ACK (no SYN/FIN/RST) can still move a side to its next state.
_WATCH_STATES = frozenset({SYN_SENT, SYN_RECEIVED, FIN_WAIT_1, CLOSING, LAST_ACK})


class _Flow:
    """One direction of a TCP conversation: Wireshark's tcp_flow_t with its seq-analysis info.

    Sequence fields use Wireshark's convention that 0 means "not seen yet".
    `segs` holds the unacknowledged segments oldest first as (seq, nextseq, index, ts_ns);
    `mono` says they are in strictly increasing, non-overlapping order. A plain list (not a
    deque): in-flight lists are short, and a deque's 600-byte block per flow would be most
    of the memory of a short connection.
    The last four fields are the wire-inferred TCP state of the end that sends this flow.
    """

    __slots__ = (
        "base_seq",
        "base_set",
        "dupacknum",
        "fin_next",
        "first_ack",
        "history",
        "isn",
        "lastack",
        "lastacktime",
        "lastflags",
        "lastnondupack",
        "maxseqtobeacked",
        "mono",
        "nextseq",
        "nextseqtime",
        "sacked",
        "segs",
        "shift",
        "state",
        "valid_bif",
        "win_scale",
        "window",
    )

    def __init__(self, history: list[tuple[int, int, str]]) -> None:
        self.base_seq = 0
        self.base_set = False
        # -1: not known yet, -2: known not to be used, else the shift (packet-tcp.c).
        self.win_scale = -1
        self.shift = 0
        self.window = M32
        self.nextseq = 0
        self.nextseqtime = 0
        self.lastack = 0
        self.lastacktime = 0
        # Wireshark's frame 0, i.e. no earlier ACK: index -1.
        self.lastnondupack = -1
        self.dupacknum = 0
        self.maxseqtobeacked = 0
        self.segs: list[tuple[int, int, int, int]] = []
        self.mono = True
        self.lastflags = 0
        self.valid_bif = True
        # Wireshark's is_first_ack: set by a SYN, cleared by the side's first pure ACK.
        self.first_ack = False
        # Bytes covered by the SACK blocks of this side's last packet.
        self.sacked = 0
        self.state: str | None = None
        self.history = history
        self.isn: int | None = None
        self.fin_next: int | None = None


class _TcpConv:
    """A TCP conversation (Wireshark's tcp_analysis) and the Connection it feeds."""

    __slots__ = ("client", "conn", "first_rtt", "indices", "mru_syn", "rtt_wait", "server", "watch")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.indices = conn.packet_indices
        self.client = _Flow(conn.client_state)
        self.server = _Flow(conn.server_state)
        # Wireshark's ts_mru_syn and ts_first_rtt (0: not seen / not known).
        self.mru_syn = 0
        self.first_rtt = 0
        # A SYN was seen and no initial RTT is known yet: the next pure ACK sets it.
        self.rtt_wait = False
        self.watch = True


# key (src, sport, dst, dport) → (conversation, flow of src, flow of dst, direction)
_TcpEntry = tuple[_TcpConv, _Flow, _Flow, int]


class PacketAnalyzer:
    """Feed decoded packets in capture order; read `connections` and `table` at any time.

    `feed(pkt)` analyses one packet (live capture calls it as packets arrive), `finish()`
    marks the end of input and frees the per-conversation state; the results stay.
    Packet indices may skip (a filtered read): the table gets empty rows for the gaps.
    """

    feed: Callable[[Packet], None]

    def __init__(self) -> None:
        self.table = PacketTable()
        self.connections: list[Connection] = []
        self.tcp_streams = 0
        self.udp_streams = 0
        self._tcp: dict[tuple[bytes, int, bytes, int], _TcpEntry] = {}
        self._udp: dict[tuple[bytes, int, bytes, int], tuple[Connection, int]] = {}
        self.feed = self._make_feed()

    def finish(self) -> None:
        self._tcp.clear()
        self._udp.clear()

    # -- the hot path ------------------------------------------------------------------

    def _make_feed(self) -> Callable[[Packet], None]:
        table = self.table
        tcp_get = self._tcp.get
        new_tcp = self._new_tcp
        on_options = self._on_options
        track_state = self._track_state
        count_flags = _count_flags
        other_packet = self._other_packet
        t_ts = table.ts_ns.append
        t_off = table.offset.append
        t_conn = table.conn.append
        t_dir = table.direction.append
        t_flags = table.flags.append
        t_len = table.seglen.append
        t_seq = table.rel_seq.append
        t_ack = table.rel_ack.append
        t_win = table.window.append
        t_ana = table.analysis.append
        t_bif = table.bytes_in_flight.append
        dupack_num = table.dupack_num.add
        dupack_frame = table.dupack_frame.add
        rtt_key = table.ack_rtt_ns.keys_.append
        rtt_val = table.ack_rtt_ns.values_.append
        acked_key = table.acked_frame.keys_.append
        acked_val = table.acked_frame.values_.append
        pad_to = table.pad_to
        ts_col = table.ts_ns
        slow_ack = _ack_segments_slow
        slow_bif = _bytes_in_flight_slow
        proto_tcp = PROTO_TCP

        def feed(pkt: Packet) -> None:
            idx = pkt.index
            if idx != len(ts_col):
                pad_to(idx)
            if pkt.proto != proto_tcp or not pkt.payload_offset:
                other_packet(pkt)
                return
            ts = pkt.ts_ns
            flags = pkt.flags
            seq = pkt.seq
            ack = pkt.ack
            seglen = pkt.payload_len
            window = pkt.window
            key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
            entry = tcp_get(key)
            ta = 0
            if entry is None:
                entry = new_tcp(pkt, key)
            elif flags & SYN:
                fwd = entry[1]
                if fwd.base_set:
                    # dissect_tcp: a SYN with another ISN starts a new conversation, a
                    # SYN-ACK with another ISN re-bases the flow (issue 16944), both get
                    # the flag; a SYN with the same ISN restores nextseq (issue 17616).
                    if seq != fwd.base_seq:
                        if flags & ACK:
                            fwd.base_seq = seq
                        else:
                            entry = new_tcp(pkt, key)
                        ta = _REUSED_PORTS
                    elif not flags & ACK:
                        fwd.nextseq = fwd.maxseqtobeacked
            conv, fwd, rev, d = entry

            # tcp_analyze_sequence_number()
            if not fwd.base_set:
                fwd.base_seq = seq if flags & SYN else (seq - 1) & M32
                fwd.base_set = True
            if flags & ACK:
                if not rev.base_set:
                    rev.base_seq = (ack - 1) & M32
                    rev.base_set = True
                rev.valid_bif = True
            nxt = fwd.nextseq
            no_sfr = not flags & 7
            dup_num = 0
            if seglen == 1 and seq == nxt and rev.window == 0:
                ta |= _ZERO_WINDOW_PROBE
            else:
                if window == 0 and no_sfr:
                    ta |= _ZERO_WINDOW
                if nxt and (nxt - seq) & M32 >= HALF and not flags & RST:
                    ta |= _LOST_SEGMENT
                    fwd.valid_bif = False
                if seglen < 2 and no_sfr and seq == (nxt - 1) & M32:
                    ta |= _KEEP_ALIVE
                if seglen == 0:
                    if no_sfr and seq == nxt and ack == fwd.lastack:
                        if window:
                            if window != fwd.window:
                                ta |= _WINDOW_UPDATE
                            elif rev.lastflags & _KEEP_ALIVE:
                                ta |= _KEEP_ALIVE_ACK
                            else:
                                # -1 marks an "ACKed unseen segment" already reported.
                                dup_num = fwd.dupacknum = 1 if fwd.dupacknum == -1 else fwd.dupacknum + 1
                                ta |= _DUPLICATE_ACK
                        elif fwd.window == 0 and rev.lastflags & _ZERO_WINDOW_PROBE:
                            ta |= _ZERO_WINDOW_PROBE_ACK
                elif (
                    no_sfr
                    and rev.win_scale != -1
                    and (seq + seglen) & M32
                    == (rev.lastack + ((rev.window << (0 if rev.first_ack else rev.shift)) & M32)) & M32
                ):
                    ta |= _WINDOW_FULL
            if dup_num:
                dupack_num(idx, dup_num)
                dupack_frame(idx, fwd.lastnondupack)
            if ack != fwd.lastack:
                fwd.lastnondupack = idx
                fwd.dupacknum = 0
            if flags & ACK:
                mx = rev.maxseqtobeacked
                if mx and (mx - ack) & M32 >= HALF:
                    if (mx - rev.nextseq) & M32 >= HALF:
                        rev.maxseqtobeacked = rev.nextseq
                        ta |= _ACK_LOST_SEGMENT
                    else:
                        # The other side only sends ACKs: report the unseen segment once.
                        if rev.dupacknum == 0:
                            ta |= _ACK_LOST_SEGMENT
                        rev.dupacknum = -1
            if (seglen or flags & 3) and not ta & _KEEP_ALIVE:
                not_advanced = nxt and (seq - nxt) & M32 >= HALF
                if seglen > 1 and (nxt - 1) & M32 == seq:
                    not_advanced = False
                la = rev.lastack
                if seglen and la and not 0 < (seq + seglen - la) & M32 < HALF:
                    ta |= _SPURIOUS_RETRANSMISSION
                elif not_advanced:
                    # tcp.fastrt_supersedes_ooo (default on): fast retransmission first.
                    t = ts - rev.lastacktime
                    if rev.dupacknum >= 2 and la == seq and 0 <= t < FAST_RETRANS_NS:
                        ta |= _FAST_RETRANSMISSION
                    else:
                        t = ts - fwd.nextseqtime
                        if (
                            0 <= t < (conv.first_rtt or OOO_DEFAULT_NS)
                            and nxt != (seq + seglen + (1 if flags & 3 else 0)) & M32
                        ):
                            ta |= _OUT_OF_ORDER
                        else:
                            ta |= _RETRANSMISSION

            nextseq = (seq + seglen) & M32
            fsegs = fwd.segs
            if (seglen or flags & 3) and len(fsegs) < MAX_UNACKED:
                if flags & 3:
                    nextseq = (nextseq + 1) & M32
                if fsegs and fwd.mono and (seq - fsegs[-1][1]) & M32 >= HALF:
                    fwd.mono = False
                fsegs.append((seq, nextseq, idx, ts))
            if (not nxt or (nxt - nextseq) & M32 >= HALF) and not ta & _ZERO_WINDOW_PROBE:
                fwd.nextseq = nextseq
                fwd.nextseqtime = ts
            mx = fwd.maxseqtobeacked
            if (seq == mx or not mx) and not ta & _ZERO_WINDOW_PROBE:
                fwd.maxseqtobeacked = fwd.nextseq
            fwd.window = window
            fwd.lastack = ack
            fwd.lastacktime = ts
            fwd.lastflags = ta

            # Remove what this ACK acknowledges from the other direction's list.
            rsegs = rev.segs
            if rsegs:
                if rev.mono:
                    # In order: what the ACK covers is a prefix, at most one segment
                    # matches it exactly and only the first one left can straddle it.
                    hit = None
                    n = 0
                    for s in rsegs:
                        gap = (s[1] - ack) & M32
                        if gap == 0:
                            hit = s
                            n += 1
                            break
                        if gap <= HALF:
                            if (s[0] - ack) & M32 >= HALF:
                                rsegs[n] = (ack, s[1], s[2], s[3])
                            break
                        n += 1
                    if n:
                        del rsegs[:n]
                else:
                    hit = slow_ack(rev, ack)
                if hit is not None:
                    acked_key(idx)
                    acked_val(hit[2])
                    rtt = ts - hit[3]
                    if rtt:
                        rtt_key(idx)
                        rtt_val(rtt)
                if not rsegs:
                    rev.mono = True

            bif = 0
            if seglen and fsegs and fwd.valid_bif:
                base = fwd.base_seq
                if fwd.mono:
                    first = (fsegs[0][0] - base) & M32
                    last = (fsegs[-1][1] - base) & M32
                    in_flight = last - first if first <= last else slow_bif(fsegs, base)
                else:
                    in_flight = slow_bif(fsegs, base)
                if rev.sacked:
                    in_flight = (in_flight - rev.sacked) & M32
                if 0 < in_flight < BIF_LIMIT:
                    bif = in_flight - 1 if flags & 3 else in_flight
            # SACK blocks of this packet, for the other side's bytes in flight (the
            # first three: Wireshark keeps MAX_TCP_SACK_RANGES - 1 of them).
            sack = pkt.sack
            if sack is not None:
                fwd.sacked = sum((r - left) & M32 for left, r in sack[:3]) & M32
            elif fwd.sacked:
                fwd.sacked = 0

            t_ts(ts)
            t_off(pkt.offset)
            conn = conv.conn
            t_conn(conn.id)
            t_dir(d)
            t_flags(flags)
            t_len(seglen)
            t_seq((seq - fwd.base_seq) & M32)
            t_ack((ack - rev.base_seq) & M32 if flags & ACK else ack)
            t_win(window if flags & SYN else window << fwd.shift)
            t_ana(ta)
            t_bif(bif)
            if d:
                conn.packets_s2c += 1
                conn.bytes_s2c += seglen
            else:
                conn.packets_c2s += 1
                conn.bytes_c2s += seglen
            conn.last_ts_ns = ts
            conv.indices.append(idx)
            if ta:
                count_flags(conn, ta)
            if flags & SYN or pkt.wscale is not None:
                on_options(pkt, conv, fwd, rev, d)
            if flags & (SYN | ACK) == ACK:
                if conv.rtt_wait:
                    conv.first_rtt = rtt = ts - conv.mru_syn
                    if rtt:
                        conv.rtt_wait = False
                        conn.initial_rtt_ns = rtt
                # Window-full ignores scaling until the side's first ACK (issue 14690).
                fwd.first_ack = False
            if flags & 7 or conv.watch:
                track_state(conv, fwd, rev, d, idx, ts, flags, seq, ack, seglen)

        return feed

    # -- new conversations ---------------------------------------------------------------

    def _new_tcp(self, pkt: Packet, key: tuple[bytes, int, bytes, int]) -> _TcpEntry:
        """A new TCP conversation; its client is the SYN sender (SYN-ACK receiver)."""
        from_server = pkt.flags & (SYN | ACK) == SYN | ACK
        if from_server:
            caddr, cport, saddr, sport = pkt.dst, pkt.dport, pkt.src, pkt.sport
        else:
            caddr, cport, saddr, sport = pkt.src, pkt.sport, pkt.dst, pkt.dport
        conn = Connection(
            id=len(self.connections),
            stream=self.tcp_streams,
            proto="tcp",
            client_addr=caddr,
            client_port=cport,
            server_addr=saddr,
            server_port=sport,
            first_ts_ns=pkt.ts_ns,
            last_ts_ns=pkt.ts_ns,
        )
        self.tcp_streams += 1
        self.connections.append(conn)
        conv = _TcpConv(conn)
        c2s: _TcpEntry = (conv, conv.client, conv.server, 0)
        s2c: _TcpEntry = (conv, conv.server, conv.client, 1)
        rkey = (key[2], key[3], key[0], key[1])
        if from_server:
            self._tcp[key], self._tcp[rkey] = s2c, c2s
            return s2c
        self._tcp[key], self._tcp[rkey] = c2s, s2c
        return c2s

    def _new_udp(self, pkt: Packet, key: tuple[bytes, int, bytes, int]) -> tuple[Connection, int]:
        conn = Connection(
            id=len(self.connections),
            stream=self.udp_streams,
            proto="udp",
            client_addr=pkt.src,
            client_port=pkt.sport,
            server_addr=pkt.dst,
            server_port=pkt.dport,
            first_ts_ns=pkt.ts_ns,
            last_ts_ns=pkt.ts_ns,
        )
        self.udp_streams += 1
        self.connections.append(conn)
        entry = (conn, 0)
        self._udp[key] = entry
        self._udp[(key[2], key[3], key[0], key[1])] = (conn, 1)
        return entry

    # -- packets off the TCP fast path --------------------------------------------------

    def _other_packet(self, pkt: Packet) -> None:
        """UDP datagrams, ICMP errors (attributed to the flow they quote) and the rest."""
        conn_id = -1
        direction = 0
        seglen = 0
        proto = pkt.proto
        if proto == PROTO_UDP and pkt.payload_offset:
            key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
            entry = self._udp.get(key) or self._new_udp(pkt, key)
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
            if qproto == PROTO_TCP and qkey in self._tcp:
                tcp_entry = self._tcp[qkey]
                found, qdir = tcp_entry[0].conn, tcp_entry[3]
            elif qproto == PROTO_UDP and qkey in self._udp:
                found, qdir = self._udp[qkey]
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

    def _on_options(self, pkt: Packet, conv: _TcpConv, fwd: _Flow, rev: _Flow, d: int) -> None:
        """SYN bookkeeping: handshake options, ISNs and Wireshark's window-scale rules."""
        conn = conv.conn
        flags = pkt.flags
        if pkt.wscale is not None:
            fwd.win_scale = min(pkt.wscale, 14)
        if flags & SYN:
            opts = HandshakeOptions(
                mss=pkt.mss,
                wscale=pkt.wscale,
                sack_perm=pkt.sack_perm,
                timestamps=pkt.ts_val is not None,
                tfo=pkt.tfo_cookie is not None,
                tfo_cookie=pkt.tfo_cookie,
            )
            fwd.isn = pkt.seq
            if d:
                conn.server_options = opts
                conn.server_isn = pkt.seq
            else:
                conn.client_options = opts
                conn.client_isn = pkt.seq
            if not flags & ACK:
                conv.mru_syn = pkt.ts_ns
                conv.rtt_wait = pkt.ts_ns != 0 and not conv.first_rtt
            fwd.first_ack = True
            # verify_tcp_window_scaling()
            if fwd.win_scale == -1:
                fwd.win_scale = rev.win_scale = -2
            elif flags & ACK and rev.win_scale == -2:
                fwd.win_scale = -2
        for flow in (fwd, rev):
            flow.shift = flow.win_scale if flow.win_scale > 0 else 0
        client, server = conv.client, conv.server
        conn.wscale_in_use = client.win_scale >= 0 and server.win_scale >= 0
        conn.client_wscale = client.shift
        conn.server_wscale = server.shift

    # -- connection state as seen on the wire -------------------------------------------

    def _track_state(
        self, conv: _TcpConv, fwd: _Flow, rev: _Flow, d: int, idx: int, ts: int, flags: int, seq: int, ack: int, n: int
    ) -> None:
        """Move the sender's (fwd) and receiver's (rev) inferred TCP state for one packet."""
        conn = conv.conn

        def go(flow: _Flow, state: str) -> None:
            if flow.state != state:
                flow.state = state
                flow.history.append((ts, idx, state))
                if state == TIME_WAIT and conn.active_closer is None:
                    conn.active_closer = CLIENT if flow is conv.client else SERVER

        if flags & RST:
            if conn.reset_by is None:
                conn.reset_by = SERVER if d else CLIENT
            for flow in (fwd, rev):
                if flow.state == TIME_WAIT:
                    go(flow, CLOSED)
                elif flow.state not in (CLOSED, RESET):
                    go(flow, RESET)
        elif flags & SYN:
            if flags & ACK:
                if fwd.state in (None, SYN_SENT):
                    go(fwd, SYN_RECEIVED)
                if rev.state in (None, SYN_SENT) and (rev.isn is None or ack == (rev.isn + 1) & M32):
                    go(rev, ESTABLISHED)
            elif fwd.state is None:
                go(fwd, SYN_SENT)
        else:
            if fwd.state is None and rev.state is None:
                # Capture began mid-connection.
                go(fwd, ESTABLISHED)
                go(rev, ESTABLISHED)
            if flags & ACK:
                if fwd.state == SYN_SENT:
                    go(fwd, ESTABLISHED)
                if rev.state == SYN_RECEIVED and (rev.isn is None or _ge(ack, (rev.isn + 1) & M32)):
                    go(rev, ESTABLISHED)
            acks_peer_fin = bool(flags & ACK) and rev.fin_next is not None and _ge(ack, rev.fin_next)
            if flags & FIN and fwd.fin_next is None:
                fwd.fin_next = (seq + n + 1) & M32
                if rev.fin_next is None:
                    go(fwd, FIN_WAIT_1)
                    go(rev, CLOSE_WAIT)
                else:
                    go(fwd, LAST_ACK)
                    if rev.state == FIN_WAIT_2 or (rev.state == FIN_WAIT_1 and acks_peer_fin):
                        go(rev, TIME_WAIT)
                    elif rev.state == FIN_WAIT_1:
                        go(rev, CLOSING)
            elif acks_peer_fin:
                if rev.state == FIN_WAIT_1:
                    go(rev, FIN_WAIT_2)
                elif rev.state == LAST_ACK:
                    go(rev, CLOSED)
                elif rev.state == CLOSING:
                    go(rev, TIME_WAIT)
        conv.watch = fwd.state in _WATCH_STATES or rev.state in _WATCH_STATES


def _ge(a: int, b: int) -> bool:
    """Wireshark's GE_SEQ: a is at or after b in 32-bit sequence space."""
    return (a - b) & M32 < HALF


def _count_flags(conn: Connection, mask: int) -> None:
    counts = conn.analysis_counts
    for name in flag_names(mask):
        counts[name] = counts.get(name, 0) + 1


def _ack_segments_slow(flow: _Flow, ack: int) -> tuple[int, int, int, int] | None:
    """Wireshark's walk of the unacked list (newest first) for segments out of order.

    Deletes what `ack` covers, trims segments it covers in part, and returns the segment
    it acknowledges exactly; of several (retransmissions) the oldest, as Wireshark's walk
    overwrites its answer with each later (older) match. Re-derives `mono` from what stays.
    """
    hit = None
    kept: list[tuple[int, int, int, int]] = []
    segs = flow.segs
    for s in reversed(segs):
        nxt = s[1]
        if ack == nxt:
            hit = s
        elif (s[0] - ack) & M32 >= HALF and not 0 < (ack - nxt) & M32 < HALF:
            # GT_SEQ(ack, seq) && LE_SEQ(ack, nextseq): acknowledged in part.
            kept.append((ack, nxt, s[2], s[3]))
        elif (ack - nxt) & M32 >= HALF:
            # GT_SEQ(nextseq, ack): not acknowledged yet.
            kept.append(s)
    kept.reverse()
    # In place: the caller holds this list.
    segs[:] = kept
    flow.mono = all((cur[0] - prev[1]) & M32 < HALF for prev, cur in pairwise(kept))
    return hit


def _bytes_in_flight_slow(segs: list[tuple[int, int, int, int]], base: int) -> int:
    """packet-tcp.c's span of the unacked list, in sequence numbers relative to base."""
    first = min((s[0] - base) & M32 for s in segs)
    last = max((s[1] - base) & M32 for s in segs)
    return (last - first) & M32
