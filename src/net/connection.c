/* connection.c - see connection.h. */
#include "connection.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/bufpool.h"
#include "common/logger.h"

#define CONN_RBUF_SIZE 16384
/* Requests read but not yet answered (parked ones included): a client pipelining more waits. */
#define CONN_MAX_OUTSTANDING 16
#define IDLE_SCAN_MS 1000

typedef struct out_msg {
    struct out_msg *next;
    kmsg_out_t out;
    int seg;          /* even: memory part seg/2; odd: splice (seg-1)/2 */
    int64_t seg_done; /* bytes of the current part already sent */
    int *fds;
    int nfds;
    uint32_t seq;     /* the request it answers, in arrival order */
    bool skip;        /* no bytes: the request (acks=0) needs no answer */
} out_msg_t;

struct conn {
    ev_io_t io;
    net_listener_t *listener;
    conn_t *prev, *next; /* listener's list */
    char peer[64];
    bool closing;
    bool in_flight;  /* a request is being handled */
    bool processing; /* inside conn_process: completion must not recurse */
    bool corked;
    bool in_blocked; /* input arrived while no request could be taken: reading is paused */
    int64_t last_active_ms;
    /* input: small frames are parsed out of rbuf; a frame's body goes to `frame` */
    uint8_t rbuf[CONN_RBUF_SIZE];
    size_t rpos, rlen;
    uint8_t *frame;
    size_t frame_size, frame_got;
    /* output */
    out_msg_t *out_head, *out_tail;
    size_t out_bytes;
    /* answers leave in request order: seq_send is the next to go; later ones wait in `held` */
    uint32_t seq_next, seq_send, cur_seq;
    out_msg_t *held; /* sorted by seq */
    ev_defer_t resume;  /* process buffered frames after a delayed completion */
    ev_defer_t release; /* free the struct once the loop is past any event for it */
    void *user;
};

struct net_listener {
    ev_io_t io;
    evloop_t *loop;
    net_limits_t limits;
    conn_handlers_t handlers;
    conn_t *conns;
    int nconns;
    int port;
    ev_timer_t idle_timer;
};

static void conn_process(conn_t *c);
static void conn_flush(conn_t *c);

const char *conn_peer(const conn_t *c) { return c->peer; }
uint32_t conn_request_seq(const conn_t *c) { return c->cur_seq; }
bool conn_is_closing(const conn_t *c) { return c->closing; }
void *conn_user(const conn_t *c) { return c->user; }
void conn_set_user(conn_t *c, void *p) { c->user = p; }
int net_listener_port(const net_listener_t *l) { return l->port; }
int net_listener_connection_count(const net_listener_t *l) { return l->nconns; }

static void out_msg_free(out_msg_t *m)
{
    kmsg_out_free(&m->out);
    for (int i = 0; i < m->nfds; i++)
        close(m->fds[i]);
    free(m->fds);
    free(m);
}

static void conn_release_cb(evloop_t *loop, ev_defer_t *d)
{
    (void)loop;
    conn_t *c = d->arg;
    free(c);
}

void conn_close(conn_t *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    net_listener_t *l = c->listener;
    if (reason)
        LOG_WARN("net", "closing connection from %s: %s", c->peer, reason);
    else
        LOG_DEBUG("net", "connection from %s closed", c->peer);
    evloop_io_del(l->loop, &c->io);
    close(c->io.fd);
    c->io.fd = -1;
    l->handlers.on_close(l->handlers.ctx, c);
    while (c->out_head) {
        out_msg_t *m = c->out_head;
        c->out_head = m->next;
        out_msg_free(m);
    }
    c->out_tail = NULL;
    while (c->held) {
        out_msg_t *m = c->held;
        c->held = m->next;
        out_msg_free(m);
    }
    bufpool_free(c->frame);
    c->frame = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->nconns--;
    evloop_defer_cancel(l->loop, &c->resume);
    c->release.cb = conn_release_cb;
    c->release.arg = c;
    evloop_defer(l->loop, &c->release);
}

/* Whether the next request may be read: none is being handled, not too many wait for their
 * answers, and the output queue is not too long. */
static bool conn_can_take(const conn_t *c)
{
    return !c->in_flight && c->seq_next - c->seq_send < CONN_MAX_OUTSTANDING &&
           c->out_bytes <= c->listener->limits.max_queued_out_bytes;
}

/* EPOLLIN stays registered while a request is handled (or parked) until input actually arrives
 * that cannot be taken yet (conn_io_cb sets in_blocked): a client that waits for its answer, as
 * most do, then costs no epoll_ctl pair per request. */
