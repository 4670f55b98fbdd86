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

/* ---------------------------------------------------------------- high-watermark wait */

static void hw_finish(txn_hw_wait_t *w, int16_t err)
{
    txn_hw_wait_cancel(w);
    w->done(w, err);
}

static void hw_recheck_cb(evloop_t *loop, ev_defer_t *d)
{
    (void)loop;
    txn_hw_wait_t *w = d->arg;
    if (w->gone || !repl_is_leader(w->p))
        hw_finish(w, KERR_NOT_LEADER_OR_FOLLOWER);
    else if (partition_high_watermark(w->p) >= w->target)
        hw_finish(w, KERR_NONE);
}

static void hw_wake(partition_waiter_t *pw)
{
    txn_hw_wait_t *w = pw->arg;
    if (pw->next == NULL)
        w->gone = true; /* detached: the partition is going away */
    evloop_defer(w->loop, &w->recheck);
}

static void hw_timeout_cb(evloop_t *loop, ev_timer_t *t)
{
    (void)loop;
    hw_finish(t->arg, KERR_REQUEST_TIMED_OUT);
}

int txn_hw_wait_start(txn_hw_wait_t *w, evloop_t *loop, partition_t *p, int64_t target, int64_t timeout_ms)
{
    if (partition_high_watermark(p) >= target)
        return 0;
    w->loop = loop;
    w->p = p;
    w->target = target;
    w->gone = false;
    w->pw.prev = w->pw.next = NULL;
    w->pw.wake = hw_wake;
    w->pw.arg = w;
    memset(&w->recheck, 0, sizeof(w->recheck));
    w->recheck.cb = hw_recheck_cb;
    w->recheck.arg = w;
    evloop_timer_init(&w->timer, hw_timeout_cb, w);
    partition_add_hw_waiter(p, &w->pw);
    evloop_timer_start(loop, &w->timer, timeout_ms > 0 ? timeout_ms : 0);
    w->armed = true;
    return 1;
}

void txn_hw_wait_cancel(txn_hw_wait_t *w)
{
    if (!w->armed)
        return;
    w->armed = false;
    partition_remove_waiter(&w->pw);
    evloop_timer_stop(w->loop, &w->timer);
    evloop_defer_cancel(w->loop, &w->recheck);
}

/* ---------------------------------------------------------------- markers */

typedef struct marker_wait {
    txn_hw_wait_t hw;
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

static void marker_replicated(txn_hw_wait_t *hw, int16_t err)
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
        if (txn_hw_wait_start(&mw->hw, env->loop, p, log_end_offset(p->log), env->timeout_ms))
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
        txn_hw_wait_cancel(&op->waits[i].hw);
    evloop_defer_cancel(op->loop, &op->finish);
    free(op);
}
