"""Where a request's time went: the named points of its life and the parts between them.

The points, in the order they happen: the client's write of the request's first byte
(`client.write`, entry), that byte's first segment on the wire, the request's last byte on
the wire, the server's read of it (`server.read`, exit), the server's write of the
response's first byte (`server.write`, entry), that byte on the wire, the response's last
byte on the wire, and the client's read of it (`client.read`, exit). A side that was not
traced has no points; the parts its points would have bounded merge into one, named
"peer + network" when it hides the server's work (seen from the wire, the peer and the
network between are one), else the joined names of what it spans.

Syscall and packet clocks agree to a few µs (docs/architecture.md, clocks), so a point can
come out a hair before its predecessor; each point is taken as at least its predecessor,
which keeps every part ≥ 0 and makes the parts add up to the total exactly.
"""

from __future__ import annotations

POINTS = (
    "client.write",
    "request.wire.first",
    "request.wire.last",
    "server.read",
    "server.write",
    "response.wire.first",
    "response.wire.last",
    "client.read",
)
PARTS = (
    "send",
    "request wire",
    "server read",
    "server processing",
    "server send",
    "response wire",
    "delivery",
)
PEER = "peer + network"
_SERVER_POINTS = frozenset((3, 4))


def split(points: dict[str, int]) -> tuple[int, int, list[tuple[str, int]]]:
    """(start ns, total ns, parts) of the points present; total is last minus first point."""
    present = [(i, points[name]) for i, name in enumerate(POINTS) if name in points]
    if not present:
        return 0, 0, []
    start = present[0][1]
    parts: list[tuple[str, int]] = []
    prev_i, prev_t = present[0]
    for i, t in present[1:]:
        t = max(t, prev_t)
        parts.append((_name(prev_i, i), t - prev_t))
        prev_i, prev_t = i, t
    return start, prev_t - start, parts


def _name(i: int, j: int) -> str:
    if j == i + 1:
        return PARTS[i]
    if _SERVER_POINTS & set(range(i + 1, j)):
        return PEER
    return " + ".join(PARTS[i:j])
