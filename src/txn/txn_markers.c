/* txn_markers.c - see txn_markers.h. */
#include "txn/txn_markers.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/replication.h"
#include "common/logger.h"
#include "group/group_coordinator.h"
#include "group/group_log.h"
#include "protocol/kerr.h"
#include "txn/partition_txn.h"

/* ---------------------------------------------------------------- markers */

typedef struct marker_wait {
    repl_hw_wait_t hw;
    txn_marker_write_t *op;
    txn_marker_target_t *target;
} marker_wait_t;

struct txn_marker_write {
    evloop_t *loop;
    int pending;
    ev_defer_t finish;
    void (*done)(void *arg);
    void *arg;
    int n;
    marker_wait_t waits[];
};

static void op_finish_cb(evloop_t *loop, ev_defer_t *d)
{
    (void)loop;
    txn_marker_write_t *op = d->arg;
    void (*done)(void *) = op->done;
    void *arg = op->arg;
    free(op);
    done(arg);
}

static void marker_replicated(repl_hw_wait_t *hw, int16_t err)
{
    marker_wait_t *mw = hw->arg;
    txn_marker_write_t *op = mw->op;
    mw->target->error = err;
    if (--op->pending == 0)
        evloop_defer(op->loop, &op->finish);
}

/* Checks and writes one marker. 0 with *pp set (to wait for), or a Kafka error. */
static int16_t write_one(const txn_markers_env_t *env, const txn_marker_params_t *m, txn_marker_target_t *t,
                         partition_t **pp)
{
    topic_t *tp = t->topic.len > 0 ? topics_find(env->topics, t->topic.ptr, (size_t)t->topic.len) : NULL;
    partition_t *p = topics_partition(tp, t->partition);
    if (p == NULL)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (env->cluster) {
        int16_t err = cluster_check_leader(env->cluster, tp, t->partition);
        if (err)
            return err;
    }
    if (!repl_is_leader(p))
        return KERR_NOT_LEADER_OR_FOLLOWER;
    producer_state_t *ps = ptxn_state(p);
    if (ps == NULL)
        return KERR_UNKNOWN_SERVER_ERROR;
    const pstate_producer_t *known = pstate_find(ps, m->producer_id);
    if (known && m->producer_epoch < known->epoch)
        return TXN_KERR_INVALID_PRODUCER_EPOCH;
    if (known && m->coordinator_epoch < known->coordinator_epoch)
        return TXN_KERR_TRANSACTION_COORDINATOR_FENCED;
    int16_t err = ptxn_write_marker(env->topics, p, m->producer_id, m->producer_epoch, m->commit,
                                    m->coordinator_epoch, evloop_wall_ms());
    if (err)
        return err;
    if (env->groups && strcmp(tp->name, GROUP_LOG_TOPIC) == 0)
        group_coordinator_txn_complete(env->groups, p->index, m->producer_id, m->commit);
    *pp = p;
    return KERR_NONE;
}

txn_marker_write_t *txn_markers_write(const txn_markers_env_t *env, const txn_marker_params_t *m,
                                      txn_marker_target_t *targets, int n, void (*done)(void *arg),
                                      void *arg)
{
    txn_marker_write_t *op = calloc(1, sizeof(*op) + sizeof(marker_wait_t) * (size_t)(n > 0 ? n : 1));
    if (op == NULL)
        return NULL;
    op->loop = env->loop;
    op->done = done;
    op->arg = arg;
    op->n = n;
    op->finish.cb = op_finish_cb;
    op->finish.arg = op;
    op->pending = 1; /* held until every target was tried */
    for (int i = 0; i < n; i++) {
        marker_wait_t *mw = &op->waits[i];
        mw->op = op;
        mw->target = &targets[i];
        partition_t *p = NULL;
        targets[i].error = write_one(env, m, &targets[i], &p);
        if (targets[i].error) {
            LOG_DEBUG("txn", "marker for producer %" PRId64 " on %.*s-%d: error %d", m->producer_id,
                      targets[i].topic.len, targets[i].topic.ptr, targets[i].partition, targets[i].error);
            continue;
        }
        mw->hw.done = marker_replicated;
        mw->hw.arg = mw;
        if (repl_hw_wait_start(&mw->hw, env->loop, p, log_end_offset(p->log), env->timeout_ms))
            op->pending++;
    }
    if (--op->pending == 0)
        evloop_defer(op->loop, &op->finish);
    return op;
}

void txn_markers_cancel(txn_marker_write_t *op)
{
    if (op == NULL)
        return;
    for (int i = 0; i < op->n; i++)
        repl_hw_wait_cancel(&op->waits[i].hw);
    evloop_defer_cancel(op->loop, &op->finish);
    free(op);
}
