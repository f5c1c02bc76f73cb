/*
 * tcpscope detector plugin ABI, major 1 minor 0.
 * Generated from plugin-api/src/abi.rs by plugin-api/tests/header.rs: do not edit.
 */
#ifndef TCPSCOPE_PLUGIN_H
#define TCPSCOPE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First field of every descriptor: "TCPSCOPE" in ASCII. Rejects files that are not plugins. */
#define TCPSCOPE_PLUGIN_MAGIC UINT64_C(0x54435053434F5045)

/** ABI major version. A host loads only plugins of its own major; the entry symbol carries it. */
#define TCPSCOPE_ABI_MAJOR 1u

/** ABI minor version. Minors only append fields (checked through `struct_size`) and hooks. */
#define TCPSCOPE_ABI_MINOR 0u

/** Name of the symbol a plugin exports: a function returning its descriptor (major 1). */
#define TCPSCOPE_PLUGIN_ENTRY "tcpscope_plugin_v1"

/** Result of a hook. */
typedef int32_t TcpscopeStatus;

/** The hook succeeded. */
#define TCPSCOPE_OK 0

/**
 * The hook failed; a message was given with `report_error`. Fatal at start-up (bad config);
 * counted and ignored on later hooks.
 */
#define TCPSCOPE_ERROR 1

/** The hook panicked (the SDK caught it). The host disables the instance. */
#define TCPSCOPE_PANICKED 2

/** Capability: call `on_segment` for every TCP segment. */
#define TCPSCOPE_CAP_SEGMENTS 1u

/** Capability: call `on_flow_end` for every finished flow. */
#define TCPSCOPE_CAP_FLOW_END 2u

/** Capability: call `on_tick` as packet time advances (about once per second of packet time). */
#define TCPSCOPE_CAP_TICK 4u

/** Capability: call `flush` at the end of the run. */
#define TCPSCOPE_CAP_FLUSH 8u

/** Capability: call `init_shared` once, and `flush_shared` once after every worker flushed. */
#define TCPSCOPE_CAP_SHARED 16u

/** Severity `chat`: informational. */
#define TCPSCOPE_SEVERITY_CHAT 0u

/** Severity `note`: noteworthy. */
#define TCPSCOPE_SEVERITY_NOTE 1u

/** Severity `warn`: a problem. */
#define TCPSCOPE_SEVERITY_WARN 2u

/** Severity `error`: a serious problem. */
#define TCPSCOPE_SEVERITY_ERROR 3u

/** Direction unknown or not applicable. */
#define TCPSCOPE_DIRECTION_NONE 0u

/** From the originator (the SYN sender) to the responder. */
#define TCPSCOPE_DIRECTION_ORIG 1u

/** From the responder to the originator. */
#define TCPSCOPE_DIRECTION_RESP 2u

/** Event field bit: `packet_number` is set. */
#define TCPSCOPE_EVENT_HAS_PACKET 1u

/** Event field bit: `flow_id` is set. */
#define TCPSCOPE_EVENT_HAS_FLOW 2u

/** Event field bit: `src_addr` and `ip_version` are set. */
#define TCPSCOPE_EVENT_HAS_SRC 4u

/** Event field bit: `dst_addr` and `ip_version` are set. */
#define TCPSCOPE_EVENT_HAS_DST 8u

/** Event field bit: `count` is set. */
#define TCPSCOPE_EVENT_HAS_COUNT 16u

/** Event field bit: `value_ns` is set. */
#define TCPSCOPE_EVENT_HAS_VALUE_NS 32u

/** Event field bit: `ref_packet` is set. */
#define TCPSCOPE_EVENT_HAS_REF_PACKET 64u

/** Event field bit: `src_port` is set. */
#define TCPSCOPE_EVENT_HAS_SRC_PORT 128u

/** Event field bit: `dst_port` is set. */
#define TCPSCOPE_EVENT_HAS_DST_PORT 256u

/**
 * Event field bit: `seq`, `ack` and `payload_len` (of the packet the event is about) are set;
 * `ack` only when `ack_valid` is 1.
 */
#define TCPSCOPE_EVENT_HAS_SEGMENT 512u

/** Analysis flag: retransmission by timeout. */
#define TCPSCOPE_ANALYSIS_RETRANSMISSION 1u

/** Analysis flag: fast retransmission. */
#define TCPSCOPE_ANALYSIS_FAST_RETRANSMISSION 2u

/** Analysis flag: spurious retransmission. */
#define TCPSCOPE_ANALYSIS_SPURIOUS_RETRANSMISSION 4u

/** Analysis flag: out of order. */
#define TCPSCOPE_ANALYSIS_OUT_OF_ORDER 8u