static void conn_update_events(conn_t *c)
{
    if (c->closing)
        return;
    uint32_t ev = 0;
    if (conn_can_take(c)) {
        ev |= EPOLLIN;
        c->in_blocked = false;
    } else if ((c->io.events & EPOLLIN) && !c->in_blocked) {
        ev |= EPOLLIN;
    }
    if (c->out_head)
        ev |= EPOLLOUT;
    if (evloop_io_set(c->listener->loop, &c->io, ev) == -1)
        conn_close(c, "epoll_ctl failed");
}

static void set_cork(conn_t *c, bool on)
{
    if (c->corked == on)
        return;
    int v = on ? 1 : 0;
    setsockopt(c->io.fd, IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
    c->corked = on;
}

/* Writes as much queued output as the socket takes. */
static void conn_flush(conn_t *c)
{
    while (c->out_head && !c->closing) {
        out_msg_t *m = c->out_head;
        kmsg_out_t *o = &m->out;
        int nparts = 2 * o->nsplices + 1;
        if (o->nsplices > 0)
            set_cork(c, true);
        while (m->seg < nparts) {
            ssize_t n;
            int64_t want;
            if ((m->seg & 1) == 0) {
                int k = m->seg / 2;
                size_t start = k == 0 ? 0 : o->splices[k - 1].at;
                size_t end = k < o->nsplices ? o->splices[k].at : o->buf.len;
                want = (int64_t)(end - start) - m->seg_done;
                if (want <= 0) {
                    m->seg++;
                    m->seg_done = 0;
                    continue;
                }
                n = send(c->io.fd, o->buf.data + start + m->seg_done, (size_t)want,
                         MSG_NOSIGNAL | (m->seg + 1 < nparts ? MSG_MORE : 0));
            } else {
                kmsg_splice_t *s = &o->splices[(m->seg - 1) / 2];
                want = s->len - m->seg_done;
                if (want <= 0) {
                    m->seg++;
                    m->seg_done = 0;
                    continue;
                }
                off_t off = (off_t)(s->offset + m->seg_done);
                n = sendfile(c->io.fd, s->fd, &off, (size_t)want);
                if (n == 0) {
                    /* The file is shorter than promised: the frame cannot be completed. */
                    conn_close(c, "segment file shorter than the fetch response promised");
                    return;
                }
            }
            if (n == -1) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    if (!c->processing) /* else conn_process does it on its way out */
                        conn_update_events(c);
                    return;
                }
                conn_close(c, errno == EPIPE || errno == ECONNRESET ? NULL : strerror(errno));
                return;
            }
            m->seg_done += n;
            c->out_bytes -= (size_t)n;
            c->last_active_ms = evloop_now_ms(c->listener->loop);
        }
        c->out_head = m->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        out_msg_free(m);
    }
    if (c->closing)
        return;
    set_cork(c, false);
    /* Inside conn_process (an answer given while handling the request), the interest set is
     * updated once on the way out, after the request is done: updating it here as well would
     * drop EPOLLIN for the request in flight and add it back right after. */
    if (!c->processing)
        conn_update_events(c);
    /* Output drained below the limit: buffered requests may proceed. */
    if (conn_can_take(c) && (c->rlen > c->rpos || c->frame) && !c->processing)
        conn_process(c);
}

/* Moves an answer to the output queue (or drops a skip marker). */
static void conn_enqueue(conn_t *c, out_msg_t *m)
{
    c->seq_send++;
    if (m->skip) {
        out_msg_free(m);
        return;
    }
    c->out_bytes += kmsg_out_total(&m->out);
    m->next = NULL;
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
}

/* Queues the answer of request `seq`; answers of later requests wait until the earlier ones are
 * queued, so they leave in request order even when a parked request finishes last. */
static void conn_put(conn_t *c, out_msg_t *m)
{
    bool was_empty = c->out_head == NULL;
    if (m->seq != c->seq_send) {
        out_msg_t **pp = &c->held;
        while (*pp && (int32_t)((*pp)->seq - m->seq) < 0)
            pp = &(*pp)->next;
        m->next = *pp;
        *pp = m;
        return;
    }
    conn_enqueue(c, m);
    while (c->held && c->held->seq == c->seq_send) {
        out_msg_t *h = c->held;
        c->held = h->next;
        conn_enqueue(c, h);
    }
    if (was_empty && c->out_head)
        conn_flush(c);
    else if (!c->processing) {
        conn_update_events(c);
        if (conn_can_take(c) && (c->rlen > c->rpos || c->frame))
            evloop_defer(c->listener->loop, &c->resume);
    }
}

