"""`wirecorr export --parquet` and `wirecorr query`: the shipped captures as Parquet, read back
by DuckDB and by Spark, checked against `analyze --json` of the same files."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pty_helpers import run_with_tty

from wirecorr import cli
from wirecorr.commands import query
from wirecorr.engine.hosts import merged_header
from wirecorr.views import columnar, columnar_sql

ROOT = Path(__file__).resolve().parent.parent
# A merged recording (`wirecorr merge`, lab-two-hosts) is analysed host by host, in a JSON
# document of another shape (docs/json-schema.md); export reads it as one capture.
CAPTURES = sorted(
    str(p) for p in (ROOT / "captures").iterdir() if p.suffix in (".pcap", ".pcapng") and merged_header(str(p)) is None
)
SMALL = str(ROOT / "captures" / "lab-refused.pcapng")
PLAIN = str(ROOT / "captures" / "stray-rst-after-close.pcap")
SMALL_ID = "eccd507aec72932c"


def run_cli(*argv: str) -> tuple[int, str]:
    """The command in this process (its imports are paid once for the module), stdout captured."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(list(argv))
    return status, out.getvalue()


def query_rows(sql: str, *sources: str) -> list[dict[str, Any]]:
    status, out = run_cli("query", "--json", sql, *sources)
    assert status == 0, out
    return json.loads(out)


def wirecorr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wirecorr", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("export") / "fleet"
    status, out = run_cli("export", "--parquet", str(root), *CAPTURES)
    assert status == 0
    assert f"exported {len(CAPTURES)} of {len(CAPTURES)}" in out
    return str(root)


def analyze_json(path: str) -> dict[str, Any]:
    status, out = run_cli("analyze", "--json", path)
    assert status == 0
    return json.loads(out)


def test_export_counts_and_ids_equal_analyze_json(export_dir: str) -> None:
    con = query.connect(export_dir)

    def by_recording(sql: str) -> dict[str, list[tuple[Any, ...]]]:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for rid, *rest in con.execute(sql).fetchall():
            out.setdefault(rid, []).append(tuple(rest))
        return out

    rows = con.execute(
        "SELECT source_path, recording_id, packets, connections, syscalls, links, findings, schema_version "
        "FROM recordings"
    ).fetchall()
    by_path = {r[0]: r[1:] for r in rows}
    assert sorted(by_path) == sorted(os.path.abspath(p) for p in CAPTURES)
    conns = by_recording(
        "SELECT recording_id, connection_id, final_client_state, final_server_state FROM connections "
        "ORDER BY recording_id, connection_id"
    )
    links = by_recording(
        "SELECT recording_id, link_id, kind, syscall_id, packet_indices, delay_ns FROM links "
        "ORDER BY recording_id, link_id"
    )
    findings = by_recording(
        "SELECT recording_id, finding_id, kind, connection_id FROM findings ORDER BY recording_id, finding_id"
    )
    syscalls = by_recording("SELECT recording_id, syscall_id FROM syscalls ORDER BY recording_id, syscall_id")
    packets = by_recording(
        "SELECT recording_id, count(*), count_if(analysis_mask <> 0), count_if(link_ids IS NOT NULL) "
        "FROM packets GROUP BY recording_id"
    )
    checked_links = checked_findings = 0
    for path in CAPTURES:
        doc = analyze_json(path)
        rid, n_packets, n_conns, n_syscalls, n_links, n_findings, version = by_path[os.path.abspath(path)]
        assert version == columnar.SCHEMA_VERSION
        assert n_packets == doc["packets_analyzed"]
        assert (n_conns, n_syscalls) == (len(doc["connections"]), len(doc.get("syscalls", [])))
        assert (n_links, n_findings) == (len(doc.get("links", [])), len(doc["findings"]))
        # connections: ids and final states
        want_conns = [(c["id"], c["final_state"]["client"], c["final_state"]["server"]) for c in doc["connections"]]
        assert conns.get(rid, []) == want_conns
        assert Counter(s[1:] for s in conns.get(rid, [])) == Counter(s[1:] for s in want_conns)
        # links: by kind, and each link's syscall and packets
        want_links = [
            (lk["id"], lk["kind"], lk["syscall"], lk["packets"], lk["delay_ns"]) for lk in doc.get("links", [])
        ]
        assert links.get(rid, []) == want_links
        assert Counter(lk[1] for lk in links.get(rid, [])) == Counter(lk["kind"] for lk in doc.get("links", []))
        # findings: by kind, in analyze's order
        want_findings = [(i, f["kind"], f["connection"]) for i, f in enumerate(doc["findings"])]
        assert findings.get(rid, []) == want_findings
        assert syscalls.get(rid, []) == [(sc["id"],) for sc in doc.get("syscalls", [])]
        # packets: all of them, the flagged ones, and (in a recording) those linked to a syscall
        linked = {i for lk in doc.get("links", []) for i in lk["packets"]}
        assert packets[rid] == [(doc["packets_analyzed"], len(doc["notable"]), len(linked))]
        checked_links += len(want_links)
        checked_findings += len(want_findings)
    assert checked_links > 1000 and checked_findings > 30


