"""The Detail pane: everything known about the row under the cursor.

The answer comes first: the result, then the links (which packets a syscall became, which
syscall a packet came from or went to, with the delay) and the findings, and only then
the arguments, the descriptor and the bytes. Syscall: arguments, duration, what its fd
was (and what it returned), the bytes it moved. Packet: decoded fields, analysis, why the
kernel sent it when no syscall did, and its bytes. Frames are numbered as Wireshark numbers
them, syscalls by their id (`syscall #52`), as the Detail title of a syscall shows it.
`d` adds the pyshark DissectionTree below; that widget loads in its own worker, so asking
for it never blocks the UI.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from wirecorr.engine.analysis_flags import flag_names
from wirecorr.model import FdInfo, fmt_ns, format_endpoint
from wirecorr.views.syscall_format import format_fd
from wirecorr.views.text_report import fmt_abs
from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.row_text import fmt_options, packet_summary
from wirecorr.views.tui.rows import is_syscall_ref, packet_ref, ref_pos


def hexdump(data: bytes, limit: int = 256) -> str:
    lines = []
    for off in range(0, min(len(data), limit), 16):
        chunk = data[off : off + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"  {off:04x}  {hexes:<47}  {text}")
    if len(data) > limit:
        lines.append(f"  … {len(data) - limit} more bytes")
    return "\n".join(lines)


def _fd_line(label: str, fd: int | None, info: FdInfo | None) -> str:
    if fd is None:
        return ""
    if info is None:
        return f"{label}{fd} (not known)\n"
    parts = [info.kind]
    if info.local:
        parts.append(f"local {info.local}")
    if info.remote:
        parts.append(f"remote {info.remote}")
    if info.path:
        parts.append(info.path)
    if info.inode:
        parts.append(f"inode {info.inode}")
    return f"{label}{format_fd(fd, info)}  ({', '.join(parts)})\n"


def describe(index: EventIndex, ref: int) -> Text:
    return _describe_call(index, ref) if is_syscall_ref(ref) else _describe_packet(index, ref_pos(ref))


def _describe_call(index: EventIndex, ref: int) -> Text:
    sc = index.call(ref)
    out = Text()
    out.append(f"{sc.name}", "bold yellow")
    out.append(f"  syscall #{sc.id}  pid {sc.pid} tid {sc.tid}\n")
    if sc.ret is None:
        out.append("  result     ? (the thread did not return)\n", "red")
    elif sc.errno:
        out.append(f"  result     -1 {sc.errno}\n", "bold red")
    else:
        out.append(f"  result     {sc.ret}\n")
    _links(index, ref, out)
    _findings(index, ref, out)
    for key, value in sc.args.items():
        if key != "raw" and not (key == "fd" and sc.fd is not None):
            out.append(f"  {key:<10} {value}\n")
    took = fmt_ns(sc.exit_ns - sc.enter_ns) if sc.exit_ns is not None else "-"
    out.append(f"  entered    {fmt_abs(sc.enter_ns)}\n  took       {took}\n")
    out.append(_fd_line("  fd         ", sc.fd, sc.fdinfo))
    if sc.ret_fdinfo is not None and isinstance(sc.ret, int):
        out.append(_fd_line("  returned   ", sc.ret, sc.ret_fdinfo))
    conn = index.conn_of(ref)
    if conn is not None:
        out.append(f"  connection #{conn}\n")
    if sc.nbytes is not None:
        out.append(f"  bytes      {sc.nbytes}" + (f" (per message: {sc.msg_lens})" if sc.msg_lens else "") + "\n")
    if sc.data:
        out.append(f"  data (first {len(sc.data)} bytes)\n{hexdump(sc.data)}\n")
    return out


def _describe_packet(index: EventIndex, i: int) -> Text:
    session = index.session
    table = session.analyzer.table
    row = table.row(i)
    out = Text()
    out.append(f"frame {index.frame(i)}", "bold cyan")
    out.append(f"  {fmt_abs(row.ts_ns)}  at byte {row.offset}\n")
    out.append(f"  {packet_summary(index, i)}\n")
    _links(index, packet_ref(i), out)
    _findings(index, packet_ref(i), out)
    pkt = index.packets.get(i)
    if row.conn >= 0:
        conn = session.analyzer.connections[row.conn]
        way = "client → server" if row.direction == 0 else "server → client"
        out.append(f"  connection #{conn.id} {conn.proto.upper()} {conn.client} → {conn.server}, {way}\n")
        traced = {
            (True, True): "both ends",
            (True, False): "the client's end",
            (False, True): "the server's end",
            (False, False): "neither end",
        }[index.traced_ends(packet_ref(i))]
        out.append(f"  traced     {traced}\n")
        if conn.proto == "tcp":
            out.append(
                f"  seq {row.rel_seq}  ack {row.rel_ack}  win {row.window}  len {row.seglen}"
                f"  in flight {row.bytes_in_flight}\n"
            )
        if row.analysis:
            out.append(f"  analysis   {', '.join(flag_names(row.analysis))}\n", "magenta")
        if row.ack_rtt_ns is not None:
            acked = index.frame(row.acked_frame or 0)
            out.append(f"  ack rtt    {fmt_ns(row.ack_rtt_ns)} (acks frame {acked})\n")
        label = index.label(packet_ref(i))
        if isinstance(label, str):
            out.append(f"  kernel-only: {label} (no syscall caused or consumed it)\n", "dim")
    if pkt is not None:
        if pkt.src:
            out.append(
                f"  {format_endpoint(pkt.src, pkt.sport)} → {format_endpoint(pkt.dst, pkt.dport)}"
                f"  IPv{pkt.ip_version}  wire {pkt.wirelen} B, captured {pkt.caplen} B\n"
            )
        if opts := fmt_options(pkt):
            out.append(f"  options    {opts}\n")
        if pkt.comment:
            out.append(f"  comment    {pkt.comment}\n")
        out.append(f"  bytes\n{hexdump(pkt.frame)}\n")
    else:
        out.append("  (frame bytes not available)\n", "dim")
    return out


def _links(index: EventIndex, ref: int, out: Text) -> None:
    for link in index.links(ref):
        frames = ", ".join(str(index.frame(i)) for i in link.packets[:12]) + (" …" if len(link.packets) > 12 else "")
        delay = f"  delay {fmt_ns(link.delay_ns)}" if link.delay_ns is not None else ""
        note = f"  ({link.note})" if link.note else ""
        call_ref = index.ref_of_call_id(link.syscall)
        name = index.call(call_ref).name if call_ref is not None else "syscall"
        out.append(f"  L{link.id} {link.kind}{delay}: {name} #{link.syscall} ↔ frames [{frames}]{note}\n", "bold")


def _findings(index: EventIndex, ref: int, out: Text) -> None:
    findings = index.findings
    for number in index.finding_refs.get(ref, ()):
        f = findings[number]
        out.append(f"  ! {f.severity} {f.kind}: {f.message}\n", "bold magenta")


class Detail(VerticalScroll, can_focus=True):
    DEFAULT_CSS = """
    Detail { height: 14; border: round $panel; }
    Detail:focus { border: round $accent; }
    Detail > .dissection { height: 24; border-top: solid $panel; }
    """

    def __init__(self, index: EventIndex, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index = index
        self.border_title = "Detail"
        self.body = Static(id="detail-body")
        self.ref: int | None = None

    def compose(self) -> ComposeResult:
        yield self.body

    def show(self, ref: int | None) -> None:
        self.ref = ref
        for extra in self.query(".dissection"):
            extra.remove()
        self.body.update(describe(self.index, ref) if ref is not None else Text("no rows", "dim"))

    def on_resize(self) -> None:
        # The first row is shown before the screen's breakpoints settle the pane's width;
        # the text measured for that width would keep its height (one line) otherwise.
        self.body.refresh(layout=True)

    def add_dissection(self, widget: Widget) -> None:
        """Host the DissectionTree of the current packet (it loads itself in a worker)."""
        for extra in self.query(".dissection"):
            extra.remove()
        widget.add_class("dissection")
        self.mount(widget)
        widget.focus()
        self.call_after_refresh(widget.scroll_visible)
