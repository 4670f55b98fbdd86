/*
 * request.c - the request path: header decode, version check, body decode
 * into a per-request arena, dispatch to the API's handler, response encode.
 *
 * A malformed header or body, an unknown API key or an unsupported version
 * (other than ApiVersions, which answers v0 with UNSUPPORTED_VERSION so the
 * client can retry lower) closes the connection with one log line, as Kafka
 * does.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/bufpool.h"
#include "common/logger.h"
#include "server/broker.h"

static int64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void *request_alloc(request_t *req, size_t n)
{
    return arena_alloc(&req->arena, n);
}

kstr_t request_strf(request_t *req, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return kstr_null();
    if ((size_t)n >= sizeof(tmp))
        n = sizeof(tmp) - 1;
    char *p = arena_alloc(&req->arena, (size_t)n + 1);
    if (p == NULL)
        return kstr_null();
    memcpy(p, tmp, (size_t)n + 1);
    kstr_t s = {p, n};
    return s;
}

char *request_cstr(request_t *req, kstr_t s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = arena_alloc(&req->arena, n + 1);
    if (p == NULL)
        return NULL;
    if (n)
        memcpy(p, s.ptr, n);
    p[n] = '\0';
    return p;
}

void request_keep_fd(request_t *req, int fd)
{
    if (req->n_close_fds == req->cap_close_fds) {
        int cap = req->cap_close_fds ? req->cap_close_fds * 2 : 8;
        int *p = realloc(req->close_fds, (size_t)cap * sizeof(int));
        if (p == NULL) {
            /* Cannot track it: better to leak one fd than to close it under the sender. */
            LOG_ERROR("net", "out of memory tracking a response fd");
            return;
        }
        req->close_fds = p;
        req->cap_close_fds = cap;
    }
    req->close_fds[req->n_close_fds++] = fd;
}

/* The connection's live requests (the one being handled and the parked ones), so a closing
 * connection can cancel them all: conn_user is the list's head. */
static void request_link(request_t *req)
{
    request_t *head = conn_user(req->conn);
    req->cprev = NULL;
    req->cnext = head;
    if (head)
        head->cprev = req;
    conn_set_user(req->conn, req);
    req->linked = true;
}

static void request_unlink(request_t *req)
{
    if (!req->linked)
        return;
    if (req->cprev)
        req->cprev->cnext = req->cnext;
    else
        conn_set_user(req->conn, req->cnext);
    if (req->cnext)
        req->cnext->cprev = req->cprev;
    req->cprev = req->cnext = NULL;
    req->linked = false;
}

static void request_free(request_t *req)
{
    request_unlink(req);
    if (req->start_us)
        metrics_request_done(&req->broker->metrics, req->hdr.api_key, monotonic_us() - req->start_us);
    for (int i = 0; i < req->n_close_fds; i++)
        close(req->close_fds[i]);
    free(req->close_fds);
    arena_free(&req->arena);
    bufpool_free(req->frame);
    free(req);
}

static void request_send(request_t *req, int16_t version)
{
    conn_t *c = req->conn;
    request_unlink(req);
    kmsg_out_t out;
    kmsg_out_init(&out);
    buf_put_i32(&out.buf, 0); /* size, patched below */
    kmsg_encode_response_header(&out, req->hdr.api_key, version, req->hdr.correlation_id);
    if (kmsg_encode(req->api->response, version, req->resp, &out) != 0 || out.buf.oom) {
        kmsg_out_free(&out);
        LOG_ERROR("net", "cannot encode %s v%d response for %s", req->api->name, version, conn_peer(c));
        conn_close(c, "response encoding failed");
        request_free(req);
        return;
    }
    be_put32(out.buf.data, (uint32_t)(kmsg_out_total(&out) - 4));
    conn_send(c, req->seq, &out, req->close_fds, req->n_close_fds);
    req->n_close_fds = 0; /* the connection owns them now */
    if (!req->parked)
        conn_request_done(c);
    request_free(req);
}

void request_park(request_t *req)
{
    req->parked = true;
    conn_request_done(req->conn);
}

void request_respond(request_t *req)
{
    request_send(req, req->hdr.api_version);
}

