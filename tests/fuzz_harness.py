"""Seeded mutation fuzzing of every input wirecorr reads, through the entry points the CLI uses.

Each case mutates one seed from tests/fuzz_corpus/ (or a rules file, a filter expression)
and runs it through `wirecorr.cli.main` in this process, stdout and stderr captured, the
way `wirecorr analyze`/`check` would run it; display filters go through the TUI's
`compile_filter`. A case passes when it ends with an exit code (0, 1 for a failed check, 2
for bad input) and no exception escapes; it is a *traceback* when one does, a *hang* when it
runs past its time limit. The same seed number always gives the same case, so a failure
is reproduced with `bench/fuzz --target T --seed N`.

Mutations are byte-level (bit flips, interesting 32-bit values, cuts, splices) and
structure-aware where bytes alone rarely reach the code: pcapng blocks are re-framed with
valid lengths, wirecorr records are re-encoded after their JSON is changed (renamed keys,
values of the wrong type, deep nesting, 5000-digit numbers), strace lines and rules files
get tokens of their own syntax.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import signal
import struct
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
RULES_SEEDS = sorted((REPO / "captures").glob("*.toml"))

PEN = 32473
BT_IDB, BT_EPB, BT_CUSTOM = 1, 6, 0xBAD

INTERESTING32 = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 16, 28, 32, 65535)
INTERESTING8 = (0, 1, 0x7F, 0x80, 0xFF, 0x09, 0x06, 0x89)


class Hang(BaseException):
    """Raised by the alarm in a case that runs past its limit (a BaseException so no
    `except Exception` in the code under test can swallow it)."""


@dataclass
class Case:
    target: str
    seed: int
    argv: list[str] = field(default_factory=list)
    # Display filters are not a CLI argument: the TUI compiles them itself.
    display_filter: str | None = None


@dataclass
class Result:
    case: Case
    status: str  # "ok", "traceback", "hang", "bad-exit"
    code: int | None = None
    detail: str = ""


# -- byte-level mutation ----------------------------------------------------------------


def mutate_bytes(rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    buf = bytearray(data)
    for _ in range(rounds or rng.randint(1, 4)):
        if not buf:
            buf += rng.randbytes(rng.randint(1, 16))
            continue
        op = rng.randrange(8)
        at = rng.randrange(len(buf))
        if op == 0:
            buf[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[at] = rng.choice(INTERESTING8)
        elif op == 2 and len(buf) >= 4:
            at = rng.randrange(len(buf) - 3) & ~3
            struct.pack_into(rng.choice("<>") + "I", buf, at, rng.choice(INTERESTING32))
        elif op == 3:
            del buf[at : at + rng.randint(1, 64)]
        elif op == 4:
            end = at + rng.randint(1, 256)
            buf[at:at] = buf[at:end]
        elif op == 5:
            del buf[at:]
        elif op == 6:
            buf[at:at] = rng.randbytes(rng.randint(1, 8))
        else:
            src = rng.randrange(len(buf))
            n = rng.randint(1, 32)
            buf[at : at + n] = buf[src : src + n]
    return bytes(buf)


# -- pcapng and wirecorr records --------------------------------------------------------


def blocks(data: bytes) -> list[tuple[int, bytes]]:
    """A little-endian pcapng file as (type, whole block) pairs; a damaged tail is dropped."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        if blen < 12 or pos + blen > len(data):
            break
        out.append((btype, data[pos : pos + blen]))
        pos += blen
    return out


