"""Findings: diagnoses drawn from the pairing of syscalls and packets, each with its evidence.

Every public module of this package is a detector: it defines
`detect(ctx: Context) -> Iterable[Finding]`, and the registry below finds it by walking the
package, so adding a diagnosis is adding one module and touching nothing else. A detector
only reads the session: `detect` can be run again on a live session as events arrive, and
the result depends on the events, not on how often it ran.

Severities: "error" (the program failed because of it: EMFILE, EADDRNOTAVAIL), "warning"
(a defect that will bite: leaked CLOSE_WAIT sockets, RSTs, stalls) and "info" (worth
knowing, not wrong: keep-alive probes). Thresholds are the documented constants of
`_base`, overridable per run with `Thresholds`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import TYPE_CHECKING

from wirecorr.engine.connections import Connection
from wirecorr.engine.findings._base import ERROR, INFO, SEVERITY_RANK, WARNING, Context, Thresholds
from wirecorr.model import Finding, Link

if TYPE_CHECKING:
    from wirecorr.engine.session import Session

Detector = Callable[[Context], Iterable[Finding]]

__all__ = [
    "ERROR",
    "INFO",
    "WARNING",
    "Detector",
    "Thresholds",
    "detect",
    "detecting",
    "detectors",
    "keeps_data",
    "kinds",
    "ranked",
]


@cache
def detectors() -> tuple[tuple[str, Detector], ...]:
    """(module name, detect function) of every detector module, in name order.

    Imported on first use, not at package import: the detectors import the engine, and the
    engine's Session imports this package.
    """
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append((info.name, module.detect))
    return tuple(found)


@cache
def kinds() -> frozenset[str]:
    """Every finding kind a detector can report: its module's KINDS, or its one KIND. The
    checks read this, so a rule naming a kind no detector has is caught as a typo."""
    out: set[str] = set()
    for name, _ in detectors():
        module = importlib.import_module(f"{__name__}.{name}")
        out.update(module.KINDS if hasattr(module, "KINDS") else (module.KIND,))
    return frozenset(out)


@cache
def _data_readers() -> tuple[Callable[[Connection, list[Link], Thresholds], bool], ...]:
    return tuple(
        module.keeps_data
        for name, _ in detectors()
        if hasattr(module := importlib.import_module(f"{__name__}.{name}"), "keeps_data")
    )


def keeps_data(conn: Connection, links: list[Link], thresholds: Thresholds) -> bool:
    """Whether some detector reads the data transfers of `conn` (its successful reads and
    writes, and their links), given its links: the streaming analyze drops them otherwise.

    A detector that reads a connection's transfers defines `keeps_data(conn, links,
    thresholds)` saying for which connections it does; the others read only the calls and
    links that are no plain transfer, which the streaming analyze always keeps.
    """
    return any(keep(conn, links, thresholds) for keep in _data_readers())


def detect(session: Session, thresholds: Thresholds | None = None) -> list[Finding]:
    """Run every detector over the session; errors first, then warnings, then info."""
    return ranked([finding for found in detecting(session, thresholds) for finding in found])


def detecting(session: Session, thresholds: Thresholds | None = None) -> Iterator[list[Finding]]:
    """`detect`'s detectors one at a time, each one's findings as it ends: the TUI's loader
    runs one per slice, since all of them at once stall its screen for half a second on a
    million events."""
    ctx = Context(session, thresholds or Thresholds())
    for _, run in detectors():
        yield list(run(ctx))


def ranked(findings: list[Finding]) -> list[Finding]:
    """`findings` in `detect`'s order: errors first, then warnings, then info."""
    return sorted(findings, key=lambda f: SEVERITY_RANK[f.severity])
