"""`wirecorr analyze` as a user runs it: shipped recording, strace + pcap input, filters, errors."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loopback_capture import LoopbackCapture
from pty_helpers import run_with_tty

from wirecorr.engine.ingest import diagnose, load_capture
from wirecorr.engine.session import Session
from wirecorr.model import FIN
from wirecorr.recording.reader import read_recording
from wirecorr.sources.syscalls.table import BY_ARCH, native_arch
from wirecorr.views import text_report

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "captures" / "handshake-echo.pcapng"


def wirecorr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wirecorr", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def tshark_conversations(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """tshark's `-z conv,tcp`: {(endpoint A, endpoint B): (frames A→B, frames B→A)}."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-q", "-z", "conv,tcp"], capture_output=True, text=True, check=True
    ).stdout
    convs = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+\S+\s+\S*\s*(\d+)\s+", line)
        if m:
            # tshark lists frames B→A first ("←" column), then A→B.
            convs[(m[1], m[2])] = (int(m[4]), int(m[3]))
    return convs


def test_shipped_recording_report_agrees_with_tshark_and_links_every_packet() -> None:
    result = wirecorr("analyze", str(SHIPPED), "--json", "--packets")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "wirecorr.analyze/2"
    (conn,) = doc["connections"]
    convs = tshark_conversations(SHIPPED)
    key = (conn["client"], conn["server"]) if (conn["client"], conn["server"]) in convs else None
    assert key is not None, (conn, convs)
    assert convs[key] == (conn["packets"]["client_to_server"], conn["packets"]["server_to_client"])
    # The nc story of the seed documents, as links.
    kinds = [link["kind"] for link in doc["links"]]
    for kind in ("connect-syn", "accept-ack", "write-data", "read-data", "eof-fin", "shutdown-fin"):
        assert kind in kinds, kinds
    syscalls = {sc["id"]: sc for sc in doc["syscalls"]}
    for link in doc["links"]:
        assert syscalls[link["syscall"]]["name"] in {"connect", "accept4", "write", "read", "shutdown", "close"}
    # Every packet of the connection is either linked or labelled kernel-only.
    assert all(p["label"] not in (None, []) for p in doc["packets"])
    # Each 6-byte write is linked to exactly the one segment that carried it.
    by_index = {p["index"]: p for p in doc["packets"]}
    for link in doc["links"]:
        if link["kind"] == "write-data":
            (segment,) = link["packets"]
            assert by_index[segment]["len"] == syscalls[link["syscall"]]["nbytes"] == 6


def test_text_report_tells_the_story() -> None:
    result = wirecorr("analyze", str(SHIPPED))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "the server closed first" in out
    assert "SYN_SENT → ESTABLISHED" in out
    assert re.search(r"accept4\(3<TCP:\[127\.0\.0\.1:4444\]>.*\) = 4<TCP:\[127\.0\.0\.1:4444->", out)
    # Frame numbers as Wireshark shows them: it counts the recording's Custom Blocks as frames too.
    handshake = ", ".join(str(n) for n in read_recording(str(SHIPPED)).frame_numbers[:3])
    assert handshake != "1, 2, 3"
    assert re.search(rf"L\d+\s+accept-ack\s+\d+ accept4\(3\)\s+↔ frames \[{handshake}\]", out)


