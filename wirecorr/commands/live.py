"""`wirecorr live`: `wirecorr record` with the TUI watching the recording as it is made.

The options are record's own (its parser is the parent of this one) and the recording
is written by record's `Recorder`, with a `LiveFeed` as its listener; `q` or ctrl-c stops
tracing the way ctrl-c stops `record`, so the file ends with its summary as usual.

Two things have to share the terminal: the UI and the traced program. The program gets
/dev/null as stdin and a log file (OUTPUT.log) as stdout/stderr, so its output cannot
garble the screen and it cannot steal keys; the UI keeps the terminal through duplicated
descriptors. The Recorder runs in a thread because Textual needs the main thread for its
signal handlers; the tracer only needs every ptrace request to come from one thread.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from wirecorr.commands import record
from wirecorr.errors import WirecorrError
from wirecorr.recording.recorder import Linker, Recorder, RecordOptions
from wirecorr.recording.writer import open_output
from wirecorr.sources import netns


def add_parser(sub: argparse._SubParsersAction) -> None:
    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    record.add_parser(scratch)
    p = sub.add_parser(
        "live",
        parents=[scratch.choices["record"]],
        conflict_handler="resolve",
        help="record (like `record`) while the TUI shows syscalls and packets as they happen",
        description=(
            "Trace CMD (or -p PIDs) and capture its packets into a recording, as `wirecorr record` does, "
            "while the terminal UI follows the events live. q or ctrl-c stops tracing and keeps the recording; "
            "the program's own output goes to OUTPUT.log."
        ),
    )
    p.set_defaults(run=run)


@contextlib.contextmanager
def program_stdio(log_path: str) -> Iterator[None]:
    """Give fds 0/1/2 to the traced program (/dev/null, log) and the terminal to Textual."""
    log = open_output(log_path, "program's output")
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    old = sys.__stdin__, sys.__stdout__, sys.__stderr__
    # Textual reads keys from __stdin__, writes to __stderr__ and sizes the screen by __stdout__.
    sys.__stdin__ = os.fdopen(os.dup(saved[0]), "r")
    sys.__stdout__ = os.fdopen(os.dup(saved[1]), "w")
    sys.__stderr__ = os.fdopen(os.dup(saved[2]), "w")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    try:
        yield
    finally:
        for fd, copy in enumerate(saved):
            os.dup2(copy, fd)
            os.close(copy)
        for stream in (sys.__stdin__, sys.__stdout__, sys.__stderr__):
            stream.close()
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = old


class LiveRecording:
    """One live session: the Recorder in its thread, feeding a LiveFeed the app shows."""

    def __init__(self, options: RecordOptions, linker: Linker | None) -> None:
        from wirecorr.engine.session import Session
        from wirecorr.views.tui.index import EventIndex
        from wirecorr.views.tui.live import LiveFeed
        from wirecorr.views.tui.packets import LivePackets

        self.argv = options.argv
        self.index = EventIndex(Session(), LivePackets())
        self.feed = LiveFeed(self.index, options.output)
        self.recorder = Recorder(options, listener=self.feed, linker=linker, handle_signals=False)
        self.status: int | None = None
        self.error: BaseException | None = None
        self.user_stopped = threading.Event()
        self.thread = threading.Thread(target=self._record, name="recorder")
        self.feed.set_stopper(self.stop)
        self.feed.set_writer(lambda: self.recorder.writer)
        if options.capture:
            self.feed.set_capture(lambda: self.recorder.capture)

    def _record(self) -> None:
        try:
            self.status = self.recorder.run()
            self.feed.result = f"exit status {self.status}"
        except BaseException as e:
            self.error = e
            self.feed.result = f"failed: {e}"
        finally:
            self.feed.finished = True
            self.feed.begun.set()

    def start(self) -> None:
        """Start recording; returns once tracing has begun, or raises what kept it from beginning.

        A mistake of the user's (no such process, command not found, no tcpdump) is found
        before the tracer has a process: it ends `live` with its one line, as for
        `record`, instead of opening the UI on an empty recording.
        """
        self.thread.start()
        try:
            self.feed.begun.wait()
        except KeyboardInterrupt:
            self.join()  # ctrl-c before the UI is up ends the recording as `q` would
            raise
        if self.error is not None:
            self.join()
        self.feed.where = self.places

    def places(self) -> str:
        """The namespaces captured in, when not only wirecorr's own: the one the recorder
        entered for tcpdump (record -p's code), then those it followed processes into."""
        recorder = self.recorder
        found = ([recorder.netns] if recorder.netns is not None else []) + (
            recorder.follower.places() if recorder.follower is not None else []
        )
        return ", ".join(netns.label(info) for info in found)

    def stop(self) -> None:
        """What ctrl-c does to `record`: the launched CMD gets SIGINT, the tracer stops."""
        if self.user_stopped.is_set() or self.feed.finished:
            return
        self.user_stopped.set()
        if self.argv and self.recorder.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.recorder.pids[0], signal.SIGINT)
        self.recorder.on_signal(signal.SIGINT, None)

    def join(self) -> int:
        """Wait for the recording to be closed; the exit status `live` should return."""
        self.stop()
        self.thread.join()
        if self.error is not None:
            if isinstance(self.error, WirecorrError):
                raise self.error
            raise WirecorrError(f"live: recording failed: {self.error}") from self.error
        return 0 if self.user_stopped.is_set() else self.status or 0


def run(args: argparse.Namespace) -> int:
    from wirecorr.engine.linking import annotate
    from wirecorr.views.tui.app import WirecorrApp, require_terminal

    options = record.options(args, "live")
    require_terminal("live", instead="`wirecorr record` makes the recording without it")
    output = options.output
    live = LiveRecording(options, None if args.no_annotate else annotate)
    title = " ".join(options.argv) if options.argv else f"pid {','.join(map(str, options.pids))}"
    log = output + ".log"
    with program_stdio(log):
        try:
            live.start()
        except (WirecorrError, KeyboardInterrupt):
            if not os.path.exists(output):  # no recording, so no log beside it
                os.unlink(log)
            raise
        app = WirecorrApp(live.index, live.feed, title=f"live: {title}", live=True)
        try:
            app.run()
        finally:
            status = live.join()
    print(f"wirecorr live: {live.index.events:,} events -> {output} (program output in {log})", file=sys.stderr)
    # SIGTERM/SIGHUP end the app as `q` does, with 128+N as its return code (views/tui/app.py).
    return app.return_code or status
