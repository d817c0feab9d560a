"""`wirecorr record`: trace a program's syscalls and capture its packets into one Recording.

The tracer runs in the main thread (ptrace requests must come from the thread that
attached) and delivers syscalls there; tcpdump's packets arrive from the capture's reader
thread; both go straight into the RecordingWriter, which serialises them. Records are
written as they come, not re-sorted: syscalls land when they complete, packets in
tcpdump's order, and readers sort by timestamp (docs/record.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from wirecorr.errors import UsageError, WirecorrError
from wirecorr.model import Packet, Syscall
from wirecorr.recording import RecordingWriter
from wirecorr.sources import netns
from wirecorr.sources.live_capture import DEFAULT_BUFFER_KIB, DEFAULT_GRACE, DEFAULT_SNAPLEN, CaptureStats, LiveCapture

if TYPE_CHECKING:
    from wirecorr.sources.tracer import Tracer

EPILOG = """\
examples:
  wirecorr record -o echo.pcapng -- nc -q1 127.0.0.1 4444
  wirecorr record -f 'tcp port 443' -- curl -s https://example.org/
  wirecorr record -p 1234,1240 -o server.pcapng        (Ctrl-C to stop; the processes keep running)

The capture defaults to interface `any`, because CMD may talk to other hosts as well as to
loopback, and to no filter: every packet on the interface is recorded. At high packet rates
a tight -f filter is what keeps the kernel from dropping packets; the closing summary
reports real loss. To keep whole payloads raise -s and -B together. See docs/record.md.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help="trace a command (or running processes) and capture its packets into one pcapng recording",
        description=(
            "Run CMD (or attach to -p PIDs) under the syscall tracer while tcpdump captures, and write "
            "syscalls and packets into one pcapng file that Wireshark can open and `wirecorr analyze` reads."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-o", "--output", help="recording to write (default wirecorr-YYYYmmdd-HHMMSS.pcapng)")
    p.add_argument("-i", "--interface", default="any", help="capture interface (default any)")
    p.add_argument("-f", "--filter", default=None, help="tcpdump (BPF) capture filter (default: none, all packets)")
    p.add_argument(
        "-s",
        "--snaplen",
        type=int,
        default=DEFAULT_SNAPLEN,
        help=f"bytes kept per packet (default {DEFAULT_SNAPLEN}: smaller packets fit more of them in tcpdump's ring)",
    )
    p.add_argument(
        "-B", "--buffer-kib", type=int, default=DEFAULT_BUFFER_KIB, help="kernel capture buffer, KiB (default 8192)"
    )
    p.add_argument("--data-bytes", type=int, default=64, help="payload bytes kept per read/write syscall")
    p.add_argument("--no-capture", action="store_true", help="trace syscalls only, run no tcpdump")
    p.add_argument(
        "--no-annotate",
        action="store_true",
        help="do not correlate at the end (no packet comments or link records; faster for large recordings)",
    )
    p.add_argument("--user", help="run CMD as this user (the tracer and tcpdump stay root)")
    p.add_argument("-p", "--pid", action="append", default=[], help="attach to running PID[,PID...] instead of CMD")
    p.add_argument(
        "--netns",
        metavar="NAME",
        help="run CMD and the capture in the network namespace NAME (as `ip netns exec NAME`); -p PIDs are "
        "captured in their own namespace without it",
    )
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    p.set_defaults(run=run)


def parse_pids(values: list[str]) -> list[int]:
    pids: list[int] = []
    for value in values:
        for part in value.split(","):
            if not part.strip().isdigit() or int(part) <= 0:
                raise UsageError(f"record: -p wants process ids, got {part!r}")
            pids.append(int(part))
    return pids


def run(args: argparse.Namespace) -> int:
    argv = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    pids = parse_pids(args.pid)
    if bool(argv) == bool(pids):
        raise UsageError("record: give either -- CMD [ARGS...] or -p PID[,PID...]")
    if args.user and pids:
        raise UsageError("record: --user applies to a launched CMD, not to -p")
    if args.data_bytes < 0 or args.snaplen <= 0 or args.buffer_kib <= 0:
        raise UsageError("record: --data-bytes, -s and -B must be positive")
    output = args.output or time.strftime("wirecorr-%Y%m%d-%H%M%S.pcapng")
    if getattr(args, "netns", None):
        if pids:
            raise UsageError("record: --netns runs a CMD in a namespace; -p PIDs are captured in their own")
        path = netns.named(args.netns)
        recorder = Recorder(args, output, argv, pids)
        recorder.netns = {"inode": netns.ns_inode(path), "name": args.netns, "path": path, "container": None}
        # The whole session in the namespace, as `ip netns exec` would run it: CMD and tcpdump.
        with netns.entered(path):
            return recorder.run()
    return Recorder(args, output, argv, pids).run()


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
        args: argparse.Namespace,
        output: str,
        argv: list[str],
        pids: list[int],
        listener: RecordListener | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.args = args
        self.listener = listener
        # Only the main thread may install signal handlers; a Recorder run in another thread
        # (the live TUI) is stopped by its owner calling on_signal instead.
        self.handle_signals = handle_signals
        self.output = output
        self.argv = argv
        self.pids = pids
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

    # -- callbacks ---------------------------------------------------------------------

    def on_syscall(self, sc: Syscall) -> None:
        self._emit(lambda: self._writer.write_syscall(sc))
        if self.listener is not None:
            self.listener.on_syscall(sc)

    def on_process(self, event: str, pid: int, info: int | None) -> None:
        when = time.time_ns()
        self._emit(lambda: self._writer.write_process(event, pid, info, when))
        if self.listener is not None:
            self.listener.on_process(event, pid, info)

    def on_packet(self, pkt: Packet) -> None:
        assert self.capture is not None and self.capture.linktype is not None
        if self.listener is not None:
            self.listener.on_packet(pkt)
        if self.error is not None:
            return
        try:
            self._writer.write_packet(
                pkt.ts_ns,
                pkt.frame,
                pkt.wirelen,
                self.capture.linktype,
                iface_name=self.args.interface,
                snaplen=self.args.snaplen,
            )
        except Exception as e:
            self._fail(e)

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
            if self.pids and not self.argv:
                self.netns = netns.of_pids(self.pids)
            if not self.args.no_capture:
                self.capture = LiveCapture(
                    self.on_packet,
                    interface=self.args.interface,
                    bpf=self.args.filter,
                    snaplen=self.args.snaplen,
                    buffer_kib=self.args.buffer_kib,
                )
                with netns.entered(self.netns["path"]) if self.pids and self.netns else contextlib.nullcontext():
                    self.capture.start()
                if self.netns is not None:
                    print(f"wirecorr record: capturing in the {netns.describe(self.netns)}", file=sys.stderr)
            self.writer = RecordingWriter(self.output)
            tracer = self.tracer = Tracer(self.on_syscall, data_bytes=self.args.data_bytes, on_process=self.on_process)
            if self.signum is not None:
                return self._abandon()
            if self.argv:
                self.pids = [tracer.spawn(self.argv, user=self.args.user)]
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
        except BaseException:
            self._abandon()
            raise
        self._finish(status, stats)
        if self.error is None and not getattr(self.args, "no_annotate", False):
            self._annotate()
        if self.error is not None:
            reason = self.error.strerror if isinstance(self.error, OSError) else self.error
            raise WirecorrError(f"recording into {self.output} failed: {reason}")
        return 128 + self.signum if self.signum is not None else status

    def _write_header(self) -> None:
        meta = {
            "command": self.argv,
            "pids": self.pids,
            "attached": not self.argv,
            "user": self.args.user,
            "interface": None if self.args.no_capture else self.args.interface,
            "filter": self.args.filter,
            "snaplen": self.args.snaplen,
            "data_bytes": self.args.data_bytes,
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
        if self.writer is not None:
            with contextlib.suppress(OSError):
                self.writer.close()
            if not self.header_written:
                with contextlib.suppress(OSError):
                    os.unlink(self.output)
        return 128 + (self.signum or 0)

    def _annotate(self) -> None:
        """Write the links into the finished file; any failure keeps the recording as it is."""
        from wirecorr.engine.ingest import annotate

        self.linking = True
        try:
            if self.signals != self.signals_while_tracing:
                raise KeyboardInterrupt  # a signal since tracing ended: the user wants out
            done = annotate(self.output)
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