def test_packet_rows_match_analyze_packets(tmp_path: Path) -> None:
    """Field by field on one recording: the per-packet columns are analyze's --packets records."""
    echo = str(ROOT / "captures" / "lab-echo.pcapng")
    status, _ = run_cli("export", "--parquet", str(tmp_path), echo)
    assert status == 0
    con = query.connect(str(tmp_path))
    status, out = run_cli("analyze", "--json", "--packets", echo)
    assert status == 0
    doc = json.loads(out)
    want = [
        (p["index"], p["frame"], p["ts_ns"], p["conn"], p["dir"], p["flags"], p["seq"], p["ack"], p["len"], p["win"],
         p["analysis"], p["ack_rtt_ns"], p["label"] if isinstance(p["label"], list) else None,
         p["label"] if isinstance(p["label"], str) else None)
        for p in doc["packets"]
    ]  # fmt: skip
    got = con.execute(
        "SELECT packet_index, frame_number, ts_ns, connection_id, direction, tcp_flags, rel_seq, rel_ack, seg_len, "
        "window_size, "
        "analysis, ack_rtt_ns, link_ids, label FROM packets ORDER BY packet_index"
    ).fetchall()
    assert [tuple(r) for r in got] == want
    assert {w[-1] for w in want} >= {None, "pure-ack", "time-wait-ack"}
    conn = doc["connections"][0]
    assert con.execute("SELECT src, dst FROM packets WHERE tcp_flags = 'S'").fetchall() == [
        (conn["client"], conn["server"])
    ]


def _normal(value: Any) -> Any:
    """Answers of two engines compared as values: floats to 9 significant digits."""
    if isinstance(value, float):
        return float(f"{value:.9g}") if math.isfinite(value) else value
    return value


def test_spark_reads_the_same_directory_and_agrees_with_duckdb(export_dir: str) -> None:
    if shutil.which("java") is None:
        pytest.fail("Spark needs a Java runtime: `make system` installs default-jre-headless")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": str(ROOT)}
    # Its own process group: on a timeout the JVM goes with the Python that started it.
    spark = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "spark_queries.py"), export_dir,
         str(ROOT / "tests" / "spark_log4j2.properties")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = spark.communicate(timeout=300)
    finally:
        if spark.poll() is None:
            os.killpg(spark.pid, signal.SIGKILL)
            spark.wait()
    assert spark.returncode == 0, err[-3000:]
    spark_answers = json.loads(out)
    assert set(spark_answers) == set(columnar_sql.EXAMPLES)
    for name in columnar_sql.EXAMPLES:
        duck = query_rows(name, export_dir)
        assert duck, f"{name} has no rows on the shipped captures: it shows nothing"
        assert [{k: _normal(v) for k, v in row.items()} for row in duck] == [
            {k: _normal(v) for k, v in row.items()} for row in spark_answers[name]
        ], name


