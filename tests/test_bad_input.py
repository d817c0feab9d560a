"""Damaged and hostile input, one case per crash site the fuzzer found (issue 14, items 5 and 6).

Each input is what a user could hand wirecorr: a capture with an odd timestamp, a recording
with one damaged record, an strace log or rules file with absurd numbers or nesting, a
filter of 300 parentheses, a pipe or a device where a file was expected. The answer must
be a report (when the input is valid and only unusual, as tshark agrees) or one line on
stderr naming the file and where, with exit status 2 — never a traceback.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fuzz_harness import BT_CUSTOM, BT_EPB, BT_IDB, CORPUS, blocks, frame, record_block, split_record

from wirecorr.cli import main
from wirecorr.views.tui import display_filter

ROOT = Path(__file__).resolve().parent.parent
REC = CORPUS / "rec-echo.pcapng"
PCAPNG = CORPUS / "echo-us.pcapng"
STRACE = CORPUS / "echo.strace"
RULES = ROOT / "captures" / "lab-echo.toml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The CLI's own entry point, in this process (a traceback would fail the test here)."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wirecorr: "), err
    return lines[0]


# -- timestamps beyond 64-bit nanoseconds ---------------------------------------------------


def tshark_frames(path: Path) -> list[str]:
    done = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_epb_timestamp_high_word_all_ones_reads_as_tshark_reads_it(tmp_path: Path, capsys) -> None:
    blks = blocks(PCAPNG.read_bytes())
    epbs = [i for i, (t, _) in enumerate(blks) if t == BT_EPB]
    i = epbs[2]
    body = bytearray(blks[i][1][8:-4])
    struct.pack_into("<I", body, 4, 0xFFFFFFFF)
    blks[i] = (BT_EPB, frame(BT_EPB, bytes(body)))
    path = tmp_path / "late.pcapng"
    path.write_bytes(b"".join(b for _, b in blks))
    offset = sum(len(b) for _, b in blks[:i])

    times = tshark_frames(path)
    assert len(times) == len(epbs) and float(times[2]) > 1.8e13  # year 586524, as tshark shows it

    code, out, err = run(capsys, "analyze", str(path))
    assert code == 0, err
    assert f"{len(epbs)} packets read" in out
    assert f"1 packet(s) of {path} have a timestamp beyond 2116 or before 1823 (first at byte {offset})" in out
    code, out, err = run(capsys, "analyze", "--json", "--packets", str(path))
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["packets"]) == len(epbs) and any("beyond 2116" in w for w in doc["warnings"])


def test_recording_idb_without_tsresol_reads_ns_as_us_like_tshark(tmp_path: Path, capsys) -> None:
    """A recording whose IDB lost if_tsresol: its ns counts read as µs, 1000x too late."""
    blks = [
        (t, frame(BT_IDB, b[8:16]) if t == BT_IDB else b)  # the IDB's fixed fields, no options
        for t, b in blocks(REC.read_bytes())
    ]
    path = tmp_path / "us.pcapng"
    path.write_bytes(b"".join(b for _, b in blks))
    times = tshark_frames(path)
    assert len(times) == 16 and float(times[0]) > 1e12

    code, out, err = run(capsys, "analyze", "--json", str(path))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["packets_read"] == 16
    assert any("16 packet(s)" in w and "beyond 2116" in w for w in doc["warnings"])


# -- recording records of the wrong shape ------------------------------------------------------


def damaged_recording(tmp_path: Path, tag: bytes, change) -> tuple[Path, int]:
    """The seed recording with the first `tag` record's JSON text changed; returns its byte offset."""
    blks = blocks(REC.read_bytes())
    offset = 0
    for i, (btype, blk) in enumerate(blks):
        rec = split_record(blk) if btype == BT_CUSTOM else None
        if rec is not None and rec[0] == tag:
            blks[i] = (BT_CUSTOM, record_block(tag, change(rec[1])))
            break
        offset += len(blk)
    else:
        raise AssertionError(f"no {tag!r} record")
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(b"".join(b for _, b in blks))
    return path, offset


def test_flipped_bit_in_a_record_key_names_the_record_and_its_offset(tmp_path: Path, capsys) -> None:
    # `event` -> `dvent`: one bit (0x01) of the first letter.
    path, offset = damaged_recording(tmp_path, b"process", lambda text: text.replace(b'"event"', b'"dvent"'))
    for flags in ([], ["--json"]):
        code, out, err = run(capsys, "analyze", *flags, str(path))
        assert code == 2 and out == ""
        assert (
            one_error_line(err)
            == f"wirecorr: {path} at byte {offset}: bad wirecorr record: process record has no `event`"
        )
    code, _, err = run(capsys, "check", str(path), "--expect", str(RULES))
    assert code == 2 and f"at byte {offset}" in one_error_line(err)


