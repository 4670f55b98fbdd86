/*
 * group_log.c - encoders and decoders for the __consumer_offsets record
 * format (byte layout in group_log.h) and the coordinator partition hash.
 */
#include <string.h>

#include "group/group_log.h"

/* One code point from UTF-8 at s[*i], advancing *i; malformed bytes give
 * U+FFFD and advance by one, as a replacing decoder does. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    int need;
    uint32_t cp, min;
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if ((c & 0xe0) == 0xc0) {
        need = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        need = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        need = 3, cp = c & 0x07, min = 0x10000;
    } else {
        (*i)++;
        return 0xfffd;
    }
    if (*i + (size_t)need >= len) {
        (*i)++;
        return 0xfffd;
    }
    for (int k = 1; k <= need; k++) {
        unsigned char cc = s[*i + (size_t)k];
        if ((cc & 0xc0) != 0x80) {
            (*i)++;
            return 0xfffd;
        }
        cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        (*i)++;
        return 0xfffd;
    }
    *i += (size_t)need + 1;
    return cp;
}

int32_t group_log_java_hash(const char *s, size_t len)
{
    /* Java int arithmetic wraps; do it in uint32 to stay defined in C. */
    uint32_t h = 0;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp = utf8_next(u, len, &i);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            h = 31u * h + (0xd800u + (cp >> 10));
            h = 31u * h + (0xdc00u + (cp & 0x3ff));
        } else {
            h = 31u * h + cp;
        }
    }
    return (int32_t)h;
}

int32_t group_log_partition_for(const char *group, size_t len, int32_t npartitions)
{
    if (npartitions <= 0)
        return 0;
    /* Kafka's Utils.abs(hashCode) % n: the absolute value, with MIN_VALUE mapped to 0 (not the
     * hash & 0x7fffffff of Utils.toPositive, which differs for negative hashes). */
    int32_t h = group_log_java_hash(group, len);
    uint32_t a = h == INT32_MIN ? 0u : (uint32_t)(h < 0 ? -h : h);
    return (int32_t)(a % (uint32_t)npartitions);
}

/* ---- reading ---- */

static kstr_t rd_str16(rd_t *r)
{
    kstr_t s = {NULL, -1};
    int16_t n = rd_i16(r);
    if (n < -1) {
        r->err = true;
        return s;
    }
    if (n == -1)
        return s;
    const uint8_t *p = rd_take(r, (size_t)n);
    if (p == NULL)
        return s;
    s.ptr = (const char *)p;
    s.len = n;
    return s;
}

static kbytes_t rd_bytes32(rd_t *r)
{
    kbytes_t b = {NULL, -1};
    int32_t n = rd_i32(r);
    if (n < -1) {
        r->err = true;
        return b;
    }
    if (n == -1)
        return b;
    const uint8_t *p = rd_take(r, (size_t)n);
    if (p == NULL)
        return b;
    b.ptr = p;
    b.len = n;
    return b;
}

int group_log_decode_key(const uint8_t *p, size_t len, group_log_key_t *k)
{
    rd_t r;
    rd_init(&r, p, len);
    memset(k, 0, sizeof(*k));
    k->version = rd_i16(&r);
    if (r.err)
        return -1;
    if (k->version == 0 || k->version == 1) {
        k->group = rd_str16(&r);
        k->topic = rd_str16(&r);
        k->partition = rd_i32(&r);
        if (r.err || k->group.len < 0 || k->topic.len < 0)
            return -1;
        return GROUP_LOG_KEY_OFFSET;
    }
    if (k->version == 2) {
        k->group = rd_str16(&r);
        if (r.err || k->group.len < 0)
            return -1;
        return GROUP_LOG_KEY_GROUP;
    }
    return GROUP_LOG_KEY_OTHER;
}

int group_log_decode_offset_value(const uint8_t *p, size_t len, group_log_offset_value_t *v)
{
    rd_t r;
    rd_init(&r, p, len);
    int16_t version = rd_i16(&r);
    v->leader_epoch = -1;
    v->expire_ts = -1;
    if (version < 0 || version > 3)
        return -1;
    v->offset = rd_i64(&r);
    if (version >= 3)
        v->leader_epoch = rd_i32(&r);
    v->metadata = rd_str16(&r);
    v->commit_ts = rd_i64(&r);
    if (version == 1)
        v->expire_ts = rd_i64(&r);
    return r.err ? -1 : 0;
}

int group_log_decode_group_value(const uint8_t *p, size_t len, group_log_group_value_t *v)
{
    rd_t r;
    rd_init(&r, p, len);
    memset(v, 0, sizeof(*v));
    v->version = rd_i16(&r);
    if (r.err || v->version < 0 || v->version > 3)
        return -1;
    v->protocol_type = rd_str16(&r);
    v->generation = rd_i32(&r);
    v->protocol = rd_str16(&r);
    v->leader = rd_str16(&r);
    v->state_ts = v->version >= 2 ? rd_i64(&r) : -1;
    v->n_members = rd_i32(&r);
    if (r.err || v->n_members < 0 || (size_t)v->n_members > rd_left(&r))
        return -1;
    v->members = r;
    return 0;
}

