"""One recording session: capture, tracer and writer, and their shutdown order.

The tracer runs in the calling thread (ptrace requests must come from the thread that
attached) and delivers syscalls there; tcpdump's packets arrive from the capture's reader
thread; both go straight into the RecordingWriter, which serialises them. Records are
written as they come, not re-sorted: syscalls land when they complete, packets in
tcpdump's order, and readers sort by timestamp (docs/record.md).

`RecordOptions` is what `wirecorr record`, `live`, the labs and the pytest plugin build;
the CLI's argparse Namespace stops at commands/record.py. Linking the finished file is the
engine's work, a layer above this one, so the caller hands it in as `linker`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from wirecorr.errors import UsageError, WirecorrError
from wirecorr.model import Packet, Syscall
from wirecorr.recording.netns_follow import NamespaceFollower, merged_line
from wirecorr.recording.writer import RecordingWriter
from wirecorr.sources import netns
from wirecorr.sources.live_capture import DEFAULT_BUFFER_KIB, DEFAULT_GRACE, DEFAULT_SNAPLEN, CaptureStats, LiveCapture

if TYPE_CHECKING:
    from wirecorr.recording.columns import RecordBatch
    from wirecorr.sources.tracer import Tracer

DEFAULT_DATA_BYTES = 64


class Linked(Protocol):
    """What a linker reports about the file it annotated (recording.annotate.Annotation,
    made by engine.linking.annotate)."""

    links: int
    packets: int
    findings: int


Linker = Callable[[str], "Linked | None"]


@dataclass(frozen=True)
class RecordOptions:
    """Everything a recording session is told; `check()` rejects what cannot be recorded."""

    output: str
    argv: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    interface: str = "any"
    capture_filter: str | None = None
    snaplen: int = DEFAULT_SNAPLEN
    buffer_kib: int = DEFAULT_BUFFER_KIB
    data_bytes: int = DEFAULT_DATA_BYTES
    capture: bool = True
    user: str | None = None
    netns_name: str | None = None
    # A traced process that execs (or is born) in another network namespace gets a capture
    # there too, merged at the end (recording/netns_follow.py).
    follow_namespaces: bool = True

    def check(self, command: str = "record") -> None:
        if bool(self.argv) == bool(self.pids):
            raise UsageError(f"{command}: give either -- CMD [ARGS...] or -p PID[,PID...]")
        if self.user and self.pids:
            raise UsageError(f"{command}: --user applies to a launched CMD, not to -p")
        if self.data_bytes < 0 or self.snaplen <= 0 or self.buffer_kib <= 0:
            raise UsageError(f"{command}: --data-bytes, -s and -B must be positive")
        if self.netns_name and self.pids:
            raise UsageError(f"{command}: --netns runs a CMD in a namespace; -p PIDs are captured in their own")

    def command_line(self, *, link: bool = True) -> list[str]:
        """The `wirecorr record` arguments that make this session (for a recorder in a child process)."""
        out = ["record", "-o", self.output, "-i", self.interface, "-s", str(self.snaplen), "-B", str(self.buffer_kib)]
        out += ["--data-bytes", str(self.data_bytes)]
        if self.capture_filter:
            out += ["-f", self.capture_filter]
        if not self.capture:
            out.append("--no-capture")
        if not link:
            out.append("--no-annotate")
        if self.user:
            out += ["--user", self.user]
        if self.netns_name:
            out += ["--netns", self.netns_name]
        if not self.follow_namespaces:
            out.append("--no-follow-netns")
        if self.pids:
            return [*out, "-p", ",".join(map(str, self.pids))]
        return [*out, "--", *self.argv]


def default_output() -> str:
    return time.strftime("wirecorr-%Y%m%d-%H%M%S.pcapng")


def record(options: RecordOptions, linker: Linker | None = None) -> int:
    """Run one session in this (main) thread, which owns the signal handlers."""
    options.check()
    return Recorder(options, linker=linker).run()


class RecordListener(Protocol):
    """Who else wants the events as they are recorded (the live TUI).

    Called from the recorder's threads: syscalls and process events from the tracer's
    thread, packets from the capture's reader thread. Must return quickly and must not
    raise; hand the event to your own thread (e.g. a queue) if work is needed.
    """

    def on_syscall(self, sc: Syscall) -> None: ...

    def on_process(self, event: str, pid: int, info: int | None) -> None: ...

    def on_packet(self, pkt: Packet) -> None: ...


class Recorder:
    """One `wirecorr record` session: capture, tracer and writer, and their shutdown order."""

    def __init__(
        self,
        options: RecordOptions,
        *,
        listener: RecordListener | None = None,
        linker: Linker | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.options = options
        self.listener = listener
        # Linking the finished file (None: leave it unlinked, as --no-annotate does).
        self.linker = linker
        # Only the main thread may install signal handlers; a Recorder run in another thread
        # (the live TUI) is stopped by its owner calling on_signal instead.
        self.handle_signals = handle_signals
        self.output = options.output
        self.argv = list(options.argv)
        self.pids = list(options.pids)
        self.signum: int | None = None
        self.writer: RecordingWriter | None = None
        self.capture: LiveCapture | None = None
        self.tracer: Tracer | None = None
        self.header_written = False
        # Tracer events that come before the header (spawn reports its child first).
        self.pending: list[Callable[[], None]] = []
        self.error: BaseException | None = None
        # Signals received, and how many of them came before tracing ended: one after that
        # (or during the linking pass) skips or ends the linking; the recording stays complete.
        self.signals = 0
        self.signals_while_tracing = 0
        self.linking = False
        # The network namespace captured in when it is not wirecorr's own (sources/netns.py).
        self.netns: dict[str, Any] | None = None
        self.follower: NamespaceFollower | None = None
        self._listened = 0
        self._listened_lock = threading.Lock()

    def _named_netns(self) -> str:
        """Resolve --netns NAME to its path and note it for the header."""
        assert self.options.netns_name is not None
        path = netns.named(self.options.netns_name)
        self.netns = {"inode": netns.ns_inode(path), "name": self.options.netns_name, "path": path, "container": None}
        return path

    # -- callbacks ---------------------------------------------------------------------

    def on_syscall(self, sc: Syscall) -> None:
        self._emit(lambda: self._writer.write_syscall(sc))
        if self.listener is not None:
            self.listener.on_syscall(sc)

    def on_batch(self, batch: RecordBatch) -> None:
        """A batch of the tracer's compiled loop: written as columns, objects only for a listener."""
        self._emit(lambda: self._writer.write_syscall_batch(batch))
        if self.listener is not None:
            for sc in batch.syscalls():
                self.listener.on_syscall(sc)

    def on_process(self, event: str, pid: int, info: int | None) -> None:
        when = time.time_ns()
        if self.follower is not None:
            self.follower.seen(event, pid)  # while the process waits: before its first packet
        self._emit(lambda: self._writer.write_process(event, pid, info, when))
        if self.listener is not None:
            self.listener.on_process(event, pid, info)

    def on_packet(self, pkt: Packet) -> None:
        assert self.capture is not None and self.capture.linktype is not None
        if self.listener is not None:
            self._listen(pkt)
        if self.error is not None:
            return
        try:
            self._writer.write_packet(
                pkt.ts_ns,
                pkt.frame,
                pkt.wirelen,
                self.capture.linktype,
                iface_name=self.options.interface,
                snaplen=self.options.snaplen,
            )
        except Exception as e:
            self._fail(e)

    def _listen(self, pkt: Packet) -> None:
        """Hand a packet of any of the session's captures to the listener, numbered in the
        order it gets them: each capture counts its own from 0."""
        with self._listened_lock:
            pkt.index = self._listened
            self._listened += 1
            self.listener.on_packet(pkt)  # type: ignore[union-attr]

    @property
    def _writer(self) -> RecordingWriter:
        assert self.writer is not None
        return self.writer

    def _emit(self, write: Callable[[], None]) -> None:
        if not self.header_written:
            self.pending.append(write)
            return
        if self.error is not None:
            return
        try:
            write()
        except Exception as e:
            self._fail(e)

    def _fail(self, error: Exception) -> None:
        """A write failed (disk full, …): end the session cleanly and report it afterwards.

        Raising into the tracer's loop would leave tracees stopped, and raising in the
        capture thread would only end that thread, so both stop the tracer instead.
        """
        if self.error is None:
            self.error = error
            if self.tracer is not None:
                self.tracer.stop()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT/SIGTERM: stop tracing (a second one kills a launched CMD at once), or end the linking.

        It only asks: the tracer's loop wakes up and detaches, so the handler never waits.
        """
        self.signum = signum
        self.signals += 1
        if self.tracer is not None:
            self.tracer.stop()
        if self.linking and self.handle_signals:
            raise KeyboardInterrupt  # in the main thread, inside annotate(), which cleans up

    # -- the session -------------------------------------------------------------------

    def run(self) -> int:
        stop_signals = (signal.SIGINT, signal.SIGTERM) if self.handle_signals else ()
        handlers = {s: signal.signal(s, self.on_signal) for s in stop_signals}
        try:
            if self.options.netns_name:
                # The whole session in the namespace, as `ip netns exec` would run it: CMD and
                # tcpdump. setns() moves only this thread, so a Recorder in a thread (live) works too.
                with netns.entered(self._named_netns()):
                    return self._session()
            return self._session()
        finally:
            for s, handler in handlers.items():
                signal.signal(s, handler)

    def _session(self) -> int:
        """The session under run()'s signal handlers, from tcpdump's start to the linking's end."""
        # Imported here: the ptrace machinery is only needed by this sub-command.
        from wirecorr.sources.tracer import Tracer

        status = 0
        stats: CaptureStats | None = None
        try:
            if self.pids and not self.argv and self.options.capture:
                self.netns = netns.of_pids(self.pids, several=self.options.follow_namespaces)
            if self.options.capture:
                self.capture = LiveCapture(
                    self.on_packet,
                    interface=self.options.interface,
                    bpf=self.options.capture_filter,
                    snaplen=self.options.snaplen,
                    buffer_kib=self.options.buffer_kib,
                )
                with netns.entered(self.netns["path"]) if self.pids and self.netns else contextlib.nullcontext():
                    self.capture.start()
                if self.netns is not None:
                    print(f"wirecorr record: capturing in the {netns.describe(self.netns)}", file=sys.stderr)
            self.writer = RecordingWriter(self.output)
            if self.capture is not None and self.options.follow_namespaces:
                self.follower = self._follower()
            tracer = self.tracer = Tracer(
                self.on_syscall, data_bytes=self.options.data_bytes, on_process=self.on_process, on_batch=self.on_batch
            )
            if self.signum is not None:
                return self._abandon()
            if self.argv:
                self.pids = [tracer.spawn(self.argv, user=self.options.user)]
            else:
                tracer.attach(self.pids)
            try:
                self._write_header()
            except OSError as e:
                self._fail(e)
            if self.capture is not None:
                self.capture.start_delivery()
            if self.signum is not None:
                tracer.stop()
            status = tracer.run()
            self.signals_while_tracing = self.signals
            if self.capture is not None:
                stats = self.capture.stop(DEFAULT_GRACE)
            if self.follower is not None:
                self.follower.stop()
        except BaseException:
            self._abandon()
            raise
        self._finish(status, stats)
        if self.error is None and self.follower is not None and self.follower.captures:
            # A merged recording is linked when it is read, host by host.
            done = self.follower.merge_into(self.output)
            print(f"wirecorr record: {merged_line(done, self.output)}", file=sys.stderr)
        elif self.error is None and self.linker is not None:
            self._annotate(self.linker)
        if self.error is not None:
            reason = self.error.strerror if isinstance(self.error, OSError) else self.error
            raise WirecorrError(f"recording into {self.output} failed: {reason}")
        return 128 + self.signum if self.signum is not None else status

    def _follower(self) -> NamespaceFollower:
        """Where the session captures now (the target's namespace, --netns's, or wirecorr's
        own) is home; a traced process seen anywhere else gets a capture there."""
        home = self.netns["inode"] if self.netns else netns.ns_inode("/proc/thread-self/ns/net")
        base = {
            "user": self.options.user,
            "filter": self.options.capture_filter,
            "snaplen": self.options.snaplen,
            "data_bytes": self.options.data_bytes,
            "hostname": socket.gethostname(),
            "interface": "any",
        }
        opts = self.options
        return NamespaceFollower(
            self.output, home, capture_filter=opts.capture_filter, snaplen=opts.snaplen, buffer_kib=opts.buffer_kib,
            header=base, listen=self._listen if self.listener is not None else None,
        )  # fmt: skip

    def _write_header(self) -> None:
        meta = {
            "command": self.argv,
            "pids": self.pids,
            "attached": not self.argv,
            "user": self.options.user,
            "interface": self.options.interface if self.options.capture else None,
            "filter": self.options.capture_filter,
            "snaplen": self.options.snaplen,
            "data_bytes": self.options.data_bytes,
            "hostname": socket.gethostname(),
            "netns": None if self.netns is None else {k: v for k, v in self.netns.items() if k != "path"},
        }
        self._writer.write_header(meta)
        self.header_written = True
        for write in self.pending:
            self._emit(write)
        self.pending.clear()

    def _abandon(self) -> int:
        """Clean up after a failure, or an interrupt before tracing began.

        A file that never got its header holds nothing of the session and is removed; one
        that did is kept, without a summary record, as a killed recorder would leave it.
        """
        if self.capture is not None:
            self.capture.close()
        if self.follower is not None:
            self.follower.close()
        if self.writer is not None:
            with contextlib.suppress(OSError):
                self.writer.close()
            if not self.header_written:
                with contextlib.suppress(OSError):
                    os.unlink(self.output)
        return 128 + (self.signum or 0)

    def _annotate(self, linker: Linker) -> None:
        """Write the links into the finished file; any failure keeps the recording as it is."""
        self.linking = True
        try:
            if self.signals != self.signals_while_tracing:
                raise KeyboardInterrupt  # a signal since tracing ended: the user wants out
            done = linker(self.output)
            self.linking = False
        except KeyboardInterrupt:
            print(
                f"wirecorr record: links not written into {self.output}: interrupted "
                "(the recording is complete; `wirecorr analyze` links it just the same)",
                file=sys.stderr,
            )
            return
        except Exception as e:
            print(f"wirecorr record: warning: links not written into {self.output}: {e}", file=sys.stderr)
            return
        finally:
            self.linking = False
        if done is not None:
            print(
                f"wirecorr record: {done.links} links on {done.packets} packets, {done.findings} findings "
                f"-> {self.output}",
                file=sys.stderr,
            )

    def _finish(self, status: int, stats: CaptureStats | None) -> None:
        summary: dict[str, Any] = {"exit_status": status, "signal": self.signum}
        if stats is not None:
            summary |= {
                "captured": stats.captured,
                "received_by_filter": stats.received,
                "dropped_by_kernel": stats.dropped_kernel,
                "lost": stats.lost,
            }
        writer = self._writer
        if self.error is None:
            try:
                writer.close(summary)
            except OSError as e:
                self.error = e
        else:
            with contextlib.suppress(OSError):
                writer.close()
        if self.capture is None:
            packets = "no capture"
        elif stats is None or stats.lost is None:
            packets = f"{writer.packets} packets captured, loss unknown (tcpdump gave no counters)"
        else:
            packets = f"{writer.packets} packets captured, {stats.lost} dropped"
        print(f"wirecorr record: {writer.syscalls} syscalls, {packets} -> {self.output}", file=sys.stderr)
        if stats is not None and stats.exit_status not in (0, None):
            detail = "; ".join(stats.messages) or f"exit status {stats.exit_status}"
            print(f"wirecorr record: tcpdump ended abnormally: {detail}", file=sys.stderr)
