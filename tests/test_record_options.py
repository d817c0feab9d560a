"""RecordOptions: the one description of a recording session that every front end builds.

The pytest plugin and the two-hosts lab run the recorder as a child process from
`RecordOptions.command_line()`; these tests check that the CLI parses that line back into
the same options, so the child records exactly what the caller described.
"""

from __future__ import annotations

import pytest

from wirecorr.cli import build_parser
from wirecorr.commands.record import options
from wirecorr.errors import UsageError
from wirecorr.recording.recorder import RecordOptions

CASES = [
    RecordOptions("a.pcapng", ["nc", "-q1", "127.0.0.1", "4444"]),
    RecordOptions("b.pcapng", pids=[12, 40], interface="lo", capture_filter="tcp port 80", snaplen=128),
    RecordOptions("c.pcapng", ["true"], capture=False, data_bytes=0, buffer_kib=64, user="nobody"),
    RecordOptions("d.pcapng", ["sh", "-c", "echo -- x"], netns_name="lab", capture_filter="udp"),
]


@pytest.mark.parametrize("want", CASES, ids=lambda o: o.output)
def test_the_command_line_parses_back_to_the_same_options(want: RecordOptions) -> None:
    args = build_parser().parse_args(want.command_line())
    assert options(args) == want
    assert args.no_annotate is False
    assert build_parser().parse_args(want.command_line(link=False)).no_annotate is True


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (RecordOptions("x", ["true"], pids=[3]), "either -- CMD"),
        (RecordOptions("x"), "either -- CMD"),
        (RecordOptions("x", pids=[3], user="nobody"), "--user applies to a launched CMD"),
        (RecordOptions("x", ["true"], snaplen=0), "must be positive"),
        (RecordOptions("x", pids=[3], netns_name="lab"), "--netns runs a CMD"),
    ],
)
def test_check_refuses_what_cannot_be_recorded(bad: RecordOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        bad.check()
