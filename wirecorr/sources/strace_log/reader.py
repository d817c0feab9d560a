"""Lines and files of a strace log (or `-ff` set) into one sorted list of Syscalls."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from wirecorr.bulk import paused_gc
from wirecorr.errors import InputError
from wirecorr.model import Syscall
from wirecorr.sources.capture_file import STDIN
from wirecorr.sources.strace_log.decoration import fdinfo
from wirecorr.sources.strace_log.grammar import BadSyntax, Parser, number, split_raw
from wirecorr.sources.strace_log.schema import fill
from wirecorr.vocab import PARAMS


@dataclass
class StraceLog:
    """Everything read from one strace log (or `-ff` set), plus how well it parsed."""

    syscalls: list[Syscall]
    lines: int
    unparsable: int
    first_unparsable: tuple[str, int] | None
    processes: dict[int, str]


_HEAD = re.compile(r"(?:(\d{1,10}) +|\[pid +(\d{1,10})\] )?(\d{1,12})\.(\d+) (.*)\Z", re.S)
_CALL = re.compile(r"(\w+)\(")
_RESUMED = re.compile(r"<\.\.\. (\w+) resumed>")
_UNFINISHED = " <unfinished ...>"
_RESULT = re.compile(
    r" *= *(\?|0x[0-9a-fA-F]+|-?\d+)(<)?"  # ret, maybe with an fd decoration after it
)
_ERRNO = re.compile(r" +(E[A-Z0-9_]+) \((?:[^()]|\([^()]*\))*\)")
_DURATION = re.compile(r" <(\d+)\.(\d+)>\Z")


def _ns(sec: str, frac: str) -> int:
    """Decimal seconds to integer ns without going through float (which loses the last digits)."""
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


class _Pending(NamedTuple):
    name: str
    text: str  # `name(args...` up to the unfinished marker
    enter_ns: int


class FileReader:
    """Turns the lines of one file into Syscalls; keeps what has to outlive a line (unfinished calls)."""

    def __init__(self, default_pid: int) -> None:
        self.default_pid = default_pid
        self.syscalls: list[Syscall] = []
        self.pending: dict[int, _Pending] = {}
        self.threads: list[tuple[int, int, int]] = []  # (enter_ns, creator tid, new thread tid)
        self.exits: list[tuple[int, str]] = []  # (tid, how it ended)

    def line(self, text: str) -> bool:
        """Consume one line; False when it is not strace output."""
        m = _HEAD.match(text)
        if m is None:
            return False
        pid_s, pid_b, sec, frac, body = m.groups()
        tid = int(pid_s or pid_b) if (pid_s or pid_b) else self.default_pid
        ts = _ns(sec, frac)
        c = body[:1]
        if c == "+":
            return self._exit(tid, body)
        if c == "-":
            return body.startswith("--- ") and body.endswith(" ---")
        if c == "<":
            r = _RESUMED.match(body)
            pend = self.pending.pop(tid, None)
            if r is None or pend is None or pend.name != r.group(1):
                return False
            rest = body[r.end() :].replace(_UNFINISHED, "", 1)
            return self._complete(tid, pend.name, pend.text + rest, pend.enter_ns, ts)
        m = _CALL.match(body)
        if m is None:
            return False
        name = m.group(1)
        if body.endswith(_UNFINISHED):
            self.pending[tid] = _Pending(name, body[: -len(_UNFINISHED)], ts)
            return True
        return self._complete(tid, name, body, ts, None)

    def _exit(self, tid: int, body: str) -> bool:
        if not (body.startswith("+++ ") and body.endswith(" +++")):
            return False
        what = body[4:-4]
        if what.startswith("exited with "):
            self.exits.append((tid, "exited " + what[12:]))
        elif what.startswith("killed by "):
            self.exits.append((tid, what))
        return True

    def _complete(self, tid: int, name: str, text: str, enter_ns: int, resumed_ns: int | None) -> bool:
        try:
            sc = self._build(tid, name, text, enter_ns, resumed_ns, strict=True)
        except (BadSyntax, ValueError):  # ValueError: a number strace would never print
            return False
        self.syscalls.append(sc)
        return True

    def _build(self, tid: int, name: str, text: str, enter_ns: int, resumed_ns: int | None, strict: bool) -> Syscall:
        if not strict:
            text += ")"  # the arguments strace printed before the thread vanished
        values: list[object] = []
        raws: list[str] = []
        end = len(text)
        try:
            if name in PARAMS:
                p = Parser(text, len(name) + 1)
                values = p.args(")")
                end = p.pos
            else:
                raws, end = split_raw(text, len(name) + 1)
        except BadSyntax:
            if strict:
                raise
        sc = Syscall(id=0, pid=tid, tid=tid, name=name, enter_ns=enter_ns)
        annotation = ""
        if strict:
            annotation = self._result(sc, text, end, resumed_ns)
        if name in ("clone", "clone3") and isinstance(sc.ret, int) and sc.ret > 0 and "CLONE_THREAD" in text:
            self.threads.append((enter_ns, tid, sc.ret))
        fill(sc, values, raws, annotation)
        return sc

    def _result(self, sc: Syscall, text: str, pos: int, resumed_ns: int | None) -> str:
        """Parse ` = ret [ERRNO (msg)] [(annotation)] [<duration>]`; return the annotation."""
        m = _RESULT.match(text, pos)
        if m is None:
            raise BadSyntax("no result")
        ret, deco = m.groups()
        end = m.end()
        if deco:
            p = Parser(text, end - 1)
            sc.ret_fdinfo = fdinfo(p.decoration())
            end = p.pos
        d = _DURATION.search(text, end)
        tail_end = d.start() if d else len(text)
        e = _ERRNO.match(text, end, tail_end)
        if e is not None:
            sc.errno = e.group(1)
            end = e.end()
        if ret == "?":
            sc.ret = -1 if sc.errno else None
        else:
            sc.ret = number(ret, 16) if ret.startswith("0x") else number(ret)
        if d is not None:
            sc.exit_ns = sc.enter_ns + _ns(d.group(1), d.group(2))
        elif ret != "?":
            sc.exit_ns = resumed_ns  # a log without -T: only a resumed line tells when the call ended
        return text[end:tail_end].strip()

    def finish(self) -> None:
        """Calls still unfinished at the end of the log: the thread died in them or strace stopped."""
        for tid, pend in self.pending.items():
            # Its arguments are read loosely (_build), but a number strace could not have printed still
            # drops the call.
            with contextlib.suppress(BadSyntax):
                self.syscalls.append(self._build(tid, pend.name, pend.text, pend.enter_ns, None, strict=False))
        self.pending.clear()


def _files(path: Path) -> list[tuple[Path, int | None]]:
    """The file(s) behind `path`: itself, its `-ff` siblings `path.PID`, or the `*.PID` files in it."""
    if str(path) == STDIN or path.is_file():
        return [(path, None)]
    if path.exists() and not path.is_dir():
        # A pipe (`--strace <(zcat log.gz)`, a FIFO) is read as standard input is; a device
        # (/dev/zero) would be read without end.
        if not stat.S_ISFIFO(path.stat().st_mode):
            raise InputError(str(path), "not a regular file or a pipe")
        return [(path, None)]
    if path.is_dir():
        candidates = list(path.iterdir())
    else:
        parent = path.parent
        candidates = [f for f in parent.iterdir() if f.name.startswith(path.name + ".")] if parent.is_dir() else []
    found = []
    for f in candidates:
        suffix = f.name.rpartition(".")[2]
        if suffix.isdecimal() and f.is_file():
            found.append((f, int(suffix)))
    if not found:
        what = "no strace -ff files (NAME.PID) in directory" if path.is_dir() else "no such file (nor PATH.PID files)"
        raise InputError(str(path), what)
    return sorted(found, key=lambda item: item[1])


# What strace -t or -tt put first on a line (after a pid, with -f): a time of day.
_TIME_OF_DAY = re.compile(r"(?:\[?(?:pid\s+)?\d+\]?\s+)?\d\d:\d\d:\d\d(?:\.\d+)?\s")
_WANTED = "record the log with strace -f -ttt -T -yy -o LOG CMD"


def _read_file(name: str, reader: FileReader) -> tuple[int, int, int | None]:
    """Feed one file to `reader`; returns (lines read, unparsable lines, first unparsable line).

    A file with no strace line at all is almost certainly the wrong file, so that raises.
    """
    lineno = good = bad = 0
    first_bad = None
    first_bad_text = ""
    try:
        # "-": standard input (`strace … 2>&1 >/dev/null CMD | wirecorr analyze --strace -`).
        source: str | int = 0 if name == STDIN else name
        with open(source, encoding="latin-1", newline="\n", closefd=source != 0) as fh:
            for lineno, raw in enumerate(fh, 1):
                text = raw.rstrip("\r\n")
                if not text:
                    continue
                if reader.line(text):
                    good += 1
                else:
                    bad += 1
                    if first_bad is None:
                        first_bad, first_bad_text = lineno, text
    except OSError as exc:
        raise InputError(name, exc.strerror or str(exc)) from exc
    if good == 0:
        if first_bad is None:
            raise InputError(name, "empty strace log")
        if _TIME_OF_DAY.match(first_bad_text):
            why = "strace -t/-tt give the time of day only, wirecorr needs seconds since the epoch"
            raise InputError(name, f"{why}: {_WANTED}", line=first_bad)
        raise InputError(name, f"not strace -ttt output (no line could be parsed): {_WANTED}", line=first_bad)
    return lineno, bad, first_bad


def read_strace_log(path: str | os.PathLike[str]) -> StraceLog:
    """Read a strace log, an `-ff` set (by its `-o` base name) or a directory of `-ff` files.

    Unparsable lines are counted, not fatal: a log cut off by a crash still has value.
    """
    lines = unparsable = 0
    first_bad: tuple[str, int] | None = None
    readers: list[FileReader] = []
    files = _files(Path(path))
    with paused_gc():
        for file, pid in files:
            name = str(file)
            reader = FileReader(pid if pid is not None else 0)
            n, bad, file_first_bad = _read_file(name, reader)
            lines += n
            unparsable += bad
            if file_first_bad is not None and first_bad is None:
                first_bad = (name, file_first_bad)
            reader.finish()
            readers.append(reader)
    return _merge(readers, lines, unparsable, first_bad)


def _merge(readers: list[FileReader], lines: int, unparsable: int, first_bad: tuple[str, int] | None) -> StraceLog:
    """Resolve thread ids to processes (clone with CLONE_THREAD), sort by entry time, number the calls."""
    threads = sorted(t for r in readers for t in r.threads)
    tgid: dict[int, int] = {}
    for _, creator, new in threads:
        tgid[new] = tgid.get(creator, creator)
    syscalls = [sc for r in readers for sc in r.syscalls]
    if tgid:
        for sc in syscalls:
            sc.pid = tgid.get(sc.tid, sc.tid)
    syscalls.sort(key=lambda sc: sc.enter_ns)
    for i, sc in enumerate(syscalls):
        sc.id = i
    processes = {tid: how for r in readers for tid, how in r.exits if tid not in tgid}
    return StraceLog(syscalls, lines, unparsable, first_bad, processes)