def frame(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def record_block(tag: bytes, text: bytes) -> bytes:
    return frame(BT_CUSTOM, struct.pack("<I", PEN) + tag + b"\n" + text)


def split_record(block: bytes) -> tuple[bytes, bytes] | None:
    if len(block) < 16 or struct.unpack_from("<I", block, 8)[0] != PEN:
        return None
    tag, _, text = block[12:-4].rstrip(b"\0").partition(b"\n")
    return tag, text


# A placeholder JSON string, replaced in the encoded text by a value JSON libraries will
# not produce themselves (a 5000-digit number, 2000 nested arrays).
RAW = "\x00raw\x00"


def odd_values(rng: random.Random) -> list[object]:
    depth = rng.choice((50, 600, 2000))
    return [
        "x",
        "",
        -1,
        0,
        2**63,
        2**64 + 1,
        1.5,
        True,
        None,
        [],
        {},
        [1, "a"],
        {"kind": 5},
        {"$bytes": "!!!"},
        {"$bytes": 5},
        {"$tuple": 5},
        {"$tuple": [[1]]},
        {"$dict": [[1]]},
        {"$dict": [[[1], 2]]},
        {"$dict": 3},
        {"$float": "x"},
        {"$float": "inf"},
        RAW + "[" * depth + "]" * depth,
        RAW + '{"$tuple":' * depth + "[]" + "}" * depth,
        RAW + "9" * rng.choice((30, 5000)),
        RAW + "-" + "9" * 5000,
        RAW + "1e999",
    ]


ODD_INTS = (-1, 0, 1, 2, 3, 7, 65535, 65536, 2**31, 2**32, 2**62, -(2**62), 2**63 - 1, 2**64 - 1, -(2**63))
ODD_STRS = (
    "",
    "x",
    "tcp",
    "udp6",
    "unix",
    "close",
    "write",
    "recvmmsg",
    "accept4",
    "connect",
    "fork",
    "exit",
    "exec",
    "EAGAIN",
    "EINPROGRESS",
    "127.0.0.1:7007",
    "127.0.0.1:99999",
    "[::1]:",
    "[::1]:80",
    "1.2.3:4",
    ":",
    "@abstract",
    "/tmp/x",
    "write-data",
    "read-data",
    "close-rst",
    "accept-ack",
    "\udcff",
    "é" * 3,
)


def same_type(rng: random.Random, value: object) -> object:
    """A value the schema accepts where `value` was, but an odd one: the engine must cope."""
    if type(value) is int:
        return rng.choice((*ODD_INTS, value + rng.randint(-3, 3), -value))
    if type(value) is str:
        return rng.choice(ODD_STRS)
    if isinstance(value, list):
        return [rng.choice(ODD_INTS) for _ in range(rng.randint(0, 4))]
    if value is None:
        return rng.choice((0, "x", None))
    return value


def mutate_json(rng: random.Random, obj: object) -> object:
    """Change one thing somewhere inside a parsed record: a key, a value's type, a deletion."""
    path: list[object] = []
    node = obj
    while isinstance(node, dict | list) and node and rng.random() < 0.6:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append(key)
        node = node[key]
    parent = obj
    for key in path[:-1]:
        parent = parent[key]  # type: ignore[index]
    if not path:
        if isinstance(obj, dict) and obj:
            key = rng.choice(list(obj))
            op = rng.randrange(3)
            value = obj.pop(key)
            if op == 0:  # one flipped bit in the key (`event` -> `dvent`)
                raw = bytearray(key.encode())
                raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(7)
                obj[raw.decode("latin-1")] = value
            elif op == 1:
                obj[key] = rng.choice(odd_values(rng))
            return obj
        return rng.choice(odd_values(rng))
    last = path[-1]
    roll = rng.random()
    if isinstance(parent, dict) and roll < 0.15:
        del parent[last]
    elif roll < 0.6:
        parent[last] = same_type(rng, node)  # type: ignore[index]
    else:
        parent[last] = rng.choice(odd_values(rng))  # type: ignore[index]
    return obj


def encode_json(obj: object) -> bytes:
    text = json.dumps(obj)
    if RAW in text:
        # Each placeholder was json-dumped as "\u0000raw\u0000...": put the raw text back.
        start = text.index('"\\u0000raw\\u0000')
        end = text.index('"', start + 1)
        raw = json.loads(text[start : end + 1])[len(RAW) :]
        text = text[:start] + raw + text[end + 1 :]
    return text.encode()


def mutate_records(rng: random.Random, data: bytes) -> bytes:
    """Re-encode one or more wirecorr records with changed JSON, or move, drop, retag them."""
    blks = blocks(data)
    for _ in range(rng.randint(1, 3)):
        custom = [i for i, (t, b) in enumerate(blks) if t == BT_CUSTOM and split_record(b)]
        if not custom:
            return mutate_bytes(rng, data)
        i = rng.choice(custom)
        tag, text = split_record(blks[i][1])  # type: ignore[misc]
        op = rng.randrange(10)
        if op < 6:
            try:
                obj = json.loads(text)
            except ValueError:
                continue
            new = encode_json(mutate_json(rng, obj))
            blks[i] = (BT_CUSTOM, record_block(tag, new))
        elif op == 6:
            tags = [b"wirecorr", b"syscall", b"syscalls", b"process", b"link", b"links", b"finding", b"summary", b"x"]
            other = rng.choice(tags)
            blks[i] = (BT_CUSTOM, record_block(other, text))
        elif op == 7:
            blks[i] = (BT_CUSTOM, record_block(tag, mutate_bytes(rng, text, 1)))
        elif op == 8:  # the summary gone: a recorder killed before its end
            blks = [(t, b) for t, b in blks if not (t == BT_CUSTOM and (split_record(b) or (b"",))[0] == b"summary")]
        else:
            j = rng.randrange(len(blks))
            blks.insert(j, blks[i])
    return b"".join(b for _, b in blks)


def mutate_pcapng(rng: random.Random, data: bytes) -> bytes:
    """Block-aware damage with valid framing: timestamps, interfaces, options, order."""
    blks = blocks(data)
    if len(blks) < 2:
        return mutate_bytes(rng, data)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(1, len(blks))
        btype, blk = blks[i]
        body = bytearray(blk[8:-4])
        op = rng.randrange(7)
        if btype == BT_EPB and op < 2 and len(body) >= 20:
            # The timestamp's high word: 0xffffffff puts it past 2^63 ns.
            struct.pack_into("<I", body, 4, rng.choice((0xFFFFFFFF, 0x80000000, 0x7FFFFFFF, 0)))
        elif btype == BT_EPB and op == 2 and len(body) >= 20:
            struct.pack_into("<I", body, 0, rng.choice((0, 1, 2, 0xFFFFFFFF)))
        elif btype == BT_IDB and op < 4:
            # Drop the options (µs resolution) or set another if_tsresol.
            body = body[:8]
            if rng.random() < 0.6:
                body += struct.pack("<HHB3xHH", 9, 1, rng.choice((0, 3, 6, 9, 12, 19, 0x80, 0x9F, 0xFF)), 0, 0)
        elif op == 4:
            j = rng.randrange(1, len(blks))
            blks[i], blks[j] = blks[j], blks[i]
            continue
        elif op == 5:
            del blks[i]
            if len(blks) < 2:
                break
            continue
        else:
            body = bytearray(mutate_bytes(rng, bytes(body), 1))
        blks[i] = (btype, frame(btype, bytes(body)))
    return b"".join(b for _, b in blks)


# -- text inputs -------------------------------------------------------------------------

STRACE_TOKENS = (
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "<",
    ">",
    '"',
    "\\",
    ",",
    "=",
    " ",
    "...",
    " <unfinished ...>",
    "<... recvfrom resumed>",
    "= ?",
    " = -1 EBADF (Bad file descriptor)",
    "<TCP:[127.0.0.1:1->127.0.0.1:2]>",
    "<UDPv6:[[::1]:5]>",
    '{sa_family=AF_INET6, sin6_port=htons(99999), inet_pton(AF_INET6, "::g", &sin6_addr)}',
    '[{iov_base="x", iov_len=99}]',
    "9" * 5000,
    "0x" + "f" * 5000,
    "-" + "1" * 5000,
    "[" * 3000,
    "{a=" * 1500,
    "(" * 2000,
    'inet_addr("999.1.1.1")',
    "htons(99999)",
    "<TCP:[garbage]>",
    "<TCP:[1.2.3.4:5->]>",
    "<TCPv6:[[::1]:80->[::g]:1]>",
    '<UNIX:[1->2,"/x"]>',
    "<socket:[x]>",
    "-1",
    "0",
    "4294967296",
    "MSG_PEEK|MSG_TRUNC",
    "CLONE_THREAD",
    '[{msg_hdr={msg_iov=[{iov_base="ab", iov_len=2}], msg_iovlen=1}, msg_len=2}]',
    "x(" * 1000,
    "<" * 500,
    "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"),
)


