/* broker_client.c - see broker_client.h. */
#include "cluster/broker_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/logger.h"
#include "protocol/kmsg.h"

#define BCLIENT_MAX_RESPONSE (64u << 20)
#define BCLIENT_BACKOFF_FACTOR_MAX 10
#define BCLIENT_TIMEOUT_MARGIN_MS 5000
#define BCLIENT_LIVENESS_CHECK_MS 1000

struct bclient_req {
    bclient_req_t *next;
    uint8_t *data; /* the whole frame, size prefix included */
    size_t len;
    int32_t correlation;
    bool flexible_response; /* response header v1: tagged fields after the correlation id */
    int64_t deadline_ms;
    bclient_done_t done; /* NULL once cancelled */
    void *arg;
};

typedef struct bconn {
    struct bconn *next;
    broker_client_t *bc;
    int32_t broker_id;
    char host[256];
    int32_t port;
    int fd;
    ev_io_t io;
    bool connecting;
    bool in_backoff;
    int backoff_factor;
    /* Requests in order: those before `unsent` are written (or being written), the rest wait. */
    bclient_req_t *head, *tail, *unsent;
    size_t write_pos; /* bytes of `unsent` already written */
    uint8_t *in;
    size_t in_len, in_cap;
    ev_timer_t timer; /* reconnect (backoff, or the first connect) or the oldest request's timeout */
    int32_t next_correlation;
} bconn_t;

struct broker_client {
    evloop_t *loop;
    cluster_t *cluster;
    int32_t self_id;
    int64_t timeout_ms;
    int64_t backoff_ms;
    char client_id[64];
    bconn_t *conns;
    ev_timer_t liveness; /* fails the requests of brokers that left /brokers/ids */
};

static void conn_on_io(evloop_t *loop, ev_io_t *io, uint32_t revents);
static void conn_timer_cb(evloop_t *loop, ev_timer_t *t);
static bool conn_address(bconn_t *c);

static void req_free(bclient_req_t *r)
{
    free(r->data);
    free(r);
}

static bconn_t *conn_find(broker_client_t *bc, int32_t id)
{
    for (bconn_t *c = bc->conns; c; c = c->next)
        if (c->broker_id == id)
            return c;
    bconn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->bc = bc;
    c->broker_id = id;
    c->fd = -1;
    c->port = -1;
    evloop_timer_init(&c->timer, conn_timer_cb, c);
    c->next = bc->conns;
    bc->conns = c;
    return c;
}

/* Arms the timer for what the connection waits for: the oldest written request's deadline. */
static void conn_arm_timeout(bconn_t *c)
{
    broker_client_t *bc = c->bc;
    if (c->fd >= 0 && !c->connecting && c->head && c->head != c->unsent) {
        int64_t left = c->head->deadline_ms - evloop_now_ms(bc->loop);
        evloop_timer_start(bc->loop, &c->timer, left > 0 ? left : 0);
    } else if (c->fd >= 0 && c->connecting) {
        evloop_timer_start(bc->loop, &c->timer, bc->timeout_ms);
    } else if (c->fd >= 0) {
        evloop_timer_stop(bc->loop, &c->timer);
    }
}

static void conn_close(bconn_t *c)
{
    if (c->fd >= 0) {
        evloop_io_del(c->bc->loop, &c->io);
        close(c->fd);
        c->fd = -1;
    }
    c->connecting = false;
    c->in_len = 0;
    c->write_pos = 0;
}

/* Fails every request of the connection (callbacks may queue new ones: they wait for the backoff). */
static void conn_fail(bconn_t *c, int16_t err, const char *why)
{
    broker_client_t *bc = c->bc;
    if (c->head)
        LOG_WARN("broker-client", "broker %d (%s:%d): %s", c->broker_id, c->host[0] ? c->host : "?", c->port, why);
    conn_close(c);
    bclient_req_t *list = c->head;
    c->head = c->tail = c->unsent = NULL;
    c->in_backoff = true;
    if (c->backoff_factor < BCLIENT_BACKOFF_FACTOR_MAX)
        c->backoff_factor = c->backoff_factor ? c->backoff_factor * 2 : 1;
    if (c->backoff_factor > BCLIENT_BACKOFF_FACTOR_MAX)
        c->backoff_factor = BCLIENT_BACKOFF_FACTOR_MAX;
    evloop_timer_start(bc->loop, &c->timer, bc->backoff_ms * c->backoff_factor);
    while (list) {
        bclient_req_t *r = list;
        list = r->next;
        if (r->done)
            r->done(r->arg, err, NULL, 0);
        req_free(r);
    }
}

