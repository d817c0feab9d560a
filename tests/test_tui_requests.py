"""The TUI's Requests pane and the filter's request fields, on the shipped slow-request lab.

The lab recording (captures/lab-slow-request.pcapng) holds twelve HTTP requests between a
traced client and a traced server: /think (150 ms of server think time), /nagle (~40 ms
held by Nagle behind a delayed ACK) and /lossy (~200 ms of retransmission timeout) among
fast ones. The filter's Wireshark fields are judged by tshark -Y on the same file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tui_helpers import REPO, make_app, settle, sync

from wirecorr.engine.requests import requests_of
from wirecorr.views.tui.display_filter import FilterError, compile_filter
from wirecorr.views.tui.requests_pane import RequestRows, RequestTable, waterfall
from wirecorr.views.tui.rows import is_syscall_ref, ref_pos

LAB = str(REPO / "captures" / "lab-slow-request.pcapng")
RELATIVE_LAB = str(Path("captures") / "lab-slow-request.pcapng")


async def _loaded(pilot: object, app: object) -> None:
    await settle(pilot, app)  # type: ignore[arg-type]


def _matches(app: object, text: str) -> list[int]:
    flt = compile_filter(text)
    index = app.index  # type: ignore[attr-defined]
    return [ref for ref in index.rows.refs if flt.predicate(index, ref)]


@sync
async def test_request_fields_select_the_rows_of_requests() -> None:
    app = make_app(LAB)
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(pilot, app)
        session = app.index.session
        reqs = requests_of(session)
        assert len(reqs) == 12
        think = next(r for r in reqs if r.fields["http.uri"] == "/think")
        rows = RequestRows(app.index, reqs)
        mine = set(rows.refs(app.index, think))
        # `request == N`: exactly the request's data calls and packets, both messages.
        assert set(_matches(app, f"request == {think.id}")) == mine
        calls = {app.index.call(r).id for r in mine if is_syscall_ref(r)}
        assert calls == set(think.syscalls)
        assert {ref_pos(r) for r in mine if not is_syscall_ref(r)} == set(think.packets)
        # req.time: the three slowed requests are the only ones over 30 ms.
        slow = {r.fields["http.uri"] for r in reqs if (r.total_ns or 0) > 30_000_000}
        assert slow == {"/think", "/nagle", "/lossy"}
        over = {rows.field(ref, "http.uri") for ref in _matches(app, "req.time > 30ms")}
        assert over == {(uri,) for uri in slow}
        assert _matches(app, "req.time > 0.03") == _matches(app, "req.time > 30ms")
        # Every row of a request, and only those, answers `request`.
        every = set(_matches(app, "request"))
        assert every == {ref for r in reqs for ref in rows.refs(app.index, r)}
        assert _matches(app, "http.status >= 500") == []
        assert set(_matches(app, 'http.method == "POST"')) == {
            ref for r in reqs if r.fields["http.method"] == "POST" for ref in rows.refs(app.index, r)
        }
        assert _matches(app, "redis.cmd == GET") == [] and _matches(app, "dns.rcode != 0") == []


def test_duration_values_and_errors() -> None:
    for text in ("req.time > 100ms", "req.time >= 1.5s", "req.time < 250us", "req.time > 0.1", "req.time > 80ns"):
        compile_filter(text)
    with pytest.raises(FilterError, match="wants a time"):
        compile_filter("req.time > slow")
    with pytest.raises(FilterError, match="wants a number"):
        compile_filter("http.status >= ok")


def _tshark_frames(path: str, expr: str) -> list[int]:
    done = subprocess.run(
        ["tshark", "-r", path, "-n", "-Y", expr, "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [int(line) for line in done.stdout.split()]


@sync
async def test_wireshark_request_fields_match_tshark() -> None:
    """Wireshark's names select the packet that completes each message, as tshark -Y does."""
    app = make_app(LAB)
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(pilot, app)
        for expr in (
            "http.response.code == 200",
            'http.request.method == "POST"',
            'http.request.method == "GET"',
            'http.request.uri == "/lossy"',
            "http.response.code != 200",
        ):
            ours = [app.index.frame(ref_pos(ref)) for ref in _matches(app, expr) if not is_syscall_ref(ref)]
            assert ours == _tshark_frames(LAB, expr), expr
            assert all(not is_syscall_ref(ref) for ref in _matches(app, expr))


@sync
async def test_requests_pane_rows_and_enter() -> None:
    app = make_app(LAB)
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("R")
        await pilot.pause()
        table = app.screen.query_one(RequestTable)
        lines = table.text_lines()
        assert len(lines) == 12
        assert any("GET /think → 200" in line and "server processing" in line for line in lines)
        assert any("POST /nagle → 200" in line and "request wire" in line for line in lines)
        # s: longest first — the lost segment's 200 ms retransmission timeout.
        await pilot.press("s")
        await pilot.pause()
        assert "GET /lossy" in table.text_lines()[0]
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.02)
            if not isinstance(app.screen.focused, RequestTable) and not app.filtering:
                break
        lossy = next(r for r in requests_of(app.index.session) if r.fields["http.uri"] == "/lossy")
        assert app.filter is not None and app.filter.text == f"request == {lossy.id}"
        shown = list(app.timeline.view.refs)
        assert shown == RequestRows.refs(app.index, lossy)
        assert app.timeline.current_ref == shown[0], "the cursor is on the request's first row"
        assert is_syscall_ref(shown[0]) and app.index.call(shown[0]).id == lossy.request.syscalls[0]


def test_waterfall_is_to_scale() -> None:
    from wirecorr.engine.ingest import analyze_file

    reqs = requests_of(analyze_file(LAB))
    think = next(r for r in reqs if r.fields["http.uri"] == "/think")
    bar = waterfall(think, 20)
    assert len(bar.plain) == 20
    processing = sum(len(span_text) for span_text, style in _spans(bar) if style == "magenta")
    assert processing >= 19, "150 ms of 151 ms is server processing"
    assert waterfall(next(r for r in reqs if r.fields["http.uri"] == "/lossy"), 20).plain.count("█") == 20


def _spans(text: object) -> list[tuple[str, str]]:
    plain = text.plain  # type: ignore[attr-defined]
    return [(plain[s.start : s.end], str(s.style)) for s in text.spans]  # type: ignore[attr-defined]


# -- snapshots ------------------------------------------------------------------------------

SIZES = pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])


@pytest.fixture
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@SIZES
@pytest.mark.usefixtures("_in_repo")
def test_snapshot_requests(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    app = make_app(RELATIVE_LAB)

    async def ready(pilot: object) -> None:
        await settle(pilot, app)

    assert snap_compare(app, press=["R", "j", "j"], terminal_size=size, run_before=ready)