def mutate_strace(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        op = rng.randrange(7)
        line = lines[i]
        if op == 0 and line:
            at = rng.randrange(len(line) + 1)
            lines[i] = line[:at] + rng.choice(STRACE_TOKENS) + line[at:]
        elif op == 1 and line:
            digits = [k for k, c in enumerate(line) if c.isdigit()]
            if digits:
                at = rng.choice(digits)
                lines[i] = line[:at] + "9" * rng.choice((20, 5000)) + line[at + 1 :]
        elif op == 2:
            lines[i] = line[: rng.randrange(len(line) + 1)]
        elif op == 3:
            lines.insert(rng.randrange(len(lines) + 1), line)
        elif op == 4:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 5:
            del lines[i]
            if not lines:
                lines = [""]
        else:
            lines[i] = mutate_bytes(rng, line.encode("latin-1"), 1).decode("latin-1")
    return "\n".join(lines)


RULES_TOKENS = (
    "[",
    "]",
    "{",
    "}",
    "=",
    '"',
    "'",
    ",",
    "\n",
    "#",
    ".",
    "-1",
    "1" * 5000,
    "a = " + "[" * 3000,
    "a = " + "{b = " * 2000,
    "\n[counts]\nconnections = " + "9" * 5000 + "\n",
    '\n[links]\nevery = ["' + "(" * 500 + '"]\n',
    "\n[delays]\nx = 1\n",
    "{min = 5, max = 1}",
    "{min = " + "9" * 400 + "}",
    "\n[close]\nactive_closer = 5\n",
    "\n[counts.links]\nwrite-data = {max = -3}\n",
    "1979-05-27T07:32:00Z",
    "inf",
    "nan",
)


def mutate_rules(rng: random.Random, data: bytes) -> bytes:
    op = rng.randrange(4)
    if op == 0:
        return mutate_bytes(rng, data)
    if op == 1:
        # Not UTF-8 at all: a capture passed as --expect, or latin-1 text.
        at = rng.randrange(len(data) + 1)
        return data[:at] + rng.choice((b"\xff\xfe", b"\xe9", b"\xc3(", b"\x00", b"\xed\xa0\x80")) + data[at:]
    text = data.decode("utf-8", "replace")
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(RULES_TOKENS) + text[at:]
    return text.encode()


BPF_WORDS = (
    "host",
    "net",
    "port",
    "portrange",
    "src",
    "dst",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "ip",
    "ip6",
    "and",
    "or",
    "not",
    "&&",
    "||",
    "!",
    "(",
    ")",
    "127.0.0.1",
    "::1",
    "10.0.0.0/8",
    "::/0",
    "1.2.3.4/33",
    "80",
    "7007",
    "4000-4100",
    "9-1",
    "0x50",
    "99999999999",
    "1" * 5000,
    "-",
    "foo",
    "256.1.1.1",
)
DISPLAY_WORDS = (
    "syscall",
    "fd",
    "pid",
    "ret",
    "errno",
    "conn",
    "frame",
    "tcp.len",
    "tcp.seq",
    "tcp.flags.syn",
    "linked",
    "net",
    "packet",
    "kernel",
    "==",
    "!=",
    "<",
    ">=",
    "and",
    "or",
    "not",
    "&&",
    "||",
    "!",
    "(",
    ")",
    "3",
    "0x1f",
    "010",
    "accept4",
    '"ECONNREFUSED"',
    '"',
    "9" * 5000,
    "é",
)


def random_filter(rng: random.Random, words: tuple[str, ...]) -> str:
    op = rng.randrange(6)
    if op == 0:
        depth = rng.choice((10, 300, 3000))
        inner = rng.choice(words[:12])
        return "(" * depth + inner + ")" * depth
    if op == 1:
        depth = rng.choice((300, 3000))
        return "not " * depth + rng.choice(words[:12])
    text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
    if op == 2:
        text = mutate_bytes(rng, text.encode(), 1).decode("utf-8", "replace")
    return text


def mutate_gzip(rng: random.Random, data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data, compresslevel=rng.choice((1, 6, 9)), mtime=0))
    op = rng.randrange(5)
    if op == 0:
        return bytes(packed)
    if op == 1:
        return bytes(packed[: rng.randrange(2, len(packed))])
    if op == 2:  # the trailer: CRC or size wrong
        struct.pack_into("<I", packed, len(packed) - rng.choice((4, 8)), rng.getrandbits(32))
        return bytes(packed)
    if op == 3:
        return bytes(packed) + rng.choice((b"\x1f\x8b", rng.randbytes(8), gzip.compress(b"trailing", mtime=0)))
    return mutate_bytes(rng, bytes(packed), 1)


