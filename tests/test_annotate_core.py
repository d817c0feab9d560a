"""The compiled packet comments (_core/comments.pyx) against the reference in
recording/annotate.py: the same options, the same rebuilt EPBs, the same rewritten file."""

from __future__ import annotations

import random
import shutil
import struct
import sys
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Any

import pytest
from helpers import stripped
from hypothesis import given, settings
from hypothesis import strategies as st

from wirecorr.engine.linking import annotate
from wirecorr.errors import WirecorrError
from wirecorr.model import Link, Syscall
from wirecorr.recording import annotate as an
from wirecorr.recording import format as fmt

REPO = Path(__file__).resolve().parent.parent
RECORDINGS = sorted(p for p in (REPO / "captures").glob("lab-*.pcapng") if "two-hosts" not in p.name)

TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=8) | st.sampled_from(
    ["read", "sendmmsg", "ECONNREFUSED", "é", "\ud800", "x" * 2000]
)
INTS = st.integers(-(2**70), 2**70) | st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**63, 1, True])
DELAYS = st.none() | INTS | st.integers(-999_999, 999_999) | st.sampled_from([-1_000_000, 1_000_000, 999, -999])
SYSCALLS = st.builds(
    Syscall,
    id=st.integers(0, 5),
    pid=INTS,
    tid=INTS | st.just(7),
    name=TEXT,
    enter_ns=st.just(0),
    fd=st.none() | INTS,
    nbytes=st.none() | INTS,
    errno=st.none() | TEXT,
)
LINKS = st.builds(
    Link,
    id=st.just(0),
    kind=st.just("write-data"),
    syscall=st.integers(0, 6),  # 6 names no call: no comment
    packets=st.lists(st.integers(0, 4), max_size=3),
    delay_ns=DELAYS,
)


def _outcome(run: Callable[[], Any]) -> Any:
    try:
        return run()
    except Exception as e:  # the reference raises for a comment that does not fit its option
        return type(e)


@settings(max_examples=400)
@given(st.lists(SYSCALLS, max_size=6), st.lists(LINKS, max_size=8))
def test_comment_options_are_the_references(calls: list[Syscall], links: list[Link]) -> None:
    by_id = {sc.id: sc for sc in calls}
    compiled, reference = an.comments(compiled=True), an.comments(compiled=False)
    expected = _outcome(lambda: reference.options(links, by_id.get))
    assert _outcome(lambda: compiled.options(links, by_id.get)) == expected
    if isinstance(expected, dict):
        for idx, texts in an.comments_by_packet(links, by_id.get).items():
            assert expected[idx] == b"".join(an._comment_option(t) for t in texts)


BATCHED_LINKS = st.lists(
    st.builds(
        Link,
        id=st.integers(0, 40),
        kind=st.just("write-data"),
        syscall=st.integers(0, 6),
        packets=st.lists(st.integers(0, 5), max_size=4),
        delay_ns=DELAYS,
    ),
    max_size=16,
    unique_by=lambda link: link.id,
)


@settings(max_examples=400)
@given(st.lists(SYSCALLS, max_size=6), BATCHED_LINKS, st.randoms(use_true_random=False))
def test_comments_from_batches_in_any_order_are_the_references(
    calls: list[Syscall], links: list[Link], rnd: random.Random
) -> None:
    """The streaming linking pass hands links over as connections become final: a packet's
    links (its write's and its read's) may come in any order across batches, and its
    options still come in link id order, as `comment_options` gives them for sorted links."""
    by_id = {sc.id: sc for sc in calls}
    expected = _outcome(lambda: an.comments(compiled=False).options(sorted(links, key=_ID), by_id.get))
    rnd.shuffle(links)
    cuts = sorted(rnd.sample(range(len(links) + 1), min(3, len(links) + 1)))
    batches = [links[a:b] for a, b in zip([0, *cuts], [*cuts, len(links)], strict=True)]
    for compiled in (True, False):

        def collect(compiled: bool = compiled) -> dict[int, bytes]:
            collector = an.comments(compiled=compiled).collector()
            for batch in batches:
                collector.add(batch, by_id.get)
            # What the rewrite asks: each packet's options, and how many have some.
            assert len(collector) == len(collector.options)
            assert collector.get(-1) is None and collector.get(10**6) is None
            return {idx: collector.get(idx) for idx in range(8) if collector.get(idx) is not None}

        assert _outcome(collect) == expected


