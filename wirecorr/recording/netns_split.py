"""`record -p` of processes in several network namespaces: one capture per namespace, merged.

A capture sees only the interfaces of its own namespace, so processes in two containers
need two tcpdumps, each started inside its namespace (sources/netns.py). Each namespace is
recorded by a Recorder of its own, with its tracer attached to that namespace's processes
in a thread of its own (the tracer waits only for its own thread's tracees: __WNOTHREAD),
into a part file beside the output. When all have ended, the parts are merged as
`wirecorr merge` merges hosts (recording/merge.py): one host per namespace, named by its
container or inode, on the one clock the namespaces of a machine share; then the parts are
removed. A recorder killed meanwhile leaves the parts, each a readable recording.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from dataclasses import replace
from types import FrameType

from wirecorr.recording.merge import merge
from wirecorr.recording.netns_follow import merged_line
from wirecorr.recording.recorder import Recorder, RecordOptions
from wirecorr.recording.writer import open_output
from wirecorr.sources import netns


def part_path(output: str, pids: list[int]) -> str:
    """Where one namespace's part is written while recording: beside the output."""
    try:
        inode = netns.ns_inode(f"/proc/{pids[0]}/ns/net")
    except OSError:
        inode = 0
    return f"{output}.net{inode}.pcapng"


def record_namespaces(options: RecordOptions, groups: list[list[int]]) -> int:
    """Record each group of pids (one network namespace each) and merge them into `options.output`."""
    # The output is checked (and claimed) before anything is traced, not after the recording.
    os.close(open_output(options.output))
    parts = [part_path(options.output, group) for group in groups]
    recorders = [
        Recorder(replace(options, output=part, pids=group, follow_namespaces=False), handle_signals=False)
        for part, group in zip(parts, groups, strict=True)
    ]
    results: list[int | BaseException | None] = [None] * len(recorders)

    def stop_all(signum: int, frame: FrameType | None = None) -> None:
        for rec in recorders:
            rec.on_signal(signum, frame)

    def run(k: int) -> None:
        try:
            results[k] = recorders[k].run()
        except BaseException as e:
            results[k] = e
            stop_all(signal.SIGTERM)  # one namespace failed: end the others' sessions

    handlers = {s: signal.signal(s, stop_all) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        threads = [threading.Thread(target=run, args=(k,), name=f"record-ns{k}") for k in range(len(recorders))]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.1)  # wakes up for the signal handlers, which run in this thread
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    failed = next((r for r in results if isinstance(r, BaseException)), None)
    if failed is not None:
        with contextlib.suppress(OSError):
            if os.path.getsize(options.output) == 0:
                os.unlink(options.output)
        raise failed
    statuses = [r for r in results if isinstance(r, int)]
    # A namespace whose session was stopped before its tracing began left no part.
    parts = [part for part in parts if os.path.exists(part)]
    if len(parts) < 2:
        if parts:
            os.replace(parts[0], options.output)
        else:
            with contextlib.suppress(OSError):
                os.unlink(options.output)
        return next((s for s in statuses if s), 0)
    done = merge(parts, options.output, same_clock=True)
    for part in parts:
        with contextlib.suppress(OSError):
            os.unlink(part)
    print(f"wirecorr record: {merged_line(done, options.output)}", file=sys.stderr)
    return next((s for s in statuses if s), 0)