void conn_skip(conn_t *c, uint32_t seq)
{
    if (c->closing)
        return;
    out_msg_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    kmsg_out_init(&m->out);
    m->seq = seq;
    m->skip = true;
    conn_put(c, m);
}

void conn_send(conn_t *c, uint32_t seq, kmsg_out_t *out, int *close_fds, int n_close_fds)
{
    if (c->closing) {
        kmsg_out_free(out);
        for (int i = 0; i < n_close_fds; i++)
            close(close_fds[i]);
        return;
    }
    out_msg_t *m = calloc(1, sizeof(*m));
    int *fds = NULL;
    if (n_close_fds > 0) {
        fds = malloc((size_t)n_close_fds * sizeof(int));
        if (fds)
            memcpy(fds, close_fds, (size_t)n_close_fds * sizeof(int));
    }
    if (m == NULL || (n_close_fds > 0 && fds == NULL)) {
        free(m);
        free(fds);
        kmsg_out_free(out);
        for (int i = 0; i < n_close_fds; i++)
            close(close_fds[i]);
        conn_close(c, "out of memory queueing a response");
        return;
    }
    m->out = *out;
    kmsg_out_init(out);
    m->fds = fds;
    m->nfds = n_close_fds;
    m->seq = seq;
    conn_put(c, m);
}

static void conn_resume_cb(evloop_t *loop, ev_defer_t *d)
{
    (void)loop;
    conn_process(d->arg);
}

void conn_request_done(conn_t *c)
{
    c->in_flight = false;
    if (c->closing || c->processing)
        return; /* conn_process's loop goes on by itself */
    conn_update_events(c);
    if (conn_can_take(c) && (c->rlen > c->rpos || c->frame))
        evloop_defer(c->listener->loop, &c->resume);
}

