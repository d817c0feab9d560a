"""`wirecorr tui`: browse a capture or recording (or an strace log with its capture)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile

from wirecorr.engine.ingest import load_strace
from wirecorr.engine.session import Session
from wirecorr.errors import InputError, MissingTool, UsageError, WirecorrError
from wirecorr.sources.capture_file import STDIN, CaptureReader, decompress_into, is_gzip


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
    p.add_argument(
        "--serve",
        action="store_true",
        help="serve the UI to a browser (textual-serve) instead of this terminal; one app per browser tab",
    )
    p.add_argument("--port", type=int, default=8000, help="--serve: port to listen on (default 8000)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="--serve: address to listen on (default 127.0.0.1: reach it through an SSH port forward)",
    )
    p.set_defaults(run=run)


def serve(args: argparse.Namespace, path: str) -> int:
    """Run `wirecorr tui FILE` under textual-serve: each browser tab gets its own app,
    driven through a websocket; the file is opened as for the terminal."""
    try:
        from textual_serve.server import Server
    except ImportError:
        raise MissingTool("tui --serve needs textual-serve: pip install textual-serve") from None
    argv = [sys.executable, "-m", "wirecorr", "tui", os.path.abspath(path)]
    if args.strace is not None:
        argv += ["--strace", os.path.abspath(args.strace)]
    url = f"http://{args.host}:{args.port}"
    print(f"wirecorr tui: serving {path} at {url} (ctrl-c stops)", file=sys.stderr, flush=True)
    Server(shlex.join(argv), host=args.host, port=args.port, title=f"wirecorr {os.path.basename(path)}").serve()
    return 0


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
    if args.serve:
        if not is_gzip(path):  # refused here, once, rather than in every browser tab
            _probe(path, path)
        return serve(args, path)
    require_terminal("tui", instead="`wirecorr analyze FILE` prints the same as text")
    index = EventIndex(Session(), LivePackets())
    if args.strace is not None:
        load_strace(index.session, args.strace)
        index.adopt(index.session.syscalls)
    with tempfile.TemporaryDirectory(prefix="wirecorr-tui-") as tmp:
        # The UI re-reads packets by offset as they are looked at: it needs the plain file.
        readable = decompress_into(path, tmp) if is_gzip(path) else path
        _probe(readable, path)
        loader = FileLoader(index, readable, name=path)
        app = WirecorrApp(index, loader, title=path)
        app.cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
        app.run()
    return app.return_code or 0


def _probe(readable: str, path: str) -> None:
    """Refuse a file that is no capture before the UI opens, as `analyze` does (exit 2).

    Damage further in is the loader's to report, in the UI, with what was read before it.
    """
    try:
        next(iter(CaptureReader(readable).records()), None)
    except InputError as e:
        if readable != path:  # name the user's file, not the decompressed copy
            message = str(e).split(": ", 1)[-1]
            raise InputError(path, f"(decompressed) {message}", offset=e.offset) from None
        raise
