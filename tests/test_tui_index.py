"""The TUI's index of a format-2 recording: rows straight from the columns, objects on demand.

The shipped recordings are format 1; each is rewritten here as format 2 by RecordingWriter
(syscall blocks flushed between packets, as a recorder does), then the TUI's loader must
give the same links (by id), findings and connections as `analyze` on that file, the same
rows as the format-1 original, and no Syscall object before a row is looked at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wirecorr.engine.ingest import analyze_file
from wirecorr.engine.session import Session
from wirecorr.recording import RecordingWriter
from wirecorr.recording.reader import Recording, add_block, read_recording
from wirecorr.sources.capture_file import CaptureReader, CustomBlock
from wirecorr.views.tui import index as index_module
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.loader import FileLoader
from wirecorr.views.tui.packets import LivePackets
from wirecorr.views.tui.rows import is_syscall_ref, ref_pos

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
RECORDINGS = ["handshake-echo.pcapng", "lab-multiplex.pcapng", "lab-udp-vs-tcp.pcapng", "lab-port-bomb.pcapng"]


def as_format2(src: Path, dst: Path) -> Path:
    """`src` (format 1) rewritten in format 2: syscall batches flushed at the packet after
    every 40 syscalls, so blocks of columns and packets interleave as in a recording."""
    meta = read_recording(str(src)).meta
    writer = RecordingWriter(str(dst))
    writer.write_header({k: v for k, v in meta.items() if k not in ("format", "wirecorr", "start_ns")})
    rec = Recording(str(src))
    queued = 0
    for item in CaptureReader(str(src)).records_and_blocks():
        if isinstance(item, CustomBlock):
            add_block(rec, item)
            for sc in rec.syscalls:
                writer.write_syscall(sc)
            queued += len(rec.syscalls)
            for p in rec.processes:
                writer.write_process(p["event"], p["pid"], p["info"], p["ts_ns"])
            rec.syscalls.clear()
            rec.processes.clear()
            continue
        if queued >= 40:
            writer.flush()
            queued = 0
        ts, _offset, _iface, linktype, wirelen, frame, _comment = item
        writer.write_packet(ts, frame, wirelen, linktype)
    writer.close({"exit_status": 0})
    assert read_recording(str(dst)).meta["format"] == 2
    return dst


def load(path: Path, *, until_walked: bool = False, budget: float = 1.0) -> tuple[EventIndex, FileLoader]:
    index = EventIndex(Session(), LivePackets())
    loader = FileLoader(index, str(path))
    while not loader.done and not (until_walked and loader.walk is None):
        loader.step(0 if until_walked else budget)
        index.flush()
    return index, loader


@pytest.mark.parametrize("name", RECORDINGS)
def test_format2_recording_indexes_as_analyze_and_as_its_format1_original(name: str, tmp_path: Path) -> None:
    v2 = as_format2(CAPTURES / name, tmp_path / name)
    index, _ = load(v2)
    loaded, analyzed = index.session, analyze_file(str(v2))

    def links(session: Session) -> list[tuple[int, str, int, list[int]]]:
        return [(lk.id, lk.kind, lk.syscall, sorted(lk.packets)) for lk in session.correlator.links]

    assert links(loaded) == links(analyzed) and links(loaded)
    assert [(f.kind, f.message) for f in loaded.findings] == [(f.kind, f.message) for f in analyzed.findings]
    assert {sc.id: loaded.correlator.connection_of(sc.id) for sc in analyzed.syscalls} == {
        sc.id: analyzed.correlator.connection_of(sc.id) for sc in analyzed.syscalls
    }

    original, _ = load(CAPTURES / name)

    def rows(ix: EventIndex) -> list[tuple[int, str, int]]:
        return [
            (ts, "call", ix.calls[ref_pos(ref)].id) if is_syscall_ref(ref) else (ts, "packet", ref_pos(ref))
            for ts, ref in zip(ix.rows.ts, ix.rows.refs, strict=True)
        ]

    assert rows(index) == rows(original)
    assert len(index.rows) == len(loaded.syscalls) + len(loaded.analyzer.table)
    assert [index.field(ref, "net") for ref in index.rows.refs] == [
        original.field(r, "net") for r in original.rows.refs
    ]
    # The columns' answer for many rows at once (the app's start filter) is the field's, row by row.
    refs = np.frombuffer(index.rows.refs, dtype=np.int64).copy()
    for name in EventIndex.MASK_FIELDS:
        assert index.mask(name, refs).tolist() == [bool(index.field(int(ref), name)) for ref in refs]
    assert 0 < int(index.mask("net", refs).sum()) < len(refs)


def test_rows_of_columns_make_no_syscall_objects_until_looked_at(tmp_path: Path) -> None:
    v2 = as_format2(CAPTURES / "lab-port-bomb.pcapng", tmp_path / "bomb.pcapng")
    index, loader = load(v2, until_walked=True)
    calls = index.calls
    assert len(calls) == len(read_recording(str(v2)).syscalls) > 1000
    assert len(index.rows) == len(calls) + loader.count  # every row is there after the walk
    assert not any(calls.is_made(pos) for pos in range(len(calls)))
    last = ref_pos(index.rows.refs[-1] if is_syscall_ref(index.rows.refs[-1]) else index.rows.refs[-2])
    assert calls[last].enter_ns == calls.enter_ns[last]  # looked at: made with its neighbours only
    assert 0 < sum(map(calls.is_made, range(len(calls)))) <= 512
    while not loader.done:
        loader.step(1.0)
    assert all(calls.is_made(pos) for pos in range(len(calls)))  # fed to the correlator


def test_findings_made_one_detector_per_slice_are_analyzes(tmp_path: Path) -> None:
    """A zero budget gives one unit of work per step: the engine's finish, then each
    detector in its own step; the findings and their order are still analyze's."""
    v2 = as_format2(CAPTURES / "lab-port-bomb.pcapng", tmp_path / "bomb.pcapng")
    index, loader = load(v2, until_walked=True)
    while loader.ending is None:
        loader.step(0)
    steps = 0
    while not loader.done:
        assert not index.session.findings
        loader.step(0)
        steps += 1
    analyzed = analyze_file(str(v2))
    assert [(f.kind, f.severity, f.message) for f in index.session.findings] == [
        (f.kind, f.severity, f.message) for f in analyzed.findings
    ]
    assert len({f.severity for f in analyzed.findings}) > 1  # the order is tested
    assert steps > 5


@pytest.mark.parametrize("limit", [0, 10**9])
def test_rows_that_gained_links_are_redrawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """Past DIRTY_LINKS_MAX new links every row counts as changed; under it, each row of a new link."""
    monkeypatch.setattr(index_module, "DIRTY_LINKS_MAX", limit)
    index, loader = load(CAPTURES / "handshake-echo.pcapng", until_walked=True)
    index.sync()
    index.dirty.clear()
    index.dirty_all = False
    while not loader.done:
        loader.step(1.0)
    index.sync()
    linked = {ref for ref in index.rows.refs if index.links(ref)}
    assert linked
    if limit:
        assert not index.dirty_all and linked <= index.dirty
    else:
        assert index.dirty_all and not index.dirty
