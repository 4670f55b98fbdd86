/*
 * group_log.h - the record format of the internal topic __consumer_offsets,
 * byte for byte Kafka's, so Kafka's tools can read what Runnel writes and the
 * other way round. Every field is big-endian; strings are int16 length +
 * bytes (-1 = null), bytes are int32 length + bytes (-1 = null).
 *
 *   offset commit key (version 0 or 1; 1 written):
 *     int16 version, string group, string topic, int32 partition
 *   offset commit value (version 3 written, or 1 when an explicit expire
 *   timestamp exists; 0..3 read):
 *     v0: int16 version, int64 offset, string metadata, int64 timestamp
 *     v1: int16 version, int64 offset, string metadata, int64 commit_ts, int64 expire_ts
 *     v2: int16 version, int64 offset, string metadata, int64 commit_ts
 *     v3: int16 version, int64 offset, int32 leader_epoch, string metadata, int64 commit_ts
 *   group metadata key (version 2):
 *     int16 version, string group
 *   group metadata value (version 3 written; 0..3 read):
 *     int16 version, string protocol_type, int32 generation,
 *     nullable string protocol, nullable string leader,
 *     [v2+] int64 current_state_timestamp,
 *     int32 member count, then per member:
 *       string member_id, [v3+] nullable string group_instance_id,
 *       string client_id, string client_host, [v1+] int32 rebalance_timeout,
 *       int32 session_timeout, bytes subscription, bytes assignment
 *   A record whose value is null (a tombstone) deletes its key.
 *
 * The coordinator partition of a group is abs(String.hashCode(group)) % N,
 * with Java's hashCode over the UTF-16 code units of the group id and Kafka's
 * Utils.abs (the absolute value; Integer.MIN_VALUE gives 0).
 *
 * Decoders never read out of bounds: malformed input is a -1 return.
 */
#ifndef RUNNEL_GROUP_LOG_H
#define RUNNEL_GROUP_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "protocol/kmsg.h"

#define GROUP_LOG_TOPIC "__consumer_offsets"

/* Java's String.hashCode of a UTF-8 string (decoded to UTF-16 as Java's
 * decoder does, one U+FFFD per malformed byte). */
int32_t group_log_java_hash(const char *s, size_t len);
/* The __consumer_offsets partition of a group among npartitions (> 0). */
int32_t group_log_partition_for(const char *group, size_t len, int32_t npartitions);

enum group_log_key_kind {
    GROUP_LOG_KEY_OFFSET = 1, /* offset commit key */
    GROUP_LOG_KEY_GROUP = 2,  /* group metadata key */
    GROUP_LOG_KEY_OTHER = 3,  /* a version this broker does not know: skip it */
};

typedef struct group_log_key {
    int16_t version;
    kstr_t group;
    kstr_t topic;      /* offset keys only */
    int32_t partition; /* offset keys only */
} group_log_key_t;

typedef struct group_log_offset_value {
    int64_t offset;
    int32_t leader_epoch; /* -1: unknown */
    kstr_t metadata;
    int64_t commit_ts;
    int64_t expire_ts;    /* -1: none (expiry follows offsets.retention.minutes) */
} group_log_offset_value_t;

typedef struct group_log_member {
    kstr_t member_id;
    kstr_t instance_id; /* null for dynamic members */
    kstr_t client_id;
    kstr_t client_host;
    int32_t rebalance_timeout_ms;
    int32_t session_timeout_ms;
    kbytes_t subscription;
    kbytes_t assignment;
} group_log_member_t;

typedef struct group_log_group_value {
    int16_t version;
    kstr_t protocol_type;
    int32_t generation;
    kstr_t protocol; /* null when no protocol was chosen (empty group) */
    kstr_t leader;   /* null when no leader */
    int64_t state_ts; /* -1 before version 2 */
    int32_t n_members;
    rd_t members;    /* positioned at the first member, for group_log_member_next */
} group_log_group_value_t;

/* Classifies and decodes a key. Returns a group_log_key_kind, or -1 when malformed. */
int group_log_decode_key(const uint8_t *p, size_t len, group_log_key_t *k);
/* Decodes an offset commit value of version 0..3. 0, or -1 (malformed or unknown version). */
int group_log_decode_offset_value(const uint8_t *p, size_t len, group_log_offset_value_t *v);
/* Decodes a group metadata value's header; members follow with group_log_member_next. 0 or -1. */
int group_log_decode_group_value(const uint8_t *p, size_t len, group_log_group_value_t *v);
/* The next member of v (call v->n_members times). 0, or -1 when malformed. */
int group_log_member_next(group_log_group_value_t *v, group_log_member_t *m);

void group_log_put_offset_key(buf_t *b, kstr_t group, kstr_t topic, int32_t partition);
/* Writes version 3, or version 1 when v->expire_ts >= 0 (the only one that carries it). */
void group_log_put_offset_value(buf_t *b, const group_log_offset_value_t *v);
void group_log_put_group_key(buf_t *b, kstr_t group);
/* Writes version 3 with n members. */
void group_log_put_group_value(buf_t *b, kstr_t protocol_type, int32_t generation, kstr_t protocol,
                               kstr_t leader, int64_t state_ts, const group_log_member_t *members, int n);

/* Topics named by a consumer-protocol subscription (ConsumerProtocolSubscription,
 * any version: int16 version, int32 count, strings...). Calls cb for each topic.
 * 0, or -1 when the bytes do not parse (then nothing is known). */
int group_log_subscription_topics(const uint8_t *p, size_t len, void (*cb)(void *arg, kstr_t topic),
                                  void *arg);

#endif
