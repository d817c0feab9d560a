"""Read `strace -f -ttt -T -yy [-xx] [-s N] -o LOG` output (single file or an `-ff` set).

Users often already have strace logs, and strace runs where our ptrace tracer cannot
(attached to a service, on another machine). This module turns such a log into the same
`Syscall` records the tracer produces, so the engine never knows which source it got.

strace's argument syntax nests (`msg_hdr={msg_iov=[{iov_base="..."}]}`), quotes strings
that may contain any delimiter, and decorates fds with `<...>` that themselves contain
`->`, `[`, `]` and nested `<char 1:3>`; regular expressions alone break on that, so the
arguments go through a small recursive-descent parser (`grammar.Parser`). Regular expressions are
used only for flat tokens (atoms, quoted strings, the line head) because they run in C,
which is what keeps a 1M-line log in the tens of thousands of lines per second.

Files are read as latin-1 so every byte maps to one character: quoted data then goes back
to the exact bytes the program moved with `.encode("latin-1")`.

Results: `= ?` means the thread never returned (ret and exit_ns None); `= ? ERESTARTSYS
(...) <t>` did return, interrupted by a signal, so it gets ret -1 with that errno like any
failed call. A thread's tid maps to its process through the `clone(CLONE_THREAD) = tid` of
its creator, which has to be in the log (attach with -f from the start).

The package splits along the stages of a line: `grammar` (tokens and values), `decoration`
(`-yy` fd decorations as FdInfo), `schema` (values onto the Syscall fields) and `reader`
(lines, unfinished/resumed calls, files and the `-ff` merge).
"""

from __future__ import annotations

from wirecorr.sources.strace_log.reader import StraceLog, read_strace_log

__all__ = ["StraceLog", "read_strace_log"]
