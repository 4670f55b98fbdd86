/*
 * kmsg.h - the generic Kafka message codec.
 *
 * tools/kafka_codegen.py turns Kafka's JSON schemas into C structs plus
 * descriptor tables (protocol/kafka_messages.h); this one runtime walks those
 * tables to decode and encode any request or response at any version,
 * flexible (compact lengths, tagged fields) or not. Struct members carry the
 * schema's field names, so `ProduceRequest.TopicData.items[i].Name` greps
 * against the schema.
 *
 * Decoded strings, bytes and records point into the request frame: the frame
 * must outlive the decoded message. Arrays come from the caller's arena.
 * Encoding appends to a kmsg_out_t: a memory buffer plus "splices", file
 * regions the sender interleaves with sendfile() so record data served by
 * Fetch is never copied into user space.
 */
#ifndef RUNNEL_KMSG_H
#define RUNNEL_KMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/buf.h"

/* len -1 = null; not NUL-terminated */
typedef struct { const char *ptr; int32_t len; } kstr_t;
typedef struct { const uint8_t *ptr; int32_t len; } kbytes_t; /* len -1 = null */
typedef struct { uint8_t b[16]; } kuuid_t;
#define KARRAY(T) struct { T *items; int32_t count; }          /* count -1 = null array */
typedef KARRAY(void) karray_t; /* generic view used by the runtime */

/* A "records" field. Decoded: ptr/len into the frame, fd = -1. For encoding,
 * either memory (fd = -1) or a region of len bytes at file_offset in fd, which
 * the encoder does not copy but records as a splice. len -1 = null. */
typedef struct { const uint8_t *ptr; int32_t len; int fd; int64_t file_offset; } krecords_t;

/* len bytes of fd at offset go on the wire right before buf.data[at]. */
typedef struct { size_t at; int fd; int64_t offset; int32_t len; } kmsg_splice_t;
typedef struct { buf_t buf; kmsg_splice_t *splices; int nsplices, splices_cap; } kmsg_out_t;

void kmsg_out_init(kmsg_out_t *o);
void kmsg_out_free(kmsg_out_t *o);
/* Bytes the message occupies on the wire: buf.len plus every splice. */
size_t kmsg_out_total(const kmsg_out_t *o);

/* Helpers for filling messages in handlers. */
static inline kstr_t kstr_null(void) { kstr_t s = { NULL, -1 }; return s; }
/* Borrows a NUL-terminated C string (NULL gives a null kstr). */
kstr_t kstr_c(const char *s);
/* True when s holds exactly the NUL-terminated c (a null s equals nothing). */
bool kstr_eq(kstr_t s, const char *c);

typedef struct kmsg_desc kmsg_desc_t;

/* Decodes one message body (or any generated struct) at `version` from r into
 * out, which needs no prior init. Fields absent at this version get their
 * schema defaults, unknown tagged fields are skipped, arrays are allocated
 * from a. Returns 0, or -1 on malformed or short input or an exhausted arena.
 * Trailing bytes after the message are left in r for the caller to judge. */
int kmsg_decode(const kmsg_desc_t *d, int16_t version, rd_t *r, arena_t *a, void *out);
/* Appends msg encoded at `version`. Fields absent at this version are skipped;
 * tagged fields are written only when they differ from their default. A null
 * string/array/bytes in a version where the field is not nullable is written
 * as empty. Returns 0, or -1 on out-of-memory or a value the version cannot
 * carry (a string over 32767 bytes in a non-flexible version). */
int kmsg_encode(const kmsg_desc_t *d, int16_t version, const void *msg, kmsg_out_t *out);
/* Sets every field of msg to its schema default (what <Type>_init does). */
void kmsg_init(const kmsg_desc_t *d, void *msg);
/* The type name of a descriptor, e.g. "FetchResponse_PartitionData". */
const char *kmsg_desc_name(const kmsg_desc_t *d);

/* One entry per API key found in the schemas. */
typedef struct kapi_info {
    int16_t api_key;
    const char *name;            /* "Produce", "Fetch", ... */
    int16_t min_version, max_version;
    int16_t first_flexible;      /* -1: no flexible version */
    const kmsg_desc_t *request, *response;
    size_t request_size, response_size;
} kapi_info_t;

const kapi_info_t *kapi_lookup(int16_t api_key); /* NULL if unknown */
bool kapi_is_flexible(const kapi_info_t *api, int16_t version);

typedef struct {
    int16_t api_key, api_version;
    int32_t correlation_id;
    kstr_t client_id;
} kreq_header_t;

/* Reads a request header: api key, version, correlation id, client id (an
 * int16-length nullable string even in header v2), then, when the API is
 * known and the version flexible, the header's tagged fields. Returns 0, or
 * -1 when the header itself is malformed. Unknown keys or versions are not
 * errors here: the broker answers those. */
int kmsg_decode_request_header(rd_t *r, kreq_header_t *h);
/* Appends a response header: correlation id, plus an empty tagged-field
 * section when the version is flexible, except for ApiVersions (key 18),
 * whose responses always use header v0. */
void kmsg_encode_response_header(kmsg_out_t *o, int16_t api_key, int16_t api_version,
                                 int32_t correlation_id);

#ifdef KMSG_INTERNAL
/* Descriptor tables: written by the generator, read only by kmsg.c. */
enum kmsg_type {
    KT_BOOL, KT_INT8, KT_INT16, KT_UINT16, KT_INT32, KT_UINT32, KT_INT64, KT_FLOAT64,
    KT_STRING, KT_BYTES, KT_RECORDS, KT_UUID, KT_STRUCT, KT_ARRAY
};

typedef struct { int16_t lo, hi; } kver_t; /* inclusive; lo > hi means "no version" */
#define KV_NONE { 1, 0 }
#define KV_ALL { 0, INT16_MAX }

typedef struct kmsg_field {
    const char *name;
    uint8_t type;               /* enum kmsg_type */
    uint8_t elem;               /* element type of a KT_ARRAY */
    bool def_null;              /* default is null (strings, bytes, arrays, nullable structs) */
    bool has_present;           /* nullable struct: a bool <Name>Present member at present_off */
    uint32_t offset;
    uint32_t present_off;
    uint32_t elem_size;         /* KT_ARRAY */
    /* flexible: versions where this field uses compact encoding */
    kver_t versions, nullable, tagged, flexible;
    int32_t tag;
    int64_t def_int;            /* integers and bools */
    double def_f64;
    const char *def_str;        /* non-null string default */
    const struct kmsg_desc *sub; /* KT_STRUCT, or KT_ARRAY of structs */
} kmsg_field_t;

struct kmsg_desc {
    const char *name;
    size_t size;
    const kmsg_field_t *fields;
    uint16_t nfields;
    uint16_t ntagged;
    const uint16_t *tag_order;  /* indexes of tagged fields, ascending tag */
    kver_t flexible;            /* versions with a tagged-field section */
};

/* The generated API table, indexed by api key; entries with name NULL are holes. */
extern const kapi_info_t kapi_table[];
extern const int kapi_table_len;
#endif

#endif
