/*
 * kmsg.c - the table-driven Kafka message codec; see kmsg.h.
 *
 * Wire rules implemented here (Kafka protocol guide and schema README):
 *  - non-flexible: STRING int16 length, BYTES/RECORDS/ARRAY int32 length,
 *    -1 = null;
 *  - flexible (per field: the message's flexibleVersions unless the field
 *    overrides them): unsigned varint length + 1, 0 = null, and every struct
 *    (top level and nested) ends with a tagged-field section: uvarint count,
 *    then (uvarint tag, uvarint size, value) in ascending tag order;
 *  - a nullable struct-typed field is preceded by an int8: -1 null, 1 present.
 * Decoding trusts nothing: every length is checked against the bytes left
 * before anything is allocated or referenced, so a lying count fails cleanly.
 */
#define KMSG_INTERNAL
#include "kmsg.h"

#include <stdlib.h>
#include <string.h>

static inline bool in_range(kver_t r, int16_t v) { return v >= r.lo && v <= r.hi; }

void kmsg_out_init(kmsg_out_t *o)
{
    memset(o, 0, sizeof(*o));
    buf_init(&o->buf);
}

void kmsg_out_free(kmsg_out_t *o)
{
    buf_free(&o->buf);
    free(o->splices);
    memset(o, 0, sizeof(*o));
}

size_t kmsg_out_total(const kmsg_out_t *o)
{
    size_t n = o->buf.len;
    for (int i = 0; i < o->nsplices; i++)
        n += (size_t)o->splices[i].len;
    return n;
}

kstr_t kstr_c(const char *s)
{
    kstr_t k = { s, -1 };
    if (s) {
        size_t n = strlen(s);
        k.len = n > INT32_MAX ? INT32_MAX : (int32_t)n;
    }
    return k;
}

bool kstr_eq(kstr_t s, const char *c)
{
    if (s.len < 0 || c == NULL)
        return false;
    size_t n = strlen(c);
    return n == (size_t)s.len && memcmp(s.ptr, c, n) == 0;
}

const char *kmsg_desc_name(const kmsg_desc_t *d) { return d->name; }

/* ---------------------------------------------------------------- defaults */

static void set_default(const kmsg_field_t *f, uint8_t *p)
{
    switch (f->type) {
    case KT_BOOL: *(bool *)p = f->def_int != 0; break;
    case KT_INT8: *(int8_t *)p = (int8_t)f->def_int; break;
    case KT_INT16: *(int16_t *)p = (int16_t)f->def_int; break;
    case KT_UINT16: *(uint16_t *)p = (uint16_t)f->def_int; break;
    case KT_INT32: *(int32_t *)p = (int32_t)f->def_int; break;
    case KT_UINT32: *(uint32_t *)p = (uint32_t)f->def_int; break;
    case KT_INT64: *(int64_t *)p = f->def_int; break;
    case KT_FLOAT64: *(double *)p = f->def_f64; break;
    case KT_STRING: {
        kstr_t *s = (kstr_t *)p;
        if (f->def_null) {
            s->ptr = NULL;
            s->len = -1;
        } else {
            s->ptr = f->def_str ? f->def_str : "";
            s->len = (int32_t)strlen(s->ptr);
        }
        break;
    }
    case KT_BYTES: {
        kbytes_t *b = (kbytes_t *)p;
        b->ptr = NULL;
        b->len = f->def_null ? -1 : 0;
        break;
    }
    case KT_RECORDS: {
        krecords_t *rc = (krecords_t *)p;
        rc->ptr = NULL;
        rc->len = -1;
        rc->fd = -1;
        rc->file_offset = 0;
        break;
    }
    case KT_UUID: memset(p, 0, sizeof(kuuid_t)); break;
    case KT_ARRAY: {
        karray_t *a = (karray_t *)p;
        a->items = NULL;
        a->count = f->def_null ? -1 : 0;
        break;
    }
    case KT_STRUCT:
        kmsg_init(f->sub, p);
        break;
    }
}

void kmsg_init(const kmsg_desc_t *d, void *msg)
{
    uint8_t *base = msg;
    memset(msg, 0, d->size);
    for (int i = 0; i < d->nfields; i++) {
        const kmsg_field_t *f = &d->fields[i];
        set_default(f, base + f->offset);
        if (f->has_present)
            *(bool *)(base + f->present_off) = !f->def_null;
    }
}

