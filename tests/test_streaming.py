"""The streaming `analyze --json` (engine/streaming.py): the same document as the whole-table
path, and a peak memory that does not follow the length of the recording."""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import peak_kb, synth_echo

from wirecorr.engine.ingest import diagnose
from wirecorr.engine.session import Session
from wirecorr.engine.streaming import Streamer
from wirecorr.views import json_report

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
# Merged recordings take the per-host path, never the streaming one.
CAPTURES = sorted(p for p in (REPO / "captures").glob("*.pcap*") if "two-hosts" not in p.name)


def whole(path: Path) -> str:
    out = io.StringIO()
    session = Session()
    from wirecorr.engine.ingest import load_capture

    load_capture(session, str(path))
    json_report.write(diagnose(session), out, packets=False)
    return out.getvalue()


def streamed(path: Path, *, every: int, lane: bool = True) -> str:
    """Retiring as early as possible (no grace, a pass every `every` packets); `lane`
    False runs the correlator's reference code for syscalls and packet rows."""
    session = Session()
    if not lane:
        session.correlator._lane = None
    writer = json_report.StreamWriter()
    streamer = Streamer(session, writer, grace_ns=0, every=every)
    for _ in streamer.read(str(path)):
        pass
    diagnose(session)
    streamer.finish()
    out = io.StringIO()
    writer.finish(session, out)
    return out.getvalue()


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.stem)
def test_streaming_gives_the_same_document_for_every_shipped_capture(capture: Path) -> None:
    expected = whole(capture)
    for every in (1, 7):
        assert streamed(capture, every=every) == expected
    assert streamed(capture, every=50, lane=False) == expected


def test_the_cli_streams_and_writes_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "echo.pcapng"
    synth_echo().write(path, 3000, 500)
    env = {**os.environ, "WIRECORR_NO_STREAM": "1"}
    cmd = [PYTHON, "-m", "wirecorr", "analyze", "--json", str(path)]
    plain = subprocess.run(cmd, capture_output=True, check=True, env=env).stdout
    streaming = subprocess.run(cmd, capture_output=True, check=True).stdout
    assert streaming == plain and b'"links":[{' in streaming


_ANALYZE = """
import runpy
sys.argv = ["wirecorr", "analyze", "--json", sys.argv[1]]
runpy.run_module("wirecorr", run_name="__main__")
"""


def _peak_kb(path: Path, stream: bool) -> int:
    return peak_kb(_ANALYZE, str(path), env={} if stream else {"WIRECORR_NO_STREAM": "1"})


@pytest.mark.parametrize(
    ("per_conn", "ratio"),
    [(1000, 3), (None, 5)],
    ids=["connections-of-1000", "one-connection"],
)
def test_streaming_peak_memory_does_not_grow_with_the_recording(
    tmp_path: Path, per_conn: int | None, ratio: int
) -> None:
    """A memory-shape assertion, not a timing one: 4x the round trips must not cost the
    whole-table path's growth. In connections of 1000, about ten are open within the
    retirement grace; on one connection open from start to end (bench/correlate's), only
    settling within the connection keeps its calls from piling up."""
    synth = synth_echo()
    small, large = tmp_path / "small.pcapng", tmp_path / "large.pcapng"
    synth.write(small, 15_000, per_conn or 15_000)
    synth.write(large, 60_000, per_conn or 60_000)
    grow_stream = _peak_kb(large, True) - _peak_kb(small, True)
    grow_whole = _peak_kb(large, False) - _peak_kb(small, False)
    print(f"growth 15k → 60k round trips: streaming {grow_stream} KB, whole-table {grow_whole} KB", file=sys.stderr)
    assert grow_whole > 100_000  # the whole-table path holds every call: the test can tell
    assert grow_stream < grow_whole / ratio


