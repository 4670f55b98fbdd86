/*
 * producer_state.c - per-partition producer state (sequences, epochs, open
 * transactions) and aborted transactions; the snapshot and .txnindex byte
 * layouts are at the top of producer_state.h.
 */
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "txn/producer_state.h"

#define PSTATE_HASH_SIZE 64

struct producer_state {
    pstate_producer_t *buckets[PSTATE_HASH_SIZE];
    int nproducers;
    int nopen; /* producers with an open transaction */
    pstate_aborted_t *aborted;
    int naborted, capaborted;
};

static unsigned pid_hash(int64_t pid)
{
    uint64_t x = (uint64_t)pid * 0x9E3779B97F4A7C15ull;
    return (unsigned)(x >> 58) % PSTATE_HASH_SIZE;
}

producer_state_t *pstate_new(void)
{
    return calloc(1, sizeof(producer_state_t));
}

void pstate_free(producer_state_t *ps)
{
    if (ps == NULL)
        return;
    for (int i = 0; i < PSTATE_HASH_SIZE; i++) {
        pstate_producer_t *p = ps->buckets[i];
        while (p) {
            pstate_producer_t *next = p->hnext;
            free(p);
            p = next;
        }
    }
    free(ps->aborted);
    free(ps);
}

pstate_producer_t *pstate_find(const producer_state_t *ps, int64_t producer_id)
{
    for (pstate_producer_t *p = ps->buckets[pid_hash(producer_id)]; p; p = p->hnext)
        if (p->producer_id == producer_id)
            return p;
    return NULL;
}

int pstate_producer_count(const producer_state_t *ps)
{
    return ps->nproducers;
}

void pstate_foreach(const producer_state_t *ps, void (*cb)(void *arg, const pstate_producer_t *p), void *arg)
{
    for (int i = 0; i < PSTATE_HASH_SIZE; i++)
        for (pstate_producer_t *p = ps->buckets[i]; p; p = p->hnext)
            cb(arg, p);
}

static pstate_producer_t *producer_get(producer_state_t *ps, int64_t producer_id)
{
    pstate_producer_t *p = pstate_find(ps, producer_id);
    if (p)
        return p;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->producer_id = producer_id;
    p->epoch = -1;
    p->coordinator_epoch = -1;
    p->txn_first_offset = -1;
    p->last_timestamp = -1;
    unsigned h = pid_hash(producer_id);
    p->hnext = ps->buckets[h];
    ps->buckets[h] = p;
    ps->nproducers++;
    return p;
}

/* Last sequence of a batch of count records starting at first (sequences wrap to 0 after INT32_MAX). */
static int32_t seq_add(int32_t first, int32_t n)
{
    int64_t s = (int64_t)first + n;
    if (s > INT32_MAX)
        s -= (int64_t)INT32_MAX + 1;
    return (int32_t)s;
}

int pstate_check(const producer_state_t *ps, int64_t producer_id, int16_t epoch, int32_t first_seq,
                 int32_t count, pstate_batch_t *dup)
{
    if (producer_id < 0)
        return PSTATE_APPEND;
    const pstate_producer_t *p = pstate_find(ps, producer_id);
    if (p == NULL || p->epoch < 0)
        return PSTATE_APPEND;
    if (epoch < p->epoch)
        return TXN_KERR_INVALID_PRODUCER_EPOCH;
    if (first_seq < 0)
        return PSTATE_APPEND; /* a transactional producer without sequences (never sent by clients) */
    if (epoch > p->epoch)
        return first_seq == 0 ? PSTATE_APPEND : TXN_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    int32_t last_seq = seq_add(first_seq, count - 1);
    for (int i = 0; i < p->nbatches; i++) {
        if (p->batches[i].first_seq == first_seq && p->batches[i].last_seq == last_seq) {
            if (dup)
                *dup = p->batches[i];
            return PSTATE_DUPLICATE;
        }
    }
    if (p->nbatches == 0)
        return PSTATE_APPEND; /* known from a marker only */
    int32_t cur = p->batches[p->nbatches - 1].last_seq;
    if (first_seq != seq_add(cur, 1))
        return TXN_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    return PSTATE_APPEND;
}

