"""The export's table names, its example queries and where its files are: what `wirecorr query`
needs without the schema's Arrow types (pyarrow is a tenth of a second of a query's start-up).

The schema itself is `views.columnar`; docs/export.md documents both.
"""

from __future__ import annotations

import os

TABLES: tuple[str, ...] = ("recordings", "connections", "packets", "syscalls", "links", "findings")


def table_files(root: str, table: str) -> list[str]:
    """Every data file of `table` under an export root, sorted (engines see the same set)."""
    base = os.path.join(root, table)
    out = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".parquet"))
    return out


SCHEMA_MARKER = "_schema-"


def schema_markers(root: str, table: str) -> list[str]:
    """The column sets `table`'s files were written with, one empty marker file each.

    Exports by one wirecorr version leave one: a reader may then take the columns of any
    file (DuckDB's default, which reads one footer) instead of reading every file's footer
    to union them, three times slower over 100 recordings. Hive readers skip "_" names.
    """
    try:
        return sorted(f for f in os.listdir(os.path.join(root, table)) if f.startswith(SCHEMA_MARKER))
    except OSError:
        return []


# -- example queries (docs/export.md shows them; tests run them in DuckDB and Spark) --------

# Written in the SQL both DuckDB and Spark accept, with every ORDER BY total, so the two
# engines give the same rows in the same order.
EXAMPLES: dict[str, str] = {
    "top-findings-per-host": """
SELECT host, kind, n
FROM (
  SELECT host, kind, count(*) AS n,
         row_number() OVER (PARTITION BY host ORDER BY count(*) DESC, kind) AS rank
  FROM findings
  GROUP BY host, kind
) AS ranked
WHERE rank <= 3
ORDER BY host, n DESC, kind
""".strip(),
    "delay-percentiles-per-link-kind": """
SELECT kind,
       count(*) AS links,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY delay_ns) AS p50_ns,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY delay_ns) AS p90_ns,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY delay_ns) AS p99_ns,
       max(delay_ns) AS max_ns
FROM links
WHERE delay_ns IS NOT NULL
GROUP BY kind
ORDER BY kind
""".strip(),
    "connections-by-final-state": """
SELECT proto,
       coalesce(final_client_state, '-') AS client_state,
       coalesce(final_server_state, '-') AS server_state,
       count(*) AS connections
FROM connections
GROUP BY proto, coalesce(final_client_state, '-'), coalesce(final_server_state, '-')
ORDER BY connections DESC, proto, client_state, server_state
""".strip(),
    "close-wait-by-recording": """
SELECT r.host, r.recording_id, r.command, count(*) AS leaks
FROM findings AS f
JOIN recordings AS r ON f.recording_id = r.recording_id
WHERE f.kind = 'close_wait_leak'
GROUP BY r.host, r.recording_id, r.command
ORDER BY leaks DESC, r.host, r.recording_id
""".strip(),
}
