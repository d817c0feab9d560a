"""`wirecorr merge`: recordings of several hosts (or namespaces) as one recording on one clock."""

from __future__ import annotations

import argparse
import sys

from wirecorr.recording.merge import merge


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="merge recordings of different hosts into one, clocks synchronised on the packets both saw",
        description=(
            "Merge wirecorr recordings (or captures) made on different hosts or network namespaces. The clock of "
            "each host is estimated against the first one's from the packets both captured (offset and drift, "
            "with an error bound), and its packets and syscalls are moved onto the first host's clock."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="RECORDING", help="recordings to merge; the first is the reference")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="merged recording to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = merge(args.inputs, args.output)
    for host in result.hosts[1:]:
        print(
            f"{host['name']}: clock {host['offset_ns'] / 1e6:+.3f} ms ± {host['offset_error_ns'] / 1e3:.1f} µs "
            f"against {result.hosts[0]['name']} (drift {host['drift_ppb'] / 1e3:+.3f} ppm, "
            f"{host['sync']['forward']} + {host['sync']['backward']} crossings)",
            file=sys.stderr,
        )
    print(
        f"{args.output}: {result.packets:,} packets, {result.syscalls:,} syscalls, {result.crossings:,} crossings "
        f"of {len(result.hosts)} hosts",
        file=sys.stderr,
    )
    return 0
