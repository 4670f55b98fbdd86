/*
 * leader_epoch.h - one partition's leader epoch cache (Kafka's LeaderEpochFileCache): the offset
 * at which each leader epoch's first batch was appended, used to answer OffsetsForLeaderEpoch and
 * to find where a follower's log diverges from the leader's.
 *
 * Kept in memory as a list ordered by epoch, and persisted in
 * <partition dir>/leader-epoch-checkpoint in Kafka's text format (ASCII, '\n' line ends; reading
 * rules at the top of leader_epoch.c):
 *   0\n                        version
 *   <N>\n                      number of entries
 *   <epoch> <startOffset>\n    N times: epochs strictly increasing, start offsets non-decreasing
 * lec_flush rewrites the file whole (temp file + rename, no fsync), so a crash leaves the old
 * file or the new one, possibly stale: as in Kafka, the log's recovery is then expected to bring
 * the cache back in line with the log (lec_truncate_from_end / lec_truncate_from_start).
 *
 * Threading: @locality the partition's loop thread only; nothing is locked.
 */
#ifndef RUNNEL_STORAGE_LEADER_EPOCH_H
#define RUNNEL_STORAGE_LEADER_EPOCH_H

#include <stdbool.h>
#include <stdint.h>

#define LEC_FILE_NAME "leader-epoch-checkpoint"
/* Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET (OffsetsForLeaderEpochResponse). */
#define LEC_UNDEFINED_EPOCH (-1)
#define LEC_UNDEFINED_OFFSET (-1)

typedef struct leader_epoch_cache leader_epoch_cache_t;

/* Loads <dir>/leader-epoch-checkpoint. A missing or empty file is an empty cache; a malformed or
 * unreadable one is logged (LOG_WARN) and treated as empty. Entries that break monotonicity are
 * applied in file order through lec_assign, as Kafka does, so later ones win (and a WARN says
 * so). NULL only when out of memory. The caller flushes if it wants a repaired file rewritten. */
leader_epoch_cache_t *lec_open(const char *dir);
void lec_free(leader_epoch_cache_t *c);

/* Records that `epoch` starts at `start_offset` (Kafka's assign). Nothing changes (false) when
 * the cache is non-empty, `epoch` equals the latest epoch and `start_offset` is not below the
 * latest start offset (the common per-batch call), or when either argument is negative.
 * Otherwise the trailing entries that conflict with the new one (epoch >= `epoch`, or start
 * offset >= `start_offset`) are removed, the new entry is appended, and the result is true; the
 * caller then calls lec_flush. So an epoch at or below the latest, or a start offset below the
 * latest entry's, rewrites the tail rather than being refused: the cache follows the log.
 * Out of memory leaves the cache as it was, logs an ERROR and returns false. */
bool lec_assign(leader_epoch_cache_t *c, int32_t epoch, int64_t start_offset);

/* Latest epoch, or -1 when the cache is empty. */
int32_t lec_latest_epoch(const leader_epoch_cache_t *c);
/* Number of entries. */
int lec_count(const leader_epoch_cache_t *c);
/* Entry i (0 = oldest); false when i is out of range (outputs untouched). */
bool lec_entry(const leader_epoch_cache_t *c, int i, int32_t *epoch, int64_t *start_offset);

/* Kafka's endOffsetFor(requestedEpoch, logEndOffset), in this order:
 *   requested == -1                       -> (-1, -1)
 *   requested == latest epoch             -> (latest, log_end_offset)
 *   no entry has an epoch > requested     -> (-1, -1)   (empty cache, or requested > latest)
 *   requested < the first cached epoch    -> (requested, start offset of the first entry)
 *   otherwise                             -> (largest epoch <= requested,
 *                                             start offset of the first epoch > requested) */
void lec_end_offset_for(const leader_epoch_cache_t *c, int32_t requested_epoch,
                        int64_t log_end_offset, int32_t *epoch_out, int64_t *end_offset_out);

/* After the log was truncated to end at end_offset: removes the entries whose start offset is
 * >= end_offset (nothing when end_offset < 0). True when the cache changed. */
bool lec_truncate_from_end(leader_epoch_cache_t *c, int64_t end_offset);
/* After the log start moved up to start_offset: removes the entries starting at or below it and
 * puts back the last of them starting exactly at start_offset (an entry at start_offset is
 * kept). True when the cache changed. */
bool lec_truncate_from_start(leader_epoch_cache_t *c, int64_t start_offset);

/* Rewrites the file from the cache (fs_write_replace). 0, or -1 with errno set. */
int lec_flush(const leader_epoch_cache_t *c);

#endif
