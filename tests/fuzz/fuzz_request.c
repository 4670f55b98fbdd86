/*
 * fuzz_request.c - libFuzzer target for the request decoder.
 *
 * Input: one request frame body (without its 4-byte size). Decodes the
 * header, then, for a known API at a known version, the body into an arena;
 * re-encodes what was decoded with the same descriptor and decodes that
 * again, which must succeed and must re-encode to the same bytes. Any crash,
 * over-read (ASan), UB (UBSan) or abort is a finding.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/arena.h"
#include "protocol/kmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ARENA_BUDGET (16u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_t r;
    rd_init(&r, data, size);
    kreq_header_t h;
    if (kmsg_decode_request_header(&r, &h) != 0)
        return 0;
    const kapi_info_t *api = kapi_lookup(h.api_key);
    if (api == NULL || h.api_version < api->min_version || h.api_version > api->max_version)
        return 0;

    arena_t a;
    arena_init(&a, FUZZ_ARENA_BUDGET);
    void *msg = calloc(1, api->request_size);
    void *again = calloc(1, api->request_size);
    kmsg_out_t o1, o2;
    kmsg_out_init(&o1);
    kmsg_out_init(&o2);
    if (msg == NULL || again == NULL)
        abort();

    if (kmsg_decode(api->request, h.api_version, &r, &a, msg) == 0) {
        if (kmsg_encode(api->request, h.api_version, msg, &o1) != 0)
            abort(); /* decoded values are always encodable */
        if (o1.nsplices != 0)
            abort();
        /* An empty body leaves buf.data NULL, and NULL + 0 is undefined. */
        static const uint8_t empty[1];
        rd_t r2;
        rd_init(&r2, o1.buf.data ? o1.buf.data : empty, o1.buf.len);
        if (kmsg_decode(api->request, h.api_version, &r2, &a, again) != 0 || rd_left(&r2) != 0) {
            fprintf(stderr, "re-decode of %s v%d failed\n", api->name, h.api_version);
            abort();
        }
        /* Encoding is canonical: the second pass reproduces the first. */
        if (kmsg_encode(api->request, h.api_version, again, &o2) != 0 || o2.buf.len != o1.buf.len ||
            (o1.buf.len && memcmp(o1.buf.data, o2.buf.data, o1.buf.len) != 0)) {
            fprintf(stderr, "re-encode of %s v%d differs\n", api->name, h.api_version);
            abort();
        }
    }

    kmsg_out_free(&o1);
    kmsg_out_free(&o2);
    free(msg);
    free(again);
    arena_free(&a);
    return 0;
}
