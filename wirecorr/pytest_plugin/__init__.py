"""pytest plugin: the `wire` fixture records what the code under test does on the wire.

    def test_echo_closes_cleanly(wire):
        with wire.record(["./echo-server", "4444"], listen_port=4444, stop="terminate"):
            talk_to(4444)
        assert not wire.findings("close_wait_leak")
        assert wire.links("accept-ack")

    def test_client(wire):
        reply = wire.call(fetch, "127.0.0.1", 4444)     # fetch() runs traced, in a child
        wire.expect({"links": {"every": ["connect -> connect-syn"]}})

How it is recorded: by `wirecorr record` in a child process (tcpdump on `lo` plus the
ptrace tracer), exactly as from the command line, so a test sees what a user would and the
recording (kept in the test's tmp_path, named in the failure report) opens in Wireshark
with its links as packet comments.

Why `call(fn)` and not `with wire.trace_self():`: a process cannot ptrace itself, and
attaching a tracer to the pytest process would stop all of pytest, its threads and its
plugins, at every syscall, and leave the test run at the tracer's mercy if it died. So the
traced code runs in a forked child of the test: it sees the test's objects (copy-on-write),
the recorder attaches to it with `record -p` before it starts, and only its return value
(or exception) comes back, pickled. Side effects on the test's own objects stay in the
child; return what you need.

Importing this module must stay cheap and harmless: pytest loads it (entry point
`pytest11`) in every session of an environment where wirecorr is installed, so the engine
is imported only when a test asks for `wire`.

This module is the fixture's API (what a test calls and asserts on); `recorder` starts,
watches and stops the `wirecorr record` child and the traced function's fork (imported on
first use, like the engine).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from wirecorr.engine.requests import Request
    from wirecorr.engine.session import Session
    from wirecorr.model import Finding, Link, Syscall
    from wirecorr.views.checks import Report

Rules = Mapping[str, Any] | str | os.PathLike[str]


class Recorded:
    """One recording: what the test asserts on once its `record`/`call` has ended.

    The session (correlation and findings) is computed on first use, not when recording
    ends, so a test that only wants the file pays nothing for it.
    """

    def __init__(self, path: Path, command: Sequence[str]) -> None:
        self.path = path
        self.command = list(command)
        # The traced program's pid, known once the recorder has started it (or attached).
        self.pid: int | None = None
        self.exit_status: int | None = None
        self._session: Session | None = None
        self.done = False

    @property
    def session(self) -> Session:
        if not self.done:
            raise RuntimeError(f"{self.path}: still recording; read results after the `with` block")
        if self._session is None:
            from wirecorr.engine.ingest import analyze_file

            session = analyze_file(str(self.path))
            if session.error is not None:
                pytest.fail(f"wirecorr: {session.error}", pytrace=False)
            self._session = session
        return self._session

    def links(self, kind: str | None = None) -> list[Link]:
        """Links with at least one packet, optionally of one kind ("write-data", "accept-ack", …)."""
        return [lk for lk in self.session.correlator.links if lk.packets and (kind is None or lk.kind == kind)]

    def findings(self, kind: str | None = None) -> list[Finding]:
        found: list[Finding] = list(getattr(self.session, "findings", []))
        return [f for f in found if kind is None or f.kind == kind]

    def syscalls(self, name: str | None = None) -> list[Syscall]:
        return [sc for sc in self.session.syscalls if name is None or sc.name == name]

    def requests(self, protocol: str | None = None, endpoint: str | None = None) -> list[Request]:
        """The requests found (docs/requests.md), optionally of one protocol ("http", "redis",
        "dns", "pgsql") and one endpoint glob ("GET /api/*")."""
        import fnmatch

        from wirecorr.engine.requests import requests_of

        return [
            r
            for r in requests_of(self.session)
            if (protocol is None or r.protocol == protocol)
            and (endpoint is None or fnmatch.fnmatchcase(r.endpoint, endpoint))
        ]

    @property
    def connections(self) -> list[dict[str, Any]]:
        """The connection records of `analyze --json` (docs/json-schema.md)."""
        from wirecorr.views.json_report import connection_record

        return [connection_record(c) for c in self.session.analyzer.connections]

    def check(self, rules: Rules) -> Report:
        """Evaluate `wirecorr check` rules: a dict, TOML text, or a path to a rules file."""
        import tomllib

        from wirecorr.views import checks

        if isinstance(rules, os.PathLike):
            parsed = checks.load_rules(os.fspath(rules))
        else:
            doc = tomllib.loads(rules) if isinstance(rules, str) else dict(rules)
            parsed = checks.parse_rules(doc, "<rules>")
        return checks.evaluate(self.session, parsed)

    def expect(self, rules: Rules) -> None:
        """Fail the test with `wirecorr check`'s report unless every rule passes."""
        __tracebackhide__ = True
        from wirecorr.views import checks

        report = self.check(rules)
        if not report.passed:
            text = checks.report_text(self.session, report, title=f"{self.path}:", failures_only=True)
            raise AssertionError(text)


