"""`wirecorr query SQL [DIR | REC…]`: SQL over an export, run by DuckDB in this process.

The tables of docs/export.md are views over the export's Parquet files, with `host` and
`date` from the Hive partition path, exactly as Spark or Trino see the same directory. Given
recordings instead of a directory, each is exported first into a cache
($XDG_CACHE_HOME/wirecorr/export) that is reused while the file's content is unchanged.
SQL may also be the name of a shipped example (`--examples` lists them).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import decimal
import glob
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from wirecorr.errors import EXIT_BAD_INPUT, UsageError
from wirecorr.json_codec import dumps

if TYPE_CHECKING:
    import duckdb


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "query",
        help="run SQL (DuckDB) over an export directory or over recordings",
        description=(
            "Run SQL over the tables of `wirecorr export` (recordings, connections, packets, syscalls, links, "
            "findings; schema in docs/export.md) with DuckDB in this process, over one export DIR or over "
            "recordings, which are exported to a cache first. SQL may be the name of a shipped example."
        ),
    )
    p.add_argument("sql", nargs="?", metavar="SQL", help="a query, or an example's name (see --examples)")
    p.add_argument("sources", nargs="*", metavar="DIR | REC", help="an export directory, or recordings")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the rows as one JSON array of objects")
    out.add_argument("--csv", action="store_true", help="print the rows as CSV with a header line")
    p.add_argument("--examples", action="store_true", help="list the shipped example queries and exit")
    p.set_defaults(run=run)


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "wirecorr", "export")


def _cached_ids(root: str) -> dict[str, str]:
    """content hash → recording id of what the cache holds from this wirecorr and schema."""
    import pyarrow.parquet as pq

    from wirecorr import __version__
    from wirecorr.views import columnar
    from wirecorr.views.columnar_sql import table_files

    out: dict[str, str] = {}
    for path in table_files(root, "recordings"):
        try:
            rows = pq.read_table(path, columns=["recording_id", "content_sha256", "exported_with", "schema_version"])
        except (OSError, ValueError):
            continue  # a damaged cache entry is exported again
        for row in rows.to_pylist():
            if row["exported_with"] == __version__ and row["schema_version"] == columnar.SCHEMA_VERSION:
                out[row["content_sha256"]] = row["recording_id"]
    return out


def exported_recordings(paths: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """Export what the cache lacks; returns the cache root, the ids to query and the failed paths."""
    from wirecorr.commands.export import BatchProgress, export_batch
    from wirecorr.views import columnar

    root = cache_dir()
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise UsageError(f"query: cannot create the cache {root}: {e.strerror}") from None
    cached = _cached_ids(root)
    ids: list[str] = []
    missing: list[str] = []
    for path in paths:
        try:
            rid = cached.get(columnar.describe_file(path).sha256) if os.path.isfile(path) else None
        except OSError:
            rid = None
        if rid is not None and all(columnar.recording_files(root, rid).values()):
            ids.append(rid)
        else:
            missing.append(path)
    result = export_batch(root, missing, None, progress=BatchProgress(len(missing)))
    ids.extend(rid for _, rid in result.exported)
    return root, sorted(set(ids)), [path for path, _ in result.failed]


def tables_named(sql: str) -> list[str]:
    """The export's tables that `sql` names: a view costs a read of every file's footer."""
    from wirecorr.views.columnar_sql import TABLES

    words = {w.lower() for w in re.findall(r"\w+", sql)}
    return [table for table in TABLES if table in words]


def connect(
    root: str, ids: Sequence[str] | None = None, tables: Sequence[str] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per table (of `tables`, default all) over `root`,
    restricted to the files of `ids` if given.

    Files written with different column sets (exports by different wirecorr versions, which
    may add columns) are read with `union_by_name`.
    """
    import duckdb

    from wirecorr.views.columnar_sql import TABLES, schema_markers

    con = duckdb.connect()
    wanted = None if ids is None else {f"{rid}.parquet" for rid in ids}
    for table in TABLES if tables is None else tables:
        pattern = os.path.join(glob.escape(root), table, "*", "*", "*.parquet")
        files = sorted(glob.glob(pattern))
        if wanted is not None:
            files = [f for f in files if os.path.basename(f) in wanted]
        if files:
            # DuckDB lists a directory faster than it takes a long list, but has no glob escapes.
            plain = wanted is None and not any(c in root for c in "*?[")
            source = os.path.join(root, table, "*", "*", "*.parquet") if plain else files
            union = len(schema_markers(root, table)) != 1
            con.read_parquet(source, hive_partitioning=True, union_by_name=union).create_view(table)
        else:
            from wirecorr.views import columnar  # pyarrow, only for a table with no file

            con.register(table, columnar.empty_table(table))
    return con


def _plain(value: Any) -> Any:
    """A DuckDB value as JSON or CSV can hold it."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    value = _plain(value)
    if isinstance(value, float):
        # Twelve digits: percentiles' float noise (249239.50000000012) is not worth a column's width.
        return f"{value:.12g}"
    if isinstance(value, list | dict):
        return dumps(value).decode()
    return str(value)


def write_table(names: list[str], rows: list[tuple[Any, ...]], out: TextIO) -> None:
    """Aligned columns, numbers to the right, as a terminal reader scans them."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
    numeric = [
        all(isinstance(row[i], int | float | decimal.Decimal) for row in rows if row[i] is not None)
        for i in range(len(names))
    ]
    out.write("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        out.write("  ".join(parts).rstrip() + "\n")
    out.write(f"({len(rows)} row{'' if len(rows) == 1 else 's'})\n")


def write_json(names: list[str], rows: list[tuple[Any, ...]], out: TextIO) -> None:
    records = [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in rows]
    out.write(dumps(records).decode() + "\n")


def write_csv(names: list[str], rows: list[tuple[Any, ...]], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow(["" if v is None else _cell(v) for v in row])


def execute(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    import duckdb

    try:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        rows = cursor.fetchall() if names else []
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"query: {first}") from None
    return names, rows


def run(args: argparse.Namespace) -> int:
    from wirecorr.views.columnar_sql import EXAMPLES

    if args.examples:
        for name, sql in EXAMPLES.items():
            print(f"-- {name}\n{sql};\n")
        return 0
    if args.sql is None or not args.sources:
        raise UsageError("query: give SQL (or an example's name) and an export DIR or recordings")
    sql = EXAMPLES.get(args.sql, args.sql)
    missing = [s for s in args.sources if not os.path.exists(s)]
    if missing:
        raise UsageError(f"query: no such export directory or recording: {', '.join(missing)}")
    dirs = [s for s in args.sources if os.path.isdir(s)]
    failed: list[str] = []
    if dirs:
        if len(args.sources) > 1:
            raise UsageError("query: give one export DIR, or recordings, not both or several directories")
        con = connect(dirs[0], tables=tables_named(sql))
    else:
        root, ids, failed = exported_recordings(args.sources)
        con = connect(root, ids, tables_named(sql))
    names, rows = execute(con, sql)
    writer = write_json if args.json else write_csv if args.csv else write_table
    writer(names, rows, sys.stdout)
    sys.stdout.flush()
    if failed:
        print(f"wirecorr: query: {len(failed)} recording(s) left out: {', '.join(failed)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
