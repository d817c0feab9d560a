"""What the TUI tests share: the shipped recording, the terminal size, and how to drive a pilot."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path

from wirecorr.engine.session import Session
from wirecorr.views.tui.app import WirecorrApp
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


async def settle(pilot: object, app: WirecorrApp) -> None:
    """Wait until the file is indexed and the filter worker is idle."""
    for _ in range(200):
        if app.feed.done and not app.filtering and app.indexed_in is not None:
            break
        await pilot.pause(0.02)  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]