_ID = attrgetter("id")


def _epb(caplen: int, data_len: int, options: list[tuple[int, bytes]], tail: bytes, total: int | None) -> bytes:
    """An EPB whose fields may disagree: caplen against the data, option lengths against
    their values, options after the end-of-options, a total that is not the length."""
    body = struct.pack("<IIIII", 0, 1, 2, caplen, caplen) + bytes(range(data_len % 256)) * (data_len // 256 + 1)
    body = body[: 20 + data_len] + b"\0" * (-data_len % 4)
    for code, value in options:
        body += struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
    body += tail
    length = 12 + len(body) if total is None else total
    return struct.pack("<II", fmt.BT_EPB, length) + body + struct.pack("<I", length)


EPBS = st.builds(
    _epb,
    caplen=st.integers(0, 80) | st.sampled_from([2**32 - 1, 2**31]),
    data_len=st.integers(0, 64).map(lambda n: n & ~3) | st.integers(0, 64),
    options=st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=9)), max_size=3),
    tail=st.sampled_from([b"", b"\0\0\0\0", b"\1\0\x40\0", b"\0\0\0\0\1\0\4\0abcd"]),
    total=st.none() | st.integers(12, 200),
)


@settings(max_examples=600)
@given(EPBS | st.binary(max_size=40), st.binary(max_size=20).map(lambda b: b + b"\0" * (-len(b) % 4)))
def test_rebuilt_epbs_are_the_references(block: bytes, options: bytes) -> None:
    compiled, reference = an.comments(compiled=True), an.comments(compiled=False)
    assert _outcome(lambda: compiled.apply(block, options)) == _outcome(lambda: reference.apply(block, options))


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
def test_the_rewrite_is_the_references(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = tmp_path / "original.pcapng"
    stripped(path, original)
    results = []
    for pure in ("", "1"):
        monkeypatch.setenv("WIRECORR_PURE", pure)
        copy = tmp_path / f"copy{pure}.pcapng"
        shutil.copyfile(original, copy)
        assert annotate(str(copy)) is not None
        results.append(copy.read_bytes())
    assert results[0] == results[1] != original.read_bytes()


def test_the_rewrite_reads_in_pieces_of_any_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces that cut blocks anywhere: the compiled copy stops at a cut block, the
    reference reads it, and the file is the same."""
    original = tmp_path / "original.pcapng"
    stripped(REPO / "captures" / "lab-multiplex.pcapng", original)
    results = []
    for read, pure in ((1 << 20, "1"), (100, ""), (4096, ""), (333, "")):
        monkeypatch.setattr(an, "_READ", read)
        monkeypatch.setenv("WIRECORR_PURE", pure)
        copy = tmp_path / f"copy{read}.pcapng"
        shutil.copyfile(original, copy)
        assert annotate(str(copy)) is not None
        results.append(copy.read_bytes())
    assert all(r == results[0] for r in results)


def test_iter_blocks_reads_blocks_longer_than_its_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(an, "_READ", 64)
    path = RECORDINGS[0]
    expected = path.read_bytes()
    with path.open("rb") as f:
        blocks = [block for _, block in an.iter_blocks(f, str(path))]
    assert b"".join(blocks) == expected and max(map(len, blocks)) > 64


def test_a_missing_build_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    monkeypatch.setitem(sys.modules, "wirecorr._core.comments", None)
    with pytest.raises(WirecorrError, match="not built"):
        an.comments()


def test_pure_selects_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIRECORR_PURE", "1")
    assert an.comments() == (an._comment_options, an._with_options, None, an.PacketCommentsReference)


def test_the_compiled_build_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    from wirecorr._core import comments

    assert comments.__file__.endswith(".so"), comments.__file__
    assert an.comments().options.func is comments.comment_options  # type: ignore[attr-defined]
