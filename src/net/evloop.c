/* evloop.c - see evloop.h. */
#include "evloop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/logger.h"

struct evloop {
    int epfd;
    int wakefd;
    volatile int stop;
    int64_t now_ms;
    ev_timer_t **heap;
    int heap_len, heap_cap;
    ev_defer_t *defer_head, *defer_tail;
};

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t evloop_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t evloop_now_ms(evloop_t *loop) { return loop->now_ms; }

evloop_t *evloop_create(void)
{
    evloop_t *loop = calloc(1, sizeof(*loop));
    if (loop == NULL)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->epfd == -1 || loop->wakefd == -1) {
        LOG_ERROR("net", "event loop: %s", strerror(errno));
        evloop_destroy(loop);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) == -1) {
        evloop_destroy(loop);
        return NULL;
    }
    loop->now_ms = monotonic_ms();
    return loop;
}

void evloop_destroy(evloop_t *loop)
{
    if (loop == NULL)
        return;
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->wakefd >= 0)
        close(loop->wakefd);
    free(loop->heap);
    free(loop);
}

void evloop_stop(evloop_t *loop)
{
    loop->stop = 1;
    uint64_t one = 1;
    ssize_t w = write(loop->wakefd, &one, sizeof(one));
    (void)w;
}

int evloop_io_add(evloop_t *loop, ev_io_t *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) == -1)
        return -1;
    io->events = events;
    return 0;
}

int evloop_io_set(evloop_t *loop, ev_io_t *io, uint32_t events)
{
    if (io->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) == -1)
        return -1;
    io->events = events;
    return 0;
}

void evloop_io_del(evloop_t *loop, ev_io_t *io)
{
    /* Closing the fd removes it too; ignore ENOENT/EBADF from a double removal. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->events = 0;
}

/* ---- timers: binary min-heap on when_ms ---- */

static void heap_swap(evloop_t *loop, int i, int j)
{
    ev_timer_t *t = loop->heap[i];
    loop->heap[i] = loop->heap[j];
    loop->heap[j] = t;
    loop->heap[i]->heap_index = i;
    loop->heap[j]->heap_index = j;
}

static void heap_up(evloop_t *loop, int i)
{
    while (i > 0) {
        int p = (i - 1) / 2;
        if (loop->heap[p]->when_ms <= loop->heap[i]->when_ms)
            break;
        heap_swap(loop, i, p);
        i = p;
    }
}

static void heap_down(evloop_t *loop, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop->heap_len && loop->heap[l]->when_ms < loop->heap[m]->when_ms)
            m = l;
        if (r < loop->heap_len && loop->heap[r]->when_ms < loop->heap[m]->when_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(loop, i, m);
        i = m;
    }
}

void evloop_timer_init(ev_timer_t *t, void (*cb)(evloop_t *, ev_timer_t *), void *arg)
{
    t->when_ms = 0;
    t->heap_index = -1;
    t->cb = cb;
    t->arg = arg;
}

void evloop_timer_stop(evloop_t *loop, ev_timer_t *t)
{
    int i = t->heap_index;
    if (i < 0)
        return;
    loop->heap_len--;
    if (i != loop->heap_len) {
        loop->heap[i] = loop->heap[loop->heap_len];
        loop->heap[i]->heap_index = i;
        heap_down(loop, i);
        heap_up(loop, i);
    }
    t->heap_index = -1;
}

void evloop_timer_start(evloop_t *loop, ev_timer_t *t, int64_t delay_ms)
{
    evloop_timer_stop(loop, t);
    if (loop->heap_len == loop->heap_cap) {
        int cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        ev_timer_t **h = realloc(loop->heap, (size_t)cap * sizeof(*h));
        if (h == NULL) {
            /* Out of memory: fire on the next iteration rather than never. */
            LOG_ERROR("net", "timer heap allocation failed");
            abort();
        }
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->when_ms = loop->now_ms + (delay_ms < 0 ? 0 : delay_ms);
    t->heap_index = loop->heap_len;
    loop->heap[loop->heap_len++] = t;
    heap_up(loop, t->heap_index);
}

/* ---- deferred callbacks ---- */

void evloop_defer(evloop_t *loop, ev_defer_t *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = NULL;
    if (loop->defer_tail)
        loop->defer_tail->next = d;
    else
        loop->defer_head = d;
    loop->defer_tail = d;
}

void evloop_defer_cancel(evloop_t *loop, ev_defer_t *d)
{
    if (!d->queued)
        return;
    ev_defer_t **pp = &loop->defer_head, *prev = NULL;
    while (*pp && *pp != d) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == d) {
        *pp = d->next;
        if (loop->defer_tail == d)
            loop->defer_tail = prev;
    }
    d->queued = false;
    d->next = NULL;
}

static void run_deferred(evloop_t *loop)
{
    /* Callbacks may queue more work: run until the queue is empty, but only
     * what was queued before each pass, so a self-requeueing callback cannot spin. */
    for (int pass = 0; pass < 16 && loop->defer_head; pass++) {
        ev_defer_t *list = loop->defer_head;
        loop->defer_head = loop->defer_tail = NULL;
        while (list) {
            ev_defer_t *d = list;
            list = d->next;
            d->next = NULL;
            d->queued = false;
            d->cb(loop, d);
        }
    }
}

void evloop_run_pending(evloop_t *loop) { run_deferred(loop); }

int evloop_run(evloop_t *loop)
{
    struct epoll_event events[256];
    while (!loop->stop) {
        int timeout = -1;
        if (loop->defer_head)
            timeout = 0;
        else if (loop->heap_len > 0) {
            int64_t d = loop->heap[0]->when_ms - monotonic_ms();
            timeout = d < 0 ? 0 : (d > 60000 ? 60000 : (int)d);
        }
        int n = epoll_wait(loop->epfd, events, 256, timeout);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            LOG_ERROR("net", "epoll_wait: %s", strerror(errno));
            return -1;
        }
        loop->now_ms = monotonic_ms();
        for (int i = 0; i < n; i++) {
            ev_io_t *io = events[i].data.ptr;
            if (io == NULL) {
                uint64_t v;
                ssize_t r = read(loop->wakefd, &v, sizeof(v));
                (void)r;
                continue;
            }
            io->cb(loop, io, events[i].events);
        }
        loop->now_ms = monotonic_ms();
        while (loop->heap_len > 0 && loop->heap[0]->when_ms <= loop->now_ms) {
            ev_timer_t *t = loop->heap[0];
            evloop_timer_stop(loop, t);
            t->cb(loop, t);
        }
        run_deferred(loop);
    }
    return 0;
}
