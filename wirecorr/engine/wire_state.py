"""Each end's TCP state as the wire shows it, moved packet by packet.

RFC 793's state machine driven by the packets both ends sent (not by either kernel):
a SYN, a FIN or an RST moves a side at once; a plain ACK only matters while a side is in
one of `WATCH_STATES`, so the analyzer calls `track_state` for those packets alone. Each
move is kept in the Connection's per-side history, which the reports and the findings
read (who closed first, which side was left in CLOSE_WAIT).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
)
from wirecorr.engine.seq import GE_SEQ, M32
from wirecorr.model import ACK, FIN, RST, SYN

if TYPE_CHECKING:
    from wirecorr.engine.tcp_analysis import _Flow, _TcpConv

# States in which a plain ACK (no SYN/FIN/RST) can still move a side to its next state.
WATCH_STATES = frozenset({SYN_SENT, SYN_RECEIVED, FIN_WAIT_1, CLOSING, LAST_ACK})


def track_state(
    conv: _TcpConv, fwd: _Flow, rev: _Flow, d: int, idx: int, ts: int, flags: int, seq: int, ack: int, n: int
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
            if rev.state == SYN_RECEIVED and (rev.isn is None or GE_SEQ(ack, (rev.isn + 1) & M32)):
                go(rev, ESTABLISHED)
        acks_peer_fin = bool(flags & ACK) and rev.fin_next is not None and GE_SEQ(ack, rev.fin_next)
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
    conv.watch = fwd.state in WATCH_STATES or rev.state in WATCH_STATES
