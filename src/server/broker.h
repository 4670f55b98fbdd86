/*
 * broker.h - the running broker: configuration, identity, the event loop,
 * topics, and the request path (request.c) that ties connections to the
 * per-API handlers (handlers_*.c).
 *
 * @locality: one event-loop thread owns a broker_t and everything in it.
 */
#ifndef RUNNEL_BROKER_H
#define RUNNEL_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/topics.h"
#include "common/arena.h"
#include "common/config.h"
#include "net/connection.h"
#include "net/evloop.h"
#include "protocol/kafka_messages.h"
#include "protocol/kerr.h"
#include "protocol/kmsg.h"
#include "server/metrics.h"

#define RUNNEL_VERSION "0.1.0"

typedef struct broker {
    broker_config_t *config;
    evloop_t *loop;
    topics_t *topics;
    net_listener_t *listener;
    int32_t node_id;
    char cluster_id[23];
    char listener_name[32];
    char listen_host[256];
    int listen_port;
    char advertised_host[256];
    int advertised_port;
    char **log_dirs;
    int n_log_dirs;
    char broker_config_path[4096]; /* dynamic broker configs persist here */
    ev_timer_t housekeeping;
    struct group_coordinator *groups; /* consumer groups and committed offsets (src/group/) */
    struct txn_coordinator *txns;     /* producer ids and transactions (src/txn/) */
    broker_metrics_t metrics;
    struct metrics_http *metrics_http; /* NULL unless metrics.listener is set */
    struct cluster *cluster; /* cluster mode (zookeeper.connect); NULL on a single node */
} broker_t;

typedef struct request request_t;

/* A request from decode to response. Lives in its own arena; the frame it was
 * decoded from stays alive with it (decoded strings point into it). */
struct request {
    broker_t *broker;
    conn_t *conn;
    kreq_header_t hdr;
    const kapi_info_t *api;
    uint8_t *frame;
    size_t frame_len;
    arena_t arena;
    int64_t start_us; /* arrival, for the latency metrics */
    void *body; /* the decoded request, e.g. ProduceRequest */
    void *resp; /* the response to encode, already initialised to defaults */
    int *close_fds; /* fds the response borrows (sendfile) and owns */
    int n_close_fds, cap_close_fds;
    /* A delayed request (Fetch long poll) sets these so a closing connection can cancel it. */
    void (*cancel)(request_t *req);
    void *op;
    uint32_t seq;         /* arrival number on the connection: answers leave in this order */
    bool parked;          /* waits without holding up the connection's next requests */
    bool linked;          /* in the connection's list of live requests */
    request_t *cprev, *cnext;
};

/* Handlers: fill req->resp and call request_respond(), or keep the request
 * for later (delayed operations). */
typedef void (*request_handler_t)(request_t *req);

typedef struct api_handler {
    int16_t api_key;
    int16_t min_version, max_version;
    request_handler_t handle;
} api_handler_t;

const api_handler_t *broker_api_handler(int16_t api_key);
const api_handler_t *broker_api_handlers(int *n);

/* request.c */
void request_on_frame(void *ctx, conn_t *c, uint8_t *frame, size_t len);
void request_on_close(void *ctx, conn_t *c);
void request_respond(request_t *req);
void request_finish_silently(request_t *req); /* acks=0: no response */
/* The handler keeps the request for later (it set cancel/op) but the connection may go on with
 * the next requests meanwhile; the answer still leaves in request order. For produces waiting for
 * replication or a flush. */
void request_park(request_t *req);
void *request_alloc(request_t *req, size_t n);
#define REQUEST_ARRAY(req, arr, n) \
    ((arr).items = request_alloc((req), sizeof(*(arr).items) * (size_t)((n) > 0 ? (n) : 1)), \
     (arr).count = (arr).items ? (int32_t)(n) : 0)
kstr_t request_strf(request_t *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A NUL-terminated copy of a kstr in the request's arena ("" for null). */
char *request_cstr(request_t *req, kstr_t s);
/* Registers an fd the response borrows; it is closed once the response has been sent. */
void request_keep_fd(request_t *req, int fd);

/* Handlers, one file per API family. */
void handle_api_versions(request_t *req);
void handle_metadata(request_t *req);
void handle_produce(request_t *req);
void handle_fetch(request_t *req);
void handle_list_offsets(request_t *req);
void handle_create_topics(request_t *req);
void handle_delete_topics(request_t *req);
void handle_create_partitions(request_t *req);
void handle_describe_configs(request_t *req);
void handle_alter_configs(request_t *req);
void handle_incremental_alter_configs(request_t *req);
void handle_describe_cluster(request_t *req);
void handle_find_coordinator(request_t *req);
void handle_join_group(request_t *req);
void handle_sync_group(request_t *req);
void handle_heartbeat(request_t *req);
void handle_leave_group(request_t *req);
void handle_offset_commit(request_t *req);
void handle_offset_fetch(request_t *req);
void handle_list_groups(request_t *req);
void handle_describe_groups(request_t *req);
void handle_delete_groups(request_t *req);
void handle_offset_delete(request_t *req);
void handle_describe_log_dirs(request_t *req);
void handle_elect_leaders(request_t *req); /* handlers_cluster.c */
void handle_delete_records(request_t *req);
void handle_offset_for_leader_epoch(request_t *req); /* handlers_epochs.c */
/* handlers_txn.c */
void handle_init_producer_id(request_t *req);
void handle_add_partitions_to_txn(request_t *req);
void handle_add_offsets_to_txn(request_t *req);
void handle_end_txn(request_t *req);
void handle_txn_offset_commit(request_t *req);
void handle_write_txn_markers(request_t *req); /* handlers_markers.c */
void handle_describe_producers(request_t *req);
void handle_describe_transactions(request_t *req);
void handle_list_transactions(request_t *req);

/* Persists the dynamic broker configs (IncrementalAlterConfigs on the broker). */
int broker_save_dynamic_config(broker_t *b);

#endif
