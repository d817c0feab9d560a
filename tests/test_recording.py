"""The Recording file: lossless records, a capture tshark opens, 0600, and SIGKILL survival."""

from __future__ import annotations

import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import free_port
from hypothesis import given, settings
from hypothesis import strategies as st

from wirecorr.model import ACK, PSH, SYN, FdInfo, Link, Syscall
from wirecorr.recording import RecordingWriter, read_recording
from wirecorr.recording import format as fmt
from wirecorr.sources.packet_decode import LINKTYPE_RAW

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")

# -- strategies --------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=40)
)
keys = st.text(max_size=8) | st.integers(-5, 5)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
opt_text = st.none() | st.text(max_size=30)
opt_int = st.none() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
# Timestamps and delays: nanoseconds within ±2^62 (docs/recording-format.md).
opt_ns = st.none() | st.integers(min_value=-(2**62), max_value=2**62)
fdinfos = st.none() | st.builds(
    FdInfo,
    kind=st.sampled_from(["tcp", "tcp6", "udp", "unix", "file", "pipe", "unknown"]),
    local=opt_text,
    remote=opt_text,
    path=opt_text,
    inode=opt_int,
)
syscalls = st.builds(
    Syscall,
    id=st.integers(0, 2**40),
    pid=st.integers(1, 2**22),
    tid=st.integers(1, 2**22),
    name=st.text(min_size=1, max_size=12),
    enter_ns=st.integers(0, 2**62),
    args=st.dictionaries(st.text(max_size=10), values, max_size=5),
    exit_ns=opt_ns,
    ret=opt_int,
    errno=st.none() | st.sampled_from(["EAGAIN", "ECONNREFUSED", "EPIPE"]),
    fd=st.none() | st.integers(-100, 2**20),
    fdinfo=fdinfos,
    ret_fdinfo=fdinfos,
    nbytes=opt_int,
    data=st.none() | st.binary(max_size=64),
    msg_lens=st.none() | st.lists(st.integers(0, 2**31), max_size=5),
)
links = st.builds(
    Link,
    id=st.integers(0, 2**40),
    kind=st.sampled_from(["connect-syn", "write-data", "read-data", "close-rst"]),
    syscall=st.integers(0, 2**40),
    packets=st.lists(st.integers(0, 2**40), max_size=6),
    delay_ns=opt_ns,
    note=opt_text,
)


