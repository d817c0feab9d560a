"""Links written into recordings: packet comments Wireshark shows, link and finding records, atomic rewrite."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ECHO_ONCE, free_port

from wirecorr.engine.ingest import diagnose, load_capture
from wirecorr.engine.linking import annotate
from wirecorr.engine.session import Session
from wirecorr.recording import format as fmt
from wirecorr.recording import read_recording
from wirecorr.recording.annotate import AnnotateError, iter_blocks

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")

pytestmark = pytest.mark.skipif(
    shutil.which("tcpdump") is None or shutil.which("tshark") is None, reason="needs tcpdump and tshark"
)

# The client sends 6 bytes, the server echoes them, the client closes first.


def record(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    port = free_port()
    cmd = [PYTHON, "-m", "wirecorr", "record", "-o", str(out), "-i", "lo", "-f", f"tcp port {port}", *extra]
    done = subprocess.run(
        [*cmd, "--", sys.executable, "-c", ECHO_ONCE, str(port)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done


def tshark_comments(path: Path) -> dict[int, list[str]]:
    """frame.number → comments, as Wireshark shows them."""
    cmd = ["tshark", "-r", str(path), "-Y", "frame.comment", "-T", "fields", "-E", "aggregator=|"]
    cmd += ["-e", "frame.number", "-e", "frame.comment"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    comments = {}
    for line in out.splitlines():
        number, _, text = line.partition("\t")
        comments[int(number)] = text.split("|")
    return comments


def test_record_writes_comments_tshark_shows(tmp_path: Path) -> None:
    out = tmp_path / "echo.pcapng"
    done = record(out)
    assert re.search(rf"wirecorr record: \d+ links on \d+ packets, \d+ findings -> {re.escape(str(out))}", done.stderr)
    assert (out.stat().st_mode & 0o777) == 0o600
    rec = read_recording(str(out))
    assert rec.complete and rec.links
    by_id = {sc.id: sc for sc in rec.syscalls}
    comments = tshark_comments(out)
    # Every link's syscall is named on each of its packets, Wireshark frame numbering.
    for link in rec.links:
        sc = by_id[link.syscall]
        for idx in link.packets:
            frame = rec.frame_numbers[idx]
            assert fmt.link_comment(sc, link.delay_ns) in comments[frame], (link, comments.get(frame))
    packets = list(rec.packets())
    (syn,) = [i for i, p in enumerate(packets) if p.flags & 0x12 == 0x02]
    syn_comments = comments[rec.frame_numbers[syn]]
    assert any(c.startswith("connect(fd=") for c in syn_comments)
    assert any(c.startswith("accept4(fd=") or c.startswith("accept(fd=") for c in syn_comments)
    data = [i for i, p in enumerate(packets) if p.payload == b"hello!"]
    assert len(data) == 2
    for idx in data:
        names = sorted(c.split("(")[0] for c in comments[rec.frame_numbers[idx]])
        assert names == ["recvfrom", "sendto"], comments[rec.frame_numbers[idx]]
        assert all(", 6 B) pid " in c for c in comments[rec.frame_numbers[idx]])


def test_annotation_is_lossless_and_matches_the_correlator(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pcapng"
    record(plain, "--no-annotate")
    assert tshark_comments(plain) == {}
    annotated = tmp_path / "annotated.pcapng"
    shutil.copy(plain, annotated)
    result = annotate(str(annotated))
    assert result is not None and result.links > 0
    before, after = read_recording(str(plain)), read_recording(str(annotated))
    assert not before.links
    for field in ("meta", "syscalls", "processes", "summary", "packet_count", "truncated"):
        assert getattr(after, field) == getattr(before, field), field
    for p, q in zip(before.packets(), after.packets(), strict=True):
        assert (p.ts_ns, p.frame, p.wirelen, p.iface) == (q.ts_ns, q.frame, q.wirelen, q.iface)
    session = Session()
    load_capture(session, str(plain))
    diagnose(session)
    assert after.links == session.correlator.links
    # Links and findings sit before the summary, which stays the last record.
    with open(annotated, "rb") as f:
        tags = [block[12:40].partition(b"\n")[0] for bt, block in iter_blocks(f, str(annotated)) if bt == fmt.BT_CUSTOM]
    # Format 2 (what record writes): the links in one block of columns, or a record each when few.
    link_tags = [t for t in tags if t in (b"link", b"links")]
    assert tags[-1] == b"summary" and (link_tags == [b"links"] or len(link_tags) == len(after.links))
    assert tags.index(link_tags[0]) > max(i for i, t in enumerate(tags) if t in (b"syscall", b"syscalls"))
    # The analysis of the annotated file is the analysis of the original.
    again = Session()
    load_capture(again, str(annotated))
    again.finish()
    assert again.correlator.links == session.correlator.links


def test_failed_annotation_leaves_the_file_alone(tmp_path: Path) -> None:
    out = tmp_path / "echo.pcapng"
    record(out)
    original = out.read_bytes()
    with pytest.raises(AnnotateError, match="already holds links"):
        annotate(str(out))
    assert out.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["echo.pcapng"]
    damaged = tmp_path / "cut.pcapng"
    damaged.write_bytes(original[: len(original) // 2 + 3])
    with pytest.raises(AnnotateError):
        annotate(str(damaged))
    assert damaged.read_bytes() == original[: len(original) // 2 + 3]
    assert sorted(os.listdir(tmp_path)) == ["cut.pcapng", "echo.pcapng"]
