"""Merge recordings made on different hosts (or network namespaces) into one timeline.

Each host's recording has its own clock. The packets both captures saw are the shared
events that tie the clocks together: a segment sent by A at tA and captured by B at tB has
tB - tA = d + θ, where θ is B's clock minus A's and d ≥ 0 the one-way delay; one sent by
B has tB - tA = θ - d'. So every A→B crossing is an upper bound on θ and every B→A
crossing a lower bound — the method of Duda et al. that Trace Compass uses to synchronise
LTTng traces. With a drift (θ = a + b·t) the bounds are half-planes in (a, b); the
feasible lines are those that pass above the upper convex hull of the B→A points and
below the lower hull of the A→B points. The estimate is the line halfway between the
extremes at both ends of the matched span, and its error bound the half-width of the
feasible band there: the true θ is within it, whatever the delays were. Over a short
span the slope cannot be told from noise (±40 µs over one second is ±40 ppm), so below
`DRIFT_MIN_SPAN_NS` the model is a constant offset, whose bound assumes the drift over
the recording is small against it.

Packets are matched without addresses or ports, which NAT rewrites: by the IPv4
identification, TCP sequence and acknowledgement numbers, flags, length, TCP timestamp
and a hash of the captured payload (UDP: IP ID, length and payload hash). Linux numbers
the IP ID per socket, one more for each packet, and NAT leaves it alone, so it tells apart
the packets nothing else does: a retransmission from its original, the repeated pure
ACKs of a zero window or a keepalive, where a connection without TCP timestamps has
identical headers and no payload. A key met more than once in either capture is left out
rather than guessed. What is left is matched a second time without sequence numbers,
which a middlebox may rewrite (pf's `modulate state`, a SYN proxy): a segment with a
payload by IP ID, flags, length and payload hash; one without, by IP ID and flags within
a connection pair the first matches already tied together. Which side sent a matched
packet is read from the timing itself: per connection, the direction whose crossings
show the larger tB - tA is A→B (d and d' are both ≥ 0).

The merged file keeps every host's packets (both copies of a crossing, each on its own
host's interface) and syscalls, corrected to the first host's clock; docs/recording-format.md
describes the header's `hosts` list and the `crossing` records.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from wirecorr import __version__
from wirecorr.errors import InputError, UsageError
from wirecorr.model import PROTO_TCP, PROTO_UDP
from wirecorr.recording import format as fmt
from wirecorr.recording.edit import Rewriter, same_file
from wirecorr.recording.reader import read_recording
from wirecorr.recording.writer import open_output
from wirecorr.sources.capture_file import CaptureReader, TruncatedCapture
from wirecorr.sources.packet_decode import decode_packet, network_offset

TAG_CROSSING = "crossing"
DRIFT_MIN_SPAN_NS = 10_000_000_000


class MergeRefused(UsageError):
    """Inputs that cannot be merged (the same recording twice, no common connection)."""


@dataclass
class _Pkt:
    ts: int
    linktype: int
    iface: str | None
    snaplen: int
    wirelen: int
    frame: bytes
    comment: str | None
    key: tuple[Any, ...] | None
    conn: tuple[Any, ...] | None
    flow: tuple[Any, ...] | None
    # (proto, IP ID, flags, length, payload hash): the key without sequence numbers (IPv4 only)
    loose: tuple[Any, ...] | None = None


@dataclass
class MergeInput:
    path: str
    meta: dict[str, Any]
    syscalls: list[dict[str, Any]] = field(default_factory=list)
    processes: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    packets: list[_Pkt] = field(default_factory=list)


@dataclass
class ClockFit:
    """θ(t) = offset_ns + drift_ppb·(t - ref_ns)/1e9 on this host's clock minus the first's,
    within ±error_ns over the span of the crossings it was fitted on."""

    offset_ns: int
    drift_ppb: float
    ref_ns: int
    error_ns: int
    span_ns: int
    forward: int
    backward: int
    consistent: bool = True
    model: str | None = None  # None: "offset+drift" or "offset", by the drift fitted

    def at(self, t: int) -> int:
        return self.offset_ns + round(self.drift_ppb * (t - self.ref_ns) / 1e9)


def _ip_id(linktype: int, frame: bytes, version: int) -> int | None:
    """The IPv4 identification field of a frame (None for IPv6, which has none)."""
    if version != 4:
        return None
    off, _ = network_offset(linktype, frame)
    return int.from_bytes(frame[off + 4 : off + 6], "big") if off >= 0 and len(frame) >= off + 6 else None


def _keys(pkt: Any, ip_id: int | None) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]:
    """(exact key, loose key without sequence numbers) of a decoded packet."""
    crc = zlib.crc32(pkt.payload)
    if pkt.proto == PROTO_TCP:
        key = (PROTO_TCP, ip_id, pkt.seq, pkt.ack, pkt.flags, pkt.payload_len, pkt.ts_val, crc)
        # IP ID 0 is what Linux gives packets sent without a full socket (a SYN-ACK, a RST,
        # a TIME_WAIT ACK): no identity to match on without the sequence numbers.
        return key, (PROTO_TCP, ip_id, pkt.flags, pkt.payload_len, crc) if ip_id else None
    if pkt.proto == PROTO_UDP:
        return (PROTO_UDP, ip_id, pkt.payload_len, crc), None
    return None, None


def load_input(path: str) -> MergeInput:
    rec = read_recording(path)
    item = MergeInput(path, dict(rec.meta), summary=rec.summary)
    item.syscalls = [fmt.syscall_to_dict(sc) for sc in rec.syscalls]
    item.processes = rec.processes
    reader = CaptureReader(path)
    index = 0
    try:
        for raw in reader.records():
            pkt = decode_packet(index, raw)
            index += 1
            spec = reader.interfaces[raw[2]] if reader.interfaces else None
            flow = (pkt.src, pkt.sport, pkt.dst, pkt.dport) if pkt.proto in (PROTO_TCP, PROTO_UDP) else None
            conn = (pkt.proto, *sorted(((pkt.src, pkt.sport), (pkt.dst, pkt.dport)))) if flow else None
            key, loose = _keys(pkt, _ip_id(raw[3], raw[5], pkt.ip_version))
            item.packets.append(
                _Pkt(
                    raw[0],
                    raw[3],
                    spec.name if spec else None,
                    spec.snaplen if spec else 262144,
                    raw[4],
                    bytes(raw[5]),
                    raw[6],
                    key,
                    conn,
                    flow,
                    loose,
                )
            )
    except TruncatedCapture:
        pass
    return item


def _unique(keyed: list[tuple[Any, int]]) -> dict[Any, int]:
    """key → index for the keys met exactly once."""
    counts = Counter(k for k, _ in keyed)
    return {k: i for k, i in keyed if counts[k] == 1}


def _join(keyed_a: list[tuple[Any, int]], keyed_b: list[tuple[Any, int]]) -> list[tuple[int, int]]:
    keys_a, keys_b = _unique(keyed_a), _unique(keyed_b)
    return [(ia, keys_b[k]) for k, ia in keys_a.items() if k in keys_b]


def _pairs(a: MergeInput, b: MergeInput) -> list[tuple[int, int]]:
    """(index in a, index in b) of the packets both captured, by the exact key, then by the
    loose one among those left (see the module docstring)."""
    exact = [(p.key, i) for i, p in enumerate(a.packets) if p.key is not None]
    pairs = _join(exact, [(p.key, i) for i, p in enumerate(b.packets) if p.key is not None])
    taken_a, taken_b = {ia for ia, _ in pairs}, {ib for _, ib in pairs}

    def loose(item: MergeInput, taken: set[int], data: bool) -> list[tuple[Any, int]]:
        return [
            (p.loose, i)
            for i, p in enumerate(item.packets)
            if p.loose is not None and i not in taken and (p.loose[3] > 0) == data
        ]

    pairs += _join(loose(a, taken_a, True), loose(b, taken_b, True))
    # A pure ACK's loose key is short: only within connections the matches so far tie together.
    tied = {(a.packets[ia].conn, b.packets[ib].conn) for ia, ib in pairs}
    conn_a = {ca: n for n, (ca, _) in enumerate(tied)}
    conn_b = {cb: n for n, (_, cb) in enumerate(tied)}
    taken_a, taken_b = {ia for ia, _ in pairs}, {ib for _, ib in pairs}
    pure_a = [((conn_a.get(a.packets[i].conn), k), i) for k, i in loose(a, taken_a, False)]
    pure_b = [((conn_b.get(b.packets[i].conn), k), i) for k, i in loose(b, taken_b, False)]
    pairs += _join([x for x in pure_a if x[0][0] is not None], [x for x in pure_b if x[0][0] is not None])
    return pairs


def match(a: MergeInput, b: MergeInput) -> list[tuple[int, int, bool]]:
    """(index in a, index in b, sent by a) for every packet both captured, once each."""
    pairs = _pairs(a, b)
    # Per connection as a saw it: the flow whose crossings show the larger tB - tA is a→b.
    by_flow: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for ia, ib in pairs:
        by_flow[a.packets[ia].flow].append(b.packets[ib].ts - a.packets[ia].ts)
    medians = {flow: statistics.median(d) for flow, d in by_flow.items()}
    out = []
    for ia, ib in pairs:
        pa = a.packets[ia]
        assert pa.flow is not None
        reverse = (pa.flow[2], pa.flow[3], pa.flow[0], pa.flow[1])
        if reverse not in medians:
            continue  # one direction alone bounds θ on one side only
        out.append((ia, ib, medians[pa.flow] > medians[reverse]))
    return sorted(out)


def _hull(points: list[tuple[float, float]], upper: bool) -> list[tuple[float, float]]:
    """Andrew's monotone chain: the upper (or lower) convex hull of points sorted by x."""
    out: list[tuple[float, float]] = []
    for p in points:
        while len(out) >= 2:
            (x1, y1), (x2, y2) = out[-2], out[-1]
            cross = (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1)
            if (cross >= 0) if upper else (cross <= 0):
                out.pop()
            else:
                break
        out.append(p)
    return out


