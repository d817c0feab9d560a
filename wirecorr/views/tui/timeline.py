"""The Timeline: syscalls and packets interleaved by time, one lazily drawn scroll view.

A million rows cannot be a million widgets (or DataTable rows): like Toolong's LogLines,
this is one Line-API `ScrollView` whose virtual height is the row count and whose
`render_line` formats only the rows on screen, caching each row's strip in an LRU. The
rows themselves are `RowIndex` arrays owned by the app (all rows, or the filtered ones).

The first line is the column header; rows are fitted to the pane's width (row_text), so
there is nothing to scroll sideways and every cut is marked with `…`; `e` shows the
selected row whole under the timeline.

The cursor is remembered by row identity (ref and timestamp), not by position, because
rows arrive out of order while a file is indexed or a trace runs and an insertion above
the cursor must not move the user's place.
"""

from __future__ import annotations

import time

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from wirecorr.views.tui.index import EventIndex
from wirecorr.views.tui.row_text import Columns, TimeView, header, row_text
from wirecorr.views.tui.rows import RowIndex

CURSOR = Style(bgcolor="#30507a", bold=True)
RELATED = Style(bgcolor="#4a3a10")
HEADER_LINES = 1


class Timeline(ScrollView, can_focus=True):
    BINDINGS = [
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("g,home", "first", "First row", show=False),
        Binding("G,end", "last", "Last row (follow)", show=False),
        Binding("enter", "follow_link", "Follow link"),
        Binding("t", "toggle_time", "Time: rel/abs/delta"),
        Binding("ctrl+t", "time_reference", "Time reference", show=False),
        Binding("m", "mark", "Mark", show=False),
        Binding("apostrophe", "next_mark", "Next mark", show=False),
    ]
    DEFAULT_CSS = """
    Timeline { height: 1fr; border: round $panel; }
    Timeline:focus { border: round $accent; }
    """

    class Moved(Message):
        """The cursor is on another row (ref None: no rows)."""

        def __init__(self, ref: int | None) -> None:
            super().__init__()
            self.ref = ref

    class Scrolled(Message):
        """Tail following changed (the status bar shows "N new events")."""

    def __init__(self, index: EventIndex, *, live: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index = index
        self.live = live
        self.view = index.rows
        self.cursor = 0
        self.cursor_key: tuple[int, int] | None = None
        # When a line was last drawn (perf_counter): the app's indexing stands aside after
        # a key press until the timeline has been drawn since.
        self.painted_at = 0.0
        self.related: set[int] = set()
        self.time_view = TimeView()
        self.marks: set[int] = set()
        self.follow_tail = live
        # Until the user moves, a file's view stays on its first row: rows indexed later
        # can sort above the first ones shown (a recorder writes syscalls late), and keeping
        # the cursor's row in place then hid them above the top of the screen.
        self.user_moved = False
        self.unseen = 0
        self._jump: tuple[int, list[int]] | None = None
        self._cache: LRUCache[int, Strip] = LRUCache(4096)
        self._cols: Columns | None = None
        self.border_title = "Timeline"

    # -- data -----------------------------------------------------------------------------

    @property
    def absolute(self) -> bool:
        return self.time_view.absolute

    def set_view(self, view: RowIndex) -> None:
        """Show other rows (a filter changed); keep the cursor on its row if it is there."""
        self.view = view
        if self.time_view.delta:  # "since the row above" depends on which rows are shown
            self._cache.clear()
        self.rows_changed(0)

    def rows_changed(self, added: int) -> None:
        """Rows were added to the view (`added` of them), or it was replaced."""
        size = Size(0, len(self.view) + HEADER_LINES)
        if size != self.virtual_size:
            # Only the scroll range and the scrollbar depend on the height. Set as a reactive
            # it asks for a layout pass, and every widget on the screen was drawn again at
            # each batch of live rows (most of a core at 1k packets/s).
            self.set_reactive(Timeline.virtual_size, size)
            self._scroll_update(size)
        # New events change older rows too (a read links the segment shown before it):
        # redraw those, which the index lists, not every cached line.
        self._forget_changed()
        if self.follow_tail:
            self._go(len(self.view) - 1)
            return
        if self.live:
            self.unseen += added
        elif not self.user_moved and len(self.view):
            if self.cursor_key != (self.view.ts[0], self.view.refs[0]) or self.scroll_offset.y:
                self.scroll_to(y=0, animate=False, immediate=True)
                self._go(0)
            else:
                self.refresh()
            return
        before = self.cursor - self.scroll_offset.y
        at = self._locate()
        if at is not None and at != self.cursor:
            self.cursor = at
            self.scroll_to(y=max(at - before, 0), animate=False, immediate=True)
        self.cursor = min(self.cursor, max(len(self.view) - 1, 0))
        ref = self.current_ref
        self.related = set(self.index.related(ref)) if ref is not None else set()
        self.refresh()
        if added and self.unseen:
            self.post_message(self.Scrolled())

    def _forget_changed(self) -> None:
        index = self.index
        if index.dirty_all:
            self._cache.clear()
        else:
            cache = self._cache
            for ref in index.dirty:
                cache.discard(ref)
        index.dirty.clear()
        index.dirty_all = False

    def clear_cache(self) -> None:
        """Row text depends on engine state that changes at the end of indexing (links, labels)."""
        self._cache.clear()
        self.index.dirty.clear()
        self.index.dirty_all = False
        self._select(self.current_ref)
        self.refresh()

    @property
    def current_ref(self) -> int | None:
        """The selected row. The app puts rows into the view as it indexes them but shows
        them (`rows_changed`) at most every so often: rows sorting above the selected one
        (a recorder's late syscalls) move it down the view meanwhile, and `cursor` points at
        another row until then."""
        if self.cursor_key is not None and self._locate() is not None:
            return self.cursor_key[1]
        return self.view.refs[self.cursor] if self.cursor < len(self.view) else None

    def _sync(self) -> None:
        """Put `cursor` back on the selected row before a key moves it from there (see
        `current_ref`)."""
        at = self._locate()
        if at is not None:
            self.cursor = at

    def settle_cursor(self) -> None:
        """A filter scan ended: stay on the selected row if the view has it, else go to the
        row nearest to it in time (as Wireshark does), and make that the selection, so
        clearing the filter later returns to the row the user saw selected."""
        at = self._locate()
        if at is None:
            at = self.view.nearest(self.cursor_key[0]) if self.cursor_key is not None else 0
        self._go(at)

    def _locate(self) -> int | None:
        if self.cursor_key is None:
            return None
        ts, ref = self.cursor_key
        return self.view.position(ts, ref)

    # -- drawing --------------------------------------------------------------------------

    def columns(self) -> Columns:
        width = self.scrollable_content_region.width
        cols = self._cols
        if cols is None or cols.width != width:
            cols = self._cols = Columns.for_width(width, self.time_view.absolute)
            self._cache.clear()
        return cols

    @property
    def page_height(self) -> int:
        """Rows on screen (the header line is not one)."""
        return max(self.scrollable_content_region.height - HEADER_LINES, 1)

    def render_line(self, y: int) -> Strip:
        self.painted_at = time.perf_counter()
        cols = self.columns()
        width = cols.width
        if y < HEADER_LINES:
            text = header(cols, self.time_view)
            return Strip(text.render(self.app.console), text.cell_len).crop_extend(0, width, self.rich_style)
        row = self.scroll_offset.y + y - HEADER_LINES
        if row >= len(self.view):
            return Strip.blank(width, self.rich_style)
        ref = self.view.refs[row]
        strip = self._cache.get(ref)
        if strip is None:
            prev = self.view.ts[row - 1] if row and self.time_view.delta else None
            text = row_text(self.index, ref, self.time_view, cols, prev_ts=prev, marked=ref in self.marks)
            strip = Strip(text.render(self.app.console), text.cell_len)
            self._cache[ref] = strip
        style = CURSOR if row == self.cursor else RELATED if ref in self.related else None
        if style is not None:
            strip = strip.apply_style(style)
        return strip.crop_extend(0, width, style)

    def row_full_text(self, ref: int) -> Text:
        """The row with nothing cut, for the expanded view (`e`)."""
        return row_text(self.index, ref, self.time_view, marked=ref in self.marks)

    # -- moving ---------------------------------------------------------------------------

    def _go(self, row: int) -> None:
        if not len(self.view):
            self.cursor, self.cursor_key = 0, None
            self._select(None)
            return
        row = max(0, min(row, len(self.view) - 1))
        self.cursor = row
        self.cursor_key = (self.view.ts[row], self.view.refs[row])
        self._show_cursor()
        self._select(self.view.refs[row])
        self.refresh()

    def _show_cursor(self) -> None:
        """Scroll so the cursor's row is on screen."""
        row, height, top = self.cursor, self.page_height, self.scroll_offset.y
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False, immediate=True)

    def on_resize(self) -> None:
        # A pane opening beside or below (b, e, the filter bar) must not hide the selection.
        self.call_after_refresh(self._show_cursor)

    def _select(self, ref: int | None) -> None:
        self.related = set(self.index.related(ref)) if ref is not None else set()
        self.post_message(self.Moved(ref))

    def _stop_following(self) -> None:
        if self.follow_tail:
            self.follow_tail = False
            self.post_message(self.Scrolled())

    def goto_ref(self, ref: int) -> bool:
        """Put the cursor on row `ref`; False when the current view does not show it."""
        self.user_moved = True
        at = self.view.position(self.index.ts(ref), ref)
        if at is None:
            return False
        if at != len(self.view) - 1:
            self._stop_following()
        self._go(at)
        return True

    def action_move(self, delta: int) -> None:
        self.user_moved = True
        if delta < 0:
            self._stop_following()
        self._sync()
        self._go(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.user_moved = True
        if direction < 0:
            self._stop_following()
        self._sync()
        height = self.page_height
        self.scroll_to(y=self.scroll_offset.y + direction * height, animate=False, immediate=True)
        self._go(self.cursor + direction * height)

    def action_first(self) -> None:
        self.user_moved = True
        self._stop_following()
        self._go(0)

    def action_last(self) -> None:
        """Jump to the end and follow new rows from there (live mode's tail)."""
        self.user_moved = True
        self.follow_tail = True
        self.unseen = 0
        self.post_message(self.Scrolled())
        self._go(len(self.view) - 1)

    def action_toggle_time(self) -> None:
        """Relative → absolute → delta (since the row shown above) → relative."""
        view = self.time_view
        if view.delta:
            view = TimeView(reference=view.reference)
        elif view.absolute:
            view = TimeView(delta=True, reference=view.reference)
        else:
            view = TimeView(absolute=True, reference=view.reference)
        self._set_time_view(view)

    def action_time_reference(self) -> None:
        """ctrl+t, as in Wireshark: relative times count from this row (again: from the first)."""
        ref = self.current_ref
        if ref is None:
            return
        ts = self.index.ts(ref)
        reference = None if self.time_view.reference == ts else ts
        self._set_time_view(TimeView(reference=reference))
        self.notify("time reference cleared" if reference is None else "times now count from this row", timeout=2)

    def _set_time_view(self, view: TimeView) -> None:
        self.time_view = view
        self._cols = None
        self.refresh()

    def action_mark(self) -> None:
        """m: mark or unmark the row (a `*` beside it); ' goes to the next mark."""
        ref = self.current_ref
        if ref is None:
            return
        self.marks.symmetric_difference_update({ref})
        self._cache.discard(ref)
        self.refresh()

    def action_next_mark(self) -> None:
        if not self.marks:
            self.notify("no marks: m marks the selected row", timeout=2)
            return
        here = self.cursor_key or (-1, -1)
        order = sorted((self.index.ts(ref), ref) for ref in self.marks)
        later = [key for key in order if key > here]
        target = (later or order)[0][1]
        if not later:
            self.notify("marks wrapped around to the first", timeout=2)
        if not self.goto_ref(target):
            self.notify("the marked row is hidden by the filter", severity="warning", timeout=3)

    def action_follow_link(self) -> None:
        """Jump along the links of the row where enter was first pressed, cycling through them.

        Pressing enter again on a row reached this way goes on to the next linked row, so
        a write with four segments walks all four and comes back to the write.
        """
        ref = self.current_ref
        if ref is None:
            return
        if self._jump is not None and (ref == self._jump[0] or ref in self._jump[1]):
            anchor, targets = self._jump
        else:
            anchor, targets = ref, self.index.related(ref)
            self._jump = (anchor, targets)
        if not targets:
            self.app.bell()
            self.notify("no link from this row", timeout=2)
            return
        cycle = [anchor, *targets]
        nxt = cycle[(cycle.index(ref) + 1) % len(cycle)]
        if not self.goto_ref(nxt):
            self.notify("the linked row is hidden by the filter", severity="warning", timeout=3)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._stop_following()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        row = self.scroll_offset.y + offset.y - HEADER_LINES
        if 0 <= row < len(self.view):
            self.user_moved = True
            if row != len(self.view) - 1:
                self._stop_following()
            self._go(row)
