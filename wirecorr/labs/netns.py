"""Private network namespaces for the labs, always removed again.

A lab must not touch the host's network: its port bomb would eat the host's ephemeral
ports, its sysctls and nftables rules would change everyone's traffic. So each run gets a
fresh namespace (or two joined by a veth pair where a lab needs a real link between two
stacks), named `wclab-<random>` so concurrent runs and leftovers of a killed run never
collide with each other or with anything else on the host.

The recorder enters the namespace in-process (`entered`): setns(2) switches only the
calling thread, and everything that thread starts afterwards — tcpdump, the traced
command, helper threads — inherits the namespace, while the rest of wirecorr stays where
it was. Removal kills whatever the lab left running inside (only a lab's own programs can
be there) before deleting the namespace, with termination signals held off so a second
Ctrl-C cannot cut the clean-up short.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType

from wirecorr.errors import MissingTool, WirecorrError

CLONE_NEWNET = 0x40000000
PREFIX = "wclab-"
_TERMINATE = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceError(WirecorrError):
    """The namespace could not be made (no root, no `ip`): the lab cannot run here."""


@dataclass
class LabNet:
    """What a lab's programs see: namespace `a` (and `b` across a veth pair when `pair`).

    `iface` is where the wire is captured: `lo` of the single namespace, or `a`'s end of the
    veth pair, which carries everything between the two stacks exactly once.
    """

    a: str
    b: str | None = None
    addr_a: str = "127.0.0.1"
    addr_b: str = "127.0.0.1"
    iface: str = "lo"
    made: list[str] = field(default_factory=list)


def _ip(*args: str, ns: str | None = None, stdin: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", ns, *args] if ns is not None else ["ip", *args]
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=20)
    except FileNotFoundError as e:
        raise MissingTool(f"{e.filename} not found: apt-get install iproute2 nftables") from None
    if done.returncode != 0:
        raise NamespaceError(f"`{' '.join(cmd)}` failed: {done.stderr.strip() or done.returncode}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread (and what it starts) inside namespace `name`."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def set_sysctl(key: str, value: str) -> None:
    """Write a net.* sysctl of the namespace this thread is in (call inside `entered`)."""
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(value)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def private_network(
    *,
    pair: bool = False,
    sysctls: dict[str, str] | None = None,
    nft_b: str | None = None,
    mtu: int | None = None,
) -> Iterator[LabNet]:
    """Create the lab's namespace(s), yield them, and remove them whatever happens.

    `sysctls` apply to every namespace made; `nft_b` is an nftables ruleset loaded into
    the receiving namespace (`b` of a pair, else the only one) — drops on the sender's
    output hook would be retried locally and never show on the wire. Every interface
    sends one MSS per packet (`gso_max_segs 1`), as a NIC would put them on the wire;
    `mtu` applies to the capture interface (`lo`, or the veth pair).
    SIGTERM and SIGHUP become KeyboardInterrupt meanwhile so the removal always runs.
    """
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    tag = secrets.token_hex(4)
    net = LabNet(a=f"{PREFIX}{tag}-a" if pair else f"{PREFIX}{tag}")
    try:
        _add(net, net.a)
        if pair:
            net.b = f"{PREFIX}{tag}-b"
            _add(net, net.b)
            subnet = 16 + secrets.randbelow(200)
            net.addr_a, net.addr_b, net.iface = f"10.77.{subnet}.1", f"10.77.{subnet}.2", "a0"
            _ip("link", "add", "a0", "netns", net.a, "type", "veth", "peer", "name", "b0", "netns", net.b)
        for ns, dev, addr in ((net.a, "a0", net.addr_a), (net.b, "b0", net.addr_b)):
            if ns is None:
                continue
            with entered(ns):
                lo_mtu = ("mtu", str(mtu)) if mtu and not pair else ()
                _ip("link", "set", "lo", "gso_max_segs", "1", *lo_mtu, "up")
                if pair:
                    _ip("addr", "add", f"{addr}/24", "dev", dev)
                    _ip("link", "set", dev, "gso_max_segs", "1", *(("mtu", str(mtu)) if mtu else ()), "up")
                for key, value in (sysctls or {}).items():
                    set_sysctl(key, value)
        if nft_b is not None:
            _ip("nft", "-f", "-", ns=net.b or net.a, stdin=nft_b)
        yield net
    finally:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _TERMINATE)
        try:
            remove(net)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            for s, handler in previous.items():
                signal.signal(s, handler)


def _add(net: LabNet, name: str) -> None:
    try:
        done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        raise MissingTool("ip not found: apt-get install iproute2") from None
    if done.returncode != 0:
        raise NamespaceError(f"cannot create network namespace {name}: {done.stderr.strip()}")
    net.made.append(name)


def remove(net: LabNet) -> None:
    """Kill what the lab left running in its namespaces, then delete them."""
    for name in reversed(net.made):
        pids = _pids_in(name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _pids_in(name) and time.monotonic() < deadline:
            time.sleep(0.02)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
    net.made.clear()


def _pids_in(name: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=20)
    return [int(p) for p in done.stdout.split() if p.isdigit() and int(p) != os.getpid()]


def can_create() -> str | None:
    """None when this process may create namespaces, else why not (for a visible skip)."""
    name = f"{PREFIX}probe-{secrets.token_hex(4)}"
    try:
        done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        return "`ip` (iproute2) is not installed"
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
    return None
