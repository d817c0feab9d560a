"""`wirecorr tui`: browse a capture or recording (or an strace log with its capture)."""

from __future__ import annotations

import argparse
import os
import tempfile

from wirecorr.engine.ingest import load_strace
from wirecorr.engine.session import Session
from wirecorr.errors import InputError, UsageError, WirecorrError
from wirecorr.sources.capture_file import STDIN, decompress_into, is_gzip


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tui",
        help="browse syscalls and packets side by side in a terminal UI",
        description=(
            "Open a pcap/pcapng capture or a wirecorr recording in the terminal UI: syscalls and packets "
            "interleaved by time, their links, connections and findings. `wirecorr FILE` does the same."
        ),
    )
    p.add_argument("file", nargs="?", help="pcap, pcapng or wirecorr recording")
    p.add_argument("--pcap", help="capture to read beside --strace (same as FILE)")
    p.add_argument("--strace", metavar="LOG", help="syscalls from `strace -f -ttt -T -yy -o LOG`")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: Textual costs ~0.3 s to import and only this command needs it.
    from wirecorr.views.tui.app import WirecorrApp, require_terminal
    from wirecorr.views.tui.index import EventIndex
    from wirecorr.views.tui.loader import FileLoader
    from wirecorr.views.tui.packets import LivePackets

    path = args.file or args.pcap
    if path is None:
        raise WirecorrError("tui: give a capture FILE, or --strace LOG --pcap FILE")
    if path == STDIN:
        raise UsageError("tui: reads a file, not standard input (it re-reads packets as you look at them)")
    if not os.path.isfile(path):
        raise InputError(path, "no such file")
    require_terminal("tui", instead="`wirecorr analyze FILE` prints the same as text")
    index = EventIndex(Session(), LivePackets())
    if args.strace is not None:
        load_strace(index.session, args.strace)
        index.adopt(index.session.syscalls)
    with tempfile.TemporaryDirectory(prefix="wirecorr-tui-") as tmp:
        # The UI re-reads packets by offset as they are looked at: it needs the plain file.
        readable = decompress_into(path, tmp) if is_gzip(path) else path
        loader = FileLoader(index, readable, name=path)
        WirecorrApp(index, loader, title=path).run()
    return 0
