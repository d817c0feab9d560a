"""`wirecorr export --parquet DIR REC…`: recordings as Parquet tables for DuckDB, Spark, Trino.

Each recording is read into a Session exactly as `analyze` reads it and written by
`views.columnar` under DIR/TABLE/host=H/date=D/ID.parquet (schema: docs/export.md). One
unreadable recording does not stop the batch: it gets its line on stderr, the others are
exported, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import TextIO

from wirecorr.bulk import paused_gc
from wirecorr.engine.ingest import diagnose, is_truncation, load_capture
from wirecorr.engine.session import Session
from wirecorr.errors import EXIT_BAD_INPUT, InputError, UsageError, WirecorrError
from wirecorr.views.progress import showing_progress


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write recordings as Parquet tables (recordings, connections, packets, syscalls, links, findings)",
        description=(
            "Export recordings or captures as Parquet tables under DIR, Hive-partitioned by host and date, "
            "for DuckDB (`wirecorr query`), Spark or Trino. Re-exporting a recording replaces its rows only. "
            "Schema: docs/export.md."
        ),
    )
    p.add_argument("--parquet", metavar="DIR", required=True, help="export directory (created if missing)")
    p.add_argument(
        "--host",
        metavar="NAME",
        help="host partition for captures without a recording header (default: unknown)",
    )
    p.add_argument("recordings", nargs="+", metavar="REC", help="wirecorr recording, pcap or pcapng file")
    p.set_defaults(run=run)


@dataclass
class ExportResult:
    """What a batch did: ids written, and the one-line reason for each file that failed."""

    exported: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    partial: list[tuple[str, str]] = field(default_factory=list)


class BatchProgress:
    """One redrawn line on a terminal's stderr: which recording of how many is being read."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        # On a terminal each large file also gets its reading bar (`showing_progress`).
        self.enabled = self.stream.isatty() and total > 1
        self.total = total

    def show(self, done: int, path: str) -> None:
        if self.enabled:
            bar = "#" * (30 * done // self.total)
            self.stream.write(f"\r\x1b[Kexport [{bar:<30}] {done}/{self.total} {os.path.basename(path)}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def export_one(root: str, path: str, host: str | None) -> tuple[str, str | None]:
    """Export one recording; returns its id and, for a file cut short, the damage it had.

    Raises InputError for a file that cannot be exported: one damaged anywhere but at its
    end is not exported partially, as `analyze` does not report it by default.
    """
    from wirecorr.views import columnar  # pyarrow: imported by the commands that use it

    session = Session()
    with paused_gc():
        with showing_progress(path) as progress:
            load_capture(session, path, on_progress=progress)
        if session.error is not None and not is_truncation(session.error):
            raise session.error
        try:
            source = columnar.describe_file(path)
        except OSError as e:
            raise InputError(path, e.strerror or str(e)) from None
        diagnose(session)
        rid = columnar.recording_id(session.meta, source)
        tables = columnar.build_tables(session, rid, source)
        host_value, date = columnar.partition_values(session, host)
        try:
            columnar.write_recording(root, rid, host_value, date, tables)
        except OSError as e:
            # The directory, not the recording: the next one would fail the same way.
            raise WirecorrError(f"export: cannot write to {root}: {e.strerror or e}") from None
    return rid, None if session.error is None else str(session.error)


def export_batch(root: str, paths: list[str], host: str | None, *, progress: BatchProgress) -> ExportResult:
    result = ExportResult()
    try:
        for n, path in enumerate(paths):
            progress.show(n, path)
            try:
                rid, damage = export_one(root, path, host)
            except InputError as e:
                progress.close()
                print(f"wirecorr: {e}", file=sys.stderr)
                result.failed.append((path, str(e)))
                continue
            result.exported.append((path, rid))
            if damage is not None:
                progress.close()
                print(f"wirecorr: {damage} (exported up to there)", file=sys.stderr)
                result.partial.append((path, damage))
    finally:
        progress.close()
    return result


def run(args: argparse.Namespace) -> int:
    root = args.parquet
    if "-" in args.recordings:
        # A capture is identified by its file's hash, and its rows point into the file.
        raise UsageError("export: reads recordings from files, not from standard input (-)")
    if os.path.exists(root) and not os.path.isdir(root):
        raise UsageError(f"export: {root} exists and is not a directory")
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise UsageError(f"export: cannot create {root}: {e.strerror}") from None
    result = export_batch(root, args.recordings, args.host, progress=BatchProgress(len(args.recordings)))
    total = len(args.recordings)
    print(f"exported {len(result.exported)} of {total} recording(s) to {root}")
    if result.failed:
        names = ", ".join(path for path, _ in result.failed)
        print(f"wirecorr: export: {len(result.failed)} of {total} not exported: {names}", file=sys.stderr)
    if result.failed or result.partial:
        return EXIT_BAD_INPUT
    return 0