void request_finish_silently(request_t *req)
{
    request_unlink(req);
    conn_skip(req->conn, req->seq);
    if (!req->parked)
        conn_request_done(req->conn);
    request_free(req);
}

void request_on_close(void *ctx, conn_t *c)
{
    (void)ctx;
    request_t *req;
    while ((req = conn_user(c)) != NULL) {
        request_unlink(req);
        if (req->cancel)
            req->cancel(req);
        req->start_us = 0; /* never answered: not counted */
        request_free(req);
    }
}

void request_on_frame(void *ctx, conn_t *c, uint8_t *frame, size_t len)
{
    broker_t *b = ctx;
    rd_t r;
    rd_init(&r, frame, len);
    kreq_header_t h;
    char why[160];
    if (kmsg_decode_request_header(&r, &h) != 0) {
        const api_handler_t *av = broker_api_handler(18);
        if (len >= 8 && h.api_key == 18 && h.api_version > av->max_version) {
            /* A future ApiVersions header we cannot parse: the correlation id is
             * enough to answer UNSUPPORTED_VERSION in v0. */
            h.client_id = kstr_null();
            goto parsed;
        }
        bufpool_free(frame);
        conn_close(c, "malformed request header");
        return;
    }
parsed:;
    const api_handler_t *ah = broker_api_handler(h.api_key);
    const kapi_info_t *api = kapi_lookup(h.api_key);
    if (ah == NULL || api == NULL) {
        bufpool_free(frame);
        snprintf(why, sizeof(why), "unknown or unsupported API key %d", h.api_key);
        conn_close(c, why);
        return;
    }
    bool version_ok = h.api_version >= ah->min_version && h.api_version <= ah->max_version;
    if (!version_ok && h.api_key != 18) {
        bufpool_free(frame);
        snprintf(why, sizeof(why), "unsupported %s version %d (supported %d-%d)", api->name,
                 h.api_version, ah->min_version, ah->max_version);
        conn_close(c, why);
        return;
    }
    request_t *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        bufpool_free(frame);
        conn_close(c, "out of memory");
        return;
    }
    req->broker = b;
    req->start_us = monotonic_us();
    req->conn = c;
    req->hdr = h;
    req->api = api;
    req->frame = frame;
    req->frame_len = len;
    /* Decoded structs can be larger than their wire form; bound them all the same. */
    arena_init(&req->arena, (size_t)1 << 20 | len * 32);
    req->body = arena_alloc(&req->arena, api->request_size);
    req->resp = arena_alloc(&req->arena, api->response_size);
    if (req->body == NULL || req->resp == NULL) {
        request_free(req);
        conn_close(c, "out of memory");
        return;
    }
    kmsg_init(api->response, req->resp);
    req->seq = conn_request_seq(c);
    request_link(req);
    if (!version_ok) {
        /* ApiVersions at a version we do not know: a v0 answer with the key list,
         * so the client retries at a version we support. */
        handle_api_versions(req);
        return;
    }
    if (kmsg_decode(api->request, h.api_version, &r, &req->arena, req->body) != 0) {
        snprintf(why, sizeof(why), "malformed %s v%d request", api->name, h.api_version);
        request_free(req);
        conn_close(c, why);
        return;
    }
    ah->handle(req);
}

/* ApiVersions answers with exactly what the dispatch table implements. */
void handle_api_versions(request_t *req)
{
    ApiVersionsResponse *resp = req->resp;
    int n;
    const api_handler_t *hs = broker_api_handlers(&n);
    REQUEST_ARRAY(req, resp->ApiKeys, n);
    for (int i = 0; i < resp->ApiKeys.count; i++) {
        resp->ApiKeys.items[i].ApiKey = hs[i].api_key;
        resp->ApiKeys.items[i].MinVersion = hs[i].min_version;
        resp->ApiKeys.items[i].MaxVersion = hs[i].max_version;
    }
    const api_handler_t *self = broker_api_handler(18);
    if (req->hdr.api_version > self->max_version || req->hdr.api_version < self->min_version) {
        resp->ErrorCode = KERR_UNSUPPORTED_VERSION;
        request_send(req, 0);
        return;
    }
    request_respond(req);
}
