"""Recording format 2: syscalls and links as Arrow column batches, exact round trips, the
same analysis as format 1, and format-1 files (every shipped capture) still read."""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from helpers import free_port
from hypothesis import given, settings
from hypothesis import strategies as st

from wirecorr.engine.ingest import analyze_file
from wirecorr.engine.session import Session
from wirecorr.errors import InputError, WirecorrError
from wirecorr.model import FdInfo, Link, Syscall
from wirecorr.recording import RecordingWriter, columns, read_recording
from wirecorr.recording import format as fmt
from wirecorr.recording.annotate import iter_blocks
from wirecorr.views import json_report

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
CAPTURES = sorted((REPO / "captures").glob("*.pcapng"))
# The captures recorded before format 2 (lab-slow-request.pcapng was recorded in format 2).
FORMAT1_CAPTURES = [p for p in CAPTURES if p.stem != "lab-slow-request"]

# -- strategies: what the tracer writes, and the odd values it might -------------------

INT64 = st.integers(-(2**63), 2**63 - 1)
NS = st.integers(-(2**62), 2**62)  # timestamps: format 1's schema and the columns' reader allow ±2^62
# Beyond int64 but within what format 1 records hold (an unsigned register): these rows
# leave the columns. Larger integers are refused by both formats' readers, except in args.
huge = st.integers(2**63, 2**64 - 1)
# Undecodable bytes in a file name become lone surrogates (os.fsdecode); UTF-8 cannot hold them.
surrogate_text = st.builds(lambda a, b: a + "\udcff" + b, st.text(max_size=4), st.text(max_size=4))
arg_scalars = st.none() | st.booleans() | INT64 | st.integers(2**63, 2**70) | st.floats() | st.text(max_size=8)
arg_scalars |= surrogate_text
arg_values = st.recursive(
    arg_scalars | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


def syscall_strategy(
    ints: st.SearchStrategy[int], text: st.SearchStrategy[str], ns: st.SearchStrategy[int] = NS
) -> st.SearchStrategy[Syscall]:
    opt_int = st.none() | ints
    opt_text = st.none() | text
    fdinfos = st.none() | st.builds(
        FdInfo,
        kind=st.sampled_from(["tcp", "tcp6", "udp", "unix", "file", "pipe"]) | text,
        local=opt_text,
        remote=opt_text,
        path=opt_text,
        inode=opt_int,
    )
    return st.builds(
        Syscall,
        id=ints,
        pid=ints,
        tid=ints,
        name=text,
        enter_ns=ns,
        args=st.dictionaries(st.text(max_size=6) | st.just("$bytes"), arg_values, max_size=4),
        exit_ns=st.none() | ns,
        ret=opt_int,
        errno=opt_text,
        fd=opt_int,
        fdinfo=fdinfos,
        ret_fdinfo=fdinfos,
        nbytes=opt_int,
        data=st.none() | st.binary(max_size=70),
        msg_lens=st.none() | st.lists(ints, max_size=4),
    )


# Rows the columns hold (any int64, any UTF-8 text; odd args are JSON's business) and rows
# they cannot (an integer beyond 64 bits or a lone surrogate somewhere), mixed half and half.
plain_syscalls = syscall_strategy(INT64, st.text(max_size=20))
odd_syscalls = syscall_strategy(INT64 | huge, st.text(max_size=20) | surrogate_text)
syscalls = plain_syscalls | odd_syscalls
links = st.builds(
    Link,
    id=INT64 | huge,
    kind=st.text(max_size=12) | surrogate_text,
    syscall=INT64,
    packets=st.lists(INT64, max_size=5) | st.lists(INT64 | huge, max_size=5),
    delay_ns=st.none() | NS,
    note=st.none() | st.text(max_size=20) | surrogate_text,
)


def blocks_of(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(tag, custom data) of each wirecorr Custom Block in a run of blocks."""
    pos = 0
    while pos < len(data):
        btype, total, pen = struct.unpack_from("<III", data, pos)
        assert btype == fmt.BT_CUSTOM and pen == fmt.PEN
        body = data[pos + 12 : pos + total - 4]
        yield body.partition(b"\n")[0].decode(), body
        pos += total


def decode_all(data: bytes) -> tuple[list[Syscall], list[Link], list[str]]:
    scs: list[Syscall] = []
    lks: list[Link] = []
    tags = []
    for tag, body in blocks_of(data):
        tags.append(tag)
        if tag == fmt.TAG_SYSCALLS:
            scs += columns.syscalls_from_table(columns.decode_block(body))
        elif tag == fmt.TAG_LINKS:
            lks += columns.links_from_table(columns.decode_link_block(body))
        elif tag == fmt.TAG_SYSCALL:
            scs.append(fmt.syscall_from_dict(fmt.decode_value(json.loads(body.partition(b"\n")[2].rstrip(b"\0")))))
        else:
            assert tag == fmt.TAG_LINK
            lks.append(fmt.link_from_dict(fmt.decode_value(json.loads(body.partition(b"\n")[2].rstrip(b"\0")))))
    return scs, lks, tags


# -- round trips -----------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(syscalls, min_size=columns.SMALL_BATCH, max_size=columns.SMALL_BATCH + 4))
def test_syscalls_round_trip_exactly(scs: list[Syscall]) -> None:
    back, _, tags = decode_all(columns.syscall_blocks(scs))
    # Odd rows leave the batch as format-1 records; compare as multisets, by exact repr.
    assert sorted(map(repr, back)) == sorted(map(repr, scs))
    regular = [sc for sc in scs if columns._fits(sc)]
    # The columns keep the regular rows in order; only the odd ones are format-1 records.
    assert [repr(sc) for sc in back if columns._fits(sc)] == list(map(repr, regular))  # repr: NaN in args
    assert tags.count(fmt.TAG_SYSCALLS) == (1 if regular else 0)
    assert tags.count(fmt.TAG_SYSCALL) == len(scs) - len(regular)


@settings(max_examples=60, deadline=None)
@given(st.lists(links, min_size=columns.SMALL_BATCH, max_size=columns.SMALL_BATCH + 4))
def test_links_round_trip_exactly(lks: list[Link]) -> None:
    _, back, tags = decode_all(columns.link_blocks(lks))
    assert sorted(map(repr, back)) == sorted(map(repr, lks))
    assert tags.count(fmt.TAG_LINK) == sum(not columns._link_fits(link) for link in lks)


def test_the_common_path_is_columnar() -> None:
    """What the tracer writes on a socket loop, with the odd values it can meet, stays in one block."""
    sock = FdInfo("tcp", "127.0.0.1:5000", "127.0.0.1:40000", None, 77)
    scs = [
        Syscall(i, 10, 11, "write" if i % 2 else "read", 1_800_000_000_000_000_000 + i, {"fd": 3, "count": 64},
                1_800_000_000_000_000_500 + i, 64, None, 3, sock, None, 64, bytes(64))
        for i in range(1000)
    ]  # fmt: skip
    scs += [
        # Empty data and no messages (not None), a huge int and bytes in args (JSON holds them).
        Syscall(1000, 10, 10, "read", 1, {"fd": 3}, 2, 0, None, 3, sock, None, None, b"", []),
        Syscall(1001, 10, 10, "exit_group", 3, {"status": 2**64}),
        Syscall(1002, 10, 10, "openat", 4, {"path": b"\xff"}, None, -2, "ENOENT", None, None,
                FdInfo("file", path="/tmp/\u00e9"), msg_lens=[1, 2**62]),
    ]  # fmt: skip
    data = columns.syscall_blocks(scs)
    back, _, tags = decode_all(data)
    assert tags == [fmt.TAG_SYSCALLS] and back == scs
    assert back[1001].args["status"] == 2**64 and back[1002].args == {"path": b"\xff"}
    assert len(data) / len(scs) < 40  # the data previews are zeros: the columns compress


def test_odd_rows_become_format1_records_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "odd.pcapng"
    odd = [
        Syscall(2, 1, 1, "read", 20, fd=3, fdinfo=FdInfo("file", path="/tmp/\udcff.bin")),  # a non-UTF-8 path
        Syscall(3, 1, 1, "read", 30, ret=2**64 - 1),  # an unsigned register: beyond int64
    ]
    scs = [Syscall(1, 1, 1, "read", 10, fd=3, data=b""), *odd, Syscall(4, 1, 1, "close", 40, ret=None)]
    scs += [Syscall(i, 1, 1, "getpid", i * 10, ret=1) for i in range(5, 5 + columns.SMALL_BATCH)]
    with RecordingWriter(str(path)) as w:
        w.write_header({})
        for sc in scs:
            w.write_syscall(sc)
    rec = read_recording(str(path))
    assert rec.meta["format"] == 2 and rec.syscalls == scs
    with open(path, "rb") as f:
        tags = [block[12:40].partition(b"\n")[0] for bt, block in iter_blocks(f, str(path)) if bt == fmt.BT_CUSTOM]
    assert tags.count(b"syscalls") == 1 and tags.count(b"syscall") == 2


@pytest.mark.parametrize(("version", "says"), [(3, "newer than this wirecorr"), (0, "not one wirecorr ever wrote")])
def test_a_format_it_does_not_know_is_refused(tmp_path: Path, version: int, says: str) -> None:
    path = tmp_path / "rec.pcapng"
    with RecordingWriter(str(path)) as w:
        w.write_header({"format": version})
    with pytest.raises(InputError, match=says):
        read_recording(str(path))


def test_a_few_syscalls_stay_format1_records() -> None:
    """A nearly idle program's flush: a block of columns would be larger than the records."""
    sock = FdInfo("tcp", "127.0.0.1:5000", "127.0.0.1:40000", None, 77)
    echo = [
        Syscall(i, 10, 10, "read", 1_800_000_000_000_000_000 + i, {"fd": 3, "count": 64},
                1_800_000_000_000_000_500 + i, 64, None, 3, sock, None, 64, bytes(64))
        for i in range(2 * columns.SMALL_BATCH)
    ]  # fmt: skip
    few = echo[: columns.SMALL_BATCH - 1]
    back, _, tags = decode_all(columns.syscall_blocks(few))
    assert back == few and set(tags) == {fmt.TAG_SYSCALL}
    back, _, tags = decode_all(columns.syscall_blocks(echo))
    assert back == echo and tags == [fmt.TAG_SYSCALLS]
    assert len(columns.syscall_blocks(echo)) < len(b"".join(map(fmt.syscall_block, echo)))


def test_a_damaged_batch_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "damaged.pcapng"
    with RecordingWriter(str(path)) as w:
        w.write_header({})
        for i in range(50):
            w.write_syscall(Syscall(i, 1, 1, "read", i, fd=3, data=bytes(8)))
    data = bytearray(path.read_bytes())
    at = data.index(b"syscalls\n")
    data[at + 60 : at + 120] = b"\xa5" * 60
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bad wirecorr record: syscalls record") as info:
        read_recording(str(path))
    assert info.value.offset == at - 12
    done = subprocess.run([PYTHON, "-m", "wirecorr", "analyze", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and str(path) in done.stderr


def _table_with(name: str, values: pa.Array) -> pa.Table:
    table = columns.build_table([Syscall(i, 1, 1, "read", i, fdinfo=FdInfo("tcp"), msg_lens=[1]) for i in range(3)])
    at = table.schema.get_field_index(name)
    return table.set_column(at, pa.field(name, values.type, table.schema.field(name).nullable), values)


MALFORMED = {
    "`exit_ns` is out of the timestamp range": lambda: _table_with("exit_ns", pa.array([1, None, 2**62 + 1])),
    "column layout": lambda: columns.build_table([Syscall(1, 1, 1, "read", 1)]).replace_schema_metadata(
        {columns.COLUMNS_KEY: b"9"}
    ),
    "no `fd` column": lambda: columns.build_table([Syscall(1, 1, 1, "read", 1)]).drop_columns(["fd"]),
    "`ret` is string": lambda: _table_with("ret", pa.array(["0", "1", "2"])),
    "`enter_ns` has nulls": lambda: _table_with("enter_ns", pa.array([1, None, 3], pa.int64())),
    "`msg_lens` holds a null in a list": lambda: _table_with("msg_lens", pa.array([[1, None], None, []])),
    "entry without a kind": lambda: _table_with(
        "fdinfo",
        pa.DictionaryArray.from_arrays(
            pa.array([0, 0, 0], pa.int32()), pa.array([{"kind": None}], columns.FDINFO_TYPE)
        ),
    ),
    "not a JSON object": lambda: _table_with("args", pa.array(["[1]", "[1]", "[1]"]).dictionary_encode()),
}


@pytest.mark.parametrize("problem", MALFORMED)
def test_malformed_batches_are_refused(problem: str) -> None:
    """Each as one RecordFormatError, which the reader reports as one line naming file and offset."""
    table = MALFORMED[problem]()
    data = b"syscalls\n" + columns._ipc(table, table.schema)
    with pytest.raises(fmt.RecordFormatError, match=re.escape(problem)):
        columns.syscalls_from_table(columns.decode_block(data))


# -- the same analysis from either format ----------------------------------------------


def reencode(src: Path, dst: Path, version: int) -> None:
    """Rewrite a recording's syscall and link records in `version`'s encoding, every other
    block (packets, process events, findings, summary) copied byte for byte."""
    run: list[Syscall] = []

    def flush(out: io.BufferedWriter) -> None:
        if run:
            out.write(columns.syscall_blocks(run))
            run.clear()

    with open(src, "rb") as f, open(dst, "wb") as out:
        for btype, block in iter_blocks(f, str(src)):
            if btype != fmt.BT_CUSTOM or struct.unpack_from("<I", block, 8)[0] != fmt.PEN:
                flush(out)
                out.write(block)
                continue
            (tag, body), *_ = blocks_of(block)
            if tag == fmt.TAG_HEADER:
                payload = fmt.decode_record(body)[1]
                out.write(fmt.custom_block(fmt.TAG_HEADER, {**payload, "format": version}))
            elif tag in (fmt.TAG_SYSCALL, fmt.TAG_SYSCALLS):
                scs, _, _ = decode_all(block)
                if version == 2:
                    run.extend(scs)
                else:
                    out.write(b"".join(map(fmt.syscall_block, scs)))
            elif tag in (fmt.TAG_LINK, fmt.TAG_LINKS):
                flush(out)
                _, lks, _ = decode_all(block)
                out.write(
                    columns.link_blocks(lks)
                    if version == 2
                    else b"".join(fmt.custom_block(fmt.TAG_LINK, fmt.link_to_dict(x)) for x in lks)
                )
            else:
                flush(out)
                out.write(block)
        flush(out)


FRAMES = re.compile(r"\b(frames? )(\d+(?:, \d+\b(?!\.))*)")  # "frames 9, 11", not "frame 9, 1.3 s"


def file_independent(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """`doc` less what names the file rather than its contents: its path, the packets'
    byte offsets in it, and Wireshark frame numbers, which count the Custom Blocks too
    (in findings' messages they become packet indices)."""
    index_of = {frame: i for i, frame in enumerate(read_recording(str(path)).frame_numbers)}

    def packets(m: re.Match[str]) -> str:
        return "packets " + ", ".join(str(index_of[int(n)]) for n in m.group(2).split(", "))

    doc.pop("sources", None)
    doc["warnings"] = [w.replace(str(path), "FILE") for w in doc.get("warnings", [])]
    for packet in doc.get("packets", []):
        packet.pop("offset")
        packet.pop("frame")
    for finding in doc["findings"]:
        finding["message"] = FRAMES.sub(packets, finding["message"])
    return doc


def analysis(path: Path) -> dict[str, Any]:
    """`analyze --json`'s document for `path`, built in this process."""
    return file_independent(json_report.document(analyze_file(str(path)), packets=True), path)


@pytest.mark.parametrize("capture", FORMAT1_CAPTURES, ids=lambda p: p.stem)
def test_shipped_format1_captures_analyse_the_same_as_format2(capture: Path, tmp_path: Path) -> None:
    v1 = read_recording(str(capture))
    assert v1.meta["format"] == 1 and v1.syscalls
    v2_path = tmp_path / capture.name
    reencode(capture, v2_path, 2)
    v2 = read_recording(str(v2_path))
    assert v2.meta["format"] == 2
    assert (v2.syscalls, v2.links, v2.processes, v2.summary) == (v1.syscalls, v1.links, v1.processes, v1.summary)
    assert analysis(v2_path) == analysis(capture)


ECHO = r"""
import socket, sys, threading
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
def serve():
    conn, _ = srv.accept()
    with conn:
        while data := conn.recv(100):
            conn.sendall(data)
t = threading.Thread(target=serve)
t.start()
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as cli:
    for i in range(20):
        cli.sendall(b"ping %d" % i)
        cli.recv(100)
t.join()
"""


@pytest.mark.skipif(shutil.which("tcpdump") is None or shutil.which("tshark") is None, reason="needs tcpdump, tshark")
def test_a_real_run_in_either_format_gives_the_same_analyze_json(tmp_path: Path) -> None:
    v2_path, v1_path = tmp_path / "run.pcapng", tmp_path / "run-v1.pcapng"
    port = free_port()
    done = subprocess.run(
        [PYTHON, "-m", "wirecorr", "record", "-o", str(v2_path), "-i", "lo", "-f", f"tcp port {port}",
         "--", PYTHON, "-c", ECHO, str(port)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with open(v2_path, "rb") as f:
        tags = [block[12:40].partition(b"\n")[0] for bt, block in iter_blocks(f, str(v2_path)) if bt == fmt.BT_CUSTOM]
    # record writes format 2: syscalls and links in a few blocks of columns (a flush of
    # fewer than SMALL_BATCH syscalls, at the end of a second, as records).
    assert b"syscalls" in tags and b"links" in tags
    assert tags.count(b"syscall") < columns.SMALL_BATCH * tags.count(b"syscalls") and b"link" not in tags
    reencode(v2_path, v1_path, 1)
    assert read_recording(str(v1_path)).meta["format"] == 1

    def analyze(path: Path) -> dict[str, Any]:
        out = subprocess.run(
            [PYTHON, "-m", "wirecorr", "analyze", "--json", str(path)], capture_output=True, timeout=60, check=True
        )
        return file_independent(json.loads(out.stdout), path)

    v2_doc, v1_doc = analyze(v2_path), analyze(v1_path)
    assert v2_doc == v1_doc
    assert len(v2_doc["syscalls"]) > 40 and len(v2_doc["links"]) >= 40  # 20 round trips, each way
    # The column path reads the same rows without Syscall objects.
    table = columns.read_syscall_columns(str(v2_path))
    assert table.num_rows == len(v2_doc["syscalls"])
    assert sorted(table.column("id").to_pylist()) == sorted(s["id"] for s in v2_doc["syscalls"])
    # tshark lists the packets and a handful of wirecorr blocks, without an error.
    shark = subprocess.run(["tshark", "-r", str(v2_path)], capture_output=True, text=True, timeout=60)
    assert shark.returncode == 0 and "rror" not in shark.stderr
    custom = [line for line in shark.stdout.splitlines() if "Custom Block" in line]
    assert 3 <= len(custom) <= 12 and len(shark.stdout.splitlines()) - len(custom) >= 40


def test_the_tui_feeds_a_batch_over_several_slices(tmp_path: Path) -> None:
    """A block of thousands of syscalls is fed CALL_BATCH at a time, between key presses,
    after the packets (in `analyze`'s order), with every row there before."""
    from wirecorr.views.tui.index import EventIndex
    from wirecorr.views.tui.loader import CALL_BATCH, FileLoader
    from wirecorr.views.tui.packets import LivePackets

    path = tmp_path / "batch.pcapng"
    scs = [Syscall(i, 7, 7, "getpid", 1_000 + i, ret=7) for i in range(8 * CALL_BATCH)]
    frame = bytes.fromhex("4500001c000100004011f9cc7f0000017f000001d431003500080000")  # IPv4/UDP, no payload
    with RecordingWriter(str(path)) as w:
        w.write_header({})
        for sc in scs:
            w.write_syscall(sc)
        w.flush()
        w.write_packet(2_000_000, frame, len(frame), 101)  # LINKTYPE_RAW
    index = EventIndex(Session(), LivePackets())
    loader = FileLoader(index, str(path))
    while loader.walk is not None:  # a slice far shorter than any work: one unit of it
        loader.step(1e-6)
    index.flush()
    assert len(index.rows) == len(scs) + 1 and loader.count == 1 and not index.session.syscalls
    walked = loader.fed
    loader.step(1e-6)
    assert 0 < loader.fed - walked <= CALL_BATCH
    while not loader.done:
        loader.step()
    assert list(index.calls) == scs and index.session.syscalls == scs


def test_equal_but_different_args_stay_apart() -> None:
    """False == 0 and -0.0 == 0.0 in Python: a cache of shared args dicts must not swap them."""
    scs = [Syscall(i, 1, 1, "ioctl", i, {"x": v}) for i, v in enumerate([0, False, 0.0, -0.0, 1, True, 1.0] * 3)]
    back, _, _ = decode_all(columns.syscall_blocks(scs) + b"".join(map(fmt.syscall_block, scs)))
    assert [repr(sc.args) for sc in back] == [repr(sc.args) for sc in scs] * 2


# -- the compiled row builder (_core/rows.pyx) against the reference -------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(plain_syscalls, min_size=columns.SMALL_BATCH, max_size=columns.SMALL_BATCH + 8), st.data())
def test_compiled_rows_are_the_references(scs: list[Syscall], data: st.DataObject) -> None:
    """Any slice of a batch, itself a slice of a decoded block (Arrow offsets into shared
    buffers), nulls anywhere, empty and missing previews: the same objects, field for field."""
    # All rows plain: one block.
    block = columns.decode_block(next(body for _, body in blocks_of(columns.syscall_blocks(scs))))
    batch = block.to_batches()[0]
    start = data.draw(st.integers(0, len(batch) - 1))
    batch = batch.slice(start, data.draw(st.integers(1, len(batch) - start)))
    rows = columns.SyscallRows(batch)
    lo = data.draw(st.integers(0, len(rows)))
    hi = data.draw(st.integers(lo, len(rows)))
    got = rows.rows(lo, hi)
    assert list(map(repr, got)) == list(map(repr, rows.reference_rows(lo, hi)))
    assert list(map(repr, got)) == list(map(repr, scs[start + lo : start + hi]))


def test_a_missing_row_builder_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    monkeypatch.setitem(sys.modules, "wirecorr._core.rows", None)
    scs = [Syscall(i, 1, 1, "read", i, {}) for i in range(columns.SMALL_BATCH)]
    block = next(body for _, body in blocks_of(columns.syscall_blocks(scs)))
    with pytest.raises(WirecorrError, match="compiled syscall rows are not built"):
        columns.syscalls_from_table(columns.decode_block(block))


# -- the compiled link columns (_core/rows.link_columns) against the reference ------------

odd_links = st.builds(
    Link,
    id=INT64 | st.booleans(),
    kind=st.sampled_from(["write-data", "read-data", "connect-syn"]),
    syscall=INT64 | st.booleans(),
    packets=st.lists(INT64, max_size=3) | st.tuples(INT64) | st.lists(st.booleans() | INT64, max_size=3),
    delay_ns=st.none() | NS | st.booleans(),
    note=st.none() | st.sampled_from(["partial write: 1 of 2 bytes", "MSG_PEEK"]) | st.just(b"bytes"),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(links | odd_links, max_size=40))
def test_compiled_link_columns_are_the_references(lks: list[Link]) -> None:
    """The same table, to the IPC bytes, or the reference's error: a value of an odd type
    sends the batch the reference way."""
    try:
        expected = columns.reference_link_table(lks)
    except columns._CONVERSION_ERRORS as e:
        with pytest.raises(type(e)):
            columns.build_link_table(lks)
        return
    got = columns.build_link_table(lks)
    assert got.equals(expected)
    assert columns._ipc(got, columns.LINK_SCHEMA) == columns._ipc(expected, columns.LINK_SCHEMA)


def test_plain_links_are_gathered_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WIRECORR_PURE", raising=False)
    lks = [Link(i, "write-data", i, [i, i + 1], 5, None) for i in range(100)]
    expected = columns.reference_link_table(lks)

    def refused(links: list[Link]) -> None:
        raise AssertionError("the reference built a batch of plain links")

    monkeypatch.setattr(columns, "reference_link_table", refused)
    assert columns.build_link_table(lks).equals(expected)
