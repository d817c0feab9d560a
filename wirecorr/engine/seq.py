"""32-bit TCP sequence arithmetic, named as Wireshark's packet-tcp.h names it.

Sequence numbers wrap at 2**32, so "after" means "less than half the space ahead".
`tcp_analysis`'s per-packet closure writes these tests inline for speed and names the
macro beside each one; everything else calls these. The upper-case names are the
macros', so a reader can grep packet-tcp.c for them.
"""

from __future__ import annotations

M32 = 0xFFFFFFFF
HALF = 0x80000000


def GT_SEQ(a: int, b: int) -> bool:
    """a is after b."""
    return (b - a) & M32 >= HALF


def LT_SEQ(a: int, b: int) -> bool:
    """a is before b."""
    return (a - b) & M32 >= HALF


def GE_SEQ(a: int, b: int) -> bool:
    """a is at or after b."""
    d = (b - a) & M32
    return d == 0 or d >= HALF


def LE_SEQ(a: int, b: int) -> bool:
    """a is at or before b."""
    d = (a - b) & M32
    return d == 0 or d >= HALF