# -- targets ------------------------------------------------------------------------------

Writer = Callable[[random.Random, Path], Case]


def _seed(*names: str) -> list[Path]:
    return [CORPUS / n for n in names]


PCAP_SEEDS = _seed("echo-us.pcap", "echo-ns-be.pcap")
PCAPNG_SEEDS = _seed("echo-us.pcapng")
# rec-echo-v2: rec-echo in format 2 (syscalls and links as Arrow batches).
RECORDING_SEEDS = _seed("rec-echo.pcapng", "rec-refused.pcapng", "rec-sendmmsg.pcapng", "rec-echo-v2.pcapng")
STRACE_SEEDS = _seed("echo.strace")


def _report_flags(rng: random.Random) -> list[str]:
    return rng.choice(([], ["--json"], ["--json", "--packets"], ["--partial"], ["--json", "--no-partial"]))


def case_pcap(rng: random.Random, work: Path, seed: int) -> Case:
    path = work / "in.pcap"
    path.write_bytes(mutate_bytes(rng, rng.choice(PCAP_SEEDS).read_bytes()))
    return Case("pcap", seed, ["analyze", *_report_flags(rng), str(path)])


def case_pcapng(rng: random.Random, work: Path, seed: int) -> Case:
    data = rng.choice(PCAPNG_SEEDS + RECORDING_SEEDS).read_bytes()
    data = mutate_pcapng(rng, data) if rng.random() < 0.6 else mutate_bytes(rng, data)
    path = work / "in.pcapng"
    path.write_bytes(data)
    return Case("pcapng", seed, ["analyze", *_report_flags(rng), str(path)])