int group_log_member_next(group_log_group_value_t *v, group_log_member_t *m)
{
    rd_t *r = &v->members;
    memset(m, 0, sizeof(*m));
    m->member_id = rd_str16(r);
    m->instance_id = v->version >= 3 ? rd_str16(r) : kstr_null();
    m->client_id = rd_str16(r);
    m->client_host = rd_str16(r);
    if (v->version >= 1)
        m->rebalance_timeout_ms = rd_i32(r);
    m->session_timeout_ms = rd_i32(r);
    if (v->version == 0)
        m->rebalance_timeout_ms = m->session_timeout_ms;
    m->subscription = rd_bytes32(r);
    m->assignment = rd_bytes32(r);
    if (r->err || m->member_id.len < 0)
        return -1;
    return 0;
}

/* ---- writing ---- */

static void put_str16(buf_t *b, kstr_t s)
{
    if (s.len < 0) {
        buf_put_i16(b, -1);
        return;
    }
    int32_t n = s.len > INT16_MAX ? INT16_MAX : s.len;
    buf_put_i16(b, (int16_t)n);
    buf_put(b, s.ptr, (size_t)n);
}

/* A non-nullable string field: null is written as empty. */
static void put_str16_nn(buf_t *b, kstr_t s)
{
    if (s.len < 0)
        s = kstr_c("");
    put_str16(b, s);
}

static void put_bytes32(buf_t *b, kbytes_t v)
{
    if (v.len < 0) {
        buf_put_i32(b, 0); /* subscription/assignment are non-nullable bytes */
        return;
    }
    buf_put_i32(b, v.len);
    buf_put(b, v.ptr, (size_t)v.len);
}

void group_log_put_offset_key(buf_t *b, kstr_t group, kstr_t topic, int32_t partition)
{
    buf_put_i16(b, 1);
    put_str16_nn(b, group);
    put_str16_nn(b, topic);
    buf_put_i32(b, partition);
}

void group_log_put_offset_value(buf_t *b, const group_log_offset_value_t *v)
{
    if (v->expire_ts >= 0) {
        buf_put_i16(b, 1);
        buf_put_i64(b, v->offset);
        put_str16_nn(b, v->metadata);
        buf_put_i64(b, v->commit_ts);
        buf_put_i64(b, v->expire_ts);
        return;
    }
    buf_put_i16(b, 3);
    buf_put_i64(b, v->offset);
    buf_put_i32(b, v->leader_epoch);
    put_str16_nn(b, v->metadata);
    buf_put_i64(b, v->commit_ts);
}

void group_log_put_group_key(buf_t *b, kstr_t group)
{
    buf_put_i16(b, 2);
    put_str16_nn(b, group);
}

void group_log_put_group_value(buf_t *b, kstr_t protocol_type, int32_t generation, kstr_t protocol,
                               kstr_t leader, int64_t state_ts, const group_log_member_t *members, int n)
{
    buf_put_i16(b, 3);
    put_str16_nn(b, protocol_type);
    buf_put_i32(b, generation);
    put_str16(b, protocol);
    put_str16(b, leader);
    buf_put_i64(b, state_ts);
    buf_put_i32(b, n);
    for (int i = 0; i < n; i++) {
        const group_log_member_t *m = &members[i];
        put_str16_nn(b, m->member_id);
        put_str16(b, m->instance_id);
        put_str16_nn(b, m->client_id);
        put_str16_nn(b, m->client_host);
        buf_put_i32(b, m->rebalance_timeout_ms);
        buf_put_i32(b, m->session_timeout_ms);
        put_bytes32(b, m->subscription);
        put_bytes32(b, m->assignment);
    }
}

int group_log_subscription_topics(const uint8_t *p, size_t len, void (*cb)(void *arg, kstr_t topic),
                                  void *arg)
{
    rd_t r;
    rd_init(&r, p, len);
    int16_t version = rd_i16(&r);
    int32_t n = rd_i32(&r);
    if (r.err || version < 0 || n < 0 || (size_t)n > rd_left(&r) / 2)
        return -1;
    /* Parse all first so a malformed tail reports nothing rather than half. */
    rd_t again = r;
    for (int32_t i = 0; i < n; i++) {
        kstr_t t = rd_str16(&r);
        if (r.err || t.len < 0)
            return -1;
    }
    for (int32_t i = 0; i < n; i++)
        cb(arg, rd_str16(&again));
    return 0;
}
