"""`wirecorr check` on real recordings: rules that pass, rules that fail with evidence, bad rules files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ECHO_ONCE, free_port

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")

# One connection: the client sends 6 bytes, the server echoes them, the client closes first.

PASSING = """
[findings]
no = ["close_wait_leak", "rst_on_close"]

[counts]
connections = 1
retransmissions = {max = 0}
resets = 0

[counts.syscalls]
connect = 1
"accept|accept4" = 1

[counts.links]
write-data = 2
close-rst = 0

[links]
every = ["accept4 -> accept-ack", "connect -> connect-syn", "sendto -> write-data", "close -> close-fin"]
never = ["close -> close-rst"]

[max_delay_ms]
write-data = 1000

[close]
active_closer = "client"
final_state.client = "TIME_WAIT"
final_state.server = ["CLOSED", "LAST_ACK"]
"""

FAILING = """
[counts]
connections = 2
time_wait = {min = 100}

[close]
active_closer = "server"
"""


def wirecorr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "wirecorr", *args], capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("check") / "echo.pcapng"
    port = free_port()
    done = wirecorr(
        "record", "-o", str(out), "-i", "lo", "-f", f"tcp port {port}", "--", sys.executable, "-c", ECHO_ONCE, str(port)
    )
    assert done.returncode == 0, done.stderr
    return out


def rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


def test_passing_rules_exit_0(recording: Path, tmp_path: Path) -> None:
    done = wirecorr("check", str(recording), "--expect", str(rules(tmp_path, PASSING)))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "FAIL" not in done.stdout
    assert "PASS  links.every: accept4 -> accept-ack: 1 call(s)" in lines
    assert "PASS  findings.no: close_wait_leak: none" in lines
    assert lines[-1].endswith("0 failed")


def test_failing_rules_exit_1_with_evidence(recording: Path, tmp_path: Path) -> None:
    done = wirecorr("check", str(recording), "--expect", str(rules(tmp_path, FAILING)))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "FAIL  counts.connections: 1, want = 2" in out
    assert "FAIL  counts.time_wait: 1, want ≥ 100" in out
    assert "FAIL  close.active_closer: 1 of 1 connection(s) not server" in out
    # Evidence: the state history with packet ids, and the client's FIN in the timeline.
    assert "client: SYN_SENT(#0) → ESTABLISHED(#1)" in out
    assert any("packet #" in line and "c→s [F.]" in line for line in out.splitlines())
    assert out.splitlines()[-1] == "3 rule(s): 0 passed, 3 failed"
    path = rules(tmp_path, FAILING.replace("[counts]\n", "[counts]\nresets = 0\n"))
    quiet = wirecorr("check", "-q", str(recording), "--expect", str(path))
    assert quiet.returncode == 1 and "PASS" not in quiet.stdout and "FAIL  counts.connections" in quiet.stdout


def test_missing_link_names_the_call(recording: Path, tmp_path: Path) -> None:
    # Both connected sockets close with a FIN: a rule wanting RSTs fails on each close and
    # says which links the calls have instead; the listener's close implies nothing.
    text = '[links]\nevery = ["recvfrom -> eof-fin", "close -> close-rst"]'
    done = wirecorr("check", str(recording), "--expect", str(rules(tmp_path, text)))
    assert done.returncode == 1
    assert "PASS  links.every: recvfrom -> eof-fin: 1 call(s)" in done.stdout
    assert "FAIL  links.every: close -> close-rst: 2 of 2 call(s) without a close-rst link" in done.stdout
    assert done.stdout.count(" close: links close-fin") == 2
    assert sum("syscall" in line and " close(" in line for line in done.stdout.splitlines()) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[counts\nconnections = 1", "not valid TOML: "),
        ('[findings]\nno = ["close_wait_lek"]', "findings.no: unknown finding kind 'close_wait_lek' (known: "),
        ("[counts]\nretransmissions = {max = -1}", "counts.retransmissions: max must be a non-negative number"),
        ("[counts]\nretransmission = 0", "counts.retransmission: unknown count (known: "),
        ("[counts.links]\nwrite-date = 1", "counts.links.write-date: unknown link kind 'write-date'"),
        (
            '[links]\nevery = ["accept4 => accept-ack"]',
            'links.every: accept4 => accept-ack: want "SYSCALL -> LINK-KIND"',
        ),
        ("[max_delay_ms]\nwrite-data = true", "max_delay_ms.write-data: want milliseconds"),
        ('[close]\nfinal_state.server = "TIMEWAIT"', "close.final_state.server: unknown TCP state 'TIMEWAIT'"),
        ("[expect]\nx = 1", "expect: unknown section"),
        ("", "no rules"),
    ],
)
def test_bad_rules_exit_2_one_line(recording: Path, tmp_path: Path, text: str, message: str) -> None:
    path = rules(tmp_path, text)
    done = wirecorr("check", str(recording), "--expect", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"wirecorr: {path}: ") and message in line, line


def test_bad_input_exit_2(tmp_path: Path) -> None:
    path = rules(tmp_path, "[counts]\nconnections = 0")
    missing = wirecorr("check", str(tmp_path / "nope.pcapng"), "--expect", str(path))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nope.pcapng" in missing.stderr
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    bad = wirecorr("check", str(junk), "--expect", str(path))
    assert bad.returncode == 2 and "junk.pcap" in bad.stderr
