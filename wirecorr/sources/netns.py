"""Network namespaces for the capture: where a traced process's packets actually are.

A process in a container (or any other network namespace) sends its packets on that
namespace's interfaces; tcpdump on the host's `any` sees them only NATed on the bridge, or
not at all for its loopback traffic. So the capture is started inside the target's
namespace: setns(2) switches the calling thread only, and tcpdump, forked from that thread,
inherits it, while the rest of wirecorr stays where it was (the thread is switched back
at once). The mount namespace is left alone: tcpdump's output file is wirecorr's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
from collections.abc import Iterator
from typing import Any

from wirecorr.errors import UsageError, WirecorrError

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

# Container ids as runtimes name their cgroups: docker-<id>.scope, /docker/<id>,
# libpod-<id>, cri-containerd-<id>, crio-<id>, kubepods…/<id>; and lxc's /lxc/<name>.
_CONTAINER = re.compile(r"(?:(docker|libpod|cri-containerd|crio|containerd)[-/])?([0-9a-f]{64})(?:\.scope)?")
_LXC = re.compile(r"/lxc(?:\.payload)?[./]([^/]+)")


class NetnsError(WirecorrError):
    exit_code = 2


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def ns_inode(path: str) -> int:
    return os.stat(path).st_ino


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the block with this thread (and what it starts) in the network namespace at `path`
    (`/proc/PID/ns/net` or `/run/netns/NAME`)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise NetnsError(f"cannot open the network namespace {path}: {e.strerror}") from None
        try:
            _setns(target)
        except OSError as e:
            raise NetnsError(f"cannot enter the network namespace {path}: {e.strerror} (needs CAP_SYS_ADMIN)") from None
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def named(name: str) -> str:
    """The path of an `ip netns` namespace, refused clearly when there is none of that name."""
    if not name or "/" in name or name in (".", ".."):
        raise NetnsError(f"record: --netns wants the name of a namespace in /run/netns, got {name!r}")
    path = f"/run/netns/{name}"
    if not os.path.exists(path):
        raise NetnsError(f"record: no network namespace named {name} (`ip netns list` shows them)")
    return path


def container_of(pid: int) -> str | None:
    """The container a process's cgroup names, e.g. `docker 3f2a…`, or None."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return container_in(f.read())
    except OSError:
        return None


def container_in(cgroup: str) -> str | None:
    """The container named by the text of a /proc/PID/cgroup file, or None."""
    for line in cgroup.splitlines():
        path = line.split(":", 2)[-1]
        m = _CONTAINER.search(path)
        if m:
            return f"{m.group(1) or 'container'} {m.group(2)[:12]}"
        m = _LXC.search(path)
        if m:
            return f"lxc {m.group(1)}"
    return None


def _inodes(pids: list[int]) -> dict[int, int]:
    """pid → inode of its network namespace, for the pids that exist."""
    found: dict[int, int] = {}
    for pid in pids:
        try:
            found[pid] = ns_inode(f"/proc/{pid}/ns/net")
        except FileNotFoundError:
            continue  # no such process: the tracer says so when it attaches
        except OSError as e:
            raise NetnsError(f"record: cannot see the network namespace of pid {pid}: {e.strerror}") from None
    return found


def groups(pids: list[int]) -> list[list[int]]:
    """`pids` grouped by network namespace, in the order given; a pid that does not exist
    joins the first group, where the tracer's attach reports it."""
    by_inode: dict[int | None, list[int]] = {}
    found = _inodes(pids)
    for pid in pids:
        by_inode.setdefault(found.get(pid, next(iter(found.values()), None)), []).append(pid)
    return list(by_inode.values())


def of_pids(pids: list[int], *, several: bool = False) -> dict[str, Any] | None:
    """The network namespace of `pids` when it is not wirecorr's own, described for the header.

    One capture serves one namespace; `record -p` splits processes of several namespaces
    into one session each (recording/netns_split.py). `several`: the session follows its
    processes into other namespaces (recording/netns_follow.py, as `live` does), so the
    first pid's namespace is the session's and the others get their captures at attach.
    """
    found = _inodes(pids)
    if several and found:
        first = next(iter(found.values()))
        found = {pid: inode for pid, inode in found.items() if inode == first}
    inodes = set(found.values())
    if len(inodes) > 1:
        raise UsageError(
            "the processes are in different network namespaces ("
            + ", ".join(f"pid {p}: net:[{i}]" for p, i in found.items())
            + ") and this session captures in one only; `wirecorr record -p` records them, one capture per "
            "namespace, merged into one recording"
        )
    if not inodes or inodes == {ns_inode("/proc/self/ns/net")}:
        return None
    pid = next(iter(found))
    inode = inodes.pop()
    info = {"inode": inode, "pid": pid, "path": f"/proc/{pid}/ns/net", "container": container_of(pid)}
    name = ip_netns_name(inode)
    return info if name is None else {**info, "name": name}


def ip_netns_name(inode: int) -> str | None:
    """The `ip netns` name of the namespace with this inode, if it has one."""
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir("/run/netns")):
            with contextlib.suppress(OSError):
                if ns_inode(f"/run/netns/{name}") == inode:
                    return name
    return None


def label(info: dict[str, Any]) -> str:
    """The namespace in a few words, for a status bar: `netns NAME`, or its inode, and the container."""
    name = info.get("name") or f"net:[{info['inode']}]"
    where = f"netns {name}"
    return where + (f" (container {info['container']})" if info.get("container") else "")


def describe(info: dict[str, Any]) -> str:
    where = f"network namespace net:[{info['inode']}]"
    if info.get("name"):
        where += f" ({info['name']})"
    elif info.get("pid"):
        where += f" of pid {info['pid']}"
    if info.get("container"):
        where += f", container {info['container']}"
    return where
