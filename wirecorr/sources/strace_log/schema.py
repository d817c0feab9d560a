"""Parsed strace values mapped onto the Syscall schema: argument names, data, sockaddrs, iovecs."""

from __future__ import annotations

import re

from wirecorr.model import Syscall
from wirecorr.sources.strace_log.decoration import fdinfo
from wirecorr.sources.strace_log.grammar import BadSyntax, Call, Fd, Parser, Quoted, Struct, as_text, number
from wirecorr.vocab import BYTE_CALLS, PARAMS, TARGETS

# Numbers as strace prints them (decimal, 0x hex, 0-prefixed octal).
_INT = re.compile(r"-?(?:0x[0-9a-fA-F]+|\d+)\Z")


# --------------------------------------------------------------------------- values


def _num(atom: str) -> int | str:
    """Numbers as ints (strace prints modes in octal: `0644`), names and flag sets unchanged."""
    if _INT.match(atom):
        if atom.startswith(("0x", "-0x")):
            return number(atom, 16)
        if len(atom) > 1 and atom[0] == "0":
            return number(atom, 8)
        return number(atom)
    return atom


def _json(v: object) -> object:
    """A parsed value as JSON-ready data (the shape `Syscall.args` promises)."""
    if isinstance(v, str):
        return None if v == "NULL" else _num(v)
    if isinstance(v, Fd):
        return v.value
    if isinstance(v, Quoted):
        return as_text(v.data)
    if isinstance(v, Struct):
        if "sa_family" in v:
            return _sockaddr(v)
        out = {k: _json(x) for k, x in v.items()}
        if v.pos:
            out["_"] = [_json(x) for x in v.pos]
        return out
    if isinstance(v, list):
        return [_json(x) for x in v]
    if isinstance(v, Call):
        return v.text
    return v


def _unwrap(v: object) -> object:
    """`[16]` (strace's pointer-to-int form) as 16, anything else as JSON."""
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    return _json(v)


def _sockaddr(sa: Struct) -> object:
    """`ip:port` / `[ip6]:port` / unix path, the form FdInfo endpoints use, so they compare equal."""
    fam = sa.get("sa_family")
    if fam == "AF_INET":
        port = _call_arg(sa.get("sin_port"))
        addr = _call_arg(sa.get("sin_addr"))
        return f"{addr}:{port}"
    if fam == "AF_INET6":
        port = _call_arg(sa.get("sin6_port"))
        addr = None
        for p in sa.pos:
            if isinstance(p, Call) and p.name == "inet_pton":
                addr = _call_arg(p, 1)
        if addr is None:
            addr = _call_arg(sa.get("sin6_addr"))
        return f"[{addr}]:{port}"
    if fam == "AF_UNIX":
        path = sa.get("sun_path")
        if isinstance(path, Quoted):
            return as_text(path.data)
        if isinstance(path, str) and path.startswith("@"):
            # abstract names print as @"name"; the parser hands back the whole token
            return "@" + path[1:].strip('"')
        return ""
    return {k: _json(x) for k, x in sa.items()}


def _call_arg(v: object, index: int = 0) -> object:
    if isinstance(v, Call):
        v = v.args[index] if len(v.args) > index else None
    if isinstance(v, Quoted):
        return as_text(v.data)
    return _json(v)


def _shown_data(pieces: list[object]) -> bytes | None:
    """Concatenate shown buffers, stopping after the first truncated one: later bytes would not be contiguous."""
    out = []
    for piece in pieces:
        if not isinstance(piece, Quoted):
            break
        out.append(piece.data)
        if piece.truncated:
            break
    return b"".join(out) if out else None


def _iov(iov: object) -> tuple[bytes | None, int | None, bool]:
    """Shown data, total iov_len and whether every element was shown, for an iovec array."""
    if not isinstance(iov, list):
        return None, None, False
    total = 0
    bases = []
    for el in iov:
        if not isinstance(el, Struct):
            return _shown_data(bases), None, False
        bases.append(el.get("iov_base"))
        n = _json(el.get("iov_len"))
        total += n if isinstance(n, int) else 0
    return _shown_data(bases), total, True


# --------------------------------------------------------------------------- per-syscall mapping


