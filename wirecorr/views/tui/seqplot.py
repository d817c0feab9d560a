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

from dataclasses import dataclass
from itertools import pairwise

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
    """One direction's points: segments (ts, seq, end, retransmitted) and the peer's ACKs
    (ts, ack, ack + window)."""

    segments: list[tuple[int, int, int, bool]]
    acks: list[tuple[int, int, int]]


def plot_data(session: Session, conn_id: int, direction: int) -> PlotData:
    table = session.analyzer.table
    conn = session.analyzer.connections[conn_id]
    segments, acks = [], []
    for idx in conn.packet_indices:
        d = table.direction[idx]
        if d == direction and table.seglen[idx]:
            seq = table.rel_seq[idx]
            segments.append(
                (table.ts_ns[idx], seq, seq + table.seglen[idx], bool(table.analysis[idx] & ANY_RETRANSMISSION))
            )
        elif d != direction and table.flags[idx] & ACK:
            ack = table.rel_ack[idx]
            acks.append((table.ts_ns[idx], ack, ack + table.window[idx]))
    return PlotData(segments, acks)


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
        retrans = sum(1 for s in data.segments if s[3])
        title = Text(f" {src} → {dst}  ", style="bold")
        for layer in (DATA, RETRANS, ACKED, WINDOW):
            if layer == WINDOW and not self.show_window:
                continue
            name = f"{LAYER_NAMES[layer]} ({retrans})" if layer == RETRANS else LAYER_NAMES[layer]
            title.append("■ ", LAYER_STYLES[layer])
            title.append(f"{name}  ")
        title.append("[t] direction [w] window [+/-] zoom [←/→] pan", style="dim")
        rows, cols = height - 3, width - Y_LABEL_W
        if rows < 2 or cols < 8:
            return [title]
        span = max(conn.last_ts_ns - conn.first_ts_ns, 1)
        lo, hi = self.view
        t0, t1 = conn.first_ts_ns + int(span * lo), conn.first_ts_ns + int(span * hi)
        segs = [s for s in data.segments if t0 <= s[0] <= t1]
        acks = [a for a in data.acks if t0 <= a[0] <= t1]
        if not segs and not acks:
            return [title, Text(f"  no data segments and no ACKs {src} → {dst} in this time range", style="dim")]
        top = max([s[2] for s in segs] + [a[2] if self.show_window else a[1] for a in acks])
        bottom = min([s[1] for s in segs] + [a[1] for a in acks])
        top = max(top, bottom + 1)
        canvas = BrailleCanvas(cols, rows)

        def px(ts: int) -> int:
            return round((ts - t0) * (canvas.width - 1) / max(t1 - t0, 1))

        def py(seq: int) -> int:
            return canvas.height - 1 - round((seq - bottom) * (canvas.height - 1) / (top - bottom))

        self._steps(canvas, [(px(t), py(a)) for t, a, _ in acks], ACKED)
        if self.show_window:
            self._steps(canvas, [(px(t), py(w)) for t, _, w in acks], WINDOW)
        for ts, seq, end, is_retrans in segs:
            canvas.vline(px(ts), py(seq), py(end), RETRANS if is_retrans else DATA)
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
        left = f"{(t0 - conn.first_ts_ns) / 1e6:.3f} ms"
        mid = f"{((t0 + t1) / 2 - conn.first_ts_ns) / 1e6:.3f}"
        right = f"{(t1 - conn.first_ts_ns) / 1e6:.3f} ms"
        axis = " " * Y_LABEL_W + left
        axis += " " * max(Y_LABEL_W + cols // 2 - len(mid) // 2 - len(axis), 1) + mid
        axis += " " * max(Y_LABEL_W + cols - len(right) - len(axis), 1) + right
        lines.append(Text(axis, style="dim"))
        return lines

    @staticmethod
    def _steps(canvas: BrailleCanvas, points: list[tuple[int, int]], layer: int) -> None:
        """A step line: flat until the next point, then a vertical jump (ACKs advance in jumps)."""
        for (x0, y0), (x1, y1) in pairwise(points):
            canvas.hline(x0, x1, y0, layer)
            canvas.vline(x1, y0, y1, layer)
        if points:
            x, y = points[-1]
            canvas.hline(x, canvas.width - 1, y, layer)
