"""Recorder control for the `wire` fixture: `wirecorr record` as a child process, and the
forked child that runs a traced function (`call`).

The recorder runs exactly as from the command line, so a test sees what a user would.
Everything here waits with a deadline and stops what it started: a test must never hang on
a recorder or leave one running.
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
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

import pytest

from wirecorr.recording.recorder import RecordOptions

if TYPE_CHECKING:
    from wirecorr.pytest_plugin import Recorded

_POLL_S = 0.02


@contextlib.contextmanager
def recording(
    rec: Recorded,
    cmd: Sequence[str],
    ports: Sequence[int],
    bpf: str | None,
    interface: str,
    listen_port: int | None,
    stop: str,
    timeout: float,
) -> Iterator[None]:
    """Record `cmd` for the body of the block; `Wire.record` documents the options."""
    proc, log = start(rec, cmd, [], ports, bpf, interface)
    try:
        await_header(rec, proc, log, timeout)
        if listen_port is not None:
            await_listen(listen_port, proc, timeout)
        yield
    except BaseException:
        terminate(rec)
        finish(rec, proc, log, timeout, quiet=True)
        raise
    if stop == "terminate":
        terminate(rec)
    finish(rec, proc, log, timeout)


def call_traced(
    rec: Recorded,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    ports: Sequence[int],
    bpf: str | None,
    interface: str,
    timeout: float,
) -> Any:
    """Run `fn(*args, **kwargs)` in a forked child the recorder attaches to; its result or its exception."""
    __tracebackhide__ = True
    go_r, go_w = os.pipe()
    res_r, res_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which never returns
        _child(fn, args, kwargs, go_r, go_w, res_r, res_w)
    os.close(go_r)
    os.close(res_w)
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    reaped = False
    try:
        proc, log = start(rec, [], [child], ports, bpf, interface)
        await_header(rec, proc, log, timeout)
        os.write(go_w, b"g")
        payload = _read_all(res_r, timeout)
        if payload is None:
            os.kill(child, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
        reaped = True
        finish(rec, proc, log, timeout, quiet=payload is None)
    finally:
        os.close(go_w)
        os.close(res_r)
        if not reaped:
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
            if proc is not None and log is not None:
                finish(rec, proc, log, timeout, quiet=True)
    if payload is None:
        pytest.fail(f"{rec.command[0]} gave no result within {timeout:g} s (killed)", pytrace=False)
    rec.exit_status = os.waitstatus_to_exitcode(status)
    return _outcome(payload)


def start(
    rec: Recorded, cmd: list[str], pids: list[int], ports: Sequence[int], bpf: str | None, interface: str
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    if shutil.which("tcpdump") is None:
        pytest.skip("wirecorr's wire fixture needs tcpdump")
    # The recorder runs in a child: ptrace and its signal handling stay out of the test process.
    options = RecordOptions(
        str(rec.path),
        cmd,
        pids,
        interface=interface,
        capture_filter=bpf or " or ".join(f"port {int(p)}" for p in ports) or None,
    )
    argv = [sys.executable, "-m", "wirecorr", *options.command_line()]
    log = open(rec.path.with_suffix(".log"), "w+b")  # noqa: SIM115 - closed by finish
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT), log


def await_header(rec: Recorded, proc: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> None:
    """The recorder writes its header once the program is started or attached: from then
    on everything it does is traced and captured."""
    from wirecorr.errors import InputError
    from wirecorr.recording import read_recording

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            finish(rec, proc, log, timeout)
            return
        with contextlib.suppress(InputError):
            meta = read_recording(str(rec.path)).meta
            if meta.get("pids"):
                rec.pid = meta["pids"][0]
                return
        time.sleep(_POLL_S)
    proc.terminate()
    finish(rec, proc, log, timeout, quiet=True)
    pytest.fail(f"wirecorr record did not start within {timeout:g} s: {_log_text(log)}", pytrace=False)


def terminate(rec: Recorded) -> None:
    if rec.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, signal.SIGTERM)


def finish(
    rec: Recorded, proc: subprocess.Popen[bytes], log: IO[bytes], timeout: float, *, quiet: bool = False
) -> None:
    """Wait for the recorder; the recording must be complete unless we are unwinding already."""
    from wirecorr.recording import read_recording

    if rec.done:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # The program outlived the test's patience: stop it, keep what was recorded.
        terminate(rec)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if not quiet:
            pytest.fail(f"{rec.command[0]} still ran after {timeout:g} s; stopped it", pytrace=False)
    finally:
        rec.done = True
        log.close()
    if quiet:
        return
    try:
        recording = read_recording(str(rec.path))
    except Exception:
        recording = None
    if recording is None or not recording.complete:
        pytest.fail(f"wirecorr record failed (exit {proc.returncode}): {_log_text(log)}", pytrace=False)
    assert recording.summary is not None
    rec.exit_status = recording.summary.get("exit_status")


def _log_text(log: IO[bytes]) -> str:
    with open(log.name, "rb") as f:
        return f.read().decode(errors="replace").strip()[-2000:]


def await_listen(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
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
