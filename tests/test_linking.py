"""`record`'s linking pass (engine/linking.py) streams the recording: the file it writes is
the whole-analysis rewrite's (recording/annotate.py `rewrite`, the reference), and its
memory follows the connections open at a time, not the recording's length."""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers import REPO, peak_kb, stripped, synth_echo

from wirecorr.engine import streaming
from wirecorr.engine.ingest import analyze_file
from wirecorr.engine.linking import annotate
from wirecorr.recording import annotate as an
from wirecorr.recording import format as fmt
from wirecorr.recording import read_recording

# Merged recordings are not `record`'s output: they have no linking pass.
CAPTURES = sorted(p for p in (REPO / "captures").glob("*.pcapng") if "two-hosts" not in p.name)


def _whole(path: Path) -> an.Annotation:
    session = analyze_file(str(path))
    assert session.error is None
    return an.rewrite(str(path), session.correlator.links, session.findings, session.syscall)


def _parts(path: Path) -> tuple[list[bytes], Counter[str]]:
    """The file's blocks but its link records, in order (packets with their comments, the
    finding records); its links as a multiset (the pass writes them in the order they
    became final, the reference in id order)."""
    blocks = []
    with path.open("rb") as f:
        for btype, block in an.iter_blocks(f, str(path)):
            if not (btype == fmt.BT_CUSTOM and an._record_tag(block) in (fmt.TAG_LINK, fmt.TAG_LINKS)):
                blocks.append(block)
    return blocks, Counter(repr(link) for link in read_recording(str(path)).links)


def _same_as_the_whole_rewrite(original: Path, tmp_path: Path) -> an.Annotation | None:
    streamed, whole = tmp_path / "streamed.pcapng", tmp_path / "whole.pcapng"
    shutil.copyfile(original, streamed)
    shutil.copyfile(original, whole)
    got = annotate(str(streamed))
    expected = _whole(whole)
    assert got == expected
    assert _parts(streamed) == _parts(whole)
    return got


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.stem)
def test_the_pass_writes_what_the_whole_rewrite_writes(capture: Path, tmp_path: Path) -> None:
    original = tmp_path / "original.pcapng"
    stripped(capture, original)
    got = _same_as_the_whole_rewrite(original, tmp_path)
    assert got is not None
    if capture.stem != "handshake-echo":  # recorded before links were written into the file
        assert got.links == len(read_recording(str(capture)).links)


@pytest.mark.parametrize("end", ["fin", "rst", "rst-open"])
def test_a_long_connection_settled_as_it_goes_is_linked_as_a_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    """One connection of 20k round trips: its data calls leave the session while it is open
    (settled in spilled chunks), their links come out batch by batch, and a packet's
    comments from links of different batches still come in link id order. Ended by an RST,
    the reset finding brings the calls back."""
    monkeypatch.setattr(streaming._Spill, "CHUNK", 1000)
    path = tmp_path / f"{end}.pcapng"
    synth_echo().write(path, 20_000, 20_000, end=end)
    got = _same_as_the_whole_rewrite(path, tmp_path)
    assert got is not None and got.links > 60_000 and got.packets > 20_000


def test_the_pass_leaves_a_fifo_alone(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert annotate(str(fifo)) is None


# The pass, or the whole-analysis rewrite it replaced, on a copy of the recording.
_PASS = """
from wirecorr.engine.ingest import analyze_file
from wirecorr.engine.linking import annotate
from wirecorr.recording.annotate import rewrite
if sys.argv[2] == "stream":
    annotate(sys.argv[1])
else:
    s = analyze_file(sys.argv[1])
    rewrite(sys.argv[1], s.correlator.links, s.findings, s.syscall)
"""


def _peak_kb(path: Path, how: str, tmp_path: Path) -> int:
    copy = tmp_path / f"{how}-{path.name}"
    shutil.copyfile(path, copy)
    return peak_kb(_PASS, str(copy), how)


def test_the_pass_memory_does_not_grow_with_the_recording(tmp_path: Path) -> None:
    """A memory-shape assertion, not a timing one: on one connection open from start to
    end (bench/correlate's shape), 4x the round trips must not cost the whole analysis's
    growth."""
    synth = synth_echo()
    small, large = tmp_path / "small.pcapng", tmp_path / "large.pcapng"
    synth.write(small, 15_000, 15_000)
    synth.write(large, 60_000, 60_000)
    grow_stream = _peak_kb(large, "stream", tmp_path) - _peak_kb(small, "stream", tmp_path)
    grow_whole = _peak_kb(large, "whole", tmp_path) - _peak_kb(small, "whole", tmp_path)
    print(f"growth 15k → 60k round trips: linking pass {grow_stream} KB, whole {grow_whole} KB", file=sys.stderr)
    assert grow_whole > 100_000  # the whole analysis holds every call: the test can tell
    assert grow_stream < grow_whole / 3
