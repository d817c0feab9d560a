"""Wireshark's display-filter fields and operators in the TUI, judged against tshark itself.

A filter carried over from Wireshark must select the same packets in wirecorr: each case
runs the filter over every row of a shipped capture and compares the packets it keeps
with the frames `tshark -Y` keeps (custom blocks aside: tshark counts them as frames).
"""

from __future__ import annotations

import subprocess

import pytest
from tui_helpers import REPO, SIZE, make_app, settle, sync

from wirecorr.engine.session import Session
from wirecorr.views.tui.display_filter import FilterError, compile_filter
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.loader import FileLoader
from wirecorr.views.tui.packets import LivePackets
from wirecorr.views.tui.row_text import row_text
from wirecorr.views.tui.rows import is_syscall_ref

CASES = {
    "handshake-echo": [
        "ip.addr == 127.0.0.1",
        "ip.src == 127.0.0.0/8 && tcp.srcport == 4444",
        "tcp.port in {4444, 80}",
        "tcp.flags.syn == 1",
        "tcp.flags.fin == 1 && tcp.flags.ack == 1",
        'frame contains "hello"',
        'tcp.payload contains "world"',
        "frame.number in {219..221, 244}",
        "tcp.len > 0 || tcp.flags.syn == 1",
        "!(tcp.dstport == 4444)",
        'tcp.payload matches "^w.r"',
    ],
    "lab-retransmit": ["tcp.analysis.retransmission", "tcp.analysis.flags", "tcp.stream == 0", "tcp.len ge 1000"],
    "lab-zero-window": ["tcp.analysis.zero_window", "tcp.analysis.window_update", "tcp.analysis.zero_window_probe"],
    "lab-udp-vs-tcp": [
        "udp",
        "udp.port in {9000..9100}",
        "tcp && tcp.stream == 0",
        "udp.stream == 0",
        "ip.dst == 127.0.0.1",
    ],
    "lab-port-bomb": ["tcp.stream in {2, 5}", "tcp.flags.reset == 1", "tcp.analysis.reused_ports"],
}


def _index(name: str) -> EventIndex:
    index = EventIndex(Session(), LivePackets())
    loader = FileLoader(index, str(REPO / "captures" / f"{name}.pcapng"))
    while not loader.done:
        loader.step(1.0)
    index.flush()
    index.text_of = lambda ref: row_text(index, ref, False).plain
    return index


def _tshark(name: str, text: str) -> list[int]:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(REPO / "captures" / f"{name}.pcapng"), "-Y", f"({text}) && (tcp || udp)",
         "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [int(line) for line in out.split()]


@pytest.mark.parametrize("name", sorted(CASES))
def test_wireshark_filters_keep_the_packets_tshark_keeps(name: str) -> None:
    index = _index(name)
    packets = [ref for ref in index.rows.refs if not is_syscall_ref(ref)]
    for text in CASES[name]:
        pred = compile_filter(text).predicate
        ours = sorted(index.frame(ref >> 1) for ref in packets if pred(index, ref))
        assert ours == _tshark(name, text), text


def test_search_fields_reach_syscall_data_and_row_text() -> None:
    index = _index("handshake-echo")
    rows = list(index.rows.refs)

    def count(text: str) -> int:
        pred = compile_filter(text).predicate
        return sum(1 for ref in rows if pred(index, ref))

    assert count('data contains "hello"') == count('data contains "hel" and data matches "l+o"') > 2
    pred = compile_filter('syscall in {read write} && data contains "hello"').predicate
    assert {index.call(ref).name for ref in rows if pred(index, ref)} == {"read", "write"}
    assert count('text contains "pure-ack"') == 2
    assert count('syscall matches "^acc"') == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ip.addr == 300.1.1.1", "ip.addr wants an address"),
        ("tcp.flags.syn == 2", "tcp.flags.syn is a flag: use it alone, or == 1 / == 0"),
        ("tcp.port in {80", "expected '}'"),
        ('tcp.port contains "8"', "tcp.port is not text"),
        ("tcp.payload == 4", "tcp.payload takes contains or matches"),
        ('data matches "("', "bad regular expression"),
        ("syscall in {read nosuch}", "unknown syscall 'nosuch'"),
    ],
)
def test_wireshark_operator_errors(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message.replace("{", r"\{").replace("(", r"\(")):
        compile_filter(text)


def test_a_lone_field_is_named_for_the_column_path() -> None:
    assert compile_filter(" net ").lone_field == "net"
    assert compile_filter("packet").lone_field == "packet"
    assert compile_filter("net && net").lone_field is None
    assert compile_filter("!net").lone_field is None
    assert compile_filter("tcp.flags.syn == 1").lone_field is None


@pytest.mark.parametrize("text", ["net", "packet"])
@sync
async def test_the_column_path_keeps_the_rows_the_predicate_keeps(text: str) -> None:
    """`net` (the filter a session opens with) and `packet` are answered from the index's
    columns, both while rows arrive and when the filter is applied to every row; the same
    filter written so that it needs the predicate (`x && x`) must keep the same rows."""
    path = str(REPO / "captures" / "lab-port-bomb.pcapng")

    async def kept(written: str) -> tuple[list[int], list[int], int]:
        app = make_app(path, start_filter=written)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            assert app.matches is not None
            while_arriving = list(app.matches.refs)
            app.set_filter(written, by_user=False)
            await settle(pilot, app)
            return while_arriving, list(app.matches.refs), len(app.index.rows)

    columns = await kept(text)
    assert columns == await kept(f"{text} && {text}")
    arriving, applied, total = columns
    assert arriving == applied and 0 < len(applied) < total