/** Analysis flag: previous segment not captured. */
#define TCPSCOPE_ANALYSIS_PREVIOUS_SEGMENT_NOT_CAPTURED 16u

/** Analysis flag: ACK of a segment the capture never saw. */
#define TCPSCOPE_ANALYSIS_ACKED_UNSEEN_SEGMENT 32u

/** Analysis flag: duplicate ACK. */
#define TCPSCOPE_ANALYSIS_DUPLICATE_ACK 64u

/** Analysis flag: zero window. */
#define TCPSCOPE_ANALYSIS_ZERO_WINDOW 128u

/** Analysis flag: zero-window probe. */
#define TCPSCOPE_ANALYSIS_ZERO_WINDOW_PROBE 256u

/** Analysis flag: ACK of a zero-window probe. */
#define TCPSCOPE_ANALYSIS_ZERO_WINDOW_PROBE_ACK 512u

/** Analysis flag: window full. */
#define TCPSCOPE_ANALYSIS_WINDOW_FULL 1024u

/** Analysis flag: window update. */
#define TCPSCOPE_ANALYSIS_WINDOW_UPDATE 2048u

/** Analysis flag: keep-alive. */
#define TCPSCOPE_ANALYSIS_KEEP_ALIVE 4096u

/** Analysis flag: ACK of a keep-alive. */
#define TCPSCOPE_ANALYSIS_KEEP_ALIVE_ACK 8192u

/** Analysis flag: port reuse. */
#define TCPSCOPE_ANALYSIS_PORT_REUSE 16384u

/** A borrowed UTF-8 string: `len` bytes at `ptr`, not NUL-terminated. Valid for the call only. */
typedef struct TcpscopeStr {
    /** First byte (may be null when `len` is 0). */
    const uint8_t *ptr;
    /** Length in bytes. */
    size_t len;
} TcpscopeStr;

/** One key/value pair of an event's details. */
typedef struct TcpscopeKeyValue {
    /** Key. */
    TcpscopeStr key;
    /** Value. */
    TcpscopeStr value;
} TcpscopeKeyValue;

/** A name with its documentation (static NUL-terminated strings), listed in the descriptor. */
typedef struct TcpscopeNameDoc {
    /** The name. */
    const char *name;
    /** One line of documentation. */
    const char *doc;
} TcpscopeNameDoc;

/**
 * One TCP segment, after the engine analysed it. Borrowed: valid only during `on_segment`.
 * Addresses are 16 bytes: IPv4 in the first 4 bytes (network order) and zeros after.
 */
typedef struct TcpscopeSegment {
    /** Capture time, nanoseconds since the Unix epoch (packet time). */
    uint64_t ts_ns;
    /** 1-based index of the frame in its source (Wireshark's frame.number). */
    uint64_t packet_number;
    /** The flow's id (the `flow_id` column of both datasets). */
    uint64_t flow_id;
    /** Sender address. */
    uint8_t src_addr[16];
    /** Receiver address. */
    uint8_t dst_addr[16];
    /** Raw sequence number. */
    uint32_t seq;
    /** Raw acknowledgement number (meaningful when the ACK flag is set). */
    uint32_t ack;
    /** TCP payload length (from the IP length). */
    uint32_t payload_len;
    /** The engine's per-packet verdicts (`TCPSCOPE_ANALYSIS_*` bits). */
    uint32_t analysis_flags;
    /** Index of the input (file or interface) in the run's list. */
    uint32_t source_index;
    /** Sender port. */
    uint16_t src_port;
    /** Receiver port. */
    uint16_t dst_port;
    /** TCP flags: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80. */
    uint16_t tcp_flags;
    /** Raw (unscaled) window. */
    uint16_t window;
    /** IPv4 identification (0 for IPv6). */
    uint16_t ip_id;
    /** 4 or 6. */
    uint8_t ip_version;
    /** IP TTL or hop limit. */
    uint8_t ttl;
    /** `TCPSCOPE_DIRECTION_*` relative to the flow's originator. */
    uint8_t direction;
    /** Zero. */
    uint8_t reserved[7];
} TcpscopeSegment;

