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

from wirecorr.engine.requests.build import build
from wirecorr.engine.requests.request import PROTOCOLS, Message, Request

if TYPE_CHECKING:
    from wirecorr.engine.session import Session


def requests_of(session: Session) -> list[Request]:
    """Every request found on the session's connections, in order of start; computed once
    per finished session and kept (the session's state does not change after `finish`)."""
    cached = getattr(session, "_requests", None)
    if cached is not None and cached[0] == (len(session.syscalls), len(session.analyzer.table)):
        return cached[1]
    found = build(session)
    session._requests = ((len(session.syscalls), len(session.analyzer.table)), found)  # type: ignore[attr-defined]
    return found


__all__ = ["PROTOCOLS", "Message", "Request", "requests_of"]
