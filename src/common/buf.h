/*
 * buf.h - growable output buffer and bounds-checked input reader.
 *
 * Everything on the Kafka wire is big-endian. The writer grows on demand and
 * latches an allocation failure in `oom` so callers can check once at the
 * end. The reader latches any underflow in `err`: after the first short read
 * every later read returns zero and the caller checks `err` once, so a short
 * or lying buffer is an error path, never an over-read.
 */
#ifndef RUNNEL_BUF_H
#define RUNNEL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool oom;
} buf_t;

void buf_init(buf_t *b);
void buf_free(buf_t *b);
/* Ensures room for `extra` more bytes; returns false (and sets oom) on failure. */
bool buf_reserve(buf_t *b, size_t extra);
/* Appends n bytes and returns a pointer to them (NULL on oom) for later patching. */
uint8_t *buf_extend(buf_t *b, size_t n);
void buf_put(buf_t *b, const void *p, size_t n);
void buf_put_i8(buf_t *b, int8_t v);
void buf_put_i16(buf_t *b, int16_t v);
void buf_put_i32(buf_t *b, int32_t v);
void buf_put_i64(buf_t *b, int64_t v);
void buf_put_u32(buf_t *b, uint32_t v);
void buf_put_f64(buf_t *b, double v);
void buf_put_uvarint(buf_t *b, uint64_t v);
/* Zigzag varint / varlong, as used inside records. */
void buf_put_varint(buf_t *b, int32_t v);
void buf_put_varlong(buf_t *b, int64_t v);

/* Big-endian load/store on raw memory (for patching headers in place). */
static inline void be_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void be_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void be_put64(uint8_t *p, uint64_t v) { be_put32(p, (uint32_t)(v >> 32)); be_put32(p + 4, (uint32_t)v); }
static inline uint16_t be_get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t be_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t be_get64(const uint8_t *p) { return ((uint64_t)be_get32(p) << 32) | be_get32(p + 4); }

/* Bounds-checked reader over borrowed memory. */
typedef struct rd {
    const uint8_t *p;
    const uint8_t *end;
    bool err;
} rd_t;

static inline void rd_init(rd_t *r, const void *p, size_t n)
{
    /* An empty buffer may have no storage: NULL + 0 is undefined in C. */
    r->p = p ? (const uint8_t *)p : (const uint8_t *)"";
    r->end = r->p + (p ? n : 0);
    r->err = false;
}
static inline size_t rd_left(const rd_t *r) { return (size_t)(r->end - r->p); }
/* Returns a pointer to n bytes and advances, or NULL (and sets err) if short. */
static inline const uint8_t *rd_take(rd_t *r, size_t n)
{
    if (r->err || rd_left(r) < n) { r->err = true; return NULL; }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}
static inline int8_t rd_i8(rd_t *r) { const uint8_t *q = rd_take(r, 1); return q ? (int8_t)q[0] : 0; }
static inline int16_t rd_i16(rd_t *r) { const uint8_t *q = rd_take(r, 2); return q ? (int16_t)be_get16(q) : 0; }
static inline int32_t rd_i32(rd_t *r) { const uint8_t *q = rd_take(r, 4); return q ? (int32_t)be_get32(q) : 0; }
static inline uint32_t rd_u32(rd_t *r) { const uint8_t *q = rd_take(r, 4); return q ? be_get32(q) : 0; }
static inline int64_t rd_i64(rd_t *r) { const uint8_t *q = rd_take(r, 8); return q ? (int64_t)be_get64(q) : 0; }
double rd_f64(rd_t *r);
/* Unsigned LEB128 varint of at most 10 bytes (5 when max_bytes is 5). */
uint64_t rd_uvarint_n(rd_t *r, int max_bytes);
static inline uint32_t rd_uvarint(rd_t *r)
{
    uint64_t v = rd_uvarint_n(r, 5);
    if (v > UINT32_MAX) { r->err = true; return 0; }
    return (uint32_t)v;
}
int32_t rd_varint(rd_t *r);
int64_t rd_varlong(rd_t *r);

#endif
