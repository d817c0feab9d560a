"""The Recording: one pcapng file with the packets, the syscall records and the links.

See docs/recording-format.md for the layout; `RecordingWriter` writes it incrementally and
`read_recording` reads it (or any plain pcap/pcapng) back.
"""

from wirecorr.recording.reader import Recording, read_recording
from wirecorr.recording.writer import RecordingWriter

__all__ = ["Recording", "RecordingWriter", "read_recording"]
