"""The correlator's links by id (`Correlator.links`), in memory that follows the links held.

Link ids are dense and only grow, and every reader takes `links[id]`. A list with a slot
per id (8 B) kept growing in the streaming analyze even though most links are written out
and forgotten (None): 96 MB on one connection of 3M round trips (12M links). `shed` keeps
the list for the newest ids only, and moves the few older links still held (a
connection's connect and accept, the calls a finding reads) into a dict. For every reader
the table is the list it was: an item per id, None for one forgotten, slices, iteration,
`len` and `==`.

The compiled lane (`_core/correlate.pyx`) appends to `items` and reads `base` and `old`
directly; only `shed` moves `base`, between two of its batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import compress, repeat
from operator import is_not
from typing import overload

from wirecorr.model import Link


class LinkTable:
    """Links by id: `items[i]` is link `base + i`; older ids still held are in `old`."""

    __slots__ = ("base", "items", "old")

    def __init__(self, links: Iterable[Link | None] = ()) -> None:
        self.base = 0
        self.items: list[Link | None] = list(links)
        self.old: dict[int, Link] = {}

    def __len__(self) -> int:
        return self.base + len(self.items)

    @overload
    def __getitem__(self, key: int) -> Link | None: ...

    @overload
    def __getitem__(self, key: slice) -> list[Link | None]: ...

    def __getitem__(self, key: int | slice) -> Link | list[Link | None] | None:
        if isinstance(key, slice):
            return self.items[key] if not self.base else list(self)[key]
        if key < 0:
            key += len(self)
            if key < 0:
                raise IndexError("link id out of range")
        at = key - self.base
        if at >= 0:
            return self.items[at]
        return self.old.get(key)

    def __setitem__(self, key: int, link: Link | None) -> None:
        at = key - self.base
        if at >= 0:
            self.items[at] = link
        elif key < 0:
            raise IndexError("link id out of range")
        elif link is None:
            self.old.pop(key, None)
        else:
            self.old[key] = link

    def append(self, link: Link | None) -> None:
        self.items.append(link)

    def __iter__(self) -> Iterator[Link | None]:
        if self.base:
            old = self.old
            yield from (old.get(i) for i in range(self.base)) if old else repeat(None, self.base)
        yield from self.items

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LinkTable | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by content, as a list

    def __repr__(self) -> str:
        return f"LinkTable({list(self)!r})"

    def held(self) -> list[Link]:
        """The links not forgotten, in id order (without walking the ids shed)."""
        old = self.old
        return [old[i] for i in sorted(old)] + [link for link in self.items if link is not None]

    def shed(self, window: int) -> None:
        """Keep the list for the newest `window` ids; the links older ones still hold go to
        `old`. Only once twice that many are listed, so the list's memory moves rarely."""
        items = self.items
        cut = len(items) - window
        if cut < window:
            return
        head = items[:cut]
        base, old = self.base, self.old
        for at in compress(range(cut), map(is_not, head, repeat(None))):
            old[base + at] = head[at]  # type: ignore[assignment]  # not None: `compress` kept it
        del items[:cut]
        self.base = base + cut
