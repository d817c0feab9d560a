"""The streaming analysis behind `analyze --json`: a recording read once, in file order, in
memory that follows the connections open at one time rather than the length of the file.

The whole-table path (`ingest.load_capture`, then `diagnose`) keeps every Syscall, Link and
claim until the end, which the text report, the TUI and `annotate` need; on a 200k-round-trip
recording that was 1.4 GB, two thirds of it objects no output needed any more
(bench/RESULTS.md, scaling). Here instead:

- the packets and the recording's blocks are fed in file order, each block of syscalls as
  it is met (`RecordedFeed` per block), so the recording's syscalls never exist as a whole;
- every syscall goes to the sink as soon as it is fed (a syscall record never changes);
- every `RETIRE_EVERY` events the correlator settles the TCP connections nothing can change
  any more (`Correlator.retire`): their links go to the sink, final;
- of a retired connection the findings keep what they read: its calls and links that are
  not plain data transfers, and all of them when a detector looks at its data
  (`findings.keeps_data`). The rest is dropped (`Correlator.forget`).

- a connection open for long is settled piece by piece (`Streamer.compact`): its data calls
  whose claims can no longer change (`Correlator.settled_claims`) go out with their links
  and are dropped, leaving a few numbers each (`_Spill`). Only connections no framer can
  take (`requests.protocol_ruled_out`) and no finding reads the data of
  (`findings.keeps_data`) are settled so; if a finding turns out to read them after all (a
  reset at the end), they are put back (`Streamer._restore`: the calls re-read from the
  recording's blocks, the links rebuilt from the numbers).

What stays is what the findings need at the end (their thresholds and messages depend on
the whole run), the packet table and the connections. `diagnose` then runs as usual, and
the sink writes the document in the same order and bytes as the whole-table path.
"""

from __future__ import annotations

import gc
import os
import struct
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator
from itertools import accumulate, chain, islice
from operator import attrgetter
from typing import IO, Any, Protocol

from wirecorr.bulk import paused_gc
from wirecorr.engine import findings, requests
from wirecorr.engine.ingest import SLICE, LinkTypeCheck, OnProgress, RecordedFeed, feed_packets, reread_payloads
from wirecorr.engine.packet_feed import compiled_feed_applies, feed_compiled
from wirecorr.engine.session import Session
from wirecorr.errors import InputError
from wirecorr.model import Link, Syscall
from wirecorr.recording.format import PEN
from wirecorr.recording.reader import Recording, add_block
from wirecorr.sources.capture_file import CaptureReader, CustomBlock, RawRecord
from wirecorr.vocab import DATA_CALLS

_DATA_KINDS = ("write-data", "read-data")

# A connection's state is dropped once no packet of it came for this long (capture time)
# after both directions closed: a FIN retransmitted later is no longer added to its link.
RETIRE_GRACE_NS = 1_000_000_000
_END_NS = attrgetter("end_ns")
# Packets between two retirement passes (a pass also follows each block of syscalls).
RETIRE_EVERY = 8192
# The compiled feed reads the file in chunks of `every` times this many bytes (≈ a packet
# of the echo workload, with its share of the recording's syscall blocks).
CHUNK_BYTES_PER_PACKET = 160


class Sink(Protocol):
    """Where the final records go (views/json_report.StreamWriter)."""

    def syscalls(self, calls: list[Syscall]) -> None:
        """Calls as fed (completion order): final at once."""

    def links(self, links: list[Link]) -> None:
        """Links of a retired connection, or at the end the rest: final, in any order."""


def is_plain(sc: Syscall) -> bool:
    """A data transfer that succeeded: what makes a recording long, and what no finding
    reads unless `findings.keeps_data` says so for its connection."""
    return sc.name in DATA_CALLS and sc.errno is None and isinstance(sc.ret, int) and sc.ret > 0


# _Spill's columns: per call its id, its link's id and delay, its stream range, its side,
# direction and kind (an index into _DATA_KINDS).
_SPILL_COLUMNS = (
    ("sids", "q"),
    ("link_ids", "q"),
    ("delays", "q"),
    ("starts", "q"),
    ("ends", "q"),
    ("sides", "b"),
    ("ds", "b"),
    ("kinds", "b"),
)


# Fills a _Spill's columns from settled (direction, claim) pairs: (claims, columns, packets, bounds).
SpillFill = Callable[[list[tuple[int, Any]], dict[str, "array[int]"], "array[int]", "array[int]"], None]


def _compiled_fill() -> SpillFill:
    """`_core/correlate.spill_claims`, whose module the compiled correlator already imported."""
    from wirecorr._core.correlate import spill_claims

    return spill_claims