static bool conn_address(bconn_t *c)
{
    broker_client_t *bc = c->bc;
    for (int i = 0; i < cluster_broker_count(bc->cluster); i++) {
        const zk_broker_t *b = cluster_broker_at(bc->cluster, i);
        if (b->id == c->broker_id) {
            snprintf(c->host, sizeof(c->host), "%s", b->host);
            c->port = b->port;
            return true;
        }
    }
    return false;
}

static void conn_connect(bconn_t *c)
{
    broker_client_t *bc = c->bc;
    if (!conn_address(c)) {
        conn_fail(c, BCLIENT_ERR_BROKER_NOT_AVAILABLE, "not a live broker");
        return;
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", c->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    if (getaddrinfo(c->host, port, &hints, &ai) != 0 || ai == NULL) {
        conn_fail(c, BCLIENT_ERR_NETWORK, "cannot resolve its address");
        return;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        freeaddrinfo(ai);
        conn_fail(c, BCLIENT_ERR_NETWORK, strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    int saved = errno;
    freeaddrinfo(ai);
    if (rc == -1 && saved != EINPROGRESS) {
        close(fd);
        conn_fail(c, BCLIENT_ERR_NETWORK, strerror(saved));
        return;
    }
    c->fd = fd;
    c->io.fd = fd;
    c->io.cb = conn_on_io;
    c->io.arg = c;
    if (evloop_io_add(bc->loop, &c->io, EPOLLOUT) != 0) {
        close(fd);
        c->fd = -1;
        conn_fail(c, BCLIENT_ERR_NETWORK, "cannot watch the socket");
        return;
    }
    c->connecting = true;
    conn_arm_timeout(c);
}

static void conn_timer_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)loop;
    bconn_t *c = t->arg;
    if (c->fd >= 0) {
        conn_fail(c, BCLIENT_ERR_TIMED_OUT, c->connecting ? "connect timed out" : "no answer within request.timeout.ms");
        return;
    }
    /* Backoff over (or a first connect): reconnect when something waits. */
    c->in_backoff = false;
    if (c->head)
        conn_connect(c);
}

/* Writes what it can of the unsent requests. false when the connection failed. */
static bool conn_flush(bconn_t *c)
{
    while (c->unsent) {
        bclient_req_t *r = c->unsent;
        ssize_t n = write(c->fd, r->data + c->write_pos, r->len - c->write_pos);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            conn_fail(c, BCLIENT_ERR_NETWORK, strerror(errno));
            return false;
        }
        c->write_pos += (size_t)n;
        if (c->write_pos == r->len) {
            c->unsent = r->next;
            c->write_pos = 0;
        }
    }
    evloop_io_set(c->bc->loop, &c->io, c->unsent ? EPOLLIN | EPOLLOUT : EPOLLIN);
    conn_arm_timeout(c);
    return true;
}

/* One whole response frame (without its size). false when the connection failed. */
static bool conn_response(bconn_t *c, const uint8_t *frame, size_t len)
{
    bclient_req_t *r = c->head;
    if (r == NULL || r == c->unsent) {
        conn_fail(c, BCLIENT_ERR_NETWORK, "an answer to no request");
        return false;
    }
    rd_t rd;
    rd_init(&rd, frame, len);
    int32_t corr = rd_i32(&rd);
    if (r->flexible_response) {
        uint32_t ntags = rd_uvarint(&rd);
        for (uint32_t i = 0; i < ntags && !rd.err; i++) {
            (void)rd_uvarint(&rd);
            rd_take(&rd, rd_uvarint(&rd));
        }
    }
    if (rd.err || corr != r->correlation) {
        conn_fail(c, BCLIENT_ERR_NETWORK, "an answer out of order");
        return false;
    }
    c->head = r->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->backoff_factor = 0;
    conn_arm_timeout(c);
    if (r->done)
        r->done(r->arg, 0, rd.p, rd_left(&rd));
    req_free(r);
    return true;
}

