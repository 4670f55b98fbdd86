/*
 * group_offsets.h - one group's committed offsets in memory: a hash table
 * keyed by (topic, partition). The durable copy is the __consumer_offsets
 * log (group_log.h); this table is what OffsetFetch reads and what a
 * replay of that log rebuilds.
 *
 * @locality: owned by the coordinator on the event-loop thread; no locking.
 */
#ifndef RUNNEL_GROUP_OFFSETS_H
#define RUNNEL_GROUP_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct group_offset {
    struct group_offset *hnext;
    char *topic;         /* NUL-terminated copy */
    size_t topic_len;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch; /* -1: unknown */
    char *metadata;      /* never NULL ("" for none) */
    size_t metadata_len;
    int64_t commit_ts;   /* wall-clock ms */
    int64_t expire_ts;   /* -1: none */
} group_offset_t;

typedef struct group_offsets group_offsets_t;

group_offsets_t *group_offsets_new(void);
void group_offsets_free(group_offsets_t *o);

group_offset_t *group_offsets_get(const group_offsets_t *o, const char *topic, size_t topic_len,
                                  int32_t partition);
/* Inserts or replaces. metadata may be NULL (stored as ""). 0, or -1 when out of memory
 * (the table is then unchanged). */
int group_offsets_put(group_offsets_t *o, const char *topic, size_t topic_len, int32_t partition,
                      int64_t offset, int32_t leader_epoch, const char *metadata, size_t metadata_len,
                      int64_t commit_ts, int64_t expire_ts);
/* True when an entry was removed. */
bool group_offsets_delete(group_offsets_t *o, const char *topic, size_t topic_len, int32_t partition);
int group_offsets_count(const group_offsets_t *o);
/* Fills out (room for cap entries) with every entry, sorted by topic then partition.
 * Returns the number written (at most cap). Pointers stay valid until the table changes. */
int group_offsets_sorted(const group_offsets_t *o, group_offset_t **out, int cap);

#endif
