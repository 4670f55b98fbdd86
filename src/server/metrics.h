/*
 * metrics.h - broker metrics and the Prometheus text endpoint.
 *
 * Counters are plain integers updated on the event-loop thread: per API
 * request counts, error-free latency histograms, bytes in/out per topic (kept
 * on the topic), connection counts. metrics_render() writes them in the
 * Prometheus text exposition format; metrics_http_open() serves that on
 * `metrics.listener` (host:port; off when empty) from the same loop.
 *
 * @locality: event-loop thread only.
 */
#ifndef RUNNEL_METRICS_H
#define RUNNEL_METRICS_H

#include <stdint.h>

#include "common/buf.h"
#include "net/evloop.h"

struct broker;

#define METRICS_MAX_API 128
#define METRICS_LATENCY_BUCKETS 12

typedef struct api_metrics {
    uint64_t requests;
    uint64_t latency_us_sum;
    uint64_t latency_buckets[METRICS_LATENCY_BUCKETS]; /* cumulative at render time */
} api_metrics_t;

typedef struct broker_metrics {
    api_metrics_t api[METRICS_MAX_API];
    uint64_t bytes_in;  /* produced record bytes */
    uint64_t bytes_out; /* fetched record bytes */
    int64_t start_wall_ms;
} broker_metrics_t;

/* Records one answered request of api_key that took latency_us. */
void metrics_request_done(broker_metrics_t *m, int16_t api_key, int64_t latency_us);
/* Appends the whole exposition text. */
void metrics_render(struct broker *b, buf_t *out);

typedef struct metrics_http metrics_http_t;
/* Serves GET /metrics on host:port. NULL with err set on failure. */
metrics_http_t *metrics_http_open(struct broker *b, const char *host, int port, char *err, size_t errlen);
int metrics_http_port(const metrics_http_t *h);
void metrics_http_close(metrics_http_t *h);

#endif
