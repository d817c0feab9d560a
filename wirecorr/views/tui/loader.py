"""Index a capture or recording in short time slices, so the first screen never waits.

The slices run on the UI thread's event loop (an async Textual worker) rather than in a
thread: the Session is not thread-safe, and a thread would compete with rendering for the
GIL anyway, so a short slice bounds the latency of a key press better than any lock could.

Two phases, in the order `analyze` feeds the engine (engine/ingest.py, read_capture):

1. The packets, through the compiled packet feed (`packet_feed.feed_compiled`, one 4 MB
   chunk of the file per call, no Python object per packet); their rows are made from
   the packet table's columns. A recording's format-2 syscall blocks met on the way
   become rows straight from their Arrow columns (`EventIndex.add_call_rows`): every
   row of the file is on screen once the walk is done, before any syscall is an object.
2. The syscalls, fed to the Session in the order they ended (as `RecordedFeed` does for
   `analyze`), a batch per look at the clock; their objects are made from the columns a
   batch at a time, and the links they get redraw their rows.
3. The end (`ingest.diagnosing`): the engine's finish in one step, then one findings
   detector per step.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from itertools import islice

import numpy as np

from wirecorr.engine.hosts import crossing_rows, merged_header, one_copy
from wirecorr.engine.ingest import (
    LinkTypeCheck,
    PacketFilter,
    RecordedFeed,
    diagnosing,
    feed_packets,
    reread_payloads,
)
from wirecorr.engine.packet_feed import compiled_feed_applies, feed_compiled
from wirecorr.errors import InputError
from wirecorr.recording import columns
from wirecorr.recording import format as fmt
from wirecorr.recording.reader import Recording, add_block
from wirecorr.sources.capture_file import CaptureReader, CustomBlock
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.packets import FilePackets

# Syscalls fed between two looks at the clock: a few ms of the correlator's work.
CALL_BATCH = 128
# Bytes of the file the compiled feed walks per call: ≈ 8k packets, a few ms.
WALK_CHUNK = 1 << 20
# Packets per look at the clock on the reference path (WIRECORR_PURE=1, or syscalls from
# an strace log loaded first): one Python object each there, ≈ 10 µs.
REFERENCE_BATCH = 512
_SYSCALLS_PREFIX = fmt.TAG_SYSCALLS.encode() + b"\n"


class FileLoader:
    """Steps through one file (a `Feed` for the app); once `done`, the Session is finished."""

    def __init__(self, index: EventIndex, path: str, *, name: str | None = None) -> None:
        self.index = index
        self.path = path
        # What the status bar calls the file: the user's name for it, when `path` is a
        # decompressed copy.
        self.name = name or path
        self.done = False
        session = index.session
        self.reader = CaptureReader(path, on_custom=self._on_custom)
        self.total = self.reader.size
        self.recording = Recording(path)
        # The same order and the same damage reports as `analyze` (engine/ingest.py).
        self.check = LinkTypeCheck(session)
        self.recorded = RecordedFeed(index.feed_call, session.on_process_record, feed_batch=session.feed_syscalls)
        index.packets = FilePackets(path, session.analyzer.table)
        reread_payloads(session, path)
        index.hold_back = True
        packet_filter = None
        if (merged := merged_header(path)) is not None:
            crossings = crossing_rows(path, merged)
            index.set_crossings(crossings)
            # Each crossing once to the engine too. The compiled walker takes no Python
            # filter: a merged file is read by the reference path (≈ 10x slower per packet).
            packet_filter = one_copy(crossings, index.arrived_ns) if crossings else None
        session.sources.append(path)
        # Syscalls already in the index (an strace log, loaded and fed first) are not fed again.
        self.first_call = len(index.calls)
        self.walk: Iterator[object] | None = (
            feed_compiled(session, self.reader, path, self.check, packet_filter=None, count=None, chunk=WALK_CHUNK)
            if packet_filter is None and compiled_feed_applies(session, None)
            else self._reference_walk(packet_filter)
        )
        self.rows_made = 0  # packets that have rows
        # Syscall blocks met by the walk, decoded one per call of `_walk_chunk` (≈ 20 ms each
        # for 16k rows) rather than inside the walk, which would then take them all at once.
        self.blocks: deque[CustomBlock] = deque()
        self.order: np.ndarray | None = None  # phase 2: call positions in the order they ended
        self.next_call = 0
        self.ending: Iterator[None] | None = None  # phase 3, once begun
        self.fed = 0  # events indexed

    @property
    def count(self) -> int:
        """Packets read so far."""
        return self.check.read

    def progress(self) -> float:
        """The walk's bytes and the syscalls fed, half and half."""
        walked = min(self.reader.position / self.total, 1.0) if self.total and self.walk is not None else 1.0
        if self.order is None:
            return walked / 2
        return 0.5 + 0.5 * (self.next_call / len(self.order) if len(self.order) else 1.0)

    def status(self) -> str:
        if self.done:
            return self.name
        return f"{self.name}: indexing {self.progress():.0%}"

    def stop(self) -> None:
        """Nothing to stop: quitting simply abandons the rest of the file."""

    @property
    def backlog(self) -> bool:
        return not self.done

    def step(self, budget_s: float = 0.02) -> int:
        """Index for about `budget_s` (one chunk of the file, or one batch of syscalls, at
        least); return how many events."""
        deadline = time.perf_counter() + budget_s
        start = self.fed
        while not self.done:
            if self.walk is not None:
                self._walk_chunk()
            elif self.next_call < len(self._order()):
                self._feed_calls()
            else:
                # Each of the end's steps takes a slice of its own (the engine's finish alone
                # is ~0.1 s), never the rest of one that fed syscalls.
                if self.fed > start:
                    break
                if self.ending is None:
                    self.ending = self._ending()
                next(self.ending, None)
                break
            if time.perf_counter() >= deadline:
                break
        return self.fed - start

    def _walk_chunk(self) -> None:
        assert self.walk is not None
        if self.blocks:
            self._call_block(self.blocks.popleft())
            return
        try:
            more = next(self.walk, None) is not None
        except InputError as e:
            self.index.session.error = e
            more = False
        self._packet_rows()
        if not more:
            while self.blocks:
                self._call_block(self.blocks.popleft())
            self.walk = None
            self._walked()

    def _packet_rows(self) -> None:
        made = len(self.index.session.analyzer.table)
        self.index.add_packet_rows(self.rows_made, made)
        self.fed += made - self.rows_made
        self.rows_made = made

    def _reference_walk(self, packet_filter: PacketFilter | None) -> Iterator[int]:
        """The pure-Python packet path (`ingest.feed_packets`), in short batches."""
        session = self.index.session
        records = self.reader.records()
        while True:
            n = feed_packets(session, islice(records, REFERENCE_BATCH), self.check, packet_filter=packet_filter)
            yield n
            if n < REFERENCE_BATCH:
                return

    def _on_custom(self, block: CustomBlock) -> None:
        """A Custom Block met by the walk: syscall columns become rows, other wirecorr
        records (header, process events, format-1 syscalls) go through the reader."""
        session = self.index.session
        session.custom_at.append(self.check.read)
        try:
            if block.pen == fmt.PEN and block.data.startswith(_SYSCALLS_PREFIX):
                self.blocks.append(block)
                return
            while self.blocks:  # a format-1 syscall next to a batch keeps its place in file order
                self._call_block(self.blocks.popleft())
            add_block(self.recording, block)
        except InputError as e:
            session.error = session.error or e
            return
        rec = self.recording
        if rec.meta and not session.meta:
            session.meta = rec.meta
        if rec.processes:
            self.fed += len(rec.processes)
            self.recorded.add([], rec.processes)
            rec.processes.clear()
        if rec.syscalls:
            first = len(self.index.calls)
            self.index.adopt(rec.syscalls)
            self.index.raise_watermark(max(self.index.calls.end_ns[first:]))
            rec.syscalls.clear()

    def _call_block(self, block: CustomBlock) -> None:
        """A format-2 block of syscall columns: its rows, no objects yet."""
        try:
            table = columns.decode_block(block.data)
        except fmt.RecordFormatError as e:
            session = self.index.session
            session.error = session.error or InputError(self.path, f"bad wirecorr record: {e}", offset=block.offset)
            return
        for batch in table.to_batches():
            self.index.add_call_rows(columns.SyscallRows(batch))

    def _walked(self) -> None:
        """Every packet and syscall of the file has a row: show them all."""
        session = self.index.session
        session.packets_read += self.check.read
        session.skipped_blocks += self.reader.skipped_blocks
        self.index.hold_back = False

    def _order(self) -> np.ndarray:
        if self.order is None:
            ends = np.frombuffer(self.index.calls.end_ns, dtype=np.int64)[self.first_call :]
            self.order = np.argsort(ends, kind="stable") + self.first_call
        return self.order

    def _feed_calls(self) -> None:
        """Feed the Session the next CALL_BATCH syscalls in the order they ended."""
        calls = self.index.calls
        batch = self._order()[self.next_call : self.next_call + CALL_BATCH].tolist()
        self.recorded.add([calls[pos] for pos in batch], ())
        self.next_call += len(batch)
        self.fed += len(batch)

    def _ending(self) -> Iterator[None]:
        """The pipeline's end (`ingest.diagnosing`) one step per slice."""
        self.recorded.close()
        self.check.done(self.path)
        yield from diagnosing(self.index.session)
        self.done = True
