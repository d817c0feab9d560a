"""The per-packet TCP analysis flags, named and valued as Wireshark 4.0 does.

The bit values are Wireshark's own `TCP_A_*` constants (epan/dissectors/packet-tcp.c), so a
mask can be compared with a Wireshark build's debug output and the port of its algorithm
reads the same as the original. `FIELD_NAMES` gives the display-filter field of each flag,
which is what tshark prints and what users type into Wireshark.
"""

from __future__ import annotations

from enum import IntFlag


class AnalysisFlag(IntFlag):
    RETRANSMISSION = 0x0001
    LOST_SEGMENT = 0x0002
    ACK_LOST_SEGMENT = 0x0004
    KEEP_ALIVE = 0x0008
    DUPLICATE_ACK = 0x0010
    ZERO_WINDOW = 0x0020
    ZERO_WINDOW_PROBE = 0x0040
    ZERO_WINDOW_PROBE_ACK = 0x0080
    KEEP_ALIVE_ACK = 0x0100
    OUT_OF_ORDER = 0x0200
    FAST_RETRANSMISSION = 0x0400
    WINDOW_UPDATE = 0x0800
    WINDOW_FULL = 0x1000
    REUSED_PORTS = 0x2000
    SPURIOUS_RETRANSMISSION = 0x4000


FIELD_NAMES: dict[AnalysisFlag, str] = {
    AnalysisFlag.RETRANSMISSION: "tcp.analysis.retransmission",
    AnalysisFlag.LOST_SEGMENT: "tcp.analysis.lost_segment",
    AnalysisFlag.ACK_LOST_SEGMENT: "tcp.analysis.ack_lost_segment",
    AnalysisFlag.KEEP_ALIVE: "tcp.analysis.keep_alive",
    AnalysisFlag.DUPLICATE_ACK: "tcp.analysis.duplicate_ack",
    AnalysisFlag.ZERO_WINDOW: "tcp.analysis.zero_window",
    AnalysisFlag.ZERO_WINDOW_PROBE: "tcp.analysis.zero_window_probe",
    AnalysisFlag.ZERO_WINDOW_PROBE_ACK: "tcp.analysis.zero_window_probe_ack",
    AnalysisFlag.KEEP_ALIVE_ACK: "tcp.analysis.keep_alive_ack",
    AnalysisFlag.OUT_OF_ORDER: "tcp.analysis.out_of_order",
    AnalysisFlag.FAST_RETRANSMISSION: "tcp.analysis.fast_retransmission",
    AnalysisFlag.WINDOW_UPDATE: "tcp.analysis.window_update",
    AnalysisFlag.WINDOW_FULL: "tcp.analysis.window_full",
    AnalysisFlag.REUSED_PORTS: "tcp.analysis.reused_ports",
    AnalysisFlag.SPURIOUS_RETRANSMISSION: "tcp.analysis.spurious_retransmission",
}

# "Any retransmission": the three kinds Wireshark tells apart are one thing to the pairing
# and the findings (a resent segment is not the call's first transmission).
ANY_RETRANSMISSION = int(
    AnalysisFlag.RETRANSMISSION | AnalysisFlag.FAST_RETRANSMISSION | AnalysisFlag.SPURIOUS_RETRANSMISSION
)

# Short names (the field name without "tcp.analysis."), for reports and per-connection counts.
SHORT_NAMES: dict[AnalysisFlag, str] = {flag: name.rsplit(".", 1)[1] for flag, name in FIELD_NAMES.items()}

# Wireshark files fast and spurious retransmissions under "tcp.analysis.retransmission"
# too (it adds that expert item for them), so a filter for retransmissions finds all three.
_ALSO_RETRANSMISSION = AnalysisFlag.FAST_RETRANSMISSION | AnalysisFlag.SPURIOUS_RETRANSMISSION


def flag_names(mask: int) -> list[str]:
    """Short names of the tcp.analysis.* fields Wireshark shows for `mask`, in bit order.

    As in tshark, a fast or spurious retransmission is also a "retransmission" (it is
    what `tshark -Y tcp.analysis.retransmission` counts), so reports and counts built on
    these names agree with tshark field for field.
    """
    if mask & _ALSO_RETRANSMISSION:
        mask |= AnalysisFlag.RETRANSMISSION
    return [SHORT_NAMES[flag] for flag in AnalysisFlag if mask & flag]


def wireshark_fields(mask: int) -> set[str]:
    """The tcp.analysis.* flag fields Wireshark shows for a packet with this mask.

    Differs from the plain mask in one way: fast and spurious retransmissions also carry
    tcp.analysis.retransmission. "tcp.analysis.flags" is there whenever any flag is.
    """
    fields = {FIELD_NAMES[flag] for flag in AnalysisFlag if mask & flag}
    if mask & _ALSO_RETRANSMISSION:
        fields.add(FIELD_NAMES[AnalysisFlag.RETRANSMISSION])
    if mask:
        fields.add("tcp.analysis.flags")
    return fields
