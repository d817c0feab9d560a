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
from collections.abc import Iterable, Mapping
from typing import Any

from wirecorr.json_codec import dumps, loads
from wirecorr.model import FdInfo, Link, Syscall

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
    """Split a Custom Block's data (after the PEN) into its tag and payload."""
    tag, sep, body = data.rstrip(b"\0").partition(b"\n")
    if not sep:
        raise RecordFormatError("record has no tag line")
    try:
        payload = decode_value(loads(body))
    except (ValueError, UnicodeDecodeError) as e:
        raise RecordFormatError(f"{tag.decode(errors='replace')} record is not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise RecordFormatError(f"{tag.decode(errors='replace')} record is not a JSON object")
    return tag.decode(errors="replace"), payload


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
    if d is None:
        return None
    return _fdinfo(d["kind"], d.get("local"), d.get("remote"), d.get("path"), d.get("inode"))


@functools.lru_cache(maxsize=16384)
def _fdinfo(kind: str, local: str | None, remote: str | None, path: str | None, inode: int | None) -> FdInfo:
    """One shared FdInfo per distinct value: every call on a socket repeats the same identity,
    and a recording of 800k syscalls would otherwise hold 800k copies (readers never mutate it)."""
    return FdInfo(kind, local, remote, path, inode)


def _shared_args(args: dict[str, Any]) -> dict[str, Any]:
    """One shared dict per distinct args value, as `_fdinfo` shares FdInfo: a program's hot
    loop repeats the same few (read of fd 4, 64 bytes), ~200 bytes a copy. Readers never
    mutate loaded args; values that cannot be hashed (lists, dicts) keep their own dict."""
    try:
        return _args(tuple(args.items()))
    except TypeError:
        return args


@functools.lru_cache(maxsize=16384)
def _args(items: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
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