static bool struct_is_default(const kmsg_desc_t *d, const uint8_t *base);

/* Whether a tagged field holds its default and so is left off the wire. */
static bool is_default(const kmsg_field_t *f, const uint8_t *base)
{
    const uint8_t *p = base + f->offset;
    switch (f->type) {
    case KT_BOOL: return *(const bool *)p == (f->def_int != 0);
    case KT_INT8: return *(const int8_t *)p == (int8_t)f->def_int;
    case KT_INT16: return *(const int16_t *)p == (int16_t)f->def_int;
    case KT_UINT16: return *(const uint16_t *)p == (uint16_t)f->def_int;
    case KT_INT32: return *(const int32_t *)p == (int32_t)f->def_int;
    case KT_UINT32: return *(const uint32_t *)p == (uint32_t)f->def_int;
    case KT_INT64: return *(const int64_t *)p == f->def_int;
    case KT_FLOAT64: return *(const double *)p == f->def_f64;
    case KT_STRING: {
        const kstr_t *s = (const kstr_t *)p;
        if (s->len < 0)
            return true; /* null: the default, or not representable anyway */
        if (f->def_null)
            return false;
        const char *ds = f->def_str ? f->def_str : "";
        return (size_t)s->len == strlen(ds) && memcmp(s->ptr, ds, (size_t)s->len) == 0;
    }
    case KT_BYTES: {
        int32_t n = ((const kbytes_t *)p)->len;
        return n < 0 || (n == 0 && !f->def_null);
    }
    case KT_RECORDS: return ((const krecords_t *)p)->len < 0;
    case KT_UUID: {
        static const kuuid_t zero;
        return memcmp(p, &zero, sizeof(zero)) == 0;
    }
    case KT_ARRAY: {
        int32_t n = ((const karray_t *)p)->count;
        return n < 0 || (n == 0 && !f->def_null);
    }
    case KT_STRUCT:
        if (f->has_present) {
            bool present = *(const bool *)(base + f->present_off);
            if (present == f->def_null)
                return false;
            if (!present)
                return true;
        }
        return struct_is_default(f->sub, p);
    }
    return true;
}

static bool struct_is_default(const kmsg_desc_t *d, const uint8_t *base)
{
    for (int i = 0; i < d->nfields; i++)
        if (!is_default(&d->fields[i], base))
            return false;
    return true;
}

/* ------------------------------------------------------------------ decode */

static int decode_struct(const kmsg_desc_t *d, int16_t v, rd_t *r, arena_t *a, uint8_t *base);

/* Reads a string/bytes/array length: -1 for null, -2 for malformed. */
static int64_t read_len(rd_t *r, bool compact, bool int16_len)
{
    int64_t n;
    if (compact) {
        n = (int64_t)rd_uvarint(r) - 1;
    } else if (int16_len) {
        n = rd_i16(r);
    } else {
        n = rd_i32(r);
    }
    if (r->err || n < -1)
        return -2;
    return n;
}

