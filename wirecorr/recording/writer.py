"""Write a Recording as events arrive, so a killed `wirecorr record` still leaves a usable file.

The file is created with mode 0600 from the first byte: it holds payload bytes and command
lines, which are nobody else's business. Blocks are appended in arrival order (packets in
tcpdump's order, syscalls as they complete); readers sort. Everything written is handed to
the kernel at least every `flush_interval` seconds by a small timer thread, because a
SIGKILLed process loses only what is still in its own buffers, never what the kernel has.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import stat
import struct
import threading
import time
from array import array
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from wirecorr import __version__
from wirecorr.errors import UsageError, WirecorrError
from wirecorr.model import Link, Syscall
from wirecorr.recording import format as fmt

if TYPE_CHECKING:
    from wirecorr.recording.columns import RecordBatch

# Nice value of the flush thread (Linux sets it per thread); see _flush_loop.
FLUSH_NICE = 10


def open_output(path: str, what: str = "recording") -> int:
    """Open `path` for writing the way a program run as root in a shared /tmp must: a
    write-only fd on a regular file of ours, mode 0600, empty.

    The recording is written in place as it goes (a killed recorder leaves a readable
    file), so there is no temporary file to rename at the end; the final name is opened
    instead without following anything another user could have planted there:

    - a new file is created with O_CREAT|O_EXCL|O_NOFOLLOW, which fails on any existing
      name, a dangling symlink included, rather than follow it;
    - an existing name is opened with O_NOFOLLOW and judged on the open fd (no window to
      swap it): a symlink, a non-regular file (FIFO, device, /dev/null), a file of another
      user or one with other hard links is refused (UsageError, exit 2) — one of those
      would let the recording, payload bytes and all, land in or be readable from a file
      someone else controls;
    - our own regular file is truncated and overwritten, as `tcpdump -w` does, and set
      back to 0600 (O_CREAT's mode applies only to new files).
    """
    flags = os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as e:
        raise WirecorrError(f"cannot create {path}: {e.strerror}") from None
    try:
        # O_NONBLOCK: opening a FIFO nobody reads must fail or return, not wait.
        fd = os.open(path, flags | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UsageError(f"refusing to write the {what} to {path}: it is a symbolic link") from None
        if e.errno in (errno.ENXIO, errno.EISDIR):
            raise UsageError(f"refusing to write the {what} to {path}: not a regular file") from None
        raise WirecorrError(f"cannot open {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"refusing to write the {what} to {path}: not a regular file")
        if st.st_uid != os.geteuid():
            raise UsageError(f"refusing to write the {what} to {path}: the file belongs to uid {st.st_uid}")
        if st.st_nlink > 1:
            raise UsageError(f"refusing to write the {what} to {path}: the file has other hard links")
        os.ftruncate(fd, 0)
        os.fchmod(fd, 0o600)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class RecordingWriter:
    """Append-only pcapng writer for one Recording; safe to call from several threads.

    Call `write_header()` first, then any mix of `write_packet`, `write_syscall`,
    `write_process` and `write_links`, then `close()`. Interfaces are declared on first use
    of a (linktype, name, snaplen) combination, so callers never manage IDB numbering.
    """

    def __init__(self, path: str, *, flush_interval: float = 1.0, format_version: int = fmt.FORMAT_VERSION) -> None:
        if format_version not in (1, 2):
            raise ValueError(f"recording format {format_version} is not one this wirecorr writes (1, 2)")
        self.path = path
        self.format_version = format_version
        if format_version == 1:
            self._encode_syscalls, self._encode_links = _format1_blocks, _format1_link_blocks
            self._encode_batches = _format1_batch_blocks
        else:
            # Imported here, not with this module: reading a recording need not load pyarrow.
            from wirecorr.recording.columns import batch_blocks, link_blocks, syscall_blocks

            self._encode_syscalls, self._encode_links = syscall_blocks, link_blocks
            self._encode_batches = batch_blocks
        self.packets = 0
        self.syscalls = 0
        self._ifaces: dict[tuple[int, str | None, int], int] = {}
        self._lock = threading.Lock()
        self._header_written = False
        self._closed = False
        self._error: Exception | None = None
        # A deque, drained by count: the tracer's thread appends without the lock, so a
        # swapped-out list could take an append after the flush thread had copied it.
        self._queued: deque[Syscall] = deque()
        self._batches: deque[RecordBatch] = deque()
        # For each Custom Block written, how many packets preceded it (`Session.custom_at`):
        # Wireshark counts those blocks as frames, and a live view numbers its packets as
        # Wireshark will number them in this file while it is being written.
        self.custom_at: array[int] = array("Q")
        fd = open_output(path)
        self._f = os.fdopen(fd, "wb", buffering=1 << 16)
        uname = platform.uname()
        try:
            # Written through at once so an unwritable target fails here, before anything runs.
            self._f.write(fmt.section_header(f"wirecorr {__version__}", f"{uname.system} {uname.release}"))
            self._f.flush()
        except OSError as e:
            with contextlib.suppress(OSError):
                self._f.close()
            raise WirecorrError(f"cannot write {path}: {e.strerror}") from None
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_interval,), daemon=True)
        self._flusher.start()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # Leaving the block on an exception means the session failed: leave it incomplete.
        self.close({} if exc_type is None else None)

    def _flush_loop(self, interval: float) -> None:
        # Encoding is the one job here that can wait: at a lower priority it takes only the
        # CPU the tracer and the traced program leave, which on 2 CPUs it otherwise competes
        # with (bench/RESULTS.md, tracing overhead).
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), FLUSH_NICE)
        while not self._stop.wait(interval):
            try:
                self.flush()
            except (OSError, TypeError, ValueError) as e:
                # Reported by the next write, in the caller's thread, where it can be handled.
                self._error = e
                return

    def _append(self, blocks: bytes) -> None:
        with self._lock:
            self._append_custom_locked(blocks)

    def _append_custom_locked(self, blocks: bytes) -> None:
        """Append Custom Blocks (one or several, whole), noting where each one falls."""
        self._append_locked(blocks)
        count, offset, end = 0, 0, len(blocks)
        while offset < end:
            offset += struct.unpack_from("<I", blocks, offset + 4)[0]
            count += 1
        self.custom_at.extend([self.packets] * count)

    def _append_locked(self, block: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ValueError(f"{self.path}: recording already closed")
        if not self._header_written:
            raise ValueError(f"{self.path}: write_header() must come first")
        self._f.write(block)

    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                if self._header_written:
                    self._drain_locked()
                self._f.flush()

    def write_header(self, meta: dict[str, Any]) -> None:
        """The first record: format version plus whatever describes the session.

        `meta` conventionally holds command, pids, interface, filter, snaplen, data_bytes;
        the format version, wirecorr version and start time are added here.
        """
        payload = {"format": self.format_version, "wirecorr": __version__, "start_ns": time.time_ns(), **meta}
        with self._lock:
            if self._header_written:
                raise ValueError(f"{self.path}: header already written")
            self._header_written = True
        self._append(fmt.custom_block(fmt.TAG_HEADER, payload))
        self.flush()

    def write_packet(
        self,
        ts_ns: int,
        frame: bytes,
        wirelen: int,
        linktype: int,
        *,
        iface_name: str | None = None,
        snaplen: int = 262144,
        comment: str | list[str] | None = None,
    ) -> int:
        """Append one packet; returns its index in the recording (Wireshark frame number - 1).

        `comment` is the correlator's hook: one `fmt.link_comment()` line per linked
        syscall, stored as one EPB comment option each.
        """
        comments = [comment] if isinstance(comment, str) else (comment or [])
        key = (linktype, iface_name, snaplen)
        # One critical section: the IDB must precede any packet naming it, and the returned
        # index must match the packet's position even with two threads writing.
        with self._lock:
            iface = self._ifaces.get(key)
            if iface is None:
                iface = self._ifaces[key] = len(self._ifaces)
                self._append_locked(fmt.interface_description(linktype, snaplen, iface_name))
            self._append_locked(fmt.enhanced_packet(iface, ts_ns, frame, wirelen, comments))
            index = self.packets
            self.packets += 1
        return index

    def write_syscall(self, sc: Syscall) -> None:
        """Queue `sc`; the flush thread encodes it within `flush_interval`, with everything
        queued since its last turn (format 2: as one block of columns per `BATCH_ROWS`).

        The tracer calls this between two ptrace stops of the traced program: encoding
        there (≈10 µs a syscall) would slow the program, so only a list append happens on
        the tracer's thread. A SIGKILL loses at most the last interval, as with buffering.
        """
        if self._error is not None:
            raise self._error
        self._queued.append(sc)
        self.syscalls += 1

    def write_syscall_batch(self, batch: RecordBatch) -> None:
        """Queue a batch of the tracer's compiled loop, encoded as `write_syscall`'s calls are:
        its records become columns without a Python object per syscall (columns.batch_blocks)."""
        if self._error is not None:
            raise self._error
        self._batches.append(batch)
        self.syscalls += len(batch)

    def _drain_locked(self) -> None:
        take = self._queued.popleft
        queued = [take() for _ in range(len(self._queued))]
        if queued:
            self._append_custom_locked(self._encode_syscalls(queued))
        take_batch = self._batches.popleft
        batches = [take_batch() for _ in range(len(self._batches))]
        if batches:
            self._append_custom_locked(self._encode_batches(batches))

    def write_process(self, event: str, pid: int, info: int | None, ts_ns: int | None = None) -> None:
        """A tracer process event (on_process): who was traced, from when, and how it ended.

        `info` is what the tracer reports with the event: the parent pid for "fork", the
        shell-style exit status for "exit", None otherwise.
        """
        when = ts_ns if ts_ns is not None else time.time_ns()
        self._append(fmt.custom_block(fmt.TAG_PROCESS, {"event": event, "pid": pid, "info": info, "ts_ns": when}))

    def write_links(self, links: Iterable[Link]) -> None:
        self._append(self._encode_links(list(links)))

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Finish the file. A `summary` record marks it complete: pass one (it may be empty)
        unless the session failed, so that readers can tell a whole recording from a cut one."""
        self._stop.set()
        self._flusher.join(timeout=5)
        with self._lock:
            if self._closed:
                return
            if self._header_written and self._error is None:
                self._drain_locked()
            if self._header_written and summary is not None:
                done = {"end_ns": time.time_ns(), "packets": self.packets, "syscalls": self.syscalls}
                self._f.write(fmt.custom_block(fmt.TAG_SUMMARY, {**done, **summary}))
            self._closed = True
            self._f.close()


def _format1_blocks(syscalls: list[Syscall]) -> bytes:
    """Format 1: one JSON Custom Block per syscall."""
    return b"".join(map(fmt.syscall_block, syscalls))


def _format1_batch_blocks(batches: list[RecordBatch]) -> bytes:
    return b"".join(fmt.syscall_block(sc) for batch in batches for sc in batch.syscalls())


def _format1_link_blocks(links: list[Link]) -> bytes:
    return b"".join(fmt.custom_block(fmt.TAG_LINK, fmt.link_to_dict(link)) for link in links)