def case_recording(rng: random.Random, work: Path, seed: int) -> Case:
    data = mutate_records(rng, rng.choice(RECORDING_SEEDS).read_bytes())
    path = work / "rec.pcapng"
    path.write_bytes(data)
    if rng.random() < 0.25:
        rules = rng.choice(RULES_SEEDS)
        return Case("recording", seed, ["check", str(path), "--expect", str(rules)])
    return Case("recording", seed, ["analyze", *_report_flags(rng), str(path)])


def case_gzip(rng: random.Random, work: Path, seed: int) -> Case:
    data = rng.choice(PCAP_SEEDS + RECORDING_SEEDS).read_bytes()
    if rng.random() < 0.5:
        data = mutate_bytes(rng, data)
    path = work / "in.pcap.gz"
    path.write_bytes(mutate_gzip(rng, data))
    return Case("gzip", seed, ["analyze", *_report_flags(rng), str(path)])


def case_strace(rng: random.Random, work: Path, seed: int) -> Case:
    text = mutate_strace(rng, rng.choice(STRACE_SEEDS).read_text(encoding="latin-1"))
    path = work / "app.strace"
    path.write_bytes(text.encode("latin-1", "replace"))
    argv = ["analyze", *_report_flags(rng), "--strace", str(path)]
    if rng.random() < 0.3:
        argv += ["--pcap", str(rng.choice(PCAP_SEEDS))]
    return Case("strace", seed, argv)