def fit_clock(a: MergeInput, b: MergeInput, pairs: list[tuple[int, int, bool]]) -> ClockFit:
    """θ of b against a from the crossings (see the module docstring), with its bound."""
    upper = [(a.packets[ia].ts, b.packets[ib].ts - a.packets[ia].ts) for ia, ib, fwd in pairs if fwd]
    lower = [(a.packets[ia].ts, b.packets[ib].ts - a.packets[ia].ts) for ia, ib, fwd in pairs if not fwd]
    hi, lo = min(y for _, y in upper), max(y for _, y in lower)
    t0 = min(t for t, _ in upper + lower)
    t1 = max(t for t, _ in upper + lower)
    span = t1 - t0
    const = ClockFit((lo + hi) // 2, 0.0, t0, (abs(hi - lo) + 1) // 2, span, len(upper), len(lower), lo <= hi)
    if span < DRIFT_MIN_SPAN_NS:
        # If lo > hi, timestamps disagree with causality (capture jitter, or a drift too small
        # to fit over so short a span): the midpoint, bound by the overlap, flagged.
        return const
    up = _hull(sorted((t - t0, float(y)) for t, y in upper), upper=False)
    down = _hull(sorted((t - t0, float(y)) for t, y in lower), upper=True)
    candidates = up + down
    feasible: list[tuple[float, float]] = []
    for i, (x1, y1) in enumerate(candidates):
        for x2, y2 in candidates[i + 1 :]:
            if x1 == x2:
                continue
            slope = (y2 - y1) / (x2 - x1)
            icpt = y1 - slope * x1
            if all(icpt + slope * x <= y + 1 for x, y in up) and all(icpt + slope * x >= y - 1 for x, y in down):
                feasible.append((icpt, slope))
    if not feasible:
        return const
    # Duda: the bisector of the steepest and the flattest feasible lines, itself feasible.
    steep, flat = max(feasible, key=lambda f: f[1]), min(feasible, key=lambda f: f[1])
    mid0, slope = (steep[0] + flat[0]) / 2, (steep[1] + flat[1]) / 2
    end = float(span)
    # The true line is one of the feasible ones: the band they span at the ends bounds the error.
    at0 = [c for c, _ in feasible]
    at1 = [c + s * end for c, s in feasible]
    error = max(mid0 - min(at0), max(at0) - mid0, mid0 + slope * end - min(at1), max(at1) - mid0 - slope * end)
    return ClockFit(round(mid0), slope * 1e9, t0, int(error) + 1, span, len(upper), len(lower))


def _netns_label(meta: dict[str, Any]) -> str:
    """A namespace of this machine by what says most: its `ip netns` name, its container, its inode."""
    ns = meta.get("netns") or {}
    if not ns:
        return str(meta.get("hostname") or "host")
    return str(ns.get("name") or ns.get("container") or f"net:[{ns.get('inode')}]")


def _labels(inputs: list[MergeInput], *, by_netns: bool = False) -> list[str]:
    """Each host's name: its hostname, numbered when two namespaces share one (or, for the
    namespaces of one machine, the namespace's own name)."""
    names = [
        _netns_label(i.meta) if by_netns else str(i.meta.get("hostname") or os.path.basename(i.path)) for i in inputs
    ]
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if names.count(name) == 1 else f"{name}#{seen[name]}")
    return out