class Wire:
    """The `wire` fixture: starts recordings and answers for the latest one.

    `wire.links(…)`, `wire.findings(…)`, `wire.syscalls(…)`, `wire.requests(…)`, `wire.check(…)`, `wire.expect(…)`
    are those of the last recording; `wire.recordings` holds them all.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.recordings: list[Recorded] = []

    @property
    def last(self) -> Recorded:
        if not self.recordings:
            raise RuntimeError("nothing recorded yet: use `with wire.record(cmd):` or `wire.call(fn)` first")
        return self.recordings[-1]

    def links(self, kind: str | None = None) -> list[Link]:
        return self.last.links(kind)

    def findings(self, kind: str | None = None) -> list[Finding]:
        return self.last.findings(kind)

    def syscalls(self, name: str | None = None) -> list[Syscall]:
        return self.last.syscalls(name)

    def requests(self, protocol: str | None = None, endpoint: str | None = None) -> list[Request]:
        return self.last.requests(protocol, endpoint)

    @property
    def connections(self) -> list[dict[str, Any]]:
        return self.last.connections

    def check(self, rules: Rules) -> Report:
        return self.last.check(rules)

    def expect(self, rules: Rules) -> None:
        __tracebackhide__ = True
        self.last.expect(rules)

    # -- recording ---------------------------------------------------------------------

    @contextlib.contextmanager
    def record(
        self,
        cmd: Sequence[str],
        *,
        ports: Sequence[int] = (),
        bpf: str | None = None,
        interface: str = "lo",
        listen_port: int | None = None,
        stop: str = "wait",
        timeout: float = 30.0,
    ) -> Iterator[Recorded]:
        """Run `cmd` traced while its traffic on `interface` is captured.

        `ports` narrows the capture to those ports (`bpf` gives a filter outright); by
        default everything on lo is captured, other tests' traffic included. With
        `listen_port` the block starts only once something listens on that port. At the end
        of the block `stop="wait"` waits for `cmd` to exit by itself (at most `timeout` s),
        `stop="terminate"` sends it SIGTERM first, as a server under test needs.
        """
        if stop not in ("wait", "terminate"):
            raise ValueError(f'stop must be "wait" or "terminate", not {stop!r}')
        from wirecorr.pytest_plugin import recorder

        rec = self._new(cmd)
        with recorder.recording(rec, cmd, ports, bpf, interface, listen_port, stop, timeout):
            yield rec

    def call(
        self,
        fn: Callable[..., Any],
        *args: Any,
        ports: Sequence[int] = (),
        bpf: str | None = None,
        interface: str = "lo",
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> Any:
        """Run `fn(*args, **kwargs)` traced in a forked child; return its result or raise its exception."""
        __tracebackhide__ = True
        from wirecorr.pytest_plugin import recorder

        rec = self._new([getattr(fn, "__qualname__", repr(fn))])
        return recorder.call_traced(rec, fn, args, kwargs, ports, bpf, interface, timeout)

    def _new(self, command: Sequence[str]) -> Recorded:
        rec = Recorded(self.directory / f"wire-{len(self.recordings)}.pcapng", command)
        self.recordings.append(rec)
        return rec


@pytest.fixture
def wire(tmp_path: Path) -> Wire:
    """Record programs under test on loopback; see `Wire.record` and `Wire.call`."""
    return Wire(tmp_path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Name the recordings of a failed test, so they can be opened in Wireshark."""
    report = yield
    wire = getattr(item, "funcargs", {}).get("wire")
    if report.failed and isinstance(wire, Wire) and wire.recordings:
        report.sections.append(("wirecorr recordings", "\n".join(str(r.path) for r in wire.recordings)))
    return report