/** A finished flow (the key fields of a `flows` row). Borrowed: valid only during `on_flow_end`. */
typedef struct TcpscopeFlow {
    /** First packet, nanoseconds since the epoch. */
    uint64_t ts_start_ns;
    /** Last packet, nanoseconds since the epoch. */
    uint64_t ts_end_ns;
    /** The flow's id. */
    uint64_t flow_id;
    /** Originator address (16 bytes as in `TcpscopeSegment`). */
    uint8_t orig_addr[16];
    /** Responder address. */
    uint8_t resp_addr[16];
    /** Zeek conn_state, e.g. `S0`, `SF`, `REJ`. */
    TcpscopeStr conn_state;
    /** Zeek history letters. */
    TcpscopeStr history;
    /** Why the flow ended: `fin`, `rst_orig`, `rst_resp`, `idle_timeout`, `end_of_input`, ... */
    TcpscopeStr close_reason;
    /** Packets from the originator. */
    uint64_t orig_pkts;
    /** Packets from the responder. */
    uint64_t resp_pkts;
    /** Zeek orig_bytes (sequence-space bytes from the originator). */
    uint64_t orig_bytes;
    /** Zeek resp_bytes. */
    uint64_t resp_bytes;
    /** TCP payload bytes from the originator, retransmissions included. */
    uint64_t orig_payload_bytes;
    /** TCP payload bytes from the responder, retransmissions included. */
    uint64_t resp_payload_bytes;
    /** Retransmissions (all kinds) by the originator. */
    uint64_t orig_retransmissions;
    /** Retransmissions (all kinds) by the responder. */
    uint64_t resp_retransmissions;
    /** Zeek missed_bytes. */
    uint64_t missed_bytes;
    /** SYN to SYN/ACK in nanoseconds, or -1 when unknown. */
    int64_t handshake_syn_synack_ns;
    /** SYN/ACK to ACK in nanoseconds, or -1 when the handshake never completed. */
    int64_t handshake_synack_ack_ns;
    /** Index of the input in the run's list. */
    uint32_t source_index;
    /** Originator port. */
    uint16_t orig_port;
    /** Responder port. */
    uint16_t resp_port;
    /** 4 or 6. */
    uint8_t ip_version;
    /** Zero. */
    uint8_t reserved[7];
} TcpscopeFlow;

/** An event a plugin emits. The host copies everything before `emit` returns. */
typedef struct TcpscopeEvent {
    /** `sizeof(TcpscopeEvent)` as the plugin knows it. */
    uint32_t struct_size;
    /** Which optional fields are set (`TCPSCOPE_EVENT_HAS_*` bits). */
    uint32_t fields;
    /** When it happened (packet time, nanoseconds since the epoch). */
    uint64_t ts_ns;
    /** The packet it is about. */
    uint64_t packet_number;
    /** The flow it is about. */
    uint64_t flow_id;
    /** A related packet. */
    uint64_t ref_packet;
    /** A count. */
    int64_t count;
    /** A duration in nanoseconds. */
    int64_t value_ns;
    /** The kind, e.g. `syn_flood` (the `kind` column). */
    TcpscopeStr kind;
    /** Key/value details (the `details` column). */
    const TcpscopeKeyValue *details;
    /** Number of details. */
    size_t n_details;
    /** Source address (16 bytes as in `TcpscopeSegment`). */
    uint8_t src_addr[16];
    /** Destination address. */
    uint8_t dst_addr[16];
    /** Source port. */
    uint16_t src_port;
    /** Destination port. */
    uint16_t dst_port;
    /** 4 or 6 when an address is set. */
    uint8_t ip_version;
    /** `TCPSCOPE_SEVERITY_*`. */
    uint8_t severity;
    /** `TCPSCOPE_DIRECTION_*`. */
    uint8_t direction;
    /** 1 when `ack` holds an acknowledgement number (the packet had ACK set). */
    uint8_t ack_valid;
    /** Raw sequence number of the packet. */
    uint32_t seq;
    /** Raw acknowledgement number of the packet. */
    uint32_t ack;
    /** Payload length of the packet. */
    uint32_t payload_len;
    /** Zero. */
    uint32_t reserved;
} TcpscopeEvent;

/** Host callbacks handed to every hook; valid for that call only. */
typedef struct TcpscopeEmitter {
    /** Opaque host context: pass it back unchanged. */
    void *ctx;
    /** Emits one event (the host copies it; the detector column is the plugin's name). */
    void (*emit)(void *ctx, const TcpscopeEvent *event);
    /** Explains a `TCPSCOPE_ERROR` or `TCPSCOPE_PANICKED` status (invalid config, panic message). */
    void (*report_error)(void *ctx, TcpscopeStr message);
} TcpscopeEmitter;

/**
 * What the entry symbol returns: identity, capabilities and hooks. Must live as long as the
 * library (a static). Optional hooks may be null; the host also skips hooks whose capability
 * bit is clear.
 */
