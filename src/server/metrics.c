/* metrics.c - see metrics.h. */
#include "server/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "cluster/replication.h"
#include "common/logger.h"
#include "group/group_coordinator.h"
#include "server/broker.h"

static const double latency_bounds_s[METRICS_LATENCY_BUCKETS - 1] = {
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10};

void metrics_request_done(broker_metrics_t *m, int16_t api_key, int64_t latency_us)
{
    if (api_key < 0 || api_key >= METRICS_MAX_API)
        return;
    api_metrics_t *a = &m->api[api_key];
    a->requests++;
    a->latency_us_sum += latency_us > 0 ? (uint64_t)latency_us : 0;
    int i = 0;
    while (i < METRICS_LATENCY_BUCKETS - 1 && (double)latency_us / 1e6 > latency_bounds_s[i])
        i++;
    a->latency_buckets[i]++;
}

static void put(buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf_t *out, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_put(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void header(buf_t *out, const char *name, const char *type, const char *help)
{
    put(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct topic_walk {
    buf_t *out;
    int pass;
    int64_t partitions;
    int64_t under_replicated;
} topic_walk_t;

/* Topic names are [a-zA-Z0-9._-]: safe inside a label value as they are. */
static void topic_metrics(void *arg, topic_t *tp)
{
    topic_walk_t *w = arg;
    switch (w->pass) {
    case 0:
        put(w->out, "runnel_topic_bytes_in_total{topic=\"%s\"} %llu\n", tp->name,
            (unsigned long long)tp->bytes_in);
        break;
    case 1:
        put(w->out, "runnel_topic_bytes_out_total{topic=\"%s\"} %llu\n", tp->name,
            (unsigned long long)tp->bytes_out);
        break;
    case 2:
        put(w->out, "runnel_topic_messages_in_total{topic=\"%s\"} %llu\n", tp->name,
            (unsigned long long)tp->messages_in);
        break;
    case 3:
        for (int32_t i = 0; i < tp->npartitions; i++) {
            put(w->out, "runnel_log_size_bytes{topic=\"%s\",partition=\"%d\"} %lld\n", tp->name, i,
                (long long)log_size_bytes(tp->partitions[i]->log));
            if (repl_under_replicated(tp->partitions[i]))
                w->under_replicated++;
        }
        w->partitions += tp->npartitions;
        break;
    }
}

static int64_t process_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    long size = 0, resident = 0;
    int n = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return n == 2 ? (int64_t)resident * sysconf(_SC_PAGESIZE) : -1;
}

void metrics_render(broker_t *b, buf_t *out)
{
    broker_metrics_t *m = &b->metrics;
    header(out, "runnel_requests_total", "counter", "Requests answered, by API.");
    for (int k = 0; k < METRICS_MAX_API; k++) {
        const kapi_info_t *api = kapi_lookup((int16_t)k);
        if (m->api[k].requests && api)
            put(out, "runnel_requests_total{api=\"%s\"} %llu\n", api->name,
                (unsigned long long)m->api[k].requests);
    }
    header(out, "runnel_request_latency_seconds", "histogram",
           "Time from a request's arrival to its response being queued, by API.");
    for (int k = 0; k < METRICS_MAX_API; k++) {
        const kapi_info_t *api = kapi_lookup((int16_t)k);
        if (!m->api[k].requests || !api)
            continue;
        uint64_t cum = 0;
        for (int i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
            cum += m->api[k].latency_buckets[i];
            if (i < METRICS_LATENCY_BUCKETS - 1)
                put(out, "runnel_request_latency_seconds_bucket{api=\"%s\",le=\"%g\"} %llu\n", api->name,
                    latency_bounds_s[i], (unsigned long long)cum);
            else
                put(out, "runnel_request_latency_seconds_bucket{api=\"%s\",le=\"+Inf\"} %llu\n", api->name,
                    (unsigned long long)cum);
        }
        put(out, "runnel_request_latency_seconds_sum{api=\"%s\"} %.6f\n", api->name,
            (double)m->api[k].latency_us_sum / 1e6);
        put(out, "runnel_request_latency_seconds_count{api=\"%s\"} %llu\n", api->name,
            (unsigned long long)m->api[k].requests);
    }
    topic_walk_t w = {.out = out};
    header(out, "runnel_topic_bytes_in_total", "counter", "Record batch bytes appended by producers, by topic.");
    topics_foreach(b->topics, topic_metrics, &w);
    w.pass = 1;
    header(out, "runnel_topic_bytes_out_total", "counter", "Record batch bytes sent to consumers, by topic.");
    topics_foreach(b->topics, topic_metrics, &w);
    w.pass = 2;
    header(out, "runnel_topic_messages_in_total", "counter", "Records appended by producers, by topic.");
    topics_foreach(b->topics, topic_metrics, &w);
    w.pass = 3;
    header(out, "runnel_log_size_bytes", "gauge", "Bytes of log segments, by partition.");
    topics_foreach(b->topics, topic_metrics, &w);
    header(out, "runnel_topics", "gauge", "Topics on this broker.");
    put(out, "runnel_topics %d\n", topics_count(b->topics));
    header(out, "runnel_partitions", "gauge", "Partitions on this broker.");
    put(out, "runnel_partitions %lld\n", (long long)w.partitions);
    header(out, "runnel_under_replicated_partitions", "gauge",
           "Partitions whose in-sync replicas are fewer than their replicas.");
    put(out, "runnel_under_replicated_partitions %lld\n", (long long)w.under_replicated);
    uint64_t shrinks, expands;
    replication_isr_changes(b->cluster ? cluster_replication(b->cluster) : NULL, &shrinks, &expands);
    header(out, "runnel_isr_shrinks_total", "counter", "In-sync replica set shrinks.");
    put(out, "runnel_isr_shrinks_total %llu\n", (unsigned long long)shrinks);
    header(out, "runnel_isr_expands_total", "counter", "In-sync replica set expansions.");
    put(out, "runnel_isr_expands_total %llu\n", (unsigned long long)expands);
    header(out, "runnel_consumer_groups", "gauge", "Consumer groups known to this coordinator.");
    put(out, "runnel_consumer_groups %d\n", b->groups ? group_coordinator_group_count(b->groups) : 0);
    header(out, "runnel_connections", "gauge", "Open client connections.");
    put(out, "runnel_connections %d\n", b->listener ? net_listener_connection_count(b->listener) : 0);
    header(out, "process_resident_memory_bytes", "gauge", "Resident set size of the broker process.");
    put(out, "process_resident_memory_bytes %lld\n", (long long)process_rss_bytes());
    header(out, "process_start_time_seconds", "gauge", "Start time of the process since the epoch.");
    put(out, "process_start_time_seconds %.3f\n", (double)m->start_wall_ms / 1000.0);
}

/* ---- a minimal HTTP/1.x server for the scrape ---- */

#define HTTP_MAX_REQUEST 8192

typedef struct http_conn {
    ev_io_t io;
    metrics_http_t *srv;
    char req[HTTP_MAX_REQUEST];
    size_t req_len;
    buf_t resp;
    size_t sent;
    bool responding;
} http_conn_t;

struct metrics_http {
    ev_io_t io;
    broker_t *broker;
    int port;
};

static void http_conn_close(http_conn_t *c)
{
    evloop_io_del(c->srv->broker->loop, &c->io);
    close(c->io.fd);
    buf_free(&c->resp);
    free(c);
}

static void http_respond(http_conn_t *c)
{
    bool ok = strncmp(c->req, "GET /metrics ", 13) == 0 || strncmp(c->req, "GET / ", 6) == 0;
    buf_t body;
    buf_init(&body);
    if (ok)
        metrics_render(c->srv->broker, &body);
    else
        buf_put(&body, "not found: try /metrics\n", 24);
    put(&c->resp, "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
        ok ? "200 OK" : "404 Not Found", body.len);
    buf_put(&c->resp, body.data, body.len);
    buf_free(&body);
    c->responding = true;
}

static void http_conn_cb(evloop_t *loop, ev_io_t *io, uint32_t revents)
{
    (void)revents;
    http_conn_t *c = io->arg;
    if (!c->responding) {
        ssize_t n = read(io->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len);
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            http_conn_close(c);
            return;
        }
        c->req_len += (size_t)n;
        c->req[c->req_len] = '\0';
        if (strstr(c->req, "\r\n\r\n") == NULL && strstr(c->req, "\n\n") == NULL) {
            if (c->req_len >= sizeof(c->req) - 1)
                http_conn_close(c); /* request headers too large */
            return;
        }
        http_respond(c);
        evloop_io_set(loop, &c->io, EPOLLOUT);
    }
    while (c->sent < c->resp.len) {
        ssize_t n = send(io->fd, c->resp.data + c->sent, c->resp.len - c->sent, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            break;
        c->sent += (size_t)n;
    }
    http_conn_close(c);
}

static void http_accept_cb(evloop_t *loop, ev_io_t *io, uint32_t revents)
{
    (void)revents;
    metrics_http_t *h = io->arg;
    for (;;) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR)
                continue;
            return;
        }
        http_conn_t *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        c->srv = h;
        c->io.fd = fd;
        c->io.cb = http_conn_cb;
        c->io.arg = c;
        if (evloop_io_add(loop, &c->io, EPOLLIN) == -1) {
            close(fd);
            free(c);
        }
    }
}

metrics_http_t *metrics_http_open(broker_t *b, const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "metrics.listener: cannot resolve '%s': %s", host, gai_strerror(rc));
        return NULL;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd == -1; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd == -1)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            snprintf(err, errlen, "metrics.listener: cannot listen on %s:%d: %s", host, port, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd == -1)
        return NULL;
    metrics_http_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        close(fd);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &slen);
    char pbuf[16];
    getnameinfo((struct sockaddr *)&ss, slen, NULL, 0, pbuf, sizeof(pbuf), NI_NUMERICSERV);
    h->port = atoi(pbuf);
    h->broker = b;
    h->io.fd = fd;
    h->io.cb = http_accept_cb;
    h->io.arg = h;
    if (evloop_io_add(b->loop, &h->io, EPOLLIN) == -1) {
        close(fd);
        free(h);
        snprintf(err, errlen, "metrics.listener: epoll_ctl failed");
        return NULL;
    }
    return h;
}

int metrics_http_port(const metrics_http_t *h) { return h->port; }

void metrics_http_close(metrics_http_t *h)
{
    if (h == NULL)
        return;
    evloop_io_del(h->broker->loop, &h->io);
    close(h->io.fd);
    free(h);
}
