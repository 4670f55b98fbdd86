/*
 * connection.h - client connections: framing, in-order request processing
 * and response output with sendfile for file regions.
 *
 * A connection reads size-prefixed frames (bounded by socket.request.max.bytes)
 * and hands ONE request at a time to the server; the next frame is not
 * processed until the server says the current one is done (conn_request_done).
 * A request may be done without being answered yet (a parked produce waiting
 * for replication or a flush): answers are numbered by arrival and always
 * leave in request order, as Kafka requires. Responses are
 * queued and written with write() for memory and sendfile() for file regions.
 *
 * @locality: all functions run on the event-loop thread that owns the connection.
 */
#ifndef RUNNEL_CONNECTION_H
#define RUNNEL_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/evloop.h"
#include "protocol/kmsg.h"

typedef struct conn conn_t;

typedef struct conn_handlers {
    /* A complete frame (without its size prefix). The callee owns `frame` (bufpool_free()). */
    void (*on_request)(void *ctx, conn_t *c, uint8_t *frame, size_t len);
    /* The connection is going away; drop any reference to it (e.g. a waiting request). */
    void (*on_close)(void *ctx, conn_t *c);
    void *ctx;
} conn_handlers_t;

typedef struct net_limits {
    int32_t max_request_bytes;     /* socket.request.max.bytes */
    int64_t max_idle_ms;           /* connections.max.idle.ms */
    size_t max_queued_out_bytes;   /* stop reading requests while more than this waits to be sent */
} net_limits_t;

typedef struct net_listener net_listener_t;

/* Listens on host:port (empty host = all interfaces). port 0 picks a free port; see net_listener_port. */
net_listener_t *net_listener_open(evloop_t *loop, const char *host, int port, const net_limits_t *limits,
                                  const conn_handlers_t *handlers, char *err, size_t errlen);
int net_listener_port(const net_listener_t *l);
/* Closes the listening socket and every connection it accepted. */
void net_listener_close(net_listener_t *l);
int net_listener_connection_count(const net_listener_t *l);

/* The arrival number of the request being handed over (valid inside on_request): its answer goes
 * out after those of every earlier request. */
uint32_t conn_request_seq(const conn_t *c);
/* Queues the complete response of request `seq` (size prefix included by the caller at
 * out->buf[0..3]); it is written once the answers of all earlier requests are. Takes ownership of
 * `out` (it is reset) and of the fds in `close_fds` (closed once sent). */
void conn_send(conn_t *c, uint32_t seq, kmsg_out_t *out, int *close_fds, int n_close_fds);
/* Request `seq` gets no answer (acks=0): later answers need not wait for it. */
void conn_skip(conn_t *c, uint32_t seq);
/* The current request no longer holds up reading: it was answered, or it waits (parked) and its
 * answer will come through conn_send later. At most a few requests may wait unanswered. */
void conn_request_done(conn_t *c);
/* Closes the connection after logging `reason` (NULL: quiet, e.g. the peer closed). Safe to call
 * more than once and from any callback; the memory is released later in the loop. */
void conn_close(conn_t *c, const char *reason);
bool conn_is_closing(const conn_t *c);
const char *conn_peer(const conn_t *c);
/* Per-connection slot for the server (e.g. the request in flight). */
void *conn_user(const conn_t *c);
void conn_set_user(conn_t *c, void *p);

#endif
