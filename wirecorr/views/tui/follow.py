"""Follow TCP Stream for one connection, with the syscalls that wrote and read each chunk.

Like Wireshark's dialog: both directions' payload in wire order, consecutive segments of
one direction merged into a chunk, bytes already delivered (retransmissions, overlaps)
shown once. Unlike it, each chunk names the `write()`s that produced it and the `read()`s
that consumed it, from the correlator's write-data/read-data links: how the app's calls
map onto the byte stream (one write in many segments, many writes in one) is visible.

Bytes the capture lacks (snaplen, a lost segment) are marked where they fall in the
stream, hex offsets are stream offsets (counted from the first byte after the SYN, gaps
included), long lines wrap at the screen's width, and the two directions have their own
colours, as in Wireshark. Packets are named by Wireshark's frame numbers.

Payload is re-read from the capture (the engine keeps no packet bytes), only for the
first `MAX_BYTES` of the stream so a bulk transfer does not stall the UI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from wirecorr.engine.session import Session
from wirecorr.errors import InputError
from wirecorr.model import Syscall
from wirecorr.views.tui.conn_events import call_label
from wirecorr.views.tui.packet_access import SessionPackets

MAX_BYTES = 1 << 20
DIR_STYLES = (Style(color="indian_red1"), Style(color="dodger_blue1"))
PRINTABLE = frozenset(range(0x20, 0x7F))


@dataclass(slots=True)
class Chunk:
    """Consecutive new bytes of one direction, with the packets and calls behind them."""

    direction: int
    data: bytearray = field(default_factory=bytearray)
    packets: list[int] = field(default_factory=list)
    writers: list[Syscall] = field(default_factory=list)
    readers: list[Syscall] = field(default_factory=list)
    # (position in data, bytes) of stream bytes the capture does not hold
    gaps: list[tuple[int, int]] = field(default_factory=list)
    stream_offset: int = 0


def stream_chunks(
    session: Session, conn_id: int, packets: SessionPackets, limit: int = MAX_BYTES
) -> tuple[list[Chunk], bool]:
    """The connection's chunks and whether `limit` cut the stream short."""
    table = session.analyzer.table
    conn = session.analyzer.connections[conn_id]
    links = session.correlator.links
    plinks = session.correlator.packet_links
    next_seq = [1, 1]  # relative seq of the first data byte after the SYN
    chunks: list[Chunk] = []
    total = 0
    for idx in conn.packet_indices:
        seglen = table.seglen[idx]
        if not seglen:
            continue
        d = table.direction[idx]
        seq = table.rel_seq[idx]
        end = seq + seglen
        if end <= next_seq[d]:
            continue  # a retransmission or overlap of bytes already shown
        if total >= limit:
            return chunks, True
        if not chunks or chunks[-1].direction != d:
            chunks.append(Chunk(d, stream_offset=next_seq[d] - 1))
        chunk = chunks[-1]
        if seq > next_seq[d]:
            chunk.gaps.append((len(chunk.data), seq - next_seq[d]))
        payload = packets.payload(idx)
        skip = max(next_seq[d] - seq, 0)
        new = payload[skip:]
        chunk.data += new
        missing = seglen - skip - len(new)
        if missing > 0:
            chunk.gaps.append((len(chunk.data), missing))
        total += len(new)
        next_seq[d] = end
        chunk.packets.append(idx)
        for lid in plinks.get(idx, ()):
            link = links[lid]
            sc = session.syscall(link.syscall)
            if sc is None:
                continue
            group = chunk.writers if link.kind == "write-data" else chunk.readers if link.kind == "read-data" else None
            if group is not None and all(other.id != sc.id for other in group):
                group.append(sc)
    return chunks, False


