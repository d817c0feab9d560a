"""The correlator's compiled lane (`_core/correlate.pyx`) against the reference `on_syscall`.

The lane takes the common data calls of bound TCP sockets and must leave exactly the
state the reference leaves: the same links (kind, packets, delay, note), the same packet
labels and the same connection identity (`connection_of`, `calls_of`, `links_of`). Run on
the shipped recordings as they are, and on hypothesis-made variants of their syscall
streams (dropped calls, partial writes, peeks, failed calls, fd identities that are
equal copies or missing, batches cut anywhere, packets fed before, after or between the
calls), so that every guard of the lane is crossed both ways.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wirecorr.engine.correlator import Correlator
from wirecorr.engine.ingest import load_capture
from wirecorr.engine.session import Session
from wirecorr.model import FdInfo, Packet, Syscall
from wirecorr.recording.reader import read_recording
from wirecorr.vocab import READS, WRITES

REPO = Path(__file__).resolve().parent.parent
RECORDINGS = [
    p
    for p in sorted((REPO / "captures").glob("*.pcapng"))
    if read_recording(str(p)).syscalls and "two-hosts" not in p.name
]
# Data-heavy ones for the generated variants: many connections, Nagle, retransmissions, a zero window.
VARIED = [
    REPO / "captures" / n
    for n in ("lab-multiplex.pcapng", "lab-nagle.pcapng", "lab-retransmit.pcapng", "lab-zero-window.pcapng")
]


def test_compiled_lane_is_built_and_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build that silently fell back to `on_syscall` would pass every other test here."""
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    from wirecorr._core import correlate

    assert correlate.__file__.endswith(".so"), correlate.__file__
    session = Session()
    load_capture(session, str(REPO / "captures" / "lab-echo.pcapng"))
    data_calls = sum(1 for link in session.correlator.links if link.kind in ("write-data", "read-data"))
    # Every data call after the first one on each socket (which binds it) goes the compiled way.
    assert session.correlator.compiled_calls >= data_calls - 4 > 0


def test_pure_selects_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIRECORR_PURE", "1")
    session = Session()
    load_capture(session, str(REPO / "captures" / "lab-echo.pcapng"))
    assert session.correlator.compiled_calls == 0


def _facts(corr: Correlator, syscalls: list[Syscall]) -> dict[str, Any]:
    conns = {cid for sc in syscalls if (found := corr.connection_of(sc.id)) for cid in (found[0],)}
    return {
        "links": [(lk.id, lk.kind, lk.syscall, tuple(lk.packets), lk.delay_ns, lk.note) for lk in corr.links],
        "packet_links": corr.packet_links,
        "labels": corr.labels(),
        "connection_of": {sc.id: corr.connection_of(sc.id) for sc in syscalls},
        "calls_of": {cid: corr.calls_of(cid) for cid in sorted(conns)},
        "links_of": {sc.id: [lk.id for lk in corr.links_of(sc.id)] for sc in syscalls},
        "stream_range": {sc.id: corr.stream_range(sc.id) for sc in syscalls},
        "anchors": corr.anchors,
    }


def _run(
    packets: list[Packet],
    syscalls: list[Syscall],
    processes: list[dict[str, Any]],
    *,
    compiled: bool,
    order: str,
    cuts: frozenset[int],
) -> dict[str, Any]:
    """Feed one capture and one trace as a Session would, the calls in batches cut at `cuts`."""
    session = Session()
    corr = session.correlator = Correlator(session.analyzer, compiled=compiled)
    calls = sorted(syscalls, key=lambda sc: sc.end_ns)
    held = sorted(processes, key=lambda p: p.get("ts_ns") or 0)
    pending = iter(packets if order != "packets-first" else ())
    nxt = next(pending, None)
    if order == "packets-first":
        for pkt in packets:
            session.feed_packet(pkt)
    batch: list[Syscall] = []
    for at, sc in enumerate(calls):
        boundary = at in cuts or bool(held and (held[0].get("ts_ns") or 0) <= sc.end_ns)
        if order == "interleaved" and nxt is not None and nxt.ts_ns <= sc.end_ns:
            boundary = True
        if boundary and batch:
            session.feed_syscalls(batch)
            batch = []
        while held and (held[0].get("ts_ns") or 0) <= sc.end_ns:
            session.on_process_record(held.pop(0))
        while order == "interleaved" and nxt is not None and nxt.ts_ns <= sc.end_ns:
            session.feed_packet(nxt)
            nxt = next(pending, None)
        batch.append(sc)
    if batch:
        session.feed_syscalls(batch)
    for process in held:
        session.on_process_record(process)
    while nxt is not None:
        session.feed_packet(nxt)
        nxt = next(pending, None)
    corr.finish()
    return _facts(corr, calls)