@pytest.mark.parametrize("end", ["fin", "rst", "rst-open"])
def test_a_long_connection_is_settled_as_it_goes_and_put_back_when_a_finding_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    """One connection of 20k round trips (80k calls in five blocks, the last at the end): its data calls are
    written out and dropped while it is open (`Streamer.compact`), in chunks spilled to the
    temporary file. Ended by FIN nothing brings them back; ended by an RST (the server's
    socket closed, or still open at the end of the input) the reset finding counts the
    bytes read, so they come back (`Streamer._restore`). Either way the document is the
    whole-table path's, compiled lane or reference, also with the links' ids shed to a
    window of 1000 (`LinkTable.shed`)."""
    from wirecorr.engine import correlator, streaming

    monkeypatch.setattr(streaming._Spill, "CHUNK", 1000)
    # The links' list keeps slots for the newest 1000 ids: the restored links land below it.
    monkeypatch.setattr(correlator, "LINK_WINDOW", 1000)
    restored: list[int] = []
    real_restore = Streamer._restore

    def restore(self: Streamer, cid: int) -> None:
        spill = self._spills.get(cid)
        if spill is not None:
            restored.append(len(spill.calls()))
        real_restore(self, cid)

    monkeypatch.setattr(Streamer, "_restore", restore)
    path = tmp_path / f"{end}.pcapng"
    synth_echo().write(path, 20_000, 20_000, end=end)
    expected = whole(path)
    assert streamed(path, every=1024) == expected
    assert streamed(path, every=50, lane=False) == expected
    if end == "fin":
        assert not restored
        session = Session()
        streamer = Streamer(session, json_report.StreamWriter(), grace_ns=0, every=1024)
        for _ in streamer.read(str(path)):
            pass
        dropped = sum(link is None for link in session.correlator.links)
        assert dropped > 60_000, dropped
        links = session.correlator.links
        # A block of syscalls (16,384) and at most twice the window.
        assert links.base > 60_000 and len(links.items) < 20_000, (links.base, len(links.items))
        # The sent marks are of links still held only (the connect's, the accept's...).
        held = {link.id for link in links.held()}
        assert streamer._sent <= held and len(streamer._sent) < 20, sorted(streamer._sent)
    else:
        assert restored and min(restored) > 60_000, restored
        assert "closed the socket with received data unread (read 1280000 of 1280000)" in expected


