"""Connections as seen on the wire: one TCP 4-tuple lifetime or one UDP flow.

A Connection is built by `PacketAnalyzer` while packets are fed, so every field is valid
for "the packets so far" — a live view reads the same object that a replay finishes.
Addresses stay raw bytes like on `Packet` (cheap to hash and compare; `format_endpoint`
renders them).

The state histories are what an observer on the wire can infer for each end, not what a
kernel reports: the client enters ESTABLISHED when the SYN-ACK passes, the server when
the ACK of its SYN passes, a side is in TIME_WAIT once it has sent the first FIN and has
seen the peer's FIN and the ACK of its own. That is what the syscall correlation needs:
which end closed first (TIME_WAIT accumulates there), which end sat in CLOSE_WAIT.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from wirecorr.model import format_endpoint

SYN_SENT = "SYN_SENT"
SYN_RECEIVED = "SYN_RECEIVED"
ESTABLISHED = "ESTABLISHED"
FIN_WAIT_1 = "FIN_WAIT_1"
FIN_WAIT_2 = "FIN_WAIT_2"
CLOSE_WAIT = "CLOSE_WAIT"
CLOSING = "CLOSING"
LAST_ACK = "LAST_ACK"
TIME_WAIT = "TIME_WAIT"
CLOSED = "CLOSED"
RESET = "RESET"

CLIENT = "client"
SERVER = "server"

# (ts_ns, packet index, state)
StateChange = tuple[int, int, str]


@dataclass(slots=True)
class HandshakeOptions:
    """The options one side put on its SYN (client) or SYN-ACK (server)."""

    mss: int | None = None
    wscale: int | None = None
    sack_perm: bool = False
    timestamps: bool = False
    tfo: bool = False
    tfo_cookie: bytes | None = None


@dataclass(slots=True)
class Connection:
    """One TCP connection (a 4-tuple from SYN to its end) or one UDP flow.

    client is the SYN sender (the receiver of a SYN-ACK when the SYN was not captured),
    otherwise the sender of the first packet. `stream` numbers connections of one protocol
    in order of appearance: for TCP it equals Wireshark's tcp.stream.
    `wscale_in_use` follows RFC 7323 and Wireshark: scaling applies only when both SYNs
    carried the option; `client_wscale`/`server_wscale` are then the shifts applied to
    each side's advertised window (0 otherwise).
    """

    id: int
    stream: int
    proto: str
    client_addr: bytes
    client_port: int
    server_addr: bytes
    server_port: int
    first_ts_ns: int
    last_ts_ns: int
    packets_c2s: int = 0
    packets_s2c: int = 0
    bytes_c2s: int = 0
    bytes_s2c: int = 0
    client_options: HandshakeOptions | None = None
    server_options: HandshakeOptions | None = None
    client_isn: int | None = None
    server_isn: int | None = None
    wscale_in_use: bool = False
    client_wscale: int = 0
    server_wscale: int = 0
    client_state: list[StateChange] = field(default_factory=list)
    server_state: list[StateChange] = field(default_factory=list)
    active_closer: str | None = None
    reset_by: str | None = None
    analysis_counts: dict[str, int] = field(default_factory=dict)
    initial_rtt_ns: int | None = None
    packet_indices: array = field(default_factory=lambda: array("I"))
    icmp_errors: int = 0
    icmp_indices: array = field(default_factory=lambda: array("I"))

    @property
    def client(self) -> str:
        return format_endpoint(self.client_addr, self.client_port)

    @property
    def server(self) -> str:
        return format_endpoint(self.server_addr, self.server_port)

    @property
    def packets(self) -> int:
        return self.packets_c2s + self.packets_s2c

    @property
    def duration_ns(self) -> int:
        return self.last_ts_ns - self.first_ts_ns

    @property
    def final_client_state(self) -> str | None:
        return self.client_state[-1][2] if self.client_state else None

    @property
    def final_server_state(self) -> str | None:
        return self.server_state[-1][2] if self.server_state else None

    def state_of(self, side: str) -> list[StateChange]:
        return self.client_state if side == CLIENT else self.server_state
