"""Lab `handshake`: Debian's nc -l and nc, one line each way, then FIN.

The seed experiment watched ncat with a kernel tracer to see that the kernel answers a
SYN on its own and `accept4` merely collects a finished connection; here the recording
shows it with timestamps: all three handshake packets precede accept4's return.
"""

from __future__ import annotations

from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence, call
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import ACK, PSH, SYN, Syscall, fmt_ns

PORT = 4444

DRIVER = (
    PRELUDE
    + """
PIPE = subprocess.PIPE
port = sys.argv[1]
server = subprocess.Popen(["nc", "-l", "127.0.0.1", port], stdin=PIPE, stdout=PIPE)
wait_listening(int(port))
# -N: shutdown(SHUT_WR) when stdin ends, so the server sees read() == 0.
client = subprocess.Popen(["nc", "-N", "127.0.0.1", port], stdin=PIPE, stdout=PIPE)
client.stdin.write(b"hello\\n")
client.stdin.flush()
assert server.stdout.readline() == b"hello\\n"
server.stdin.write(b"world\\n")
server.stdin.flush()
assert client.stdout.readline() == b"world\\n"
client.stdin.close()
assert server.stdout.read() == b""
server.stdin.close()
sys.exit(server.wait() or client.wait())
"""
)

_SETUP = ("socket", "setsockopt", "bind", "listen", "accept4", "accept")


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("handshake", DRIVER, PORT)


def _step(sc: Syscall) -> str:
    if sc.name == "setsockopt":
        return f"setsockopt({sc.args.get('optname')})"
    if sc.name == "bind":
        return f"bind({sc.args.get('addr')})"
    return sc.name


def explain(ev: Evidence) -> None:
    accepts = ev.calls("accept4", "accept", ok=True)
    if not ev.expect(accepts, "no accept4() returned a connection"):
        return
    acc = accepts[0]
    setup = [sc for sc in ev.syscalls if sc.pid == acc.pid and sc.name in _SETUP and sc.enter_ns <= acc.enter_ns]
    ev.say(f"nc -l (pid {acc.pid}): " + " → ".join(_step(sc) for sc in setup))
    ev.expect(
        any(sc.args.get("optname") == "SO_REUSEADDR" for sc in setup),
        "the server never set SO_REUSEADDR before bind",
    )
    link = ev.link(acc, "accept-ack")
    flags = ev.table.flags
    hs = link.packets if link else []
    syn = next((i for i in hs if flags[i] & (SYN | ACK) == SYN), None)
    synack = next((i for i in hs if flags[i] & (SYN | ACK) == SYN | ACK), None)
    final = next((i for i in hs if not flags[i] & SYN), None)
    if not ev.expect(syn is not None and synack is not None and final is not None, "accept4 has no full handshake"):
        return
    assert syn is not None and synack is not None and final is not None and acc.exit_ns is not None
    ev.say(
        f"{ev.frame(syn)} SYN, {ev.frame(synack)} SYN-ACK {fmt_ns(ev.ts(synack) - ev.ts(syn))} later, "
        f"{ev.frame(final)} ACK {fmt_ns(ev.ts(final) - ev.ts(synack))} after that"
    )
    wait = ev.fact("accept_after_final_ack_ns", acc.exit_ns - ev.ts(final))
    if ev.expect(wait >= 0, f"accept4 returned before the final ACK ({fmt_ns(-wait)} early)"):
        ev.say(
            f"{call(acc)} returned {fmt_ns(wait)} after the final ACK: the kernel completed the handshake "
            f"alone, accept4 only took the finished connection off the listen queue"
        )
    for connect in ev.calls("connect"):
        syn_link = ev.link(connect, "connect-syn")
        if syn_link and syn_link.packets:
            ev.say(f"client {call(connect)}: its SYN left {fmt_ns(syn_link.delay_ns)} after the call began")
    writes = ev.links("write-data")
    pushed = [lk for lk in writes if lk.packets and all(flags[i] & PSH for i in lk.packets)]
    ev.expect(writes and len(pushed) == len(writes), "not every line went out as its own PSH segment")
    for lk in writes:
        sc = ev.syscall(lk)
        ev.say(
            f"pid {sc.pid} {call(sc)} ({sc.data!r}) → {ev.frames(lk.packets)} [{ev.flags(lk.packets[0])}] "
            f"{fmt_ns(lk.delay_ns)} later"
            if lk.packets
            else f"pid {sc.pid} {call(sc)}: no segment captured"
        )
    for lk in ev.links("read-data"):
        sc = ev.syscall(lk)
        polls = [p for p in ev.calls("poll", "ppoll") if p.pid == sc.pid and (p.exit_ns or 0) <= sc.enter_ns]
        if lk.packets and polls and polls[-1].exit_ns is not None:
            woke = polls[-1].exit_ns - ev.ts(lk.packets[0])
            ev.say(
                f"pid {sc.pid} poll() returned {fmt_ns(woke)} after {ev.frame(lk.packets[0])} arrived; "
                f"{call(sc)} took it"
            )
    eofs = [lk for lk in ev.links("eof-fin") if lk.packets]
    if ev.expect(eofs, "no read() returned 0 for a FIN"):
        for lk in eofs:
            sc = ev.syscall(lk)
            ev.say(
                f"pid {sc.pid} read() = 0 {fmt_ns(lk.delay_ns)} after the peer's FIN ({ev.frame(lk.packets[0])}): EOF"
            )
    quiet = ev.kernel_only()
    ev.say("packets no syscall sent: " + ", ".join(f"{n} {why}" for why, n in sorted(quiet.items())))


LAB = Lab(
    name="handshake",
    summary="nc -l / nc: SYN, SYN-ACK, ACK before accept4 returns; one PSH segment per line; FIN is read() == 0",
    command=command,
    explain=explain,
)
