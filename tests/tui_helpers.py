"""What the TUI tests share: the shipped recording, the terminal size, and how to drive a pilot."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.widgets import DataTable

from wirecorr.engine.session import Session
from wirecorr.views.tui.app import WirecorrApp
from wirecorr.views.tui.detail import Detail
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.loader import FileLoader
from wirecorr.views.tui.packets import LivePackets

REPO = Path(__file__).resolve().parent.parent
CAPTURE = str(REPO / "captures" / "handshake-echo.pcapng")
SIZE = (160, 45)


def sync(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async pilot test on its own event loop (the venv has no pytest asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))  # type: ignore[arg-type]

    return run


def make_app(path: str = CAPTURE, **kwargs: object) -> WirecorrApp:
    index = EventIndex(Session(), LivePackets())
    return WirecorrApp(index, FileLoader(index, path), title=path, **kwargs)  # type: ignore[arg-type]


def _tables_measured(app: WirecorrApp) -> bool:
    """DataTables size their columns when idle; a busy machine can delay that past a snapshot
    (the connections pane then lacked its scrollbar thumb), so wait for it explicitly."""
    return not any(table._require_update_dimensions or table._updated_cells for table in app.query(DataTable))


def _detail_current(app: WirecorrApp) -> bool:
    """The Detail pane follows the cursor through a message; it may not have arrived yet."""
    return app.query_one(Detail).ref == app.timeline.current_ref


async def settle(pilot: object, app: WirecorrApp) -> None:
    """Wait until the file is indexed, the filter worker is idle, the Detail pane shows the
    selected row and the tables are measured."""
    for _ in range(250):
        idle = app.feed.done and not app.filtering and app.indexed_in is not None
        if idle and _detail_current(app) and _tables_measured(app):
            break
        await pilot.pause(0.02)  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]
