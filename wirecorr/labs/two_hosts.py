"""Lab `two-hosts`: a client and a server on two "hosts", each recorded on its own, merged.

Three namespaces: client, router, server. The router masquerades (the server sees the
router's address, as behind a NAT) and its link toward the server is shaped by
tbf (a token bucket: netem is not in this kernel), so a burst of data queues there and
reaches the server's wire late while a lone SYN or ACK passes at once. Client and server
are each recorded by their own `wirecorr record --netns`, as two machines would be; the
server's recording is then given a clock 0.75 s fast with `edit --time-shift`, and the two
are merged. The explanation checks that the merge found the shift within the bound it
states, and follows one write from the client's call, over the client's wire and the
server's wire, to the server's read — the four lanes of a two-host ladder.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from wirecorr.engine.hosts import MergedSession
from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence
from wirecorr.labs.netns import PREFIX, LabNet, NamespaceError, _add, _ip, entered, set_sysctl
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import fmt_ns, format_endpoint
from wirecorr.recording.edit import time_shift
from wirecorr.recording.merge import merge
from wirecorr.recording.recorder import RecordOptions

PORT = 9400
SHIFT_NS = 750_000_000
RATE = "8mbit"
FULL_BYTES, SMALL_BYTES = 60_000, 30_000

SERVER = (
    PRELUDE
    + """
addr, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port))
srv.listen(1)
s, _ = srv.accept()
got = 0
while got < total:
    data = s.recv(65536)
    if not data:
        break
    got += len(data)
s.sendall(b"ok\\n")
s.close()
sys.exit(0 if got == total else 1)
"""
)

CLIENT = (
    PRELUDE
    + """
addr, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(500):
    try:
        c = socket.create_connection((addr, port))
        break
    except ConnectionRefusedError:
        time.sleep(0.01)
c.sendall(b"q" * total)
reply = c.recv(16)
c.close()
sys.exit(0 if reply == b"ok\\n" else 1)
"""
)


NAT = """
table ip wclab_nat {
    chain post {
        type nat hook postrouting priority 100; policy accept;
        oifname "rb" masquerade
    }
}
"""


def _subnet(net: LabNet) -> int:
    """The run's subnet number, from the namespace's random tag so concurrent runs differ."""
    return 16 + int(net.a.removeprefix(PREFIX)[:4], 16) % 200


def _topology(net: LabNet) -> tuple[str, str, str]:
    """Server and router namespaces beside the runner's client namespace `net.a`; returns
    (server namespace, client address, server address). Removed with the runner's."""
    server, router = f"{net.a}-s", f"{net.a}-r"
    _add(net, server)
    _add(net, router)
    n = _subnet(net)
    client_addr, server_addr = f"10.81.{n}.1", f"10.82.{n}.2"
    _ip("link", "add", "a0", "netns", net.a, "type", "veth", "peer", "name", "ra", "netns", router)
    _ip("link", "add", "b0", "netns", server, "type", "veth", "peer", "name", "rb", "netns", router)
    for ns, dev, addr, gw in (
        (net.a, "a0", client_addr, f"10.81.{n}.254"),
        (server, "b0", server_addr, f"10.82.{n}.254"),
    ):
        with entered(ns):
            _ip("link", "set", "lo", "up")
            _ip("addr", "add", f"{addr}/24", "dev", dev)
            _ip("link", "set", dev, "gso_max_segs", "1", "up")
            _ip("route", "add", "default", "via", gw)
    with entered(router):
        _ip("link", "set", "lo", "up")
        for dev, addr in (("ra", f"10.81.{n}.254/24"), ("rb", f"10.82.{n}.254/24")):
            _ip("addr", "add", addr, "dev", dev)
            _ip("link", "set", dev, "gso_max_segs", "1", "up")
        set_sysctl("net.ipv4.ip_forward", "1")
        # The router masquerades: the server sees the router's address, as behind a NAT, so the
        # merge has to match the two captures' packets by their contents, not their addresses.
        _ip("nft", "-f", "-", ns=router, stdin=NAT)
        tbf = ["tc", "qdisc", "add", "dev", "rb", "root", "tbf", "rate", RATE, "burst", "3000", "latency", "400ms"]
        done = subprocess.run(tbf, capture_output=True, text=True, timeout=20)
        if done.returncode != 0:
            raise NamespaceError(f"`{' '.join(tbf)}` failed: {done.stderr.strip() or done.returncode}")
    return server, client_addr, server_addr


