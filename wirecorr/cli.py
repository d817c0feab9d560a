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

# Sub-command → its module. `lab` lives with the labs: they sit above the commands
# (docs/architecture.md, layers), and a command module may not import them.
COMMANDS = {
    "analyze": "wirecorr.commands.analyze",
    "record": "wirecorr.commands.record",
    "lab": "wirecorr.labs.command",
    "check": "wirecorr.commands.check",
    "tui": "wirecorr.commands.tui",
    "live": "wirecorr.commands.live",
    "export": "wirecorr.commands.export",
    "query": "wirecorr.commands.query",
    "edit": "wirecorr.commands.edit",
    "merge": "wirecorr.commands.merge",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wirecorr",
        description="Pair a program's system calls with the packets they become on the wire.",
    )
    parser.add_argument("--version", action="version", version=f"wirecorr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # `wirecorr FILE` opens the TUI: the shortest way to look at a capture.
    if argv and argv[0] not in COMMANDS and os.path.isfile(argv[0]):
        argv = ["tui", *argv]
    args = build_parser().parse_args(argv)
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
