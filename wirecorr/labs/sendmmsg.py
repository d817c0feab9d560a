"""Lab `sendmmsg`: one sendmmsg() puts k datagrams on the wire, recvmmsg() takes a batch.

The seed's raw-syscall experiment batches messages to save syscalls; what stays the same
on the wire is the datagram boundary: one call, k separate datagrams with their own sizes.
C, because Python has no sendmmsg.
"""

from __future__ import annotations

from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence, call
from wirecorr.labs.netns import LabNet
from wirecorr.model import fmt_ns

PORT = 6200

SOURCE = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXMSG 16

int main(int argc, char **argv) {
    int port = atoi(argv[1]), k = atoi(argv[2]);
    if (k < 1 || k > MAXMSG) return 1;
    alarm(30);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    int rx = socket(AF_INET, SOCK_DGRAM, 0);
    if (bind(rx, (struct sockaddr *)&addr, sizeof addr) < 0) return 2;
    pid_t pid = fork();
    if (pid == 0) {
        int tx = socket(AF_INET, SOCK_DGRAM, 0);
        static char buf[MAXMSG][64];
        struct iovec iov[MAXMSG];
        struct mmsghdr msgs[MAXMSG];
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < k; i++) {
            memset(buf[i], 'a' + i, sizeof buf[i]);
            iov[i].iov_base = buf[i];
            iov[i].iov_len = 10 + 3 * i;  /* distinct sizes: each datagram is recognisable */
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &addr;
            msgs[i].msg_hdr.msg_namelen = sizeof addr;
        }
        _exit(sendmmsg(tx, msgs, k, 0) == k ? 0 : 3);
    }
    int status;
    waitpid(pid, &status, 0);  /* all k queued before the receiver asks: one batch */
    static char rbuf[MAXMSG][256];
    struct iovec riov[MAXMSG];
    struct mmsghdr rmsgs[MAXMSG];
    memset(rmsgs, 0, sizeof rmsgs);
    for (int i = 0; i < k; i++) {
        riov[i].iov_base = rbuf[i];
        riov[i].iov_len = sizeof rbuf[i];
        rmsgs[i].msg_hdr.msg_iov = &riov[i];
        rmsgs[i].msg_hdr.msg_iovlen = 1;
    }
    int got = 0;
    for (int tries = 0; got < k && tries < k; tries++) {
        int n = recvmmsg(rx, rmsgs + got, k - got, MSG_DONTWAIT, NULL);
        if (n < 0) return 4;
        got += n;
    }
    return got == k && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 5;
}
"""


def command(work: Workdir, net: LabNet) -> list[str]:
    return [work.cc("mmsg", SOURCE), str(PORT), "4" if work.small else "8"]


def explain(ev: Evidence) -> None:
    sends = [sc for sc in ev.calls("sendmmsg", ok=True) if sc.ret]
    if not ev.expect(sends, "no sendmmsg() sent anything"):
        return
    sc = sends[0]
    link = ev.link(sc, "send-datagram")
    k = sc.ret or 0
    ev.fact("batch", k)
    sizes = [ev.table.seglen[i] for i in link.packets] if link else []
    if ev.expect(
        link and len(link.packets) == k and sizes == (sc.msg_lens or sizes),
        f"the {k} messages of sendmmsg were not {k} datagrams on the wire",
    ):
        assert link is not None
        span = ev.ts(link.packets[-1]) - ev.ts(link.packets[0])
        ev.say(
            f"one {call(sc)} ↔ {k} datagrams ({ev.frames(link.packets)}) of {sizes} bytes, "
            f"the first {fmt_ns(link.delay_ns)} after the call began, all within {fmt_ns(span)}"
        )
    received = [(r, ev.link(r, "recv-datagram")) for r in ev.calls("recvmmsg", ok=True)]
    got = [i for _, lk in received if lk for i in lk.packets]
    if ev.expect(link and sorted(got) == sorted(link.packets), "recvmmsg did not take exactly those datagrams"):
        for r, lk in received:
            if lk and lk.packets:
                ev.say(
                    f"{call(r)} took {len(lk.packets)} datagram(s) in one call, sizes {r.msg_lens}: "
                    f"the boundaries survive batching"
                )
    ev.say(
        f"{len(ev.calls('sendmmsg', 'recvmmsg'))} syscalls moved {len(got)} datagrams twice "
        f"(sendto/recvfrom would need {2 * len(got)})"
    )


LAB = Lab(
    name="sendmmsg",
    summary="one sendmmsg(k) ↔ k UDP datagrams on the wire; one recvmmsg takes the batch (C program)",
    command=command,
    explain=explain,
    capture_filter="udp",
)
