"""One ingest path: the TUI's slice-by-slice loader and `analyze` see the same thing.

The loader feeds records in file order (as a live trace arrives) and `analyze` reads the
packets first, then the recorded syscalls: the engine is built to give the same links
either way, and both take the recording's process events in the order the tracer saw
them end (engine/ingest.py's RecordedFeed), and report the same damage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from capture_oracle import pcap_bytes

from wirecorr.engine.ingest import analyze_file
from wirecorr.engine.session import Session
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.loader import FileLoader
from wirecorr.views.tui.packets import LivePackets

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
RECORDINGS = ["handshake-echo.pcapng", "lab-rst-on-close.pcapng", "lab-multiplex.pcapng", "lab-udp-vs-tcp.pcapng"]


def _tui_session(path: Path) -> Session:
    index = EventIndex(Session(), LivePackets())
    loader = FileLoader(index, str(path))
    while not loader.done:
        loader.step(1.0)
        index.flush()
    return index.session


@pytest.mark.parametrize("name", RECORDINGS)
def test_the_tui_loader_links_and_diagnoses_as_analyze_does(name: str) -> None:
    analyzed = analyze_file(str(CAPTURES / name))
    loaded = _tui_session(CAPTURES / name)

    def links(session: Session) -> list[tuple[int, str, int, list[int]]]:
        # By id too: the timeline's `L3` is link 3 of `analyze --json`.
        return [(lk.id, lk.kind, lk.syscall, sorted(lk.packets)) for lk in session.correlator.links]

    assert links(loaded) == links(analyzed)
    assert [(f.kind, f.message) for f in loaded.findings] == [(f.kind, f.message) for f in analyzed.findings]
    assert {sc.id: analyzed.correlator.connection_of(sc.id) for sc in analyzed.syscalls} == {
        sc.id: loaded.correlator.connection_of(sc.id) for sc in loaded.syscalls
    }


def test_an_unknown_link_type_is_the_same_error_in_the_tui(tmp_path: Path) -> None:
    path = tmp_path / "user0.pcap"
    path.write_bytes(pcap_bytes([(1, 0, b"\x00" * 40, 40), (2, 0, b"\x01" * 40, 40)], linktype=147))
    analyzed = analyze_file(str(path))
    loaded = _tui_session(path)
    assert analyzed.error is not None and "unknown link type 147: no packet could be decoded" in str(analyzed.error)
    assert str(loaded.error) == str(analyzed.error)
