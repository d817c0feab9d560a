"""The compiled JSON records (_core/records.pyx) against the reference, `dumps` of each
record's dict: the same bytes for any syscall or link, whatever orjson refuses."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirecorr.errors import WirecorrError
from wirecorr.json_codec import dumps
from wirecorr.model import FdInfo, Link, Syscall
from wirecorr.views import json_report
from wirecorr.views.json_report import syscall_record

REPO = Path(__file__).resolve().parent.parent

# Lone surrogates (os.fsdecode of an undecodable name), control characters, quotes,
# backslashes, non-ASCII: every branch of the string escaping and its fallback.
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(
    ["", "read", 'a"b\\c', "\x00\x1f\x7f\t\n\r\b\f", "é\u2028😀", "\ud800", "127.0.0.1:80"]
)
# Beyond 64 bits either way, and the edges of orjson's range.
INTS = st.integers() | st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1])
SCALARS = st.none() | st.booleans() | INTS | TEXT | st.floats()
KEYS = TEXT | st.integers(0, 3)  # an int key makes orjson give way to the standard library
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple) | st.dictionaries(KEYS, inner, max_size=3)
    ),
    max_leaves=8,
)
OPT_INT = st.none() | INTS
OPT_TEXT = st.none() | TEXT


class SubSyscall(Syscall):
    """A class the encoder does not read the slots of: the reference writes it."""

    __slots__ = ()


FDINFOS = st.none() | st.builds(FdInfo, TEXT, OPT_TEXT, OPT_TEXT, OPT_TEXT, OPT_INT)
SYSCALLS = st.sampled_from([Syscall, Syscall, Syscall, SubSyscall]).flatmap(
    lambda cls: st.builds(
        cls,
        id=INTS,
        pid=INTS,
        tid=INTS,
        name=TEXT,
        enter_ns=INTS,
        args=st.dictionaries(TEXT, VALUES, max_size=4) | st.dictionaries(KEYS, VALUES, max_size=2) | VALUES,
        exit_ns=OPT_INT,
        ret=OPT_INT | SCALARS,
        errno=OPT_TEXT,
        fd=OPT_INT,
        fdinfo=FDINFOS,
        ret_fdinfo=FDINFOS,
        nbytes=OPT_INT,
        data=st.none() | st.binary(max_size=70) | st.binary(max_size=4).map(bytearray),
        msg_lens=st.none() | st.lists(INTS, max_size=4) | VALUES,
    )
)
LINKS = st.builds(
    Link, id=INTS, kind=TEXT, syscall=INTS, packets=st.lists(INTS, max_size=5) | VALUES, delay_ns=OPT_INT, note=OPT_TEXT
)


def _outcome(encode: json_report.Encoder, items: list[Any]) -> tuple[bytes, list[int]] | type[BaseException]:
    buf, sizes = bytearray(), []
    try:
        encode(items, buf, sizes)
    except Exception as e:  # the reference raises for a value neither JSON encoder takes
        return type(e)
    return bytes(buf), sizes


def _encoders(kind: str) -> tuple[json_report.Encoder, json_report.Encoder]:
    compiled = json_report.StreamWriter(compiled=True)
    reference = json_report.StreamWriter(compiled=False)
    name = f"_encode_{kind}"
    return getattr(compiled, name), getattr(reference, name)


@settings(max_examples=400)
@given(st.lists(SYSCALLS, max_size=4))
def test_syscall_records_are_the_references_bytes(calls: list[Syscall]) -> None:
    compiled, reference = _encoders("calls")
    expected = _outcome(reference, calls)
    assert _outcome(compiled, calls) == expected
    if not isinstance(expected, type):
        assert expected[0] == b"".join(dumps(syscall_record(sc)) + b"," for sc in calls)


@settings(max_examples=200)
@given(st.lists(LINKS, max_size=4))
def test_link_records_are_the_references_bytes(links: list[Link]) -> None:
    compiled, reference = _encoders("links")
    assert _outcome(compiled, links) == _outcome(reference, links)


def test_a_batch_longer_than_the_scratch_buffer() -> None:
    """Records spill from the encoder's buffer to the run's mid-batch."""
    calls = [
        Syscall(i, 7, 7, "write", 10**18 + i, {"fd": 4, "count": 4096}, fd=4, data=bytes(range(256)) * 3, nbytes=i)
        for i in range(2000)
    ]
    compiled, reference = _encoders("calls")
    assert _outcome(compiled, calls) == _outcome(reference, calls)


def test_a_missing_build_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    monkeypatch.setitem(sys.modules, "wirecorr._core.records", None)
    with pytest.raises(WirecorrError, match="not built"):
        json_report.StreamWriter()


def test_pure_selects_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIRECORR_PURE", "1")
    monkeypatch.setitem(sys.modules, "wirecorr._core.records", None)
    writer = json_report.StreamWriter()
    assert writer._encode_calls.func is json_report._encode_each  # type: ignore[attr-defined]


def test_the_compiled_build_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    from wirecorr._core import records

    assert records.__file__.endswith(".so"), records.__file__
    assert json_report.StreamWriter()._encode_calls.func is records.encode_syscalls  # type: ignore[attr-defined]


class _Stdout(io.TextIOWrapper):
    """A text stream over bytes, as sys.stdout is."""


@pytest.mark.parametrize("encoding", ["utf-8", "UTF8", "latin-1"])
def test_records_go_to_a_utf8_streams_buffer_as_text_would(encoding: str) -> None:
    """Bytes to the buffer of a UTF-8 stream, text to any other: the file is the same as
    if the stream had encoded each piece, and text written before and after keeps its place."""
    pieces = [b'{"a":"\xc3\xa9"},{"b":1}', b'{"c":"x"}']
    raw = io.BytesIO()
    out = _Stdout(raw, encoding=encoding, errors="replace")
    out.write("[é")
    json_report._write_encoded(out, iter(pieces))
    out.write("]")
    out.flush()
    assert raw.getvalue() == ("[é" + ",".join(p.decode() for p in pieces) + "]").encode(encoding, "replace")
