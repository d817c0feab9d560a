"""Labs: the shipped recordings replayed through `wirecorr check`, and every lab run live.

The replay half needs no privilege and runs everywhere. The live half creates network
namespaces, so it needs root; where `ip netns add` is refused it is skipped with the
reason shown, and nowhere else.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from wirecorr import labs
from wirecorr.cli import main
from wirecorr.labs.netns import PREFIX, can_create

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
RULES = sorted(CAPTURES.glob("lab-*.toml"))


def test_every_lab_ships_a_recording_and_rules() -> None:
    assert {p.stem.removeprefix("lab-") for p in RULES} == set(labs.NAMES)
    for rules in RULES:
        assert rules.with_suffix(".pcapng").is_file(), rules


@pytest.mark.parametrize("rules", RULES, ids=[p.stem for p in RULES])
def test_shipped_recording_passes_its_rules(rules: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", str(rules.with_suffix(".pcapng")), "--expect", str(rules), "-q"])
    assert status == 0, capsys.readouterr().out


def test_lab_list_names_every_lab(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(labs.NAMES)
    assert all(len(line.split(None, 1)[1]) > 20 for line in lines)


def test_unknown_lab_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "run", "no-such-lab"]) == 2
    assert "wirecorr lab list" in capsys.readouterr().err


# -- live runs ---------------------------------------------------------------------------


@cache
def _no_namespaces() -> str | None:
    return can_create()


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=20).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)}


@pytest.mark.netns
@pytest.mark.parametrize("name", labs.NAMES)
def test_lab_shows_its_effect_live(name: str, tmp_path: Path) -> None:
    reason = _no_namespaces()
    if reason is not None:
        pytest.skip(f"cannot create network namespaces: {reason}")
    from wirecorr.labs import runner

    result = runner.run(labs.get(name), str(tmp_path / "lab.pcapng"), small=True)
    ev = result.evidence
    assert result.shown, "\n".join(["missing:", *ev.missing, "said:", *ev.lines])
    assert ev.lines and any(ch.isdigit() for line in ev.lines for ch in line)
    # Only this run's namespaces: other labs may run beside the suite on a shared machine.
    assert result.namespaces.startswith(PREFIX)
    left = {ns for ns in _namespaces() if ns == result.namespaces or ns.startswith(result.namespaces + "-")}
    assert not left, "the lab left a namespace behind"


@pytest.mark.netns
def test_lab_run_json_carries_the_verdict(tmp_path: Path) -> None:
    reason = _no_namespaces()
    if reason is not None:
        pytest.skip(f"cannot create network namespaces: {reason}")
    import json

    done = subprocess.run(
        [sys.executable, "-m", "wirecorr", "lab", "run", "refused", "--json", "-o", str(tmp_path / "r.pcapng")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["lab"]["name"] == "refused" and doc["lab"]["shown"] is True
    assert doc["lab"]["facts"]["rst_to_return_ns"] > 0
    assert any("ECONNREFUSED" in line for line in doc["lab"]["explanation"])
    assert any(link["kind"] == "connect-refused" for link in doc["links"])


@pytest.mark.netns
def test_namespace_is_removed_on_interrupt() -> None:
    reason = _no_namespaces()
    if reason is not None:
        pytest.skip(f"cannot create network namespaces: {reason}")
    from wirecorr.labs.netns import private_network

    with pytest.raises(KeyboardInterrupt), private_network(sysctls={"net.ipv4.tcp_tw_reuse": "0"}) as net:
        assert net.a in _namespaces()
        raise KeyboardInterrupt
    assert net.a not in _namespaces()
