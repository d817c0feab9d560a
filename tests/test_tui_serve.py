"""`wirecorr tui --serve`: the same app in a browser, through textual-serve.

Driven as a browser drives it: the page over HTTP, then the websocket that carries the
terminal — a resize, keys as stdin, the screen's updates back. (No browser here: the
websocket protocol is what the page's script speaks, so the server, the app under the web
driver and the key path are all real.)
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import aiohttp
from tui_helpers import CAPTURE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _drive(port: int) -> tuple[str, str, str]:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):  # python, textual and the server start slowly on a loaded machine
            try:
                async with http.get(f"http://127.0.0.1:{port}/") as response:
                    page = await response.text()
                    break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the server did not answer")
        async with http.ws_connect(f"http://127.0.0.1:{port}/ws?width=100&height=30") as ws:
            first = await _read_until(ws, "Timeline")
            await ws.send_json(["stdin", "\x07"])  # ctrl+g: go to frame
            await ws.send_json(["stdin", "244\r"])
            moved = await _read_until(ws, "#244")
            await ws.send_json(["stdin", "q"])
            return page, first, moved


async def _read_until(ws: aiohttp.ClientWebSocketResponse, needle: str, timeout: float = 60) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        message = await asyncio.wait_for(ws.receive(), max(deadline - time.monotonic(), 0.1))
        if message.type == aiohttp.WSMsgType.BINARY:
            seen += message.data.decode(errors="replace")
        elif message.type == aiohttp.WSMsgType.TEXT:
            seen += message.data
        elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            raise AssertionError(f"the websocket closed before {needle!r} came")
    return seen


def test_serve_shows_the_app_in_a_browser_session_and_takes_keys() -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "wirecorr", "tui", "--serve", "--port", str(port), CAPTURE],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        page, first, moved = asyncio.run(_drive(port))
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0]
    assert "wirecorr" in page and "<html" in page.lower()
    assert "Timeline" in first and "#244" in moved
    assert f"http://127.0.0.1:{port}" in output  # where to point the browser (or the SSH forward)


def test_serve_binds_loopback_only_by_default() -> None:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "wirecorr", "tui", "--serve", "--port", str(port), CAPTURE],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
            if listening.strip():
                break
            time.sleep(0.1)
        assert listening.split()[3] == f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
