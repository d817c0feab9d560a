"""Requests: the protocol messages a connection carried, paired request with response, and
where the time of each went (docs/requests.md).

A framer per protocol (`http`, `resp`, `dns`, `pgsql`) cuts a direction's byte stream into
messages. It reads message heads from the bytes the trace and the capture hold
(`streams.ByteSource`) and finds each message's end from its own length fields, so a body
that was never recorded is skipped, not needed. The stream offsets come from the correlator
(`Correlator.stream_range`), which makes the syscalls and segments of a message exact, and
`split` turns their timestamps into the parts of the request's time.

`requests_of(session)` is the one entry point: findings, reports, checks, the pytest
plugin and the TUI all read the same list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wirecorr.engine.requests.build import build, connection_requests, protocol_ruled_out
from wirecorr.engine.requests.request import PROTOCOLS, Gap, Message, Request

if TYPE_CHECKING:
    from wirecorr.engine.session import Session


def _built(session: Session) -> tuple[list[Request], list[Gap]]:
    """Computed once per state of the session (a finished session does not change) and kept."""
    key = (len(session.syscalls), len(session.analyzer.table))
    cached = getattr(session, "_requests", None)
    if cached is None or cached[0] != key:
        cached = (key, build(session, getattr(session, "_settled_requests", None)))
        session._requests = cached  # type: ignore[attr-defined]
    return cached[1]


def settle(session: Session, conn_id: int) -> None:
    """Compute and keep the requests of a connection now, before its calls are dropped:
    the streaming `analyze --json` calls it as it retires a connection (engine/streaming.py),
    so `requests_of` at the end gives what the whole-table path gives."""
    settled = getattr(session, "_settled_requests", None)
    if settled is None:
        settled = session._settled_requests = {}  # type: ignore[attr-defined]
    settled[conn_id] = connection_requests(session, session.analyzer.connections[conn_id])


def requests_of(session: Session) -> list[Request]:
    """Every request found on the session's connections, in order of start."""
    return _built(session)[0]


def framing_gaps(session: Session) -> list[Gap]:
    """Where framing stopped short of a stream's end (reports say so: the requests after
    it are missing, typically because the capture's snaplen cut a large segment)."""
    return _built(session)[1]


__all__ = ["PROTOCOLS", "Gap", "Message", "Request", "framing_gaps", "protocol_ruled_out", "requests_of", "settle"]