def set_key(key: str, raw: str):
    def change(text: bytes) -> bytes:
        obj = json.loads(text)
        obj[key] = "\0RAW\0"
        return json.dumps(obj).replace('"\\u0000RAW\\u0000"', raw).encode()

    return change


WRONG_SHAPES = [
    ("syscall", "enter_ns", '"12"', "`enter_ns` is a string, wants an integer"),
    ("syscall", "args", "5", "`args` is an integer, wants an object or null"),
    ("syscall", "data", '"abc"', '`data` is a string, wants null or {"$bytes": ...}'),
    ("syscall", "fd", "[3]", "`fd` is a list, wants an integer or null"),
    ("syscall", "pid", "1.5", "`pid` is a number, wants an integer"),
    ("syscall", "errno", "11", "`errno` is an integer, wants a string or null"),
    ("syscall", "name", "null", "`name` is null, wants a string"),
    ("syscall", "msg_lens", '["a"]', "`msg_lens` wants a list of 64-bit integers"),
    ("syscall", "msg_lens", "7", "`msg_lens` is an integer, wants a list or null"),
    ("syscall", "fdinfo", '{"kind": 5}', "syscall record's fdinfo: `kind` is an integer, wants a string"),
    ("syscall", "fdinfo", '"tcp"', "`fdinfo` is a string, wants an object or null"),
    ("syscall", "ret_fdinfo", '{"local": "1.2.3.4:5"}', "syscall record's fdinfo has no `kind`"),
    ("syscall", "enter_ns", "9" * 30, "`enter_ns` is out of range"),
    ("syscall", "enter_ns", "9" * 5000, "syscall record is not valid JSON: a number of 5000 digits"),
    ("syscall", "data", '{"$bytes": 5}', "syscall record is not valid JSON"),
    ("syscall", "args", '{"a": {"$tuple": 5}}', "syscall record is not valid JSON"),
    ("syscall", "args", '{"a": ' + "[" * 2000 + "]" * 2000 + "}", "nests deeper than 16 levels"),
    ("syscall", "args", '{"a": ' + '{"$tuple": [' * 500 + "]}" * 500 + "}", "nests deeper than 16 levels"),
    ("process", "pid", '"7"', "`pid` is a string, wants an integer"),
    ("process", "info", "{}", "`info` is an object, wants an integer or null"),
    ("link", "packets", "[0, null]", "`packets` wants a list of 64-bit integers"),
    ("link", "syscall", '"3"', "`syscall` is a string, wants an integer"),
    ("wirecorr", "format", '"1"', "`format` is a string, wants an integer"),
    ("wirecorr", "pids", '["1"]', "`pids` wants a list of 64-bit integers"),
    ("summary", "packets", "[]", "`packets` is a list, wants a number, string, boolean or null"),
]


@pytest.mark.parametrize(("tag", "key", "raw", "message"), WRONG_SHAPES, ids=[f"{t}.{k}" for t, k, *_ in WRONG_SHAPES])
def test_record_of_the_wrong_shape_is_refused_at_the_reader(tmp_path: Path, capsys, tag, key, raw, message) -> None:
    path, offset = damaged_recording(tmp_path, tag.encode(), set_key(key, raw))
    for flags in ([], ["--json", "--packets"]):
        code, out, err = run(capsys, "analyze", *flags, str(path))
        assert code == 2 and out == "", err
        line = one_error_line(err)
        assert line.startswith(f"wirecorr: {path} at byte {offset}: bad wirecorr record: ") and message in line, line


def test_partial_report_of_a_recording_damaged_midway(tmp_path: Path, capsys) -> None:
    """--partial still reports what came before the bad record, and names it."""
    path, offset = damaged_recording(tmp_path, b"link", set_key("kind", "5"))
    code, out, _ = run(capsys, "analyze", "--partial", "--json", str(path))
    assert code == 2
    doc = json.loads(out)
    assert doc["error"]["offset"] == offset and doc["packets_read"] == 16 and doc["syscalls"]


