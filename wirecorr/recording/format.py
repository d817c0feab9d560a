"""The Recording's on-disk encoding: pcapng blocks plus wirecorr's Custom Block records.

A Recording is one pcapng file that Wireshark and tshark open as an ordinary capture:
packets are Enhanced Packet Blocks, and everything else wirecorr knows (the header, the
syscalls, process events, links, the closing summary) rides in copyable Custom Blocks
(type 0x00000BAD) under a Private Enterprise Number, which capture tools skip but keep.
docs/recording-format.md is the specification; this module is its only implementation.

Each record is `TAG "\\n" JSON`, zero-padded to the block's 32-bit boundary. JSON keeps the
records readable with `strings` and extensible by adding keys; the tagged value encoding
below makes it lossless for the Python values a Syscall's `args` may hold (bytes, tuples,
dicts with non-string keys) that plain JSON would silently turn into something else.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from wirecorr.json_codec import dumps, loads
from wirecorr.model import FdInfo, Finding, Link, Syscall

# IANA's Private Enterprise Number reserved for documentation and examples (RFC 5612).
# wirecorr has no PEN of its own; 32473 keeps it from squatting on a real vendor's number.
PEN = 32473
FORMAT_VERSION = 2

BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_EPB = 0x00000006
BT_CUSTOM = 0x00000BAD  # copyable: editors such as editcap keep it when rewriting the file
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_TSRESOL = 9

TAG_HEADER = "wirecorr"
TAG_SYSCALL = "syscall"
TAG_SYSCALLS = "syscalls"  # format 2: a batch of syscalls as Arrow columns (recording/columns.py)
TAG_PROCESS = "process"
TAG_LINK = "link"
TAG_LINKS = "links"  # format 2: a batch of links as Arrow columns
TAG_SUMMARY = "summary"


class RecordFormatError(ValueError):
    """A wirecorr Custom Block whose payload is not a record this version understands."""


# -- pcapng blocks ---------------------------------------------------------------------


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _options(options: Iterable[tuple[int, bytes]]) -> bytes:
    out = b"".join(struct.pack("<HH", code, len(value)) + _pad(value) for code, value in options)
    return out + struct.pack("<HH", OPT_ENDOFOPT, 0) if out else b""


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def section_header(userappl: str, os_name: str | None = None) -> bytes:
    """An SHB with unknown section length (-1): the file is written as a stream."""
    opts = [(SHB_USERAPPL, userappl.encode())]
    if os_name:
        opts.append((SHB_OS, os_name.encode()))
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(opts)
    return _block(BT_SHB, body)


def interface_description(linktype: int, snaplen: int, name: str | None = None) -> bytes:
    """An IDB with nanosecond timestamps (if_tsresol = 9), the resolution tcpdump gives us."""
    opts = [(IF_TSRESOL, b"\x09")]
    if name:
        opts.insert(0, (IF_NAME, name.encode()))
    return _block(BT_IDB, struct.pack("<HHI", linktype, 0, snaplen) + _options(opts))


def enhanced_packet(iface: int, ts_ns: int, frame: bytes, wirelen: int, comments: Iterable[str] = ()) -> bytes:
    opts = _options((OPT_COMMENT, c.encode()) for c in comments)
    head = struct.pack("<IIIII", iface, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(frame), wirelen)
    return _block(BT_EPB, head + _pad(frame) + opts)


def custom_block(tag: str, payload: Mapping[str, Any]) -> bytes:
    """A copyable Custom Block holding one record; it carries no options (see the spec)."""
    return _block(BT_CUSTOM, struct.pack("<I", PEN) + _pad(encode_record(tag, payload)))


# -- records ---------------------------------------------------------------------------


def encode_record(tag: str, payload: Mapping[str, Any]) -> bytes:
    return tag.encode() + b"\n" + dumps(encode_value(dict(payload)))


def decode_record(data: bytes) -> tuple[str, dict[str, Any]]:
    """Split a Custom Block's data (after the PEN) into its tag and payload, checked
    against the tag's schema (`check_record`): past this point every field has its type."""
    raw_tag, sep, body = data.rstrip(b"\0").partition(b"\n")
    tag = raw_tag.decode(errors="replace")
    if not sep:
        raise RecordFormatError("record has no tag line")
    try:
        payload = decode_value(loads(body))
    except RecursionError:
        # Python's own limit: far deeper than MAX_DEPTH, so no record of ours gets here.
        raise RecordFormatError(f"{tag} record nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError, TypeError) as e:
        # TypeError: a tagged value of the wrong shape ({"$tuple": 5}, {"$bytes": 5}).
        raise RecordFormatError(f"{tag} record is not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise RecordFormatError(f"{tag} record is not a JSON object")
    check_record(tag, payload)
    return tag, payload


# -- record schemas ----------------------------------------------------------------------
#
# One table per tag, checked by `decode_record` for every record read, so that the engine
# and the views can trust the types (a flipped bit in a key, `enter_ns` as a string, `args`
# as a number would otherwise fail far away, as a KeyError in a report). Keys not listed
# are allowed: a newer wirecorr of the same format version may add them.

# The deepest nesting of a value any record holds (a syscall's args: msghdr → iov list →
# one iovec → its bytes is 4); a deeper one is damage, refused before anything recurses on it.
MAX_DEPTH = 16
# Integers are 64-bit, signed or unsigned (a return value may be an unsigned register);
# timestamps (`*_ns`) are signed 64-bit nanoseconds within ±2^62, as packets' are
# (capture_file.TS_LIMIT), so the difference of any two fits the engine's int64 columns.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
NS_LIMIT = 1 << 62

_NONE = type(None)
_INT = frozenset((int,))
_OPT_INT = frozenset((int, _NONE))
_STR = frozenset((str,))
_OPT_STR = frozenset((str, _NONE))
_SCALAR = frozenset((int, str, bool, float, _NONE))
_OPT_BYTES = frozenset((bytes, _NONE))
_DICT = frozenset((dict,))
_OPT_DICT = frozenset((dict, _NONE))
_LIST = frozenset((list,))
_OPT_LIST = frozenset((list, _NONE))
_WANTS = {
    _INT: "an integer",
    _OPT_INT: "an integer or null",
    _STR: "a string",
    _OPT_STR: "a string or null",
    _SCALAR: "a number, string, boolean or null",
    _OPT_BYTES: 'null or {"$bytes": ...}',
    _DICT: "an object",
    _OPT_DICT: "an object or null",
    _LIST: "a list",
    _OPT_LIST: "a list or null",
}
_JSON_NAMES = {int: "an integer", str: "a string", bool: "a boolean", float: "a number", _NONE: "null"}
_JSON_NAMES |= {dict: "an object", list: "a list", bytes: "bytes", tuple: "a tuple"}

# (key, allowed types, required)
Schema = tuple[tuple[str, frozenset[type], bool], ...]
_FDINFO: Schema = (
    ("kind", _STR, True),
    ("local", _OPT_STR, False),
    ("remote", _OPT_STR, False),
    ("path", _OPT_STR, False),
    ("inode", _OPT_INT, False),
)
SCHEMAS: dict[str, Schema] = {
    TAG_HEADER: (
        ("format", _INT, True),
        ("start_ns", _OPT_INT, False),
        ("command", _LIST, False),
        ("pids", _LIST, False),
        ("snaplen", _OPT_INT, False),
        ("data_bytes", _OPT_INT, False),
    ),
    TAG_SYSCALL: (
        ("id", _INT, True),
        ("pid", _INT, True),
        ("tid", _INT, True),
        ("name", _STR, True),
        ("enter_ns", _INT, True),
        ("exit_ns", _OPT_INT, False),
        ("ret", _OPT_INT, False),
        ("errno", _OPT_STR, False),
        ("fd", _OPT_INT, False),
        ("fdinfo", _OPT_DICT, False),
        ("ret_fdinfo", _OPT_DICT, False),
        ("nbytes", _OPT_INT, False),
        ("data", _OPT_BYTES, False),
        ("msg_lens", _OPT_LIST, False),
        ("args", _OPT_DICT, False),
    ),
    TAG_PROCESS: (
        ("event", _STR, True),
        ("pid", _INT, True),
        ("info", _OPT_INT, False),
        ("ts_ns", _OPT_INT, False),
    ),
    TAG_LINK: (
        ("id", _INT, True),
        ("kind", _STR, True),
        ("syscall", _INT, True),
        ("packets", _LIST, True),
        ("delay_ns", _OPT_INT, False),
        ("note", _OPT_STR, False),
    ),
    TAG_SUMMARY: tuple(
        (key, _SCALAR, False)
        for key in (
            "end_ns",
            "packets",
            "syscalls",
            "exit_status",
            "signal",
            "captured",
            "received_by_filter",
            "dropped_by_kernel",
            "lost",
        )
    ),
}
_MISSING = object()


def check_record(tag: str, payload: dict[str, Any]) -> None:
    """Raise RecordFormatError naming the first field of `payload` that breaks its tag's schema."""
    check = _CHECKS.get(tag)
    if check is None:
        return  # a tag of a newer wirecorr: the reader skips it
    check(payload)
    if tag == TAG_SYSCALL:
        # fdinfo and ret_fdinfo repeat on every call of a socket: each distinct one is
        # checked once, where `syscall_from_dict` shares them (`fdinfo_from_dict`).
        _check_ints(tag, "msg_lens", payload.get("msg_lens"))
        args = payload.get("args")
        if args and not _PLAIN_TYPES.issuperset(map(type, args.values())):
            _check_depth(tag, "args", args, MAX_DEPTH)
    elif tag == TAG_LINK:
        _check_ints(tag, "packets", payload["packets"])
    elif tag == TAG_HEADER:
        _check_ints(tag, "pids", payload.get("pids"))
        command = payload.get("command")
        if command is not None and not all(type(a) is str for a in command):
            raise RecordFormatError(f"{tag} record: `command` wants a list of strings")


def _compile(what: str, schema: Schema) -> Callable[[dict[str, Any]], None]:
    """Straight-line code checking one schema, as `dataclasses` generates `__init__`.

    Every record read goes through it; a loop over the schema's fields, with a set test
    per field, took 5 µs of the 20 µs a syscall record costs to read, this takes about 1.
    The generated code only tests; `_field_error` words the failure.
    """
    names = {int: "int", str: "str", bool: "bool", float: "float", _NONE: "NoneType", bytes: "bytes"}
    names |= {dict: "dict", list: "list"}
    lines = ["def check(p):", "    get = p.get"]
    for key, kinds, _ in schema:
        wrong = " and ".join(f"t is not {names[k]}" for k in sorted(kinds, key=names.__getitem__))
        lines += [f"    v = get({key!r}, MISSING)", "    t = type(v)", f"    if {wrong}:"]
        lines += [f"        error({what!r}, {key!r}, v)"]
        if int in kinds:
            lo, hi = (-NS_LIMIT, NS_LIMIT) if key.endswith("_ns") else (INT_MIN, INT_MAX)
            lines += [f"    elif t is int and not {lo} <= v <= {hi}:", f"        error({what!r}, {key!r}, v)"]
    env: dict[str, Any] = {"MISSING": _MISSING, "NoneType": _NONE}
    env["error"] = functools.partial(_field_error, {key: (kinds, required) for key, kinds, required in schema})
    exec("\n".join(lines), env)  # the source is built from the constant SCHEMAS above
    return env["check"]


def _field_error(fields: dict[str, tuple[frozenset[type], bool]], what: str, key: str, value: Any) -> None:
    kinds, required = fields[key]
    if value is _MISSING:
        if required:
            raise RecordFormatError(f"{what} has no `{key}`")
        return
    kind = type(value)
    if kind in kinds:
        raise RecordFormatError(f"{what}: `{key}` is out of range")
    got = _JSON_NAMES.get(kind, kind.__name__)
    raise RecordFormatError(f"{what}: `{key}` is {got}, wants {_WANTS[kinds]}")


_CHECKS = {tag: _compile(f"{tag} record", schema) for tag, schema in SCHEMAS.items()}
_check_fdinfo = _compile(f"{TAG_SYSCALL} record's fdinfo", _FDINFO)


def _check_ints(tag: str, key: str, values: list[Any] | None) -> None:
    if values is not None and not all(type(v) is int and INT_MIN <= v <= INT_MAX for v in values):
        raise RecordFormatError(f"{tag} record: `{key}` wants a list of 64-bit integers")


def _check_depth(tag: str, key: str, value: Any, room: int) -> None:
    if room < 0:
        raise RecordFormatError(f"{tag} record: `{key}` nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for v in value.values():
            if type(v) not in _PLAIN_TYPES:
                _check_depth(tag, key, v, room - 1)
    elif isinstance(value, list | tuple):
        for v in value:
            if type(v) not in _PLAIN_TYPES:
                _check_depth(tag, key, v, room - 1)


_PLAIN_TYPES = frozenset((type(None), bool, int, float, str))
# Floats are checked one by one: JSON has no infinities or NaN.
_ENCODE_PLAIN_TYPES = frozenset((type(None), bool, int, str))


def encode_value(value: Any) -> Any:
    """Map a Python value onto JSON so that `decode_value` gives back an equal value of the same type.

    Plain JSON types pass through; bytes, tuples and dicts that JSON cannot key (or whose
    keys start with "$", the escape) become one-key objects {"$bytes": base64},
    {"$tuple": [...]}, {"$dict": [[key, value], ...]}; infinities and NaN, which JSON lacks,
    {"$float": "inf"}. Exact `type()` checks come first: the recorder's flush thread encodes
    every syscall's args while the tracer wants the same CPUs, so this is a hot path, and a
    dict with nothing to tag (nearly every args dict) is returned as it is, not copied.
    """
    plain = _ENCODE_PLAIN_TYPES
    kind = type(value)
    if kind in plain:
        return value
    if kind is dict and _plain_keys(tuple(value)):
        if plain.issuperset(map(type, value.values())):
            return value
        return {k: v if type(v) in plain else encode_value(v) for k, v in value.items()}
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"$float": repr(float(value))}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, tuple):
        return {"$tuple": [encode_value(v) for v in value]}
    if isinstance(value, list):
        return [v if type(v) in plain else encode_value(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode_value(v) for k, v in value.items()}
        return {"$dict": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    raise TypeError(f"cannot store a {type(value).__name__} in a recording")


def decode_value(value: Any) -> Any:
    """The inverse of `encode_value`, on a freshly parsed value: containers are changed in
    place, as copying each syscall record's dict cost more than the rest of this walk."""
    plain = _PLAIN_TYPES
    kind = type(value)
    if kind in plain:
        return value
    if kind is list:
        for i, v in enumerate(value):
            if type(v) not in plain:
                value[i] = decode_value(v)
        return value
    if kind is not dict:
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == "$bytes":
            # What b64decode(validate=True) checks, without its per-call regex.
            return binascii.a2b_base64(inner, strict_mode=True)
        if key == "$tuple":
            return tuple(decode_value(v) for v in inner)
        if key == "$float" and inner in ("inf", "-inf", "nan"):
            return float(inner)
        if key == "$dict":
            return {_hashable(decode_value(k)): decode_value(v) for k, v in inner}
    for k, v in value.items():
        if type(v) not in plain:
            value[k] = decode_value(v)
    return value


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        raise RecordFormatError("a list cannot be a dict key")
    return key


# -- model objects <-> payloads --------------------------------------------------------


def fdinfo_to_dict(info: FdInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {"kind": info.kind, "local": info.local, "remote": info.remote, "path": info.path, "inode": info.inode}


def fdinfo_from_dict(d: dict[str, Any] | None) -> FdInfo | None:
    """The FdInfo of a record's `fdinfo` object, checked against `_FDINFO` (each distinct
    value once: the check runs when `_fdinfo`'s cache misses)."""
    if d is None:
        return None
    try:
        return _fdinfo(d.get("kind"), d.get("local"), d.get("remote"), d.get("path"), d.get("inode"))
    except (RecordFormatError, TypeError):  # TypeError: an unhashable value, a list or an object
        _check_fdinfo(d)  # words what is wrong
        raise RecordFormatError(f"{TAG_SYSCALL} record's fdinfo is not valid") from None


@functools.lru_cache(maxsize=16384)
def _fdinfo(kind: str, local: str | None, remote: str | None, path: str | None, inode: int | None) -> FdInfo:
    """One shared FdInfo per distinct value: every call on a socket repeats the same identity,
    and a recording of 800k syscalls would otherwise hold 800k copies (readers never mutate it)."""
    _check_fdinfo({"kind": kind, "local": local, "remote": remote, "path": path, "inode": inode})
    return FdInfo(kind, local, remote, path, inode)


def _shared_args(args: dict[str, Any]) -> dict[str, Any]:
    """One shared dict per distinct args value, as `_fdinfo` shares FdInfo: a program's hot
    loop repeats the same few (read of fd 4, 64 bytes), ~200 bytes a copy. Readers never
    mutate loaded args. Only scalars whose equal values are the same value are shared, and
    keyed with their types: False == 0 and -0.0 == 0.0 must not come back as each other;
    other values (floats, lists, tuples, dicts) keep their own dict."""
    kinds = tuple(map(type, args.values()))
    if not _SHAREABLE.issuperset(kinds):
        return args
    return _args(tuple(args.items()), kinds)


_SHAREABLE = frozenset((type(None), bool, int, str, bytes))


@functools.lru_cache(maxsize=16384)
def _args(items: tuple[tuple[str, Any], ...], kinds: tuple[type, ...]) -> dict[str, Any]:
    return dict(items)


_SYSCALL_PREFIX = TAG_SYSCALL.encode() + b"\n"
_CUSTOM_HEAD = struct.Struct("<III")  # block type, total length, PEN
_TOTAL = struct.Struct("<I")
_ZEROS = (b"", b"\0", b"\0\0", b"\0\0\0")


def syscall_block(sc: Syscall) -> bytes:
    """`custom_block(TAG_SYSCALL, syscall_to_dict(sc))`, the same bytes, built directly.

    The recorder's flush thread encodes every traced syscall while the tracer and the
    traced program want the same 2 CPUs (and the GIL): only `args` and `data` can hold
    values that need tagging, so the rest of the record is not walked.
    """
    record = syscall_to_dict(sc)
    record["args"] = encode_value(sc.args)
    if sc.data is not None:
        record["data"] = {"$bytes": binascii.b2a_base64(sc.data, newline=False).decode("ascii")}
    payload = _SYSCALL_PREFIX + dumps(record)
    pad = -len(payload) % 4
    total = 16 + len(payload) + pad
    return b"".join((_CUSTOM_HEAD.pack(BT_CUSTOM, total, PEN), payload, _ZEROS[pad], _TOTAL.pack(total)))


@functools.lru_cache(maxsize=1024)
def _plain_keys(keys: tuple[Any, ...]) -> bool:
    """Keys `encode_value` passes through unchanged: strings, none starting with the "$" escape."""
    return all(type(k) is str and k[:1] != "$" for k in keys)


def syscall_to_dict(sc: Syscall) -> dict[str, Any]:
    return {
        "id": sc.id,
        "pid": sc.pid,
        "tid": sc.tid,
        "name": sc.name,
        "enter_ns": sc.enter_ns,
        "exit_ns": sc.exit_ns,
        "ret": sc.ret,
        "errno": sc.errno,
        "fd": sc.fd,
        "fdinfo": fdinfo_to_dict(sc.fdinfo),
        "ret_fdinfo": fdinfo_to_dict(sc.ret_fdinfo),
        "nbytes": sc.nbytes,
        "data": sc.data,
        "msg_lens": sc.msg_lens,
        "args": sc.args,
    }


def syscall_from_dict(d: dict[str, Any]) -> Syscall:
    return Syscall(
        id=d["id"],
        pid=d["pid"],
        tid=d["tid"],
        name=d["name"],
        enter_ns=d["enter_ns"],
        args=_shared_args(d.get("args") or {}),
        exit_ns=d.get("exit_ns"),
        ret=d.get("ret"),
        errno=d.get("errno"),
        fd=d.get("fd"),
        fdinfo=fdinfo_from_dict(d.get("fdinfo")),
        ret_fdinfo=fdinfo_from_dict(d.get("ret_fdinfo")),
        nbytes=d.get("nbytes"),
        data=d.get("data"),
        msg_lens=d.get("msg_lens"),
    )


def link_to_dict(link: Link) -> dict[str, Any]:
    return {
        "id": link.id,
        "kind": link.kind,
        "syscall": link.syscall,
        "packets": link.packets,
        "delay_ns": link.delay_ns,
        "note": link.note,
    }


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """A Finding as the recording's `finding` record and the JSON report both write it."""
    return {
        "kind": finding.kind,
        "severity": finding.severity,
        "connection": finding.connection,
        "evidence": finding.evidence,
        "message": finding.message,
    }


def link_from_dict(d: dict[str, Any]) -> Link:
    return Link(
        id=d["id"],
        kind=d["kind"],
        syscall=d["syscall"],
        packets=list(d["packets"]),
        delay_ns=d.get("delay_ns"),
        note=d.get("note"),
    )


# -- packet comments -------------------------------------------------------------------


def format_delay(delay_ns: int) -> str:
    """Signed and scaled so a glance tells µs-level kernel latency from ms-level app waits."""
    sign = "-" if delay_ns < 0 else "+"
    mag = abs(delay_ns)
    if mag < 1_000_000:
        return f"{sign}{mag // 1000}µs"
    if mag < 1_000_000_000:
        return f"{sign}{mag / 1e6:.3f}ms"
    return f"{sign}{mag / 1e9:.3f}s"


def link_comment(sc: Syscall, delay_ns: int | None) -> str:
    """The EPB comment naming a packet's syscall, e.g. `write(fd=5, 6 B) pid 1234 +42µs`.

    It is what a Wireshark user sees in the packet list's comment column, so it names the
    call the way strace would and leaves the full record to the Custom Blocks.
    """
    inner = []
    if sc.fd is not None:
        inner.append(f"fd={sc.fd}")
    if sc.nbytes is not None:
        inner.append(f"{sc.nbytes} B")
    text = f"{sc.name}({', '.join(inner)})"
    if sc.errno is not None:
        text += f" = {sc.errno}"
    text += f" pid {sc.pid}"
    if sc.tid != sc.pid:
        text += f" tid {sc.tid}"
    if delay_ns is not None:
        text += " " + format_delay(delay_ns)
    return text