@dataclass
class MergeResult:
    hosts: list[dict[str, Any]]
    packets: int
    syscalls: int
    crossings: int


def merge(paths: list[str], output: str, *, same_clock: bool = False) -> MergeResult:
    """Merge the recordings at `paths` (the first is the reference clock) into `output`.

    `same_clock`: the recordings are of network namespaces of this one machine (record -p
    across namespaces), whose timestamps all come from one kernel clock: nothing to estimate,
    so the offsets are 0 within 0, and namespaces that share no connection are merged too.
    """
    if len(paths) < 2:
        raise UsageError("merge: give at least two recordings")
    for p in paths:
        if not os.path.isfile(p):
            why = "not a regular file (merge reads each input twice)" if os.path.exists(p) else "no such file"
            raise InputError(p, why)
        if same_file(p, output):
            raise UsageError(f"merge: the output {output} is one of the inputs; write to another file")
    for i, p in enumerate(paths):
        for q in paths[i + 1 :]:
            if same_file(p, q):
                raise MergeRefused(f"merge: {p} and {q} are the same file; merge recordings of different hosts")
    return merge_inputs([load_input(p) for p in paths], output, same_clock=same_clock)


def merge_inputs(inputs: list[MergeInput], output: str, *, same_clock: bool = False) -> MergeResult:
    """`merge` of recordings already read (record's namespace split builds some in memory)."""
    labels = _labels(inputs, by_netns=same_clock)
    fits: list[ClockFit | None] = [None]
    all_pairs: list[list[tuple[int, int, bool]]] = [[]]
    if same_clock:
        for item in inputs[1:]:
            pairs = match(inputs[0], item)
            all_pairs.append(pairs)
            fwd = sum(f for *_, f in pairs)
            fits.append(ClockFit(0, 0.0, 0, 0, 0, fwd, len(pairs) - fwd, model="same clock"))
        return _write(inputs, labels, fits, all_pairs, output)
    for item in inputs:
        if not item.packets:
            raise MergeRefused(f"merge: {item.path} has no packets to synchronise its clock on")
    for item in inputs[1:]:
        pairs = match(inputs[0], item)
        if not pairs:
            raise MergeRefused(
                f"merge: {inputs[0].path} and {item.path} have no connection seen by both in both directions "
                "(unrelated recordings?)"
            )
        ref = inputs[0]
        diffs = {item.packets[ib].ts - ref.packets[ia].ts for ia, ib, _ in pairs}
        if len(diffs) == 1 and len(item.packets) == len(ref.packets):
            raise MergeRefused(
                f"merge: {item.path} is the same recording as {ref.path} (every packet matches at one constant "
                "offset); merge recordings of different hosts"
            )
        if all(fwd for *_, fwd in pairs) or not any(fwd for *_, fwd in pairs):
            raise MergeRefused(f"merge: cannot tell the direction of the packets {ref.path} and {item.path} share")
        all_pairs.append(pairs)
        fits.append(fit_clock(ref, item, pairs))
    return _write(inputs, labels, fits, all_pairs, output)


