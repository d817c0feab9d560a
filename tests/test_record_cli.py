"""`wirecorr record` end to end: the real tracer, a real tcpdump, real programs on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ECHO_ONCE, free_port
from pty_helpers import run_with_tty

from wirecorr.model import ACK, SYN
from wirecorr.recording import read_recording

pytest.importorskip("wirecorr.sources.tracer", reason="the ptrace tracer has not landed yet")

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")


LOOP = r"""
import socket, time
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print(rx.getsockname()[1], flush=True)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    tx.sendto(b"tick", rx.getsockname())
    rx.recv(10)
    time.sleep(0.02)
"""


def record(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "wirecorr", "record", *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


def test_echo_syscalls_and_packets_agree(tmp_path: Path) -> None:
    out = tmp_path / "echo.pcapng"
    port = free_port()
    proc = record(
        "-o", str(out), "-i", "lo", "-f", f"tcp port {port}", "--", sys.executable, "-c", ECHO_ONCE, str(port)
    )
    assert proc.returncode == 0, proc.stderr
    rec = read_recording(str(out))
    assert rec.complete and not rec.truncated
    assert rec.meta["command"][0] == sys.executable and rec.meta["interface"] == "lo"
    assert rec.summary is not None and rec.summary["exit_status"] == 0
    all_packets = list(rec.packets())
    assert rec.summary["captured"] == len(all_packets)
    lost = rec.summary["lost"]
    assert f"{len(rec.syscalls)} syscalls, {len(all_packets)} packets captured, {lost} dropped -> {out}" in proc.stderr

    endpoint = f"127.0.0.1:{port}"
    (connect,) = [sc for sc in rec.syscalls if sc.name == "connect" and sc.args.get("addr") == endpoint]
    assert connect.fdinfo is not None and connect.fdinfo.local is not None
    client_port = int(connect.fdinfo.local.rpartition(":")[2])
    # Only this connection: another program on this host may reuse the port number.
    packets = [p for p in all_packets if {p.sport, p.dport} == {port, client_port}]
    assert len(packets) >= 9
    (syn,) = [p for p in packets if p.flags & (SYN | ACK) == SYN]
    # The SYN leaves while connect() runs (docs/architecture.md, clocks: +48..+134 µs after entry).
    assert connect.exit_ns is not None and connect.enter_ns <= syn.ts_ns <= connect.exit_ns

    (accept,) = [sc for sc in rec.syscalls if sc.name in ("accept", "accept4")]
    assert accept.ret_fdinfo is not None and accept.ret_fdinfo.remote == connect.fdinfo.local
    handshake_ack = next(p for p in packets if p.flags == ACK and p.dport == port)
    assert accept.exit_ns is not None and handshake_ack.ts_ns <= accept.exit_ns

    # Each 6-byte send is one 6-byte segment, sent while the call runs.
    sends = [sc for sc in rec.syscalls if sc.data == b"hello!" and sc.name in ("sendto", "write", "send")]
    segments = [p for p in packets if p.payload == b"hello!"]
    assert len(sends) == len(segments) == 2
    for sc in sends:
        assert any(sc.enter_ns <= p.ts_ns <= (sc.exit_ns or 0) for p in segments)
    assert all(sc.pid == rec.meta["pids"][0] for sc in rec.syscalls)
    assert [e["event"] for e in rec.processes][:1] == ["spawn"]
    assert rec.processes[-1] == {**rec.processes[-1], "event": "exit", "pid": rec.meta["pids"][0], "info": 0}


def test_exit_status_passes_through(tmp_path: Path) -> None:
    out = tmp_path / "exit.pcapng"
    proc = record("-o", str(out), "-i", "lo", "-f", "tcp port 9", "--", "sh", "-c", "exit 3")
    assert proc.returncode == 3, proc.stderr
    rec = read_recording(str(out))
    assert rec.complete and rec.summary is not None and rec.summary["exit_status"] == 3
    killed = record("-o", str(out), "--no-capture", "--", "sh", "-c", "kill -TERM $$")
    assert killed.returncode == 128 + signal.SIGTERM


def test_no_capture_needs_no_tcpdump(tmp_path: Path) -> None:
    out = tmp_path / "nocap.pcapng"
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    code = "import os; r, w = os.pipe(); os.write(w, b'x'); os.read(r, 1)"
    proc = record("-o", str(out), "--no-capture", "--", sys.executable, "-c", code, env=env)
    assert proc.returncode == 0, proc.stderr
    rec = read_recording(str(out))
    assert rec.complete and rec.packet_count == 0 and rec.meta["interface"] is None
    assert any(sc.name == "write" and sc.data == b"x" and sc.fdinfo and sc.fdinfo.kind == "pipe" for sc in rec.syscalls)
    assert "no capture" in proc.stderr


def test_default_output_name(tmp_path: Path) -> None:
    proc = record("--no-capture", "--", "true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (made,) = tmp_path.iterdir()
    assert made.name.startswith("wirecorr-") and made.suffix == ".pcapng"
    assert (made.stat().st_mode & 0o777) == 0o600


def test_usage_errors(tmp_path: Path) -> None:
    both = record("-o", str(tmp_path / "x"), "-p", "1", "--", "true")
    assert both.returncode == 2 and "either -- CMD" in both.stderr
    bad = record("-p", "12x")
    assert bad.returncode == 2 and "process ids" in bad.stderr
    missing = record("-o", str(tmp_path / "nf.pcapng"), "--no-capture", "--", "no-such-command-here")
    assert missing.returncode == 127 and "command not found" in missing.stderr
    assert not (tmp_path / "nf.pcapng").exists()
    gone = _unused_pid()
    absent = record("-o", str(tmp_path / "gone.pcapng"), "--no-capture", "-p", str(gone))
    assert absent.returncode == 2 and absent.stderr.strip() == f"wirecorr: no such process: {gone}"
    assert not (tmp_path / "gone.pcapng").exists()
    nobody = record("-o", str(tmp_path / "u.pcapng"), "--no-capture", "--user", "no-such-user-here", "--", "true")
    assert nobody.returncode == 2 and "no such user: no-such-user-here" in nobody.stderr


def _unused_pid() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return next(pid for pid in range(int(f.read()) - 1, 1, -1) if not os.path.exists(f"/proc/{pid}"))


def test_live_with_a_mistake_says_so_without_opening_the_ui(tmp_path: Path) -> None:
    """`live` finds the same mistakes as `record` before the UI starts: one line, no files left."""
    gone = _unused_pid()
    live = [PYTHON, "-m", "wirecorr", "live", "-o", str(tmp_path / "l.pcapng"), "--no-capture"]
    absent = run_with_tty([*live, "-p", str(gone)], stdin_tty=True, stderr_tty=True)
    assert absent == (2, f"wirecorr: no such process: {gone}\n")
    missing = run_with_tty([*live, "--", "no-such-command-here"], stdin_tty=True, stderr_tty=True)
    assert missing == (127, "wirecorr: no-such-command-here: command not found\n")
    assert not list(tmp_path.iterdir())
    # Without a terminal nothing is started at all.
    untraced = run_with_tty([*live, "--", "touch", str(tmp_path / "ran")], stdin_tty=False, stderr_tty=False)
    assert untraced[0] == 2 and "live: the terminal UI needs a terminal" in untraced[1]
    assert not list(tmp_path.iterdir())


def test_attach_to_a_traced_process_says_why(tmp_path: Path) -> None:
    """A process strace already traces cannot be seized: one line naming the cause, exit 2."""
    ready = tmp_path / "ready"
    code = f"import pathlib, time; pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    strace = subprocess.Popen(["strace", "-qq", "-o", "/dev/null", sys.executable, "-c", code])
    target = None
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (target,) = (int(p) for p in Path(f"/proc/{strace.pid}/task/{strace.pid}/children").read_text().split())
        proc = record("-o", str(tmp_path / "t.pcapng"), "--no-capture", "-p", str(target))
        assert proc.returncode == 2, proc.stderr
        (line,) = proc.stderr.splitlines()
        assert line.startswith(f"wirecorr: cannot trace process {target}: operation not permitted"), line
        assert "already traced by strace" in line
        assert not (tmp_path / "t.pcapng").exists()
    finally:
        if target is not None:
            os.kill(target, signal.SIGKILL)  # strace's child, started by this test
        strace.kill()
        strace.wait()


def _state(pid: int) -> tuple[str, int]:
    with open(f"/proc/{pid}/stat") as f:
        state = f.read().rpartition(")")[2].split()[0]
    with open(f"/proc/{pid}/status") as f:
        tracer = next(int(line.split()[1]) for line in f if line.startswith("TracerPid:"))
    return state, tracer


def test_attach_then_sigint_leaves_target_running(tmp_path: Path) -> None:
    out = tmp_path / "attach.pcapng"
    target = subprocess.Popen([sys.executable, "-c", LOOP], stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout is not None
        port = int(target.stdout.readline())
        rec_proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "wirecorr",
                "record",
                "-o",
                str(out),
                "-i",
                "lo",
                "-f",
                f"udp port {port}",
                "-p",
                str(target.pid),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _state(target.pid)[1] == 0:
                time.sleep(0.05)
            time.sleep(0.5)
            rec_proc.send_signal(signal.SIGINT)
            _, err = rec_proc.communicate(timeout=20)
        finally:
            if rec_proc.poll() is None:
                rec_proc.kill()
                rec_proc.wait(timeout=10)
        assert rec_proc.returncode == 128 + signal.SIGINT, err
        time.sleep(0.2)
        assert target.poll() is None
        state, tracer = _state(target.pid)
        assert tracer == 0 and state in ("S", "R"), (state, tracer)
    finally:
        target.kill()
        target.wait(timeout=10)
    rec = read_recording(str(out))
    assert rec.complete and rec.meta["pids"] == [target.pid] and rec.meta["attached"] is True
    assert rec.summary is not None and rec.summary["signal"] == signal.SIGINT
    sends = [sc for sc in rec.syscalls if sc.name == "sendto" and sc.pid == target.pid]
    assert len(sends) >= 5
    ticks = [p for p in rec.packets() if p.dport == port and p.payload == b"tick"]
    # Every datagram sent while attached is on the wire, inside its sendto().
    assert len(ticks) >= len(sends) - 1
    assert all(any(sc.enter_ns <= p.ts_ns <= (sc.exit_ns or 0) for p in ticks) for sc in sends if sc.exit_ns)
