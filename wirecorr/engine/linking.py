"""`wirecorr record`'s linking pass: the recording correlated as a stream, then rewritten
with its links (recording/annotate.py).

The pass used to hold the whole analysis (every syscall, link and claim: 1.1 GB on
bench/correlate's 800k syscalls) until the rewrite. It now reads the file through the
streaming analyze's `Streamer`, whose memory follows the connections open at a time, and
keeps of each link only what the rewrite writes: its packets' comment options (in
`PacketComments`, ≈ 120 B a linked packet) and its link record, encoded as soon as a batch
of links is final into a temporary file the rewrite copies. Links come out in the order
they became final, so a packet's comments are put in link id order as they come, and the
link records follow that order (readers take them in any order).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from typing import IO, BinaryIO

from wirecorr.bulk import paused_gc
from wirecorr.engine.ingest import diagnose
from wirecorr.engine.session import Session
from wirecorr.engine.streaming import Streamer
from wirecorr.model import Link, Syscall
from wirecorr.recording.annotate import (
    AnnotateError,
    Annotation,
    comments,
    finding_records,
    link_records,
    rewrite_with,
)
from wirecorr.recording.columns import BATCH_ROWS


class _LinkSink:
    """The Streamer's sink for the linking pass: final links into comments and records."""

    def __init__(self, session: Session) -> None:
        self.session = session
        # The recording's format version; the Streamer reading the file tells it.
        self.version: Callable[[], int] = lambda: 1
        self.how = comments()
        self.comments = self.how.collector()
        self.links_seen = 0
        self._batch: list[Link] = []
        self.records: IO[bytes] = tempfile.TemporaryFile(prefix="wirecorr-annotate-")  # noqa: SIM115 - closed by `annotate`

    def syscalls(self, calls: list[Syscall]) -> None:
        """The rewrite keeps the syscall records the file holds: nothing to do."""

    def links(self, links: list[Link]) -> None:
        # The calls are still in the session: the Streamer drops them after handing out their links.
        self.comments.add(links, self.session.syscall_lookup())
        self.links_seen += len(links)
        self._batch.extend(links)
        if len(self._batch) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Encode the links held, in the recording's format (known once its header was
        read, which comes before any syscall and so before any link)."""
        if self._batch:
            self.records.write(link_records(self._batch, self.version()))
            self._batch = []

    def write_records(self, out: BinaryIO, version: int) -> None:
        """`rewrite_with`'s records: the links encoded so far, then the findings. The links
        were encoded in the version the Streamer read from the same header, so `version`
        (the rewrite's reading of it) has nothing to add."""
        self.flush()
        self.records.seek(0)
        shutil.copyfileobj(self.records, out, 1 << 20)
        out.write(finding_records(self.session.findings))


def annotate(path: str) -> Annotation | None:
    """Correlate the recording at `path` and rewrite it with its links; None if not a regular
    file (a FIFO or a device cannot be rewritten in place)."""
    # lstat: a symlink put in the recording's place is not followed, nor replaced.
    if not stat.S_ISREG(os.lstat(path).st_mode):
        return None
    session = Session()
    sink = _LinkSink(session)
    streamer = Streamer(session, sink)
    sink.version = streamer.format_version
    try:
        with paused_gc():
            for _ in streamer.read(path):
                pass
            if session.error is not None:
                raise AnnotateError(str(session.error))
            diagnose(session, streamer.thresholds)
            streamer.finish(freeze=False)
            rewrite_with(path, sink.comments, sink.write_records, sink.how)
        return Annotation(links=sink.links_seen, packets=len(sink.comments), findings=len(session.findings))
    finally:
        sink.records.close()
