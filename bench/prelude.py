"""What every bench script starts with: the repo's venv, its paths, and a timed child.

Imported by the scripts in this folder (their own directory is on sys.path when run);
`use_venv()` re-executes the script under .venv/bin/python before anything heavy is
imported, so `bench/x` works from any shell.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "bench" / ".cache"
VENV = REPO / ".venv"


def use_venv() -> None:
    """Run again under the repo's venv unless already there (compare prefixes, not binaries:
    the venv's python is a symlink to the base interpreter)."""
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV) and VENV.exists():
        os.execv(f"{VENV}/bin/python", [f"{VENV}/bin/python", *sys.argv])
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def run_child(cmd: list[str], cwd: Path | None = None) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) and exit status of one child, stdout discarded."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"  {cmd[0]} … exited {code}: {err.decode(errors='replace')[-500:]}")
    return wall, usage.ru_maxrss, code


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
