"""The `wirecorr` command line: dispatches to one module per sub-command.

User mistakes (bad files, missing tools or capabilities) surface as `WirecorrError` and
become one line on stderr plus an exit code; only a bug in wirecorr shows a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from wirecorr import __version__
from wirecorr.errors import WirecorrError

# Sub-command → its module and its one-line help. `lab` lives with the labs: they sit above
# the commands (docs/architecture.md, layers), and a command module may not import them.
# Only the module of the command that runs is imported (the engine, the TUI, DuckDB are
# slow to import); the others appear in `wirecorr --help` by their line here, which
# tests/test_cli_lazy.py keeps equal to the one each module's add_parser gives.
COMMANDS = {
    "analyze": (
        "wirecorr.commands.analyze",
        "report connections, TCP analysis and syscalls of a capture or recording",
    ),
    "record": (
        "wirecorr.commands.record",
        "trace a command (or running processes) and capture its packets into one pcapng recording",
    ),
    "lab": (
        "wirecorr.labs.command",
        "run a seed experiment (handshake, port-bomb, zero-window, …) in a private network namespace",
    ),
    "check": (
        "wirecorr.commands.check",
        "check a capture or recording against rules (exit 0 pass, 1 fail, 2 bad input)",
    ),
    "tui": ("wirecorr.commands.tui", "browse syscalls and packets side by side in a terminal UI"),
    "live": (
        "wirecorr.commands.live",
        "record (like `record`) while the TUI shows syscalls and packets as they happen",
    ),
    "export": (
        "wirecorr.commands.export",
        "write recordings as Parquet tables (recordings, connections, packets, syscalls, links, findings)",
    ),
    "query": ("wirecorr.commands.query", "run SQL (DuckDB) over an export directory or over recordings"),
    "edit": (
        "wirecorr.commands.edit",
        "rewrite a capture or recording with every timestamp shifted (as editcap -t)",
    ),
    "merge": (
        "wirecorr.commands.merge",
        "merge recordings of different hosts into one, clocks synchronised on the packets both saw",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `command` one whose other sub-commands are named but not loaded."""
    parser = argparse.ArgumentParser(
        prog="wirecorr",
        description="Pair a program's system calls with the packets they become on the wire.",
    )
    parser.add_argument("--version", action="version", version=f"wirecorr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # numpy's OpenBLAS starts a thread per core at import, and nothing here multiplies
    # matrices: one thread saves ~0.1 s of CPU per run (0.31 -> 0.20 s user for `analyze`
    # of a small capture), which a traced program or a busy machine would share.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # `wirecorr FILE` opens the TUI: the shortest way to look at a capture.
    if argv and argv[0] not in COMMANDS and os.path.isfile(argv[0]):
        argv = ["tui", *argv]
    # The first word names the command; `wirecorr --help` and mistakes load none.
    command = argv[0] if argv and argv[0] in COMMANDS else ""
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.run(args))
    except WirecorrError as e:
        print(f"wirecorr: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `wirecorr analyze … | head`: the reader left; say nothing, like other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
