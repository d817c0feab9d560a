# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled packet path: capture bytes → decoded headers → TCP analysis → table columns.

Issue 12: in pure Python every packet cost a record tuple, a `Packet`, a key tuple and a
dozen int objects, and that object traffic was most of an analyze run. Here a packet lives
in a C struct on the stack from its record header to its table row; the only Python
objects made are per connection (its `Connection`, handshake options, state changes) or
per 4 MiB chunk of input.

Every rule is a transcription of the pure-Python reference, which stays: the record walk of
`sources/capture_file.py`, the decode of `sources/packet_decode.py`, and the analysis of
`engine/tcp_analysis.py` (Wireshark 4.0's packet-tcp.c). Names and comments follow those
modules so the two read side by side; the differential test (tests/test_packet_core.py)
holds them to identical tables, connections and reports.
"""

from cpython cimport array
from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memmove, memset

from wirecorr.engine.connections import (
    CLIENT,
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    RESET,
    SERVER,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    Connection,
    HandshakeOptions,
)
from wirecorr.engine.analysis_flags import SHORT_NAMES, AnalysisFlag
from wirecorr.engine.packet_table import PacketTable
from wirecorr.sources.capture_file import (
    TS_LIMIT,
    CorruptCapture,
    CustomBlock,
    InputError,
    TruncatedCapture,
    clamp_ns,
    ts_to_ns,
)

cdef extern from "<malloc.h>":
    int mallopt(int param, int value)
    int M_MMAP_THRESHOLD

# The table's columns grow by realloc to tens of MB. glibc's mmap threshold adapts upwards
# after the first large free, after which such blocks come from the heap, where growing
# copies and leaves holes: measured 20 MB more peak RSS on the 1M-packet bench file. A
# fixed threshold keeps every block over 1 MiB in its own mapping (grown by mremap).
mallopt(M_MMAP_THRESHOLD, 1 << 20)

# -- constants (see the reference modules) ------------------------------------------------

cdef extern from *:
    """
    #define WC_M32 (0xFFFFFFFFu)
    #define WC_HALF (0x80000000u)
    #define WC_MAX_UNACKED (10000LL)
    #define WC_FAST_RETRANS_NS (20000000LL)
    #define WC_OOO_DEFAULT_NS (3000000LL)
    #define WC_BIF_LIMIT (2000000000LL)
    #define WC_FIN (0x01LL)
    #define WC_SYN (0x02LL)
    #define WC_RST (0x04LL)
    #define WC_ACK (0x10LL)
    #define WC_PROTO_ICMP (1LL)
    #define WC_PROTO_TCP (6LL)
    #define WC_PROTO_UDP (17LL)
    #define WC_PROTO_ICMPV6 (58LL)
    #define WC_A_RETRANSMISSION (0x0001LL)
    #define WC_A_LOST_SEGMENT (0x0002LL)
    #define WC_A_ACK_LOST_SEGMENT (0x0004LL)
    #define WC_A_KEEP_ALIVE (0x0008LL)
    #define WC_A_DUPLICATE_ACK (0x0010LL)
    #define WC_A_ZERO_WINDOW (0x0020LL)
    #define WC_A_ZERO_WINDOW_PROBE (0x0040LL)
    #define WC_A_ZERO_WINDOW_PROBE_ACK (0x0080LL)
    #define WC_A_KEEP_ALIVE_ACK (0x0100LL)
    #define WC_A_OUT_OF_ORDER (0x0200LL)
    #define WC_A_FAST_RETRANSMISSION (0x0400LL)
    #define WC_A_WINDOW_UPDATE (0x0800LL)
    #define WC_A_WINDOW_FULL (0x1000LL)
    #define WC_A_REUSED_PORTS (0x2000LL)
    #define WC_A_SPURIOUS_RETRANSMISSION (0x4000LL)
    #define WC_NFLAGS (15LL)
    #define WC_ETH_IPV4 (0x0800LL)
    #define WC_ETH_IPV6 (0x86DDLL)
    #define WC_S_SYN_SENT (1LL)
    #define WC_S_SYN_RECEIVED (2LL)
    #define WC_S_ESTABLISHED (3LL)
    #define WC_S_FIN_WAIT_1 (4LL)
    #define WC_S_FIN_WAIT_2 (5LL)
    #define WC_S_CLOSE_WAIT (6LL)
    #define WC_S_CLOSING (7LL)
    #define WC_S_LAST_ACK (8LL)
    #define WC_S_TIME_WAIT (9LL)
    #define WC_S_CLOSED (10LL)
    #define WC_S_RESET (11LL)
    #define WC_PCAP_MAGIC_US (0xA1B2C3D4LL)
    #define WC_PCAP_MAGIC_NS (0xA1B23C4DLL)
    #define WC_PCAPNG_SHB (0x0A0D0D0ALL)
    #define WC_BT_IDB (1LL)
    #define WC_BT_PB (2LL)
    #define WC_BT_SPB (3LL)
    #define WC_BT_NRB (4LL)
    #define WC_BT_ISB (5LL)
    #define WC_BT_EPB (6LL)
    #define WC_BT_DSB (0x0ALL)
    #define WC_BT_CUSTOM (0x0BADLL)
    #define WC_BT_CUSTOM_NOCOPY (0x40000BADLL)
    #define WC_MAX_RECORD (0x4000000LL)
    #define WC_OP_TRUE (0LL)
    #define WC_OP_PROTO (1LL)
    #define WC_OP_VERSION (2LL)
    #define WC_OP_NET (3LL)
    #define WC_OP_PORT (4LL)
    #define WC_OP_NOT (5LL)
    #define WC_OP_AND (6LL)
    #define WC_OP_OR (7LL)
    """
    const uint32_t M32 "WC_M32"
    const uint32_t HALF "WC_HALF"
    const long long MAX_UNACKED "WC_MAX_UNACKED"
    const long long FAST_RETRANS_NS "WC_FAST_RETRANS_NS"
    const long long OOO_DEFAULT_NS "WC_OOO_DEFAULT_NS"
    const long long BIF_LIMIT "WC_BIF_LIMIT"
    const long long FIN "WC_FIN"
    const long long SYN "WC_SYN"
    const long long RST "WC_RST"
    const long long ACK "WC_ACK"
    const long long PROTO_ICMP "WC_PROTO_ICMP"
    const long long PROTO_TCP "WC_PROTO_TCP"
    const long long PROTO_UDP "WC_PROTO_UDP"
    const long long PROTO_ICMPV6 "WC_PROTO_ICMPV6"
    const long long A_RETRANSMISSION "WC_A_RETRANSMISSION"
    const long long A_LOST_SEGMENT "WC_A_LOST_SEGMENT"
    const long long A_ACK_LOST_SEGMENT "WC_A_ACK_LOST_SEGMENT"
    const long long A_KEEP_ALIVE "WC_A_KEEP_ALIVE"
    const long long A_DUPLICATE_ACK "WC_A_DUPLICATE_ACK"
    const long long A_ZERO_WINDOW "WC_A_ZERO_WINDOW"
    const long long A_ZERO_WINDOW_PROBE "WC_A_ZERO_WINDOW_PROBE"
    const long long A_ZERO_WINDOW_PROBE_ACK "WC_A_ZERO_WINDOW_PROBE_ACK"
    const long long A_KEEP_ALIVE_ACK "WC_A_KEEP_ALIVE_ACK"
    const long long A_OUT_OF_ORDER "WC_A_OUT_OF_ORDER"
    const long long A_FAST_RETRANSMISSION "WC_A_FAST_RETRANSMISSION"
    const long long A_WINDOW_UPDATE "WC_A_WINDOW_UPDATE"
    const long long A_WINDOW_FULL "WC_A_WINDOW_FULL"
    const long long A_REUSED_PORTS "WC_A_REUSED_PORTS"
    const long long A_SPURIOUS_RETRANSMISSION "WC_A_SPURIOUS_RETRANSMISSION"
    const long long NFLAGS "WC_NFLAGS"
    const long long ETH_IPV4 "WC_ETH_IPV4"
    const long long ETH_IPV6 "WC_ETH_IPV6"
    const long long S_SYN_SENT "WC_S_SYN_SENT"
    const long long S_SYN_RECEIVED "WC_S_SYN_RECEIVED"
    const long long S_ESTABLISHED "WC_S_ESTABLISHED"
    const long long S_FIN_WAIT_1 "WC_S_FIN_WAIT_1"
    const long long S_FIN_WAIT_2 "WC_S_FIN_WAIT_2"
    const long long S_CLOSE_WAIT "WC_S_CLOSE_WAIT"
    const long long S_CLOSING "WC_S_CLOSING"
    const long long S_LAST_ACK "WC_S_LAST_ACK"
    const long long S_TIME_WAIT "WC_S_TIME_WAIT"
    const long long S_CLOSED "WC_S_CLOSED"
    const long long S_RESET "WC_S_RESET"
    const long long PCAP_MAGIC_US "WC_PCAP_MAGIC_US"
    const long long PCAP_MAGIC_NS "WC_PCAP_MAGIC_NS"
    const long long PCAPNG_SHB "WC_PCAPNG_SHB"
    const long long BT_IDB "WC_BT_IDB"
    const long long BT_PB "WC_BT_PB"
    const long long BT_SPB "WC_BT_SPB"
    const long long BT_NRB "WC_BT_NRB"
    const long long BT_ISB "WC_BT_ISB"
    const long long BT_EPB "WC_BT_EPB"
    const long long BT_DSB "WC_BT_DSB"
    const long long BT_CUSTOM "WC_BT_CUSTOM"
    const long long BT_CUSTOM_NOCOPY "WC_BT_CUSTOM_NOCOPY"
    const long long MAX_RECORD "WC_MAX_RECORD"
    const long long OP_TRUE "WC_OP_TRUE"
    const long long OP_PROTO "WC_OP_PROTO"
    const long long OP_VERSION "WC_OP_VERSION"
    const long long OP_NET "WC_OP_NET"
    const long long OP_PORT "WC_OP_PORT"
    const long long OP_NOT "WC_OP_NOT"
    const long long OP_AND "WC_OP_AND"
    const long long OP_OR "WC_OP_OR"

cdef int64_t TS_LIMIT_NS = TS_LIMIT
assert TS_LIMIT_NS == 1 << 62

# State names by the S_* numbers (0 is "none yet").
_STATE_NAMES = (
    None, SYN_SENT, SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT,
    CLOSED, RESET,
)
# Short flag names by bit position (bit 0 = retransmission).
_BIT_NAMES = tuple(SHORT_NAMES[AnalysisFlag(1 << b)] for b in range(NFLAGS))


# -- the decoded packet --------------------------------------------------------------------

cdef struct Pkt:
    int64_t ts_ns
    int64_t offset
    int64_t wirelen
    int64_t caplen
    uint8_t ip_version
    uint8_t proto
    uint8_t alen
    uint8_t src[16]
    uint8_t dst[16]
    uint16_t sport
    uint16_t dport
    uint32_t seq
    uint32_t ack
    uint8_t flags
    uint16_t window
    uint32_t payload_len
    int64_t payload_offset
    int32_t mss
    int32_t wscale
    bint sack_perm
    bint has_ts
    int64_t tfo_off
    int64_t tfo_len
    bint has_sack
    int nsack
    uint32_t sack_l[4]
    uint32_t sack_r[4]
    bint has_quoted
    uint8_t q_proto
    uint8_t q_alen
    uint8_t q_src[16]
    uint8_t q_dst[16]
    uint16_t q_sport
    uint16_t q_dport
    const uint8_t* frame


cdef inline uint16_t u16(const uint8_t* f, int64_t p) noexcept nogil:
    return (f[p] << 8) | f[p + 1]


cdef inline uint32_t u32(const uint8_t* f, int64_t p) noexcept nogil:
    return (<uint32_t>f[p] << 24) | (<uint32_t>f[p + 1] << 16) | (<uint32_t>f[p + 2] << 8) | f[p + 3]


cdef inline uint32_t u32le(const uint8_t* f, int64_t p) noexcept nogil:
    return (<uint32_t>f[p + 3] << 24) | (<uint32_t>f[p + 2] << 16) | (<uint32_t>f[p + 1] << 8) | f[p]


cdef inline void pkt_init(Pkt* p) noexcept nogil:
    memset(p, 0, sizeof(Pkt))
    p.mss = -1
    p.wscale = -1
    p.tfo_off = -1


cdef inline int bsd_family(uint32_t family) noexcept nogil:
    if family == 2:
        return ETH_IPV4
    if family == 10 or family == 24 or family == 28 or family == 30:
        return ETH_IPV6
    return -1


cdef bint linktype_supported(int64_t lt) noexcept nogil:
    return lt in (0, 1, 101, 12, 14, 108, 113, 228, 229, 276)


cdef void network_offset(int64_t linktype, const uint8_t* f, int64_t flen, int64_t* off, int* etype) noexcept nogil:
    """packet_decode.network_offset: (-1, 0) for frames that carry no IP."""
    cdef uint32_t family
    off[0] = -1
    etype[0] = 0
    if linktype == 1:
        if flen < 14:
            return
        etype[0] = u16(f, 12)
        off[0] = 14
        while (etype[0] == 0x8100 or etype[0] == 0x88A8 or etype[0] == 0x9100) and flen >= off[0] + 4:
            etype[0] = u16(f, off[0] + 2)
            off[0] += 4
    elif linktype == 113:
        if flen >= 16:
            off[0] = 16
            etype[0] = u16(f, 14)
    elif linktype == 276:
        if flen >= 20:
            off[0] = 20
            etype[0] = u16(f, 0)
    elif linktype == 101 or linktype == 228 or linktype == 229 or linktype == 12 or linktype == 14:
        off[0] = 0
    elif linktype == 0:
        if flen < 4:
            return
        family = u32le(f, 0)
        if family > 0xFFFF:
            family = u32(f, 0)
        off[0] = 4
        etype[0] = bsd_family(family)
    elif linktype == 108:
        if flen >= 4:
            off[0] = 4
            etype[0] = bsd_family(u32(f, 0))


cdef void decode_tcp_options(Pkt* p, const uint8_t* f, int64_t pos, int64_t end) noexcept nogil:
    cdef int kind, length, n
    cdef int64_t q
    while pos < end:
        kind = f[pos]
        if kind == 0:
            return
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= end:
            return
        length = f[pos + 1]
        if length < 2 or pos + length > end:
            return
        if kind == 2 and length == 4:
            p.mss = u16(f, pos + 2)
        elif kind == 3 and length == 3:
            p.wscale = f[pos + 2]
        elif kind == 4 and length == 2:
            p.sack_perm = True
        elif kind == 5 and length >= 10:
            p.has_sack = True
            n = 0
            q = pos + 2
            while q < pos + length - 7:
                if n < 4:
                    p.sack_l[n] = u32(f, q)
                    p.sack_r[n] = u32(f, q + 4)
                n += 1
                q += 8
            p.nsack = n if n < 4 else 4
        elif kind == 8 and length == 10:
            p.has_ts = True
        elif kind == 34:
            p.tfo_off = pos + 2
            p.tfo_len = length - 2
        elif kind == 254 and length >= 4 and f[pos + 2] == 0xF9 and f[pos + 3] == 0x89:
            p.tfo_off = pos + 4
            p.tfo_len = length - 4
        pos += length


cdef void decode_transport(Pkt* p, const uint8_t* f, int64_t flen, int64_t pos, int64_t ip_end, int proto,
                           bint outer) noexcept nogil:
    cdef int64_t hlen, opt, v, end
    cdef uint16_t length
    cdef int t
    if proto == PROTO_TCP:
        if flen < pos + 20:
            return
        p.sport = u16(f, pos)
        p.dport = u16(f, pos + 2)
        p.seq = u32(f, pos + 4)
        p.ack = u32(f, pos + 8)
        hlen = (f[pos + 12] >> 4) * 4
        p.flags = f[pos + 13]
        p.window = u16(f, pos + 14)
        v = ip_end - pos - hlen
        p.payload_len = <uint32_t>(v if v > 0 else 0)
        p.payload_offset = pos + hlen
        if hlen > 20:
            opt = pos + 20
            if (hlen == 32 and flen >= opt + 12 and f[opt] == 1 and f[opt + 1] == 1 and f[opt + 2] == 8
                    and f[opt + 3] == 10):
                p.has_ts = True
            else:
                end = pos + hlen if pos + hlen < flen else flen
                decode_tcp_options(p, f, opt, end)
    elif proto == PROTO_UDP:
        if flen < pos + 8:
            return
        p.sport = u16(f, pos)
        p.dport = u16(f, pos + 2)
        length = u16(f, pos + 4)
        if length:
            v = <int64_t>length - 8
        else:
            v = ip_end - pos - 8
        p.payload_len = <uint32_t>(v if v > 0 else 0)
        p.payload_offset = pos + 8
    elif proto == PROTO_ICMP or proto == PROTO_ICMPV6:
        if flen < pos + 8:
            return
        t = f[pos]
        if outer and (((t == 3 or t == 4 or t == 5 or t == 11 or t == 12) and proto == PROTO_ICMP)
                      or ((t == 1 or t == 2 or t == 3 or t == 4) and proto == PROTO_ICMPV6)):
            quoted_flow(p, f + pos + 8, flen - pos - 8)
        p.payload_offset = pos + 8
        v = ip_end - pos - 8
        p.payload_len = <uint32_t>(v if v > 0 else 0)


cdef void decode_ipv4(Pkt* p, const uint8_t* f, int64_t flen, int64_t off, bint outer) noexcept nogil:
    cdef int ihl = (f[off] & 0x0F) * 4
    cdef uint16_t total = u16(f, off + 2)
    cdef uint16_t frag = u16(f, off + 6)
    cdef int64_t ip_end
    p.ip_version = 4
    p.alen = 4
    memcpy(p.src, f + off + 12, 4)
    memcpy(p.dst, f + off + 16, 4)
    p.proto = f[off + 9]
    if ihl < 20:
        return
    ip_end = off + total if total else p.wirelen
    if frag & 0x1FFF:
        return
    decode_transport(p, f, flen, off + ihl, ip_end, p.proto, outer)


cdef void decode_ipv6(Pkt* p, const uint8_t* f, int64_t flen, int64_t off, bint outer) noexcept nogil:
    cdef uint16_t plen
    cdef int nxt, following
    cdef int64_t ip_end, pos, size
    if flen < off + 40:
        return
    plen = u16(f, off + 4)
    nxt = f[off + 6]
    p.ip_version = 6
    p.alen = 16
    memcpy(p.src, f + off + 8, 16)
    memcpy(p.dst, f + off + 24, 16)
    ip_end = off + 40 + plen if plen else p.wirelen
    pos = off + 40
    while nxt == 0 or nxt == 43 or nxt == 44 or nxt == 51 or nxt == 60 or nxt == 135 or nxt == 139 or nxt == 140:
        if flen < pos + 8:
            p.proto = nxt
            return
        following = f[pos]
        if nxt == 44:
            if u16(f, pos + 2) & 0xFFF8:
                p.proto = following
                return
            size = 8
        elif nxt == 51:
            size = (f[pos + 1] + 2) * 4
        else:
            size = (f[pos + 1] + 1) * 8
        nxt = following
        pos += size
    p.proto = nxt
    decode_transport(p, f, flen, pos, ip_end, nxt, outer)


cdef void quoted_flow(Pkt* p, const uint8_t* inner, int64_t n) noexcept nogil:
    """The flow an ICMP error quotes, decoded as packet_decode._quoted_flow does."""
    cdef Pkt q
    cdef int version
    if n <= 0:
        return
    pkt_init(&q)
    q.wirelen = n
    version = inner[0] >> 4
    if version == 4 and n >= 20:
        decode_ipv4(&q, inner, n, 0, False)
    elif version == 6 and n >= 40:
        decode_ipv6(&q, inner, n, 0, False)
    else:
        return
    p.has_quoted = True
    p.q_proto = q.proto
    p.q_alen = q.alen
    memcpy(p.q_src, q.src, 16)
    memcpy(p.q_dst, q.dst, 16)
    p.q_sport = q.sport
    p.q_dport = q.dport


cdef void decode(Pkt* p, const uint8_t* f, int64_t flen, int64_t linktype) noexcept nogil:
    """packet_decode.decode_packet (its fast path and general path decide alike)."""
    cdef int64_t off
    cdef int etype, version
    p.frame = f
    p.caplen = flen
    network_offset(linktype, f, flen, &off, &etype)
    if off < 0 or flen < off + 20:
        return
    version = f[off] >> 4
    if etype == ETH_IPV4 or (etype == 0 and version == 4):
        if version == 4:
            decode_ipv4(p, f, flen, off, True)
    elif (etype == ETH_IPV6 or etype == 0) and version == 6:
        decode_ipv6(p, f, flen, off, True)


# -- the connection table -------------------------------------------------------------------

cdef struct Seg:
    uint32_t seq
    uint32_t nextseq
    uint32_t idx
    int64_t ts


cdef struct Flow:
    uint32_t base_seq
    bint base_set
    int win_scale
    int shift
    int64_t window
    uint32_t nextseq
    int64_t nextseqtime
    uint32_t lastack
    int64_t lastacktime
    int64_t lastnondupack
    int64_t dupacknum
    uint32_t maxseqtobeacked
    Seg* segs
    Py_ssize_t head
    Py_ssize_t nseg
    Py_ssize_t cap
    bint mono
    int lastflags
    bint valid_bif
    bint first_ack
    uint32_t sacked
    int state
    int64_t isn
    int64_t fin_next


cdef struct Conv:
    int32_t id
    Flow flows[2]
    int64_t mru_syn
    int64_t first_rtt
    bint rtt_wait
    bint watch
    int64_t packets[2]
    int64_t nbytes[2]
    int64_t last_ts
    uint32_t counts[15]
    uint8_t order[15]
    int norder
    bint dirty
    int64_t synced_indices
    bint has_closer
    bint has_reset_by
    PyObject* conn
    PyObject* indices


cdef struct HKey:
    uint8_t src[16]
    uint8_t dst[16]
    uint16_t sport
    uint16_t dport
    uint8_t alen
    uint8_t pad[3]


cdef struct HEnt:
    HKey key
    int32_t conv
    int32_t dir


cdef inline uint64_t hkey_hash(const HKey* k) noexcept nogil:
    cdef const uint64_t* w = <const uint64_t*>k
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL
    cdef int i
    for i in range(5):
        h = (h ^ w[i]) * 0x100000001B3ULL
        h ^= h >> 29
    return h


cdef inline void flow_init(Flow* f) noexcept nogil:
    memset(f, 0, sizeof(Flow))
    f.win_scale = -1
    f.window = M32
    f.lastnondupack = -1
    f.mono = True
    f.valid_bif = True
    f.isn = -1
    f.fin_next = -1


cdef inline bint ge_seq(uint32_t a, uint32_t b) noexcept nogil:
    return <uint32_t>(a - b) < HALF


cdef class _HashTable:
    """Open addressing, linear probing; entries are never removed (a reused 4-tuple is
    overwritten in place), as the reference's dicts are only ever assigned."""

    cdef HEnt* ents
    cdef size_t mask
    cdef size_t used

    def __cinit__(self):
        self.mask = 1023
        self.used = 0
        self.ents = <HEnt*>malloc((self.mask + 1) * sizeof(HEnt))
        if self.ents == NULL:
            raise MemoryError()
        self._clear()

    def __dealloc__(self):
        free(self.ents)

    cdef void _clear(self) noexcept:
        cdef size_t i
        for i in range(self.mask + 1):
            self.ents[i].conv = -1
        self.used = 0

    cdef HEnt* find(self, const HKey* k) noexcept nogil:
        """The entry of `k`, or the empty slot where it would go (conv == -1)."""
        cdef size_t i = hkey_hash(k) & self.mask
        cdef HEnt* e
        while True:
            e = &self.ents[i]
            if e.conv < 0 or memcmp(&e.key, k, sizeof(HKey)) == 0:
                return e
            i = (i + 1) & self.mask

    cdef int put(self, const HKey* k, int32_t conv, int32_t d) except -1:
        cdef HEnt* e = self.find(k)
        if e.conv < 0:
            e.key = k[0]
            self.used += 1
        e.conv = conv
        e.dir = d
        if self.used * 2 > self.mask:
            self._grow()
        return 0

    cdef int _grow(self) except -1:
        cdef HEnt* old = self.ents
        cdef size_t n = self.mask + 1
        cdef size_t i
        cdef HEnt* e
        self.mask = n * 2 - 1
        self.ents = <HEnt*>malloc((self.mask + 1) * sizeof(HEnt))
        if self.ents == NULL:
            self.ents = old
            self.mask = n - 1
            raise MemoryError()
        self._clear()
        for i in range(n):
            if old[i].conv >= 0:
                e = self.find(&old[i].key)
                e[0] = old[i]
                self.used += 1
        free(old)
        return 0


cdef inline void make_key(HKey* k, const uint8_t* src, uint16_t sport, const uint8_t* dst, uint16_t dport,
                          uint8_t alen) noexcept nogil:
    memset(k, 0, sizeof(HKey))
    memcpy(k.src, src, alen)
    memcpy(k.dst, dst, alen)
    k.sport = sport
    k.dport = dport
    k.alen = alen


# -- column appends ------------------------------------------------------------------------

cdef inline int push_q(array.array a, int64_t v) except -1:
    cdef Py_ssize_t n = len(a)
    array.resize_smart(a, n + 1)
    a.data.as_longlongs[n] = v
    return 0


cdef inline int push_I(array.array a, uint32_t v) except -1:
    cdef Py_ssize_t n = len(a)
    array.resize_smart(a, n + 1)
    a.data.as_uints[n] = v
    return 0


cdef inline int push_i(array.array a, int32_t v) except -1:
    cdef Py_ssize_t n = len(a)
    array.resize_smart(a, n + 1)
    a.data.as_ints[n] = v
    return 0


cdef inline int push_b(array.array a, int v) except -1:
    cdef Py_ssize_t n = len(a)
    array.resize_smart(a, n + 1)
    a.data.as_schars[n] = <signed char>v
    return 0


cdef inline int push_B(array.array a, int v) except -1:
    cdef Py_ssize_t n = len(a)
    array.resize_smart(a, n + 1)
    a.data.as_uchars[n] = <unsigned char>v
    return 0


cdef inline int push_H(array.array a, int v) except -1:
    cdef Py_ssize_t n = len(a)
    array.resize_smart(a, n + 1)
    a.data.as_ushorts[n] = <unsigned short>v
    return 0


cdef inline int pad_zeros(array.array a, Py_ssize_t n) except -1:
    cdef Py_ssize_t old = len(a)
    array.resize_smart(a, n)
    memset(a.data.as_chars + old * a.ob_descr.itemsize, 0, (n - old) * a.ob_descr.itemsize)
    return 0


# -- the analyzer ---------------------------------------------------------------------------

cdef class CoreAnalyzer:
    """`PacketAnalyzer`'s interface and results, computed in C.

    `feed(pkt)` takes a decoded `Packet` (live capture, a filtered or correlated read);
    `Walker` feeds it straight from capture bytes. `connections` and `table` are the same
    Python objects the reference builds; per-connection counters live in C while packets
    stream in and are copied onto the `Connection`s by `sync()` (the walker calls it after
    every chunk, `feed` after every packet, `finish` at the end).
    """

    cdef readonly object table
    cdef readonly list connections
    cdef readonly int tcp_streams
    cdef readonly int udp_streams
    cdef _HashTable tcp
    cdef _HashTable udp
    cdef Conv** convs
    cdef Py_ssize_t nconv
    cdef Py_ssize_t capconv
    cdef int32_t* dirty
    cdef Py_ssize_t ndirty
    cdef Py_ssize_t capdirty
    # the table's columns, typed
    cdef array.array c_ts, c_off, c_conn, c_dir, c_flags, c_len, c_seq, c_ack, c_win, c_ana, c_bif
    cdef array.array dn_k, dn_v, df_k, df_v, rtt_k, rtt_v, af_k, af_v

    def __init__(self):
        self.table = PacketTable()
        self.connections = []
        self.tcp_streams = 0
        self.udp_streams = 0
        self.tcp = _HashTable()
        self.udp = _HashTable()
        t = self.table
        self.c_ts = t.ts_ns
        self.c_off = t.offset
        self.c_conn = t.conn
        self.c_dir = t.direction
        self.c_flags = t.flags
        self.c_len = t.seglen
        self.c_seq = t.rel_seq
        self.c_ack = t.rel_ack
        self.c_win = t.window
        self.c_ana = t.analysis
        self.c_bif = t.bytes_in_flight
        self.dn_k = t.dupack_num.keys_
        self.dn_v = t.dupack_num.values_
        self.df_k = t.dupack_frame.keys_
        self.df_v = t.dupack_frame.values_
        self.rtt_k = t.ack_rtt_ns.keys_
        self.rtt_v = t.ack_rtt_ns.values_
        self.af_k = t.acked_frame.keys_
        self.af_v = t.acked_frame.values_

    def __dealloc__(self):
        self._free_convs()
        free(self.dirty)

    cdef void _free_convs(self) noexcept:
        cdef Py_ssize_t i
        if self.convs != NULL:
            for i in range(self.nconv):
                free(self.convs[i].flows[0].segs)
                free(self.convs[i].flows[1].segs)
                free(self.convs[i])
            free(self.convs)
        self.convs = NULL
        self.nconv = self.capconv = 0

    def finish(self):
        self.sync()
        self.tcp = _HashTable()
        self.udp = _HashTable()
        self._free_convs()

    # -- syncing C counters onto the Connections ---------------------------------------

    def sync(self):
        cdef Py_ssize_t i
        cdef Conv* c
        cdef int b
        for i in range(self.ndirty):
            c = self.convs[self.dirty[i]]
            c.dirty = False
            conn = <object>c.conn
            conn.packets_c2s = c.packets[0]
            conn.packets_s2c = c.packets[1]
            conn.bytes_c2s = c.nbytes[0]
            conn.bytes_s2c = c.nbytes[1]
            conn.last_ts_ns = c.last_ts
            if c.norder:
                counts = conn.analysis_counts
                for b in range(c.norder):
                    counts[_BIT_NAMES[c.order[b]]] = c.counts[c.order[b]]
        self.ndirty = 0

    cdef inline int _touch(self, Conv* c) except -1:
        if c.dirty:
            return 0
        if self.ndirty == self.capdirty:
            self.capdirty = self.capdirty * 2 + 64
            self.dirty = <int32_t*>realloc(self.dirty, self.capdirty * sizeof(int32_t))
            if self.dirty == NULL:
                raise MemoryError()
        self.dirty[self.ndirty] = c.id
        self.ndirty += 1
        c.dirty = True
        return 0

    # -- new conversations -----------------------------------------------------------------

    cdef Conv* _new_conv(self, object conn) except NULL:
        cdef Conv* c = <Conv*>malloc(sizeof(Conv))
        if c == NULL:
            raise MemoryError()
        memset(c, 0, sizeof(Conv))
        c.id = len(self.connections)
        flow_init(&c.flows[0])
        flow_init(&c.flows[1])
        c.watch = True
        if self.nconv == self.capconv:
            self.capconv = self.capconv * 2 + 256
            self.convs = <Conv**>realloc(self.convs, self.capconv * sizeof(Conv*))
            if self.convs == NULL:
                free(c)
                raise MemoryError()
        self.convs[self.nconv] = c
        self.nconv += 1
        self.connections.append(conn)
        c.conn = <PyObject*>conn
        c.indices = <PyObject*>conn.packet_indices
        return c

    cdef Conv* _new_tcp(self, Pkt* p, HKey* key, int* d) except NULL:
        """A new TCP conversation; its client is the SYN sender (SYN-ACK receiver). `d` gets
        this packet's direction, as the reference returns it even when key and reverse key
        are one (a connection to itself), where the table then says otherwise."""
        cdef bint from_server = (p.flags & (SYN | ACK)) == (SYN | ACK)
        cdef HKey rkey
        src = p.src[:p.alen]
        dst = p.dst[:p.alen]
        if from_server:
            caddr, cport, saddr, sport = dst, p.dport, src, p.sport
        else:
            caddr, cport, saddr, sport = src, p.sport, dst, p.dport
        conn = Connection(
            id=len(self.connections), stream=self.tcp_streams, proto="tcp", client_addr=caddr, client_port=cport,
            server_addr=saddr, server_port=sport, first_ts_ns=p.ts_ns, last_ts_ns=p.ts_ns,
        )
        self.tcp_streams += 1
        cdef Conv* c = self._new_conv(conn)
        make_key(&rkey, key.dst, key.dport, key.src, key.sport, key.alen)
        if from_server:
            self.tcp.put(key, c.id, 1)
            self.tcp.put(&rkey, c.id, 0)
        else:
            self.tcp.put(key, c.id, 0)
            self.tcp.put(&rkey, c.id, 1)
        d[0] = 1 if from_server else 0
        return c

    # -- the hot path ------------------------------------------------------------------

    def feed(self, pkt):
        """Analyse one decoded `Packet` (the reference's entry point)."""
        cdef Pkt p
        cdef int64_t idx = pkt.index
        pkt_init(&p)
        p.ts_ns = pkt.ts_ns
        p.offset = pkt.offset
        p.proto = pkt.proto
        p.payload_offset = pkt.payload_offset
        src = pkt.src
        dst = pkt.dst
        p.alen = len(src)
        if p.alen:
            memcpy(p.src, <const char*>src, p.alen)
            memcpy(p.dst, <const char*>dst, p.alen)
        p.sport = pkt.sport
        p.dport = pkt.dport
        p.seq = pkt.seq
        p.ack = pkt.ack
        p.flags = pkt.flags
        p.window = pkt.window
        p.payload_len = pkt.payload_len
        if pkt.mss is not None:
            p.mss = pkt.mss
        if pkt.wscale is not None:
            p.wscale = pkt.wscale
        p.sack_perm = pkt.sack_perm
        p.has_ts = pkt.ts_val is not None
        sack = pkt.sack
        if sack is not None:
            p.has_sack = True
            p.nsack = min(len(sack), 4)
            for i in range(p.nsack):
                p.sack_l[i] = sack[i][0]
                p.sack_r[i] = sack[i][1]
        tfo = pkt.tfo_cookie
        quoted = pkt.quoted
        if quoted is not None:
            p.has_quoted = True
            p.q_proto = quoted[0]
            p.q_alen = len(quoted[1])
            if p.q_alen:
                memcpy(p.q_src, <const char*>quoted[1], p.q_alen)
                memcpy(p.q_dst, <const char*>quoted[3], p.q_alen)
            p.q_sport = quoted[2]
            p.q_dport = quoted[4]
        self.process(&p, idx, tfo)
        self.sync()

    cdef int pad_to(self, int64_t index) except -1:
        """PacketTable.pad_to in C: a filtered read pads before every kept packet."""
        cdef Py_ssize_t n = len(self.c_ts)
        cdef Py_ssize_t i
        if index <= n:
            return 0
        for col in (self.c_ts, self.c_off, self.c_dir, self.c_flags, self.c_len, self.c_seq, self.c_ack,
                    self.c_win, self.c_ana, self.c_bif):
            pad_zeros(<array.array>col, index)
        pad_zeros(self.c_conn, index)
        for i in range(n, index):
            self.c_conn.data.as_ints[i] = -1
        return 0

    cdef int process(self, Pkt* p, int64_t idx, object tfo) except -1:
        """PacketAnalyzer.feed for one packet; `tfo` is the TFO cookie when the caller has
        it as bytes already (else it is cut from the frame when a SYN needs it)."""
        if idx != len(self.c_ts):
            self.pad_to(idx)
        if p.proto != PROTO_TCP or not p.payload_offset:
            return self.other_packet(p, idx)
        cdef int64_t ts = p.ts_ns
        cdef int flags = p.flags
        cdef uint32_t seq = p.seq
        cdef uint32_t ack = p.ack
        cdef uint32_t seglen = p.payload_len
        cdef int64_t window = p.window
        cdef HKey key
        cdef HEnt* e
        cdef Conv* conv
        cdef Flow* fwd
        cdef Flow* rev
        cdef int d
        cdef int ta = 0
        make_key(&key, p.src, p.sport, p.dst, p.dport, p.alen)
        e = self.tcp.find(&key)
        if e.conv < 0:
            conv = self._new_tcp(p, &key, &d)
        else:
            d = e.dir
            conv = self.convs[e.conv]
            if flags & SYN:
                fwd = &conv.flows[d]
                if fwd.base_set:
                    if seq != fwd.base_seq:
                        if flags & ACK:
                            fwd.base_seq = seq
                        else:
                            conv = self._new_tcp(p, &key, &d)
                        ta = A_REUSED_PORTS
                    elif not flags & ACK:
                        fwd.nextseq = fwd.maxseqtobeacked
        fwd = &conv.flows[d]
        rev = &conv.flows[1 - d]

        # tcp_analyze_sequence_number()
        if not fwd.base_set:
            fwd.base_seq = seq if flags & SYN else <uint32_t>(seq - 1)
            fwd.base_set = True
        if flags & ACK:
            if not rev.base_set:
                rev.base_seq = <uint32_t>(ack - 1)
                rev.base_set = True
            rev.valid_bif = True
        cdef uint32_t nxt = fwd.nextseq
        cdef bint no_sfr = not (flags & 7)
        cdef int64_t dup_num = 0
        if seglen == 1 and seq == nxt and rev.window == 0:
            ta |= A_ZERO_WINDOW_PROBE
        else:
            if window == 0 and no_sfr:
                ta |= A_ZERO_WINDOW
            if nxt and <uint32_t>(nxt - seq) >= HALF and not flags & RST:
                ta |= A_LOST_SEGMENT
                fwd.valid_bif = False
            if seglen < 2 and no_sfr and seq == <uint32_t>(nxt - 1):
                ta |= A_KEEP_ALIVE
            if seglen == 0:
                if no_sfr and seq == nxt and ack == fwd.lastack:
                    if window:
                        if window != fwd.window:
                            ta |= A_WINDOW_UPDATE
                        elif rev.lastflags & A_KEEP_ALIVE:
                            ta |= A_KEEP_ALIVE_ACK
                        else:
                            fwd.dupacknum = 1 if fwd.dupacknum == -1 else fwd.dupacknum + 1
                            dup_num = fwd.dupacknum
                            ta |= A_DUPLICATE_ACK
                    elif fwd.window == 0 and rev.lastflags & A_ZERO_WINDOW_PROBE:
                        ta |= A_ZERO_WINDOW_PROBE_ACK
            elif (
                no_sfr
                and rev.win_scale != -1
                and <uint32_t>(seq + seglen)
                == <uint32_t>(rev.lastack + <uint32_t>((<uint64_t>rev.window << (0 if rev.first_ack else rev.shift))
                                                      & M32))
            ):
                ta |= A_WINDOW_FULL
        if dup_num:
            push_I(self.dn_k, <uint32_t>idx)
            push_I(self.dn_v, <uint32_t>dup_num)
            push_I(self.df_k, <uint32_t>idx)
            push_i(self.df_v, <int32_t>fwd.lastnondupack)
        if ack != fwd.lastack:
            fwd.lastnondupack = idx
            fwd.dupacknum = 0
        cdef uint32_t mx
        if flags & ACK:
            mx = rev.maxseqtobeacked
            if mx and <uint32_t>(mx - ack) >= HALF:
                if <uint32_t>(mx - rev.nextseq) >= HALF:
                    rev.maxseqtobeacked = rev.nextseq
                    ta |= A_ACK_LOST_SEGMENT
                else:
                    if rev.dupacknum == 0:
                        ta |= A_ACK_LOST_SEGMENT
                    rev.dupacknum = -1
        cdef bint not_advanced
        cdef uint32_t la, dd
        cdef int64_t t, thr
        if (seglen or flags & 3) and not ta & A_KEEP_ALIVE:
            not_advanced = nxt and <uint32_t>(seq - nxt) >= HALF
            if seglen > 1 and <uint32_t>(nxt - 1) == seq:
                not_advanced = False
            la = rev.lastack
            dd = <uint32_t>(seq + seglen - la)
            if seglen and la and not (0 < dd < HALF):
                ta |= A_SPURIOUS_RETRANSMISSION
            elif not_advanced:
                t = ts - rev.lastacktime
                if rev.dupacknum >= 2 and la == seq and 0 <= t < FAST_RETRANS_NS:
                    ta |= A_FAST_RETRANSMISSION
                else:
                    t = ts - fwd.nextseqtime
                    thr = conv.first_rtt if conv.first_rtt != 0 else OOO_DEFAULT_NS
                    if 0 <= t < thr and nxt != <uint32_t>(seq + seglen + (1 if flags & 3 else 0)):
                        ta |= A_OUT_OF_ORDER
                    else:
                        ta |= A_RETRANSMISSION

        cdef uint32_t nextseq = <uint32_t>(seq + seglen)
        if (seglen or flags & 3) and fwd.nseg - fwd.head < MAX_UNACKED:
            if flags & 3:
                nextseq = <uint32_t>(nextseq + 1)
            if fwd.nseg > fwd.head and fwd.mono and <uint32_t>(seq - fwd.segs[fwd.nseg - 1].nextseq) >= HALF:
                fwd.mono = False
            seg_append(fwd, seq, nextseq, <uint32_t>idx, ts)
        if (not nxt or <uint32_t>(nxt - nextseq) >= HALF) and not ta & A_ZERO_WINDOW_PROBE:
            fwd.nextseq = nextseq
            fwd.nextseqtime = ts
        mx = fwd.maxseqtobeacked
        if (seq == mx or not mx) and not ta & A_ZERO_WINDOW_PROBE:
            fwd.maxseqtobeacked = fwd.nextseq
        fwd.window = window
        fwd.lastack = ack
        fwd.lastacktime = ts
        fwd.lastflags = ta

        # Remove what this ACK acknowledges from the other direction's list.
        cdef Seg hit
        cdef bint found = False
        cdef Py_ssize_t i, n
        cdef uint32_t gap
        cdef Seg* s
        if rev.nseg > rev.head:
            if rev.mono:
                n = 0
                i = rev.head
                while i < rev.nseg:
                    s = &rev.segs[i]
                    gap = <uint32_t>(s.nextseq - ack)
                    if gap == 0:
                        hit = s[0]
                        found = True
                        n += 1
                        break
                    if gap <= HALF:
                        if <uint32_t>(s.seq - ack) >= HALF:
                            s.seq = ack
                        break
                    n += 1
                    i += 1
                rev.head += n
                if rev.head == rev.nseg:
                    rev.head = rev.nseg = 0
            else:
                found = ack_segments_slow(rev, ack, &hit)
            if found:
                push_I(self.af_k, <uint32_t>idx)
                push_I(self.af_v, hit.idx)
                if ts - hit.ts:
                    push_I(self.rtt_k, <uint32_t>idx)
                    push_q(self.rtt_v, ts - hit.ts)
            if rev.nseg == rev.head:
                rev.mono = True

        cdef uint32_t bif = 0
        cdef uint32_t base, first, last, in_flight
        if seglen and fwd.nseg > fwd.head and fwd.valid_bif:
            base = fwd.base_seq
            if fwd.mono:
                first = <uint32_t>(fwd.segs[fwd.head].seq - base)
                last = <uint32_t>(fwd.segs[fwd.nseg - 1].nextseq - base)
                in_flight = last - first if first <= last else bytes_in_flight_slow(fwd, base)
            else:
                in_flight = bytes_in_flight_slow(fwd, base)
            if rev.sacked:
                in_flight = <uint32_t>(in_flight - rev.sacked)
            if 0 < in_flight < BIF_LIMIT:
                bif = in_flight - 1 if flags & 3 else in_flight
        cdef uint32_t sacked
        if p.has_sack:
            sacked = 0
            for i in range(p.nsack if p.nsack < 3 else 3):
                sacked = <uint32_t>(sacked + <uint32_t>(p.sack_r[i] - p.sack_l[i]))
            fwd.sacked = sacked
        elif fwd.sacked:
            fwd.sacked = 0

        push_q(self.c_ts, ts)
        push_q(self.c_off, p.offset)
        push_i(self.c_conn, conv.id)
        push_b(self.c_dir, d)
        push_B(self.c_flags, flags)
        push_I(self.c_len, seglen)
        push_I(self.c_seq, <uint32_t>(seq - fwd.base_seq))
        push_I(self.c_ack, <uint32_t>(ack - rev.base_seq) if flags & ACK else ack)
        push_I(self.c_win, <uint32_t>(window if flags & SYN else window << fwd.shift))
        push_H(self.c_ana, ta)
        push_I(self.c_bif, bif)
        conv.packets[d] += 1
        conv.nbytes[d] += seglen
        conv.last_ts = ts
        push_I(<array.array><object>conv.indices, <uint32_t>idx)
        if ta:
            count_flags(conv, ta)
        self._touch(conv)
        if flags & SYN or p.wscale >= 0:
            self._on_options(p, conv, fwd, rev, d, tfo)
        cdef int64_t rtt
        if flags & (SYN | ACK) == ACK:
            if conv.rtt_wait:
                conv.first_rtt = rtt = ts - conv.mru_syn
                if rtt:
                    conv.rtt_wait = False
                    (<object>conv.conn).initial_rtt_ns = rtt
            fwd.first_ack = False
        if flags & 7 or conv.watch:
            self._track_state(conv, fwd, rev, d, idx, ts, flags, seq, ack, seglen)
        return 0

    cdef int other_packet(self, Pkt* p, int64_t idx) except -1:
        """UDP datagrams, ICMP errors (attributed to the flow they quote) and the rest."""
        cdef int32_t conn_id = -1
        cdef int direction = 0
        cdef uint32_t seglen = 0
        cdef HKey key
        cdef HEnt* e
        cdef Conv* c
        cdef int qdir
        if p.proto == PROTO_UDP and p.payload_offset:
            make_key(&key, p.src, p.sport, p.dst, p.dport, p.alen)
            e = self.udp.find(&key)
            if e.conv < 0:
                e = self._new_udp(p, &key)
                direction = 0
            else:
                direction = e.dir
            c = self.convs[e.conv]
            seglen = p.payload_len
            c.packets[direction] += 1
            c.nbytes[direction] += seglen
            c.last_ts = p.ts_ns
            push_I(<array.array><object>c.indices, <uint32_t>idx)
            self._touch(c)
            conn_id = c.id
        elif (p.proto == PROTO_ICMP or p.proto == PROTO_ICMPV6) and p.has_quoted:
            make_key(&key, p.q_src, p.q_sport, p.q_dst, p.q_dport, p.q_alen)
            e = NULL
            if p.q_proto == PROTO_TCP:
                e = self.tcp.find(&key)
            elif p.q_proto == PROTO_UDP:
                e = self.udp.find(&key)
            if e != NULL and e.conv >= 0:
                c = self.convs[e.conv]
                conn = <object>c.conn
                conn.icmp_errors += 1
                conn.icmp_indices.append(idx)
                conn_id = c.id
                direction = 1 - e.dir
        push_q(self.c_ts, p.ts_ns)
        push_q(self.c_off, p.offset)
        push_i(self.c_conn, conn_id)
        push_b(self.c_dir, direction)
        push_B(self.c_flags, 0)
        push_I(self.c_len, seglen)
        push_I(self.c_seq, 0)
        push_I(self.c_ack, 0)
        push_I(self.c_win, 0)
        push_H(self.c_ana, 0)
        push_I(self.c_bif, 0)
        return 0

    cdef HEnt* _new_udp(self, Pkt* p, HKey* key) except NULL:
        cdef HKey rkey
        conn = Connection(
            id=len(self.connections), stream=self.udp_streams, proto="udp", client_addr=p.src[:p.alen],
            client_port=p.sport, server_addr=p.dst[:p.alen], server_port=p.dport, first_ts_ns=p.ts_ns,
            last_ts_ns=p.ts_ns,
        )
        self.udp_streams += 1
        cdef Conv* c = self._new_conv(conn)
        make_key(&rkey, key.dst, key.dport, key.src, key.sport, key.alen)
        self.udp.put(key, c.id, 0)
        self.udp.put(&rkey, c.id, 1)
        return self.udp.find(key)

    cdef int _on_options(self, Pkt* p, Conv* conv, Flow* fwd, Flow* rev, int d, object tfo) except -1:
        """SYN bookkeeping: handshake options, ISNs and Wireshark's window-scale rules."""
        conn = <object>conv.conn
        cdef int flags = p.flags
        if p.wscale >= 0:
            fwd.win_scale = p.wscale if p.wscale < 14 else 14
        if flags & SYN:
            if tfo is None and p.tfo_off >= 0:
                tfo = (<const char*>p.frame)[p.tfo_off:p.tfo_off + p.tfo_len]
            opts = HandshakeOptions(
                mss=p.mss if p.mss >= 0 else None,
                wscale=p.wscale if p.wscale >= 0 else None,
                sack_perm=bool(p.sack_perm),
                timestamps=bool(p.has_ts),
                tfo=tfo is not None,
                tfo_cookie=tfo,
            )
            fwd.isn = p.seq
            if d:
                conn.server_options = opts
                conn.server_isn = p.seq
            else:
                conn.client_options = opts
                conn.client_isn = p.seq
            if not flags & ACK:
                conv.mru_syn = p.ts_ns
                conv.rtt_wait = p.ts_ns != 0 and not conv.first_rtt
            fwd.first_ack = True
            # verify_tcp_window_scaling()
            if fwd.win_scale == -1:
                fwd.win_scale = rev.win_scale = -2
            elif flags & ACK and rev.win_scale == -2:
                fwd.win_scale = -2
        fwd.shift = fwd.win_scale if fwd.win_scale > 0 else 0
        rev.shift = rev.win_scale if rev.win_scale > 0 else 0
        cdef Flow* client = &conv.flows[0]
        cdef Flow* server = &conv.flows[1]
        conn.wscale_in_use = client.win_scale >= 0 and server.win_scale >= 0
        conn.client_wscale = client.shift
        conn.server_wscale = server.shift
        return 0

    # -- connection state as seen on the wire -------------------------------------------

    cdef int _go(self, Conv* conv, int side, int state, int64_t ts, int64_t idx) except -1:
        cdef Flow* flow = &conv.flows[side]
        if flow.state == state:
            return 0
        flow.state = state
        conn = <object>conv.conn
        history = conn.server_state if side else conn.client_state
        history.append((ts, idx, _STATE_NAMES[state]))
        if state == S_TIME_WAIT and not conv.has_closer:
            conv.has_closer = True
            conn.active_closer = SERVER if side else CLIENT
        return 0

    cdef int _track_state(self, Conv* conv, Flow* fwd, Flow* rev, int d, int64_t idx, int64_t ts, int flags,
                          uint32_t seq, uint32_t ack, uint32_t n) except -1:
        cdef int f = d
        cdef int r = 1 - d
        cdef int side
        cdef Flow* flow
        cdef bint acks_peer_fin
        if flags & RST:
            if not conv.has_reset_by:
                conv.has_reset_by = True
                (<object>conv.conn).reset_by = SERVER if d else CLIENT
            for side in (f, r):
                flow = &conv.flows[side]
                if flow.state == S_TIME_WAIT:
                    self._go(conv, side, S_CLOSED, ts, idx)
                elif flow.state != S_CLOSED and flow.state != S_RESET:
                    self._go(conv, side, S_RESET, ts, idx)
        elif flags & SYN:
            if flags & ACK:
                if fwd.state == 0 or fwd.state == S_SYN_SENT:
                    self._go(conv, f, S_SYN_RECEIVED, ts, idx)
                if (rev.state == 0 or rev.state == S_SYN_SENT) and (
                    rev.isn < 0 or ack == <uint32_t>(rev.isn + 1)
                ):
                    self._go(conv, r, S_ESTABLISHED, ts, idx)
            elif fwd.state == 0:
                self._go(conv, f, S_SYN_SENT, ts, idx)
        else:
            if fwd.state == 0 and rev.state == 0:
                self._go(conv, f, S_ESTABLISHED, ts, idx)
                self._go(conv, r, S_ESTABLISHED, ts, idx)
            if flags & ACK:
                if fwd.state == S_SYN_SENT:
                    self._go(conv, f, S_ESTABLISHED, ts, idx)
                if rev.state == S_SYN_RECEIVED and (rev.isn < 0 or ge_seq(ack, <uint32_t>(rev.isn + 1))):
                    self._go(conv, r, S_ESTABLISHED, ts, idx)
            acks_peer_fin = (flags & ACK) != 0 and rev.fin_next >= 0 and ge_seq(ack, <uint32_t>rev.fin_next)
            if flags & FIN and fwd.fin_next < 0:
                fwd.fin_next = <uint32_t>(seq + n + 1)
                if rev.fin_next < 0:
                    self._go(conv, f, S_FIN_WAIT_1, ts, idx)
                    self._go(conv, r, S_CLOSE_WAIT, ts, idx)
                else:
                    self._go(conv, f, S_LAST_ACK, ts, idx)
                    if rev.state == S_FIN_WAIT_2 or (rev.state == S_FIN_WAIT_1 and acks_peer_fin):
                        self._go(conv, r, S_TIME_WAIT, ts, idx)
                    elif rev.state == S_FIN_WAIT_1:
                        self._go(conv, r, S_CLOSING, ts, idx)
            elif acks_peer_fin:
                if rev.state == S_FIN_WAIT_1:
                    self._go(conv, r, S_FIN_WAIT_2, ts, idx)
                elif rev.state == S_LAST_ACK:
                    self._go(conv, r, S_CLOSED, ts, idx)
                elif rev.state == S_CLOSING:
                    self._go(conv, r, S_TIME_WAIT, ts, idx)
        conv.watch = watched(fwd.state) or watched(rev.state)
        return 0


cdef inline bint watched(int state) noexcept nogil:
    return (state == S_SYN_SENT or state == S_SYN_RECEIVED or state == S_FIN_WAIT_1 or state == S_CLOSING
            or state == S_LAST_ACK)


cdef inline void count_flags(Conv* c, int mask) noexcept nogil:
    """Per-connection counts under Wireshark's field names: a fast or spurious
    retransmission is a tcp.analysis.retransmission too (analysis_flags.flag_names)."""
    cdef int b
    if mask & (A_FAST_RETRANSMISSION | A_SPURIOUS_RETRANSMISSION):
        mask |= A_RETRANSMISSION
    for b in range(NFLAGS):
        if mask & (1 << b):
            if c.counts[b] == 0:
                c.order[c.norder] = <uint8_t>b
                c.norder += 1
            c.counts[b] += 1


cdef int seg_append(Flow* f, uint32_t seq, uint32_t nextseq, uint32_t idx, int64_t ts) except -1:
    cdef Py_ssize_t live
    if f.nseg == f.cap:
        live = f.nseg - f.head
        if f.head and live < f.cap // 2:
            memmove(f.segs, f.segs + f.head, live * sizeof(Seg))
        else:
            f.cap = f.cap * 2 + 4
            f.segs = <Seg*>realloc(f.segs, f.cap * sizeof(Seg))
            if f.segs == NULL:
                raise MemoryError()
            if f.head:
                memmove(f.segs, f.segs + f.head, live * sizeof(Seg))
        f.head = 0
        f.nseg = live
    f.segs[f.nseg].seq = seq
    f.segs[f.nseg].nextseq = nextseq
    f.segs[f.nseg].idx = idx
    f.segs[f.nseg].ts = ts
    f.nseg += 1
    return 0


cdef bint ack_segments_slow(Flow* flow, uint32_t ack, Seg* hit) noexcept nogil:
    """tcp_analysis._ack_segments_slow, walked oldest first (the oldest exact match wins,
    and what stays keeps its order either way)."""
    cdef Py_ssize_t i, k = flow.head
    cdef Seg s
    cdef bint found = False
    cdef uint32_t nxt
    for i in range(flow.head, flow.nseg):
        s = flow.segs[i]
        nxt = s.nextseq
        if ack == nxt:
            if not found:
                hit[0] = s
                found = True
        elif <uint32_t>(s.seq - ack) >= HALF and not (0 < <uint32_t>(ack - nxt) < HALF):
            s.seq = ack
            flow.segs[k] = s
            k += 1
        elif <uint32_t>(ack - nxt) >= HALF:
            flow.segs[k] = s
            k += 1
    flow.nseg = k
    flow.mono = True
    for i in range(flow.head + 1, flow.nseg):
        if <uint32_t>(flow.segs[i].seq - flow.segs[i - 1].nextseq) >= HALF:
            flow.mono = False
            break
    return found


cdef uint32_t bytes_in_flight_slow(Flow* f, uint32_t base) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint32_t first = M32, last = 0, a, b
    for i in range(f.head, f.nseg):
        a = <uint32_t>(f.segs[i].seq - base)
        b = <uint32_t>(f.segs[i].nextseq - base)
        if a < first:
            first = a
        if b > last:
            last = b
    return <uint32_t>(last - first)


# -- the record walker ------------------------------------------------------------------------

cdef struct Iface:
    int64_t linktype
    int64_t snaplen
    int64_t mult
    int64_t offset_sec


cdef inline uint32_t rd32(const uint8_t* b, bint big) noexcept nogil:
    return u32(b, 0) if big else u32le(b, 0)


cdef inline uint16_t rd16(const uint8_t* b, bint big) noexcept nogil:
    return u16(b, 0) if big else <uint16_t>(b[0] | (b[1] << 8))


cdef class Walker:
    """Walks pcap/pcapng records in the chunks the caller reads (file, gzip, stdin) and
    feeds every packet to a `CoreAnalyzer`; errors are `CaptureReader`'s, word for word.

    `walk(data, base)` consumes the complete records at the front of `data` (whose first
    byte is at file offset `base`) and returns how many bytes it used; `end(total)` says
    the input ended after `total` bytes and raises what a reader would for a partial
    record. `count` stops after that many packets (tshark's -c), `done` says it did.
    """

    cdef CoreAnalyzer an
    cdef object path
    cdef public object on_custom
    # Packets whose timestamp was clamped to ±2^62 ns (capture_file.TS_LIMIT), the first's offset.
    cdef public int64_t clamped
    cdef public object first_clamped
    cdef int fmt
    cdef bint big
    cdef bint header_done
    cdef Iface pcap_if
    cdef int64_t pcap_limit
    cdef uint64_t pcap_units
    cdef Iface* ifaces
    cdef int nif
    cdef int capif
    cdef list if_units
    cdef public int64_t good_until
    cdef public int64_t index
    cdef public int64_t undecodable
    cdef public int64_t skipped_blocks
    cdef public int64_t kept
    cdef public int64_t first_ns
    cdef public int64_t last_ns
    cdef public int64_t max_ns
    cdef int64_t count
    cdef public bint done
    cdef public dict unknown
    cdef int64_t last_unknown
    cdef object keep
    cdef bint analyze

    def __init__(self, CoreAnalyzer analyzer, str path, on_custom=None, count=None, keep=None, analyze=True):
        # analyze=False decodes and filters only: bench/analyze_vs_tshark times the decode alone.
        self.analyze = analyze
        self.an = analyzer
        self.path = path
        self.on_custom = on_custom
        self.count = -1 if count is None else count
        self.unknown = {}
        self.last_unknown = -1
        self.if_units = []
        self.keep = keep
        self.max_ns = -(1 << 62)

    def __dealloc__(self):
        free(self.ifaces)

    def walk(self, data, int64_t base):
        cdef const uint8_t[::1] view = data
        cdef Py_ssize_t n = view.shape[0]
        if n == 0:
            return 0
        cdef const uint8_t* buf = &view[0]
        cdef uint32_t magic
        if self.fmt == 0:
            if n < 4:
                return 0
            magic = u32le(buf, 0)
            if magic == PCAPNG_SHB:
                self.fmt = 2
            elif magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or u32(buf, 0) in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
                self.fmt = 1
            else:
                raise CorruptCapture(self.path, f"not a pcap or pcapng file (magic 0x{magic:08x})", offset=0)
        if self.fmt == 1:
            return self._pcap(buf, n, base)
        return self._pcapng(buf, n, base)

    def end(self, int64_t total):
        if self.done:
            return
        if self.fmt == 0:
            what = "empty file" if total == 0 else f"{total}-byte file"
            raise InputError(self.path, f"{what}, not a capture", offset=0)
        if self.fmt == 1 and not self.header_done:
            raise TruncatedCapture(self.path, "file ends inside the pcap header", offset=0)
        if total > self.good_until:
            raise TruncatedCapture(
                self.path,
                f"file ends inside a record ({total - self.good_until} of its bytes present)",
                offset=self.good_until,
            )

    cdef int _packet(self, const uint8_t* frame, int64_t incl, int64_t ts, int64_t offset, int64_t linktype,
                     int64_t wirelen) except -1:
        cdef Pkt p
        cdef int64_t idx = self.index
        pkt_init(&p)
        p.ts_ns = ts
        p.offset = offset
        p.wirelen = wirelen
        decode(&p, frame, incl, linktype)
        self.index += 1
        if p.ip_version == 0 and not linktype_supported(linktype):
            if linktype != self.last_unknown and linktype not in self.unknown:
                self.unknown[linktype] = offset
            self.last_unknown = linktype
            self.undecodable += 1
        if self.keep is None or self._keep(&p):
            if self.kept == 0:
                self.first_ns = ts
            self.kept += 1
            self.last_ns = ts
            if ts > self.max_ns:
                self.max_ns = ts
            if self.analyze:
                self.an.process(&p, idx, None)
        if self.index == self.count:
            self.done = True
        return 0

    cdef bint _keep(self, Pkt* p) except -1:
        return filter_match(<FilterProgram>self.keep, p)

    cdef Py_ssize_t _pcap(self, const uint8_t* buf, Py_ssize_t n, int64_t base) except -1:
        cdef Py_ssize_t pos = 0
        cdef uint32_t magic, snaplen, network, sec, frac, incl, orig
        cdef Py_ssize_t end
        if not self.header_done:
            if n < 24:
                return 0
            magic = u32le(buf, 0)
            if magic == PCAP_MAGIC_US or magic == PCAP_MAGIC_NS:
                self.big = False
            else:
                self.big = True
                magic = u32(buf, 0)
            self.pcap_units = 1000000000 if magic == PCAP_MAGIC_NS else 1000000
            snaplen = rd32(buf + 16, self.big)
            network = rd32(buf + 20, self.big)
            self.pcap_if.linktype = network & 0x03FFFFFF
            self.pcap_if.mult = 1000000000 // self.pcap_units
            limit = (snaplen if snaplen > 262144 else 262144) if snaplen else MAX_RECORD
            self.pcap_limit = limit if limit < MAX_RECORD else MAX_RECORD
            self.header_done = True
            pos = 24
            self.good_until = base + pos
        while not self.done:
            if n - pos < 16:
                break
            sec = rd32(buf + pos, self.big)
            frac = rd32(buf + pos + 4, self.big)
            incl = rd32(buf + pos + 8, self.big)
            orig = rd32(buf + pos + 12, self.big)
            if incl > self.pcap_limit or frac >= self.pcap_units:
                what = f"record length {incl}" if incl > self.pcap_limit else f"sub-second field {frac}"
                raise CorruptCapture(self.path, f"corrupt pcap record header ({what})", offset=base + pos)
            end = pos + 16 + incl
            if end > n:
                break
            self._packet(buf + pos + 16, incl, <int64_t>sec * 1000000000 + <int64_t>frac * self.pcap_if.mult,
                         base + pos, self.pcap_if.linktype, orig)
            pos = end
            self.good_until = base + pos
        return pos

    cdef int64_t _ts(self, int iface_id, uint32_t hi, uint32_t lo, int64_t offset) except? -1:
        """capture_file's ts_to_ns + if_tsoffset, clamped to ±2^62 ns as the reader does;
        in C when nothing can overflow, else in Python ints (rare resolutions and values)."""
        cdef Iface* f = &self.ifaces[iface_id]
        cdef uint64_t units = (<uint64_t>hi << 32) | lo
        cdef int64_t ts
        if f.mult and units <= <uint64_t>(TS_LIMIT_NS // f.mult) and -(1 << 31) <= f.offset_sec <= (1 << 31):
            # |ts| < 2^62 + 2^31 * 10^9 < 2^63
            ts = <int64_t>(units * <uint64_t>f.mult) + f.offset_sec * 1000000000
            if -TS_LIMIT_NS <= ts <= TS_LIMIT_NS:
                return ts
        big = ts_to_ns(units, self.if_units[iface_id]) + <object>f.offset_sec * 1000000000
        if -TS_LIMIT_NS <= big <= TS_LIMIT_NS:
            return big
        self.clamped += 1
        if self.clamped == 1:
            self.first_clamped = offset
        return clamp_ns(big)

    cdef Py_ssize_t _pcapng(self, const uint8_t* buf, Py_ssize_t n, int64_t base) except -1:
        cdef Py_ssize_t pos = 0, body, body_end, data_end, opt_start
        cdef uint32_t btype, bom, blen, minlen, iface_id, hi, lo, incl, orig
        cdef int64_t offset
        cdef bint big = self.big
        while not self.done:
            if n - pos < 12:
                break
            btype = rd32(buf + pos, big)
            if btype == PCAPNG_SHB:
                bom = u32le(buf, pos + 8)
                if bom == 0x1A2B3C4D:
                    big = False
                elif bom == 0x4D3C2B1A:
                    big = True
                else:
                    raise CorruptCapture(self.path, "bad pcapng byte-order magic", offset=base + pos)
                self.big = big
                self.nif = 0
                self.if_units = []
            blen = rd32(buf + pos + 4, big)
            if btype == PCAPNG_SHB:
                minlen = 28
            elif btype == BT_IDB:
                minlen = 20
            elif btype == BT_PB or btype == BT_EPB:
                minlen = 32
            elif btype == BT_SPB or btype == BT_CUSTOM or btype == BT_CUSTOM_NOCOPY:
                minlen = 16
            else:
                minlen = 12
            if blen < minlen or blen % 4 or blen > MAX_RECORD:
                raise CorruptCapture(self.path, f"corrupt pcapng block length {blen}", offset=base + pos)
            if n - pos < blen:
                break
            offset = base + pos
            if rd32(buf + pos + blen - 4, big) != blen:
                raise CorruptCapture(self.path, "pcapng block lengths disagree", offset=offset)
            body = pos + 8
            body_end = pos + blen - 4
            if btype == BT_EPB:
                iface_id = rd32(buf + body, big)
                hi = rd32(buf + body + 4, big)
                lo = rd32(buf + body + 8, big)
                incl = rd32(buf + body + 12, big)
                orig = rd32(buf + body + 16, big)
                if iface_id >= <uint32_t>self.nif:
                    raise CorruptCapture(self.path, f"packet names undefined interface {iface_id}", offset=offset)
                data_end = body + 20 + incl
                if data_end > body_end:
                    raise CorruptCapture(self.path, "packet data overruns its block", offset=offset)
                self._packet(buf + body + 20, incl, self._ts(iface_id, hi, lo, offset), offset,
                             self.ifaces[iface_id].linktype, orig)
            elif btype == BT_SPB:
                if self.nif == 0:
                    raise CorruptCapture(self.path, "simple packet block before any interface", offset=offset)
                orig = rd32(buf + body, big)
                incl = orig if orig < body_end - body - 4 else body_end - body - 4
                if self.ifaces[0].snaplen and incl > self.ifaces[0].snaplen:
                    incl = self.ifaces[0].snaplen
                self._packet(buf + body + 4, incl, 0, offset, self.ifaces[0].linktype, orig)
            elif btype == BT_PB:
                iface_id = rd16(buf + body, big)
                hi = rd32(buf + body + 4, big)
                lo = rd32(buf + body + 8, big)
                incl = rd32(buf + body + 12, big)
                orig = rd32(buf + body + 16, big)
                if iface_id >= <uint32_t>self.nif:
                    raise CorruptCapture(self.path, f"packet names undefined interface {iface_id}", offset=offset)
                if body + 20 + incl > body_end:
                    raise CorruptCapture(self.path, "packet data overruns its block", offset=offset)
                self._packet(buf + body + 20, incl, self._ts(iface_id, hi, lo, offset), offset,
                             self.ifaces[iface_id].linktype, orig)
            elif btype == BT_IDB:
                self._interface(buf, n, body, body_end, big)
            elif btype == BT_CUSTOM or btype == BT_CUSTOM_NOCOPY:
                block = CustomBlock(
                    pen=rd32(buf + body, big), data=(<const char*>buf)[body + 4:body_end], offset=offset
                )
                if self.on_custom is not None:
                    self.on_custom(block)
            elif btype != PCAPNG_SHB and btype != BT_NRB and btype != BT_ISB and btype != BT_DSB:
                self.skipped_blocks += 1
            pos += blen
            self.good_until = base + pos
        return pos

    cdef int _interface(self, const uint8_t* buf, Py_ssize_t n, Py_ssize_t body, Py_ssize_t end, bint big) except -1:
        cdef Iface f
        cdef Py_ssize_t pos = body + 8
        cdef uint16_t code, length
        cdef int r
        cdef int64_t off
        cdef object units = 1000000
        cdef object power
        f.linktype = rd16(buf + body, big)
        f.snaplen = rd32(buf + body + 4, big)
        f.offset_sec = 0
        while pos + 4 <= end:
            code = rd16(buf + pos, big)
            length = rd16(buf + pos + 2, big)
            if code == 0:
                break
            # _options() slices the value from the buffer, not the block: mirror that.
            avail = n - (pos + 4)
            if code == 9 and length and avail > 0:
                r = buf[pos + 4]
                # Python ints: 10**r and 2**r overflow C types for the finer resolutions.
                power = <object>(r & 0x7F)
                units = 2**power if r & 0x80 else 10**power
            elif code == 14 and length >= 8 and avail >= 8:
                off = <int64_t>(rd32(buf + pos + 4, big) if not big else rd32(buf + pos + 8, big))
                off |= <int64_t>(<uint64_t>(rd32(buf + pos + 8, big) if not big else rd32(buf + pos + 4, big)) << 32)
                f.offset_sec = off
            pos += 4 + ((length + 3) & ~3)
        f.mult = 1000000000 // units if 1000000000 % units == 0 else 0
        if self.nif == self.capif:
            self.capif = self.capif * 2 + 4
            self.ifaces = <Iface*>realloc(self.ifaces, self.capif * sizeof(Iface))
            if self.ifaces == NULL:
                raise MemoryError()
        self.ifaces[self.nif] = f
        self.nif += 1
        self.if_units.append(units)
        return 0


# -- the BPF-style filter, compiled -------------------------------------------------------------


cdef struct Instr:
    int op
    int proto      # -1: any
    bint src
    bint dst
    int lo
    int hi
    int alen
    int plen
    uint8_t net[16]


cdef class FilterProgram:
    """A `bpf_filter` expression as a postfix program run on the C packet: what
    `compile_filter` decides with Python closures, decided without a Packet."""

    cdef Instr* code
    cdef int n

    def __init__(self, list program):
        self.n = len(program)
        self.code = <Instr*>malloc(max(self.n, 1) * sizeof(Instr))
        if self.code == NULL:
            raise MemoryError()
        cdef Instr* ins
        for i, item in enumerate(program):
            ins = &self.code[i]
            memset(ins, 0, sizeof(Instr))
            op, args = item[0], item[1:]
            ins.op = {"true": OP_TRUE, "proto": OP_PROTO, "version": OP_VERSION, "net": OP_NET, "port": OP_PORT,
                      "not": OP_NOT, "and": OP_AND, "or": OP_OR}[op]
            if op in ("proto", "version"):
                ins.lo = args[0]
            elif op == "net":
                proto, src, dst, base, plen = args
                ins.proto = -1 if proto is None else proto
                ins.src, ins.dst, ins.alen, ins.plen = src, dst, len(base), plen
                memcpy(ins.net, <const char*>base, len(base))
            elif op == "port":
                proto, src, dst, lo, hi = args
                ins.proto = -1 if proto is None else proto
                ins.src, ins.dst, ins.lo, ins.hi = src, dst, lo, hi

    def __dealloc__(self):
        free(self.code)


cdef inline bint net_match(const uint8_t* addr, int alen, Instr* ins) noexcept nogil:
    cdef int full, rest
    if alen != ins.alen:
        return False
    full = ins.plen // 8
    if memcmp(addr, ins.net, full) != 0:
        return False
    rest = ins.plen % 8
    if rest == 0:
        return True
    return ((addr[full] ^ ins.net[full]) >> (8 - rest)) == 0


cdef bint filter_match(FilterProgram prog, Pkt* p) noexcept:
    cdef bint stack[64]
    cdef int sp = 0
    cdef int i
    cdef Instr* ins
    cdef bint v
    for i in range(prog.n):
        ins = &prog.code[i]
        if ins.op == OP_TRUE:
            v = True
        elif ins.op == OP_PROTO:
            v = p.proto == ins.lo
        elif ins.op == OP_VERSION:
            v = p.ip_version == ins.lo
        elif ins.op == OP_NET:
            v = (ins.proto < 0 or p.proto == ins.proto) and (
                (ins.src and net_match(p.src, p.alen, ins)) or (ins.dst and net_match(p.dst, p.alen, ins)))
        elif ins.op == OP_PORT:
            v = (ins.proto < 0 or p.proto == ins.proto) and (p.proto == PROTO_TCP or p.proto == PROTO_UDP) and (
                (ins.src and ins.lo <= p.sport <= ins.hi) or (ins.dst and ins.lo <= p.dport <= ins.hi))
        elif ins.op == OP_NOT:
            stack[sp - 1] = not stack[sp - 1]
            continue
        else:
            sp -= 1
            if ins.op == OP_AND:
                stack[sp - 1] = stack[sp - 1] and stack[sp]
            else:
                stack[sp - 1] = stack[sp - 1] or stack[sp]
            continue
        stack[sp] = v
        sp += 1
    return stack[0] if sp else True
