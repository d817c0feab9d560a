"""Real servers and clients recorded with `wirecorr record`, and tshark's truth about them.

A scenario is one recording: a small driver program, itself traced, starts a real server
(python's http.server, nginx, redis-server, dnsmasq, postgres), waits until it listens
(read from /proc/net, so no probe connection lands on the wire), runs the real clients
(curl, redis-cli, dig, psql) one after the other, keeps what they printed, and stops the
server. Both ends are traced, so every part of a request's time split is measured.

The truth is independent of wirecorr: tshark's own dissectors on the same recording
(HTTP, RESP, DNS, PostgreSQL) and the clients' own output. Servers bind 127.0.0.1 only,
dnsmasq answers from its own records and never forwards, and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent

DRIVER = r"""
import json, os, signal, subprocess, sys, time

spec = json.load(open(sys.argv[1]))
signal.alarm(60)


def listening(port):
    want = ":%04X" % port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                cols = row.split()
                if cols[1].endswith(want) and cols[3] == "0A":
                    return True
    return False


server = subprocess.Popen(spec["server"], cwd=spec["cwd"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(1500):
    if listening(spec["port"]) or server.poll() is not None:
        break
    time.sleep(0.01)
results = []
if server.poll() is None and listening(spec["port"]):
    for i, argv in enumerate(spec["clients"]):
        done = subprocess.run(argv, input=spec["stdin"].get(str(i)), capture_output=True, text=True, timeout=30)
        results.append({"argv": argv, "status": done.returncode, "stdout": done.stdout, "stderr": done.stderr})
    time.sleep(0.2)
server.send_signal(getattr(signal, spec["stop"]))
try:
    server.wait(timeout=20)
except subprocess.TimeoutExpired:
    server.kill()
    server.wait()
with open(spec["out"], "w") as f:
    json.dump({"clients": results, "server_status": server.returncode}, f)
"""


@dataclass
class Recorded:
    """One scenario's recording, and what its clients printed."""

    path: Path
    port: int
    clients: list[dict]
    record: subprocess.CompletedProcess[str]

    def client_output(self, i: int) -> str:
        return str(self.clients[i]["stdout"])


def record_scenario(
    tmp: Path,
    name: str,
    port: int,
    server: list[str],
    clients: list[list[str]],
    *,
    stop: str = "SIGTERM",
    user: str | None = None,
    stdin: dict[int, str] | None = None,
) -> Recorded:
    """Record `server` and `clients` (run in order; `stdin`: text for client i) under
    `wirecorr record` on lo."""
    tmp.mkdir(parents=True, exist_ok=True)
    os.chmod(tmp, 0o777)
    driver = tmp / "driver.py"
    driver.write_text(DRIVER)
    results = tmp / f"{name}-clients.json"
    spec = {
        "server": server,
        "clients": clients,
        "port": port,
        "stop": stop,
        "cwd": str(tmp),
        "out": str(results),
        "stdin": {str(i): text for i, text in (stdin or {}).items()},
    }
    spec_path = tmp / f"{name}-spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp / f"{name}.pcapng"
    cmd = [PYTHON, "-m", "wirecorr", "record", "-o", str(out), "-i", "lo"]
    cmd += ["-f", f"tcp port {port} or udp port {port}"]
    if user is not None:
        cmd += ["--user", user]
    # The driver needs only the standard library; as another user, the system's python3
    # (this interpreter may live under /root).
    python = PYTHON if user is None else shutil.which("python3", path="/usr/bin:/bin") or "python3"
    cmd += ["--", python, "-I", str(driver), str(spec_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    clients_done = json.loads(results.read_text())["clients"]
    assert len(clients_done) == len(clients), f"the server did not listen on {port}: {done.stderr}"
    return Recorded(out, port, clients_done, done)


# The recording keeps record's default snaplen (2048), so a long body is cut in the capture:
# tshark must dissect a message's headers where they end instead of waiting for its body.
TSHARK_OPTIONS = ("-o", "http.desegment_body:FALSE")


def tshark_fields(
    path: Path,
    display: str,
    fields: list[str],
    decode: tuple[str, ...] | list[str] = (),
    options: tuple[str, ...] = TSHARK_OPTIONS,
) -> list[dict[str, str]]:
    """One dict per frame tshark's display filter selects: field → its text ("" when absent).

    Fields with several occurrences in a frame (pipelined messages, a RESP array) are
    joined by "|"."""
    cmd = ["tshark", "-r", str(path), "-n", *options, "-Y", display, "-T", "fields", "-E", "aggregator=|"]
    for d in decode:
        cmd += ["-d", d]
    for f in ["frame.number", *fields]:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split("\t")
        rows.append(dict(zip(["frame.number", *fields], cols, strict=True)))
    return rows


def pg_bindir() -> Path | None:
    """Where Debian's postgresql package puts initdb and postgres (not on PATH)."""
    found = shutil.which("pg_config")
    if found:
        bindir = subprocess.run([found, "--bindir"], capture_output=True, text=True).stdout.strip()
        if (Path(bindir) / "postgres").exists():
            return Path(bindir)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return versions[-1].parent if versions else None
