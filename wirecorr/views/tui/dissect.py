"""Full dissection of one packet by the real tshark, shown as Wireshark's detail tree.

wirecorr's own decoder stops at the transport header (it is the bulk path); for the one
packet a user inspects, tshark knows every protocol and its analysis. tshark is run on the
original file with `-c N -Y frame.number==N`: it reads only up to that frame, and the
frames before it give TCP analysis its context (relative numbers, retransmission flags) —
extracting the packet alone would lose that. PDML is parsed rather than pyshark's layer
objects because PDML keeps the nesting and Wireshark's own display text (`showname`);
pyshark is used to find tshark, so its configured `tshark_path` applies.

tshark (4.0 and later) numbers pcapng Custom Blocks as frames, which wirecorr recordings
are full of, so packet index → frame number goes through `Recording.frame_numbers`.
"""

from __future__ import annotations

import os
import subprocess
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from pyshark.tshark.tshark import TSharkNotFoundException, get_process_path
from rich.text import Text, TextType
from textual import work
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from wirecorr.engine.session import Session
from wirecorr.recording.reader import read_recording
from wirecorr.sources.capture_file import PCAPNG_SHB
from wirecorr.views.tui.packet_access import capture_path

TSHARK_TIMEOUT_S = 60
# PDML protocols that are tshark bookkeeping, not part of Wireshark's detail tree.
_SKIP_PROTOS = frozenset({"geninfo"})
# Wrappers without their own line in Wireshark: their fields belong to the top level.
_FLATTEN_PROTOS = frozenset({"fake-field-wrapper"})
_TRANSPORTS = frozenset({"tcp", "udp", "icmp", "icmpv6", "sctp"})


class DissectError(Exception):
    """tshark is missing or failed; the message is meant for the user as is."""


@dataclass(slots=True)
class DissectNode:
    """One line of the detail tree: a protocol or field, as Wireshark words it."""

    label: str
    name: str = ""
    children: list[DissectNode] = field(default_factory=list)


def find_tshark() -> str:
    try:
        return get_process_path()
    except TSharkNotFoundException:
        raise DissectError(
            "tshark not found: install Wireshark's command-line tools (e.g. `apt install tshark`) "
            "for the full dissection"
        ) from None


def dissect_packet(path: str, frame_number: int) -> list[DissectNode]:
    """The protocol layers of frame `frame_number` (1-based, as tshark counts) of `path`."""
    tshark = find_tshark()
    cmd = [tshark, "-n", "-r", path, "-c", str(frame_number), "-Y", f"frame.number == {frame_number}", "-T", "pdml"]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=TSHARK_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise DissectError(f"tshark took more than {TSHARK_TIMEOUT_S} s to reach frame {frame_number}") from None
    except OSError as e:
        raise DissectError(f"cannot run tshark: {e}") from None
    if done.returncode != 0:
        msg = _stderr(done.stderr)
        raise DissectError(f"tshark failed (exit {done.returncode}): {msg}")
    try:
        root = ET.fromstring(done.stdout)
    except ET.ParseError as e:
        raise DissectError(f"tshark's PDML did not parse: {e}") from None
    packet = root.find("packet")
    if packet is None:
        raise DissectError(f"tshark shows no frame {frame_number} in {path}")
    layers: list[DissectNode] = []
    for proto in packet.findall("proto"):
        name = proto.get("name", "")
        if name in _SKIP_PROTOS:
            continue
        if name in _FLATTEN_PROTOS:
            layers.extend(_children(proto))
        else:
            layers.append(DissectNode(_label(proto), name, _children(proto)))
    return layers


def _stderr(raw: bytes) -> str:
    lines = [ln for ln in raw.decode("utf-8", "replace").splitlines() if "Running as user" not in ln]
    return " ".join(lines).strip() or "no message"


def _label(el: ET.Element) -> str:
    showname = el.get("showname")
    if showname:
        return showname
    name = el.get("name", "?")
    show = el.get("show")
    if show:
        return f"{name}: {show}"
    value = el.get("value")
    return f"{name}: {value}" if value else name


def _children(el: ET.Element) -> list[DissectNode]:
    return [
        DissectNode(_label(child), child.get("name", ""), _children(child))
        for child in el
        if child.tag in ("field", "proto") and child.get("hide") != "yes"
    ]


# -- packet index → tshark frame number -----------------------------------------------------

_frame_cache: dict[str, tuple[float, list[int]]] = {}
_frame_lock = threading.Lock()


def frame_number(path: str, index: int) -> int:
    """tshark's frame number of packet `index` of `path` (may read the whole file once)."""
    with open(path, "rb") as f:
        is_pcapng = f.read(4) == PCAPNG_SHB.to_bytes(4, "little")
    if not is_pcapng:
        return index + 1
    mtime = os.stat(path).st_mtime
    with _frame_lock:
        cached = _frame_cache.get(path)
        if cached is None or cached[0] != mtime or index >= len(cached[1]):
            cached = (mtime, list(read_recording(path).frame_numbers))
            _frame_cache[path] = cached
    numbers = cached[1]
    return numbers[index] if index < len(numbers) else index + 1


# -- the widget -----------------------------------------------------------------------------


class DissectionTree(Tree[str]):
    """tshark's dissection of packet `packet_index`, loaded in a worker thread.

    Shows "loading…" at once and never blocks the UI; the transport layer is opened,
    the one a wirecorr user came for.
    """

    DEFAULT_CSS = """
    DissectionTree { height: 1fr; }
    """

    def __init__(self, session: Session, packet_index: int, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(f"packet {packet_index}", name=name, id=id)
        self.session = session
        self.packet_index = packet_index
        self.dissection: list[DissectNode] | None = None
        self.error: str | None = None
        self.root.expand()
        self.root.add_leaf("loading…")

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="dissect")
    def _load(self) -> None:
        path = capture_path(self.session)
        try:
            if path is None:
                raise DissectError("this session has no capture file to dissect")
            number = frame_number(path, self.packet_index)
            layers = dissect_packet(path, number)
        except DissectError as e:
            self.app.call_from_thread(self._show_error, str(e))
        else:
            self.app.call_from_thread(self._show, number, layers)

    def _show(self, number: int, layers: list[DissectNode]) -> None:
        self.dissection = layers
        self.clear()
        self.root.set_label(f"frame {self.packet_index + 1} (tshark frame {number})")
        nodes = [(layer.name, self._add(self.root, layer)) for layer in layers]
        transport = [node for name, node in nodes if name in _TRANSPORTS]
        if transport:
            transport[-1].expand()
        self.root.expand()

    def _show_error(self, message: str) -> None:
        self.error = message
        self.clear()
        self.root.add_leaf(message)
        self.root.expand()

    def process_label(self, label: TextType) -> Text:
        # tshark's text is full of brackets ("[Stream index: 0]"): never read it as markup.
        return Text(label) if isinstance(label, str) else label

    def _add(self, parent: TreeNode[str], node: DissectNode) -> TreeNode[str]:
        if not node.children:
            return parent.add_leaf(node.label, data=node.name)
        branch = parent.add(node.label, data=node.name)
        for child in node.children:
            self._add(branch, child)
        return branch

    def text_lines(self) -> list[str]:
        """Every label in the tree, depth-first, indented two spaces per level (for tests)."""
        out: list[str] = []

        def walk(node: TreeNode[str], depth: int) -> None:
            out.append("  " * depth + node.label.plain)
            for child in node.children:
                walk(child, depth + 1)

        walk(self.root, 0)
        return out
