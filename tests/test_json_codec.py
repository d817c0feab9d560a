"""wirecorr.json_codec against the standard library: the same values back, whatever orjson refuses."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from wirecorr.json_codec import dumps, loads

# Text with lone surrogates is what os.fsdecode makes of undecodable file names.
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(VALUES)
def test_round_trip_equals_the_value(value: object) -> None:
    assert loads(dumps(value)) == value


@given(VALUES)
def test_reads_what_the_standard_library_wrote(value: object) -> None:
    assert loads(json.dumps(value).encode()) == value


def test_integers_beyond_64_bits_stay_integers() -> None:
    for n in (2**64, 2**64 - 1, -(2**63) - 1, -(2**63), 10**30, -(10**30)):
        assert loads(dumps({"n": n})) == {"n": n}
        assert isinstance(loads(dumps(n)), int)


def test_lone_surrogates_survive() -> None:
    name = b"caf\xe9.pcap".decode("utf-8", "surrogateescape")
    assert loads(dumps([name])) == [name]


def test_not_json_is_a_value_error() -> None:
    for bad in (b"{", b"nope", b"\xff\xfe", b'{"a":1,}'):
        try:
            loads(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} parsed")