def case_rules(rng: random.Random, work: Path, seed: int) -> Case:
    path = work / "rules.toml"
    path.write_bytes(mutate_rules(rng, rng.choice(RULES_SEEDS).read_bytes()))
    return Case("rules", seed, ["check", str(rng.choice(RECORDING_SEEDS)), "--expect", str(path)])


def case_filter(rng: random.Random, work: Path, seed: int) -> Case:
    if rng.random() < 0.5:
        expr = random_filter(rng, BPF_WORDS)
        return Case("filter", seed, ["analyze", "-f", expr, str(rng.choice(PCAP_SEEDS))])
    return Case("filter", seed, display_filter=random_filter(rng, DISPLAY_WORDS))


TARGETS: dict[str, Callable[[random.Random, Path, int], Case]] = {
    "pcap": case_pcap,
    "pcapng": case_pcapng,
    "recording": case_recording,
    "gzip": case_gzip,
    "strace": case_strace,
    "rules": case_rules,
    "filter": case_filter,
}


def make_case(target: str, seed: int, work: Path) -> Case:
    # The target name is part of the seed: seed N of two targets are unrelated cases.
    rng = random.Random(f"{target}:{seed}")
    return TARGETS[target](rng, work, seed)


# -- running ------------------------------------------------------------------------------


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(case: Case, timeout: float = 20.0) -> Result:
    from wirecorr.cli import main
    from wirecorr.views.tui.display_filter import FilterError, compile_filter

    out, err = io.StringIO(), io.StringIO()
    try:
        with time_limit(timeout), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if case.display_filter is not None:
                try:
                    compile_filter(case.display_filter)
                    code = 0
                except FilterError:
                    code = 2
            else:
                try:
                    code = main(case.argv)
                except SystemExit as e:  # argparse's usage errors
                    code = e.code if isinstance(e.code, int) else 2
    except Hang as e:
        return Result(case, "hang", detail=str(e))
    except BaseException:
        return Result(case, "traceback", detail=traceback.format_exc())
    if code not in (0, 1, 2):
        return Result(case, "bad-exit", code, err.getvalue()[-2000:])
    return Result(case, "ok", code, err.getvalue()[-500:])


def peak_rss_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def crash_site(detail: str) -> str:
    """The innermost wirecorr frame and exception type of a traceback, to group failures."""
    site = "?"
    for line in detail.splitlines():
        s = line.strip()
        if s.startswith('File "') and "/wirecorr/" in s:
            site = s.split("/wirecorr/", 1)[1].replace('", line ', ":").split(",")[0]
    last = detail.strip().splitlines()[-1] if detail.strip() else ""
    return f"{site} {last.split(':', 1)[0]}"


def describe(result: Result) -> str:
    case = result.case
    what = f"display filter {case.display_filter[:80]!r}" if case.display_filter is not None else " ".join(case.argv)
    return f"{result.status}: target={case.target} seed={case.seed}: {what[:300]}\n{result.detail}"


def main_check(argv: list[str]) -> int:  # pragma: no cover - used by bench/fuzz only
    """Re-run one case verbosely: `python tests/fuzz_harness.py TARGET SEED`."""
    import tempfile

    target, seed = argv[0], int(argv[1])
    with tempfile.TemporaryDirectory() as d:
        result = run_case(make_case(target, seed, Path(d)))
        print(describe(result))
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_check(sys.argv[1:]))


__all__ = ["TARGETS", "Case", "Result", "crash_site", "describe", "make_case", "peak_rss_kib", "run_case"]