def test_strace_log_and_pcap_are_linked(tmp_path: Path) -> None:
    """The user's own strace log and tcpdump file of an nc exchange, correlated."""
    pcap, log = tmp_path / "nc.pcap", tmp_path / "nc.strace"
    port = 4461
    script = (
        f"( sleep 0.3; printf 'world\\n' ) | timeout 5 nc -N -l 127.0.0.1 {port} > /dev/null & sleep 0.2; "
        f"( printf 'hello\\n'; sleep 0.3 ) | timeout 5 nc -N 127.0.0.1 {port}; wait"
    )
    with LoopbackCapture(pcap, f"tcp port {port}") as cap:
        subprocess.run(
            ["strace", "-f", "-ttt", "-T", "-yy", "-o", str(log), "sh", "-c", script], check=True, timeout=30
        )
        packets = cap.stop(until=lambda pkts: sum(1 for p in pkts if p.flags & FIN) >= 2 and pkts[-1].flags == 0x10)
    assert len(packets) >= 9
    result = wirecorr("analyze", "--strace", str(log), "--pcap", str(pcap), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    links = doc["links"]
    syscalls = {sc["id"]: sc for sc in doc["syscalls"]}
    data_links = [lk for lk in links if lk["kind"] in ("write-data", "read-data")]
    assert sorted(syscalls[lk["syscall"]]["data"] for lk in data_links) == sorted(
        [b"hello\n".hex(), b"hello\n".hex(), b"world\n".hex(), b"world\n".hex()]
    )
    assert {lk["kind"] for lk in links} >= {"connect-syn", "accept-ack", "eof-fin"}
    # The same log on standard input (strace writing to a pipe): the same document.
    argv = [sys.executable, "-m", "wirecorr", "analyze", "--strace", "-", "--pcap", str(pcap), "--json"]
    piped = subprocess.run(argv, input=log.read_bytes(), capture_output=True, timeout=120, cwd=ROOT)
    assert piped.returncode == 0, piped.stderr
    assert {**json.loads(piped.stdout), "sources": None} == {**doc, "sources": None}
    both = wirecorr("analyze", "--strace", "-", "-")
    assert both.returncode == 2 and both.stderr == "wirecorr: analyze: only one input can come from standard input\n"


def test_filter_keeps_frame_numbers(tmp_path: Path) -> None:
    result = wirecorr("analyze", str(SHIPPED), "--json", "--packets", "--filter", "tcp[13] or src port 4444")
    assert result.returncode == 2
    assert result.stderr.startswith("wirecorr: filter:")
    result = wirecorr("analyze", str(SHIPPED), "--json", "--packets", "--filter", "src port 4444")
    doc = json.loads(result.stdout)
    assert doc["packets_read"] == 11
    assert [p["dir"] for p in doc["packets"]] == ["s2c"] * doc["packets_analyzed"]
    # Frame numbers stay those of the file, as in Wireshark with a display filter.
    assert [p["index"] for p in doc["packets"]] == [1, 4, 5, 7, 10]


def test_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    result = wirecorr("analyze", str(tmp_path / "nope.pcap"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"wirecorr: {tmp_path / 'nope.pcap'}: No such file or directory"]


def test_standard_input_reads_like_the_file(tmp_path: Path) -> None:
    """`tcpdump -w - | wirecorr analyze -`, as tcpdump and tshark read `-r -`: the same
    report as from the file (recording half included), and damage named at the same byte."""

    def piped(data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
        argv = [sys.executable, "-m", "wirecorr", "analyze", "-", *args]
        return subprocess.run(argv, input=data, capture_output=True, timeout=120, cwd=ROOT)

    data = SHIPPED.read_bytes()
    from_file = json.loads(wirecorr("analyze", str(SHIPPED), "--json", "--packets").stdout)
    from_stdin = piped(data, "--json", "--packets")
    assert from_stdin.returncode == 0, from_stdin.stderr
    doc = json.loads(from_stdin.stdout)
    assert doc["sources"] == ["-"] and doc["links"]
    assert {**doc, "sources": None} == {**from_file, "sources": None}
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:-7])
    file_cut = wirecorr("analyze", str(cut))
    stdin_cut = piped(data[:-7])
    # Cut short, as a killed tcpdump leaves it: reported up to the cut, and exit 2.
    assert file_cut.returncode == stdin_cut.returncode == 2
    assert stdin_cut.stdout.decode() == file_cut.stdout.replace(str(cut), "-")
    assert stdin_cut.stderr.decode() == file_cut.stderr.replace(str(cut), "-")
    assert "file ends inside a record" in file_cut.stderr


def test_ctrl_c_on_a_tcpdump_pipeline_still_reports() -> None:
    """`tcpdump -w - | wirecorr analyze -`, then ctrl-c (which reaches both): tcpdump writes its
    last packets and closes the pipe, and wirecorr reports what came through."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: connecting is refused
    tcpdump = subprocess.Popen(
        # --immediate-mode: SIGINT does not drain tcpdump's ring, packets still in it are lost.
        ["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode", "-w", "-", f"tcp port {port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=False,
    )
    assert tcpdump.stdout is not None and tcpdump.stderr is not None
    reader = subprocess.Popen(
        [sys.executable, "-m", "wirecorr", "analyze", "-", "--json"],
        stdin=tcpdump.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    tcpdump.stdout.close()
    try:
        assert b"listening on" in tcpdump.stderr.readline()
        with socket.socket() as client, pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", port))
        deadline = time.monotonic() + 30
        while not _waits_on_stdin(reader.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _waits_on_stdin(reader.pid)  # so its ctrl-c handler is in place
        for proc in (reader, tcpdump):
            proc.send_signal(signal.SIGINT)
        out, err = reader.communicate(timeout=60)
    finally:
        for proc in (reader, tcpdump):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert reader.returncode == 0, err
    assert b"reading the pipe to its end" in err
    doc = json.loads(out)
    (conn,) = doc["connections"]
    assert conn["server"] == f"127.0.0.1:{port}" and conn["packets"]["server_to_client"] == 1  # the RST


def test_count_reads_only_the_first_packets() -> None:
    """-c N as tshark's: the first N packets, analysed as if the file ended there, and said so."""
    capture = ROOT / "captures" / "stray-rst-after-close.pcap"
    whole = json.loads(wirecorr("analyze", str(capture), "--json", "--packets").stdout)
    first = json.loads(wirecorr("analyze", "-c", "3", str(capture), "--json", "--packets").stdout)
    assert first["packets_read"] == 3 and whole["packets_read"] > 3
    assert [p["index"] for p in first["packets"]] == [p["index"] for p in whole["packets"][:3]]
    assert first["warnings"] == [f"stopped after the first 3 packets of {capture} (-c)"]
    everything = json.loads(wirecorr("analyze", "-c", "1000", str(capture), "--json", "--packets").stdout)
    assert everything == whole  # a count beyond the file changes nothing
    zero = wirecorr("analyze", "-c", "0", str(capture))
    assert zero.returncode == 2 and zero.stderr == "wirecorr: analyze: -c wants a positive number of packets\n"


def test_gzip_capture_reads_like_the_plain_one(tmp_path: Path) -> None:
    """`.pcapng.gz` as tshark reads it: the same report as the plain file, tshark's packet
    count, and damaged compression as one line (what came out before it is reported)."""
    data = SHIPPED.read_bytes()
    packed = gzip.compress(data)
    gz = tmp_path / "handshake-echo.pcapng.gz"
    gz.write_bytes(packed)
    plain = json.loads(wirecorr("analyze", str(SHIPPED), "--json", "--packets").stdout)
    result = wirecorr("analyze", str(gz), "--json", "--packets")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {**doc, "sources": None} == {**plain, "sources": None}
    # tshark counts the recording's syscall blocks as frames too: its TCP frames are the packets.
    tcp = ["-Y", "tcp", "-T", "fields", "-e", "frame.number"]
    frames = subprocess.run(["tshark", "-r", str(gz), *tcp], capture_output=True, check=True)
    assert doc["packets_read"] == len(frames.stdout.split()) == 11
    piped = subprocess.run(
        [sys.executable, "-m", "wirecorr", "analyze", "-", "--json"], input=packed, capture_output=True, cwd=ROOT
    )
    assert json.loads(piped.stdout)["connections"] == plain["connections"]
    cut = tmp_path / "cut.pcapng.gz"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    cut_result = wirecorr("analyze", str(cut))
    assert cut_result.returncode == 2
    (line,) = cut_result.stderr.splitlines()
    assert line.startswith(f"wirecorr: {cut}: gzip data cut short after ") and line.endswith(" bytes of capture")
    assert "packets read" in cut_result.stdout  # reported up to the cut, as for a cut plain file
    damaged = tmp_path / "damaged.pcapng.gz"
    damaged.write_bytes(packed[:40] + bytes(200) + packed[240:])
    bad = wirecorr("analyze", str(damaged))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.splitlines()) == 1 and "gzip data damaged after" in bad.stderr, bad.stderr