def _both(packets: list[Packet], syscalls: list[Syscall], processes: list[dict[str, Any]], **kw: Any) -> None:
    compiled = _run(packets, syscalls, processes, compiled=True, **kw)
    reference = _run(packets, syscalls, processes, compiled=False, **kw)
    for key, want in reference.items():
        assert compiled[key] == want, key


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_same_links_and_identity_on_recordings(path: Path) -> None:
    rec = read_recording(str(path))
    _both(list(rec.packets()), rec.syscalls, rec.processes, order="packets-first", cuts=frozenset())


_CACHE: dict[Path, tuple[list[Packet], list[Syscall], list[dict[str, Any]]]] = {}


def _recording(path: Path) -> tuple[list[Packet], list[Syscall], list[dict[str, Any]]]:
    if path not in _CACHE:
        rec = read_recording(str(path))
        _CACHE[path] = (list(rec.packets()), rec.syscalls, rec.processes)
    return _CACHE[path]


def _mutate(sc: Syscall, how: int, new_id: int) -> list[Syscall]:
    """One of the variations a real trace has: the lane must take or refuse each correctly."""
    if how == 1:
        return []  # a call the trace lost
    if how == 2 and isinstance(sc.ret, int) and sc.ret > 1:
        return [dataclasses.replace(sc, ret=sc.ret // 2)]  # a partial write / short read
    if how == 3:
        peek = dataclasses.replace(sc, id=new_id, args={**sc.args, "flags": "MSG_PEEK"}, exit_ns=sc.enter_ns)
        return [peek, sc]  # a MSG_PEEK before the read that takes the bytes
    if how == 4:
        return [dataclasses.replace(sc, ret=-1, errno="EAGAIN")]
    if how == 5 and sc.fdinfo is not None:
        return [dataclasses.replace(sc, fdinfo=dataclasses.replace(sc.fdinfo))]  # equal, not the same object
    if how == 6:
        return [dataclasses.replace(sc, fdinfo=None)]
    if how == 7:
        other = FdInfo(kind="tcp", local="10.9.9.8:8", remote="10.9.9.9:9")
        return [dataclasses.replace(sc, fdinfo=other)]  # the fd names another socket now
    return [sc]


def _data_calls(syscalls: list[Syscall]) -> list[int]:
    return [
        i
        for i, sc in enumerate(syscalls)
        if sc.name in READS | WRITES and sc.fdinfo and sc.fdinfo.kind.startswith("tcp")
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(VARIED),
    changes=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 7)), max_size=12),
    cuts=st.frozensets(st.integers(0, 1000), max_size=12),
    order=st.sampled_from(["packets-first", "syscalls-first", "interleaved"]),
)
def test_same_links_and_identity_on_generated_streams(
    which: Path, changes: list[tuple[int, int]], cuts: frozenset[int], order: str
) -> None:
    packets, syscalls, processes = _recording(which)
    data = _data_calls(syscalls)
    how = {data[i % len(data)]: kind for i, kind in changes}
    top = max(sc.id for sc in syscalls)
    mutated = [out for i, sc in enumerate(syscalls) for out in _mutate(sc, how.get(i, 0), top + 1 + i)]
    _both(packets, mutated, processes, order=order, cuts=cuts)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["assign", "link", "range", "unassign", "pop", "shed"]),
            st.one_of(st.integers(0, 3000), st.integers(-5, -1), st.integers(1 << 21, 1 << 40)),
            st.integers(0, 5),
        ),
        max_size=200,
    )
)
def test_call_index_answers_as_the_reference(ops: list[tuple[str, int, int]]) -> None:
    """The compiled per-call index (dense rows, sparse ids in a dict, rows that grow over
    ids kept sparse before, rows of old ids shed to the dict; links read from a shed
    LinkTable) against the dict-based reference, one operation at a time."""
    from wirecorr._core.correlate import CallIndex

    from wirecorr.engine.correlator import _CallIndex
    from wirecorr.engine.link_table import LinkTable
    from wirecorr.model import Link

    links = LinkTable()
    compiled, reference = CallIndex(links), _CallIndex(links)
    touched = set()
    for op, sid, value in ops:
        touched.add(sid)
        if op == "assign":
            assert compiled.assign(sid, value, value % 2) == reference.assign(sid, value, value % 2)
        elif op == "link":
            link = Link(len(links), "write-data", sid, [])
            links.append(link)
            compiled.add_link(sid, link)
            reference.add_link(sid, link)
        elif op == "range":
            compiled.set_range(sid, value % 2, value, value + 10)
            reference.set_range(sid, value % 2, value, value + 10)
        elif op == "unassign":
            compiled.unassign(sid)
            reference.unassign(sid)
        elif op == "shed":
            compiled.shed(value * 50)
            reference.shed(value * 50)
            links.shed(value * 5)  # the links' own window: held ones move to its dict
        else:
            assert compiled.pop_links(sid) == reference.pop_links(sid)
        for t in touched:
            assert compiled.conn_of(t) == reference.conn_of(t)
            assert compiled.links_of(t) == reference.links_of(t)
            assert compiled.range_of(t) == reference.range_of(t)


