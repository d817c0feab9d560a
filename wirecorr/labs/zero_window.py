"""Lab `zero-window`: the reader stops reading, the writer keeps writing.

The receive buffer fills, the reader's kernel advertises window 0, and the writer's
kernel probes it on its retransmission timer; the writer's app, non-blocking, sees its
send() come back short and then EAGAIN and waits in poll(). When the reader resumes, a
window update reopens the flow. Small buffers make it happen within a few hundred KiB.
"""

from __future__ import annotations

import itertools

from wirecorr.engine.analysis_flags import AnalysisFlag
from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence, call
from wirecorr.labs.netns import LabNet
from wirecorr.labs.programs import PRELUDE
from wirecorr.model import Syscall, fmt_ns

PORT = 8084
FULL_BYTES, SMALL_BYTES = 256 * 1024, 96 * 1024
PAUSE_S = 1.5

PROGRAM = (
    PRELUDE
    + """
import select
port, total, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by the accepted socket
srv.bind(("127.0.0.1", port))
srv.listen(1)
if os.fork() == 0:
    s, _ = srv.accept()
    assert s.recv(5) == b"hello"
    time.sleep(pause)  # the slow reader: nothing read while the writer fills the window
    got = 0
    while got < total:
        data = s.recv(65536)
        if not data:
            break
        got += len(data)
    s.close()
    os._exit(0 if got == total else 1)
srv.close()
c = socket.create_connection(("127.0.0.1", port))
c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
c.sendall(b"hello")
time.sleep(0.2)  # the reader has read the greeting and stopped reading
c.setblocking(False)
data, sent = b"z" * total, 0
while sent < total:
    try:
        sent += c.send(data[sent:sent + 32768])
    except BlockingIOError:
        select.select([], [c], [], 5)  # wait for room, do not spin
c.close()
os.wait()
"""
)


def _bytes(small: bool) -> int:
    return SMALL_BYTES if small else FULL_BYTES


def command(work: Workdir, net: LabNet) -> list[str]:
    return work.python("zero_window", PROGRAM, PORT, _bytes(work.small), PAUSE_S)


def explain(ev: Evidence) -> None:
    analysis = ev.table.analysis
    zeros = ev.packets(lambda i: bool(analysis[i] & AnalysisFlag.ZERO_WINDOW))
    updates = ev.packets(lambda i: bool(analysis[i] & AnalysisFlag.WINDOW_UPDATE))
    ev.fact("zero_window", len(zeros))
    if not ev.expect(zeros, "the reader never advertised a zero window"):
        return
    ev.say(f"the reader's kernel advertised window 0 in {ev.frames(zeros)}, first at {ev.frame(zeros[0])}")
    reopen = next((i for i in updates if i > zeros[0]), None)
    shut_until = ev.ts(reopen) if reopen is not None else ev.session.last_ns or 0
    # Linux probes a zero window with seq-1 and no data, which Wireshark's rules (and ours)
    # call a keep-alive; a data-carrying probe is a zero-window probe proper.
    probe_bits = AnalysisFlag.ZERO_WINDOW_PROBE | AnalysisFlag.KEEP_ALIVE
    probes = ev.packets(lambda i: bool(analysis[i] & probe_bits) and ev.ts(zeros[0]) < ev.ts(i) < shut_until)
    ev.fact("zero_window_probes", len(probes))
    if ev.expect(probes, "the writer's kernel sent no probe while the window was shut"):
        gaps = [ev.ts(b) - ev.ts(a) for a, b in itertools.pairwise(probes)]
        backoff = len(gaps) >= 2 and all(b > a for a, b in itertools.pairwise(gaps))
        spacing = f", {', '.join(fmt_ns(g) for g in gaps)} apart" if gaps else ""
        spacing += " (the probe timer backs off)" if backoff else ""
        names = sorted({str(ev.label(i)) for i in probes})
        ev.say(
            f"the writer's kernel probed the shut window {len(probes)} time(s) ({ev.frames(probes)}){spacing}, "
            f"no syscall behind them; labelled {', '.join(names)}: Linux probes with seq-1 and no data"
        )
    sends = ev.socket_calls("sendto", "send", "write")
    partial = [
        sc
        for sc in sends
        if isinstance(sc.ret, int)
        and sc.ret >= 0
        and isinstance(sc.args.get("count"), int)
        and sc.ret < int(sc.args["count"])
    ]  # type: ignore[call-overload]
    eagain = [sc for sc in sends if sc.errno == "EAGAIN"]
    ev.fact("partial_sends", len(partial))
    ev.fact("send_eagain", len(eagain))
    if ev.expect(partial or eagain, "the writer's send() was never partial nor EAGAIN"):
        if partial:
            ev.say(
                f"{len(partial)} partial send(s), first {call(partial[0])} of {partial[0].args.get('count')} bytes: "
                f"only what fit in the send buffer was taken"
            )
        if eagain:
            waits = [sc.enter_ns for sc in ev.calls("select", "pselect6", "poll", "ppoll") if sc.pid == eagain[0].pid]
            waited = sum(1 for sc in eagain if any(sc.enter_ns < w < _next_send(sends, sc) for w in waits))
            ev.say(
                f"{len(eagain)} send() = EAGAIN; {waited} of them followed by a wait for room before the next "
                f"send, not a spinning retry"
            )
    reads = [sc for sc in ev.socket_calls("recvfrom", "recv", "read") if sc.ret and sc.enter_ns > ev.ts(zeros[0])]
    if reads and updates:
        after = [i for i in updates if ev.ts(i) >= reads[0].enter_ns]
        if ev.expect(after, "no window update followed the reader's first read"):
            ev.say(
                f"the reader's first {call(reads[0])} came {fmt_ns(reads[0].enter_ns - ev.ts(zeros[0]))} after the "
                f"first zero window; {ev.frame(after[0])} reopened it {fmt_ns(ev.ts(after[0]) - reads[0].enter_ns)} "
                f"later and the transfer finished"
            )
    ev.cite_findings("zero_window")
    ev.expect(ev.findings("zero_window"), "the engine did not diagnose zero_window")


def _next_send(sends: list[Syscall], sc: Syscall) -> int:
    return next((s.enter_ns for s in sends if s.pid == sc.pid and s.enter_ns > sc.enter_ns), 1 << 62)


LAB = Lab(
    name="zero-window",
    summary="a reader that stops reading: window 0, zero-window probes, partial send/EAGAIN, then recovery",
    command=command,
    explain=explain,
    mtu=1500,
    capture_filter=f"tcp port {PORT}",
)
