"""Live packets from a real tcpdump, written to a private file and tailed.

Why a file and not tcpdump's stdout: a Python consumer of a pipe keeps up with only
~35k pkt/s and the kernel drops the rest, while tcpdump writing to a file lost nothing
(docs/architecture.md, live capture facts). `--immediate-mode` keeps delivery latency sub-millisecond
(without it TPACKET_V3 hands packets over up to 1 s late) and `-U` makes tcpdump write
each packet as it comes; the reader waits on inotify for those writes (`FileGrowth`), so
it sees each packet at once, where polling the file cost up to its interval every time.

The file lives in a 0700 temp directory and is unlinked as soon as both tcpdump and the
reader hold it open: nothing is left behind however wirecorr ends. tcpdump gets SIGTERM
from the kernel (PR_SET_PDEATHSIG) if wirecorr dies, so a killed recorder does not leave
an orphan capture filling the disk through a file nobody can see.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wirecorr.errors import EXIT_BAD_INPUT, MissingTool, WirecorrError
from wirecorr.model import Packet
from wirecorr.sources.capture_file import CaptureReader
from wirecorr.sources.packet_decode import decode_packet

PR_SET_PDEATHSIG = 1
# Bytes kept per packet, and the kernel buffer (tcpdump -B). In --immediate-mode libpcap
# uses a TPACKET_V2 ring of fixed-size slots, each sized for a whole snaplen (or the MTU
# when that is smaller; `any` has none) plus 68-84 bytes of headers, so the snaplen decides
# how many packets the ring holds: with -B 8192, about 30 at tcpdump's default of 262144
# on `any`, 127 on `lo`, 3942 at 2048. Slots are laid out in pages: at 2048 a slot takes
# 2128 bytes and so a page of its own (-B 8192 pinned 16 MiB), at 1960 two fit in one
# (-B 16384: 8192 slots in the same 16 MiB). Measured here, a 2000-datagram burst on `any`
# kept 400-1000 packets at 262144 and all 2000 at 2048. 1960 keeps every header and the
# first ~1.9 KiB of payload; losing packets is worse.
DEFAULT_SNAPLEN = 1960
DEFAULT_BUFFER_KIB = 16384
# After the traced program ends: SIGINT does not drain tcpdump's ring buffer, so packets
# still in it would be lost silently; with --immediate-mode 200 ms is ample.
DEFAULT_GRACE = 0.2

_STAT_LINE = re.compile(r"^(\d+) packets? (captured|received by filter|dropped by kernel|dropped by interface)$")
# What tcpdump prints on SIGUSR1, while it keeps capturing.
_RUNNING_STATS = re.compile(r"^tcpdump: \d+ packets? captured, \d+ packets? received by filter, (\d+) packets? dropped")
_NO_PERMISSION = ("you don't have permission", "operation not permitted", "permission denied")


class CaptureError(WirecorrError):
    """tcpdump refused the interface or the filter; the message is tcpdump's own."""

    exit_code = EXIT_BAD_INPUT


@dataclass(slots=True)
class CaptureStats:
    """tcpdump's closing counters, and the loss they imply.

    `received` and `dropped_kernel` are the kernel's figures as tcpdump prints them; on
    `lo` the kernel counts each packet twice there (once leaving, once arriving, while
    libpcap keeps one), so they overstate traffic and loss (on `any` the filter drops the
    leaving copy in the kernel: `LiveCapture.kernel_filter`). `lost` is the real loss:
    packets that crossed the interface and are not in the capture, including any left in
    the ring when tcpdump stopped. None means tcpdump printed no counters.
    """

    captured: int | None = None
    received: int | None = None
    dropped_kernel: int | None = None
    dropped_interface: int | None = None
    lost: int | None = None
    exit_status: int | None = None
    messages: list[str] = field(default_factory=list)


def parse_stats(lines: list[str]) -> CaptureStats:
    stats = CaptureStats()
    for line in lines:
        m = _STAT_LINE.match(line.strip())
        if not m:
            if line.strip() and not line.startswith("tcpdump: listening on") and not _RUNNING_STATS.match(line):
                stats.messages.append(line.strip())
            continue
        n = int(m.group(1))
        what = m.group(2)
        if what == "captured":
            stats.captured = n
        elif what == "received by filter":
            stats.received = n
        elif what == "dropped by kernel":
            stats.dropped_kernel = n
        else:
            stats.dropped_interface = n
    return stats