def command(work: Workdir, net: LabNet) -> list[str]:
    """The client's argv; `record` starts the server beside it."""
    total = SMALL_BYTES if work.small else FULL_BYTES
    return work.python("client", CLIENT, f"10.82.{_subnet(net)}.2", PORT, total)


def record(work: Workdir, net: LabNet, argv: list[str], output: str) -> int:
    """Two `wirecorr record` runs, one per host, then the server's clock skewed and merged."""
    server_ns, _, server_addr = _topology(net)
    total = SMALL_BYTES if work.small else FULL_BYTES
    server_argv = work.python("server", SERVER, server_addr, PORT, total)
    client_out, server_out = str(work.path / "client.pcapng"), str(work.path / "server.pcapng")
    skewed = str(work.path / "server-skewed.pcapng")

    def rec(output: str, cmd: list[str], ns: str, iface: str) -> list[str]:
        """One host's recorder as its own process, as the two machines would run it."""
        options = RecordOptions(
            output, cmd, interface=iface, capture_filter=f"tcp port {PORT}", snaplen=128, netns_name=ns
        )
        return [sys.executable, "-m", "wirecorr", *options.command_line(link=False)]

    server = subprocess.Popen(rec(server_out, server_argv, server_ns, "b0"), stderr=subprocess.PIPE)
    try:
        _wait_listening(server_ns, server)
        client = subprocess.run(rec(client_out, argv, net.a, "a0"), stderr=subprocess.PIPE, timeout=120)
        _, server_err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    for name, done, err in (("client", client, client.stderr), ("server", server, server_err)):
        if done.returncode not in (0, 1):
            sys.stderr.write(err.decode(errors="replace"))
            raise RuntimeError(f"recording the {name} failed with status {done.returncode}")
    time_shift(server_out, skewed, SHIFT_NS)
    merge([client_out, skewed], output)
    return client.returncode or server.returncode


def _wait_listening(ns: str, proc: subprocess.Popen[bytes]) -> None:
    """Start the client only once the server listens, so its first connect is the one recorded."""
    want = f":{PORT:04X}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        with entered(ns), open("/proc/thread-self/net/tcp") as f:
            if any(r.split()[1].endswith(want) and r.split()[3] == "0A" for r in f.readlines()[1:]):
                return
        time.sleep(0.02)


def explain(ev: Evidence) -> None:
    merged = ev.merged
    if not ev.expect(merged is not None and len(merged.hosts) == 2, "the recording is not a merge of two hosts"):
        return
    assert merged is not None
    client, server = merged.hosts
    offset, bound = server.host["offset_ns"], server.host["offset_error_ns"]
    ev.fact("offset_ns", offset)
    ev.fact("offset_error_ns", bound)
    ev.say(
        f"the server's recording was given a clock {fmt_ns(SHIFT_NS)} fast; the merge estimated "
        f"{offset / 1e6:+.6f} ms ± {fmt_ns(bound)} from {len(merged.crossings)} packets both captured"
    )
    missed = f"the estimate misses the {fmt_ns(SHIFT_NS)} shift by more than its bound"
    ev.expect(abs(offset - SHIFT_NS) <= bound, missed)
    delays = [c.delay_ns for c in merged.crossings]
    if not ev.expect(delays, "no packet was seen by both hosts"):
        return
    ev.expect(min(delays) >= 0, f"a packet arrived {fmt_ns(-min(delays))} before it was sent: the clocks disagree")
    table = client.session.analyzer.table
    data = [c.delay_ns for c in merged.crossings if c.sender == 0 and table.seglen[c.sent] > 0]
    back = [c.delay_ns for c in merged.crossings if c.sender == 1]
    if not ev.expect(data and back, "no data crossing in one of the directions"):
        return
    ev.fact("data_delay_max_ns", max(data))
    ev.fact("reverse_delay_median_ns", int(statistics.median(back)))
    ev.say(
        f"one-way delay client→server: data segments {fmt_ns(min(data))} … {fmt_ns(max(data))} "
        f"(queued by tbf at {RATE} in the router); server→client {fmt_ns(min(back))} … {fmt_ns(max(back))}"
    )
    ev.expect(max(data) > 10 * max(min(back), 1_000), "the data segments did not queue at the router")
    _nat(ev, merged)
    _follow_write(ev, merged)


