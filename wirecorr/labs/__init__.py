"""The labs: each seed experiment as one command, run in a private network namespace.

A lab is a small real program (Python, C compiled on the spot, or Debian's nc), the
namespace it needs, and a check over the recorded Session that states the effect the
experiment exists to show. The explanation is written from the recording — links,
packets, findings and their numbers — so a lab that did not show its effect says so
instead of printing what should have happened.

Lab modules are imported only when asked for: `wirecorr lab list` needs their one-line
summaries, not their programs.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wirecorr.errors import MissingTool, WirecorrError

if TYPE_CHECKING:
    from wirecorr.labs.evidence import Evidence
    from wirecorr.labs.netns import LabNet

# CLI name → module, in the order of the seed experiments.
_MODULES = {
    "handshake": "handshake",
    "echo": "echo",
    "port-bomb": "port_bomb",
    "fd-leak": "fd_leak",
    "multiplex": "multiplex",
    "keepalive": "keepalive",
    "mss-slicing": "mss_slicing",
    "zero-window": "zero_window",
    "nagle": "nagle",
    "rst-on-close": "rst_on_close",
    "udp-vs-tcp": "udp_vs_tcp",
    "sendmmsg": "sendmmsg",
    "retransmit": "retransmit",
    "refused": "refused",
    "two-hosts": "two_hosts",
    "slow-request": "slow_request",
}
NAMES = tuple(_MODULES)


@dataclass
class Workdir:
    """A temporary directory for a lab's programs, and the size the run asked for.

    `small` trims counts and sizes (tests, shipped recordings); the effect must still show.
    """

    path: Path
    small: bool = False

    def python(self, name: str, source: str, *args: object) -> list[str]:
        """argv running `source` with this interpreter, isolated (-I) from the user's site."""
        script = self.path / f"{name}.py"
        script.write_text(source)
        return [sys.executable, "-I", str(script), *map(str, args)]

    def cc(self, name: str, source: str) -> str:
        """Compile a C program with gcc; returns the executable's path."""
        gcc = shutil.which("gcc") or shutil.which("cc")
        if gcc is None:
            raise MissingTool("gcc not found: apt-get install gcc")
        src, exe = self.path / f"{name}.c", self.path / name
        src.write_text(source)
        done = subprocess.run(
            [gcc, "-O1", "-Wall", "-o", str(exe), str(src)], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise WirecorrError(f"lab program {name}.c did not compile: {done.stderr.strip()}")
        return str(exe)


@dataclass(frozen=True)
class Lab:
    """One experiment: how to run it and what its recording must show.

    `command` writes the programs into the Workdir and returns the argv to trace (run
    inside namespace `a`); `explain` reads the Evidence and states, with numbers, what
    happened — or what did not. `record` replaces the runner's one Recorder for a lab of
    several recordings (`two-hosts`, whose file is a merge). `nft` is loaded into the receiving namespace;
    `small_sysctls` override `sysctls` in a small run.
    """

    name: str
    summary: str
    command: Callable[[Workdir, LabNet], list[str]]
    explain: Callable[[Evidence], None]
    pair: bool = False
    sysctls: Mapping[str, str] = field(default_factory=dict)
    small_sysctls: Mapping[str, str] = field(default_factory=dict)
    nft: str | None = None
    mtu: int | None = None
    capture_filter: str = "tcp or udp"
    snaplen: int = 256
    # A lab that records itself (several hosts, each its own `wirecorr record`): called with
    # the Workdir, the namespace, `command`'s argv and the output path; returns the status.
    record: Callable[[Workdir, LabNet, list[str], str], int] | None = None


class UnknownLab(WirecorrError):
    exit_code = 2


def get(name: str) -> Lab:
    module = _MODULES.get(name)
    if module is None:
        raise UnknownLab(f"no lab named {name!r}; `wirecorr lab list` shows them")
    lab: Lab = importlib.import_module(f"wirecorr.labs.{module}").LAB
    return lab


def all_labs() -> list[Lab]:
    return [get(name) for name in NAMES]