int pstate_update(producer_state_t *ps, int64_t producer_id, int16_t epoch, int32_t first_seq, int32_t count,
                  int64_t first_offset, int64_t last_offset, int64_t timestamp, bool transactional)
{
    if (producer_id < 0)
        return 0;
    pstate_producer_t *p = producer_get(ps, producer_id);
    if (p == NULL)
        return -1;
    if (epoch != p->epoch) {
        p->epoch = epoch;
        p->nbatches = 0;
    }
    if (first_seq >= 0) {
        if (p->nbatches == PSTATE_MAX_BATCHES) {
            memmove(&p->batches[0], &p->batches[1], sizeof(p->batches[0]) * (PSTATE_MAX_BATCHES - 1));
            p->nbatches--;
        }
        pstate_batch_t *b = &p->batches[p->nbatches++];
        b->first_seq = first_seq;
        b->last_seq = seq_add(first_seq, count - 1);
        b->first_offset = first_offset;
        b->last_offset = last_offset;
        b->timestamp = timestamp;
    }
    p->last_timestamp = timestamp;
    if (transactional && p->txn_first_offset < 0) {
        p->txn_first_offset = first_offset;
        ps->nopen++;
    }
    return 0;
}

int pstate_expire(producer_state_t *ps, int64_t before_ms)
{
    int n = 0;
    for (int i = 0; i < PSTATE_HASH_SIZE; i++) {
        pstate_producer_t **pp = &ps->buckets[i];
        while (*pp) {
            pstate_producer_t *p = *pp;
            if (p->txn_first_offset >= 0 || p->last_timestamp >= before_ms) {
                pp = &p->hnext;
                continue;
            }
            *pp = p->hnext;
            free(p);
            ps->nproducers--;
            n++;
        }
    }
    return n;
}

int64_t pstate_first_unstable_offset(const producer_state_t *ps)
{
    if (ps->nopen == 0)
        return -1;
    int64_t first = -1;
    for (int i = 0; i < PSTATE_HASH_SIZE; i++)
        for (const pstate_producer_t *p = ps->buckets[i]; p; p = p->hnext)
            if (p->txn_first_offset >= 0 && (first < 0 || p->txn_first_offset < first))
                first = p->txn_first_offset;
    return first;
}

int pstate_apply_marker(producer_state_t *ps, int64_t producer_id, int16_t epoch, bool commit,
                        int32_t coordinator_epoch, int64_t marker_offset, int64_t timestamp,
                        pstate_aborted_t *aborted)
{
    pstate_producer_t *p = producer_get(ps, producer_id);
    if (p == NULL)
        return -1;
    if (epoch != p->epoch) {
        p->epoch = epoch;
        p->nbatches = 0;
    }
    p->coordinator_epoch = coordinator_epoch;
    p->last_timestamp = timestamp;
    int64_t first = p->txn_first_offset;
    if (first < 0)
        return 0;
    p->txn_first_offset = -1;
    ps->nopen--;
    if (commit)
        return 0;
    int64_t lso = pstate_first_unstable_offset(ps);
    aborted->producer_id = producer_id;
    aborted->first_offset = first;
    aborted->last_offset = marker_offset;
    aborted->last_stable_offset = lso >= 0 && lso <= marker_offset ? lso : marker_offset + 1;
    return 1;
}

int pstate_add_aborted(producer_state_t *ps, const pstate_aborted_t *a)
{
    int i = ps->naborted;
    while (i > 0 && ps->aborted[i - 1].last_offset > a->last_offset)
        i--;
    for (int j = i - 1; j >= 0 && ps->aborted[j].last_offset == a->last_offset; j--)
        if (ps->aborted[j].producer_id == a->producer_id)
            return 0;
    if (ps->naborted == ps->capaborted) {
        int cap = ps->capaborted ? ps->capaborted * 2 : 16;
        pstate_aborted_t *n = realloc(ps->aborted, (size_t)cap * sizeof(*n));
        if (n == NULL)
            return -1;
        ps->aborted = n;
        ps->capaborted = cap;
    }
    memmove(&ps->aborted[i + 1], &ps->aborted[i], (size_t)(ps->naborted - i) * sizeof(*a));
    ps->aborted[i] = *a;
    ps->naborted++;
    return 0;
}

int pstate_aborted_range(const producer_state_t *ps, int64_t from, int64_t to, pstate_aborted_t *out, int cap)
{
    /* The list is ordered by last offset: find the first entry ending at or after `from`. */
    int lo = 0, hi = ps->naborted;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ps->aborted[mid].last_offset < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    int n = 0;
    for (int i = lo; i < ps->naborted; i++) {
        if (ps->aborted[i].first_offset >= to)
            continue;
        if (n < cap)
            out[n] = ps->aborted[i];
        n++;
    }
    return n;
}