def tcp_frame(sport: int, dport: int, flags: int, seq: int, payload: bytes = b"") -> bytes:
    """A raw-IP (LINKTYPE_RAW) IPv4/TCP frame: enough for tshark to dissect and for decode_packet."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 0x50, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, b"\x7f\0\0\1", b"\x7f\0\0\1")
    return ip + tcp


def write_sample(path: Path, scs: list[Syscall], lks: list[Link]) -> list[bytes]:
    frames = [tcp_frame(40000, 80, SYN, 1), tcp_frame(40000, 80, PSH | ACK, 2, b"hello!")]
    with RecordingWriter(str(path)) as w:
        w.write_header({"command": ["demo", "x"], "pids": [42], "interface": "lo"})
        w.write_packet(1_700_000_000_000_000_001, frames[0], len(frames[0]), LINKTYPE_RAW, iface_name="lo")
        for sc in scs:
            w.write_syscall(sc)
        comment = fmt.link_comment(Syscall(1, 42, 42, "write", 0, fd=5, nbytes=6), 42_000)
        w.write_packet(1_700_000_000_000_000_002, frames[1], len(frames[1]), LINKTYPE_RAW, comment=comment)
        w.write_process("exit", 42, 0, 5)
        w.write_links(lks)
    return frames


# -- round trips -------------------------------------------------------------------


@given(values)
def test_value_encoding_round_trips(value: object) -> None:
    assert fmt.decode_value(fmt.encode_value(value)) == value


@given(syscalls)
def test_syscall_record_round_trips(sc: Syscall) -> None:
    tag, payload = fmt.decode_record(fmt.encode_record(fmt.TAG_SYSCALL, fmt.syscall_to_dict(sc)) + b"\0\0")
    assert tag == fmt.TAG_SYSCALL
    back = fmt.syscall_from_dict(payload)
    assert back == sc
    assert type(back.data) is type(sc.data)


@given(links)
def test_link_record_round_trips(link: Link) -> None:
    assert fmt.link_from_dict(fmt.decode_record(fmt.encode_record(fmt.TAG_LINK, fmt.link_to_dict(link)))[1]) == link


@settings(max_examples=25, deadline=None)
@given(st.lists(syscalls, max_size=6), st.lists(links, max_size=4))
def test_file_round_trip(tmp_path_factory: pytest.TempPathFactory, scs: list[Syscall], lks: list[Link]) -> None:
    path = tmp_path_factory.mktemp("rt") / "rec.pcapng"
    frames = write_sample(path, scs, lks)
    rec = read_recording(str(path))
    assert rec.is_recording and rec.complete and not rec.truncated
    assert rec.syscalls == sorted(scs, key=lambda sc: (sc.enter_ns, sc.id))
    assert rec.links == lks
    assert rec.meta["command"] == ["demo", "x"] and rec.meta["format"] == fmt.FORMAT_VERSION
    assert rec.processes == [{"event": "exit", "pid": 42, "info": 0, "ts_ns": 5}]
    assert rec.summary is not None and rec.summary["syscalls"] == len(scs)
    packets = list(rec.packets())
    assert [p.frame for p in packets] == frames
    assert [p.ts_ns for p in packets] == [1_700_000_000_000_000_001, 1_700_000_000_000_000_002]
    assert packets[1].comment == "write(fd=5, 6 B) pid 42 +42µs"
    assert packets[1].payload == b"hello!"


def test_link_comment_format() -> None:
    sc = Syscall(7, 1234, 1235, "connect", 0, fd=3, errno="ECONNREFUSED")
    assert fmt.link_comment(sc, 51_900) == "connect(fd=3) = ECONNREFUSED pid 1234 tid 1235 +51µs"
    assert fmt.link_comment(Syscall(8, 9, 9, "sendmmsg", 0, fd=4, nbytes=30), -1_250_000) == (
        "sendmmsg(fd=4, 30 B) pid 9 -1.250ms"
    )
    assert fmt.format_delay(2_003_000_000) == "+2.003s"


def test_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.pcapng"
    with RecordingWriter(str(path)) as w:
        w.write_header({"format": fmt.FORMAT_VERSION + 1})
    with pytest.raises(Exception, match="newer than this wirecorr reads"):
        read_recording(str(path))


# -- Wireshark compatibility -------------------------------------------------------


def test_tshark_opens_recording(tmp_path: Path) -> None:
    path = tmp_path / "rec.pcapng"
    write_sample(
        path, [Syscall(1, 42, 42, "write", 10, fd=5, nbytes=6, data=b"hello!")], [Link(1, "write-data", 1, [1])]
    )
    out = subprocess.run(
        ["tshark", "-r", str(path), "-Y", "frame.interface_id", "-T", "fields",
         "-e", "frame.number", "-e", "tcp.flags.syn", "-e", "tcp.len", "-e", "frame.comment"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    rec = read_recording(str(path))
    assert [int(r[0]) for r in rows] == list(rec.frame_numbers)
    assert [r[1:3] for r in rows] == [["1", "0"], ["0", "6"]]
    assert rows[1][3] == "write(fd=5, 6 B) pid 42 +42µs"
    info = subprocess.run(["capinfos", "-c", str(path)], capture_output=True, text=True, timeout=30, check=True)
    assert "Number of packets:   2" in info.stdout


def test_plain_captures_read_as_recordings(tmp_path: Path) -> None:
    from loopback_capture import LoopbackCapture

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    path = tmp_path / "plain.pcap"
    with LoopbackCapture(path, bpf=f"tcp port {port}") as cap:
        cli = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        cli.close()
        conn.close()
        packets = cap.stop(until=lambda ps: sum(1 for p in ps if p.flags & 0x01) >= 2)
    srv.close()
    rec = read_recording(str(path))
    assert not rec.is_recording and rec.syscalls == [] and rec.meta == {}
    assert rec.packet_count == len(packets) >= 5
    assert [p.ts_ns for p in rec.packets()] == [p.ts_ns for p in packets]


# -- files on disk -----------------------------------------------------------------


def test_mode_0600_even_over_existing_file(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.pcapng"
    RecordingWriter(str(fresh)).close()
    old = tmp_path / "old.pcapng"
    old.write_bytes(b"x" * 100)
    old.chmod(0o644)
    RecordingWriter(str(old)).close()
    for path in (fresh, old):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_truncation_point_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "rec.pcapng"
    write_sample(path, [Syscall(i, 42, 42, "read", 100 + i, fd=5) for i in range(3)], [])
    data = path.read_bytes()
    whole = read_recording(str(path))
    cut = tmp_path / "cut.pcapng"
    seen_syscalls = 0
    for end in range(28, len(data)):
        cut.write_bytes(data[:end])
        rec = read_recording(str(cut))
        assert not rec.complete
        assert len(rec.syscalls) >= seen_syscalls
        seen_syscalls = len(rec.syscalls)
        assert rec.syscalls == whole.syscalls[: len(rec.syscalls)]
        assert len(list(rec.packets())) == rec.packet_count
    assert seen_syscalls == 3


def test_writer_flushes_within_a_second(tmp_path: Path) -> None:
    """What is written reaches the file within the flush interval, with no close()."""
    path = tmp_path / "rec.pcapng"
    code = (
        "import sys, time\n"
        "from wirecorr.recording import RecordingWriter\n"
        "from wirecorr.model import Syscall\n"
        "w = RecordingWriter(sys.argv[1])\n"
        "w.write_header({})\n"
        "for i in range(10**6):\n"
        "    w.write_syscall(Syscall(i, 1, 1, 'getpid', time.time_ns()))\n"
        "    time.sleep(0.001)\n"
    )
    proc = subprocess.Popen([PYTHON, "-c", code, str(path)])
    try:
        time.sleep(2.0)
    finally:
        killed_ns = time.time_ns()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    rec = read_recording(str(path))
    assert not rec.complete
    assert rec.syscalls and rec.syscalls[-1].enter_ns > killed_ns - 1_500_000_000


TALKER = r"""
import socket, sys, threading, time
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
def echo():
    conn, _ = srv.accept()
    while data := conn.recv(100):
        conn.sendall(data)