static void conn_read(bconn_t *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < 65536) {
            size_t cap = c->in_cap ? c->in_cap * 2 : 65536 * 2;
            uint8_t *in = realloc(c->in, cap);
            if (in == NULL) {
                conn_fail(c, BCLIENT_ERR_NETWORK, "out of memory");
                return;
            }
            c->in = in;
            c->in_cap = cap;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == 0) {
            conn_fail(c, BCLIENT_ERR_NETWORK, "the broker closed the connection");
            return;
        }
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                conn_fail(c, BCLIENT_ERR_NETWORK, strerror(errno));
            return;
        }
        c->in_len += (size_t)n;
        /* Every whole frame in the buffer, in order. */
        size_t pos = 0;
        while (c->in_len - pos >= 4) {
            uint32_t size = be_get32(c->in + pos);
            if (size > BCLIENT_MAX_RESPONSE) {
                conn_fail(c, BCLIENT_ERR_NETWORK, "answer too large");
                return;
            }
            if (c->in_len - pos < 4 + (size_t)size)
                break;
            int fd = c->fd;
            if (!conn_response(c, c->in + pos + 4, size) || c->fd != fd)
                return;
            pos += 4 + (size_t)size;
        }
        if (pos > 0) {
            memmove(c->in, c->in + pos, c->in_len - pos);
            c->in_len -= pos;
        }
    }
}

static void conn_on_io(evloop_t *loop, ev_io_t *io, uint32_t revents)
{
    (void)loop;
    bconn_t *c = io->arg;
    if (c->connecting) {
        int err = 0;
        socklen_t l = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err || (revents & (EPOLLERR | EPOLLHUP))) {
            conn_fail(c, BCLIENT_ERR_NETWORK, err ? strerror(err) : "cannot connect");
            return;
        }
        c->connecting = false;
        LOG_DEBUG("broker-client", "connected to broker %d at %s:%d", c->broker_id, c->host, c->port);
        conn_flush(c);
        return;
    }
    if (revents & EPOLLOUT) {
        if (!conn_flush(c))
            return;
    }
    if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_read(c);
}

/* A broker that died keeps its socket half-open: once ZooKeeper no longer lists it, its requests
 * fail at once instead of after the timeout (their senders retry with the new leaders). */
static void liveness_cb(evloop_t *loop, ev_timer_t *t)
{
    broker_client_t *bc = t->arg;
    bool busy = false;
    for (bconn_t *c = bc->conns; c; c = c->next) {
        if (c->head == NULL || c->fd < 0)
            continue;
        if (!conn_address(c)) {
            conn_fail(c, BCLIENT_ERR_BROKER_NOT_AVAILABLE, "no longer a live broker");
            continue;
        }
        busy = true;
    }
    if (busy)
        evloop_timer_start(loop, t, BCLIENT_LIVENESS_CHECK_MS);
}

