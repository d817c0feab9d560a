"""Snapshots of the main TUI screens (pytest-textual-snapshot; `--snapshot-update` to refresh).

The status bar shows the recording's path as the user typed it, so these tests open it by a path
relative to the repository: the snapshots then match in any checkout, CI's included.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tui_helpers import REPO, SIZE, make_app, settle

from wirecorr.views.tui.app import WirecorrApp
from wirecorr.views.tui.rows import packet_ref

RELATIVE_CAPTURE = str(Path("captures") / "handshake-echo.pcapng")

Setup = Callable[[WirecorrApp], None]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _snapshot(
    snap_compare: Callable[..., bool],
    *keys: str,
    setup: Setup | None = None,
    size: tuple[int, int] = SIZE,
    capture: str = RELATIVE_CAPTURE,
) -> bool:
    app = make_app(capture)

    async def ready(pilot: object) -> None:
        await settle(pilot, app)
        if setup is not None:
            setup(app)
            await settle(pilot, app)

    return snap_compare(app, press=list(keys), terminal_size=size, run_before=ready)


def test_snapshot_main_screen(snap_compare: Callable[..., bool]) -> None:
    assert _snapshot(snap_compare)


def test_snapshot_packet_selected_with_links(snap_compare: Callable[..., bool]) -> None:
    assert _snapshot(snap_compare, setup=lambda app: app.timeline.goto_ref(packet_ref(3)))


def test_snapshot_filter_error(snap_compare: Callable[..., bool]) -> None:
    assert _snapshot(snap_compare, "slash", "ctrl+u", *"fd == accept4")


def test_snapshot_connection_filter(snap_compare: Callable[..., bool]) -> None:
    assert _snapshot(snap_compare, setup=lambda app: app.set_filter("conn == 0 and linked"))


def test_snapshot_help(snap_compare: Callable[..., bool]) -> None:
    assert _snapshot(snap_compare, "question_mark")


SIZES = pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])


def _on_packet(index: int) -> Setup:
    return lambda app: app.timeline.goto_ref(packet_ref(index))


@SIZES
def test_snapshot_main_screen_sized(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    assert _snapshot(snap_compare, setup=_on_packet(3), size=size)


@SIZES
def test_snapshot_sidebar_toggled(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    assert _snapshot(snap_compare, "b", "e", setup=_on_packet(3), size=size)


@SIZES
def test_snapshot_ladder(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    assert _snapshot(snap_compare, "l", "j", "j", setup=_on_packet(0), size=size)


@SIZES
def test_snapshot_follow_stream(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    capture = str(Path("captures") / "lab-mss-slicing.pcapng")
    assert _snapshot(snap_compare, "f", "x", setup=_on_packet(6), size=size, capture=capture)


@SIZES
def test_snapshot_seq_plot(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    capture = str(Path("captures") / "lab-zero-window.pcapng")
    assert _snapshot(snap_compare, "p", setup=_on_packet(6), size=size, capture=capture)


def test_snapshot_help_at_80x24(snap_compare: Callable[..., bool]) -> None:
    assert _snapshot(snap_compare, "question_mark", size=(80, 24))


@SIZES
def test_snapshot_conversations(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    capture = str(Path("captures") / "lab-retransmit.pcapng")
    assert _snapshot(snap_compare, "c", size=size, capture=capture)


@SIZES
def test_snapshot_delays(snap_compare: Callable[..., bool], size: tuple[int, int]) -> None:
    capture = str(Path("captures") / "lab-retransmit.pcapng")
    assert _snapshot(snap_compare, "H", size=size, capture=capture)