def test_damaged_recording_does_not_stop_the_others(tmp_path: Path) -> None:
    data = bytearray(Path(ROOT / "captures" / "lab-echo.pcapng").read_bytes())
    data[40000:40010] = b"\xff" * 10
    damaged = tmp_path / "damaged.pcapng"
    damaged.write_bytes(bytes(data))
    missing = tmp_path / "missing.pcapng"
    root = tmp_path / "out"
    batch = [SMALL, str(damaged), str(ROOT / "README.md"), str(missing), PLAIN]
    result = wirecorr("export", "--parquet", str(root), *batch)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert len(lines) == 4, lines
    assert re.fullmatch(rf"wirecorr: {re.escape(str(damaged))} at byte \d+: .+", lines[0])
    assert lines[1].startswith(f"wirecorr: {ROOT / 'README.md'} at byte 0: not a pcap")
    assert lines[2].startswith(f"wirecorr: {missing}: ")
    assert lines[3] == f"wirecorr: export: 3 of 5 not exported: {damaged}, {ROOT / 'README.md'}, {missing}"
    stdin = wirecorr("export", "--parquet", str(root), "-")
    assert (stdin.returncode, stdin.stderr) == (
        2,
        "wirecorr: export: reads recordings from files, not from standard input (-)\n",
    )
    assert "exported 2 of 5" in result.stdout
    exported = query_rows("SELECT source_path FROM recordings ORDER BY source_path", str(root))
    assert [r["source_path"] for r in exported] == sorted([SMALL, PLAIN])


def test_reexport_is_byte_identical_and_replaces_only_its_rows(tmp_path: Path) -> None:
    root = tmp_path / "out"
    status, _ = run_cli("export", "--parquet", str(root), SMALL, PLAIN)
    assert status == 0
    first = file_hashes(root)
    assert len(first) == 3 * len(columnar_sql.TABLES)  # a file per recording, and the schema's marker
    status, _ = run_cli("export", "--parquet", str(root), SMALL)
    assert status == 0
    assert file_hashes(root) == first
    elsewhere = tmp_path / "again"
    status, _ = run_cli("export", "--parquet", str(elsewhere), PLAIN, SMALL)
    assert status == 0
    assert file_hashes(elsewhere) == first
    # The same recording, cut short as a killed recorder leaves it: same header, same id.
    plain_files = {p: os.stat(root / p).st_mtime_ns for p in first if "efae4508" in p}
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(Path(SMALL).read_bytes()[:60000])
    result = wirecorr("export", "--parquet", str(root), str(cut))
    assert result.returncode == 2
    assert "(exported up to there)" in result.stderr
    rows = query_rows(
        "SELECT source_path, packets, error, warnings, complete FROM recordings ORDER BY source_path", str(root)
    )
    assert [r["source_path"] for r in rows] == sorted([PLAIN, str(cut)])
    assert rows[0]["error"] is not None and "file ends inside" in rows[0]["error"]
    assert rows[0]["complete"] is False and "is incomplete" in rows[0]["warnings"][0]
    assert {p: os.stat(root / p).st_mtime_ns for p in plain_files} == plain_files
    assert file_hashes(root).keys() == first.keys()
    # Moved to another partition: the old copy goes, with the directories it leaves empty.
    status, _ = run_cli("export", "--parquet", str(root), "--host", "ci-7", PLAIN)
    assert status == 0
    moved = sorted(p for p in file_hashes(root) if "efae4508" in p)
    assert moved == sorted(p.replace("host=unknown", "host=ci-7") for p in plain_files)
    assert not list(root.glob("*/host=unknown"))
    assert query_rows("SELECT host, count(*) AS n FROM recordings GROUP BY host ORDER BY host", str(root)) == [
        {"host": "ci-7", "n": 1},
        {"host": "vm", "n": 1},
    ]