bclient_req_t *broker_client_send(broker_client_t *bc, int32_t broker_id, int16_t api_key, int16_t version,
                                  const void *msg, bclient_done_t done, void *arg)
{
    const kapi_info_t *api = kapi_lookup(api_key);
    if (api == NULL || api->request == NULL)
        return NULL;
    bconn_t *c = conn_find(bc, broker_id);
    bclient_req_t *r = c ? calloc(1, sizeof(*r)) : NULL;
    if (r == NULL)
        return NULL;
    bool flexible = kapi_is_flexible(api, version);
    kmsg_out_t o;
    kmsg_out_init(&o);
    r->correlation = ++c->next_correlation;
    buf_put_i32(&o.buf, 0); /* size, patched below */
    buf_put_i16(&o.buf, api_key);
    buf_put_i16(&o.buf, version);
    buf_put_i32(&o.buf, r->correlation);
    buf_put_i16(&o.buf, (int16_t)strlen(bc->client_id));
    buf_put(&o.buf, bc->client_id, strlen(bc->client_id));
    if (flexible)
        buf_put_uvarint(&o.buf, 0); /* request header v2: no tagged fields */
    if (kmsg_encode(api->request, version, msg, &o) != 0 || o.buf.oom || o.nsplices) {
        kmsg_out_free(&o);
        free(r);
        return NULL;
    }
    be_put32(o.buf.data, (uint32_t)(o.buf.len - 4));
    r->data = o.buf.data;
    r->len = o.buf.len;
    buf_init(&o.buf);
    kmsg_out_free(&o);
    r->flexible_response = flexible && api_key != 18;
    r->deadline_ms = evloop_now_ms(bc->loop) + bc->timeout_ms;
    r->done = done;
    r->arg = arg;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    if (c->unsent == NULL)
        c->unsent = r;
    if (c->fd >= 0 && !c->connecting) {
        evloop_io_set(bc->loop, &c->io, EPOLLIN | EPOLLOUT);
        conn_arm_timeout(c);
    } else if (c->fd < 0 && !c->in_backoff && !evloop_timer_armed(&c->timer)) {
        evloop_timer_start(bc->loop, &c->timer, 0); /* connect from the loop, never inside send */
    }
    if (!evloop_timer_armed(&bc->liveness))
        evloop_timer_start(bc->loop, &bc->liveness, BCLIENT_LIVENESS_CHECK_MS);
    return r;
}

void broker_client_cancel(broker_client_t *bc, bclient_req_t *r)
{
    (void)bc;
    if (r == NULL)
        return;
    r->done = NULL;
    /* A request not written at all is dropped; one on the wire stays to keep answers in order. */
    for (bconn_t *c = bc->conns; c; c = c->next) {
        bclient_req_t **pp = &c->head, *prev = NULL;
        bool written = true;
        while (*pp && *pp != r) {
            if (*pp == c->unsent)
                written = false;
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp == NULL)
            continue;
        if (r == c->unsent)
            written = c->write_pos > 0;
        if (written)
            return;
        if (c->unsent == r)
            c->unsent = r->next;
        *pp = r->next;
        if (c->tail == r)
            c->tail = prev;
        req_free(r);
        return;
    }
}

broker_client_t *broker_client_new(evloop_t *loop, cluster_t *cluster, int32_t self_id, const broker_config_t *config)
{
    broker_client_t *bc = calloc(1, sizeof(*bc));
    if (bc == NULL)
        return NULL;
    bc->loop = loop;
    bc->cluster = cluster;
    bc->self_id = self_id;
    /* A little over request.timeout.ms: the peer's own waits (the ISR) end with an answer first. */
    int64_t t = config ? broker_config_get_long(config, "request.timeout.ms") : -1;
    bc->timeout_ms = (t > 0 ? t : 30000) + BCLIENT_TIMEOUT_MARGIN_MS;
    int64_t b = config ? broker_config_get_long(config, "retry.backoff.ms") : -1;
    bc->backoff_ms = b > 0 ? b : 100;
    snprintf(bc->client_id, sizeof(bc->client_id), "runnel-broker-%d", self_id);
    evloop_timer_init(&bc->liveness, liveness_cb, bc);
    return bc;
}

void broker_client_free(broker_client_t *bc)
{
    if (bc == NULL)
        return;
    evloop_timer_stop(bc->loop, &bc->liveness);
    while (bc->conns) {
        bconn_t *c = bc->conns;
        bc->conns = c->next;
        conn_close(c);
        evloop_timer_stop(bc->loop, &c->timer);
        while (c->head) {
            bclient_req_t *r = c->head;
            c->head = r->next;
            req_free(r);
        }
        free(c->in);
        free(c);
    }
    free(bc);
}
