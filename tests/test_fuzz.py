"""The fuzzer's bounded run (tests/fuzz_harness.py): every reader, a fixed slice of seeds.

`bench/fuzz` runs the same cases by the hundred thousand (`make fuzz`); this slice keeps
the suite honest on every `make test` in about 15 s. A failure prints the case and the
command that reproduces it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_harness import TARGETS, describe, make_case, run_case

ROOT = Path(__file__).resolve().parent.parent
# Cases per target: ~7 ms each in-process, so the seven targets take ~10-15 s together.
CASES = 250


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_target(target: str, tmp_path: Path) -> None:
    failures = []
    for seed in range(CASES):
        result = run_case(make_case(target, seed, tmp_path), timeout=20)
        if result.status != "ok":
            failures.append(f"{describe(result)}\nreproduce: bench/fuzz --target {target} --seed {seed}")
    assert not failures, f"{len(failures)} of {CASES} cases failed:\n" + "\n".join(failures[:3])


@pytest.mark.parametrize("target", ["pcapng", "recording", "gzip", "strace", "rules", "filter"])
def test_fuzz_cases_through_the_real_command(target: str, tmp_path: Path) -> None:
    """A few cases as a user runs them: a separate process, nothing but stderr to read."""
    for seed in range(2):
        case = make_case(target, seed, tmp_path)
        if case.display_filter is not None:
            continue
        done = subprocess.run(
            [sys.executable, "-m", "wirecorr", *case.argv],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert done.returncode in (0, 1, 2), done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        if done.returncode == 2:
            assert done.stderr.startswith("wirecorr: ") or "usage:" in done.stderr, done.stderr
