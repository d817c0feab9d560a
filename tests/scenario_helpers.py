"""Run a real program under the real Tracer while tcpdump captures, and analyse it as a Session.

The session is fed the way `analyze` feeds a recording (packets, then the syscalls and
process events in the order the tracer reported them), so findings come from exactly the
path a user's recording takes.
"""

from __future__ import annotations

import signal
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
from wirecorr.sources.tracer import Tracer

PY = sys.executable


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
    """Trace `python body args…` (in namespace ns, if given) while capturing lo."""
    script = tmp_path / "scenario.py"
    script.write_text(textwrap.dedent(body))
    argv = [PY, str(script), *args]
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    events: list[Syscall | tuple[str, int, int | None]] = []
    path = tmp_path / "cap.pcap"
    capture = LoopbackCapture(path, bpf, netns=ns)
    with capture as cap:
        tracer = Tracer(events.append, on_process=lambda e, p, i: events.append((e, p, i)))
        tracer.spawn(argv)
        watchdog = _Watchdog(tracer, timeout * 4)
        try:
            assert tracer.run() == status
        finally:
            watchdog.cancel()
        packets = cap.stop(until=until, timeout=timeout)
    session = Session()
    for pkt in packets:
        session.feed_packet(pkt)
    for event in events:
        if isinstance(event, Syscall):
            session.feed_syscall(event)
        else:
            session.on_process(*event)
    diagnose(session)
    return Scenario(session, packets, cap.dropped)


class _Watchdog:
    """Stops a hung scenario: a test must end even when the program under test does not."""

    def __init__(self, tracer: Tracer, seconds: float) -> None:
        self._old = signal.signal(signal.SIGALRM, lambda *_: tracer.stop())
        signal.setitimer(signal.ITIMER_REAL, seconds)

    def cancel(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._old)