threading.Thread(target=echo, daemon=True).start()
cli = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
deadline = time.monotonic() + 8
while time.monotonic() < deadline:
    cli.sendall(b"ping")
    cli.recv(100)
    time.sleep(0.05)
"""


def kill_if_ours(pid: int, marker: str) -> None:
    """The tracer's PTRACE_O_EXITKILL should already have ended it; kill it only if that pid is still our program."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if marker.encode() in f.read():
                os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        pass


@pytest.mark.slow
def test_sigkill_of_wirecorr_record_leaves_a_readable_file(tmp_path: Path) -> None:
    pytest.importorskip("wirecorr.sources.tracer", reason="the ptrace tracer has not landed yet")
    out = tmp_path / "killed.pcapng"
    port = free_port()
    cmd = [PYTHON, "-m", "wirecorr", "record", "-o", str(out), "-i", "lo", "-f", f"tcp port {port}",
           "--", sys.executable, "-c", TALKER, str(port)]  # fmt: skip
    rec_proc = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE)
    talker_pid = None
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and talker_pid is None:
            time.sleep(0.1)
            if out.exists() and out.stat().st_size > 100:
                talker_pid = read_recording(str(out)).meta.get("pids", [None])[0]
        assert talker_pid is not None, "the recording never got its header"
        time.sleep(2.5)
        killed_ns = time.time_ns()
        rec_proc.send_signal(signal.SIGKILL)
        rec_proc.wait(timeout=10)
    finally:
        if rec_proc.poll() is None:
            rec_proc.kill()
            rec_proc.wait(timeout=10)
        if talker_pid is not None:
            kill_if_ours(talker_pid, 'cli.sendall(b"ping")')
    rec = read_recording(str(out))
    # Format 2: the syscalls came from blocks of columns, each flushed whole within the second.
    assert not rec.complete and rec.meta["format"] == 2
    packets = [p for p in rec.packets() if port in (p.sport, p.dport)]
    assert packets and packets[-1].ts_ns > killed_ns - 1_500_000_000
    sends = [sc for sc in rec.syscalls if sc.pid == talker_pid and sc.name in ("sendto", "write", "send")]
    assert sends and sends[-1].enter_ns > killed_ns - 1_500_000_000
    # Each 4-byte send (ping or echo) is one segment; all but the last few made it into the file.
    data_packets = [p for p in packets if p.payload_len == 4]
    assert len(sends) - 3 <= len(data_packets) <= len(sends) + 3


def test_syscall_block_is_the_generic_encoding() -> None:
    """The recorder's direct encoder must write exactly what the generic record path writes."""
    from wirecorr.model import FdInfo, Syscall
    from wirecorr.recording import format as fmt

    calls = [
        Syscall(1, 10, 11, "close", 5, {}),
        Syscall(
            2, 10, 10, "sendmmsg", 7, {"fd": 3, "vlen": 2, "timeout": (1, 2), "$odd": {1: b"x"}}, 9, 2, None, 3,
            FdInfo("udp", "127.0.0.1:5", "127.0.0.1:6"), None, 12, b"\x00\xffab", [5, 7],
        ),
        Syscall(3, 10, 10, "connect", 8, {"addr": "[::1]:80"}, None, None, "EINPROGRESS"),
    ]  # fmt: skip
    for sc in calls:
        block = fmt.syscall_block(sc)
        assert block == fmt.custom_block(fmt.TAG_SYSCALL, fmt.syscall_to_dict(sc))
        tag, payload = fmt.decode_record(block[12:-4])
        assert tag == fmt.TAG_SYSCALL and fmt.syscall_from_dict(payload) == sc
