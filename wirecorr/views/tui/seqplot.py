"""tcptrace-style sequence/time plot of one direction of a connection, in braille dots.

Why braille: a terminal cell holds 2x4 dots, so a plot gets four times the vertical
resolution of block characters — sequence numbers are the vertical axis and need it.
A cell has one colour, so where layers share a cell the most telling wins:
retransmission over data over ACK over window.

What is drawn, as tcptrace does: each data segment of the chosen direction as a vertical
bar from its relative seq to seq+len at its capture time; the peer's cumulative ACK as a
step line (how far the receiver has acknowledged); ACK + advertised window as a second
step line (how far the sender may send). A gap between the bars and the window line is
the sender not using its window; bars touching it are window-limited.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive
from textual.widget import Widget

from wirecorr.engine.analysis_flags import ANY_RETRANSMISSION
from wirecorr.engine.session import Session
from wirecorr.model import ACK

# Layers in priority order (a higher index wins a shared cell).
WINDOW, ACKED, DATA, RETRANS = range(4)
LAYER_STYLES = (Style(color="dodger_blue1"), Style(color="green"), Style(color="white"), Style(color="red", bold=True))
LAYER_NAMES = ("window", "ack", "data", "retransmission")

Y_LABEL_W = 10
_DOT = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [dy][dx]


class BrailleCanvas:
    """A colsxrows cell grid addressed in dots (2 per cell across, 4 down, y=0 at top)."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.width, self.height = cols * 2, rows * 4
        self.bits = [[0] * cols for _ in range(rows)]
        self.layer = [[-1] * cols for _ in range(rows)]

    def dot(self, x: int, y: int, layer: int) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            r, c = y >> 2, x >> 1
            self.bits[r][c] |= _DOT[y & 3][x & 1]
            if layer > self.layer[r][c]:
                self.layer[r][c] = layer

    def vline(self, x: int, y0: int, y1: int, layer: int) -> None:
        lo, hi = max(min(y0, y1), 0), min(max(y0, y1), self.height - 1)
        for y in range(lo, hi + 1):
            self.dot(x, y, layer)

    def hline(self, x0: int, x1: int, y: int, layer: int) -> None:
        lo, hi = max(min(x0, x1), 0), min(max(x0, x1), self.width - 1)
        for x in range(lo, hi + 1):
            self.dot(x, y, layer)

    def lines(self, base: Style) -> list[Text]:
        out = []
        for bits, layers in zip(self.bits, self.layer, strict=True):
            text = Text(style=base)
            for b, layer in zip(bits, layers, strict=True):
                text.append(chr(0x2800 + b) if b else " ", LAYER_STYLES[layer] if layer >= 0 else None)
            out.append(text)
        return out


@dataclass(slots=True)
class PlotData:
    """One direction's points in time order, as parallel lists: data segments (ts, seq,
    seq + len, retransmitted) and the peer's ACKs (ts, ack, ack + window)."""

    seg_ts: list[int] = field(default_factory=list)
    seg_lo: list[int] = field(default_factory=list)
    seg_hi: list[int] = field(default_factory=list)
    seg_re: list[bool] = field(default_factory=list)
    ack_ts: list[int] = field(default_factory=list)
    ack: list[int] = field(default_factory=list)
    ack_win: list[int] = field(default_factory=list)

    def segment_range(self, t0: int, t1: int) -> range:
        return range(bisect_left(self.seg_ts, t0), bisect_right(self.seg_ts, t1))

    def ack_range(self, t0: int, t1: int) -> range:
        return range(bisect_left(self.ack_ts, t0), bisect_right(self.ack_ts, t1))


def plot_data(session: Session, conn_id: int, direction: int) -> PlotData:
    table = session.analyzer.table
    conn = session.analyzer.connections[conn_id]
    ts_ns, dirs, seglen, rel_seq = table.ts_ns, table.direction, table.seglen, table.rel_seq
    flags, rel_ack, window, analysis = table.flags, table.rel_ack, table.window, table.analysis
    segments, acks = [], []
    for idx in conn.packet_indices:
        d = dirs[idx]
        if d == direction and seglen[idx]:
            seq = rel_seq[idx]
            segments.append((ts_ns[idx], seq, seq + seglen[idx], bool(analysis[idx] & ANY_RETRANSMISSION)))
        elif d != direction and flags[idx] & ACK:
            ack = rel_ack[idx]
            acks.append((ts_ns[idx], ack, ack + window[idx]))
    segments.sort(key=lambda s: s[0])
    acks.sort(key=lambda a: a[0])
    data = PlotData()
    if segments:
        data.seg_ts, data.seg_lo, data.seg_hi, data.seg_re = (list(c) for c in zip(*segments, strict=True))
    if acks:
        data.ack_ts, data.ack, data.ack_win = (list(c) for c in zip(*acks, strict=True))
    return data