def fill(sc: Syscall, values: list[object], raws: list[str], annotation: str) -> None:
    """Name the arguments like the man pages (and the tracer) do and fill the data fields."""
    params = PARAMS.get(sc.name)
    if params is None:
        sc.args["raw"] = raws
        return
    args = sc.args
    named = dict(zip(params, values, strict=False))
    target = named.get(TARGETS.get(sc.name, "fd"))
    if isinstance(target, Fd) and isinstance(target.value, int):
        sc.fd = target.value
        sc.fdinfo = fdinfo(target.deco)
    elif isinstance(target, str) and target.lstrip("-").isdecimal():
        sc.fd = number(target)
    ok = sc.errno is None and sc.ret is not None
    for key, v in named.items():
        if key in ("buf", "iov", "msg", "msgvec", "fds", "event", "events"):
            continue
        if key in ("addrlen", "optlen", "optval"):
            args[key] = _optval(v) if key == "optval" else _unwrap(v)
        else:
            args[key] = _json(v)
    if "buf" in named:
        sc.data = _shown_data([named["buf"]])
    if "iov" in named:
        sc.data, count, _ = _iov(named["iov"])
        args["count"] = count
    if "msg" in named:
        _fill_msghdr(sc, named["msg"])
    if "msgvec" in named:
        _fill_mmsg(sc, named["msgvec"])
    if "fds" in named:
        args["fds"] = _poll_fds(named["fds"], annotation)
    if "event" in named:
        ev = named["event"]
        if isinstance(ev, Struct):
            args["events"] = _json(ev.get("events"))
            args["data"] = _epoll_data(ev)
    if "events" in named:
        evs = named["events"]
        args["events"] = (
            [{"events": _json(e.get("events")), "data": _epoll_data(e)} for e in evs if isinstance(e, Struct)]
            if isinstance(evs, list)
            else _json(evs)
        )
    if ok and sc.name in BYTE_CALLS:
        sc.nbytes = sc.ret


def _optval(v: object) -> object:
    if isinstance(v, Struct) and "l_onoff" in v:
        return {"onoff": _json(v["l_onoff"]), "linger": _json(v.get("l_linger"))}
    return _unwrap(v)


def _epoll_data(ev: Struct) -> object:
    data = ev.get("data")
    if isinstance(data, Struct):
        return _json(data.get("u64", data.get("fd")))
    return _json(data)


def _fill_msghdr(sc: Syscall, msg: object) -> None:
    if not isinstance(msg, Struct):
        sc.args["msg"] = _json(msg)
        return
    name = msg.get("msg_name")
    sc.args["addr"] = _json(name) if name is not None else None
    sc.data, count, _ = _iov(msg.get("msg_iov"))
    sc.args["count"] = count
    sc.args["iovcnt"] = _json(msg.get("msg_iovlen"))


def _fill_mmsg(sc: Syscall, vec: object) -> None:
    """msg_lens from the vector; nbytes only when every message's msg_len was shown."""
    if not isinstance(vec, list):
        return
    lens: list[int] = []
    pieces: list[object] = []
    complete = True
    for el in vec:
        if not isinstance(el, Struct):
            complete = False
            break
        n = _json(el.get("msg_len"))
        if not isinstance(n, int):
            complete = False
            break
        lens.append(n)
        hdr = el.get("msg_hdr")
        data, _, whole = _iov(hdr.get("msg_iov") if isinstance(hdr, Struct) else None)
        pieces.append(Quoted(data or b"", not whole or data is None or len(data) < n))
    if isinstance(sc.ret, int) and sc.errno is None and len(lens) != sc.ret:
        complete = False
    sc.msg_lens = lens or None
    sc.nbytes = sum(lens) if complete and lens else None
    sc.data = _shown_data(pieces)


def _poll_fds(fds: object, annotation: str) -> object:
    """poll's fds with revents taken from the result annotation `([{fd=3, revents=POLLIN}])`."""
    if not isinstance(fds, list):
        return _json(fds)
    out = [
        {"fd": _json(f.get("fd")), "events": _json(f.get("events")), "revents": None}
        for f in fds
        if isinstance(f, Struct)
    ]
    if annotation.startswith("(["):
        try:
            revs = Parser(annotation, 1).value()
        except BadSyntax:
            return out
        i = 0
        for r in revs if isinstance(revs, list) else ():
            if not isinstance(r, Struct):
                continue
            fd = _json(r.get("fd"))
            while i < len(out) and out[i]["fd"] != fd:
                i += 1
            if i < len(out):
                out[i]["revents"] = _json(r.get("revents"))
                i += 1
    return out


# --------------------------------------------------------------------------- lines

# `PID ` with -o, `[pid PID] ` when strace wrote to stderr, nothing with -ff or a single process.