class _Spill:
    """What `Streamer.compact` dropped of one open connection's data calls: per call the
    numbers `Correlator.restore` needs to rebuild its link and place (43 bytes, plus 8 a
    packet), instead of ≈ 1 KB of objects. Every `CHUNK` calls the columns go to `file`
    (one temporary file all connections share), so memory holds one chunk a connection."""

    CHUNK = 1 << 14

    __slots__ = ("bounds", "chunks", "cols", "file", "fill", "packets")

    def __init__(self, file: IO[bytes], fill: SpillFill | None) -> None:
        self.file = file
        # The compiled filler of the columns (`_core/correlate.spill_claims`), None for the
        # reference, `_fill`.
        self.fill = fill
        # (file offset, calls, packets) of each chunk written out
        self.chunks: list[tuple[int, int, int]] = []
        self._reset()

    def _reset(self) -> None:
        self.cols = {name: array(code) for name, code in _SPILL_COLUMNS}
        self.packets = array("q")
        self.bounds = array("q", [0])

    def add(self, claims: list[tuple[int, Any]]) -> None:
        """Settled (direction, claim) pairs of `Correlator.settled_claims`; each link's packets
        are sorted first, as `Correlator.finish` sorts every link before the document is written."""
        if self.fill is not None:
            self.fill(claims, self.cols, self.packets, self.bounds)
        else:
            self._fill(claims)
        cols, bounds, packets = self.cols, self.bounds, self.packets
        if len(cols["sids"]) >= self.CHUNK:
            f = self.file
            at = f.seek(0, os.SEEK_END)
            for name, _ in _SPILL_COLUMNS:
                cols[name].tofile(f)
            bounds.tofile(f)
            packets.tofile(f)
            self.chunks.append((at, len(cols["sids"]), len(packets)))
            self._reset()

    def _fill(self, claims: list[tuple[int, Any]]) -> None:
        """The reference of `spill_claims`: the columns a column at a time."""
        cols = self.cols
        links = [claim.link for _, claim in claims]
        for link in links:
            if len(link.packets) > 1:
                link.packets.sort()
        cols["sids"].extend([link.syscall for link in links])
        cols["link_ids"].extend([link.id for link in links])
        cols["delays"].extend([link.delay_ns or 0 for link in links])
        cols["starts"].extend([claim.start for _, claim in claims])
        cols["ends"].extend([claim.end for _, claim in claims])
        cols["sides"].extend([d if claim.write else 1 - d for d, claim in claims])
        cols["ds"].extend([d for d, _ in claims])
        cols["kinds"].extend([0 if claim.write else 1 for _, claim in claims])
        packets, bounds = self.packets, self.bounds
        bounds.extend(islice(accumulate((len(link.packets) for link in links), initial=len(packets)), 1, None))
        packets.extend(chain.from_iterable(link.packets for link in links))

    def calls(self) -> list[tuple[int, int, Link, int, int, int]]:
        """(syscall id, side, link, direction, start, end) of every call, as `Correlator.restore` takes them."""
        out: list[tuple[int, int, Link, int, int, int]] = []
        f = self.file
        for at, n, npackets in self.chunks:
            f.seek(at)
            cols = {}
            for name, code in _SPILL_COLUMNS:
                cols[name] = array(code)
                cols[name].fromfile(f, n)
            bounds, packets = array("q"), array("q")
            bounds.fromfile(f, n + 1)
            packets.fromfile(f, npackets)
            out.extend(self._rows(cols, bounds, packets))
        out.extend(self._rows(self.cols, self.bounds, self.packets))
        return out

    @staticmethod
    def _rows(
        cols: dict[str, array[int]], bounds: array[int], packets: array[int]
    ) -> list[tuple[int, int, Link, int, int, int]]:
        sides, ds, starts, ends = cols["sides"], cols["ds"], cols["starts"], cols["ends"]
        link_ids, kinds, delays = cols["link_ids"], cols["kinds"], cols["delays"]
        return [
            (
                sid,
                sides[i],
                Link(link_ids[i], _DATA_KINDS[kinds[i]], sid, packets[bounds[i] : bounds[i + 1]].tolist(), delays[i]),
                ds[i],
                starts[i],
                ends[i],
            )
            for i, sid in enumerate(cols["sids"])
        ]


