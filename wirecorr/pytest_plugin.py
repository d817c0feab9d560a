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
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from wirecorr.engine.session import Session
    from wirecorr.model import Finding, Link, Syscall
    from wirecorr.views.checks import Report

Rules = Mapping[str, Any] | str | os.PathLike[str]

_POLL_S = 0.02


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
        self._done = False

    @property
    def session(self) -> Session:
        if not self._done:
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

    `wire.links(…)`, `wire.findings(…)`, `wire.syscalls(…)`, `wire.check(…)`, `wire.expect(…)`
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
        rec = self._new(cmd)
        proc, log = self._start_recorder(rec, ["--", *cmd], ports, bpf, interface)
        try:
            self._await_header(rec, proc, log, timeout)
            if listen_port is not None:
                _await_listen(listen_port, proc, timeout)
            yield rec
        except BaseException:
            self._terminate(rec)
            self._finish(rec, proc, log, timeout, quiet=True)
            raise
        if stop == "terminate":
            self._terminate(rec)
        self._finish(rec, proc, log, timeout)

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
        go_r, go_w = os.pipe()
        res_r, res_w = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child, which never returns
            _child(fn, args, kwargs, go_r, go_w, res_r, res_w)
        os.close(go_r)
        os.close(res_w)
        rec = self._new([getattr(fn, "__qualname__", repr(fn))])
        proc: subprocess.Popen[bytes] | None = None
        log: IO[bytes] | None = None
        reaped = False
        try:
            proc, log = self._start_recorder(rec, ["-p", str(child)], ports, bpf, interface)
            self._await_header(rec, proc, log, timeout)
            os.write(go_w, b"g")
            payload = _read_all(res_r, timeout)
            if payload is None:
                os.kill(child, signal.SIGKILL)
            _, status = os.waitpid(child, 0)
            reaped = True
            self._finish(rec, proc, log, timeout, quiet=payload is None)
        finally:
            os.close(go_w)
            os.close(res_r)
            if not reaped:
                with contextlib.suppress(OSError):
                    os.kill(child, signal.SIGKILL)
                    os.waitpid(child, 0)
                if proc is not None and log is not None:
                    self._finish(rec, proc, log, timeout, quiet=True)
        if payload is None:
            pytest.fail(f"{rec.command[0]} gave no result within {timeout:g} s (killed)", pytrace=False)
        rec.exit_status = os.waitstatus_to_exitcode(status)
        return _outcome(payload)

    # -- helpers -------------------------------------------------------------------------

    def _new(self, command: Sequence[str]) -> Recorded:
        rec = Recorded(self.directory / f"wire-{len(self.recordings)}.pcapng", command)
        self.recordings.append(rec)
        return rec

    def _start_recorder(
        self, rec: Recorded, target: list[str], ports: Sequence[int], bpf: str | None, interface: str
    ) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        if shutil.which("tcpdump") is None:
            pytest.skip("wirecorr's wire fixture needs tcpdump")
        argv = [sys.executable, "-m", "wirecorr", "record", "-o", str(rec.path), "-i", interface]
        capture_filter = bpf or " or ".join(f"port {int(p)}" for p in ports)
        if capture_filter:
            argv += ["-f", capture_filter]
        log = open(rec.path.with_suffix(".log"), "w+b")  # noqa: SIM115 - closed by _finish
        return subprocess.Popen([*argv, *target], stdout=log, stderr=subprocess.STDOUT), log

    def _await_header(self, rec: Recorded, proc: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> None:
        """The recorder writes its header once the program is started or attached: from then
        on everything it does is traced and captured."""
        from wirecorr.errors import InputError
        from wirecorr.recording import read_recording

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._finish(rec, proc, log, timeout)
                return
            with contextlib.suppress(InputError):
                meta = read_recording(str(rec.path)).meta
                if meta.get("pids"):
                    rec.pid = meta["pids"][0]
                    return
            time.sleep(_POLL_S)
        proc.terminate()
        self._finish(rec, proc, log, timeout, quiet=True)
        pytest.fail(f"wirecorr record did not start within {timeout:g} s: {_text(log)}", pytrace=False)

    def _terminate(self, rec: Recorded) -> None:
        if rec.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signal.SIGTERM)

    def _finish(
        self, rec: Recorded, proc: subprocess.Popen[bytes], log: IO[bytes], timeout: float, *, quiet: bool = False
    ) -> None:
        """Wait for the recorder; the recording must be complete unless we are unwinding already."""
        from wirecorr.recording import read_recording

        if rec._done:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The program outlived the test's patience: stop it, keep what was recorded.
            self._terminate(rec)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if not quiet:
                pytest.fail(f"{rec.command[0]} still ran after {timeout:g} s; stopped it", pytrace=False)
        finally:
            rec._done = True
            log.close()
        if quiet:
            return
        try:
            recording = read_recording(str(rec.path))
        except Exception:
            recording = None
        if recording is None or not recording.complete:
            pytest.fail(f"wirecorr record failed (exit {proc.returncode}): {_text(log)}", pytrace=False)
        assert recording.summary is not None
        rec.exit_status = recording.summary.get("exit_status")


def _text(log: IO[bytes]) -> str:
    with open(log.name, "rb") as f:
        return f.read().decode(errors="replace").strip()[-2000:]


def _await_listen(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for a listening socket on `port` by reading /proc/net/tcp*, not by connecting:
    a probe connection would be recorded as part of the test."""
    needle = f":{port:04X} "
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A" and (fields[1] + " ").endswith(needle):
                        return
        time.sleep(_POLL_S)
    pytest.fail(f"nothing listened on port {port} within {timeout:g} s", pytrace=False)


def _read_all(fd: int, timeout: float) -> bytes | None:
    """Everything the child writes before it closes the pipe; None if it takes longer than `timeout`."""
    chunks = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
    return None


def _child(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], go_r: int, go_w: int, res_r: int, res_w: int
) -> None:  # pragma: no cover - runs in the forked child
    """Wait until traced, run `fn`, send back ("ok", value) or ("error", exception, traceback).

    `os._exit` always: the child must not run pytest's teardown, atexit handlers or
    flush the parent's buffered output a second time.
    """
    code = 0
    try:
        os.close(go_w)
        os.close(res_r)
        if os.read(go_r, 1) != b"g":
            os._exit(1)
        try:
            outcome: tuple[Any, ...] = ("ok", fn(*args, **kwargs))
        except BaseException as e:
            outcome = ("error", e, traceback.format_exc())
        try:
            data = pickle.dumps(outcome)
        except Exception:
            data = pickle.dumps(("error", None, traceback.format_exc()))
        view = memoryview(data)
        while view:
            view = view[os.write(res_w, view) :]
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _outcome(payload: bytes) -> Any:
    __tracebackhide__ = True
    try:
        outcome = pickle.loads(payload)
    except Exception as e:
        raise RuntimeError(f"the traced function's result could not be unpickled: {e}") from None
    if outcome[0] == "ok":
        return outcome[1]
    error, text = outcome[1], outcome[2]
    if isinstance(error, BaseException):
        error.add_note(f"raised in the traced child:\n{text}")
        raise error
    raise RuntimeError(f"the traced function failed and its exception could not be pickled:\n{text}")


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
