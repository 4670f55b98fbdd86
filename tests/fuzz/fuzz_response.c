/*
 * fuzz_response.c - libFuzzer target for the response decoder: in cluster
 * mode brokers read other brokers' answers (Fetch for replication,
 * WriteTxnMarkers), so a peer's bytes must never crash the decoder.
 *
 * Input: int16 api key, int16 version, then a response body (without the
 * response header). For a known API at a known version the body is decoded
 * into an arena, re-encoded, decoded again and re-encoded: the two encodings
 * must be identical. Any crash, over-read (ASan), UB (UBSan) or abort is a
 * finding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/buf.h"
#include "protocol/kmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ARENA_BUDGET (16u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    int16_t key = (int16_t)be_get16(data), version = (int16_t)be_get16(data + 2);
    const kapi_info_t *api = kapi_lookup(key);
    if (api == NULL || version < api->min_version || version > api->max_version)
        return 0;
    rd_t r;
    rd_init(&r, data + 4, size - 4);
    arena_t a;
    arena_init(&a, FUZZ_ARENA_BUDGET);
    void *msg = calloc(1, api->response_size);
    void *again = calloc(1, api->response_size);
    kmsg_out_t o1, o2;
    kmsg_out_init(&o1);
    kmsg_out_init(&o2);
    if (msg == NULL || again == NULL)
        abort();
    if (kmsg_decode(api->response, version, &r, &a, msg) == 0) {
        if (kmsg_encode(api->response, version, msg, &o1) != 0 || o1.nsplices != 0)
            abort(); /* decoded values are always encodable, and from memory */
        static const uint8_t empty[1];
        rd_t r2;
        rd_init(&r2, o1.buf.data ? o1.buf.data : empty, o1.buf.len);
        if (kmsg_decode(api->response, version, &r2, &a, again) != 0 || rd_left(&r2) != 0) {
            fprintf(stderr, "re-decode of %s v%d response failed\n", api->name, version);
            abort();
        }
        if (kmsg_encode(api->response, version, again, &o2) != 0 || o2.buf.len != o1.buf.len ||
            (o1.buf.len && memcmp(o1.buf.data, o2.buf.data, o1.buf.len) != 0)) {
            fprintf(stderr, "re-encode of %s v%d response differs\n", api->name, version);
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
