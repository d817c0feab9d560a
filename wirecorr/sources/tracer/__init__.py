"""The ptrace tracer: launch or attach, follow every thread and child, decode recorded syscalls."""

from wirecorr.sources.tracer.launch import TraceError
from wirecorr.sources.tracer.loop import Tracer

__all__ = ["TraceError", "Tracer"]