def real_loss(received: int, captured: int, doubled: bool) -> int:
    """Packets lost, from the kernel's `received` count and what reached the file.

    `doubled`: every packet counts twice in `received` (all of them cross `lo`, whose
    leaving copy the kernel filter keeps: see `LiveCapture.kernel_filter`).
    """
    total = received / 2 if doubled else received
    return max(0, round(total) - captured)


_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
IN_MODIFY = 0x2
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
# How long the reader waits for a write before it asks whether tcpdump has ended.
WAIT_S = 0.1


class FileGrowth:
    """Wakes a reader following a file when its writer writes (inotify IN_MODIFY).

    The watch is on the inode, so it keeps working after the file is unlinked. Where
    inotify is unavailable (out of instances) `wait` sleeps a few milliseconds instead.
    """

    def __init__(self, path: str) -> None:
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd >= 0 and _libc.inotify_add_watch(self.fd, os.fsencode(path), IN_MODIFY) < 0:
            os.close(self.fd)
            self.fd = -1
        self._poll = select.poll()
        if self.fd >= 0:
            self._poll.register(self.fd, select.POLLIN)

    def wait(self) -> None:
        """Return once the file was written to since the last call, or after WAIT_S."""
        if self.fd < 0:
            time.sleep(0.005)
            return
        if self._poll.poll(WAIT_S * 1000):
            # Drained before the caller reads, so a write after this read wakes the next wait.
            with contextlib.suppress(BlockingIOError):
                while os.read(self.fd, 4096):
                    pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _die_with_parent() -> None:
    # Runs in the forked child before exec: only a prebound C call, nothing that allocates.
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class LiveCapture:
    """tcpdump on one interface, its packets handed to `on_packet` from a reader thread.

    `start()` returns once tcpdump is listening (so nothing the traced program sends
    afterwards is missed); `start_delivery()` starts handing packets over, which lets the
    caller write its header first; `stop()` ends it and returns the counters.
    """

    def __init__(
        self,
        on_packet: Callable[[Packet], None],
        *,
        interface: str = "any",
        bpf: str | None = None,
        snaplen: int = DEFAULT_SNAPLEN,
        buffer_kib: int = DEFAULT_BUFFER_KIB,
    ) -> None:
        self.on_packet = on_packet
        self.interface = interface
        self.bpf = bpf
        self.snaplen = snaplen
        self.buffer_kib = buffer_kib
        self.delivered = 0
        self.linktype: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: CaptureReader | None = None
        self._stderr: list[str] = []
        self._listening = threading.Event()
        self._stderr_thread: threading.Thread | None = None
        self._read_thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stats: CaptureStats | None = None
        self._growth: FileGrowth | None = None

    def kernel_filter(self) -> str | None:
        """The BPF program tcpdump gets: the user's, and on `any` no leaving loopback copy.

        On loopback the kernel hands a capture each packet twice, leaving and arriving,
        and libpcap throws the leaving copy away only after it took a slot of the ring:
        half the ring, and half the counters, were copies. On `any` the filter drops them
        in the kernel (pkttype and ifindex of the SLL2 header). Not on `lo`: there libpcap
        1.10 then hands each packet over only when the next one arrives.
        """
        if self.interface != "any":
            return self.bpf
        unique = f"not (outbound and ifindex {_loopback_index()})"
        return f"({self.bpf}) and {unique}" if self.bpf else unique

    def command(self, path: str) -> list[str]:
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            raise MissingTool("tcpdump not found: apt-get install tcpdump")
        cmd = [tcpdump, "-i", self.interface, "-n", "-U", "--immediate-mode", "--time-stamp-precision=nano"]
        cmd += ["-B", str(self.buffer_kib), "-s", str(self.snaplen), "-w", path]
        if os.geteuid() == 0:
            # Staying root (without -Z tcpdump switches to the tcpdump user) keeps the
            # parent-death signal, which the kernel clears on any change of user id.
            cmd += ["-Z", "root"]
        bpf = self.kernel_filter()
        if bpf:
            cmd.append(bpf)
        return cmd

    def start(self, timeout: float = 10.0) -> None:
        tmpdir = tempfile.mkdtemp(prefix="wirecorr-capture-")
        path = os.path.join(tmpdir, "live.pcap")
        try:
            cmd = self.command(path)
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                # Its own session: a Ctrl-C at the terminal must not stop the capture
                # before the traced program's last packets are in.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            self._stderr_thread = threading.Thread(target=self._read_stderr, name="tcpdump-stderr", daemon=True)
            self._stderr_thread.start()
            self._wait_listening(timeout)
            self._reader = self._open_when_created(path, timeout)
        except BaseException:
            self.close()
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            with contextlib.suppress(OSError):
                os.rmdir(tmpdir)

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line.rstrip("\n"))
            if line.startswith("tcpdump: listening on"):
                self._listening.set()

    def _wait_listening(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.02):
            if self._proc.poll() is not None:
                if self._stderr_thread is not None:
                    self._stderr_thread.join(timeout=2)
                raise self._start_error()
            if time.monotonic() > deadline:
                raise CaptureError(f"tcpdump did not start listening on {self.interface} within {timeout:.0f} s")

    def _start_error(self) -> WirecorrError:
        lines: list[str] = []
        for line in self._stderr:
            line = line.strip().removeprefix("tcpdump: ")
            # libpcap repeats its reason in parentheses on a line of its own.
            if line and not (line.startswith("(") and any(line[1:-1] in seen for seen in lines)):
                lines.append(line)
        text = "; ".join(lines)
        if any(marker in text.lower() for marker in _NO_PERMISSION):
            return MissingTool(
                f"tcpdump may not capture on {self.interface}: it needs CAP_NET_RAW and CAP_NET_ADMIN "
                f"(run as root or grant them: setcap cap_net_raw,cap_net_admin=eip $(command -v tcpdump)) [{text}]"
            )
        return CaptureError(f"tcpdump failed on interface {self.interface}: {text or 'no message'}")

    def _open_when_created(self, path: str, timeout: float) -> CaptureReader:
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline or (self._proc is not None and self._proc.poll() is not None):
                raise CaptureError(f"tcpdump did not create its capture file {path}")
            time.sleep(0.01)
        proc = self._proc
        assert proc is not None
        growth = self._growth = FileGrowth(path)
        return CaptureReader(path, follow=True, should_stop=lambda: proc.poll() is not None, wait_for_data=growth.wait)

    def start_delivery(self) -> None:
        self._read_thread = threading.Thread(target=self._deliver, name="live-capture", daemon=True)
        self._read_thread.start()

    def _deliver(self) -> None:
        assert self._reader is not None
        reader = self._reader
        try:
            for rec in reader.records():
                if self.linktype is None:
                    self.linktype = reader.interfaces[0].linktype
                self.on_packet(decode_packet(self.delivered, rec))
                self.delivered += 1
        except BaseException as e:
            self._error = e
        finally:
            self._close_reader()

    def request_counts(self) -> None:
        """Ask the running tcpdump for its counters (SIGUSR1); `kernel_drops` reads the answer.

        tcpdump prints its final counters only when it stops; a live view wants them now.
        """
        proc = self._proc
        # Only once it is listening: tcpdump installs its SIGUSR1 handler before it says so,
        # and until then the signal's default action would kill it.
        if proc is not None and self._listening.is_set() and proc.poll() is None and self._stats is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGUSR1)

    def kernel_drops(self) -> int | None:
        """Packets the kernel dropped for lack of buffer, as of the last `request_counts`."""
        for line in reversed(self._stderr):
            m = _RUNNING_STATS.match(line)
            if m:
                return int(m.group(1))
        return None

    def stop(self, grace: float = DEFAULT_GRACE, timeout: float = 5.0) -> CaptureStats:
        """Let the ring drain for `grace` seconds, stop tcpdump, deliver the rest, count."""
        if self._stats is not None:
            return self._stats
        proc = self._proc
        if proc is None:
            raise RuntimeError("capture was not started")
        if proc.poll() is None:
            time.sleep(grace)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        for thread in (self._read_thread, self._stderr_thread):
            if thread is not None:
                thread.join(timeout=10)
        if self._read_thread is None:
            self._close_reader()
        if self._error is not None:
            raise self._error
        stats = parse_stats(self._stderr)
        stats.exit_status = proc.returncode
        if stats.received is not None and stats.captured is not None:
            stats.lost = real_loss(stats.received, stats.captured, doubled=self.interface == "lo")
        self._stats = stats
        return stats

    def close(self) -> None:
        """Abandon the capture (an error path): end tcpdump without waiting for counters."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        if self._read_thread is None:
            self._close_reader()  # else the reader thread does, when it sees tcpdump ended

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._growth is not None:
            self._growth.close()


def _loopback_index() -> int:
    try:
        return socket.if_nametoindex("lo")
    except OSError:
        return -1
