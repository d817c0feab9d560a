"""Two hosts on one timeline: edit --time-shift, merge, and recording inside network namespaces.

Real namespaces joined by a veth pair (created and removed here), a real server and
client each recorded by its own `wirecorr record --netns`, one recording given a known
wrong clock with `edit --time-shift`, then merged: the merge must find the shift within
the bound it states, and every link on both sides must be there on the common clock.
Needs root; where namespaces cannot be made the tests say so and skip.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest

from wirecorr.labs.netns import LabNet, can_create, private_network
from wirecorr.recording import read_recording

ROOT = Path(__file__).resolve().parent.parent
SHIFT_NS = 250_000_000
PORT = 9310
CONNECTIONS = 2

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4)
for _ in range(int(sys.argv[3])):
    c, _ = s.accept()
    while True:
        d = c.recv(4096)
        if not d:
            break
        c.sendall(d)
    c.close()
"""

CLIENT = """
import socket, sys, time
for i in range(int(sys.argv[3])):
    for _ in range(200):
        try:
            c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
            break
        except ConnectionRefusedError:
            time.sleep(0.02)
    for j in range(4):
        c.sendall(b"hello %d %d\\n" % (i, j))
        c.recv(100)
        time.sleep(0.003)
    c.close()
"""


def wirecorr(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wirecorr", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@cache
def _no_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    return can_create()


def _need_namespaces() -> None:
    reason = _no_namespaces()
    if reason is not None:
        pytest.skip(f"cannot create network namespaces: {reason}")


pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(client's recording, server's recording), made in two namespaces across a veth."""
    _need_namespaces()
    yield record_two_hosts(tmp_path_factory.mktemp("hosts"), SERVER, CLIENT, PORT, str(CONNECTIONS))


def test_merge_recovers_a_known_clock_shift_within_its_bound(two_hosts: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_hosts
    shifted = tmp_path / "server-shifted.pcapng"
    done = wirecorr("edit", "--time-shift", "0.250", str(b), "-o", str(shifted))
    assert done.returncode == 0, done.stderr
    merged = tmp_path / "merged.pcapng"
    done = wirecorr("merge", str(a), str(shifted), "-o", str(merged))
    assert done.returncode == 0, done.stderr
    doc = json.loads(wirecorr("analyze", "--json", str(merged)).stdout)
    assert doc["merged"] is True
    client, server = doc["hosts"]
    assert client["offset_ns"] == 0 and client["sync"] is None
    bound = server["offset_error_ns"]
    assert 0 < bound <= 100_000, server
    assert abs(server["offset_ns"] - SHIFT_NS) <= bound, server
    assert server["sync"]["forward"] > 0 and server["sync"]["backward"] > 0

    # Every crossing on the common clock: no packet arrives before it was sent.
    assert len(doc["crossings"]) >= 10
    assert all(c["delay_ns"] >= 0 for c in doc["crossings"]), doc["one_way_delay"]
    assert {(c["sender"], c["receiver"]) for c in doc["crossings"]} == {(0, 1), (1, 0)}

    # Links on both sides, each host's syscalls with its own capture.
    client_links = {lk["kind"] for lk in client["report"]["links"]}
    server_links = {lk["kind"] for lk in server["report"]["links"]}
    assert {"connect-syn", "connect-established", "write-data", "read-data", "close-fin"} <= client_links
    assert {"accept-ack", "write-data", "read-data", "eof-fin"} <= server_links
    for host in (client, server):
        report = host["report"]
        linked = {lk["syscall"] for lk in report["links"]}
        for sc in report["syscalls"]:
            ours = sc["name"] == "accept4" or ((sc["fdinfo"] or {}).get("remote") or "").endswith(f":{PORT}")
            if sc["name"] in ("connect", "accept4", "sendto", "recvfrom") and ours:
                assert sc["id"] in linked, (host["name"], sc)
        # A host's links name only its own syscalls; its TCP analysis sees its own capture once.
        ids = {sc["id"] for sc in report["syscalls"]}
        assert all(lk["syscall"] in ids for lk in report["links"])
        # (The client may have been refused while the server started: those carry no data.)
        assert sum(c["bytes"]["client_to_server"] > 0 for c in report["connections"]) == CONNECTIONS
        assert not report["analysis"], report["analysis"]
    server_ids = {sc["id"] for sc in server["report"]["syscalls"]}
    client_ids = {sc["id"] for sc in client["report"]["syscalls"]}
    assert not server_ids & client_ids

    text = wirecorr("analyze", str(merged)).stdout
    assert "merged recording of 2 hosts" in text, text[:600]
    assert re.search(r"clock moved by -2(49\.99|50\.00)\d+ ms onto vm#1's \(± \d+\.\d µs", text), text[:600]


def test_merge_without_shift_finds_no_offset(two_hosts: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_hosts
    merged = tmp_path / "merged.pcapng"
    done = wirecorr("merge", str(a), str(b), "-o", str(merged))
    assert done.returncode == 0, done.stderr
    header = json.loads(wirecorr("analyze", "--json", str(merged)).stdout)["hosts"][1]
    assert abs(header["offset_ns"]) <= header["offset_error_ns"] <= 100_000


def test_merge_refuses_the_same_or_an_unrelated_recording(two_hosts: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = two_hosts
    shifted = tmp_path / "client-shifted.pcapng"
    assert wirecorr("edit", "-t", "3", str(a), "-o", str(shifted)).returncode == 0
    unrelated = ROOT / "captures" / "lab-echo.pcapng"
    for other, words in ((a, "same file"), (shifted, "same recording"), (unrelated, "no connection seen by both")):
        out = tmp_path / "x.pcapng"
        done = wirecorr("merge", str(a), str(other), "-o", str(out))
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in done.stderr, done.stderr
        assert not out.exists()


def test_edit_time_shift_round_trip(tmp_path: Path) -> None:
    src = ROOT / "captures" / "lab-echo.pcapng"
    there, back = tmp_path / "there.pcapng", tmp_path / "back.pcapng"
    assert wirecorr("edit", "--time-shift", "12.345678901", str(src), "-o", str(there)).returncode == 0
    assert wirecorr("edit", "--time-shift", "-12.345678901", str(there), "-o", str(back)).returncode == 0
    docs = [json.loads(wirecorr("analyze", "--json", str(p)).stdout) for p in (src, there, back)]
    for doc in docs:
        doc.pop("sources")
    assert docs[0] == docs[2]
    assert docs[1]["first_ts_ns"] == docs[0]["first_ts_ns"] + 12_345_678_901
    assert docs[1]["syscalls"][0]["enter_ns"] == docs[0]["syscalls"][0]["enter_ns"] + 12_345_678_901
    assert docs[1]["links"] == docs[0]["links"]


def test_edit_refuses_a_symlink_and_its_own_input(tmp_path: Path) -> None:
    src = ROOT / "captures" / "lab-echo.pcapng"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "out.pcapng"
    link.symlink_to(victim)
    done = wirecorr("edit", "-t", "1", str(src), "-o", str(link))
    assert done.returncode == 2 and "symbolic link" in done.stderr
    assert victim.read_text() == "keep"
    copy = tmp_path / "copy.pcapng"
    copy.write_bytes(src.read_bytes())
    done = wirecorr("edit", "-t", "1", str(copy), "-o", str(copy))
    assert done.returncode == 2 and "is the input" in done.stderr
    assert copy.read_bytes() == src.read_bytes()


LOOP = """
import socket, sys, threading, time
srv = socket.socket()
srv.bind(("127.0.0.1", 9320))
srv.listen(8)
def serve():
    while True:
        c, _ = srv.accept()
        c.sendall(c.recv(100))
        c.close()
threading.Thread(target=serve, daemon=True).start()
print("ready", flush=True)
for i in range(600):
    c = socket.create_connection(("127.0.0.1", 9320))
    c.sendall(b"ping %d" % i)
    c.recv(100)
    c.close()
    time.sleep(0.05)
"""


def test_record_attaches_to_a_process_in_its_own_namespace(tmp_path: Path) -> None:
    _need_namespaces()
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    out = tmp_path / "attached.pcapng"
    with private_network() as net:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", net.a, sys.executable, "-I", str(script)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            recorder = subprocess.Popen(
                [sys.executable, "-m", "wirecorr", "record", "-p", str(proc.pid), "-o", str(out)],
                cwd=ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert recorder.stderr is not None
            started = recorder.stderr.readline()  # tcpdump listens: tracing follows at once
            time.sleep(1.5)
            inode = os.stat(f"/run/netns/{net.a}").st_ino
            recorder.send_signal(signal.SIGINT)
            _, err = recorder.communicate(timeout=30)
            err = started + err
        finally:
            proc.kill()
            proc.wait()
    assert "capturing in the network namespace" in err, err
    done = wirecorr("analyze", "--json", str(out))
    assert done.returncode == 0, (err, done.stderr)
    doc = json.loads(done.stdout)
    conns = [c for c in doc["connections"] if c["server"] == "127.0.0.1:9320"]
    assert len(conns) >= 5, err
    kinds = {lk["kind"] for lk in doc["links"]}
    assert {"connect-syn", "accept-ack", "write-data", "read-data"} <= kinds
    netns = read_recording(str(out)).meta["netns"]
    assert netns["inode"] == inode and netns["pid"] == proc.pid


def test_edit_shifts_a_plain_pcap(tmp_path: Path) -> None:
    src = ROOT / "captures" / "stray-rst-after-close.pcap"
    out = tmp_path / "shifted.pcapng"
    assert wirecorr("edit", "-t", "-1.5", str(src), "-o", str(out)).returncode == 0
    before, after = (json.loads(wirecorr("analyze", "--json", str(p)).stdout) for p in (src, out))
    assert after["first_ts_ns"] == before["first_ts_ns"] - 1_500_000_000
    assert len(after["connections"]) == len(before["connections"]) > 0
    assert after["analysis"] == before["analysis"]


def test_clock_fit_recovers_a_drift_within_its_bound() -> None:
    """The estimator alone, on crossings built from a known clock: θ(t) = 0.5 s + 40 ppm·t
    over 60 s, one-way delays of 20 µs and more (a unit test of the arithmetic; the
    namespace tests above give it real packets)."""
    import random

    from wirecorr.recording.merge import MergeInput, _Pkt, fit_clock

    rng = random.Random(7)

    def theta(t: int) -> float:
        return 500_000_000 + 40e-6 * t

    def pkt(ts: int) -> _Pkt:
        return _Pkt(ts, 1, None, 0, 0, b"", None, None, None, None)

    a, b = MergeInput("a", {}), MergeInput("b", {})
    pairs = []
    base = 1_700_000_000_000_000_000
    for i in range(600):
        t = i * 100_000_000 + rng.randrange(1_000_000)
        delay = 20_000 + int(rng.expovariate(1 / 200_000))
        forward = i % 2 == 0
        # tB - tA = θ + d for a→b, θ - d for b→a (θ evaluated on a's clock).
        ta = t if forward else t + delay
        tb = round(ta + theta(ta) + delay) if forward else round(ta + theta(ta) - delay)
        a.packets.append(pkt(base + ta))
        b.packets.append(pkt(base + tb))
        pairs.append((i, i, forward))
    fit = fit_clock(a, b, pairs)
    assert fit.drift_ppb and abs(fit.drift_ppb - 40_000) < 2_000, fit
    for t in (0, 30_000_000_000, 59_900_000_000):
        assert abs(fit.at(base + t) - theta(t)) <= fit.error_ns, (t, fit)
    assert fit.error_ns < 100_000, fit


@pytest.mark.parametrize(
    ("cgroup", "container"),
    [
        ("0::/system.slice/docker-" + "3f2a" * 16 + ".scope\n", "docker 3f2a3f2a3f2a"),
        ("12:pids:/docker/" + "ab" * 32 + "\n1:name=systemd:/docker/" + "ab" * 32 + "\n", "docker abababababab"),
        ("0::/machine.slice/libpod-" + "0c" * 32 + ".scope/container\n", "libpod 0c0c0c0c0c0c"),
        (
            "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-" + "9e" * 32 + ".scope\n",
            "cri-containerd 9e9e9e9e9e9e",
        ),
        ("0::/lxc.payload.web1/init.scope\n", "lxc web1"),
        ("0::/user.slice/user-0.slice/session-3.scope\n", None),
    ],
)
def test_container_named_from_cgroup(cgroup: str, container: str | None) -> None:
    from wirecorr.sources.netns import container_in

    assert container_in(cgroup) == container


def test_edit_and_merge_bad_input_is_one_line_and_leaves_no_output(tmp_path: Path) -> None:
    src = str(ROOT / "captures" / "lab-echo.pcapng")
    out = tmp_path / "out.pcapng"
    cases = [
        (("edit", "-t", "abc", src, "-o", str(out)), "--time-shift wants seconds"),
        (("edit", "-t", "-99999999999", src, "-o", str(out)), "leaves the range pcapng holds"),
        (("merge", str(tmp_path / "missing.pcapng"), src, "-o", str(out)), "no such file"),
        (("merge", src, "-o", str(out)), "at least two recordings"),
    ]
    for argv, words in cases:
        done = wirecorr(*argv)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], (argv, done.stderr)
        assert not out.exists(), argv


SLOW_SERVER = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
c, _ = s.accept()
time.sleep(1.5)  # the window is shut meanwhile: the client probes it, the server answers
while c.recv(65536):
    pass
c.close()
"""

BULK_CLIENT = """
import socket, sys, time
for _ in range(200):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
        break
    except ConnectionRefusedError:
        time.sleep(0.02)
c.sendall(b"z" * 60000)
c.close()
"""


def _wait_listening(netns: str, port: int, owner: subprocess.Popen[str]) -> None:
    """Until a socket listens on `port` in `netns` (at most 20 s, or until `owner` ends)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and owner.poll() is None:
        done = subprocess.run(
            ["ip", "netns", "exec", netns, "ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True
        )
        if done.stdout.strip():
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on port {port} in {netns}")


def test_merge_matches_repeated_pure_acks_by_ip_id(tmp_path: Path) -> None:
    """Without TCP timestamps, the zero-window probes of a stalled connection and the
    server's answers are pure ACKs with identical headers; only the IPv4 ID tells them
    apart. Every packet both hosts captured must be matched, each to its own copy."""
    _need_namespaces()
    (tmp_path / "server.py").write_text(SLOW_SERVER)
    (tmp_path / "client.py").write_text(BULK_CLIENT)
    a, b = tmp_path / "client.pcapng", tmp_path / "server.pcapng"
    port = PORT + 1
    with private_network(pair=True, sysctls={"net.ipv4.tcp_timestamps": "0"}) as net:
        assert net.b is not None
        common = ["record", "--no-annotate", "-f", f"tcp port {port}"]
        server_argv = [sys.executable, "-I", str(tmp_path / "server.py"), net.addr_b, str(port)]
        server = subprocess.Popen(
            [sys.executable, "-m", "wirecorr", *common, "--netns", net.b, "-i", "b0", "-o", str(b), "--", *server_argv],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # Not before the server listens (its capture runs by then): a connect refused
            # earlier is a SYN and an RST only the client's capture holds.
            _wait_listening(net.b, port, server)
            client = wirecorr(
                *common, "--netns", net.a, "-i", "a0", "-o", str(a), "--",
                sys.executable, "-I", str(tmp_path / "client.py"), net.addr_b, str(port),
            )  # fmt: skip
            assert client.returncode == 0, client.stderr
            _, err = server.communicate(timeout=30)
            assert server.returncode == 0, err
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    merged = tmp_path / "merged.pcapng"
    done = wirecorr("merge", str(a), str(b), "-o", str(merged))
    assert done.returncode == 0, done.stderr
    doc = json.loads(wirecorr("analyze", "--json", "--packets", str(merged)).stdout)
    client_report, server_report = (h["report"] for h in doc["hosts"])
    # Linux probes a zero window with an empty segment one below the window (Wireshark: keep-alive).
    probes = [p for p in client_report["packets"] if "keep_alive" in (p.get("analysis") or [])]
    assert len(probes) >= 2, client_report["analysis"]
    sent_by_client = {c["sent"] for c in doc["crossings"] if c["sender"] == 0}
    assert {p["index"] for p in probes} <= sent_by_client
    # Each capture holds every packet of the one connection (a veth loses none): all matched.
    counts = [sum(c["packets"]["client_to_server"] + c["packets"]["server_to_client"] for c in r["connections"])
              for r in (client_report, server_report)]  # fmt: skip
    assert counts[0] == counts[1] == len(doc["crossings"]), (counts, len(doc["crossings"]))
    assert all(c["delay_ns"] >= 0 for c in doc["crossings"])


NS_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(c.recv(100))
    c.close()
"""

NS_CLIENT = """
import socket, sys, time
print("ready", flush=True)
for i in range(600):
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    c.sendall(b"ping %d" % i)
    c.recv(100)
    c.close()
    time.sleep(0.05)
"""


@contextmanager
def ns_server_and_client(
    tmp_path: Path, port: int
) -> Iterator[tuple[LabNet, subprocess.Popen[str], subprocess.Popen[str]]]:
    """NS_SERVER in one namespace of a veth pair and NS_CLIENT in the other, both ready:
    (the network, server, client); both killed when the block ends."""
    (tmp_path / "server.py").write_text(NS_SERVER)
    (tmp_path / "client.py").write_text(NS_CLIENT)
    procs: list[subprocess.Popen[str]] = []
    with private_network(pair=True) as net:
        assert net.b is not None
        try:
            for ns, script in ((net.b, "server.py"), (net.a, "client.py")):
                argv = ["ip", "netns", "exec", ns, sys.executable, "-I", str(tmp_path / script), net.addr_b, str(port)]
                procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
                assert procs[-1].stdout is not None and procs[-1].stdout.readline().strip() == "ready"
            yield net, procs[0], procs[1]
        finally:
            for p in procs:
                p.kill()
                p.wait()


def test_record_attaches_to_processes_in_two_namespaces_one_capture_each(tmp_path: Path) -> None:
    """`record -p CLIENT -p SERVER` across two namespaces: a tcpdump inside each, the two
    recordings merged into one (a host per namespace, one clock), links on both sides."""
    _need_namespaces()
    out = tmp_path / "two-ns.pcapng"
    port = PORT + 2
    with ns_server_and_client(tmp_path, port) as (net, server, client):
        pids = ["-p", str(client.pid), "-p", str(server.pid)]
        recorder = subprocess.Popen(
            [sys.executable, "-m", "wirecorr", "record", "-f", f"tcp port {port}", "-o", str(out), *pids],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert recorder.stderr is not None
        started = [recorder.stderr.readline(), recorder.stderr.readline()]
        time.sleep(1.5)
        inodes = [os.stat(f"/run/netns/{ns}").st_ino for ns in (net.a, net.b)]
        recorder.send_signal(signal.SIGINT)
        _, err = recorder.communicate(timeout=60)
        err = "".join(started) + err
    assert recorder.returncode == 130, err
    assert err.count("capturing in the network namespace") == 2, err
    assert "2 network namespaces, one capture each, merged" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.py", "server.py", "two-ns.pcapng"]

    doc = json.loads(wirecorr("analyze", "--json", str(out)).stdout)
    assert doc["merged"] is True, doc
    hosts = doc["hosts"]
    assert [h["netns"]["inode"] for h in hosts] == inodes
    assert [h["name"] for h in hosts] == [net.a, net.b]
    assert [h["pids"] for h in hosts] == [[client.pid], [server.pid]]
    assert hosts[1]["sync"]["model"] == "same clock" and hosts[1]["offset_ns"] == 0
    convs = doc["conversations"]
    reports = [h["report"] for h in hosts]
    # Which side is the client is a guess for a connection the captures began after its SYN
    # (the attach lands between the client's connections, which keep coming).
    handshaken = [
        c
        for c in convs
        if all(
            reports[c[k]["host"]]["connections"][c[k]["connection"]]["handshake"]["client"] is not None
            for k in ("client", "server")
        )
    ]
    assert len(handshaken) >= 5 and all((c["client"]["host"], c["server"]["host"]) == (0, 1) for c in handshaken)
    assert all(c["delay_ns"] >= 0 for c in doc["crossings"])
    client_kinds = {lk["kind"] for lk in hosts[0]["report"]["links"]}
    server_kinds = {lk["kind"] for lk in hosts[1]["report"]["links"]}
    assert {"connect-syn", "write-data", "read-data"} <= client_kinds, client_kinds
    assert {"accept-ack", "read-data", "write-data"} <= server_kinds, server_kinds
    text = wirecorr("analyze", str(out)).stdout
    assert f"captured in the network namespace net:[{inodes[0]}] ({net.a})" in text, text[:800]


SYNPROXY = """
table ip wctest_syn {
    chain prerouting_syn {
        type filter hook prerouting priority raw; policy accept;
        iifname "ra" tcp dport PORT tcp flags syn notrack
    }
    chain forward_syn {
        type filter hook forward priority filter; policy accept;
        iifname "ra" tcp dport PORT ct state invalid,untracked synproxy mss 1460 wscale 7 timestamp sack-perm
        ct state invalid drop
    }
}
"""

ONE_SHOT_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
c, _ = s.accept()
got = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    got += len(d)
c.sendall(b"got %d\\n" % got)
c.close()
"""

ONE_SHOT_CLIENT = """
import socket, sys, time
for _ in range(200):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
        break
    except OSError:
        time.sleep(0.02)
for i in range(6):
    c.sendall(b"%d" % i * 700)
    time.sleep(0.005)
c.shutdown(socket.SHUT_WR)
assert c.recv(100).startswith(b"got ")
c.close()
"""


def test_merge_matches_across_a_middlebox_that_rewrites_sequence_numbers(tmp_path: Path) -> None:
    """A SYN proxy (nftables `synproxy`) in a router between client and server answers the
    client's SYN itself, then opens its own connection to the server, whose ISN differs:
    from there on it rewrites the server's sequence numbers (and the client's ACKs, and the
    TCP timestamps) as NAT rewrites addresses. Only IP ID, length and payload still match."""
    _need_namespaces()
    from wirecorr.labs.netns import PREFIX, _add, _ip, entered, remove, set_sysctl

    (tmp_path / "server.py").write_text(ONE_SHOT_SERVER)
    (tmp_path / "client.py").write_text(ONE_SHOT_CLIENT)
    port = PORT + 3
    net = LabNet(a=f"{PREFIX}{os.urandom(4).hex()}")
    client_ns, router, server_ns = net.a, f"{net.a}-r", f"{net.a}-s"
    a, b = tmp_path / "client.pcapng", tmp_path / "server.pcapng"
    try:
        for ns in (client_ns, router, server_ns):
            _add(net, ns)
        _ip("link", "add", "a0", "netns", client_ns, "type", "veth", "peer", "name", "ra", "netns", router)
        _ip("link", "add", "b0", "netns", server_ns, "type", "veth", "peer", "name", "rb", "netns", router)
        for ns, dev, addr, gw in (
            (client_ns, "a0", "10.83.1.1", "10.83.1.254"),
            (server_ns, "b0", "10.84.1.2", "10.84.1.254"),
        ):
            with entered(ns):
                _ip("link", "set", "lo", "up")
                _ip("addr", "add", f"{addr}/24", "dev", dev)
                _ip("link", "set", dev, "gso_max_segs", "1", "up")
                _ip("route", "add", "default", "via", gw)
        with entered(router):
            for dev, addr in (("ra", "10.83.1.254/24"), ("rb", "10.84.1.254/24")):
                _ip("addr", "add", addr, "dev", dev)
                _ip("link", "set", dev, "gso_max_segs", "1", "up")
            set_sysctl("net.ipv4.ip_forward", "1")
            set_sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")
        _ip("nft", "-f", "-", ns=router, stdin=SYNPROXY.replace("PORT", str(port)))
        common = ["record", "--no-annotate", "-f", f"tcp port {port}"]
        server_argv = [sys.executable, "-I", str(tmp_path / "server.py"), "10.84.1.2", str(port)]
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wirecorr",
                *common,
                "--netns",
                server_ns,
                "-i",
                "b0",
                "-o",
                str(b),
                "--",
                *server_argv,
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            client_argv = [sys.executable, "-I", str(tmp_path / "client.py"), "10.84.1.2", str(port)]
            client = wirecorr(*common, "--netns", client_ns, "-i", "a0", "-o", str(a), "--", *client_argv)
            assert client.returncode == 0, client.stderr
            _, err = server.communicate(timeout=30)
            assert server.returncode == 0, err
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    finally:
        remove(net)
    merged = tmp_path / "merged.pcapng"
    done = wirecorr("merge", str(a), str(b), "-o", str(merged))
    assert done.returncode == 0, done.stderr
    doc = json.loads(wirecorr("analyze", "--json", "--packets", str(merged)).stdout)
    client_report, server_report = (h["report"] for h in doc["hosts"])
    # (The client may have been answered by the proxy and reset before the server listened.)
    (cv,) = [cv for cv in doc["conversations"] if cv["crossings"] > 2]
    assert cv["one_way_delay"]["client_to_server"] and cv["one_way_delay"]["server_to_client"], cv
    # Every data segment both captured is one crossing, each way; none arrives before it left.
    data = {p["index"] for p in client_report["packets"] if p["len"] > 0}
    crossed = {c["sent"] for c in doc["crossings"]} | {c["received"] for c in doc["crossings"]}
    assert data and data <= crossed, (data, crossed)
    # The server's pure ACKs too (its own copies: on the server's side of the proxy).
    acks = {p["index"] for p in server_report["packets"] if p["dir"] == "s2c" and p["len"] == 0 and p["flags"] == "."}
    assert len(acks & crossed) >= 4, (acks, crossed)
    assert all(c["delay_ns"] >= 0 for c in doc["crossings"]), doc["crossings"]
    host = doc["hosts"][1]
    assert abs(host["offset_ns"]) <= host["offset_error_ns"] <= 1_000_000, host


def test_live_attaches_inside_the_target_namespace_and_says_which(tmp_path: Path) -> None:
    """`live -p PID` shares record -p's session: tcpdump inside the target's namespace (the
    traffic on its own loopback, which the host's interfaces never carry), and the status
    bar names that namespace beside the pids."""
    _need_namespaces()
    from wirecorr.cli import build_parser
    from wirecorr.commands.live import LiveRecording
    from wirecorr.commands.record import options
    from wirecorr.engine.linking import annotate

    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    out = tmp_path / "live.pcapng"
    with private_network() as net:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", net.a, sys.executable, "-I", str(script)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            args = build_parser().parse_args(["live", "-p", str(proc.pid), "-o", str(out)])
            live = LiveRecording(options(args, "live"), annotate)
            live.start()
            try:
                deadline = time.monotonic() + 15
                session = live.index.session
                while time.monotonic() < deadline and not any(
                    lk.kind == "write-data" for lk in session.correlator.links
                ):
                    live.feed.step(0.05)
                    time.sleep(0.05)
                status = live.feed.status()
            finally:
                assert live.join() == 0
            inode = os.stat(f"/run/netns/{net.a}").st_ino
        finally:
            proc.kill()
            proc.wait()
    assert f"pids {proc.pid} in netns {net.a}" in status, status
    assert any(lk.kind == "write-data" for lk in session.correlator.links)
    assert read_recording(str(out)).meta["netns"]["inode"] == inode
    doc = json.loads(wirecorr("analyze", "--json", str(out)).stdout)
    assert any(c["server"] == "127.0.0.1:9320" for c in doc["connections"])


def test_merged_timeline_of_a_fresh_merge_shows_each_crossing_once(
    two_hosts: tuple[Path, Path], tmp_path: Path
) -> None:
    """A merge writes its crossings, with each pair's sending host, ahead of the packets:
    the TUI's timeline knows them before the first row and shows each crossing once."""
    from test_hosts_tui import assert_each_crossing_one_row

    from wirecorr.recording import format as fmt
    from wirecorr.sources.capture_file import CaptureReader

    a, b = two_hosts
    merged = tmp_path / "merged.pcapng"
    assert wirecorr("merge", str(a), str(b), "-o", str(merged)).returncode == 0
    seen: list[str] = []
    reader = CaptureReader(str(merged), on_custom=lambda blk: seen.append(fmt.decode_record(blk.data)[0]))
    next(iter(reader.records()))
    reader.close()
    assert seen == [fmt.TAG_HEADER, "crossing"], seen  # read before the first packet
    assert_each_crossing_one_row(str(merged))


HTTP_SERVER = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
c, _ = s.accept()
buf = b""
while True:
    while b"\\r\\n\\r\\n" not in buf:
        d = c.recv(4096)
        if not d:
            c.close()
            sys.exit(0)
        buf += d
    _, buf = buf.split(b"\\r\\n\\r\\n", 1)
    time.sleep(0.02)  # the server's processing
    c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\n\\r\\nhello")
"""

HTTP_CLIENT = """
import socket, sys, time
for _ in range(200):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
        break
    except ConnectionRefusedError:
        time.sleep(0.02)
for i in range(3):
    c.sendall(b"GET /item/%d HTTP/1.1\\r\\nHost: server\\r\\n\\r\\n" % i)
    got = b""
    while not got.endswith(b"hello"):
        got += c.recv(4096)
    time.sleep(0.005)
c.close()
"""


def record_two_hosts(tmp: Path, server_src: str, client_src: str, port: int, *args: str) -> tuple[Path, Path]:
    """(client's recording, server's recording): each program (given the server's address,
    `port` and `args`) recorded by its own `wirecorr record --netns` in one of two
    namespaces joined by a veth."""
    (tmp / "server.py").write_text(server_src)
    (tmp / "client.py").write_text(client_src)
    a, b = tmp / "client.pcapng", tmp / "server.pcapng"
    with private_network(pair=True) as net:
        assert net.b is not None
        common = [sys.executable, "-m", "wirecorr", "record", "-f", f"tcp port {port}"]
        server = subprocess.Popen(
            [*common, "--netns", net.b, "-i", "b0", "-o", str(b), "--",
             sys.executable, "-I", str(tmp / "server.py"), net.addr_b, str(port), *args],
            cwd=ROOT, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            client = subprocess.run(
                [*common, "--netns", net.a, "-i", "a0", "-o", str(a), "--",
                 sys.executable, "-I", str(tmp / "client.py"), net.addr_b, str(port), *args],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert client.returncode == 0, client.stderr
            _, err = server.communicate(timeout=30)
            assert server.returncode == 0, err
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    return a, b


def test_merged_requests_split_with_both_sides_measured(tmp_path: Path) -> None:
    """HTTP across two namespaces, the server's clock shifted: each request's split has
    the client's send, the way across, the server's delivery, processing and send, the
    way back and the client's delivery, each measured on the host where it happens."""
    from wirecorr.engine.requests.split import POINTS

    _need_namespaces()
    a, b = record_two_hosts(tmp_path, HTTP_SERVER, HTTP_CLIENT, PORT + 4)
    shifted = tmp_path / "server-shifted.pcapng"
    assert wirecorr("edit", "-t", "0.250", str(b), "-o", str(shifted)).returncode == 0
    merged = tmp_path / "merged.pcapng"
    done = wirecorr("merge", str(a), str(shifted), "-o", str(merged))
    assert done.returncode == 0, done.stderr
    doc = json.loads(wirecorr("analyze", "--json", str(merged)).stdout)
    client_report, server_report = (h["report"] for h in doc["hosts"])
    own_client = {r["id"]: r for r in client_report["requests"]}
    own_server = {r["id"]: r for r in server_report["requests"]}
    reqs = doc["requests"]
    assert [r["summary"] for r in reqs] == [f"GET /item/{i} → 200" for i in range(3)], reqs
    bound = doc["hosts"][1]["offset_error_ns"]
    for r in reqs:
        assert r["traced"] == ["client", "server"] and (r["client_host"], r["server_host"]) == (0, 1)
        assert r["clock_error_ns"] == bound
        parts = dict((p["part"], p["ns"]) for p in r["split"])
        assert list(parts) == ["send", "request wire", "server read", "server processing", "server send",
                               "response wire", "delivery"]  # fmt: skip
        assert sum(parts.values()) == r["total_ns"]
        # No point came before the one it follows (no negative one-way delay on the merged clock).
        times = [r["points"][name] for name in POINTS]
        assert times == sorted(times), r["points"]
        # Each side's part as that host alone measures it; the server's on its corrected clock.
        client, server = own_client[r["client_request"]], own_server[r["server_request"]]
        client_parts = dict((p["part"], p["ns"]) for p in client["split"])
        assert parts["send"] == client_parts["send"] and parts["delivery"] == client_parts["delivery"]
        assert r["total_ns"] == client["total_ns"]
        assert client_parts["peer + network"] == sum(
            parts[p] for p in ("request wire", "server read", "server processing", "server send", "response wire")
        )
        server_points = server["points"]
        assert parts["server processing"] == server_points["server.write"] - server_points["server.read"]
        assert parts["server processing"] >= 20_000_000  # the server's sleep
        # A one-segment request: its way across is that packet's one-way delay.
        assert len(r["request"]["packets"]) == 1
        way = r["one_way_delay"]["request"]
        assert way is not None and parts["request wire"] == way["min_ns"] == way["max_ns"] >= 0
    text = wirecorr("analyze", str(merged)).stdout
    assert "requests with both sides measured (3)" in text, text[:1500]
    assert "server processing 2" in text and "one-way delay: request " in text, text[:1500]


ONE_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
c, _ = s.accept()
while d := c.recv(4096):
    c.sendall(d)
c.close()
"""


def test_record_follows_a_child_into_another_namespace(tmp_path: Path) -> None:
    """`record --netns A -- sh -c 'server & ip netns exec B client'`: the client runs in B,
    whose packets A's capture never sees. The recorder notices the namespace at the
    client's exec, captures in B as well, and merges: a host per namespace, each side's
    calls linked to its own capture, the connection joined across them."""
    _need_namespaces()
    (tmp_path / "server.py").write_text(ONE_SERVER)
    (tmp_path / "client.py").write_text(CLIENT)
    out = tmp_path / "followed.pcapng"
    port = PORT + 5
    with private_network(pair=True) as net:
        assert net.b is not None
        py = f"{sys.executable} -I"
        script = (
            f"{py} {tmp_path / 'server.py'} {net.addr_a} {port} & "
            f"ip netns exec {net.b} {py} {tmp_path / 'client.py'} {net.addr_a} {port} 1; wait"
        )
        done = wirecorr("record", "--netns", net.a, "-f", f"tcp port {port}", "-o", str(out), "--", "sh", "-c", script)
        inodes = [os.stat(f"/run/netns/{ns}").st_ino for ns in (net.a, net.b)]
    assert done.returncode == 0, done.stderr
    assert f"is in the network namespace net:[{inodes[1]}] ({net.b}): capturing there too" in done.stderr
    assert "2 network namespaces, one capture each, merged" in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.py", "followed.pcapng", "server.py"]

    doc = json.loads(wirecorr("analyze", "--json", str(out)).stdout)
    assert doc["merged"] is True
    server_host, client_host = doc["hosts"]
    assert [h["name"] for h in doc["hosts"]] == [net.a, net.b]
    assert client_host["netns"]["inode"] == inodes[1] and client_host["sync"]["model"] == "same clock"
    (cv,) = [c for c in doc["conversations"] if c["crossings"] > 3]
    assert (cv["client"]["host"], cv["server"]["host"]) == (1, 0)
    assert all(c["delay_ns"] >= 0 for c in doc["crossings"])
    client_kinds = {lk["kind"] for lk in client_host["report"]["links"]}
    server_kinds = {lk["kind"] for lk in server_host["report"]["links"]}
    assert {"connect-syn", "write-data", "read-data", "close-fin"} <= client_kinds, client_kinds
    assert {"accept-ack", "read-data", "write-data"} <= server_kinds, server_kinds
    # The client's calls are on B's host (its `ip` before the exec on A's), every socket call linked.
    report = client_host["report"]
    linked = {lk["syscall"] for lk in report["links"]}
    calls = [sc for sc in report["syscalls"] if sc["name"] in ("sendto", "recvfrom")]
    assert len(calls) == 8 and all(sc["id"] in linked for sc in calls)
    assert not {sc["name"] for sc in server_host["report"]["syscalls"]} & {"connect"}


LOOPBACK_ECHO = """
import socket, sys, threading
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
def serve():
    c, _ = srv.accept()
    while d := c.recv(100):
        c.sendall(d)
threading.Thread(target=serve, daemon=True).start()
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as c:
    for i in range(3):
        c.sendall(b"x%d" % i)
        c.recv(100)
"""


@pytest.mark.parametrize("fork", [False, True], ids=["exec", "fork"])
def test_record_follows_unshare_into_a_new_namespace(tmp_path: Path, fork: bool) -> None:
    """`unshare -n` (the program execs in the namespace it made) and `unshare -n --fork`
    (a child born in it): the loopback of a namespace that has no name is captured too,
    its calls linked there, and nothing of it is left on the session's own namespace."""
    _need_namespaces()
    (tmp_path / "echo.py").write_text(LOOPBACK_ECHO)
    out = tmp_path / "unshared.pcapng"
    port = PORT + 6
    inner = f"ip link set lo up && {sys.executable} -I {tmp_path / 'echo.py'} {port}"
    unshare = ["unshare", "-n", *(["--fork"] if fork else []), "sh", "-c", inner]
    with private_network() as net:
        done = wirecorr("record", "--netns", net.a, "-f", f"tcp port {port}", "-o", str(out), "--", *unshare)
    assert done.returncode == 0, done.stderr
    assert "capturing there too" in done.stderr and "2 network namespaces" in done.stderr, done.stderr
    doc = json.loads(wirecorr("analyze", "--json", str(out)).stdout)
    home, unshared = (h["report"] for h in doc["hosts"])
    assert doc["hosts"][1]["name"].startswith("net:[")
    assert not home["connections"] and not home["links"]
    kinds = {lk["kind"] for lk in unshared["links"]}
    assert {"connect-syn", "accept-ack", "write-data", "read-data"} <= kinds, kinds
    assert [c["server"] for c in unshared["connections"]] == [f"127.0.0.1:{port}"]


def test_live_attaches_to_processes_in_two_namespaces(tmp_path: Path) -> None:
    """`live -p CLIENT -p SERVER` across two namespaces: the session captures in the first
    pid's, follows the second into its own, the feed gets both captures' packets (numbered
    as they come) and names both namespaces; the recording is merged at the end."""
    _need_namespaces()
    from wirecorr.cli import build_parser
    from wirecorr.commands.live import LiveRecording
    from wirecorr.commands.record import options
    from wirecorr.engine.linking import annotate
    from wirecorr.views.tui.rows import is_syscall_ref

    out = tmp_path / "live.pcapng"
    port = PORT + 7
    with ns_server_and_client(tmp_path, port) as (net, server, client):
        args = build_parser().parse_args(["live", "-p", f"{client.pid},{server.pid}", "-o", str(out)])
        live = LiveRecording(options(args, "live"), annotate)
        live.start()
        try:
            session = live.index.session
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not {"connect-syn", "accept-ack"} <= {
                lk.kind for lk in session.correlator.links
            }:
                live.feed.step(0.05)
                time.sleep(0.05)
            status = live.feed.status()
        finally:
            assert live.join() == 0
        while not live.feed.done:
            live.feed.step(0.05)
    assert {"connect-syn", "accept-ack"} <= {lk.kind for lk in session.correlator.links}
    assert f"in netns {net.a}, netns {net.b} ·" in status, status
    doc = json.loads(wirecorr("analyze", "--json", "--packets", str(out)).stdout)
    assert doc["merged"] is True and [h["name"] for h in doc["hosts"]] == [net.a, net.b]
    assert [h["pids"] for h in doc["hosts"]] == [[client.pid], [server.pid]]
    assert any((c["client"]["host"], c["server"]["host"]) == (0, 1) for c in doc["conversations"])
    # The feed had every packet of both captures, each once, numbered as they came.
    total = sum(len(h["report"]["packets"]) for h in doc["hosts"])
    assert sorted(live.feed.packets.recent) == list(range(total)) and total > 2 * len(doc["conversations"])
    # A packet both namespaces captured is one row, fed to the engine once (hosts.SecondCopies):
    # at least as many rows fewer as the merge paired crossings (it pairs only what it can tell
    # apart: repeated pure ACKs may stay unpaired), no crossing a retransmission of itself, and
    # each connection's bytes those of the host that saw the most of it (the two captures
    # begin at different times), not their sum.
    live.index.flush()
    rows = sum(1 for ref in live.index.rows.refs if not is_syscall_ref(ref))
    assert doc["crossings"] and rows <= total - len(doc["crossings"])
    assert not [f.message for f in session.findings if f.kind == "retransmission"]

    by_ends: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for host in doc["hosts"]:
        for c in host["report"]["connections"]:
            octets = (c["bytes"]["client_to_server"], c["bytes"]["server_to_client"])
            by_ends.setdefault((c["client"], c["server"]), []).append(octets)
    conns = [c for c in session.analyzer.connections if c.proto == "tcp"]
    assert conns
    for conn in conns:
        assert (conn.bytes_c2s, conn.bytes_s2c) == max(by_ends[(str(conn.client), str(conn.server))])
