/*
 * cleaner.h - the log cleaner: compaction of logs with cleanup.policy=compact (or compact,delete).
 *
 * Files it writes in a partition directory (layouts as in segment.c and index.c):
 *   <base>.log.cleaned, <base>.index.cleaned, <base>.timeindex.cleaned
 *       the compacted replacement of a group of consecutive closed segments starting at <base>;
 *       renamed to .swap and then to the plain names by log_swap_cleaned (see log.c).
 * And in each log dir (written by the caller, topics.c, with checkpoint_write):
 *   cleaner-offset-checkpoint   "topic partition first-dirty-offset" per compacted partition.
 *
 * Threading: one background thread does the reading, deduplication and writing. It only reads
 * closed segment files (immutable: nothing appends to them) through its own descriptors and only
 * creates .cleaned files; it never touches a log_t. Everything taking a log_t (cleaner_priority,
 * cleaner_start, cleaner_poll, cleaner_forget) runs on the thread that owns the logs (the event
 * loop), which also performs the swap once a job is done: the thread posts the finished job and
 * writes an eventfd that the loop watches (cleaner_event_fd). So the loop never waits for the
 * cleaner except in cleaner_forget/cleaner_destroy, which cancel the running job (checked between
 * batches) and wait for the thread to let go of it.
 *
 * Memory: one job at a time. Its key map is a fixed-size open-addressing table of 24-byte slots
 * (a 128-bit hash of the key and the latest offset seen for it) sized from the dirty bytes,
 * at most log.cleaner.dedupe.buffer.size (itself capped at CLEANER_MAX_MAP_BYTES). When the map
 * fills, the job cleans what the map covers and moves the checkpoint only that far; the next job
 * continues from there (several passes). Plus one segment-reading window and the output buffer.
 */
#ifndef RUNNEL_STORAGE_CLEANER_H
#define RUNNEL_STORAGE_CLEANER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/log.h"

#define CLEANER_MAX_MAP_BYTES (64LL << 20)

typedef struct cleaner cleaner_t;

typedef struct cleaner_options {
    int64_t dedupe_buffer_bytes; /* log.cleaner.dedupe.buffer.size (capped) */
    double load_factor;          /* log.cleaner.io.buffer.load.factor: map fill limit, 0.9 */
} cleaner_options_t;

typedef struct cleaner_stats {
    int64_t jobs;            /* jobs finished (swapped or not) */
    int64_t passes_map_full; /* jobs whose key map filled before the dirty section's end */
    int64_t records_read, records_kept;
    int64_t bytes_read, bytes_written;
    int64_t tombstones_dropped;
} cleaner_stats_t;

/* Starts the cleaner thread. NULL on failure (errno set). */
cleaner_t *cleaner_create(const cleaner_options_t *opt);
/* Cancels the current job (its .cleaned files are removed), stops and joins the thread. */
void cleaner_destroy(cleaner_t *c);
/* Readable when a job has finished: the loop then calls cleaner_poll. */
int cleaner_event_fd(const cleaner_t *c);
/* True while a job is queued, running or waiting for cleaner_poll. */
bool cleaner_busy(const cleaner_t *c);
/* Totals so far (loop thread). */
cleaner_stats_t cleaner_get_stats(const cleaner_t *c);

/* How much `l` needs cleaning at now_ms (wall clock): < 0 when it does not (not compacted, nothing
 * dirty below the first uncleanable offset, dirty ratio below min_cleanable_ratio), else its dirty
 * ratio, plus 1 when max_compaction_lag_ms or a passed tombstone delete horizon forces a pass.
 * The first uncleanable offset is the active segment's base, or the base of the first dirty
 * segment holding records younger than min_compaction_lag_ms. */
double cleaner_priority(const log_t *l, int64_t now_ms);
/* Queues a job for `l` (the cleaner must be idle): LOG_OK, LOG_ERR_INVALID when busy or there is
 * nothing to clean, LOG_ERR_IO on allocation failure. */
int cleaner_start(cleaner_t *c, log_t *l, int64_t now_ms);
/* Handles a finished job: swaps its cleaned segments in (log_swap_cleaned), moves the log's
 * cleaner checkpoint and horizon, logs a summary. Returns the log it cleaned (NULL if none
 * finished, or the job was cancelled). Loop thread. */
log_t *cleaner_poll(cleaner_t *c);
/* Before `l` is closed or removed: cancels and waits for its job, drops its result. */
void cleaner_forget(cleaner_t *c, log_t *l);

/* Runs one whole job for `l` synchronously on the calling thread (cleaner_start + wait +
 * cleaner_poll), for tests and tools. Returns LOG_OK when it cleaned, LOG_ERR_INVALID when there
 * was nothing to clean. */
int cleaner_clean_now(cleaner_t *c, log_t *l, int64_t now_ms);

#endif