def fmt_axis(ns: float, span: int) -> str:
    """A time on the x axis in the unit that suits the whole span (84.522 s, not 84521.518 ms)."""
    if span >= 1_000_000_000:
        return f"{ns / 1e9:.3f} s"
    if span >= 10_000_000:
        return f"{ns / 1e6:.3f} ms"
    return f"{ns / 1e3:.1f} µs"


class SeqPlot(Widget, can_focus=True):
    """Sequence/time plot of connection `conn_id`; `t` switches direction, `w` the window
    line, `+`/`-` zoom the time axis, left/right pan, `0` resets."""

    BINDINGS = [
        Binding("t", "toggle_direction", "Direction"),
        Binding("w", "toggle_window", "Window"),
        Binding("plus,equals_sign", "zoom(0.5)", "Zoom in"),
        Binding("minus", "zoom(2.0)", "Zoom out"),
        Binding("left", "pan(-0.25)", "Pan", show=False),
        Binding("right", "pan(0.25)", "Pan", show=False),
        Binding("0", "reset", "Reset", show=False),
    ]

    DEFAULT_CSS = """
    SeqPlot { height: 1fr; }
    """

    direction = reactive(0)
    show_window = reactive(True)
    # Visible time span as fractions of the connection's duration.
    view = reactive((0.0, 1.0))

    def __init__(self, session: Session, conn_id: int, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.session = session
        self.conn_id = conn_id
        conn = session.analyzer.connections[conn_id]
        # Start on the direction that carried more data: that is the one worth plotting.
        self.set_reactive(SeqPlot.direction, 1 if conn.bytes_s2c > conn.bytes_c2s else 0)
        self._data: dict[int, PlotData] = {}

    def data(self, direction: int) -> PlotData:
        if direction not in self._data:
            self._data[direction] = plot_data(self.session, self.conn_id, direction)
        return self._data[direction]

    def reload(self) -> None:
        """Forget computed points (a live capture grew) and redraw."""
        self._data.clear()
        self.refresh()

    # -- actions ----------------------------------------------------------------------------

    def action_toggle_direction(self) -> None:
        self.direction = 1 - self.direction

    def action_toggle_window(self) -> None:
        self.show_window = not self.show_window

    def action_zoom(self, factor: float) -> None:
        lo, hi = self.view
        mid, half = (lo + hi) / 2, min((hi - lo) * factor, 1.0) / 2
        half = max(half, 1e-6)
        lo, hi = mid - half, mid + half
        shift = max(0.0, -lo) - max(0.0, hi - 1.0)
        self.view = (lo + shift, hi + shift)

    def action_pan(self, fraction: float) -> None:
        lo, hi = self.view
        step = (hi - lo) * fraction
        step = max(-lo, min(step, 1.0 - hi))
        self.view = (lo + step, hi + step)

    def action_reset(self) -> None:
        self.view = (0.0, 1.0)

    # -- drawing ----------------------------------------------------------------------------

    def render(self) -> Text:
        return Text("\n").join(self.plot_lines(self.size.width, self.size.height))

    def plot_lines(self, width: int, height: int) -> list[Text]:
        """The plot as `height` lines of `width` cells: title, plot rows, x axis."""
        conn = self.session.analyzer.connections[self.conn_id]
        data = self.data(self.direction)
        src, dst = (conn.client, conn.server) if self.direction == 0 else (conn.server, conn.client)
        retrans = sum(data.seg_re)
        title = Text(f" {src} → {dst}  ", style="bold")
        for layer in (DATA, RETRANS, ACKED, WINDOW):
            if layer == WINDOW and not self.show_window:
                continue
            name = f"{LAYER_NAMES[layer]} ({retrans})" if layer == RETRANS else LAYER_NAMES[layer]
            title.append("■ ", LAYER_STYLES[layer])
            title.append(f"{name}  ")
        hint = "[t] direction [w] window [+/-] zoom [←/→] pan"
        if title.cell_len + len(hint) <= width:  # the footer has the keys too
            title.append(hint, style="dim")
        # One line whatever the width: a wrapped title pushed the x axis off the screen.
        title.truncate(max(width, 1), overflow="ellipsis")
        rows, cols = height - 3, width - Y_LABEL_W
        if rows < 2 or cols < 8:
            return [title]
        span = max(conn.last_ts_ns - conn.first_ts_ns, 1)
        lo, hi = self.view
        t0, t1 = conn.first_ts_ns + int(span * lo), conn.first_ts_ns + int(span * hi)
        segs, acks = data.segment_range(t0, t1), data.ack_range(t0, t1)
        if not segs and not acks:
            return [title, Text(f"  no data segments and no ACKs {src} → {dst} in this time range", style="dim")]
        # The scale is the data's and the ACKs': the window line, often far above both, is
        # drawn up to a quarter above them and clipped there instead of flattening the data.
        seg_lo, seg_hi, ack = data.seg_lo, data.seg_hi, data.ack
        top = max((max(seg_hi[segs.start : segs.stop], default=0), max(ack[acks.start : acks.stop], default=0)))
        bottom = min(min(seg_lo[segs.start : segs.stop], default=top), min(ack[acks.start : acks.stop], default=top))
        if self.show_window and acks:
            top = min(max(data.ack_win[acks.start : acks.stop]), top + (top - bottom) // 4)
        top = max(top, bottom + 1)
        canvas = BrailleCanvas(cols, rows)
        xscale = (canvas.width - 1) / max(t1 - t0, 1)
        yscale = (canvas.height - 1) / (top - bottom)
        ybase = canvas.height - 1

        def px(ts: int) -> int:
            return round((ts - t0) * xscale)

        def py(seq: int) -> int:
            return ybase - round((seq - bottom) * yscale)

        ack_ts = data.ack_ts
        self._steps(canvas, [(px(ack_ts[j]), py(ack[j])) for j in acks], ACKED)
        if self.show_window:
            self._steps(canvas, [(px(ack_ts[j]), py(data.ack_win[j])) for j in acks], WINDOW)
        self._bars(canvas, data, segs, px, py)
        lines = [title]
        plot = canvas.lines(self.rich_style)
        for r, line in enumerate(plot):
            label = ""
            if r == 0:
                label = str(top)
            elif r == rows - 1:
                label = str(bottom)
            elif r == rows // 2:
                label = str((top + bottom) // 2)
            lines.append(Text(f"{label:>{Y_LABEL_W - 2}} ┤", style="dim") + line)
        lines.append(Text(" " * (Y_LABEL_W - 1) + "└" + "─" * cols, style="dim"))
        left = fmt_axis(t0 - conn.first_ts_ns, span)
        mid = fmt_axis((t0 + t1) / 2 - conn.first_ts_ns, span)
        right = fmt_axis(t1 - conn.first_ts_ns, span)
        axis = " " * Y_LABEL_W + left
        axis += " " * max(Y_LABEL_W + cols // 2 - len(mid) // 2 - len(axis), 1) + mid
        axis += " " * max(Y_LABEL_W + cols - len(right) - len(axis), 1) + right
        lines.append(Text(axis[:width], style="dim"))
        return lines

    @staticmethod
    def _bars(
        canvas: BrailleCanvas, data: PlotData, segs: range, px: Callable[[int], int], py: Callable[[int], int]
    ) -> None:
        """One vertical bar per dot column and layer, spanning every segment that falls in it:
        a bulk transfer has far more segments than the plot has columns."""
        spans: dict[tuple[int, int], list[int]] = {}
        seg_ts, seg_lo, seg_hi, seg_re = data.seg_ts, data.seg_lo, data.seg_hi, data.seg_re
        for j in segs:
            key = (px(seg_ts[j]), RETRANS if seg_re[j] else DATA)
            lo, hi = seg_lo[j], seg_hi[j]
            have = spans.get(key)
            if have is None:
                spans[key] = [lo, hi]
            else:
                if lo < have[0]:
                    have[0] = lo
                if hi > have[1]:
                    have[1] = hi
        for (x, layer), (lo, hi) in sorted(spans.items(), key=lambda item: item[0][1]):
            canvas.vline(x, py(lo), py(hi), layer)

    @staticmethod
    def _steps(canvas: BrailleCanvas, points: list[tuple[int, int]], layer: int) -> None:
        """A step line: flat until the next point, then a vertical jump (ACKs advance in jumps).

        Points are merged per dot column first (lowest and highest y, and where the line
        leaves the column), so the cost follows the plot's width, not the ACK count."""
        columns: list[tuple[int, int, int, int]] = []  # x, y entering, y min, y max; last y below
        last_y: list[int] = []
        for x, y in points:
            if columns and columns[-1][0] == x:
                cx, enter, ymin, ymax = columns[-1]
                columns[-1] = (cx, enter, min(ymin, y), max(ymax, y))
                last_y[-1] = y
            else:
                columns.append((x, y, y, y))
                last_y.append(y)
        for (x0, _, _, _), y0, (x1, enter, ymin, ymax) in zip(columns, last_y, columns[1:], strict=False):
            canvas.hline(x0, x1, y0, layer)
            canvas.vline(x1, min(y0, ymin, enter), max(y0, ymax, enter), layer)
        if columns:
            x, _, ymin, ymax = columns[0]
            canvas.vline(x, ymin, ymax, layer)
            canvas.hline(columns[-1][0], canvas.width - 1, last_y[-1], layer)
