/*
 * group_offsets.c - the per-group committed-offsets table: chained hashing
 * on FNV-1a of the topic mixed with the partition; the bucket array doubles
 * when the load passes one entry per bucket.
 */
#include <stdlib.h>
#include <string.h>

#include "group/group_offsets.h"

struct group_offsets {
    group_offset_t **buckets;
    size_t nbuckets; /* a power of two */
    int count;
};

static size_t offsets_hash(const char *topic, size_t len, int32_t partition)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)topic[i];
        h *= 1099511628211ull;
    }
    h ^= (uint32_t)partition;
    h *= 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

group_offsets_t *group_offsets_new(void)
{
    group_offsets_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->nbuckets = 16;
    o->buckets = calloc(o->nbuckets, sizeof(*o->buckets));
    if (o->buckets == NULL) {
        free(o);
        return NULL;
    }
    return o;
}

static void offset_free(group_offset_t *e)
{
    free(e->topic);
    free(e->metadata);
    free(e);
}

void group_offsets_free(group_offsets_t *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < o->nbuckets; i++) {
        group_offset_t *e = o->buckets[i];
        while (e) {
            group_offset_t *next = e->hnext;
            offset_free(e);
            e = next;
        }
    }
    free(o->buckets);
    free(o);
}

static group_offset_t **offsets_slot(const group_offsets_t *o, const char *topic, size_t len,
                                     int32_t partition)
{
    group_offset_t **pp = &o->buckets[offsets_hash(topic, len, partition) & (o->nbuckets - 1)];
    while (*pp) {
        group_offset_t *e = *pp;
        if (e->partition == partition && e->topic_len == len && memcmp(e->topic, topic, len) == 0)
            return pp;
        pp = &e->hnext;
    }
    return pp;
}

group_offset_t *group_offsets_get(const group_offsets_t *o, const char *topic, size_t topic_len,
                                  int32_t partition)
{
    return *offsets_slot(o, topic, topic_len, partition);
}

static void offsets_grow(group_offsets_t *o)
{
    size_t n = o->nbuckets * 2;
    group_offset_t **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < o->nbuckets; i++) {
        group_offset_t *e = o->buckets[i];
        while (e) {
            group_offset_t *next = e->hnext;
            size_t h = offsets_hash(e->topic, e->topic_len, e->partition) & (n - 1);
            e->hnext = nb[h];
            nb[h] = e;
            e = next;
        }
    }
    free(o->buckets);
    o->buckets = nb;
    o->nbuckets = n;
}

int group_offsets_put(group_offsets_t *o, const char *topic, size_t topic_len, int32_t partition,
                      int64_t offset, int32_t leader_epoch, const char *metadata, size_t metadata_len,
                      int64_t commit_ts, int64_t expire_ts)
{
    if (metadata == NULL) {
        metadata = "";
        metadata_len = 0;
    }
    char *md = malloc(metadata_len + 1);
    if (md == NULL)
        return -1;
    memcpy(md, metadata, metadata_len);
    md[metadata_len] = '\0';
    group_offset_t **pp = offsets_slot(o, topic, topic_len, partition);
    group_offset_t *e = *pp;
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        char *t = malloc(topic_len + 1);
        if (e == NULL || t == NULL) {
            free(e);
            free(t);
            free(md);
            return -1;
        }
        memcpy(t, topic, topic_len);
        t[topic_len] = '\0';
        e->topic = t;
        e->topic_len = topic_len;
        e->partition = partition;
        *pp = e;
        o->count++;
    } else {
        free(e->metadata);
    }
    e->metadata = md;
    e->metadata_len = metadata_len;
    e->offset = offset;
    e->leader_epoch = leader_epoch;
    e->commit_ts = commit_ts;
    e->expire_ts = expire_ts;
    if ((size_t)o->count > o->nbuckets)
        offsets_grow(o);
    return 0;
}

bool group_offsets_delete(group_offsets_t *o, const char *topic, size_t topic_len, int32_t partition)
{
    group_offset_t **pp = offsets_slot(o, topic, topic_len, partition);
    group_offset_t *e = *pp;
    if (e == NULL)
        return false;
    *pp = e->hnext;
    offset_free(e);
    o->count--;
    return true;
}

int group_offsets_count(const group_offsets_t *o)
{
    return o->count;
}

static int offsets_cmp(const void *a, const void *b)
{
    const group_offset_t *x = *(group_offset_t *const *)a;
    const group_offset_t *y = *(group_offset_t *const *)b;
    int c = strcmp(x->topic, y->topic);
    if (c != 0)
        return c;
    return x->partition < y->partition ? -1 : x->partition > y->partition;
}

int group_offsets_sorted(const group_offsets_t *o, group_offset_t **out, int cap)
{
    int n = 0;
    for (size_t i = 0; i < o->nbuckets && n < cap; i++)
        for (group_offset_t *e = o->buckets[i]; e && n < cap; e = e->hnext)
            out[n++] = e;
    if (n > 1)
        qsort(out, (size_t)n, sizeof(*out), offsets_cmp);
    return n;
}
