"""What every lab's Python program starts with.

The alarm bounds a lab whatever goes wrong (a peer that never answers must not keep the
namespace alive); `wait_listening` reads /proc/net of the lab's namespace instead of
probing with a connection, which would put an extra connection on the wire.
"""

PRELUDE = '''
import os, signal, socket, struct, subprocess, sys, time

signal.alarm(int(os.environ.get("WCLAB_ALARM", "40")))


def wait_listening(port, table="/proc/net/tcp"):
    """Return once something listens on `port` (state 0A in /proc/net/tcp)."""
    want = ":%04X" % port
    for _ in range(1000):
        with open(table) as f:
            rows = [line.split() for line in f.readlines()[1:]]
        if any(r[1].endswith(want) and r[3] == "0A" for r in rows):
            return
        time.sleep(0.01)
    sys.exit("nothing listens on port %d" % port)
'''