def _waits_on_stdin(pid: int) -> bool:
    """Blocked in read() on its stdin pipe (through any descriptor): all that came is read."""
    read_nr = next(nr for nr, name in BY_ARCH[native_arch() or 0].items() if name == "read")
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
        fd = int(fields[1], 16)
        return int(fields[0]) == read_nr and os.readlink(f"/proc/{pid}/fd/{fd}") == os.readlink(f"/proc/{pid}/fd/0")
    except (OSError, ValueError, IndexError):
        return False


def test_text_findings_are_grouped_and_long_groups_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fd-leak lab's recording (20 close_wait_leak, 9 connection_reset, 1 fd_exhaustion),
    with the per-kind limit lowered to 5 so that its two large groups are cut."""
    monkeypatch.setattr(text_report, "FINDINGS_PER_KIND", 5)
    session = Session()
    load_capture(session, str(ROOT / "captures" / "lab-fd-leak.pcapng"))
    diagnose(session)
    out = io.StringIO()
    text_report.write(session, out, notable=0)
    lines = out.getvalue().split("\nFindings ")[1].splitlines()
    assert lines[0] == "(30): fd_exhaustion 1, close_wait_leak 20, connection_reset 9"
    leaks = [f.connection for f in session.findings if f.kind == "close_wait_leak"]
    shown = [line for line in lines if line.startswith("  warning close_wait_leak: ")]
    assert len(shown) == 5 and sum("fd_exhaustion: " in line for line in lines) == 1
    rest = ", ".join(f"#{c}" for c in leaks[5:17]) + ", …"
    assert f"          … 15 more close_wait_leak (connections {rest}); --json lists them all" in lines
    assert any(line.startswith("          … 4 more connection_reset (connections #") for line in lines)
    assert len(lines) == 1 + 1 + 5 + 1 + 5 + 1


def test_progress_on_a_terminal_reads_to_the_end() -> None:
    """With stderr a terminal the progress line is drawn after each slice, the last one
    after the reader has closed its file: asking the file's size then was a traceback."""
    argv = [sys.executable, "-m", "wirecorr", "analyze", str(ROOT / "captures" / "lab-echo.pcapng")]
    status, err = run_with_tty(argv, stdin_tty=False, stderr_tty=True)
    assert (status, "Traceback" in err) == (0, False), err
