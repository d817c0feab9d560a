"""`wirecorr analyze`: the headless report of a capture or recording (text or JSON)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from wirecorr.bulk import paused_gc
from wirecorr.commands.pipe_input import reading_through_ctrl_c
from wirecorr.engine.hosts import load_merged, merged_header
from wirecorr.engine.ingest import PacketFilter, diagnose, is_truncation, load_capture, load_strace
from wirecorr.engine.session import Session
from wirecorr.engine.streaming import Streamer, streamable
from wirecorr.errors import InputError, UsageError
from wirecorr.sources.bpf_filter import compile_filter
from wirecorr.sources.capture_file import STDIN
from wirecorr.views import hosts_report, json_report, text_report
from wirecorr.views.progress import showing_progress


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="report connections, TCP analysis and syscalls of a capture or recording",
        description=(
            "Read a pcap/pcapng capture or a wirecorr recording and report each connection "
            "(handshake options, close sequence, final state, TCP analysis counts) and the notable packets."
        ),
    )
    p.add_argument("file", nargs="?", help="pcap, pcapng or wirecorr recording; - reads standard input")
    p.add_argument("--pcap", dest="pcap", help="capture to read beside --strace (same as FILE)")
    p.add_argument(
        "--strace",
        metavar="LOG",
        help="syscalls from `strace -f -ttt -T -yy [-xx] [-s N] -o LOG` (an -ff base name or directory works too; "
        "- reads standard input)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document (schema in docs/json-schema.md)")
    p.add_argument("--packets", action="store_true", help="with --json: include every packet")
    p.add_argument("-f", "--filter", default="", help="BPF-style filter: host/net/port/portrange/proto, and/or/not")
    p.add_argument(
        "--partial",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="report what was read before damage in the file (default: only when the file is cut short)",
    )
    p.add_argument("-c", "--count", type=int, metavar="N", help="read only the first N packets, as tshark -c")
    p.add_argument("--notable", type=int, default=50, help="notable packets listed in text output (default 50)")
    p.set_defaults(run=run)


# A one-shot report keeps what it loads until it exits: the cyclic GC would only rescan
# it, during the load and again while findings and the report walk it.
@paused_gc()
def run(args: argparse.Namespace) -> int:
    path = args.file or args.pcap
    if path is None and args.strace is None:
        raise UsageError("analyze: give a capture FILE, or --strace LOG [--pcap FILE]")
    if path == args.strace == STDIN:
        raise UsageError("analyze: only one input can come from standard input")
    if args.count is not None and args.count <= 0:
        raise UsageError("analyze: -c wants a positive number of packets")
    packet_filter = compile_filter(args.filter) if args.filter else None
    if path is not None and path != STDIN and args.strace is None and args.count is None:
        header = merged_header(path)
        if header is not None:
            return _run_merged(args, path, header, packet_filter)
    if args.json and streamable(
        path, strace=args.strace, packets=args.packets, count=args.count, filtered=packet_filter is not None
    ):
        return _run_streaming(args, path)
    session = Session()
    if args.strace is not None:
        load_strace(session, args.strace)
    if path is not None:
        with reading_through_ctrl_c(path), showing_progress(path) as progress:
            load_capture(session, path, packet_filter=packet_filter, on_progress=progress, count=args.count)
    diagnose(session)
    if args.json:
        return _report(args, session.error, lambda: json_report.write(session, sys.stdout, packets=args.packets))
    return _report(args, session.error, lambda: text_report.write(session, sys.stdout, notable=args.notable))


def _run_streaming(args: argparse.Namespace, path: str) -> int:
    """`--json` of one file in memory that follows the connections open at a time, not the
    file's length (engine/streaming.py); the same document as the whole-table path."""
    session = Session()
    writer = json_report.StreamWriter()
    streamer = Streamer(session, writer)
    with reading_through_ctrl_c(path), showing_progress(path) as progress:
        for _ in streamer.read(path, on_progress=progress):
            pass
    diagnose(session)
    streamer.finish()
    return _report(args, session.error, lambda: writer.finish(session, sys.stdout))


def _run_merged(args: argparse.Namespace, path: str, header: dict, packet_filter: PacketFilter | None) -> int:
    """A merged recording (`wirecorr merge`): each host correlated on its own, one clock."""
    merged = load_merged(path, header, packet_filter=packet_filter)
    if args.json:
        return _report(args, merged.error, lambda: hosts_report.write_json(merged, sys.stdout, packets=args.packets))
    return _report(args, merged.error, lambda: hosts_report.write_text(merged, sys.stdout, notable=args.notable))


def _report(args: argparse.Namespace, error: InputError | None, write: Callable[[], None]) -> int:
    """Every input path ends alike: the report of what was read is printed unless damage
    stopped the read and `--partial` (default: only for a cut-short file) does not ask for
    it, then the one error line and its exit code."""
    partial = args.partial if args.partial is not None else is_truncation(error)
    if error is None or partial:
        write()
        sys.stdout.flush()
    if error is not None:
        print(f"wirecorr: {error}", file=sys.stderr)
        return int(error.exit_code)
    return 0
