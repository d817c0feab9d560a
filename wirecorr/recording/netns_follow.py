"""Traced processes that move to another network namespace: a capture there too, merged.

A traced command may start a child in another network namespace (`ip netns exec NS CMD`,
`unshare -n CMD`, `nsenter --net=… CMD`, a container runtime): that child's packets are on
the other namespace's interfaces, which the session's tcpdump never sees. The tracer stops
every traced process at its fork and its exec and tells the Recorder (`on_process`) while
the process waits; the follower looks at the process's namespace there and, for one not
seen yet, starts a tcpdump inside it (sources/netns.py) before the process runs on — so
its first SYN is captured. Those packets go into a part file of their own beside the
output.

When the session ends the recording is split by namespace, as if each had been recorded on
its own host: the packets of each capture, and the syscalls and process events of each
process from the moment it was seen in that namespace. The parts are then merged as
`wirecorr merge` merges hosts (recording/merge.py) with the namespaces' one clock, so
`analyze` correlates each namespace's calls with its own capture and joins the
connections between them by the packets both captured.

A process that enters a namespace without an exec afterwards (unshare(2) or setns(2) and
then its own sockets) is not seen here: the tracer does not stop on those calls.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wirecorr.model import Packet
from wirecorr.recording.merge import MergeResult, load_input, merge_inputs
from wirecorr.recording.writer import RecordingWriter
from wirecorr.sources import netns
from wirecorr.sources.live_capture import DEFAULT_GRACE, LiveCapture

# The events at which a process may have a namespace its parent had not.
EVENTS = frozenset({"spawn", "attach", "fork", "exec"})


@dataclass
class _Capture:
    info: dict[str, Any]
    path: str
    writer: RecordingWriter
    capture: LiveCapture
    pids: list[int] = field(default_factory=list)


class NamespaceFollower:
    """The extra captures of one session, and which process was in which namespace when."""

    def __init__(
        self,
        output: str,
        home: int,
        *,
        capture_filter: str | None,
        snaplen: int,
        buffer_kib: int,
        header: dict,
        listen: Callable[[Packet], None] | None = None,
    ) -> None:
        self.output = output
        self.home = home
        self.capture_filter = capture_filter
        self.snaplen = snaplen
        self.buffer_kib = buffer_kib
        # What every part's header starts from (the session's own header fields).
        self.header = header
        self.captures: dict[int, _Capture] = {}
        # pid → [(since ns, namespace inode)], in time order: where the pid's calls belong.
        self.moves: dict[int, list[tuple[int, int]]] = {}
        self.error: BaseException | None = None
        # Who else gets the packets as they come (live's feed, through the Recorder).
        self.listen = listen

    def seen(self, event: str, pid: int) -> None:
        """A process event (the process is stopped): note its namespace, capture in a new one."""
        if event not in EVENTS or self.error is not None:
            return
        try:
            inode = netns.ns_inode(f"/proc/{pid}/ns/net")
        except OSError:
            return  # gone already: it sent nothing from anywhere
        if inode != self.where(pid, None):
            # A new process's whole life is in the namespace it was born in; an exec's
            # process was elsewhere until now.
            first = event != "exec" and pid not in self.moves
            self.moves.setdefault(pid, []).append((0 if first else time.time_ns(), inode))
        if inode != self.home and inode not in self.captures:
            try:
                self._start(inode, pid)
            except Exception as e:  # the session goes on, with this said once; no further namespace is tried
                self.error = e
                print(f"wirecorr record: cannot capture in the namespace of pid {pid}: {e}", file=sys.stderr)
                return
        if inode in self.captures and pid not in self.captures[inode].pids:
            self.captures[inode].pids.append(pid)

    def where(self, pid: int, at: int | None) -> int:
        """The namespace `pid` was in at time `at` (None: now), as far as its events told."""
        found = self.home
        for since, inode in self.moves.get(pid, ()):
            if at is not None and since > at:
                break
            found = inode
        return found

    def _start(self, inode: int, pid: int) -> None:
        info: dict[str, Any] = {"inode": inode, "pid": pid, "container": netns.container_of(pid)}
        name = netns.ip_netns_name(inode)
        if name is not None:
            info["name"] = name
        path = f"{self.output}.net{inode}.pcapng"
        # Which capture saw a packet handed on (the session's own is 0): the live view
        # tells a crossing's second copy by it (hosts.SecondCopies).
        number = len(self.captures) + 1
        writer = RecordingWriter(path)
        writer.write_header({**self.header, "command": [], "pids": [pid], "attached": False, "netns": info})

        def on_packet(pkt: Packet) -> None:
            assert capture.linktype is not None
            writer.write_packet(
                pkt.ts_ns, pkt.frame, pkt.wirelen, capture.linktype, iface_name="any", snaplen=self.snaplen
            )
            if self.listen is not None:
                pkt.iface = number
                self.listen(pkt)

        capture = LiveCapture(
            on_packet, interface="any", bpf=self.capture_filter, snaplen=self.snaplen, buffer_kib=self.buffer_kib
        )
        try:
            with netns.entered(f"/proc/{pid}/ns/net"):
                capture.start()
        except BaseException:
            with contextlib.suppress(OSError):
                writer.close()
                os.unlink(path)
            raise
        capture.start_delivery()
        self.captures[inode] = _Capture(info, path, writer, capture, [pid])
        print(f"wirecorr record: pid {pid} is in the {netns.describe(info)}: capturing there too", file=sys.stderr)

    def stop(self) -> None:
        """End the extra captures (after the traced processes) and close their parts."""
        for cap in self.captures.values():
            stats = cap.capture.stop(DEFAULT_GRACE)
            cap.writer.close({"captured": stats.captured, "lost": stats.lost})

    def close(self) -> None:
        """After a failure: the captures killed, the parts left as they are."""
        for cap in self.captures.values():
            cap.capture.close()
            with contextlib.suppress(OSError):
                cap.writer.close()

    def places(self) -> list[dict[str, Any]]:
        """The namespaces captured in besides the session's own."""
        return [cap.info for cap in list(self.captures.values())]

    def merge_into(self, output: str) -> MergeResult:
        """Split the finished recording at `output` by namespace and merge the parts into it."""
        home_path = f"{output}.net{self.home}.pcapng"
        os.replace(output, home_path)
        main = load_input(home_path)
        parts = [load_input(cap.path) for cap in self.captures.values()]
        by_inode = {inode: k + 1 for k, inode in enumerate(self.captures)}
        inputs = [main, *parts]
        split_syscalls: list[list[dict[str, Any]]] = [[] for _ in inputs]
        for sc in main.syscalls:
            split_syscalls[by_inode.get(self.where(sc["pid"], sc["enter_ns"]), 0)].append(sc)
        split_processes: list[list[dict[str, Any]]] = [[] for _ in inputs]
        for proc in main.processes:
            at = proc.get("ts_ns")
            split_processes[by_inode.get(self.where(proc["pid"], at), 0)].append(proc)
        for k, item in enumerate(inputs):
            item.syscalls, item.processes = split_syscalls[k], split_processes[k]
        for item, cap in zip(parts, self.captures.values(), strict=True):
            item.meta["pids"] = cap.pids  # all seen there, not only the first (the part's header)
        # A pid attached (or born) in another namespace was never in the session's own.
        elsewhere = {pid for pid, moves in self.moves.items() if moves[0][0] == 0}
        main.meta["pids"] = [pid for pid in main.meta.get("pids") or [] if pid not in elsewhere]
        done = merge_inputs(inputs, output, same_clock=True)
        for path in [home_path, *(cap.path for cap in self.captures.values())]:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return done


def merged_line(done: MergeResult, output: str) -> str:
    """What record says of a recording merged from its namespaces' captures."""
    names = ", ".join(f"{h['name']} (pids {', '.join(map(str, h['pids'])) or '-'})" for h in done.hosts)
    return (
        f"{len(done.hosts)} network namespaces, one capture each, merged: {names}; "
        f"{done.crossings} packets seen in two of them -> {output}"
    )
