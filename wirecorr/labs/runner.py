"""Run one lab: namespace, programs under the tracer with tcpdump, then the analysis.

The recording is made by the same `Recorder` as `wirecorr record`, with this thread
inside the lab's namespace, so tcpdump and the traced programs both live there and the
capture holds only the lab's own traffic. The recording is then read back like any
other file: what the lab explains is exactly what `wirecorr analyze` and
`wirecorr check` will find in it later.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wirecorr.engine.hosts import load_merged, merged_header
from wirecorr.engine.ingest import analyze_file
from wirecorr.engine.linking import annotate
from wirecorr.labs import Lab, Workdir
from wirecorr.labs.evidence import Evidence
from wirecorr.labs.netns import entered, private_network
from wirecorr.recording.recorder import Recorder, RecordOptions


@dataclass
class LabResult:
    lab: Lab
    output: str
    status: int
    evidence: Evidence
    # The stem of every namespace the run made ("wclab-1a2b3c4d"): a test can tell its own
    # leftovers from those of labs running beside it.
    namespaces: str = ""

    @property
    def shown(self) -> bool:
        return self.evidence.shown


def run(lab: Lab, output: str, *, small: bool = False) -> LabResult:
    """Record `lab` into `output` and explain it; namespaces and programs are gone on return."""
    with tempfile.TemporaryDirectory(prefix="wclab-") as tmp:
        # The tracee may run as any user; its programs must be readable whatever the umask.
        os.chmod(tmp, 0o755)
        work = Workdir(Path(tmp), small)
        sysctls = {**lab.sysctls, **(lab.small_sysctls if small else {})}
        with private_network(pair=lab.pair, sysctls=sysctls, nft_b=lab.nft, mtu=lab.mtu) as net:
            stem = net.a.removesuffix("-a")
            argv = lab.command(work, net)
            if lab.record is not None:
                status = lab.record(work, net, argv, output)
            else:
                # A lab's capture on its veth's end sees both namespaces' packets once; its
                # client in `b` is explained from that one capture, not followed into `b`.
                options = RecordOptions(
                    output,
                    argv,
                    interface=net.iface,
                    capture_filter=lab.capture_filter,
                    snaplen=lab.snaplen,
                    follow_namespaces=False,
                )
                recorder = Recorder(options, linker=annotate)
                with entered(net.a):
                    status = recorder.run()
                if recorder.signum is not None:
                    # The recorder caught Ctrl-C / SIGTERM to finish the file; the run is still over.
                    raise KeyboardInterrupt(f"signal {recorder.signum}")
    header = merged_header(output)
    merged = load_merged(output, header) if header is not None else None
    session = merged.hosts[0].session if merged is not None else analyze_file(output)
    evidence = Evidence(session, status, small=small)
    evidence.merged = merged
    evidence.expect(status == 0, f"the lab's programs exited with status {status}")
    evidence.expect(session.error is None, f"the recording is damaged: {session.error}")
    lab.explain(evidence)
    return LabResult(lab, output, status, evidence, stem)
