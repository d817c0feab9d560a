"""`wirecorr lab`: the seed experiments, each one command in a private network namespace.

`lab run` records the lab like `wirecorr record` would, then prints what the recording
shows — or opens it in the TUI, or prints the analyze JSON with the lab's verdict added.
The exit status is 1 when the recording did not show the lab's effect, so a lab can be
used as a smoke test of the machine it runs on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from typing import Any

from wirecorr import labs
from wirecorr.errors import WirecorrError
from wirecorr.labs import runner
from wirecorr.views import json_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lab",
        help="run a seed experiment (handshake, port-bomb, zero-window, …) in a private network namespace",
        description=(
            "Each lab runs real programs inside a fresh network namespace under the tracer with tcpdump, "
            "then explains the recording with its own numbers. Needs root. `wirecorr lab list` shows the labs."
        ),
    )
    lab_sub = p.add_subparsers(dest="lab_command", required=True, metavar="list|run")
    lst = lab_sub.add_parser("list", help="names and one-line descriptions")
    lst.set_defaults(run=run_list)
    r = lab_sub.add_parser("run", help="run one lab and explain its recording")
    r.add_argument("name", metavar="NAME", help="lab name (see `wirecorr lab list`)")
    r.add_argument("-o", "--output", help="keep the recording in this pcapng file (default: a temporary file)")
    shown = r.add_mutually_exclusive_group()
    shown.add_argument("--tui", action="store_true", help="open the recording in the TUI instead of printing")
    shown.add_argument("--json", action="store_true", help="print the analyze JSON document plus a `lab` record")
    r.add_argument(
        "--small", action="store_true", help="fewer connections and bytes (tests, shipped recordings); same effect"
    )
    r.set_defaults(run=run_lab)


def run_list(args: argparse.Namespace) -> int:
    width = max(map(len, labs.NAMES))
    for lab in labs.all_labs():
        print(f"{lab.name:<{width}}  {lab.summary}")
    return 0


def run_lab(args: argparse.Namespace) -> int:
    lab = labs.get(args.name)
    if os.geteuid() != 0:
        raise WirecorrError("lab: needs root (network namespaces, ptrace, tcpdump)")
    if args.tui:
        from wirecorr.views.tui.app import require_terminal

        require_terminal("lab --tui", instead="without --tui the lab prints what happened")
    with tempfile.TemporaryDirectory(prefix="wirecorr-lab-") as tmp:
        output = args.output or os.path.join(tmp, f"lab-{lab.name}.pcapng")
        result = runner.run(lab, output, small=args.small)
        if args.tui:
            _open_tui(output)
        elif args.json:
            doc = json_report.document(result.evidence.session, packets=False)
            doc["lab"] = lab_record(result, kept=args.output is not None)
            sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
        else:
            write_text(result, kept=args.output is not None)
    return 0 if result.shown else 1


def lab_record(result: runner.LabResult, *, kept: bool) -> dict[str, Any]:
    """The lab's verdict beside the analyze document; `recording` is None when it was temporary."""
    ev = result.evidence
    return {
        "name": result.lab.name,
        "recording": result.output if kept else None,
        "status": result.status,
        "shown": ev.shown,
        "explanation": ev.lines,
        "missing": ev.missing,
        "facts": ev.facts,
    }


def write_text(result: runner.LabResult, *, kept: bool) -> None:
    ev = result.evidence
    session = ev.session
    out = sys.stdout
    out.write(f"lab {result.lab.name}: {result.lab.summary}\n")
    where = result.output if kept else "temporary, removed (keep it with -o FILE)"
    out.write(
        f"recording: {where}; {session.packets_read} packets, {len(session.syscalls)} syscalls, "
        f"{len(ev.connections)} connection(s)\n"
    )
    kinds = Counter(link.kind for link in session.correlator.links)
    if kinds:
        out.write("links: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()) + "\n")
    quiet = ev.kernel_only()
    if quiet:
        out.write("kernel-only packets: " + ", ".join(f"{k} {n}" for k, n in quiet.most_common()) + "\n")
    out.write("\n")
    for line in ev.lines:
        out.write(f"  {line}\n")
    out.write("\n")
    if ev.shown:
        out.write("effect shown.\n")
    else:
        out.write("EFFECT NOT SHOWN by this recording:\n")
        for line in ev.missing:
            out.write(f"  - {line}\n")
    if kept:
        out.write(f"next: wirecorr analyze {result.output}\n")


def _open_tui(path: str) -> None:
    """`wirecorr tui PATH`, parsed by the tui command's own parser (its defaults included)."""
    from wirecorr.commands import tui

    parser = argparse.ArgumentParser(prog="wirecorr")
    tui.add_parser(parser.add_subparsers())
    tui_args = parser.parse_args(["tui", path])
    tui_args.run(tui_args)