# -- settling claims of an open connection (`Lane.settled`) against the reference -----------

_claim_state = st.lists(
    st.tuples(
        st.integers(1, 300),  # length
        st.integers(0, 40),  # gap before it
        st.booleans(),  # compiled Claim (the lane's) or the reference's _Claim
        # Weighted towards claims that settle, so that the acknowledgement's place decides.
        st.sampled_from(["covered", "covered", "covered", "short", "none"]),  # covered_to
        st.sampled_from([None, 0, 0, 0]) | st.integers(0, 1000),  # last_ts
        st.sampled_from([False, False, False, True]),  # retransmitted
        st.sampled_from([False, False, False, True]),  # its link has a note
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_claim_state, min_size=4, max_size=4),
    st.lists(st.integers(0, 3000), min_size=2, max_size=2),
    st.integers(0, 1000),
)
def test_compiled_settled_claims_are_the_references(
    roles: list[list[tuple[Any, ...]]], acked: list[int], horizon: int
) -> None:
    """Any claims (either class), covered or not, acknowledged up to anywhere, partly
    acknowledged included: `Lane.settled` returns the pairs `settled_claims` returns."""
    from wirecorr._core.correlate import Claim  # noqa: I001 - the build, apart from the modules it serves
    from wirecorr.engine import correlator as c
    from wirecorr.model import Link

    corr = Session().correlator
    assert corr.compiled
    conn = dataclasses.make_dataclass("Conn", [("id", int), ("packet_indices", Any)])(0, c.array("I"))
    tcp = c._Tcp(conn)  # type: ignore[arg-type]
    corr._tcp[0] = tcp
    for d, dr in enumerate(tcp.dirs):
        dr.acked = acked[d]
        for role, spec in zip((dr.writes, dr.reads), roles[2 * d : 2 * d + 2], strict=True):
            at = 0
            for length, gap, compiled, covered, last, retrans, noted in spec:
                start = at + gap
                at = start + length
                link = Link(0, "write-data", 0, [], None, "a note" if noted else None)
                make = Claim if compiled else c._Claim
                claim = make(link, start, at, True, 0, 0, None)
                claim.covered_to = {"covered": at, "short": at - 1, "none": -1}[covered]
                claim.last_ts = last
                claim.retrans = [1] if retrans else None
                role.add(claim)
    got = corr.settled_claims(0, horizon)
    lane, corr._lane = corr._lane, None
    expected = corr.settled_claims(0, horizon)
    corr._lane = lane
    assert [(d, id(cl)) for d, cl in got] == [(d, id(cl)) for d, cl in expected]
