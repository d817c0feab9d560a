"""Output files in a shared directory (issue 14, item 7): nothing planted there is followed.

The attack: in a world-writable sticky directory such as /tmp, the unprivileged `nobody`
user plants `out.pcapng -> victim`; root then runs `wirecorr record -o /tmp/out.pcapng`.
Following the link would truncate root's victim file, write the recording into it and chmod
it 0600. These tests plant the link for real, as nobody, in a sticky directory of their own
(fs.protected_symlinks, which would stop the kernel from following it, is 0 on the machine
the attack was found on, and the tests must not depend on it).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wirecorr.engine.linking import annotate
from wirecorr.errors import UsageError
from wirecorr.recording import RecordingWriter, read_recording

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="plants files as nobody: needs root, as `make test` runs")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A /tmp-like directory: mode 1777 on a path nobody can reach (tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="wirecorr-sticky-", dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def as_nobody(*cmd: str) -> None:
    subprocess.run(cmd, user=NOBODY, group=NOBODY, extra_groups=[], check=True, timeout=30)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_text("root's precious file\n")
    path.chmod(0o644)
    return path


def assert_untouched(victim: Path) -> None:
    assert victim.read_text() == "root's precious file\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def record(output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wirecorr", "record", "--no-capture", "-o", str(output), "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_record_refuses_a_symlink_planted_by_another_user(shared_dir: Path, victim: Path) -> None:
    link = shared_dir / "out.pcapng"
    as_nobody("ln", "-s", str(victim), str(link))
    assert link.lstat().st_uid == NOBODY
    done = record(link)
    assert done.returncode == 2
    assert done.stderr == f"wirecorr: refusing to write the recording to {link}: it is a symbolic link\n"
    assert_untouched(victim)
    assert link.is_symlink() and os.readlink(link) == str(victim)


def test_a_dangling_symlink_is_not_followed_either(shared_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "would-be-created"
    link = shared_dir / "out.pcapng"
    as_nobody("ln", "-s", str(target), str(link))
    with pytest.raises(UsageError, match="it is a symbolic link"):
        RecordingWriter(str(link))
    assert not target.exists()


def test_a_file_planted_by_another_user_is_refused(shared_dir: Path) -> None:
    """Written into, it would stay nobody's: its owner could read the payload bytes."""
    planted = shared_dir / "out.pcapng"
    as_nobody("touch", str(planted))
    with pytest.raises(UsageError, match=f"the file belongs to uid {NOBODY}"):
        RecordingWriter(str(planted))
    assert planted.stat().st_size == 0 and planted.stat().st_uid == NOBODY


def test_a_hard_link_to_another_file_is_refused(shared_dir: Path, victim: Path) -> None:
    link = shared_dir / "out.pcapng"
    os.link(victim, link)
    with pytest.raises(UsageError, match="the file has other hard links"):
        RecordingWriter(str(link))
    assert_untouched(victim)


def test_a_fifo_or_device_is_refused_without_blocking(shared_dir: Path) -> None:
    fifo = shared_dir / "out.pcapng"
    os.mkfifo(fifo)
    result: list[BaseException] = []

    def attempt() -> None:
        try:
            RecordingWriter(str(fifo))
        except BaseException as e:
            result.append(e)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "opening a FIFO nobody reads blocked"
    assert isinstance(result[0], UsageError) and "not a regular file" in str(result[0])
    for other in ("/dev/null", str(shared_dir)):
        with pytest.raises(UsageError, match="not a regular file"):
            RecordingWriter(other)


def test_own_existing_file_is_overwritten_and_made_private(tmp_path: Path) -> None:
    """As `tcpdump -w` does: same name, same file, emptied; mode back to 0600."""
    out = tmp_path / "out.pcapng"
    out.write_bytes(b"old contents " * 1000)
    out.chmod(0o644)
    inode = out.stat().st_ino
    with RecordingWriter(str(out)) as writer:
        writer.write_header({"command": ["true"]})
    assert out.stat().st_ino == inode and stat.S_IMODE(out.stat().st_mode) == 0o600
    rec = read_recording(str(out))
    assert rec.is_recording and rec.complete and rec.meta["command"] == ["true"]


def test_record_writes_a_new_file_in_the_shared_directory(shared_dir: Path) -> None:
    out = shared_dir / "out.pcapng"
    done = record(out)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and not out.is_symlink()
    assert read_recording(str(out)).complete


def test_annotation_neither_follows_nor_replaces_a_symlink(shared_dir: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.pcapng"
    with RecordingWriter(str(real)) as writer:
        writer.write_header({"command": ["true"]})
    before = real.read_bytes()
    link = shared_dir / "rec.pcapng"
    as_nobody("ln", "-s", str(real), str(link))
    assert annotate(str(link)) is None
    assert link.is_symlink() and real.read_bytes() == before
    assert not [p for p in shared_dir.iterdir() if p.name.endswith(".annotating")]
