"""wirecorr: pair a program's system calls with the packets they become on the wire."""

__version__ = "0.1.0"