static int decode_value(const kmsg_field_t *f, uint8_t type, bool compact, bool nullable,
                        rd_t *r, arena_t *a, int16_t v, uint8_t *p)
{
    switch (type) {
    case KT_BOOL: *(bool *)p = rd_i8(r) != 0; break;
    case KT_INT8: *(int8_t *)p = rd_i8(r); break;
    case KT_INT16: *(int16_t *)p = rd_i16(r); break;
    case KT_UINT16: *(uint16_t *)p = (uint16_t)rd_i16(r); break;
    case KT_INT32: *(int32_t *)p = rd_i32(r); break;
    case KT_UINT32: *(uint32_t *)p = rd_u32(r); break;
    case KT_INT64: *(int64_t *)p = rd_i64(r); break;
    case KT_FLOAT64: *(double *)p = rd_f64(r); break;
    case KT_UUID: {
        const uint8_t *q = rd_take(r, 16);
        if (q == NULL)
            return -1;
        memcpy(p, q, 16);
        break;
    }
    case KT_STRING:
    case KT_BYTES:
    case KT_RECORDS: {
        int64_t n = read_len(r, compact, type == KT_STRING);
        if (n == -2 || (n == -1 && !nullable) || n > (int64_t)rd_left(r))
            return -1;
        const uint8_t *q = NULL;
        if (n > 0)
            q = rd_take(r, (size_t)n);
        if (type == KT_STRING) {
            kstr_t *s = (kstr_t *)p;
            s->ptr = n >= 0 ? (q ? (const char *)q : "") : NULL;
            s->len = (int32_t)n;
        } else if (type == KT_BYTES) {
            kbytes_t *b = (kbytes_t *)p;
            b->ptr = q;
            b->len = (int32_t)n;
        } else {
            krecords_t *rc = (krecords_t *)p;
            rc->ptr = q;
            rc->len = (int32_t)n;
            rc->fd = -1;
            rc->file_offset = 0;
        }
        break;
    }
    case KT_ARRAY: {
        karray_t *arr = (karray_t *)p;
        int64_t n = read_len(r, compact, false);
        /* Every element takes at least one byte, so a count beyond the bytes
         * left is a lie: refuse it before allocating. */
        if (n == -2 || (n == -1 && !nullable) || n > (int64_t)rd_left(r))
            return -1;
        arr->count = (int32_t)n;
        arr->items = NULL;
        if (n <= 0)
            break;
        if ((uint64_t)n > SIZE_MAX / f->elem_size)
            return -1;
        uint8_t *items = arena_alloc(a, (size_t)n * f->elem_size);
        if (items == NULL)
            return -1;
        arr->items = items;
        for (int64_t i = 0; i < n; i++) {
            uint8_t *item = items + (size_t)i * f->elem_size;
            if (decode_value(f, f->elem, compact, false, r, a, v, item) < 0)
                return -1;
        }
        break;
    }
    case KT_STRUCT:
        /* Only struct fields (never array elements) can be nullable. */
        if (nullable) {
            int8_t marker = rd_i8(r);
            if (r->err)
                return -1;
            if (marker < 0) {
                kmsg_init(f->sub, p);
                return 1; /* null */
            }
        }
        if (decode_struct(f->sub, v, r, a, p) < 0)
            return -1;
        break;
    }
    return r->err ? -1 : 0;
}

static int decode_field(const kmsg_field_t *f, int16_t v, rd_t *r, arena_t *a, uint8_t *base)
{
    bool nullable = in_range(f->nullable, v);
    bool compact = in_range(f->flexible, v);
    int rc = decode_value(f, f->type, compact, nullable, r, a, v, base + f->offset);
    if (rc < 0)
        return -1;
    if (f->has_present)
        *(bool *)(base + f->present_off) = rc == 0;
    return 0;
}

static int decode_tagged(const kmsg_desc_t *d, int16_t v, rd_t *r, arena_t *a, uint8_t *base)
{
    uint32_t count = rd_uvarint(r);
    if (r->err)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t tag = rd_uvarint(r);
        uint32_t size = rd_uvarint(r);
        const uint8_t *body = rd_take(r, size);
        if (body == NULL)
            return -1;
        for (int k = 0; k < d->ntagged; k++) {
            const kmsg_field_t *f = &d->fields[d->tag_order[k]];
            if ((uint32_t)f->tag != tag || !in_range(f->tagged, v) || !in_range(f->versions, v))
                continue;
            /* The value must fit in its declared size; what a newer peer put
             * after it inside that size is ignored. */
            rd_t sub;
            rd_init(&sub, body, size);
            if (decode_field(f, v, &sub, a, base) < 0)
                return -1;
            break;
        }
    }
    return 0;
}

static int decode_struct(const kmsg_desc_t *d, int16_t v, rd_t *r, arena_t *a, uint8_t *base)
{
    for (int i = 0; i < d->nfields; i++) {
        const kmsg_field_t *f = &d->fields[i];
        if (!in_range(f->versions, v) || in_range(f->tagged, v)) {
            set_default(f, base + f->offset);
            if (f->has_present)
                *(bool *)(base + f->present_off) = !f->def_null;
            continue;
        }
        if (decode_field(f, v, r, a, base) < 0)
            return -1;
    }
    if (in_range(d->flexible, v) && decode_tagged(d, v, r, a, base) < 0)
        return -1;
    return r->err ? -1 : 0;
}

