"""Write the correlation into a finished Recording: packet comments, link and finding records.

`wirecorr record` writes packets and syscalls as they happen and cannot know the links
until both sides are complete, so the links are added afterwards by rewriting the file:
every linked packet's EPB gets one `opt_comment` per linked syscall (what a Wireshark user
sees as `frame.comment`), and `link` and `finding` records go just before the summary
record (docs/recording-format.md). The rewrite goes to a temporary file in the same
directory that replaces the original only once complete (`os.replace`), so a failure or
an interrupt at any point leaves the original recording exactly as it was.

Blocks are copied byte for byte except the EPBs that get comments; the packet indices in
`Link.packets` count packet blocks (EPB, SPB, PB) in file order, as every reader does.
The links come from the engine (`engine.linking.annotate` correlates, then calls `rewrite_with`):
this module knows the file, not what the events mean.
"""

from __future__ import annotations

import contextlib
import functools
import os
import struct
import tempfile
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import BinaryIO, NamedTuple, Protocol

from wirecorr._core import pure_requested
from wirecorr.errors import WirecorrError
from wirecorr.model import Finding, Link, Syscall
from wirecorr.recording import format as fmt

TAG_FINDING = "finding"

_BT_SPB = 0x00000003
_BT_PB = 0x00000002
_BT_CUSTOM_NOCOPY = 0x40000BAD
_PACKET_BLOCKS = frozenset((fmt.BT_EPB, _BT_SPB, _BT_PB))
_LITTLE_ENDIAN = struct.pack("<I", fmt.BYTE_ORDER_MAGIC)


class AnnotateError(WirecorrError):
    """The recording could not be annotated; it is left unchanged."""


@dataclass
class Annotation:
    links: int
    packets: int
    findings: int


# iter_blocks reads the file this much at a time: two reads per block (a syscall's EPB is
# ≈ 100 bytes) cost more than the rest of its walk.
_READ = 1 << 20
_HEAD = struct.Struct("<II")


def iter_blocks(f: BinaryIO, path: str) -> Iterator[tuple[int, bytes]]:
    """(block type, whole block) of a little-endian pcapng file, in file order.

    Only what RecordingWriter writes is accepted (one little-endian section): rewriting a
    file we do not fully understand could damage it, and the caller keeps the original.
    """
    blocks = _Blocks(f, path)
    while (item := blocks.next()) is not None:
        yield item


class _Blocks:
    """`iter_blocks` a block at a time; `data[pos:]` is the file from byte `base + pos`
    on, for `rewrite` to copy runs of packet blocks from without a call per block."""

    def __init__(self, f: BinaryIO, path: str) -> None:
        self.f = f
        self.path = path
        self.data = b""
        self.pos = 0
        self.base = 0

    def next(self) -> tuple[int, bytes] | None:
        """The next block, None at the end of the file."""
        path, pos = self.path, self.pos
        if len(self.data) - pos < 8:
            self.data, self.base, pos = self.data[pos:] + self.f.read(_READ), self.base + pos, 0
            self.pos = 0
            if not self.data:
                return None
            if len(self.data) < 8:
                raise AnnotateError(f"{path}: file ends inside a block at byte {self.base}")
        offset = self.base + pos
        btype, blen = _HEAD.unpack_from(self.data, pos)
        if blen < 12 or blen % 4:
            raise AnnotateError(f"{path}: corrupt block length {blen} at byte {offset}")
        if offset and btype == fmt.BT_SHB:
            raise AnnotateError(f"{path}: a second pcapng section at byte {offset} (not a wirecorr recording)")
        if len(self.data) - pos < blen:
            more = self.f.read(max(_READ, blen - (len(self.data) - pos)))
            self.data, self.base, pos = self.data[pos:] + more, offset, 0
            if len(self.data) < blen:
                raise AnnotateError(f"{path}: file ends inside a block at byte {offset}")
        block = self.data[pos : pos + blen]
        if offset == 0 and (btype != fmt.BT_SHB or block[8:12] != _LITTLE_ENDIAN):
            raise AnnotateError(f"{path}: not a little-endian pcapng file")
        self.pos = pos + blen
        return btype, block


