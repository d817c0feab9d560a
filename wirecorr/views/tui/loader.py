"""Index a capture or recording in short time slices, so the first screen never waits.

A 1M-event recording takes the engine tens of seconds (bench/RESULTS.md); the TUI shows
the first rows after the first slice and keeps indexing between key presses. The slices
run on the UI thread's event loop (an async Textual worker) rather than in a thread: the
Session is not thread-safe, and a thread would compete with rendering for the GIL
anyway, so a short slice bounds the latency of a key press better than any lock could.

Records are fed in file order, packets and syscall blocks interleaved as the recorder
wrote them: the same order a live trace delivers, which the correlator is built for.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from operator import attrgetter

from wirecorr.engine.ingest import LinkTypeCheck, RecordedFeed, diagnose, reread_payloads
from wirecorr.errors import InputError
from wirecorr.model import Syscall
from wirecorr.recording import format as fmt
from wirecorr.recording.reader import Recording, add_block
from wirecorr.sources.capture_file import CaptureReader, CustomBlock, RawRecord
from wirecorr.sources.packet_decode import decode_packet
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.packets import FilePackets

# Syscall blocks decoded per batch: ~8 ms of work, within a slice.
BLOCK_BATCH = 256
# A format-2 batch of syscalls is decoded as soon as it is read.
_BATCH_PREFIX = fmt.TAG_SYSCALLS.encode() + b"\n"
# Syscalls fed between two looks at the clock: ~8 ms. A format-2 block holds up to 16,384,
# seconds of indexing, so its syscalls are queued and fed over as many slices as they take.
CALL_BATCH = 256


class FileLoader:
    """Steps through one file (a `Feed` for the app); once `done`, the Session is finished."""

    def __init__(self, index: EventIndex, path: str, *, name: str | None = None) -> None:
        self.index = index
        self.path = path
        # What the status bar calls the file: the user's name for it, when `path` is a
        # decompressed copy.
        self.name = name or path
        self.done = False
        self.reader = CaptureReader(path)
        self.total = self.reader.size
        self.recording = Recording(path)
        # Blocks come in place, so a run of a recorder's syscall blocks (tens of thousands in
        # a row) is read within the slices too, and decoded in bounded batches.
        self.records: Iterator[RawRecord | CustomBlock] = self.reader.records_and_blocks()
        self.blocks: list[CustomBlock] = []
        self.calls: deque[Syscall] = deque()  # decoded, not fed yet; fed before the next record
        self.count = 0  # packets read
        self.fed = 0  # events fed
        # The same order and the same damage reports as `analyze` (engine/ingest.py).
        self.linktypes = LinkTypeCheck(index.session)
        self.recorded = RecordedFeed(index.add_syscall, index.session.on_process_record)
        index.packets = FilePackets(path, index.session.analyzer.table)
        reread_payloads(index.session, path)
        index.hold_back = True
        index.session.sources.append(path)

    def progress(self) -> float:
        return min(self.reader.position / self.total, 1.0) if self.total else 1.0

    def status(self) -> str:
        if self.done:
            return self.name
        return f"{self.name}: indexing {self.progress():.0%}"

    def stop(self) -> None:
        """Nothing to stop: quitting simply abandons the rest of the file."""

    def step(self, budget_s: float = 0.02) -> int:
        """Feed records for about `budget_s`; return how many."""
        if self.done:
            return 0
        deadline = time.perf_counter() + budget_s
        start = self.fed
        try:
            while time.perf_counter() < deadline:
                if self.calls:
                    self._feed_calls(CALL_BATCH)
                    continue
                item = next(self.records, None)
                if item is None:
                    break
                if isinstance(item, CustomBlock):
                    self.index.session.custom_at.append(self.count)
                    self.blocks.append(item)
                    if len(self.blocks) >= BLOCK_BATCH or item.data.startswith(_BATCH_PREFIX):
                        self._feed_blocks()
                    continue
                self._feed_blocks()  # the blocks read before this packet come first, in file order
                self._feed_calls(len(self.calls))
                pkt = decode_packet(self.count, item)
                if pkt.ip_version == 0:
                    self.linktypes.undecoded(item)
                self.index.add_packet(pkt)
                self.count += 1
                self.fed += 1
            else:
                return self.fed - start
        except InputError as e:
            self.index.session.error = e
        self._feed_blocks()
        self._feed_calls(len(self.calls))
        self._finish()
        return self.fed - start

    def _feed_blocks(self) -> None:
        """Decode the queued blocks (at most BLOCK_BATCH) and feed their events."""
        if not self.blocks:
            return
        rec = self.recording
        session = self.index.session
        for block in self.blocks:
            try:
                add_block(rec, block)
            except InputError as e:
                session.error = session.error or e
        self.blocks.clear()
        if rec.meta and not session.meta:
            session.meta = rec.meta
        # Process events wait in `recorded` for the syscalls, which are queued in the order
        # it feeds them (by end) and given to it CALL_BATCH at a time.
        self.fed += len(rec.processes)
        self.recorded.add([], rec.processes)
        rec.syscalls.sort(key=attrgetter("end_ns"))
        self.calls.extend(rec.syscalls)
        rec.processes.clear()
        rec.syscalls.clear()

    def _feed_calls(self, count: int) -> None:
        """Feed the first `count` queued syscalls (fewer if fewer are queued)."""
        take = self.calls.popleft
        batch = [take() for _ in range(min(count, len(self.calls)))]
        self.recorded.add(batch, ())
        self.fed += len(batch)

    def _finish(self) -> None:
        session = self.index.session
        session.packets_read += self.count
        session.skipped_blocks += self.reader.skipped_blocks
        self.recorded.close()
        self.linktypes.read = self.count
        self.linktypes.done(self.path)
        diagnose(session)
        self.index.hold_back = False
        self.done = True
