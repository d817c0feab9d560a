"""Run a real program under the real Tracer (or strace) while tcpdump captures, and analyse it.

One harness for the tests that trace a scenario: `trace` runs and captures, `capture_traced`
hands the raw packets and events to tests that feed the engine themselves (in any
interleaving), and `run` feeds a Session the way `analyze` feeds a recording (packets, then
the syscalls and process events in the order the tracer reported them), so findings come
from exactly the path a user's recording takes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loopback_capture import LoopbackCapture

from wirecorr.engine.findings import Thresholds, detect
from wirecorr.engine.ingest import diagnose
from wirecorr.engine.session import Session
from wirecorr.model import Finding, Packet, Syscall
from wirecorr.sources.strace_log import read_strace_log
from wirecorr.sources.tracer import Tracer

PY = sys.executable

# An event of the trace: a syscall, or a tracer process event (event, pid, info).
Event = Syscall | tuple[str, int, int | None]


@dataclass
class Scenario:
    session: Session
    packets: list[Packet]
    # Packets tcpdump says the kernel dropped: a scenario with losses shows half-connections.
    dropped: int | None = None

    @property
    def calls(self) -> list[Syscall]:
        return self.session.syscalls

    @property
    def findings(self) -> list[Finding]:
        return self.session.findings

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    def redetect(self, thresholds: Thresholds) -> list[Finding]:
        return detect(self.session, thresholds)

    def call(self, name: str, pred: Callable[[Syscall], bool] = lambda sc: True) -> Syscall:
        return next(sc for sc in self.calls if sc.name == name and pred(sc))

    def calls_named(self, name: str, pred: Callable[[Syscall], bool] = lambda sc: True) -> list[Syscall]:
        return [sc for sc in self.calls if sc.name == name and pred(sc)]


@dataclass
class Traced:
    packets: list[Packet]
    events: list[Event]
    # Packets tcpdump says the kernel dropped.
    dropped: int | None


def trace(
    tmp_path: Path,
    argv: list[str],
    bpf: str,
    until: Callable[[list[Packet]], bool],
    *,
    netns: str | None = None,
    strace: bool = False,
    timeout: float = 5.0,
    status: int = 0,
) -> Traced:
    """Run argv under the tracer (or `strace -f -yy`) while tcpdump captures lo (of netns, if given).

    With strace the events are the log's syscalls in the order they ended, as the tracer
    reports them.
    """
    events: list[Event] = []
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    log = tmp_path / "strace.log"
    with LoopbackCapture(tmp_path / "cap.pcap", bpf, netns=netns) as cap:
        if strace:
            cmd = ["strace", "-f", "-ttt", "-T", "-yy", "-xx", "-s", "65536", "-o", str(log), *argv]
            assert subprocess.run(cmd, timeout=timeout * 6).returncode == status
        else:
            tracer = Tracer(events.append, on_process=lambda e, p, i: events.append((e, p, i)))
            tracer.spawn(argv)
            watchdog = _Watchdog(tracer, timeout * 4)
            try:
                assert tracer.run() == status
            finally:
                watchdog.cancel()
        packets = cap.stop(until=until, timeout=timeout)
    if strace:
        events.extend(sorted(read_strace_log(log).syscalls, key=lambda c: c.end_ns))
    return Traced(packets, events, cap.dropped)


def capture_traced(
    tmp_path: Path,
    argv: list[str],
    bpf: str,
    until: Callable[[list[Packet]], bool],
    strace: bool = False,
    netns: str | None = None,
) -> tuple[list[Packet], list[Event]]:
    """`trace`'s packets and events, for a test that feeds the engine itself."""
    traced = trace(tmp_path, argv, bpf, until, netns=netns, strace=strace)
    return traced.packets, traced.events


def script(tmp_path: Path, name: str, body: str) -> str:
    """Write a Python program into tmp_path; its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def run(
    tmp_path: Path,
    body: str,
    args: list[str],
    bpf: str,
    until: Callable[[list[Packet]], bool],
    *,
    ns: str | None = None,
    timeout: float = 5.0,
    status: int = 0,
) -> Scenario:
    """Trace `python body args…` (in namespace ns, if given) while capturing lo; analysed as `analyze` does."""
    argv = [PY, script(tmp_path, "scenario.py", body), *args]
    traced = trace(tmp_path, argv, bpf, until, netns=ns, timeout=timeout, status=status)
    session = Session()
    for pkt in traced.packets:
        session.feed_packet(pkt)
    for event in traced.events:
        if isinstance(event, Syscall):
            session.feed_syscall(event)
        else:
            session.on_process(*event)
    diagnose(session)
    return Scenario(session, traced.packets, traced.dropped)


class _Watchdog:
    """Stops a hung scenario: a test must end even when the program under test does not."""

    def __init__(self, tracer: Tracer, seconds: float) -> None:
        self._old = signal.signal(signal.SIGALRM, lambda *_: tracer.stop())
        signal.setitimer(signal.ITIMER_REAL, seconds)

    def cancel(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._old)
