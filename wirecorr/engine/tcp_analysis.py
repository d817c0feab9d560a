"""Connections and per-packet TCP analysis, equal to Wireshark 4.0's tcp.analysis.*.

The algorithm is a port of Wireshark 4.0's epan/dissectors/packet-tcp.c:
`tcp_analyze_sequence_number` (flags, duplicate ACKs, RTT of ACKs, bytes in flight),
the conversation lookup and port-reuse test of `dissect_tcp`, the window-scale bookkeeping
of `verify_tcp_window_scaling` and the initial-RTT rule. Rules are kept in Wireshark's
order and with its quirks (32-bit sequence arithmetic, 0 meaning "not seen yet", the first
matching segment of the ACK list winning), because users compare our output with
Wireshark's and a "better" rule would read as a bug. Packet numbers that Wireshark shows
as frame numbers are stored as packet indices (frame number - 1).

The per-packet rules live in `_make_feed`'s closure, each block labelled with Wireshark's
rule name and definition in Wireshark's order, so it can be read side by side with
`tcp_analyze_sequence_number`. Each end's state on the wire is `wire_state`'s, and UDP
conversations and ICMP errors are `datagrams`'.

Speed: the analyze budget is a few µs per packet in Python (docs/architecture.md), so `feed` is a
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
    Connection,
    HandshakeOptions,
)
from wirecorr.engine.datagrams import Datagrams
from wirecorr.engine.packet_table import PacketTable
from wirecorr.engine.seq import GE_SEQ, GT_SEQ, HALF, LE_SEQ, M32
from wirecorr.engine.wire_state import track_state
from wirecorr.model import ACK, FIN, PROTO_TCP, RST, SYN, Packet

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

# Flag masks the rules test: SYN, FIN or RST ("no_sfr" below is none of them); SYN or FIN,
# each of which takes one sequence number.
_SYN_FIN_RST = SYN | FIN | RST
_SYN_FIN = SYN | FIN


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
        self._tcp: dict[tuple[bytes, int, bytes, int], _TcpEntry] = {}
        self.datagrams = Datagrams(self.table, self.connections, self._tcp)
        self.feed = self._make_feed()

    def finish(self) -> None:
        self._tcp.clear()
        self.datagrams.udp.clear()

    # -- the hot path ------------------------------------------------------------------

    def _make_feed(self) -> Callable[[Packet], None]:
        table = self.table
        tcp_get = self._tcp.get
        new_tcp = self._new_tcp
        on_options = self._on_options
        count_flags = _count_flags
        track = track_state
        other_packet = self.datagrams.feed
        syn_fin_rst = _SYN_FIN_RST
        syn_fin = _SYN_FIN
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
            no_sfr = not flags & syn_fin_rst
            dup_num = 0
            # The rules of tcp_analyze_sequence_number(), in Wireshark's order. Its five
            # rules on a repeated ACK share one test here; they exclude each other (WINDOW
            # FULL needs data, the other four none), so the order does not change a result.
            # ZERO WINDOW PROBE: one byte at the next expected sequence number while the
            # other side advertises a zero window; no other rule applies to it.
            if seglen == 1 and seq == nxt and rev.window == 0:
                ta |= _ZERO_WINDOW_PROBE
            else:
                # ZERO WINDOW: the window is 0, and none of SYN, FIN, RST is set.
                if window == 0 and no_sfr:
                    ta |= _ZERO_WINDOW
                # LOST SEGMENT: the segment starts past the next expected sequence number
                # (GT_SEQ(seq, nextseq)), once one is known; never for an RST.
                if nxt and (nxt - seq) & M32 >= HALF and not flags & RST:
                    ta |= _LOST_SEGMENT
                    fwd.valid_bif = False
                # KEEP ALIVE: 0 or 1 byte starting one before the next expected sequence
                # number; never a SYN, FIN or RST.
                if seglen < 2 and no_sfr and seq == (nxt - 1) & M32:
                    ta |= _KEEP_ALIVE
                if seglen == 0:
                    # The same seq and ack as the flow's last segment, no SYN/FIN/RST:
                    if no_sfr and seq == nxt and ack == fwd.lastack:
                        if window:
                            if window != fwd.window:
                                # WINDOW UPDATE: ... and a new, non-zero window.
                                ta |= _WINDOW_UPDATE
                            elif rev.lastflags & _KEEP_ALIVE:
                                # KEEP ALIVE ACK: ... answering a keep-alive.
                                ta |= _KEEP_ALIVE_ACK
                            else:
                                # DUPLICATE ACK: ... and the same window (its number counts
                                # the run; -1 marks an "ACKed unseen segment" reported).
                                dup_num = fwd.dupacknum = 1 if fwd.dupacknum == -1 else fwd.dupacknum + 1
                                ta |= _DUPLICATE_ACK
                        elif fwd.window == 0 and rev.lastflags & _ZERO_WINDOW_PROBE:
                            # ZERO WINDOW PROBE ACK: ... still a zero window, answering a
                            # zero-window probe.
                            ta |= _ZERO_WINDOW_PROBE_ACK
                # WINDOW FULL: data up to the right edge of the window the other side
                # advertised, its scaling known; never a SYN, FIN or RST.
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
            # ACKED LOST PACKET (ack_lost_segment): the ACK is past the highest sequence
            # number the other side was seen to send (GT_SEQ(ack, maxseqtobeacked)).
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
            # RETRANSMISSION / FAST RETRANSMISSION / OUT-OF-ORDER / SPURIOUS RETRANSMISSION:
            # data (or a SYN or FIN) that does not advance the sequence number
            # (LT_SEQ(seq, nextseq)); a keep-alive is none of them.
            if (seglen or flags & syn_fin) and not ta & _KEEP_ALIVE:
                not_advanced = nxt and (seq - nxt) & M32 >= HALF
                if seglen > 1 and (nxt - 1) & M32 == seq:
                    not_advanced = False
                la = rev.lastack
                # SPURIOUS RETRANSMISSION: every byte was acknowledged already
                # (LE_SEQ(seq + seglen, lastack of the other side)).
                if seglen and la and not 0 < (seq + seglen - la) & M32 < HALF:
                    ta |= _SPURIOUS_RETRANSMISSION
                elif not_advanced:
                    # FAST RETRANSMISSION: at the other side's ACK after two or more
                    # duplicate ACKs, within 20 ms of the last (tcp.fastrt_supersedes_ooo,
                    # on by default: tested before OUT-OF-ORDER).
                    t = ts - rev.lastacktime
                    if rev.dupacknum >= 2 and la == seq and 0 <= t < FAST_RETRANS_NS:
                        ta |= _FAST_RETRANSMISSION
                    else:
                        # OUT-OF-ORDER: within the initial RTT (or 3 ms) of the segment
                        # that set nextseq, and not ending exactly at it; else RETRANSMISSION.
                        t = ts - fwd.nextseqtime
                        if (
                            0 <= t < (conv.first_rtt or OOO_DEFAULT_NS)
                            and nxt != (seq + seglen + (1 if flags & syn_fin else 0)) & M32
                        ):
                            ta |= _OUT_OF_ORDER
                        else:
                            ta |= _RETRANSMISSION

            # Update nextseq / maxseqtobeacked and the list of unacknowledged segments.
            nextseq = (seq + seglen) & M32
            fsegs = fwd.segs
            if (seglen or flags & syn_fin) and len(fsegs) < MAX_UNACKED:
                if flags & syn_fin:
                    nextseq = (nextseq + 1) & M32
                # LT_SEQ(seq, nextseq of the last one): the list is no longer in order.
                if fsegs and fwd.mono and (seq - fsegs[-1][1]) & M32 >= HALF:
                    fwd.mono = False
                fsegs.append((seq, nextseq, idx, ts))
            # GT_SEQ(nextseq, fwd.nextseq): the segment advanced the flow.
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
                    bif = in_flight - 1 if flags & syn_fin else in_flight
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
            if flags & syn_fin_rst or conv.watch:
                track(conv, fwd, rev, d, idx, ts, flags, seq, ack, seglen)

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
        elif GT_SEQ(ack, s[0]) and LE_SEQ(ack, nxt):
            # acknowledged in part
            kept.append((ack, nxt, s[2], s[3]))
        elif GT_SEQ(nxt, ack):
            # not acknowledged yet
            kept.append(s)
    kept.reverse()
    # In place: the caller holds this list.
    segs[:] = kept
    flow.mono = all(GE_SEQ(cur[0], prev[1]) for prev, cur in pairwise(kept))
    return hit


def _bytes_in_flight_slow(segs: list[tuple[int, int, int, int]], base: int) -> int:
    """packet-tcp.c's span of the unacked list, in sequence numbers relative to base."""
    first = min((s[0] - base) & M32 for s in segs)
    last = max((s[1] - base) & M32 for s in segs)
    return (last - first) & M32
