"""`engine/link_table.LinkTable` is the list of links by id it replaced, however it was shed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirecorr.engine.link_table import LinkTable
from wirecorr.model import Link

ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.booleans()),
        st.tuples(st.just("forget"), st.integers(0, 400)),
        st.tuples(st.just("restore"), st.integers(0, 400)),
        st.tuples(st.just("shed"), st.integers(1, 40)),
    ),
    max_size=400,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(-450, 450), st.integers(-450, 450))
def test_the_table_reads_as_the_list_whatever_was_shed(steps: list[tuple[str, object]], lo: int, hi: int) -> None:
    table, plain = LinkTable(), []
    made: list[Link] = []
    for op, arg in steps:
        if op == "append":
            link = Link(len(plain), "write-data", len(plain), [], None, None) if arg else None
            if link is not None:
                made.append(link)
            table.append(link)
            plain.append(link)
        elif op in ("forget", "restore") and plain:
            i = int(arg) % len(plain)  # type: ignore[call-overload]
            value = None if op == "forget" else Link(i, "read-data", i, [], None, None)
            table[i] = value
            plain[i] = value
        elif op == "shed":
            table.shed(int(arg))  # type: ignore[call-overload]
    assert len(table) == len(plain)
    assert list(table) == plain and table == plain and plain == table
    assert table.held() == [link for link in plain if link is not None]
    assert [table[i] for i in range(len(plain))] == plain
    if plain:
        assert table[-1] is plain[-1]
    assert table[lo:hi] == plain[lo:hi]
    with pytest.raises(IndexError):
        table[len(plain)]


def test_shedding_keeps_a_window_of_slots_and_the_links_still_held() -> None:
    table = LinkTable()
    for i in range(10_000):
        table.append(Link(i, "write-data", i, [], None, None))
    for i in range(1, 10_000):
        if i != 5_000:
            table[i] = None
    table.shed(1_000)
    assert len(table.items) == 1_000 and table.base == 9_000
    assert table.old == {0: table[0], 5_000: table[5_000]}
    assert len(table) == 10_000 and table[4_999] is None