def _nat(ev: Evidence, merged: MergedSession) -> None:
    """The same connection under two names: what the client sent from, what the server saw."""
    ends = []
    for h in merged.hosts:
        conns = h.session.analyzer.connections
        ends.append(format_endpoint(conns[0].client_addr, conns[0].client_port) if conns else None)
    ev.fact("client_as_seen", ends)
    ev.expect(ends[0] != ends[1], "the server saw the client's own address: the router did not translate it")
    if ev.expect(all(ends), "a host captured no connection"):
        ev.say(
            f"the client connected from {ends[0]}; behind the router's NAT the server saw {ends[1]} — the packets "
            "were matched by sequence numbers, timestamps and payload, not by address"
        )


def _follow_write(ev: Evidence, merged: MergedSession) -> None:
    """The client's big write across the four lanes: app, client wire, server wire, app."""
    client, server = merged.hosts
    crossed = {c.sent: c for c in merged.crossings}
    writes = [lk for lk in client.session.correlator.links if lk.kind == "write-data"]
    if not ev.expect(writes, "the client's write was not linked to its segments"):
        return
    write = max(writes, key=lambda lk: len(lk.packets))
    call = next(sc for sc in client.session.syscalls if sc.id == write.syscall)
    arrived = [crossed[i].received for i in write.packets if i in crossed]
    reads = [lk for lk in server.session.correlator.links if lk.kind == "read-data" and set(lk.packets) & set(arrived)]
    ev.expect(reads, "no server read was linked to the segments of the client's write")
    ev.expect(
        any(lk.kind == "accept-ack" for lk in server.session.correlator.links), "the server's accept was not linked"
    )
    if not arrived or not reads:
        return
    ts_client = client.session.analyzer.table.ts_ns
    ts_server = server.session.analyzer.table.ts_ns
    read_calls = {sc.id: sc for sc in server.session.syscalls}
    last_read = max((read_calls[lk.syscall] for lk in reads), key=lambda sc: sc.exit_ns or sc.enter_ns)
    t0 = call.enter_ns
    ev.say(
        f"the client's {call.name}({call.nbytes} B): entered at 0; its {len(write.packets)} segments left the client's "
        f"wire from +{fmt_ns(ts_client[write.packets[0]] - t0)} to +{fmt_ns(ts_client[write.packets[-1]] - t0)}"
    )
    first, last = ts_server[arrived[0]] - t0, ts_server[arrived[-1]] - t0
    ev.say(
        f"  they reached the server's wire from +{fmt_ns(first)} to +{fmt_ns(last)}; "
        f"{len(reads)} server read(s) took them, the last returning at +{fmt_ns((last_read.exit_ns or 0) - t0)}"
    )


LAB = Lab(
    name="two-hosts",
    summary="client and server recorded separately in two namespaces, a skewed clock, merged on one timeline",
    command=command,
    explain=explain,
    record=record,
    capture_filter=f"tcp port {PORT}",
    snaplen=128,
)