def test_unknown_keys_and_tags_stay_allowed(tmp_path: Path, capsys) -> None:
    """docs/recording-format.md: a newer wirecorr may add keys and tags within a format version."""
    path, _ = damaged_recording(tmp_path, b"syscall", set_key("new_key", '{"deep": [1, [2, [3]]]}'))
    data = path.read_bytes() + record_block(b"future", b'{"x": 1}')
    path.write_bytes(data)
    code, _, err = run(capsys, "analyze", str(path))
    assert code == 0, err


# -- strace logs -------------------------------------------------------------------------------

STRACE_LINES = [
    "9" * 5000 + " 1796397324.448600 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3<TCP:[1]> <0.000107>",
    "10223 " + "1" * 5000 + ".448600 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3<TCP:[1]> <0.000107>",
    "10223 1796397324.448600 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = " + "7" * 5000 + " <0.000107>",
    "10223 1796397324.448600 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 0x" + "f" * 5000 + " <0.000107>",
    "10223 1796397324.448600 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3<TCP:[1]> <" + "1" * 5000 + ".0>",
    "10223 1796397324.448600 close(" + "4" * 5000 + ") = 0 <0.000107>",
    '10223 1796397324.448600 sendto(3<TCP:[1]>, "x", 1, 0, ' + "[" * 3000 + "]" * 3000 + ", 0) = 1 <0.000107>",
    "10223 1796397324.448600 setsockopt(3<TCP:[1]>, SOL_SOCKET, SO_LINGER, "
    + "{a=" * 1500
    + "1"
    + "}" * 1500
    + ", 8) = 0 <0.000107>",
    "10223 1796397324.448600 bind(3<TCP:[1]>, " + "x => " * 3000 + "1, 16) = 0 <0.000107>",
]


@pytest.mark.parametrize("line", STRACE_LINES, ids=range(len(STRACE_LINES)))
def test_strace_line_with_absurd_numbers_or_nesting_is_not_understood(tmp_path: Path, capsys, line: str) -> None:
    text = STRACE.read_text(encoding="latin-1").splitlines()
    text.insert(20, line)
    path = tmp_path / "app.strace"
    path.write_text("\n".join(text) + "\n", encoding="latin-1")
    for flags in ([], ["--json"]):
        code, out, err = run(capsys, "analyze", *flags, "--strace", str(path))
        assert code == 0, err
        assert f"4 of 119 strace lines not understood, first at {path}:11" in out
    # The same line unfinished at the end of the log: read loosely, still refused.
    path.write_text(STRACE.read_text(encoding="latin-1") + line.split(") = ")[0] + " <unfinished ...>\n")
    code, out, err = run(capsys, "analyze", "--json", "--strace", str(path))
    assert code == 0, err


def test_strace_from_a_pipe_or_fifo_and_not_from_a_device(tmp_path: Path, capsys) -> None:
    # `--strace <(…)`: bash's process substitution, a pipe under /dev/fd.
    done = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m wirecorr analyze --strace <(cat "{STRACE}")'],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "Syscalls: 84 recorded" in done.stdout
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(STRACE.read_bytes()))
    writer.start()
    code, out, err = run(capsys, "analyze", "--strace", str(fifo))
    writer.join(10)
    assert code == 0 and "Syscalls: 84 recorded" in out, err
    code, out, err = run(capsys, "analyze", "--strace", "/dev/zero")
    assert code == 2 and one_error_line(err) == "wirecorr: /dev/zero: not a regular file or a pipe"


# -- rules files -------------------------------------------------------------------------------

RULES_CASES = [
    (b"[counts]\nconnections = " + b"9" * 5000 + b"\n", "not valid TOML: Exceeds the limit"),
    (b"[counts]\nconnections = " + b"[" * 3000 + b"\n", "not valid TOML: arrays or tables nested too deeply"),
    (b"[counts]\nconnections = " + b"{a = " * 2000 + b"\n", "not valid TOML"),
    (b'[findings]\nno = ["caf\xe9"]\n', "not UTF-8 text (byte 21): TOML files are UTF-8"),
    (b"\xff\xfe[\x00f\x00", "not UTF-8 text (byte 0)"),
    (b"# x\n" * 300_000, "larger than 1 MiB: not a rules file"),
]


@pytest.mark.parametrize(("content", "message"), RULES_CASES, ids=range(len(RULES_CASES)))
def test_bad_rules_file_is_one_error_line(tmp_path: Path, capsys, content: bytes, message: str) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_bytes(content)
    code, out, err = run(capsys, "check", str(REC), "--expect", str(rules))
    assert code == 2 and out == ""
    assert one_error_line(err).startswith(f"wirecorr: {rules}: {message}"), err


