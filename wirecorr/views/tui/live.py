"""Live mode's Feed: the recorder's events, queued by its threads, indexed by the UI's.

`Recorder` calls a listener from the tracer's thread (syscalls, process events) and
from the capture's reader thread (packets). Those calls must return at once, so they
only put the event on a queue; the app's ingest worker drains it in time slices on the
UI thread, which owns the Session (see index.py). A burst larger than a slice waits in
the queue instead of freezing the screen; the status bar shows it as the backlog.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

from wirecorr.engine.hosts import SecondCopies
from wirecorr.engine.ingest import diagnose
from wirecorr.model import Packet, Syscall
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.packets import LivePackets
from wirecorr.views.tui.rows import packet_ref

if TYPE_CHECKING:
    from wirecorr.recording.writer import RecordingWriter
    from wirecorr.sources.live_capture import LiveCapture

_PACKET, _SYSCALL, _PROCESS = 0, 1, 2
# How often the status bar asks tcpdump for its counters (a signal and one stderr line).
DROPS_EVERY_S = 1.0


class LiveFeed:
    """A RecordListener (record.py) and a Feed (app.py) at once."""

    def __init__(self, index: EventIndex, output: str) -> None:
        self.index = index
        self.output = output
        self.packets = LivePackets()
        index.packets = self.packets
        index.session.sources.append(output)
        self.queue: SimpleQueue[tuple[int, Any]] = SimpleQueue()
        self.done = False
        self.finished = False  # set by the recorder's thread when Recorder.run returned
        # Set at the tracer's first process, or by the recorder's thread when it ends first.
        self.begun = threading.Event()
        self.result: str | None = None
        self.pids: set[int] = set()
        self._stop: Any = None
        self._times: deque[tuple[float, int]] = deque()
        self._fed = 0
        self._capture: Callable[[], LiveCapture | None] | None = None
        self._writer: Callable[[], RecordingWriter | None] | None = None
        self._customs_seen = 0
        self._drops_asked = 0.0
        self._waker: Callable[[], None] | None = None
        self._woken = False
        # Where the capture runs when not in wirecorr's own network namespace (live -p of a
        # process in a container): said beside the pids, since it decides what is seen.
        self.where: Callable[[], str] | None = None
        # Captures in several namespaces see a packet crossing between them twice: the
        # second copy gets no row and is not fed to the engine.
        self._copies: SecondCopies | None = None

    # -- RecordListener: called from the recorder's threads -----------------------------

    def on_syscall(self, sc: Syscall) -> None:
        self.queue.put((_SYSCALL, sc))
        self._wake()

    def on_process(self, event: str, pid: int, info: int | None) -> None:
        self.queue.put((_PROCESS, (event, pid, info)))
        self._wake()
        self.begun.set()

    def on_packet(self, pkt: Packet) -> None:
        self.queue.put((_PACKET, pkt))
        self._wake()

    def _wake(self) -> None:
        """Tell an idle UI that events wait: once, until its next `step` takes them."""
        if not self._woken and self._waker is not None:
            self._woken = True
            self._waker()

    # -- Feed: called on the UI thread --------------------------------------------------

    def set_stopper(self, stop: Any) -> None:
        """How `stop()` ends the recording (the command knows its Recorder and CMD)."""
        self._stop = stop

    def set_waker(self, wake: Callable[[], None]) -> None:
        """How to wake the app's idle ingest loop; called from the recorder's threads."""
        self._waker = wake

    def set_capture(self, capture: Callable[[], LiveCapture | None]) -> None:
        """Where the recorder's capture is, once it has started (None until then)."""
        self._capture = capture

    def set_writer(self, writer: Callable[[], RecordingWriter | None]) -> None:
        """Where the recorder's writer is, once it exists: its Custom Blocks number the frames."""
        self._writer = writer

    def _number_frames(self) -> None:
        """Number packets as Wireshark will in the file being written (`Session.frame_number`).

        The writer notes each Custom Block it writes; a block written between the packet's
        arrival here and its write moves the frames from there on, so those rows are redrawn.
        """
        session = self.index.session
        writer = self._writer() if self._writer is not None else None
        if writer is None:
            return
        custom = session.custom_at = writer.custom_at
        if len(custom) != self._customs_seen:
            first, self._customs_seen = custom[self._customs_seen], len(custom)
            self.index.dirty.update(packet_ref(i) for i in range(first, len(session.analyzer.table)))

    def _drop_text(self) -> str:
        if self._capture is None:
            return "no capture"
        capture = self._capture()
        if capture is None:
            return "drops …"
        now = time.monotonic()
        if now - self._drops_asked >= DROPS_EVERY_S:
            self._drops_asked = now
            capture.request_counts()
        drops = capture.kernel_drops()
        return "drops …" if drops is None else f"{drops:,} dropped"

    def _final_loss(self) -> str:
        """The capture's real loss once it stopped, so a run that dropped says so at the end."""
        capture = self._capture() if self._capture is not None else None
        # The recorder has stopped the capture by now; stop() hands back its closing counters.
        stats = capture.stop() if capture is not None else None
        lost = stats.lost if stats is not None else None
        return f" · {lost:,} packets lost by the capture" if lost else ""

    def stop(self) -> None:
        if self._stop is not None and not self.finished:
            self._stop()

    @property
    def backlog(self) -> bool:
        """A live feed waits for events; a step that found none means there are none yet."""
        return False

    def step(self, budget_s: float) -> int:
        deadline = time.perf_counter() + budget_s
        index, session = self.index, self.index.session
        n = 0
        finished = self.finished  # read first: events queued before it was set are all here
        self._woken = False  # cleared before the queue is read: an event put after it wakes again
        try:
            while True:
                kind, event = self.queue.get_nowait()
                n += 1
                if kind == _PACKET:
                    self.packets.add(event)
                    if event.iface and self._copies is None:  # a second namespace's capture began
                        self._copies = self._second_copies(event)
                    if self._copies is None or not self._copies.is_copy(event):
                        index.add_packet(event)
                elif kind == _SYSCALL:
                    self.pids.add(event.pid)
                    index.add_syscall(event)
                else:
                    session.on_process(*event)
                    what, pid, _ = event
                    if what in ("spawn", "attach"):  # an attached process may make no syscall for a long time
                        self.pids.add(pid)
                if not n & 63 and time.perf_counter() > deadline:
                    break
        except Empty:
            drained = True
        else:
            drained = False
        self._number_frames()
        if drained and finished:
            diagnose(session)
            self.done = True
        self._fed += n
        now = time.monotonic()
        self._times.append((now, self._fed))
        while self._times and now - self._times[0][0] > 2.0:
            self._times.popleft()
        return n

    def _second_copies(self, first: Packet) -> SecondCopies:
        """From now on a packet another capture saw first is left out; the packets of the
        session's own capture kept so far (the last `LivePackets.keep`) are known to it,
        since their copies in the new capture may still come."""
        copies = SecondCopies()
        for pkt in list(self.packets.recent.values()):
            if pkt is not first:
                copies.is_copy(pkt)
        return copies

    def progress(self) -> None:
        return None

    def rate(self) -> float:
        if len(self._times) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._times[0], self._times[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def status(self) -> str:
        pids = ",".join(str(p) for p in sorted(self.pids)[:6]) + (" …" if len(self.pids) > 6 else "")
        if self.done:
            return f"recorded → {self.output}: {self.result or 'finished'}{self._final_loss()}"
        backlog = self.queue.qsize()
        where = self.where() if self.where is not None else ""
        pids = (pids or "-") + (f" in {where}" if where else "")
        return f"LIVE → {self.output} · {self.rate():,.0f} events/s · pids {pids} · {self._drop_text()}" + (
            f" · backlog {backlog:,}" if backlog > 1000 else ""
        )
