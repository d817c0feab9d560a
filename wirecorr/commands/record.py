"""`wirecorr record`: trace a program's syscalls and capture its packets into one Recording.

This module is the command line only: it turns the options into a `RecordOptions` and
hands them to the session in wirecorr/recording/recorder.py, with the engine's linking
pass as the linker unless --no-annotate.
"""

from __future__ import annotations

import argparse

from wirecorr.errors import UsageError
from wirecorr.recording.recorder import DEFAULT_DATA_BYTES, RecordOptions, default_output, record
from wirecorr.sources.live_capture import DEFAULT_BUFFER_KIB, DEFAULT_SNAPLEN

EPILOG = """\
examples:
  wirecorr record -o echo.pcapng -- nc -q1 127.0.0.1 4444
  wirecorr record -f 'tcp port 443' -- curl -s https://example.org/
  wirecorr record -p 1234,1240 -o server.pcapng        (Ctrl-C to stop; the processes keep running)

The capture defaults to interface `any`, because CMD may talk to other hosts as well as to
loopback, and to no filter: every packet on the interface is recorded. At high packet rates
a tight -f filter is what keeps the kernel from dropping packets; the closing summary
reports real loss. To keep whole payloads raise -s and -B together. See docs/record.md.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help="trace a command (or running processes) and capture its packets into one pcapng recording",
        description=(
            "Run CMD (or attach to -p PIDs) under the syscall tracer while tcpdump captures, and write "
            "syscalls and packets into one pcapng file that Wireshark can open and `wirecorr analyze` reads."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-o", "--output", help="recording to write (default wirecorr-YYYYmmdd-HHMMSS.pcapng)")
    p.add_argument("-i", "--interface", default="any", help="capture interface (default any)")
    p.add_argument("-f", "--filter", default=None, help="tcpdump (BPF) capture filter (default: none, all packets)")
    p.add_argument(
        "-s",
        "--snaplen",
        type=int,
        default=DEFAULT_SNAPLEN,
        help=f"bytes kept per packet (default {DEFAULT_SNAPLEN}: smaller packets fit more of them in tcpdump's ring)",
    )
    p.add_argument(
        "-B",
        "--buffer-kib",
        type=int,
        default=DEFAULT_BUFFER_KIB,
        help=f"kernel capture buffer, KiB (default {DEFAULT_BUFFER_KIB})",
    )
    p.add_argument(
        "--data-bytes", type=int, default=DEFAULT_DATA_BYTES, help="payload bytes kept per read/write syscall"
    )
    p.add_argument("--no-capture", action="store_true", help="trace syscalls only, run no tcpdump")
    p.add_argument(
        "--no-annotate",
        action="store_true",
        help="do not correlate at the end (no packet comments or link records; faster for large recordings)",
    )
    p.add_argument("--user", help="run CMD as this user (the tracer and tcpdump stay root)")
    p.add_argument("-p", "--pid", action="append", default=[], help="attach to running PID[,PID...] instead of CMD")
    p.add_argument(
        "--netns",
        metavar="NAME",
        help="run CMD and the capture in the network namespace NAME (as `ip netns exec NAME`); -p PIDs are "
        "captured in their own namespace without it",
    )
    p.add_argument(
        "--no-follow-netns",
        action="store_true",
        help="capture only where the session starts, also when a traced process execs in another network "
        "namespace (by default it gets a capture there too, merged into the recording)",
    )
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    p.set_defaults(run=run)


def parse_pids(values: list[str]) -> list[int]:
    pids: list[int] = []
    for value in values:
        for part in value.split(","):
            if not part.strip().isdigit() or int(part) <= 0:
                raise UsageError(f"record: -p wants process ids, got {part!r}")
            pids.append(int(part))
    return pids


def options(args: argparse.Namespace, command: str = "record") -> RecordOptions:
    """The parsed command line as the session's options, checked."""
    argv = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    opts = RecordOptions(
        output=args.output or default_output(),
        argv=argv,
        pids=parse_pids(args.pid),
        interface=args.interface,
        capture_filter=args.filter,
        snaplen=args.snaplen,
        buffer_kib=args.buffer_kib,
        data_bytes=args.data_bytes,
        capture=not args.no_capture,
        user=args.user,
        netns_name=args.netns,
        follow_namespaces=not args.no_follow_netns,
    )
    opts.check(command)
    return opts


def run(args: argparse.Namespace) -> int:
    from wirecorr.engine.linking import annotate

    opts = options(args)
    if opts.pids and opts.capture:
        from wirecorr.sources.netns import groups

        split = groups(opts.pids)
        if len(split) > 1:
            # One capture per namespace, merged (a merged recording is linked when read).
            from wirecorr.recording.netns_split import record_namespaces

            return record_namespaces(opts, split)
    return record(opts, linker=None if args.no_annotate else annotate)