def test_capture_or_device_as_rules_file(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "check", str(REC), "--expect", str(REC))
    assert code == 2 and "not UTF-8 text (byte 16)" in one_error_line(err)
    code, _, err = run(capsys, "check", str(REC), "--expect", "/dev/zero")
    assert code == 2 and one_error_line(err) == "wirecorr: /dev/zero: not a regular file or a pipe"


def test_rules_from_a_fifo_are_read_as_a_stream(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "rules.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"[counts]\ntcp_connections = 1\n"))
    writer.start()
    code, out, err = run(capsys, "check", str(REC), "--expect", str(fifo))
    writer.join(10)
    assert code == 0 and "PASS  counts.tcp_connections" in out, err


# -- filters ----------------------------------------------------------------------------------


def test_bpf_filter_nesting_is_bounded_and_long_chains_evaluate(capsys) -> None:
    deep = "(" * 300 + "tcp" + ")" * 300
    code, out, err = run(capsys, "analyze", "-f", deep, str(PCAPNG))
    assert code == 2 and one_error_line(err).endswith("nested deeper than 64 levels in the filter")
    code, _, err = run(capsys, "analyze", "-f", "not " * 300 + "tcp", str(PCAPNG))
    assert code == 2 and "nested deeper than 64" in err
    code, out, err = run(capsys, "analyze", "-f", "(" * 60 + "tcp" + ")" * 60, str(PCAPNG))
    assert code == 0 and "16 analysed" in out, err
    # 5000 alternatives: one flat `or`, not 5000 nested calls per packet.
    chain = "port " + " or ".join(str(p) for p in range(1, 5000)) + " or 7007"
    code, out, err = run(capsys, "analyze", "-f", chain, str(PCAPNG))
    assert code == 0 and "16 analysed" in out, err


def test_display_filter_nesting_is_bounded() -> None:
    with pytest.raises(display_filter.FilterError, match="nested deeper than 64 levels"):
        display_filter.compile_filter("(" * 300 + "linked" + ")" * 300)
    with pytest.raises(display_filter.FilterError, match="nested deeper than 64 levels"):
        display_filter.compile_filter("not " * 300 + "linked")
    assert display_filter.compile_filter("(" * 60 + "fd == 3" + ")" * 60)
    with pytest.raises(display_filter.FilterError, match="is too long"):
        display_filter.compile_filter("fd == " + "9" * 5000)
    # A leading zero is decimal, as Wireshark reads `tcp.port == 080`.
    assert display_filter.compile_filter("fd == 010 or tcp.seq == 0x1F")


# -- command line -------------------------------------------------------------------------------


def test_analyze_without_input_is_a_usage_error(capsys) -> None:
    code, _, err = run(capsys, "analyze")
    assert code == 2 and one_error_line(err) == "wirecorr: analyze: give a capture FILE, or --strace LOG [--pcap FILE]"


def test_capture_from_a_fifo_is_read_as_a_stream(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(REC.read_bytes()))
    writer.start()
    code, out, err = run(capsys, "analyze", str(fifo))
    writer.join(10)
    assert code == 0 and "16 packets read" in out, err


# -- a recording cut by SIGKILL (item 10) ----------------------------------------------------


def test_recording_without_summary_is_reported_incomplete(tmp_path: Path, capsys) -> None:
    blks = [(t, b) for t, b in blocks(REC.read_bytes()) if not (t == BT_CUSTOM and split_record(b)[0] == b"summary")]
    path = tmp_path / "killed.pcapng"
    path.write_bytes(b"".join(b for _, b in blks))
    warning = (
        f"{path} is incomplete: it has no summary record, so the recorder was killed or crashed before its end; "
        "the report covers what was written until then"
    )
    code, out, err = run(capsys, "analyze", str(path))
    assert code == 0 and f"  warning: {warning}\n" in out, err
    code, out, err = run(capsys, "analyze", "--json", str(path))
    assert code == 0 and warning in json.loads(out)["warnings"]
    code, out, err = run(capsys, "check", str(path), "--expect", str(RULES))
    assert f"wirecorr: warning: {warning}" in err
    # A complete one says nothing of the kind.
    code, out, err = run(capsys, "analyze", "--json", str(REC))
    assert code == 0 and not any("incomplete" in w for w in json.loads(out)["warnings"])
