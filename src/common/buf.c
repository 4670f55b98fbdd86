/* buf.c - see buf.h. */
#include "buf.h"

#include <stdlib.h>

void buf_init(buf_t *b) { memset(b, 0, sizeof(*b)); }

void buf_free(buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

bool buf_reserve(buf_t *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->len + extra <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (d == NULL) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

uint8_t *buf_extend(buf_t *b, size_t n)
{
    if (!buf_reserve(b, n))
        return NULL;
    uint8_t *p = b->data + b->len;
    b->len += n;
    return p;
}

void buf_put(buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    uint8_t *d = buf_extend(b, n);
    if (d)
        memcpy(d, p, n);
}

void buf_put_i8(buf_t *b, int8_t v)
{
    uint8_t *d = buf_extend(b, 1);
    if (d)
        d[0] = (uint8_t)v;
}
void buf_put_i16(buf_t *b, int16_t v)
{
    uint8_t *d = buf_extend(b, 2);
    if (d)
        be_put16(d, (uint16_t)v);
}
void buf_put_i32(buf_t *b, int32_t v)
{
    uint8_t *d = buf_extend(b, 4);
    if (d)
        be_put32(d, (uint32_t)v);
}
void buf_put_u32(buf_t *b, uint32_t v)
{
    uint8_t *d = buf_extend(b, 4);
    if (d)
        be_put32(d, v);
}
void buf_put_i64(buf_t *b, int64_t v)
{
    uint8_t *d = buf_extend(b, 8);
    if (d)
        be_put64(d, (uint64_t)v);
}
void buf_put_f64(buf_t *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    buf_put_i64(b, (int64_t)u);
}

void buf_put_uvarint(buf_t *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    buf_put(b, tmp, n);
}

void buf_put_varint(buf_t *b, int32_t v)
{
    buf_put_uvarint(b, (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)));
}

void buf_put_varlong(buf_t *b, int64_t v)
{
    buf_put_uvarint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

double rd_f64(rd_t *r)
{
    uint64_t u = (uint64_t)rd_i64(r);
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

uint64_t rd_uvarint_n(rd_t *r, int max_bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        const uint8_t *q = rd_take(r, 1);
        if (q == NULL)
            return 0;
        v |= (uint64_t)(q[0] & 0x7f) << (7 * i);
        if ((q[0] & 0x80) == 0)
            return v;
    }
    r->err = true; /* too long */
    return 0;
}

int32_t rd_varint(rd_t *r)
{
    uint64_t u = rd_uvarint_n(r, 5);
    if (u > UINT32_MAX) {
        r->err = true;
        return 0;
    }
    uint32_t z = (uint32_t)u;
    return (int32_t)((z >> 1) ^ (~(z & 1) + 1));
}

int64_t rd_varlong(rd_t *r)
{
    uint64_t z = rd_uvarint_n(r, 10);
    return (int64_t)((z >> 1) ^ (~(z & 1) + 1));
}