def _record_tag(block: bytes) -> str | None:
    """The tag of a wirecorr Custom Block record, None for any other block."""
    if len(block) < 16 or struct.unpack_from("<I", block, 8)[0] != fmt.PEN:
        return None
    return block[12:76].partition(b"\n")[0].decode("ascii", "replace")


def _with_options(block: bytes, options: bytes) -> bytes:
    """The EPB `block` with the options `options` appended to its own (existing kept)."""
    caplen = struct.unpack_from("<I", block, 20)[0]
    data_end = 28 + ((caplen + 3) & ~3)
    own = bytearray()
    pos, end = data_end, len(block) - 4
    while pos + 4 <= end:
        code, length = struct.unpack_from("<HH", block, pos)
        if code == fmt.OPT_ENDOFOPT:
            break
        size = 4 + ((length + 3) & ~3)
        own += block[pos : pos + size]
        pos += size
    body = block[8:data_end] + bytes(own) + options + struct.pack("<HH", fmt.OPT_ENDOFOPT, 0)
    total = 12 + len(body)
    return struct.pack("<II", fmt.BT_EPB, total) + body + struct.pack("<I", total)


def comments_by_packet(links: Iterable[Link], syscall: Callable[[int], Syscall | None]) -> dict[int, list[str]]:
    """Packet index → one `link_comment` per link naming it, in link order."""
    out: dict[int, list[str]] = {}
    for link in links:
        sc = syscall(link.syscall)
        if sc is None:
            continue
        text = fmt.link_comment(sc, link.delay_ns)
        for idx in link.packets:
            out.setdefault(idx, []).append(text)
    return out


def _comment_option(text: str) -> bytes:
    value = text.encode()
    return struct.pack("<HH", fmt.OPT_COMMENT, len(value)) + value + b"\0" * (-len(value) % 4)


def _link_option(sc: Syscall, delay_ns: int | None) -> bytes:
    return _comment_option(fmt.link_comment(sc, delay_ns))


def _comment_options(links: list[Link], syscall: Callable[[int], Syscall | None]) -> dict[int, bytes]:
    """The reference of `_core.comments.comment_options`: packet index → its comments'
    `opt_comment` options, in link order."""
    return {idx: b"".join(map(_comment_option, texts)) for idx, texts in comments_by_packet(links, syscall).items()}


class PacketOptions(Protocol):
    """What the rewrite asks of the packets' comment options: a dict, or a collector."""

    def get(self, idx: int, /) -> bytes | None: ...

    def __len__(self) -> int: ...


class PacketCommentCollector(PacketOptions, Protocol):
    """Packet comments gathered from links given in batches, in any order."""

    @property
    def options(self) -> dict[int, bytes]: ...

    def add(self, links: list[Link], syscall: Callable[[int], Syscall | None]) -> None: ...


class PacketCommentsReference:
    """The reference of `_core.comments.PacketComments`: packet index → its links'
    options in link id order, each part kept with its id."""

    def __init__(self) -> None:
        self._parts: dict[int, list[tuple[int, bytes]]] = {}

    def add(self, links: list[Link], syscall: Callable[[int], Syscall | None]) -> None:
        for link in links:
            sc = syscall(link.syscall)
            if sc is None:
                continue
            text = fmt.link_comment(sc, link.delay_ns)
            if not link.packets:
                continue
            option = _comment_option(text)
            for idx in link.packets:
                if idx < 0:
                    raise ValueError(f"packet index {idx} is negative")
                parts = self._parts.setdefault(idx, [])
                # After the parts of the same id or lower.
                parts.insert(bisect_right(parts, link.id, key=_PART_ID), (link.id, option))

    def get(self, idx: int) -> bytes | None:
        parts = self._parts.get(idx)
        return None if parts is None else b"".join(option for _, option in parts)

    def __len__(self) -> int:
        return len(self._parts)

    @property
    def options(self) -> dict[int, bytes]:
        return {idx: b"".join(option for _, option in parts) for idx, parts in self._parts.items()}


_PART_ID = itemgetter(0)


class Comments(NamedTuple):
    """How the rewrite makes its comments: compiled, or the reference (WIRECORR_PURE=1)."""

    options: Callable[[list[Link], Callable[[int], Syscall | None]], dict[int, bytes]]
    apply: Callable[[bytes, bytes], bytes]
    # `_core.comments.copy_packets`, compiled only: the reference takes each block as it comes.
    packets: Callable[[bytes, int, int, PacketOptions], tuple[bytes, int, int]] | None
    # A new collector of comments from links in batches (the streaming linking pass).
    collector: Callable[[], PacketCommentCollector]


