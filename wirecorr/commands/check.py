"""`wirecorr check`: evaluate a rules file against a capture or recording, for CI.

Exit status is the whole API for a test runner: 0 every rule passed, 1 a rule failed,
2 the input or the rules file is bad (one line on stderr naming the file and the rule).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from wirecorr.bulk import paused_gc
from wirecorr.commands.pipe_input import reading_through_ctrl_c
from wirecorr.engine.hosts import load_merged, merged_header
from wirecorr.engine.ingest import diagnose, is_truncation, load_capture, load_strace
from wirecorr.engine.session import Session
from wirecorr.errors import UsageError
from wirecorr.sources.capture_file import STDIN
from wirecorr.views import checks, hosts_report
from wirecorr.views.progress import showing_progress

EPILOG = """\
examples:
  wirecorr check echo.pcapng --expect rules.toml
  wirecorr check capture.pcap --strace app.strace --expect rules.toml

rules.toml:
  [findings]
  no = ["close_wait_leak", "rst_on_close"]
  [counts]
  connections = 1
  retransmissions = {max = 0}
  [links]
  every = ["accept4 -> accept-ack", "connect -> connect-syn"]
  [close]
  active_closer = "client"

The rules are documented in docs/checks.md.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="check a capture or recording against rules (exit 0 pass, 1 fail, 2 bad input)",
        description=(
            "Evaluate the rules of a TOML file (findings present or absent, counts, links, delays, close "
            "order) against a recording or capture and report each rule with PASS/FAIL and the evidence."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="wirecorr recording, or a pcap/pcapng capture; - reads standard input")
    p.add_argument("--strace", metavar="LOG", help="syscalls from an strace log of the captured programs")
    p.add_argument("--expect", metavar="RULES", required=True, help="TOML rules file (docs/checks.md)")
    p.add_argument(
        "--partial",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check what was read before damage in the file (default: only when the file is cut short)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print failed rules only")
    p.set_defaults(run=run)


# A one-shot report keeps what it loads until it exits: the cyclic GC would only rescan
# it, during the load and again while findings and the report walk it.
@paused_gc()
def run(args: argparse.Namespace) -> int:
    if args.file == args.strace == STDIN:
        raise UsageError("check: only one input can come from standard input")
    # Rules first: a bad rules file should fail before a large capture is read.
    rules = checks.load_rules(args.expect)
    header = merged_header(args.file) if args.file != STDIN and args.strace is None else None
    if header is not None:
        return _check_merged(args, rules, header)
    session = Session()
    if args.strace is not None:
        load_strace(session, args.strace)
    with reading_through_ctrl_c(args.file), showing_progress(args.file) as progress:
        load_capture(session, args.file, on_progress=progress)
    diagnose(session)
    error = session.error
    if error is not None:
        partial = args.partial if args.partial is not None else is_truncation(error)
        if not partial:
            raise error
        print(f"wirecorr: warning: {error}; checking what was read before it", file=sys.stderr)
    for warning in session.warnings:  # an incomplete recording, unparsable strace lines, …
        print(f"wirecorr: warning: {warning}", file=sys.stderr)
    report = checks.evaluate(session, rules)
    sources = " + ".join(session.sources)
    title = f"wirecorr check: {sources} against {args.expect}"
    checks.write_report(session, report, sys.stdout, title=title, failures_only=args.quiet)
    return 0 if report.passed else 1


def _check_merged(args: argparse.Namespace, rules: list[checks.Rule], header: dict[str, Any]) -> int:
    """A merged recording: the rules hold on every host's side, each checked on its own."""
    merged = load_merged(args.file, header)
    error = merged.error
    if error is not None:
        partial = args.partial if args.partial is not None else is_truncation(error)
        if not partial:
            raise error
        print(f"wirecorr: warning: {error}; checking what was read before it", file=sys.stderr)
    passed = True
    for h in merged.hosts:
        for warning in h.session.warnings:
            print(f"wirecorr: warning: host {h.name}: {warning}", file=sys.stderr)
        report = checks.evaluate(h.session, rules)
        passed = passed and report.passed
        clock = hosts_report.clock_line(h.host, merged.hosts[0].name)
        title = f"wirecorr check: {args.file} host {h.host['id']} {h.name} ({clock}) against {args.expect}"
        checks.write_report(h.session, report, sys.stdout, title=title, failures_only=args.quiet)
    return 0 if passed else 1