def _v2_helpers():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("v2_helpers", REPO / "tests" / "test_recording_v2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_real_run_recorded_v2_and_converted_to_v1_streams_the_same_analysis(tmp_path: Path) -> None:
    """Issue 13's differential test on the streaming path: one real traced run (a Python echo
    client and server thread), recorded in format 2, re-encoded as format 1; `analyze --json`
    streams both and gives the same syscalls, links and findings, and what the whole-table
    path gives."""
    import json

    v2 = _v2_helpers()
    v2_path, v1_path = tmp_path / "run.pcapng", tmp_path / "run-v1.pcapng"
    port = v2.free_port()
    done = subprocess.run(
        [PYTHON, "-m", "wirecorr", "record", "-o", str(v2_path), "-i", "lo", "-f", f"tcp port {port}",
         "--", PYTHON, "-c", v2.ECHO, str(port)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    v2.reencode(v2_path, v1_path, 1)

    def analyze(path: Path, **env: str) -> dict:
        cmd = [PYTHON, "-m", "wirecorr", "analyze", "--json", str(path)]
        out = subprocess.run(cmd, capture_output=True, timeout=60, check=True, env={**os.environ, **env}).stdout
        return v2.file_independent(json.loads(out), path)

    streamed_v2, streamed_v1 = analyze(v2_path), analyze(v1_path)
    for key in ("syscalls", "links", "findings"):
        assert streamed_v2[key] == streamed_v1[key]
    assert streamed_v2 == analyze(v2_path, WIRECORR_NO_STREAM="1")
    assert len(streamed_v2["syscalls"]) > 40 and len(streamed_v2["links"]) >= 40


def test_the_spool_merges_interleaved_runs_into_key_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small runs and steps, keys arriving out of order across runs (as long-blocking
    calls end after later ones began): the merged pieces hold every record once, in order."""
    import random

    monkeypatch.setattr(json_report._Spool, "RUN", 37)
    monkeypatch.setattr(json_report._Spool, "STEP", 5)
    rng = random.Random(7)
    keys = [(rng.randrange(-50, 50) * 1000 + i % 3, i) for i in range(1000)]
    spool = json_report._Spool()
    at = 0
    while at < len(keys):
        part = keys[at : at + rng.randrange(1, 60)]
        at += len(part)
        encode = functools.partial(json_report._encode_each, lambda k: f'{{"k":[{k[0]},{k[1]}],"é":1}}'.encode())
        spool.add([k[0] for k in part], [k[1] for k in part], part, encode)
    # However many runs, two files: one for the records, one for their keys.
    assert len(spool._runs) > 20 and len({id(r.data) for r in spool._runs} | {id(r.keys) for r in spool._runs}) == 2
    text = ",".join(piece.decode() for piece in spool.merged())
    # A run that has given all its records holds no keys in memory.
    assert all(r.pos == r.n and r._major.size == 0 for r in spool._runs)
    import json

    got = [tuple(r["k"]) for r in json.loads(f"[{text}]")]
    assert got == sorted(keys)


def _spill_rows(streamer: Streamer) -> dict[int, list[tuple[object, ...]]]:
    return {
        cid: [
            (sid, side, (lk.id, lk.kind, lk.syscall, tuple(lk.packets), lk.delay_ns, lk.note), d, start, end)
            for sid, side, lk, d, start, end in spill.calls()
        ]
        for cid, spill in streamer._spills.items()
    }


@pytest.mark.parametrize(("end", "per_conn"), [("fin", 12_000), ("rst-open", 12_000), ("fin", 4_000), ("rst", 4_000)])
def test_compiled_settling_keeps_the_references_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str, per_conn: int
) -> None:
    """`Streamer.compact` on the compiled lane (`Lane.settled`, `drop_claims`, `forget`,
    `spill_claims`) against the reference code: at every pass the compiled `settled_claims`
    returns the claims the reference returns and moves the ACK scan as far; at the end of
    the input the correlator's indexes and the spilled columns are the same. (The shipped
    captures' connections are too short to be settled while open.)"""
    from wirecorr.engine import streaming
    from wirecorr.engine.correlator import Correlator

    monkeypatch.setattr(streaming._Spill, "CHUNK", 500)
    path = tmp_path / f"{end}.pcapng"
    synth_echo().write(path, 12_000, per_conn, end=end)
    real_settled = Correlator.settled_claims
    compared = [0]

    def settled_both(self: Correlator, cid: int, horizon: int) -> list[tuple[int, object]]:
        tcp = self._tcp.get(cid)
        if tcp is None or tcp.unanchored or not self.compiled:
            return real_settled(self, cid, horizon)
        before = (tcp.ack_scan, [d.acked for d in tcp.dirs])
        lane, self._lane = self._lane, None
        try:
            expected = real_settled(self, cid, horizon)
        finally:
            self._lane = lane
        after = (tcp.ack_scan, [d.acked for d in tcp.dirs])
        tcp.ack_scan = before[0]
        for d, acked in zip(tcp.dirs, before[1], strict=True):
            d.acked = acked
        got = real_settled(self, cid, horizon)
        assert [(d, id(c)) for d, c in got] == [(d, id(c)) for d, c in expected]
        assert (tcp.ack_scan, [d.acked for d in tcp.dirs]) == after
        compared[0] += len(got)
        return got

    monkeypatch.setattr(Correlator, "settled_claims", settled_both)
    states = []
    real_end = Streamer._end_spills

    def end_spills(self: Streamer) -> None:
        corr = self.session.correlator
        states.append(
            {
                "packet_links": {idx: list(ids) for idx, ids in corr.packet_links.items()},
                "dropped": [link is None for link in corr.links],
                "calls_by_conn": {cid: list(calls) for cid, calls in corr._calls_by_conn.items()},
                "spills": _spill_rows(self),
            }
        )
        real_end(self)

    monkeypatch.setattr(Streamer, "_end_spills", end_spills)
    documents = [streamed(path, every=64), streamed(path, every=64, lane=False)]
    assert documents[0] == documents[1]
    assert states[0] == states[1]
    assert compared[0] > 0
    if end == "rst-open":
        # The connection is open at the end: what was settled is still spilled.
        assert sum(map(len, states[0]["spills"].values())) > 5_000


def test_an_open_connection_keeps_only_the_segments_a_claim_can_still_reach(tmp_path: Path) -> None:
    """`Correlator.prune_segments`: a direction of one long connection held all its segments
    (24 B each) until the connection retired; settled, they go. The document is the
    whole-table path's (the tests above), this checks they went."""
    path = tmp_path / "open.pcapng"
    synth_echo().write(path, 40_000, 40_000, end="rst-open")
    session = Session()
    streamer = Streamer(session, json_report.StreamWriter(), grace_ns=0, every=1024)
    for _ in streamer.read(str(path)):
        pass
    (tcp,) = session.correlator._tcp.values()
    assert len(tcp.conn.packet_indices) > 80_000
    held = [len(d.seg_start) for d in tcp.dirs]
    assert max(held) < 20_000, held  # of 40,000 a direction