def comments(*, compiled: bool | None = None) -> Comments:
    """`compiled` None lets WIRECORR_PURE decide; a missing build is an error, never a
    silent fall back (as `correlator._new_lane`)."""
    if pure_requested() if compiled is None else not compiled:
        return Comments(_comment_options, _with_options, None, PacketCommentsReference)
    try:
        from wirecorr._core.comments import PacketComments, comment_options, copy_packets, with_options
    except ImportError as e:
        raise WirecorrError(
            f"the compiled packet comments are not built ({e}): run `make` or `pip install -e .`, "
            "or set WIRECORR_PURE=1 for the (slower) pure-Python path"
        ) from None
    return Comments(
        functools.partial(comment_options, fallback=_link_option),
        functools.partial(with_options, rebuild=_with_options),
        functools.partial(copy_packets, rebuild=_with_options),
        functools.partial(PacketComments, _link_option),
    )


def rewrite(
    path: str, links: Iterable[Link], findings: list[Finding], syscall: Callable[[int], Syscall | None]
) -> Annotation:
    """Rewrite the recording at `path` with the links and findings the engine drew from it
    (the whole analysis held in memory). `record`'s linking pass streams instead
    (`engine.linking.annotate`); this is its reference in tests/test_linking.py and
    bench/correlate_scaling --linking.

    Raises AnnotateError (or OSError) with the original untouched. A file that already
    holds link records was annotated before: rewriting it would duplicate every comment.
    """
    links = list(links)  # the correlator's `LinkTable` too
    how = comments()
    options = how.options(links, syscall)

    def records(out: BinaryIO, version: int) -> None:
        out.write(link_records(links, version))
        out.write(finding_records(findings))

    rewrite_with(path, options, records, how)
    return Annotation(links=len(links), packets=len(options), findings=len(findings))


def link_records(links: Sequence[Link], version: int) -> bytes:
    """The Custom Blocks of `links` in a recording of format `version`."""
    if version >= 2:
        from wirecorr.recording.columns import link_blocks  # pyarrow: see reader._add_batch

        return link_blocks(links)
    return b"".join(fmt.custom_block(fmt.TAG_LINK, fmt.link_to_dict(link)) for link in links)


def finding_records(findings: Iterable[Finding]) -> bytes:
    return b"".join(fmt.custom_block(TAG_FINDING, fmt.finding_to_dict(f)) for f in findings)


def rewrite_with(path: str, options: PacketOptions, records: Callable[[BinaryIO, int], None], how: Comments) -> None:
    """`rewrite` with the packets' comment options (packet index → options) made, and
    `records(out, version)` writing the link and finding records before the summary."""
    directory = os.path.dirname(os.path.abspath(path))
    # mkstemp creates the file 0600, what the recording itself has (docs/recording-format.md).
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".annotating", dir=directory)
    try:
        with (
            os.fdopen(fd, "wb", buffering=1 << 20) as out,
            os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb", buffering=1 << 20) as src,
        ):
            index = 0
            placed = False
            version = 1
            blocks = _Blocks(src, path)
            while True:
                if how.packets is not None and blocks.base + blocks.pos:
                    copied, blocks.pos, index = how.packets(blocks.data, blocks.pos, index, options)
                    out.write(copied)
                item = blocks.next()
                if item is None:
                    break
                btype, block = item
                if btype in _PACKET_BLOCKS:
                    own = options.get(index) if btype == fmt.BT_EPB else None
                    out.write(how.apply(block, own) if own else block)
                    index += 1
                    continue
                if btype in (fmt.BT_CUSTOM, _BT_CUSTOM_NOCOPY):
                    tag = _record_tag(block)
                    if tag in (fmt.TAG_LINK, fmt.TAG_LINKS, TAG_FINDING):
                        raise AnnotateError(f"{path} already holds links (annotated before)")
                    if tag == fmt.TAG_HEADER:
                        version = fmt.decode_record(block[12:-4])[1]["format"]
                    if tag == fmt.TAG_SUMMARY and not placed:
                        records(out, version)
                        placed = True
                out.write(block)
            if not placed:
                records(out, version)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
