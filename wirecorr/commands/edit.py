"""`wirecorr edit`: rewrite a capture or recording, today with its clock shifted (editcap -t).

The use that matters is giving one host of a multi-host session a known wrong clock (tests,
the two-hosts lab), or correcting a host whose clock was off before `wirecorr merge`.
"""

from __future__ import annotations

import argparse
import sys

from wirecorr.recording.edit import parse_seconds, time_shift


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "edit",
        help="rewrite a capture or recording with every timestamp shifted (as editcap -t)",
        description=(
            "Copy a pcap/pcapng capture or wirecorr recording to OUT with its packets, syscalls, process events "
            "and header/summary times moved by SECONDS. The output is pcapng with nanosecond timestamps."
        ),
    )
    p.add_argument("input", metavar="IN", help="capture or recording to read")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write (not IN)")
    p.add_argument(
        "-t",
        "--time-shift",
        required=True,
        metavar="SECONDS",
        help="seconds to add to every timestamp, e.g. 0.250 or -3 (up to 9 decimals)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    shift = parse_seconds(args.time_shift)
    packets, records = time_shift(args.input, args.output, shift)
    print(
        f"{args.output}: {packets:,} packets and {records:,} records shifted by {shift / 1e9:+.9f} s", file=sys.stderr
    )
    return 0