int pstate_aborted_count(const producer_state_t *ps)
{
    return ps->naborted;
}

/* ---- files ---- */

void pstate_snapshot_encode(const producer_state_t *ps, buf_t *out)
{
    size_t start = out->len;
    buf_put_i16(out, PSTATE_SNAPSHOT_VERSION);
    buf_put_u32(out, 0); /* crc, patched below */
    buf_put_i32(out, ps->nproducers);
    for (int i = 0; i < PSTATE_HASH_SIZE; i++) {
        for (const pstate_producer_t *p = ps->buckets[i]; p; p = p->hnext) {
            const pstate_batch_t *last = p->nbatches ? &p->batches[p->nbatches - 1] : NULL;
            buf_put_i64(out, p->producer_id);
            buf_put_i16(out, p->epoch);
            buf_put_i32(out, last ? last->last_seq : -1);
            buf_put_i64(out, last ? last->last_offset : -1);
            buf_put_i32(out, last ? (int32_t)(last->last_offset - last->first_offset) : 0);
            buf_put_i64(out, p->last_timestamp);
            buf_put_i32(out, p->coordinator_epoch);
            buf_put_i64(out, p->txn_first_offset);
        }
    }
    if (out->oom)
        return;
    uint32_t crc = crc32c(out->data + start + 6, out->len - start - 6);
    be_put32(out->data + start + 2, crc);
}

int pstate_snapshot_decode(producer_state_t *ps, const uint8_t *data, size_t len)
{
    rd_t r;
    rd_init(&r, data, len);
    int16_t version = rd_i16(&r);
    uint32_t crc = rd_u32(&r);
    if (r.err || version != PSTATE_SNAPSHOT_VERSION || crc32c(data + 6, len - 6) != crc)
        return -1;
    int32_t n = rd_i32(&r);
    if (r.err || n < 0 || (size_t)n * PSTATE_SNAPSHOT_ENTRY_SIZE != rd_left(&r))
        return -1;
    for (int32_t i = 0; i < n; i++) {
        int64_t pid = rd_i64(&r);
        int16_t epoch = rd_i16(&r);
        int32_t last_seq = rd_i32(&r);
        int64_t last_offset = rd_i64(&r);
        int32_t delta = rd_i32(&r);
        int64_t ts = rd_i64(&r);
        int32_t coord_epoch = rd_i32(&r);
        int64_t txn_first = rd_i64(&r);
        if (r.err || pid < 0)
            return -1;
        pstate_producer_t *p = producer_get(ps, pid);
        if (p == NULL)
            return -1;
        p->epoch = epoch;
        p->coordinator_epoch = coord_epoch;
        p->last_timestamp = ts;
        p->nbatches = 0;
        if (last_seq >= 0 && last_offset >= 0 && delta >= 0) {
            pstate_batch_t *b = &p->batches[p->nbatches++];
            b->last_seq = last_seq;
            int64_t first_seq = (int64_t)last_seq - delta;
            b->first_seq = (int32_t)(first_seq < 0 ? first_seq + INT32_MAX + 1 : first_seq);
            b->last_offset = last_offset;
            b->first_offset = last_offset - delta;
            b->timestamp = ts;
        }
        if (p->txn_first_offset < 0 && txn_first >= 0)
            ps->nopen++;
        else if (p->txn_first_offset >= 0 && txn_first < 0)
            ps->nopen--;
        p->txn_first_offset = txn_first >= 0 ? txn_first : -1;
    }
    return 0;
}

void pstate_txnindex_put(buf_t *out, const pstate_aborted_t *a)
{
    buf_put_i16(out, 0);
    buf_put_i64(out, a->producer_id);
    buf_put_i64(out, a->first_offset);
    buf_put_i64(out, a->last_offset);
    buf_put_i64(out, a->last_stable_offset);
}

int pstate_txnindex_decode(producer_state_t *ps, const uint8_t *data, size_t len)
{
    rd_t r;
    rd_init(&r, data, len);
    int n = 0;
    while (rd_left(&r) >= PSTATE_TXNINDEX_ENTRY_SIZE) {
        if (rd_i16(&r) != 0)
            return -1;
        pstate_aborted_t a;
        a.producer_id = rd_i64(&r);
        a.first_offset = rd_i64(&r);
        a.last_offset = rd_i64(&r);
        a.last_stable_offset = rd_i64(&r);
        if (pstate_add_aborted(ps, &a) != 0)
            return -1;
        n++;
    }
    return n;
}