int kmsg_decode(const kmsg_desc_t *d, int16_t version, rd_t *r, arena_t *a, void *out)
{
    if (decode_struct(d, version, r, a, out) < 0) {
        r->err = true;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ encode */

static int encode_struct(const kmsg_desc_t *d, int16_t v, const uint8_t *base, kmsg_out_t *o);

static int add_splice(kmsg_out_t *o, int fd, int64_t offset, int32_t len)
{
    if (o->nsplices == o->splices_cap) {
        int cap = o->splices_cap ? o->splices_cap * 2 : 8;
        kmsg_splice_t *s = realloc(o->splices, (size_t)cap * sizeof(*s));
        if (s == NULL)
            return -1;
        o->splices = s;
        o->splices_cap = cap;
    }
    o->splices[o->nsplices++] =
        (kmsg_splice_t){ .at = o->buf.len, .fd = fd, .offset = offset, .len = len };
    return 0;
}

static void put_len(buf_t *b, bool compact, bool int16_len, int32_t n)
{
    if (compact)
        buf_put_uvarint(b, (uint64_t)((int64_t)n + 1));
    else if (int16_len)
        buf_put_i16(b, (int16_t)n);
    else
        buf_put_i32(b, n);
}

static int encode_value(const kmsg_field_t *f, uint8_t type, bool compact, bool nullable,
                        int16_t v, const uint8_t *p, bool present, kmsg_out_t *o)
{
    buf_t *b = &o->buf;
    switch (type) {
    case KT_BOOL: buf_put_i8(b, *(const bool *)p ? 1 : 0); break;
    case KT_INT8: buf_put_i8(b, *(const int8_t *)p); break;
    case KT_INT16: buf_put_i16(b, *(const int16_t *)p); break;
    case KT_UINT16: buf_put_i16(b, (int16_t)*(const uint16_t *)p); break;
    case KT_INT32: buf_put_i32(b, *(const int32_t *)p); break;
    case KT_UINT32: buf_put_u32(b, *(const uint32_t *)p); break;
    case KT_INT64: buf_put_i64(b, *(const int64_t *)p); break;
    case KT_FLOAT64: buf_put_f64(b, *(const double *)p); break;
    case KT_UUID: buf_put(b, p, 16); break;
    case KT_STRING: {
        const kstr_t *s = (const kstr_t *)p;
        int32_t n = s->len < 0 ? (nullable ? -1 : 0) : s->len;
        if (!compact && n > INT16_MAX)
            return -1;
        put_len(b, compact, true, n);
        if (n > 0)
            buf_put(b, s->ptr, (size_t)n);
        break;
    }
    case KT_BYTES: {
        const kbytes_t *s = (const kbytes_t *)p;
        int32_t n = s->len < 0 ? (nullable ? -1 : 0) : s->len;
        put_len(b, compact, false, n);
        if (n > 0)
            buf_put(b, s->ptr, (size_t)n);
        break;
    }
    case KT_RECORDS: {
        const krecords_t *rc = (const krecords_t *)p;
        int32_t n = rc->len < 0 ? (nullable ? -1 : 0) : rc->len;
        put_len(b, compact, false, n);
        if (n > 0) {
            if (rc->fd >= 0) {
                if (add_splice(o, rc->fd, rc->file_offset, n) < 0)
                    return -1;
            } else {
                buf_put(b, rc->ptr, (size_t)n);
            }
        }
        break;
    }
    case KT_ARRAY: {
        const karray_t *arr = (const karray_t *)p;
        int32_t n = arr->count < 0 ? (nullable ? -1 : 0) : arr->count;
        put_len(b, compact, false, n);
        for (int32_t i = 0; i < n; i++) {
            const uint8_t *item = (const uint8_t *)arr->items + (size_t)i * f->elem_size;
            if (encode_value(f, f->elem, compact, false, v, item, true, o) < 0)
                return -1;
        }
        break;
    }
    case KT_STRUCT:
        if (nullable) {
            buf_put_i8(b, present ? 1 : -1);
            if (!present)
                break;
        }
        if (encode_struct(f->sub, v, p, o) < 0)
            return -1;
        break;
    }
    return b->oom ? -1 : 0;
}

static int encode_field(const kmsg_field_t *f, int16_t v, const uint8_t *base, kmsg_out_t *o)
{
    bool present = f->has_present ? *(const bool *)(base + f->present_off) : true;
    return encode_value(f, f->type, in_range(f->flexible, v), in_range(f->nullable, v), v,
                        base + f->offset, present, o);
}

/* Writes one tagged field: tag, size, value. The size precedes the value but
 * is known only after encoding it, so the value is encoded in place and then
 * shifted right by the size's varint width (splices recorded meanwhile move
 * with it). */
static int encode_tagged_field(const kmsg_field_t *f, int16_t v, const uint8_t *base, kmsg_out_t *o)
{
    buf_put_uvarint(&o->buf, (uint32_t)f->tag);
    size_t start = o->buf.len;
    int first_splice = o->nsplices;
    if (encode_field(f, v, base, o) < 0)
        return -1;
    uint64_t size = o->buf.len - start;
    for (int i = first_splice; i < o->nsplices; i++)
        size += (uint64_t)o->splices[i].len;
    uint8_t tmp[10];
    size_t k = 0;
    for (uint64_t s = size; ; s >>= 7) {
        tmp[k++] = (uint8_t)(s >= 0x80 ? (s & 0x7f) | 0x80 : s);
        if (s < 0x80)
            break;
    }
    if (buf_extend(&o->buf, k) == NULL)
        return -1;
    memmove(o->buf.data + start + k, o->buf.data + start, o->buf.len - k - start);
    memcpy(o->buf.data + start, tmp, k);
    for (int i = first_splice; i < o->nsplices; i++)
        o->splices[i].at += k;
    return 0;
}

static int encode_struct(const kmsg_desc_t *d, int16_t v, const uint8_t *base, kmsg_out_t *o)
{
    for (int i = 0; i < d->nfields; i++) {
        const kmsg_field_t *f = &d->fields[i];
        if (!in_range(f->versions, v) || in_range(f->tagged, v))
            continue;
        if (encode_field(f, v, base, o) < 0)
            return -1;
    }
    if (in_range(d->flexible, v)) {
        uint32_t n = 0;
        for (int k = 0; k < d->ntagged; k++) {
            const kmsg_field_t *f = &d->fields[d->tag_order[k]];
            if (in_range(f->versions, v) && in_range(f->tagged, v) && !is_default(f, base))
                n++;
        }
        buf_put_uvarint(&o->buf, n);
        for (int k = 0; k < d->ntagged && n > 0; k++) {
            const kmsg_field_t *f = &d->fields[d->tag_order[k]];
            if (in_range(f->versions, v) && in_range(f->tagged, v) && !is_default(f, base))
                if (encode_tagged_field(f, v, base, o) < 0)
                    return -1;
        }
    }
    return o->buf.oom ? -1 : 0;
}

int kmsg_encode(const kmsg_desc_t *d, int16_t version, const void *msg, kmsg_out_t *out)
{
    return encode_struct(d, version, msg, out);
}

/* ------------------------------------------------------------ API headers */

const kapi_info_t *kapi_lookup(int16_t api_key)
{
    if (api_key < 0 || api_key >= kapi_table_len || kapi_table[api_key].name == NULL)
        return NULL;
    return &kapi_table[api_key];
}

bool kapi_is_flexible(const kapi_info_t *api, int16_t version)
{
    return api != NULL && api->first_flexible >= 0 && version >= api->first_flexible;
}

int kmsg_decode_request_header(rd_t *r, kreq_header_t *h)
{
    h->api_key = rd_i16(r);
    h->api_version = rd_i16(r);
    h->correlation_id = rd_i32(r);
    h->client_id = kstr_null();
    if (r->err)
        return -1;
    /* Header v0 (no client id) is only used by ControlledShutdown v0. */
    if (h->api_key == 7 && h->api_version == 0)
        return 0;
    int64_t n = read_len(r, false, true);
    if (n == -2 || n > (int64_t)rd_left(r))
        return -1;
    if (n >= 0) {
        const uint8_t *q = rd_take(r, (size_t)n);
        h->client_id.ptr = q ? (const char *)q : "";
        h->client_id.len = (int32_t)n;
    }
    if (kapi_is_flexible(kapi_lookup(h->api_key), h->api_version)) {
        /* Header v2 defines no tagged fields of its own: skip them all. */
        uint32_t count = rd_uvarint(r);
        for (uint32_t i = 0; i < count && !r->err; i++) {
            (void)rd_uvarint(r);
            uint32_t size = rd_uvarint(r);
            (void)rd_take(r, size);
        }
    }
    return r->err ? -1 : 0;
}

void kmsg_encode_response_header(kmsg_out_t *o, int16_t api_key, int16_t api_version,
                                 int32_t correlation_id)
{
    buf_put_i32(&o->buf, correlation_id);
    if (api_key != 18 && kapi_is_flexible(kapi_lookup(api_key), api_version))
        buf_put_uvarint(&o->buf, 0);
}
