"""Syscall decoders split by family (as strace's sources are), merged into one dispatch table."""

from __future__ import annotations

from wirecorr.sources.syscalls import fd, io, net, poll, sockopt
from wirecorr.sources.syscalls.base import Decoder, Decoders, Tracee

DECODERS: Decoders = {**net.DECODERS, **sockopt.DECODERS, **io.DECODERS, **fd.DECODERS, **poll.DECODERS}

__all__ = ["DECODERS", "Decoder", "Decoders", "Tracee"]
