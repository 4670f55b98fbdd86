/*
 * handlers_epochs.c - OffsetForLeaderEpoch (API key 23, v0-4): where a leader epoch ends in this
 * broker's log. Followers ask it to find where their log diverges from the leader's; consumers
 * (KIP-320) to check after a leader change that their position was not truncated away.
 *
 * Answered as Apache Kafka's ReplicaManager/Partition do, per partition:
 *   1. a topic or partition this broker does not know: UNKNOWN_TOPIC_OR_PARTITION; in cluster
 *      mode, a partition whose replicas do not include this broker: NOT_LEADER_OR_FOLLOWER (Kafka
 *      does not host it, so it checks nothing else);
 *   2. CurrentLeaderEpoch (v2+; -1 means "not given") against the partition's leader epoch:
 *      larger -> UNKNOWN_LEADER_EPOCH, smaller -> FENCED_LEADER_EPOCH. Kafka checks this before
 *      the leadership, so a replica with a stale caller is fenced even when it does not lead;
 *   3. only the leader answers (Kafka's fetchOnlyFromLeader is true for every caller, ReplicaId
 *      included): NOT_LEADER_OR_FOLLOWER otherwise, also while the partition has no leader;
 *   4. LeaderEpoch is looked up in the leader epoch cache (repl_end_offset_for): the largest
 *      epoch <= the requested one and the offset where it ends (the start of the next epoch, or
 *      the log end for the latest). When the cache has no answer both are UNDEFINED (-1), with
 *      no error.
 * ReplicaId (v3+) changes nothing: Kafka uses it for neither the check nor the answer.
 *
 * @locality: the event-loop thread (reads partitions and the cluster image it owns).
 */
#include "cluster/cluster.h"
#include "cluster/replication.h"
#include "server/broker.h"

/* Kafka's RecordBatch.NO_PARTITION_LEADER_EPOCH: the caller did not give its current epoch. */
#define NO_LEADER_EPOCH (-1)

/* Whether this broker holds a replica of the partition: in cluster mode, one of the replicas
 * ZooKeeper assigns (topics ZooKeeper does not know are local, so held here); always on one node. */
static bool epochs_hosts(const broker_t *b, const topic_t *tp, int32_t partition)
{
    if (b->cluster == NULL)
        return true;
    const zk_partition_t *zp = cluster_partition(b->cluster, tp->name, partition);
    if (zp == NULL)
        return true;
    for (int i = 0; i < zp->nreplicas; i++)
        if (zp->replicas[i] == b->node_id)
            return true;
    return false;
}

/* Steps 1-3 of the header comment: KERR_NONE when this broker may answer for p. */
static int16_t epochs_check(const broker_t *b, const topic_t *tp, partition_t *p, int32_t current_epoch)
{
    if (p == NULL)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (!epochs_hosts(b, tp, p->index))
        return KERR_NOT_LEADER_OR_FOLLOWER;
    if (current_epoch != NO_LEADER_EPOCH && current_epoch != p->leader_epoch)
        return current_epoch > p->leader_epoch ? KERR_UNKNOWN_LEADER_EPOCH : KERR_FENCED_LEADER_EPOCH;
    /* Kafka answers NOT_LEADER_OR_FOLLOWER whatever the reason this replica does not lead, so
     * cluster_check_leader's LEADER_NOT_AVAILABLE is not passed on. */
    if (b->cluster && cluster_check_leader(b->cluster, tp, p->index) != KERR_NONE)
        return KERR_NOT_LEADER_OR_FOLLOWER;
    if (!repl_is_leader(p))
        return KERR_NOT_LEADER_OR_FOLLOWER;
    return KERR_NONE;
}

void handle_offset_for_leader_epoch(request_t *req)
{
    broker_t *b = req->broker;
    OffsetForLeaderEpochRequest *r = req->body;
    OffsetForLeaderEpochResponse *resp = req->resp;
    REQUEST_ARRAY(req, resp->Topics, r->Topics.count);
    for (int32_t i = 0; i < resp->Topics.count; i++) {
        OffsetForLeaderEpochRequest_OffsetForLeaderTopic *t = &r->Topics.items[i];
        OffsetForLeaderEpochResponse_OffsetForLeaderTopicResult *rt = &resp->Topics.items[i];
        OffsetForLeaderEpochResponse_OffsetForLeaderTopicResult_init(rt);
        rt->Topic = t->Topic;
        topic_t *tp = t->Topic.len > 0 ? topics_find(b->topics, t->Topic.ptr, (size_t)t->Topic.len) : NULL;
        REQUEST_ARRAY(req, rt->Partitions, t->Partitions.count);
        for (int32_t j = 0; j < rt->Partitions.count; j++) {
            OffsetForLeaderEpochRequest_OffsetForLeaderPartition *pq = &t->Partitions.items[j];
            OffsetForLeaderEpochResponse_EpochEndOffset *pr = &rt->Partitions.items[j];
            OffsetForLeaderEpochResponse_EpochEndOffset_init(pr);
            pr->Partition = pq->Partition;
            pr->LeaderEpoch = -1;
            pr->EndOffset = -1;
            partition_t *p = topics_partition(tp, pq->Partition);
            pr->ErrorCode = epochs_check(b, tp, p, pq->CurrentLeaderEpoch);
            if (pr->ErrorCode != KERR_NONE)
                continue;
            int32_t epoch;
            int64_t end;
            repl_end_offset_for(p, pq->LeaderEpoch, &epoch, &end);
            if (end >= 0) { /* Kafka answers both UNDEFINED when the end offset is */
                pr->LeaderEpoch = epoch;
                pr->EndOffset = end;
            }
        }
    }
    request_respond(req);
}