/* Hands complete frames to the server one at a time, reading more as needed. */
static void conn_process(conn_t *c)
{
    net_listener_t *l = c->listener;
    c->processing = true;
    while (!c->closing && conn_can_take(c)) {
        if (c->frame == NULL && c->rlen - c->rpos >= 4) {
            int32_t size = (int32_t)be_get32(c->rbuf + c->rpos);
            if (size < 8 || size > l->limits.max_request_bytes) {
                char why[128];
                snprintf(why, sizeof(why), "request size %d outside 8..%d (socket.request.max.bytes)",
                         size, l->limits.max_request_bytes);
                conn_close(c, why);
                break;
            }
            c->rpos += 4;
            c->frame = bufpool_alloc((size_t)size);
            if (c->frame == NULL) {
                conn_close(c, "out of memory for a request");
                break;
            }
            c->frame_size = (size_t)size;
            c->frame_got = 0;
        }
        if (c->frame) {
            size_t n = c->frame_size - c->frame_got;
            if (n > c->rlen - c->rpos)
                n = c->rlen - c->rpos;
            memcpy(c->frame + c->frame_got, c->rbuf + c->rpos, n);
            c->frame_got += n;
            c->rpos += n;
            if (c->frame_got == c->frame_size) {
                uint8_t *f = c->frame;
                size_t len = c->frame_size;
                c->frame = NULL;
                c->in_flight = true;
                c->cur_seq = c->seq_next++;
                c->last_active_ms = evloop_now_ms(l->loop);
                l->handlers.on_request(l->handlers.ctx, c, f, len);
                continue;
            }
        }
        /* Need more bytes. Large frame bodies are read straight into the frame. */
        ssize_t n;
        if (c->frame && c->rpos == c->rlen) {
            n = read(c->io.fd, c->frame + c->frame_got, c->frame_size - c->frame_got);
            if (n > 0)
                c->frame_got += (size_t)n;
        } else {
            if (c->rpos > 0) {
                memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
                c->rlen -= c->rpos;
                c->rpos = 0;
            }
            n = read(c->io.fd, c->rbuf + c->rlen, CONN_RBUF_SIZE - c->rlen);
            if (n > 0)
                c->rlen += (size_t)n;
        }
        if (n > 0) {
            c->last_active_ms = evloop_now_ms(l->loop);
            if (c->frame && c->frame_got == c->frame_size && c->rpos == c->rlen)
                continue; /* completed by the direct read; dispatched at the loop top */
            continue;
        }
        if (n == 0) {
            if (c->frame || c->rlen > c->rpos)
                conn_close(c, "peer closed the connection in the middle of a request");
            else
                conn_close(c, NULL);
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        conn_close(c, errno == ECONNRESET ? NULL : strerror(errno));
        break;
    }
    c->processing = false;
    conn_update_events(c);
}

static void conn_io_cb(evloop_t *loop, ev_io_t *io, uint32_t revents)
{
    (void)loop;
    conn_t *c = io->arg;
    if (c->closing)
        return;
    if (revents & (EPOLLERR | EPOLLHUP)) {
        /* Reset, or closed both ways: nothing more can be answered. Reported even
         * while reading is paused for a waiting request, so close now (which also
         * cancels that request) rather than spin on the event. */
        conn_close(c, NULL);
        return;
    }
    if (revents & EPOLLOUT)
        conn_flush(c);
    if (c->closing)
        return;
    if (revents & EPOLLIN) {
        if (!conn_can_take(c))
            c->in_blocked = true; /* conn_process's update drops EPOLLIN until it can */
        conn_process(c);
    }
}

static void listener_accept_cb(evloop_t *loop, ev_io_t *io, uint32_t revents)
{
    (void)revents;
    net_listener_t *l = io->arg;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t slen = sizeof(ss);
        int fd = accept4(l->io.fd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                LOG_WARN("net", "accept: %s", strerror(errno));
            return;
        }
        conn_t *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            LOG_ERROR("net", "out of memory accepting a connection");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        char host[INET6_ADDRSTRLEN] = "?", serv[16] = "?";
        getnameinfo((struct sockaddr *)&ss, slen, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(c->peer, sizeof(c->peer), "%s:%s", host, serv);
        c->listener = l;
        c->io.fd = fd;
        c->io.cb = conn_io_cb;
        c->io.arg = c;
        c->resume.cb = conn_resume_cb;
        c->resume.arg = c;
        c->last_active_ms = evloop_now_ms(loop);
        if (evloop_io_add(loop, &c->io, EPOLLIN) == -1) {
            LOG_WARN("net", "epoll_ctl: %s", strerror(errno));
            close(fd);
            free(c);
            continue;
        }
        c->next = l->conns;
        if (l->conns)
            l->conns->prev = c;
        l->conns = c;
        l->nconns++;
        LOG_DEBUG("net", "connection from %s", c->peer);
    }
}

static void listener_idle_cb(evloop_t *loop, ev_timer_t *t)
{
    net_listener_t *l = t->arg;
    int64_t now = evloop_now_ms(loop);
    for (conn_t *c = l->conns, *next; c; c = next) {
        next = c->next;
        if (!c->in_flight && c->seq_next == c->seq_send && c->out_head == NULL &&
            now - c->last_active_ms > l->limits.max_idle_ms)
            conn_close(c, "idle longer than connections.max.idle.ms");
    }
    evloop_timer_start(loop, t, IDLE_SCAN_MS);
}

net_listener_t *net_listener_open(evloop_t *loop, const char *host, int port, const net_limits_t *limits,
                                  const conn_handlers_t *handlers, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve listener host '%s': %s", host, gai_strerror(rc));
        return NULL;
    }
    int fd = -1;
    /* With no host, prefer an IPv6 socket that also takes IPv4 (as Kafka does). */
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if ((!host || !*host) && ai->ai_family != AF_INET6 && ai->ai_next)
            continue;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd == -1)
            continue;
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
            break;
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host && *host ? host : "*", port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd == -1) {
        if (!*err)
            snprintf(err, errlen, "cannot listen on %s:%d", host ? host : "*", port);
        return NULL;
    }
    net_listener_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &slen);
    l->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    l->loop = loop;
    l->limits = *limits;
    l->handlers = *handlers;
    l->io.fd = fd;
    l->io.cb = listener_accept_cb;
    l->io.arg = l;
    if (evloop_io_add(loop, &l->io, EPOLLIN) == -1) {
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        close(fd);
        free(l);
        return NULL;
    }
    evloop_timer_init(&l->idle_timer, listener_idle_cb, l);
    evloop_timer_start(loop, &l->idle_timer, IDLE_SCAN_MS);
    return l;
}

void net_listener_close(net_listener_t *l)
{
    if (l == NULL)
        return;
    while (l->conns)
        conn_close(l->conns, NULL);
    evloop_timer_stop(l->loop, &l->idle_timer);
    evloop_io_del(l->loop, &l->io);
    close(l->io.fd);
    free(l);
}
