"""Real tcpdump on loopback for tests, stopped only once the packets a test needs are on disk.

SIGINT does not drain tcpdump's ring buffer (docs/architecture.md), so stopping it a fixed time
after the traffic loses the last packets on a busy machine; waiting for a packet the test
knows must come last makes captures complete without long sleeps.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from wirecorr.model import Packet
from wirecorr.sources.capture_file import CaptureReader, InputError
from wirecorr.sources.packet_decode import decode_packet


def read_all(path: Path) -> list[Packet]:
    reader = CaptureReader(str(path), follow=True, should_stop=lambda: True)
    return [decode_packet(i, rec) for i, rec in enumerate(reader.records())]


class LoopbackCapture:
    def __init__(
        self, path: Path, bpf: str = "", iface: str = "lo", nano: bool = True, netns: str | None = None
    ) -> None:
        """tcpdump on `iface`, inside network namespace `netns` (one the test owns) if given."""
        self.path = path
        # tcpdump's count of packets the kernel dropped (known after `stop`; None if it said nothing).
        self.dropped: int | None = None
        # 32 MB ring: with --immediate-mode each packet takes a snaplen-sized slot (see docs/architecture.md);
        # with tcpdump's default a burst of 200 short connections lost packets now and then.
        cmd = ["ip", "netns", "exec", netns] if netns else []
        cmd += ["tcpdump", "-i", iface, "-U", "--immediate-mode", "-B", "32768", "-w", str(path)]
        if nano:
            cmd += ["--time-stamp-precision", "nano"]
        if bpf:
            cmd.append(bpf)
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"tcpdump did not start: {line}")

    def stop(self, until: Callable[[list[Packet]], bool] | None = None, timeout: float = 5.0) -> list[Packet]:
        """Stop once `until(packets)` holds (or `timeout` passed); return the packets on disk."""
        deadline = time.monotonic() + timeout
        while until is not None and time.monotonic() < deadline:
            try:
                if until(read_all(self.path)):
                    break
            except InputError:
                pass
            time.sleep(0.05)
        time.sleep(0.05)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        assert self.proc.stderr is not None
        found = re.search(r"(\d+) packets? dropped by kernel", self.proc.stderr.read())
        self.dropped = int(found.group(1)) if found else None
        return read_all(self.path)

    def __enter__(self) -> LoopbackCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
