"""What a lab's explanation is written from: the recorded Session, queried by lab terms.

Labs state facts ("accept4 returned 142 µs after the final ACK") and the effect they
must show (`expect`); both are collected here so the runner can print, JSON-encode or
test them, and so a missing effect is reported in the same words as a present one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from wirecorr.engine.hosts import MergedSession
from wirecorr.engine.session import Session
from wirecorr.model import Finding, Link, Syscall, fmt_ns, format_flags


class Evidence:
    """The Session of one lab run plus the explanation being built from it."""

    def __init__(self, session: Session, status: int, *, small: bool = False) -> None:
        self.session = session
        self.status = status
        self.small = small
        self.table = session.analyzer.table
        self.connections = session.analyzer.connections
        self.syscalls = session.syscalls
        self.lines: list[str] = []
        self.missing: list[str] = []
        self.facts: dict[str, Any] = {}
        # A merged recording (lab two-hosts): every host's Session; `session` is host 0's.
        self.merged: MergedSession | None = None

    # -- the explanation ----------------------------------------------------------------

    @property
    def shown(self) -> bool:
        return not self.missing

    def say(self, line: str) -> None:
        self.lines.append(line)

    def expect(self, ok: object, missing: str) -> bool:
        """The effect the lab exists to show; when the data lacks it, say what is missing."""
        if not ok:
            self.missing.append(missing)
        return bool(ok)

    def fact(self, key: str, value: Any) -> Any:
        self.facts[key] = value
        return value

    # -- packets by the numbers Wireshark shows ----------------------------------------------

    def frame(self, i: int) -> str:
        """Wireshark's frame number of packet index i (a recording's Custom Blocks count too)."""
        return f"frame {self.session.frame_number(i)}"

    def frames(self, indices: Iterable[int]) -> str:
        nums = [self.session.frame_number(i) for i in indices]
        if len(nums) > 6:
            return "frames " + ", ".join(map(str, nums[:6])) + f", … ({len(nums)} in all)"
        return ("frame " if len(nums) == 1 else "frames ") + ", ".join(map(str, nums))

    # -- syscalls and links -----------------------------------------------------------------

    def calls(self, *names: str, errno: str | None = None, ok: bool | None = None) -> list[Syscall]:
        """Syscalls by name (any of `names`), optionally only those failing with `errno` or succeeding."""
        out = []
        for sc in self.syscalls:
            if names and sc.name not in names:
                continue
            if errno is not None and sc.errno != errno:
                continue
            if ok is not None and (sc.errno is None) != ok:
                continue
            out.append(sc)
        return out

    def socket_calls(self, *names: str) -> list[Syscall]:
        """Calls on network sockets only: Python and libc also read and write files and pipes."""
        return [sc for sc in self.calls(*names) if sc.fdinfo is not None and sc.fdinfo.kind in _NET_KINDS]

    def links(self, kind: str) -> list[Link]:
        return [link for link in self.session.correlator.links if link.kind == kind]

    def link(self, sc: Syscall, kind: str) -> Link | None:
        return next((lk for lk in self.session.correlator.links_of(sc.id) if lk.kind == kind), None)

    def syscall(self, link: Link) -> Syscall:
        sc = self.session.syscall(link.syscall)
        assert sc is not None, "a link names a syscall the session was fed"
        return sc

    def describe(self, link: Link) -> str:
        """`pid 7 write(3) = 6 → frame 4 (+30 µs)`: one data link as the explanations print it."""
        sc = self.syscall(link)
        if not link.packets:
            return f"pid {sc.pid} {call(sc)}: no packet captured"
        return f"pid {sc.pid} {call(sc)} ↔ {self.frames(link.packets)} ({fmt_ns(link.delay_ns)})"

    # -- packets -------------------------------------------------------------------------------

    def packets(self, pred: Callable[[int], bool] = lambda i: True) -> list[int]:
        """Indices of TCP/UDP packets of the lab's connections that satisfy `pred`."""
        conn = self.table.conn
        return [i for i in range(len(self.table)) if conn[i] >= 0 and pred(i)]

    def flags(self, i: int) -> str:
        return format_flags(self.table.flags[i])

    def ts(self, i: int) -> int:
        return self.table.ts_ns[i]

    def label(self, i: int) -> object:
        return self.session.correlator.label(i)

    def kernel_only(self, indices: Iterable[int] | None = None) -> Counter[str]:
        """Packets no syscall owns, by the correlator's reason (pure-ack, keep-alive, …)."""
        out: Counter[str] = Counter()
        for i in self.packets() if indices is None else indices:
            lab = self.label(i)
            if isinstance(lab, str):
                out[lab] += 1
        return out

    # -- findings -------------------------------------------------------------------------------

    def findings(self, *kinds: str) -> list[Finding]:
        return [f for f in self.session.findings if not kinds or f.kind in kinds]

    def cite_findings(self, *kinds: str, limit: int = 2) -> list[Finding]:
        """Quote the engine's own diagnosis, so the lab and `wirecorr analyze` agree in words.

        One per kind up to `limit`: a leak of 30 connections is 30 findings of one story.
        """
        found = self.findings(*kinds)
        for kind in dict.fromkeys(f.kind for f in found):
            same = [f for f in found if f.kind == kind]
            for f in same[:limit]:
                self.say(f"finding {f.kind} ({f.severity}): {f.message}")
            if len(same) > limit:
                self.say(f"  … and {len(same) - limit} more {kind} finding(s)")
        return found


_NET_KINDS = frozenset({"tcp", "tcp6", "udp", "udp6", "socket"})


def call(sc: Syscall) -> str:
    """`accept4(3) = 4` / `connect(3) = -1 ECONNREFUSED`: the call as a reader knows it."""
    fd = "" if sc.fd is None else str(sc.fd)
    ret = f"-1 {sc.errno}" if sc.errno else str(sc.ret)
    return f"{sc.name}({fd}) = {ret}"