class Streamer:
    """Feeds one recording into a Session and hands out what became final."""

    def __init__(
        self,
        session: Session,
        sink: Sink,
        thresholds: findings.Thresholds | None = None,
        *,
        grace_ns: int = RETIRE_GRACE_NS,
        every: int = RETIRE_EVERY,
    ) -> None:
        self.session = session
        self.sink = sink
        self.grace_ns = grace_ns
        self.every = every
        self.thresholds = thresholds or findings.Thresholds()
        # Ids of the links that went to the sink and the correlator still holds (a retired
        # connection's that a finding reads, its calls that are no plain transfer); a link
        # forgotten leaves it, so it follows what is held, not the recording.
        self._sent: set[int] = set()
        # Syscalls read but not fed yet (in end order), and the latest packet time seen.
        self._pending: list[Syscall] = []
        # Syscalls of the Custom Blocks met since the last packet, and how many packets came
        # before them: one flush of the recorder (its odd rows as format-1 records, then a
        # block of columns) may straddle the compiled feed's chunks, and its calls go to
        # `_pending` only as a whole, once a packet follows it, as the record-by-record
        # feed gives them (it stops a slice at a packet, never between two blocks).
        self._held: list[Syscall] = []
        self._held_at = 0
        self._watermark = -(1 << 63)
        self._rows = 0
        self._shown = 0
        self._path = ""
        self._recording: Recording | None = None
        # File offsets of the recording's Custom Blocks of syscalls, and the lowest and highest
        # syscall id each holds: `_restore` re-reads only those that hold calls it wants.
        self._blocks = array("q")
        self._block_lo = array("q")
        self._block_hi = array("q")
        # Per open connection: what `compact` dropped of it; the connections it never
        # settles (a framer or a finding reads their data); and those no framer takes, by
        # whether their first bytes are final (`requests.protocol_ruled_out`).
        self._spills: dict[int, _Spill] = {}
        self._spill_file: IO[bytes] | None = None
        self._whole: set[int] = set()
        self._ruled_out: dict[int, bool] = {}
        session.keep_syscall = self._keep
        session.on_fed = sink.syscalls
        self._fill = _compiled_fill() if session.correlator.compiled else None

    def format_version(self) -> int:
        """The format of the recording being read, as its header says (1 before it or without one)."""
        version = self._recording.meta.get("format") if self._recording is not None else None
        return version if type(version) is int else 1

    @staticmethod
    def _keep(sc: Syscall) -> bool:
        """Syscalls the session keeps past their feed: all but plain transfers on what is
        no TCP socket (files, pipes; UDP flows are never retired, so their calls stay)."""
        info = sc.fdinfo
        return info is None or info.kind.startswith(("tcp", "udp")) or not is_plain(sc)

    def read(self, path: str, on_progress: OnProgress | None = None) -> Iterator[int]:
        """`ingest.read_capture` for one file, streaming: yields packets read after each slice."""
        session = self.session
        recording = Recording(path)
        feed = RecordedFeed(session.feed_syscall, session.on_process_record, feed_batch=session.feed_syscalls)

        self._path = path
        self._recording = recording

        # Called inside `feed_packets`, which decided for its whole slice whether the correlator
        # sees each packet (not before the first syscall): syscalls are fed between slices.
        def on_custom(block: CustomBlock) -> None:
            session.custom_at.append(check.read)
            add_block(recording, block)
            if recording.syscalls:
                ids = [sc.id for sc in recording.syscalls]
                self._blocks.append(block.offset)
                self._block_lo.append(min(ids))
                self._block_hi.append(max(ids))
            if recording.syscalls or recording.processes:
                self._held.extend(recording.syscalls)
                self._held_at = check.read
                feed.add([], recording.processes)
                recording.syscalls, recording.processes = [], []

        reader = CaptureReader(path, on_custom=on_custom)
        session.sources.append(path)
        check = LinkTypeCheck(session)
        reread_payloads(session, path)
        try:
            with paused_gc():
                if compiled_feed_applies(session, None):
                    yield from self._read_compiled(reader, path, check, feed, on_progress)
                else:
                    yield from self._read_records(reader, check, feed, on_progress)
        except InputError as e:
            session.error = e
        finally:
            session.packets_read += check.read
            session.skipped_blocks += reader.skipped_blocks
            if reader.clamped:
                session.warnings.append(
                    f"{reader.clamped:,} packet(s) of {path} have a timestamp beyond 2116 or before 1823 (first at "
                    f"byte {reader.first_clamped}): shown at that limit"
                )
        self._release()
        feed.add(self._pending, [])
        self._pending = []
        feed.close()
        self._end_spills()
        if recording.meta.get("hosts"):
            session.warnings.append(
                f"{path} is a merged recording of {len(recording.meta['hosts'])} hosts, read here as one capture "
                "(each crossing twice); `wirecorr analyze` and `check` report each host on its own"
            )
        if recording.is_recording or session.syscall_count or recording.processes:
            if recording.meta:
                session.meta = recording.meta
            session.summary = recording.summary
            if recording.is_recording and not recording.complete:
                session.warnings.append(
                    f"{recording.path} is incomplete: it has no summary record, so the recorder was killed or crashed "
                    "before its end; the report covers what was written until then"
                )
        check.done(path)
        yield check.read

    def _read_compiled(
        self, reader: CaptureReader, path: str, check: LinkTypeCheck, feed: RecordedFeed, on_progress: OnProgress | None
    ) -> Iterator[int]:
        """The packets through the compiled walker (`packet_feed.feed_compiled`), a chunk
        of about `every` packets at a time; the correlator takes each chunk's rows at once."""
        session = self.session
        table = session.analyzer.table
        for read in feed_compiled(
            session, reader, path, check, packet_filter=None, count=None, chunk=self.every * CHUNK_BYTES_PER_PACKET
        ):
            if len(table) > self._rows:
                self._watermark = max(self._watermark, max(table.ts_ns[self._rows :]))
                session.correlator.on_rows(self._rows, len(table))
                self._rows = len(table)
            if read > self._held_at:
                self._release()
            self._feed_ready(feed)
            if on_progress is not None and read // SLICE != self._shown:
                self._shown = read // SLICE
                on_progress(reader.position, reader.size, read)
            yield read

    def _read_records(
        self, reader: CaptureReader, check: LinkTypeCheck, feed: RecordedFeed, on_progress: OnProgress | None
    ) -> Iterator[int]:
        """The packets one `Packet` at a time (the reference analyzer: WIRECORR_PURE=1)."""
        session = self.session
        records: Iterator[RawRecord] = reader.records()
        while True:
            n = feed_packets(session, islice(records, self.every), check)
            table = session.analyzer.table
            if len(table) > self._rows:
                self._watermark = max(self._watermark, max(table.ts_ns[self._rows :]))
                self._rows = len(table)
            self._release()
            self._feed_ready(feed)
            if n < self.every:
                break
            if check.read % SLICE < self.every:
                if on_progress is not None:
                    on_progress(reader.position, reader.size, check.read)
                yield check.read

    def _release(self) -> None:
        """The held calls of a flush a packet followed go to the pending ones."""
        if self._held:
            self._pending.extend(self._held)
            self._pending.sort(key=_END_NS)
            self._held = []

    def _feed_ready(self, feed: RecordedFeed) -> None:
        """Feed the syscalls that ended before the latest packet, then retire.

        A call is fed only once the capture has passed its end, as in the whole-table
        path (all packets first): the correlator then binds its socket and creates its
        links at once, so links get the same ids in both paths.
        """
        pending = self._pending
        if pending and pending[0].end_ns <= self._watermark:
            ready = bisect_right(pending, self._watermark, key=_END_NS)
            feed.add(pending[:ready], [])
            del pending[:ready]
        self.retire()

    def retire(self) -> None:
        """Settle the connections nothing can change any more; drop what no finding reads."""
        session = self.session
        correlator = session.correlator
        connections = session.analyzer.connections
        for cid in correlator.retire(self.grace_ns):
            links = self._links_of(cid)
            # The links `compact` settled could not make a finding read the data (it checked),
            # so the answer holds once they are back.
            keeps = findings.keeps_data(connections[cid], links, self.thresholds)
            if cid in self._spills and (keeps or not self._framed_by_none(cid)):
                self._restore(cid)
                links = self._links_of(cid)
            self._spills.pop(cid, None)
            # A side the trace had not bound yet (a late accept) may bind after retirement,
            # and its connection retire again: only its new links go out then.
            self._send([link for link in links if link.id not in self._sent])
            requests.settle(session, cid)
            if keeps:
                continue
            plain = set()
            for sid, _ in correlator.calls_of(cid):
                sc = session.syscall(sid)
                if sc is not None and is_plain(sc):
                    plain.add(sid)
            self._sent.difference_update(link.id for link in correlator.forget(cid, plain))
            session.drop_syscalls(plain)
        self.compact()

    def compact(self) -> None:
        """Settle the data calls of open connections that nothing can change any more
        (`Correlator.settled_claims`): their links go to the sink and the calls are dropped,
        their numbers kept in the connection's `_Spill`."""
        session = self.session
        correlator = session.correlator
        connections = session.analyzer.connections
        horizon = self._watermark - self.grace_ns
        for cid in correlator.open_connections():
            if cid in self._whole or not self._framed_by_none(cid):
                continue
            claims = correlator.settled_claims(cid, horizon)
            if not claims:
                continue
            links = [claim.link for _, claim in claims]
            if findings.keeps_data(connections[cid], links, self.thresholds):
                self._whole.add(cid)
                self._restore(cid)
                continue
            spill = self._spills.get(cid)
            if spill is None:
                if self._spill_file is None:
                    self._spill_file = tempfile.TemporaryFile(prefix="wirecorr-analyze-")  # noqa: SIM115 - closed by `_end_spills`
                spill = self._spills[cid] = _Spill(self._spill_file, self._fill)
            spill.add(claims)
            sids = {link.syscall for link in links}
            correlator.drop_claims(cid, claims)
            correlator.prune_segments(cid)
            # Written out and forgotten at once: no sent mark to keep.
            self.sink.links(links)
            correlator.forget(cid, sids)
            session.drop_syscalls(sids)
        correlator.shed_calls()

    def _framed_by_none(self, cid: int) -> bool:
        """Whether no framer takes connection `cid` (asked again until its first bytes are
        final); once one does, the connection is kept whole and what was settled comes back."""
        if self._ruled_out.get(cid):
            return True
        answer = requests.protocol_ruled_out(self.session, self.session.analyzer.connections[cid])
        if answer is None:
            return False
        ruled_out, final = answer
        if not ruled_out:
            self._whole.add(cid)
            self._restore(cid)
            return False
        self._ruled_out[cid] = final
        return True

    def _links_of(self, cid: int) -> list[Link]:
        correlator = self.session.correlator
        return [link for sid, _ in correlator.calls_of(cid) for link in correlator.links_of(sid)]

    def _needs_back(self, cid: int) -> bool:
        """Whether the settled calls of connection `cid` must come back: a framer or a
        finding reads its data after all."""
        links = self._links_of(cid)
        return not self._framed_by_none(cid) or findings.keeps_data(
            self.session.analyzer.connections[cid], links, self.thresholds
        )

    def _end_spills(self) -> None:
        """At the end of the input: put back the settled calls of the open connections a
        framer or a finding reads the data of; the rest stays out for good."""
        for cid in list(self._spills):
            if self._needs_back(cid):
                self._restore(cid)
        self._spills.clear()
        if self._spill_file is not None:
            self._spill_file.close()
            self._spill_file = None

    def _restore(self, cid: int) -> None:
        """Put back what `compact` dropped of connection `cid`: the links from its `_Spill`,
        the calls re-read from the recording's Custom Blocks."""
        spill = self._spills.pop(cid, None)
        if spill is None:
            return
        calls = spill.calls()
        wanted = {call[0] for call in calls}
        lo, hi = min(wanted), max(wanted)
        found: list[Syscall] = []
        with open(self._path, "rb") as f:
            for offset, first, last in zip(self._blocks, self._block_lo, self._block_hi, strict=True):
                if last < lo or first > hi:
                    continue
                f.seek(offset)
                # A block of syscalls is wirecorr's (its PEN) and little-endian (RecordingWriter's).
                (blen,) = struct.unpack_from("<I", f.read(12), 4)
                scratch = Recording(self._path)
                add_block(scratch, CustomBlock(pen=PEN, data=f.read(blen - 16), offset=offset))
                found.extend(sc for sc in scratch.syscalls if sc.id in wanted)
        self.session.restore_syscalls(found)
        self.session.correlator.restore(cid, calls)
        # Spilled links went to the sink as they were spilled.
        self._sent.update(call[2].id for call in calls)

    def finish(self, *, freeze: bool = True) -> None:
        """After `diagnose`: the links no retirement handed out.

        For `analyze`, the session's objects then live until the output is written, and the
        process ends: they are frozen out of the collector, whose first full pass after the
        run (the analyze pauses it while reading) would otherwise walk millions of them,
        ≈ 2 s on bench/correlate's recording. The linking pass, which runs inside longer-lived
        processes (the TUI's live view, labs), frees its session when it returns instead.
        """
        sent = self._sent
        self._send([link for link in self.session.correlator.links.held() if link.id not in sent])
        if freeze:
            gc.freeze()

    def _send(self, links: list[Link]) -> None:
        self._sent.update(link.id for link in links)
        self.sink.links(links)


def streamable(path: str | None, *, strace: str | None, packets: bool, count: int | None, filtered: bool) -> bool:
    """Whether `analyze --json` can take the streaming path: one regular file, nothing fed
    before it, every packet kept (`--packets` lists them with their final labels, which the
    whole-table path has)."""
    return (
        path is not None
        and strace is None
        and not packets
        and count is None
        and not filtered
        and os.path.isfile(path)
        and not os.environ.get("WIRECORR_NO_STREAM")
    )