def test_query_over_recordings_exports_them_to_a_cache_once(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    sql = "SELECT count(*) AS n, count(DISTINCT recording_id) AS r FROM packets"
    first = wirecorr("query", "--csv", sql, SMALL, env=env)
    assert first.returncode == 0, first.stderr
    n = len(json.loads(run_cli("analyze", "--json", "--packets", SMALL)[1])["packets"])
    assert first.stdout == f"n,r\n{n},1\n"
    cached = tmp_path / "cache" / "wirecorr" / "export"
    stamps = {p: p.stat().st_mtime_ns for p in cached.rglob("*.parquet")}
    assert len(stamps) == len(columnar_sql.TABLES)
    both = wirecorr("query", "--csv", sql, SMALL, PLAIN, env=env)
    assert both.returncode == 0, both.stderr
    assert both.stdout == f"n,r\n{n + 11},2\n"
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    only_plain = wirecorr("query", "--csv", sql, PLAIN, env=env)
    assert only_plain.stdout == "n,r\n11,1\n"


def test_query_prints_a_table_and_errors_in_one_line(export_dir: str) -> None:
    status, out = run_cli("query", "connections-by-final-state", export_dir)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["proto", "client_state", "server_state", "connections"]
    assert re.fullmatch(r"\(\d+ rows\)", lines[-1])
    bad = wirecorr("query", "SELECT nope FROM links", export_dir)
    assert bad.returncode == 2
    assert len(bad.stderr.splitlines()) == 1 and bad.stderr.startswith("wirecorr: query: ")
    assert "nope" in bad.stderr
    gone = wirecorr("query", "connections-by-final-state", export_dir + "-typo")
    assert (gone.returncode, gone.stdout) == (2, "")
    assert gone.stderr == f"wirecorr: query: no such export directory or recording: {export_dir}-typo\n"


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "wirecorr", "export", "--parquet", str(tmp_path / "out"), SMALL, PLAIN]
    status, err = run_with_tty(argv, stdin_tty=False, stderr_tty=True)
    assert status == 0
    assert "export [" in err and "1/2 stray-rst-after-close.pcap" in err
    status, err = run_with_tty(argv, stdin_tty=False, stderr_tty=False)
    assert (status, err) == (0, "")


def test_docs_show_every_example_and_column() -> None:
    assert tuple(columnar.SCHEMAS) == columnar_sql.TABLES
    doc = (ROOT / "docs" / "export.md").read_text()
    for name, sql in columnar_sql.EXAMPLES.items():
        assert f"`{name}`" in doc and sql in doc, name
    for table, schema in columnar.SCHEMAS.items():
        section = doc.split(f"### `{table}`", 1)[1].split("\n### ", 1)[0]
        rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
        documented = {name for cell in rows for name in re.findall(r"`(\w+)`", cell)}
        assert documented == set(schema.names), table
    assert f"`{columnar.SCHEMA_NAME}`" in doc


def test_files_of_another_column_set_are_read_together(tmp_path: Path) -> None:
    """An export by a later wirecorr with an added column (simulated) reads beside this one's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "out"
    status, _ = run_cli("export", "--parquet", str(root), SMALL, PLAIN)
    assert status == 0
    assert len(list((root / "links").glob("_schema-*"))) == 1
    newer = next(p for p in (root / "recordings").rglob("*.parquet") if "efae4508" in p.name)
    table = pq.read_table(newer, partitioning=None)
    pq.write_table(table.append_column("added_later", pa.array(["x"])), newer)
    (root / "recordings" / "_schema-later").touch()
    rows = query_rows("SELECT recording_id, added_later FROM recordings ORDER BY recording_id", str(root))
    assert sorted(rows, key=lambda r: r["added_later"] or "") == [
        {"recording_id": SMALL_ID, "added_later": None},
        {"recording_id": "efae4508c82cd28d", "added_later": "x"},
    ]
