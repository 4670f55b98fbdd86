/*
 * api_table.c - the one dispatch table: API key, the versions Runnel accepts,
 * and the handler. ApiVersions advertises exactly this table.
 *
 * Version floors: Produce is advertised from 0 because librdkafka up to 2.11
 * disables compression when v0 is missing (batches below magic 2 are refused
 * per partition); Fetch from 4, the first version that carries magic-2
 * batches with the aborted-transactions field; ListOffsets from 0 (v0's
 * OldStyleOffsets answer is cheap to give). The group APIs (src/group/) are
 * advertised at every schema version; ConsumerGroupHeartbeat (KIP-848) is not.
 */
#include "server/broker.h"

static const api_handler_t api_handlers[] = {
    {0, 0, 11, handle_produce},
    {1, 4, 17, handle_fetch},
    {2, 0, 10, handle_list_offsets},
    {3, 0, 12, handle_metadata},
    {8, 0, 9, handle_offset_commit},
    {9, 0, 9, handle_offset_fetch},
    {10, 0, 6, handle_find_coordinator},
    {11, 0, 9, handle_join_group},
    {12, 0, 4, handle_heartbeat},
    {13, 0, 5, handle_leave_group},
    {14, 0, 5, handle_sync_group},
    {15, 0, 5, handle_describe_groups},
    {16, 0, 5, handle_list_groups},
    {18, 0, 4, handle_api_versions},
    {19, 0, 7, handle_create_topics},
    {20, 0, 6, handle_delete_topics},
    {21, 0, 2, handle_delete_records},
    {22, 0, 5, handle_init_producer_id},
    {23, 0, 4, handle_offset_for_leader_epoch},
    {24, 0, 5, handle_add_partitions_to_txn},
    {25, 0, 4, handle_add_offsets_to_txn},
    {26, 0, 4, handle_end_txn},
    {27, 0, 1, handle_write_txn_markers},
    {28, 0, 4, handle_txn_offset_commit},
    {32, 0, 4, handle_describe_configs},
    {33, 0, 2, handle_alter_configs},
    {35, 0, 4, handle_describe_log_dirs},
    {37, 0, 3, handle_create_partitions},
    {42, 0, 2, handle_delete_groups},
    {43, 0, 2, handle_elect_leaders},
    {44, 0, 1, handle_incremental_alter_configs},
    {47, 0, 0, handle_offset_delete},
    {60, 0, 1, handle_describe_cluster},
    {61, 0, 0, handle_describe_producers},
    {65, 0, 0, handle_describe_transactions},
    {66, 0, 1, handle_list_transactions},
};

#define N_HANDLERS ((int)(sizeof(api_handlers) / sizeof(api_handlers[0])))

const api_handler_t *broker_api_handler(int16_t api_key)
{
    for (int i = 0; i < N_HANDLERS; i++)
        if (api_handlers[i].api_key == api_key)
            return &api_handlers[i];
    return NULL;
}

const api_handler_t *broker_api_handlers(int *n)
{
    *n = N_HANDLERS;
    return api_handlers;
}