def _write(
    inputs: list[MergeInput],
    labels: list[str],
    fits: list[ClockFit | None],
    all_pairs: list[list[tuple[int, int, bool]]],
    output: str,
) -> MergeResult:
    def corrected(host: int, t: int | None) -> int | None:
        fit = fits[host]
        return t if t is None or fit is None else t - fit.at(t)

    # Every host's packets on one clock; ties keep host order, then file order.
    order = sorted(
        ((corrected(h, p.ts), h, i) for h, item in enumerate(inputs) for i, p in enumerate(item.packets)),
        key=lambda x: (x[0], x[1], x[2]),
    )
    new_index = {(h, i): n for n, (_, h, i) in enumerate(order)}
    # Interface ids as the Rewriter will assign them: in order of first use.
    iface_ids: dict[tuple[int, str | None, int], int] = {}
    host_ifaces: list[list[int]] = [[] for _ in inputs]
    for _, h, i in order:
        p = inputs[h].packets[i]
        key = (p.linktype, f"{labels[h]}:{p.iface or 'unknown'}", p.snaplen)
        if key not in iface_ids:
            iface_ids[key] = len(iface_ids)
            host_ifaces[h].append(iface_ids[key])
    id_base = [0]
    for item in inputs:
        id_base.append(id_base[-1] + max((sc["id"] for sc in item.syscalls), default=-1) + 1)
    hosts = []
    for h, item in enumerate(inputs):
        fit = fits[h]
        hosts.append(
            {
                "id": h,
                "name": labels[h],
                "hostname": item.meta.get("hostname"),
                "source": item.path,
                "interface": item.meta.get("interface"),
                "interfaces": host_ifaces[h],
                "command": item.meta.get("command") or [],
                "pids": item.meta.get("pids") or [],
                "netns": item.meta.get("netns"),
                "syscall_ids": [id_base[h], id_base[h + 1] - 1] if item.syscalls else None,
                "offset_ns": 0 if fit is None else fit.offset_ns,
                "offset_error_ns": 0 if fit is None else fit.error_ns,
                "drift_ppb": 0.0 if fit is None else round(fit.drift_ppb, 3),
                "offset_ref_ns": None if fit is None else fit.ref_ns,
                "sync": None
                if fit is None
                else {
                    "forward": fit.forward,
                    "backward": fit.backward,
                    "span_ns": fit.span_ns,
                    "consistent": fit.consistent,
                    "model": fit.model or ("offset+drift" if fit.drift_ppb else "offset"),
                },
            }
        )
    starts = [corrected(h, i.meta.get("start_ns")) for h, i in enumerate(inputs) if i.meta.get("start_ns") is not None]
    header = {
        "format": fmt.FORMAT_VERSION,
        "wirecorr": __version__,
        "start_ns": min(s for s in starts if s is not None) if starts else None,
        "command": [],
        "pids": [],
        "attached": False,
        "hostname": labels[0],
        "interface": None,
        "merged": True,
        "hosts": hosts,
    }
    crossings = []
    for h, pairs in enumerate(all_pairs):
        if pairs:
            crossings.append(
                {
                    "hosts": [0, h],
                    # [the sender's copy, the receiver's copy]: delay = ts[1] - ts[0]
                    "pairs": [
                        [new_index[(0, ia)], new_index[(h, ib)]] if fwd else [new_index[(h, ib)], new_index[(0, ia)]]
                        for ia, ib, fwd in pairs
                    ],
                    # Each pair's sending host, so a reader needs no packet's interface to tell.
                    "senders": [0 if fwd else h for *_, fwd in pairs],
                }
            )
    syscalls = 0
    with os.fdopen(open_output(output, "merged recording"), "wb", buffering=1 << 20) as out:
        try:
            writer = Rewriter(out)
            writer.record(fmt.TAG_HEADER, header)
            # Before the packets: a viewer that shows each crossing once knows them before
            # the first packet's row is made, and a reader of them alone stops there.
            for crossing in crossings:
                writer.record(TAG_CROSSING, crossing)
            for ts, h, i in order:
                p = inputs[h].packets[i]
                iface = writer.iface(p.linktype, f"{labels[h]}:{p.iface or 'unknown'}", p.snaplen)
                writer.packet(iface, ts, p.frame, p.wirelen, p.comment)
            for h, item in enumerate(inputs):
                records = []
                for proc in item.processes:
                    records.append((fmt.TAG_PROCESS, {**proc, "ts_ns": corrected(h, proc.get("ts_ns")), "host": h}))
                for sc in item.syscalls:
                    moved = {**sc, "id": sc["id"] + id_base[h], "host": h}
                    moved["enter_ns"] = corrected(h, sc["enter_ns"])
                    moved["exit_ns"] = corrected(h, sc.get("exit_ns"))
                    records.append((fmt.TAG_SYSCALL, moved))
                syscalls += len(item.syscalls)
                writer.records(records)
            ends = [corrected(h, (i.summary or {}).get("end_ns")) for h, i in enumerate(inputs)]
            writer.record(
                fmt.TAG_SUMMARY,
                {
                    "end_ns": max((e for e in ends if e is not None), default=None),
                    "packets": len(order),
                    "syscalls": syscalls,
                },
            )
        except BaseException:
            out.close()
            with contextlib.suppress(OSError):
                os.unlink(output)
            raise
    return MergeResult(hosts, len(order), syscalls, sum(len(c["pairs"]) for c in crossings))


def host_of_packet(meta: dict[str, Any]) -> dict[int, int]:
    """Interface id → host id of a merged recording's header (empty for any other)."""
    return {iface: h["id"] for h in meta.get("hosts") or [] for iface in h.get("interfaces") or []}
