/*
 * evloop.h - the event loop: epoll for sockets, a binary min-heap of timers,
 * and deferred callbacks run after I/O (Redis' ae and nginx's order: I/O,
 * then timers, then deferred work).
 *
 * @locality: an evloop and everything registered on it belong to the one
 * thread that runs evloop_run(); only evloop_stop() may be called from a
 * signal handler or another thread.
 */
#ifndef RUNNEL_EVLOOP_H
#define RUNNEL_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct evloop evloop_t;

/* A watched file descriptor; embed it in the owner and keep it alive while registered. */
typedef struct ev_io {
    int fd;
    uint32_t events; /* EPOLLIN / EPOLLOUT currently requested */
    void (*cb)(evloop_t *loop, struct ev_io *io, uint32_t revents);
    void *arg;
} ev_io_t;

/* A one-shot timer; embed it in the owner. heap_index < 0 while not armed. */
typedef struct ev_timer {
    int64_t when_ms;
    int heap_index;
    void (*cb)(evloop_t *loop, struct ev_timer *t);
    void *arg;
} ev_timer_t;

evloop_t *evloop_create(void);
void evloop_destroy(evloop_t *loop);
/* Runs until evloop_stop(). Returns 0, or -1 if epoll itself failed. */
int evloop_run(evloop_t *loop);
/* Async-signal-safe: wakes the loop through an eventfd and makes evloop_run() return. */
void evloop_stop(evloop_t *loop);

/* Monotonic milliseconds, cached per loop iteration. */
int64_t evloop_now_ms(evloop_t *loop);
/* Wall-clock milliseconds since the epoch (for record timestamps). */
int64_t evloop_wall_ms(void);

int evloop_io_add(evloop_t *loop, ev_io_t *io, uint32_t events);
int evloop_io_set(evloop_t *loop, ev_io_t *io, uint32_t events);
void evloop_io_del(evloop_t *loop, ev_io_t *io);

void evloop_timer_init(ev_timer_t *t, void (*cb)(evloop_t *, ev_timer_t *), void *arg);
/* (Re)arms the timer to fire after delay_ms. */
void evloop_timer_start(evloop_t *loop, ev_timer_t *t, int64_t delay_ms);
void evloop_timer_stop(evloop_t *loop, ev_timer_t *t);
static inline bool evloop_timer_armed(const ev_timer_t *t) { return t->heap_index >= 0; }

/* Deferred work: runs once at the end of the current iteration (after I/O and
 * timers). Used to coalesce wake-ups, e.g. many appends waking one fetch. */
typedef struct ev_defer {
    struct ev_defer *next;
    bool queued;
    void (*cb)(evloop_t *loop, struct ev_defer *d);
    void *arg;
} ev_defer_t;
void evloop_defer(evloop_t *loop, ev_defer_t *d);
void evloop_defer_cancel(evloop_t *loop, ev_defer_t *d);
/* Runs queued deferred work now (at shutdown, after the loop has stopped). */
void evloop_run_pending(evloop_t *loop);

#endif