def ascii_lines(data: bytes) -> list[str]:
    """Text as Wireshark's ASCII view shows it: line breaks kept, other non-printables '.'."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return ["".join(chr(b) if b in PRINTABLE else "." for b in line) for line in lines]


def hex_lines(data: bytes, offset: int) -> list[str]:
    out = []
    for i in range(0, len(data), 16):
        row = data[i : i + 16]
        hexpart = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if b in PRINTABLE else "." for b in row)
        out.append(f"{offset + i:08x}  {hexpart:<47}  {text}")
    return out


class FollowStream(ScrollView, can_focus=True):
    """Follow TCP Stream of connection `conn_id`; `x` toggles ASCII / hex."""

    BINDINGS = [Binding("x", "toggle_hex", "Hex/ASCII")]

    DEFAULT_CSS = """
    FollowStream { height: 1fr; }
    """

    hex_mode = reactive(False)

    def __init__(
        self,
        session: Session,
        conn_id: int,
        *,
        packets: SessionPackets | None = None,
        frame: Callable[[int], int] | None = None,
        name: str | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id)
        self.session = session
        self.conn_id = conn_id
        self.frame = frame or (lambda index: index + 1)
        self.logical: list[Text] = []
        self.lines: list[Text] = []
        self._wrapped_at = 0
        self.chunks: list[Chunk] = []
        self.truncated = False
        self.problem: str | None = None
        self._own_packets = packets is None
        self.packets: SessionPackets | None = packets
        try:
            if self.packets is None:
                self.packets = SessionPackets(session)
            self.chunks, self.truncated = stream_chunks(session, conn_id, self.packets)
        except InputError as e:
            # No capture file (a strace-only session) or a damaged one: say so in the view.
            self.problem = str(e)
        self._build()

    def on_unmount(self) -> None:
        if self._own_packets and self.packets is not None:
            self.packets.close()

    def _build(self) -> None:
        conn = self.session.analyzer.connections[self.conn_id]
        ends = ((conn.client, conn.server), (conn.server, conn.client))
        lines: list[Text] = []
        for chunk in self.chunks:
            style = DIR_STYLES[chunk.direction]
            src, dst = ends[chunk.direction]
            who = ("client", "server") if chunk.direction == 0 else ("server", "client")
            frames = _ranges([self.frame(i) for i in chunk.packets])
            size = f"{len(chunk.data)} B  at {chunk.stream_offset}"
            head = f"── {who[0]} {src} → {who[1]} {dst}  {size}  frame(s) {frames}"
            lines.append(Text(head, style + Style(bold=True)))
            for who, calls in (("written by", chunk.writers), ("read by", chunk.readers)):
                if calls:
                    shown = ", ".join(f"{call_label(sc)} [pid {sc.pid}]" for sc in calls[:6])
                    more = f" … +{len(calls) - 6}" if len(calls) > 6 else ""
                    lines.append(Text(f"   {who} {shown}{more}", style="dim"))
            data = bytes(chunk.data)
            at, offset = 0, chunk.stream_offset
            for pos, missing in [*chunk.gaps, (len(data), 0)]:
                piece = data[at:pos]
                body = hex_lines(piece, offset) if self.hex_mode else ascii_lines(piece)
                lines.extend(Text(line, style) for line in body)
                offset += len(piece) + missing
                at = pos
                if missing:
                    lines.append(Text(f"   [{missing} bytes not captured]", style=style + Style(italic=True, dim=True)))
        if self.truncated:
            lines.append(Text(f"[stream cut at {MAX_BYTES} bytes]", style="italic dim"))
        if self.problem:
            lines.append(Text(f"cannot read the payload: {self.problem}", style="bold red"))
        elif not self.chunks:
            lines.append(Text("no payload in either direction", style="dim"))
        self.logical = lines
        self._wrapped_at = 0
        self._wrap()

    def _wrap(self) -> None:
        """Cut logical lines into screen lines of the widget's width (Wireshark wraps too)."""
        # Two columns stay free for the vertical scrollbar, which long streams get.
        width = max((self.size.width or 80) - 2, 20)
        if width == self._wrapped_at:
            return
        self._wrapped_at = width
        out: list[Text] = []
        for line in self.logical:
            if line.cell_len <= width:
                out.append(line)
            else:
                out.extend(line.divide(range(width, len(line.plain), width)))
        self.lines = out
        self.virtual_size = Size(width, len(out))
        self.refresh()

    def on_resize(self) -> None:
        self._wrap()

    def watch_hex_mode(self) -> None:
        self._build()

    def action_toggle_hex(self) -> None:
        self.hex_mode = not self.hex_mode

    def render_line(self, y: int) -> Strip:
        i = y + self.scroll_offset.y
        width = self.size.width
        base = self.rich_style
        if i >= len(self.lines):
            return Strip.blank(width, base)
        line = self.lines[i]
        # `Text.render` leaves out the Text's own style (its spans only): the direction's
        # colour is that style, so it goes on here, over the widget's.
        console = self.app.console
        segments = Segment.apply_style(line.render(console), base + console.get_style(line.style))
        return Strip(segments).crop_extend(0, width, base)

    def text_lines(self) -> list[str]:
        """The logical (unwrapped) lines as plain text, for tests and reports."""
        return [line.plain for line in self.logical]


def _ranges(indices: list[int]) -> str:
    """`3, 5-9`: packet lists of bulk transfers stay one line."""
    out: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(out)
