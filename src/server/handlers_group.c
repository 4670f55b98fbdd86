/*
 * handlers_group.c - FindCoordinator.
 *
 * On a single node every group's coordinator is this broker. The group
 * protocol itself (JoinGroup, SyncGroup, ...) is not implemented yet and not
 * advertised; FindCoordinator is, because librdkafka enables LZ4 only for
 * brokers that advertise it. Transaction coordinators do not exist yet.
 */
#include "server/broker.h"

#define KEY_TYPE_GROUP 0
#define KEY_TYPE_TRANSACTION 1

static int16_t coordinator_for(int8_t key_type, kstr_t *msg)
{
    if (key_type == KEY_TYPE_GROUP)
        return KERR_NONE;
    if (key_type == KEY_TYPE_TRANSACTION) {
        *msg = kstr_c("transactions are not supported by this broker yet");
        return KERR_COORDINATOR_NOT_AVAILABLE;
    }
    *msg = kstr_c("unknown coordinator key type");
    return KERR_INVALID_REQUEST;
}

void handle_find_coordinator(request_t *req)
{
    broker_t *b = req->broker;
    FindCoordinatorRequest *r = req->body;
    FindCoordinatorResponse *resp = req->resp;
    if (req->hdr.api_version < 4) {
        kstr_t msg = kstr_null();
        resp->ErrorCode = coordinator_for(r->KeyType, &msg);
        resp->ErrorMessage = msg;
        resp->NodeId = resp->ErrorCode ? -1 : b->node_id;
        resp->Host = kstr_c(resp->ErrorCode ? "" : b->advertised_host);
        resp->Port = resp->ErrorCode ? -1 : b->advertised_port;
        request_respond(req);
        return;
    }
    REQUEST_ARRAY(req, resp->Coordinators, r->CoordinatorKeys.count);
    for (int32_t i = 0; i < resp->Coordinators.count; i++) {
        FindCoordinatorResponse_Coordinator *c = &resp->Coordinators.items[i];
        FindCoordinatorResponse_Coordinator_init(c);
        c->Key = r->CoordinatorKeys.items[i];
        kstr_t msg = kstr_null();
        c->ErrorCode = coordinator_for(r->KeyType, &msg);
        c->ErrorMessage = msg;
        c->NodeId = c->ErrorCode ? -1 : b->node_id;
        c->Host = kstr_c(c->ErrorCode ? "" : b->advertised_host);
        c->Port = c->ErrorCode ? -1 : b->advertised_port;
    }
    request_respond(req);
}
