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
The links come from the engine (`engine.ingest.annotate` correlates, then calls `rewrite`):
this module knows the file, not what the events mean.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

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


def iter_blocks(f: BinaryIO, path: str) -> Iterator[tuple[int, bytes]]:
    """(block type, whole block) of a little-endian pcapng file, in file order.

    Only what RecordingWriter writes is accepted (one little-endian section): rewriting a
    file we do not fully understand could damage it, and the caller keeps the original.
    """
    offset = 0
    while True:
        head = f.read(8)
        if not head:
            return
        if len(head) < 8:
            raise AnnotateError(f"{path}: file ends inside a block at byte {offset}")
        btype, blen = struct.unpack("<II", head)
        if blen < 12 or blen % 4:
            raise AnnotateError(f"{path}: corrupt block length {blen} at byte {offset}")
        if offset and btype == fmt.BT_SHB:
            raise AnnotateError(f"{path}: a second pcapng section at byte {offset} (not a wirecorr recording)")
        rest = f.read(blen - 8)
        if len(rest) < blen - 8:
            raise AnnotateError(f"{path}: file ends inside a block at byte {offset}")
        if offset == 0 and (btype != fmt.BT_SHB or rest[:4] != _LITTLE_ENDIAN):
            raise AnnotateError(f"{path}: not a little-endian pcapng file")
        yield btype, head + rest
        offset += blen


def _record_tag(block: bytes) -> str | None:
    """The tag of a wirecorr Custom Block record, None for any other block."""
    if len(block) < 16 or struct.unpack_from("<I", block, 8)[0] != fmt.PEN:
        return None
    return block[12:76].partition(b"\n")[0].decode("ascii", "replace")


def _with_comments(block: bytes, comments: list[str]) -> bytes:
    """The EPB `block` with `comments` appended to its options (existing options kept)."""
    caplen = struct.unpack_from("<I", block, 20)[0]
    data_end = 28 + ((caplen + 3) & ~3)
    options = bytearray()
    pos, end = data_end, len(block) - 4
    while pos + 4 <= end:
        code, length = struct.unpack_from("<HH", block, pos)
        if code == fmt.OPT_ENDOFOPT:
            break
        size = 4 + ((length + 3) & ~3)
        options += block[pos : pos + size]
        pos += size
    for text in comments:
        value = text.encode()
        options += struct.pack("<HH", fmt.OPT_COMMENT, len(value)) + value + b"\0" * (-len(value) % 4)
    options += struct.pack("<HH", fmt.OPT_ENDOFOPT, 0)
    body = block[8:data_end] + bytes(options)
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


def rewrite(
    path: str, links: list[Link], findings: list[Finding], syscall: Callable[[int], Syscall | None]
) -> Annotation:
    """Rewrite the recording at `path` with the links and findings the engine drew from it
    (`engine.ingest.annotate` reads and correlates it first).

    Raises AnnotateError (or OSError) with the original untouched. A file that already
    holds link records was annotated before: rewriting it would duplicate every comment.
    """
    comments = comments_by_packet(links, syscall)
    found = b"".join(fmt.custom_block(TAG_FINDING, fmt.finding_to_dict(f)) for f in findings)

    def extra(version: int) -> bytes:
        """The link and finding records, links in the recording's own format."""
        if version >= 2:
            from wirecorr.recording.columns import link_blocks  # pyarrow: see reader._add_batch

            return link_blocks(links) + found
        return b"".join(fmt.custom_block(fmt.TAG_LINK, fmt.link_to_dict(link)) for link in links) + found

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
            for btype, block in iter_blocks(src, path):
                if btype in _PACKET_BLOCKS:
                    texts = comments.get(index) if btype == fmt.BT_EPB else None
                    out.write(_with_comments(block, texts) if texts else block)
                    index += 1
                    continue
                if btype in (fmt.BT_CUSTOM, _BT_CUSTOM_NOCOPY):
                    tag = _record_tag(block)
                    if tag in (fmt.TAG_LINK, fmt.TAG_LINKS, TAG_FINDING):
                        raise AnnotateError(f"{path} already holds links (annotated before)")
                    if tag == fmt.TAG_HEADER:
                        version = fmt.decode_record(block[12:-4])[1]["format"]
                    if tag == fmt.TAG_SUMMARY and not placed:
                        out.write(extra(version))
                        placed = True
                out.write(block)
            if not placed:
                out.write(extra(version))
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
    return Annotation(links=len(links), packets=len(comments), findings=len(findings))
