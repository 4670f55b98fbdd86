/*
 * broker_client.h - requests from this broker to other brokers of the cluster
 * (the transaction coordinator's WriteTxnMarkers), on the event loop.
 *
 * One non-blocking TCP connection per destination broker id, opened on first
 * use to the address that broker registered (cluster_broker_at). Requests
 * are encoded at once (header v1, or v2 for flexible versions), queued on
 * the connection and pipelined; the peer answers in order, and each answer
 * is matched to the oldest request in flight by its correlation id. A
 * connection error, an answer that does not match, or a request without an
 * answer after the timeout closes the connection and fails every request on
 * it; requests sent afterwards reconnect after a backoff that doubles up to
 * 10 x the base. A destination that is not a live broker (or stops being
 * one, checked every second while requests wait) fails its requests with
 * BROKER_NOT_AVAILABLE.
 *
 * Completion callbacks always run later from the loop (never from inside
 * broker_client_send), exactly once, unless the request was cancelled.
 *
 * @locality: event-loop thread only.
 */
#ifndef RUNNEL_BROKER_CLIENT_H
#define RUNNEL_BROKER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "common/config.h"
#include "net/evloop.h"

/* Transport errors handed to callbacks (Kafka's numbering). */
#define BCLIENT_ERR_TIMED_OUT 7          /* REQUEST_TIMED_OUT */
#define BCLIENT_ERR_BROKER_NOT_AVAILABLE 8 /* BROKER_NOT_AVAILABLE */
#define BCLIENT_ERR_NETWORK 13           /* NETWORK_EXCEPTION */

typedef struct broker_client broker_client_t;
typedef struct bclient_req bclient_req_t;

/* err 0: the response body (after its header) is body[0..len), valid during the call only.
 * Otherwise one of the BCLIENT_ERR_* codes and body NULL. */
typedef void (*bclient_done_t)(void *arg, int16_t err, const uint8_t *body, size_t len);

/* request.timeout.ms (default 30000) plus 5 s bounds each request (the peer answers requests that
 * wait on its side within request.timeout.ms); retry.backoff.ms (default 100) is the reconnect
 * backoff. */
broker_client_t *broker_client_new(evloop_t *loop, cluster_t *cluster, int32_t self_id,
                                   const broker_config_t *config);
/* Closes every connection; callbacks of requests still queued are not called. */
void broker_client_free(broker_client_t *bc);

/* Encodes msg (the generated request struct of api_key) at version and queues it for broker_id.
 * NULL when it cannot be encoded or memory runs out (done is then never called). */
bclient_req_t *broker_client_send(broker_client_t *bc, int32_t broker_id, int16_t api_key, int16_t version,
                                  const void *msg, bclient_done_t done, void *arg);
/* The requester is gone: done will not be called (a request not yet written is dropped). */
void broker_client_cancel(broker_client_t *bc, bclient_req_t *r);

#endif