typedef struct TcpscopePluginDescriptor {
    /** `TCPSCOPE_PLUGIN_MAGIC`. */
    uint64_t magic;
    /** `TCPSCOPE_ABI_MAJOR` the plugin was built for. */
    uint32_t abi_major;
    /** `TCPSCOPE_ABI_MINOR` the plugin was built for. */
    uint32_t abi_minor;
    /** `sizeof(TcpscopePluginDescriptor)` as the plugin knows it. */
    uint32_t struct_size;
    /** `TCPSCOPE_CAP_*` bits. */
    uint32_t capabilities;
    /** Plugin name: the `detector` column and the key of its configuration. */
    const char *name;
    /** Plugin version. */
    const char *version;
    /** One line saying what it detects. */
    const char *description;
    /** Event kinds it emits. */
    const TcpscopeNameDoc *event_kinds;
    /** Number of event kinds. */
    size_t n_event_kinds;
    /** Detail keys it emits. */
    const TcpscopeNameDoc *detail_keys;
    /** Number of detail keys. */
    size_t n_detail_keys;
    /**
     * Once per run, before any worker: parses `config` (JSON) and creates the shared state
     * for `workers` workers into `*shared_out`.
     */
    TcpscopeStatus (*init_shared)(TcpscopeStr config, uint32_t workers, const TcpscopeEmitter *emitter, void **shared_out);
    /** Once per run, after every worker's `flush`: emits what the shared state holds. */
    TcpscopeStatus (*flush_shared)(void *shared, const TcpscopeEmitter *emitter);
    /** Frees the shared state. */
    void (*destroy_shared)(void *shared);
    /** Per worker, on the worker's thread: creates the instance into `*instance_out`. */
    TcpscopeStatus (*create)(void *shared, TcpscopeStr config, uint32_t worker, const TcpscopeEmitter *emitter, void **instance_out);
    /** One segment, after the engine. */
    TcpscopeStatus (*on_segment)(void *instance, const TcpscopeSegment *segment, const TcpscopeEmitter *emitter);
    /** One finished flow. */
    TcpscopeStatus (*on_flow_end)(void *instance, const TcpscopeFlow *flow, const TcpscopeEmitter *emitter);
    /** Packet time reached `now_ns`. */
    TcpscopeStatus (*on_tick)(void *instance, uint64_t now_ns, const TcpscopeEmitter *emitter);
    /** End of the run on this worker: emit what is pending. */
    TcpscopeStatus (*flush)(void *instance, const TcpscopeEmitter *emitter);
    /** Frees the instance. */
    void (*destroy)(void *instance);
} TcpscopePluginDescriptor;

/** The type of the entry symbol `tcpscope_plugin_v1`. */
typedef const TcpscopePluginDescriptor * (*TcpscopeEntryFn)(void);

/** The entry point every plugin exports: returns its static descriptor. */
const TcpscopePluginDescriptor *tcpscope_plugin_v1(void);

/** A TcpscopeStr of a string literal. */
#define TCPSCOPE_STR(literal) ((TcpscopeStr){ (const uint8_t *)(literal), sizeof(literal) - 1 })

#if !defined(__cplusplus) && UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu
_Static_assert(sizeof(TcpscopeStr) == 16 && _Alignof(TcpscopeStr) == 8, "TcpscopeStr layout differs from plugin-api/src/abi.rs");
_Static_assert(sizeof(TcpscopeKeyValue) == 32 && _Alignof(TcpscopeKeyValue) == 8, "TcpscopeKeyValue layout differs from plugin-api/src/abi.rs");
_Static_assert(sizeof(TcpscopeNameDoc) == 16 && _Alignof(TcpscopeNameDoc) == 8, "TcpscopeNameDoc layout differs from plugin-api/src/abi.rs");
_Static_assert(sizeof(TcpscopeSegment) == 96 && _Alignof(TcpscopeSegment) == 8, "TcpscopeSegment layout differs from plugin-api/src/abi.rs");
_Static_assert(sizeof(TcpscopeFlow) == 208 && _Alignof(TcpscopeFlow) == 8, "TcpscopeFlow layout differs from plugin-api/src/abi.rs");
_Static_assert(sizeof(TcpscopeEvent) == 144 && _Alignof(TcpscopeEvent) == 8, "TcpscopeEvent layout differs from plugin-api/src/abi.rs");
_Static_assert(sizeof(TcpscopeEmitter) == 24 && _Alignof(TcpscopeEmitter) == 8, "TcpscopeEmitter layout differs from plugin-api/src/abi.rs");
_Static_assert(sizeof(TcpscopePluginDescriptor) == 152 && _Alignof(TcpscopePluginDescriptor) == 8, "TcpscopePluginDescriptor layout differs from plugin-api/src/abi.rs");
#endif

#ifdef __cplusplus
}
#endif

#endif /* TCPSCOPE_PLUGIN_H */
