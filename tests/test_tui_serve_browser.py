"""`wirecorr tui --serve` in a real browser: Debian's headless Chromium, driven over the
Chrome DevTools protocol (the websocket every Chromium serves with --remote-debugging-port).

The page is textual-serve's: xterm.js draws the terminal on a canvas, so what the app shows
is checked twice over — in the screenshot's pixels, and in the terminal output the browser's
own websocket received (the DevTools Network domain reports each frame). A key goes in as
the browser's own key events into xterm's input, and the timeline must change on screen.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image, ImageChops
from tui_helpers import CAPTURE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1200, 800


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevTools:
    """One page target: commands by id, and the websocket frames the page received."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.received = ""
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = message.json()
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Network.webSocketFrameReceived":
                response = data["params"]["response"]
                payload = response["payloadData"]
                raw = base64.b64decode(payload) if response["opcode"] == 2 else payload.encode()
                self.received += raw.decode(errors="replace")

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, 30)
        assert "error" not in reply, reply
        return reply.get("result", {})

    async def wait_for(self, needle: str, since: int = 0, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.received[since:]:
            assert time.monotonic() < deadline, f"the browser never received {needle!r}"
            await asyncio.sleep(0.1)

    async def screenshot(self) -> Image.Image:
        shot = await self.send("Page.captureScreenshot", format="png")
        return Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")

    async def key(self, key: str, code: str, vk: int, text: str = "", modifiers: int = 0) -> None:
        down = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers}
        await self.send("Input.dispatchKeyEvent", type="keyDown" if text else "rawKeyDown", text=text, **down)
        await self.send("Input.dispatchKeyEvent", type="keyUp", **down)


async def _drive(devtools_url: str, port: int) -> tuple[Image.Image, Image.Image, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{devtools_url}/json/list") as response:
            page = next(t for t in await response.json() if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tools = DevTools(ws)
            await tools.send("Network.enable")
            await tools.send("Page.enable")
            await tools.send("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                             mobile=False)  # fmt: skip
            app_url = f"http://127.0.0.1:{port}/"
            for _ in range(300):  # python, textual and the server start slowly on a loaded machine
                try:
                    async with http.get(app_url) as probe:
                        if probe.status == 200:
                            break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
            await tools.send("Page.navigate", url=app_url)
            await tools.wait_for("Timeline")
            await tools.wait_for("#222")  # the timeline's packet rows are drawn
            await asyncio.sleep(1.0)  # xterm paints on the next animation frame
            before = await tools.screenshot()
            # Keys go where a user's would after clicking into the page: xterm's input element.
            await tools.send("Runtime.evaluate", expression="document.querySelector('.xterm-helper-textarea').focus()")
            mark = len(tools.received)
            await tools.key("g", "KeyG", 71, modifiers=2)  # ctrl+g: go to a frame
            for digit in "244":
                await tools.key(digit, f"Digit{digit}", ord(digit), text=digit)
            await tools.key("Enter", "Enter", 13, text="\r")
            await tools.wait_for("#244", since=mark)
            await asyncio.sleep(1.0)
            after = await tools.screenshot()
            page_text = (await tools.send("Runtime.evaluate", expression="document.body.textContent"))["result"][
                "value"
            ]
            tools.reader.cancel()
            return before, after, page_text


def test_tui_served_to_headless_chromium_shows_the_app_and_takes_a_key(tmp_path: Path) -> None:
    assert CHROMIUM is not None, "chromium is not installed: `make system` installs it (Makefile APT_TOOLS)"
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "wirecorr", "tui", "--serve", "--port", str(port), CAPTURE],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    browser = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={tmp_path}",
         f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert browser.stderr is not None
        listening = None
        deadline = time.monotonic() + 60
        while listening is None and time.monotonic() < deadline:
            line = browser.stderr.readline()
            assert line, "chromium exited before it listened"
            listening = re.search(r"DevTools listening on ws://([^/]+)/", line)
        assert listening is not None
        before, after, page_text = asyncio.run(_drive(f"http://{listening.group(1)}", port))
    finally:
        for proc in (browser, server):
            proc.terminate()
        for proc in (browser, server):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert "wirecorr handshake-echo.pcapng" in page_text  # the page names the app it serves
    # The app is on screen: a terminal full of text in several colours, not a blank page.
    colours = before.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20
    left, top, right, bottom = ImageChops.difference(before, after).getbbox() or (0, 0, 0, 0)
    assert right - left > 100 and bottom - top > 20, "the key press changed nothing on screen"
