/*
 * log.h - one partition's log: the directory `<log.dir>/<topic>-<partition>/`
 * holding segments named by their 20-digit base offset (`.log`, `.index`,
 * `.timeindex`; byte layouts in segment.c and index.c).
 *
 * Threading: a log_t is not locked. Every function here must be called by one
 * thread at a time per log; the broker serialises access per partition. Two
 * different logs may be used from different threads freely.
 *
 * Memory: O(1) per segment (base offset, size, next offset, largest
 * timestamp, index entry counts, three fds). Index contents stay on disk and
 * are binary-searched with pread. Only the active segment (from its first use after log_open)
 * and at most one older segment (the last one read) keep their files open.
 *
 * Return codes: enum log_rc below (never Kafka error codes).
 */
#ifndef RUNNEL_STORAGE_LOG_H
#define RUNNEL_STORAGE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_rc {
    LOG_OK = 0,
    LOG_ERR_IO = -1,           /* a system call failed (errno logged) */
    LOG_ERR_OUT_OF_RANGE = -2, /* offset outside [log start, log end] */
    LOG_ERR_CORRUPT = -3,      /* on-disk or checkpoint data malformed */
    LOG_ERR_INVALID = -4,      /* bad argument or malformed batches handed to append */
};

/* Bounds how many logs may hold open segment files at once (default: from RLIMIT_NOFILE at
 * first use); the least recently used log closes its files beyond that. For tests. */
void log_set_open_files_limit(int max_logs);

/* Short English name of a log_rc value, for log lines. */
const char *log_rc_str(int rc);

typedef struct log_config {
    int64_t segment_bytes;        /* roll before the active .log would exceed this; 1 GiB */
    int64_t segment_ms;           /* roll when the active segment's first append is older; 7 days */
    int32_t index_interval_bytes; /* bytes of log between index entries; 4096 */
    /* cleanup.policy and its settings; read by log_apply_retention and the cleaner each time, so
     * a log_set_config takes effect at their next run. */
    bool cleanup_delete;          /* "delete" in cleanup.policy: retention applies; true */
    bool cleanup_compact;         /* "compact" in cleanup.policy: the cleaner applies; false */
    int64_t retention_ms;         /* closed segments whose largest timestamp is older go; 7 days;
                                     negative = forever */
    int64_t retention_bytes;      /* oldest closed segments go while the log is larger; -1 */
    int64_t delete_retention_ms;  /* tombstones survive this long after their first cleaning */
    int64_t min_compaction_lag_ms; /* records younger than this are not compacted; 0 */
    int64_t max_compaction_lag_ms; /* dirty records older than this force a cleaning; INT64_MAX */
    double min_cleanable_ratio;   /* dirty bytes / cleanable bytes needed to clean; 0.5 */
} log_config_t;

/* Kafka's defaults: log.segment.bytes, log.roll.hours=168, log.index.interval.bytes,
 * cleanup.policy=delete, log.retention.hours=168, and the log.cleaner.* defaults. */
void log_config_default(log_config_t *cfg);

typedef struct log log_t;

/* A region of a segment file. fd is borrowed: it stays valid until the next call on the same
 * log other than the pure getters (log_start_offset .. log_recovery_point); a caller that keeps
 * it longer (e.g. for a later sendfile) must dup() it. len == 0 means no data (fd is then -1). */
typedef struct log_read {
    int fd;
    int64_t position;
    int32_t len;
    int64_t first_batch_base; /* baseOffset of the first batch in the region, -1 when len == 0 */
} log_read_t;

/* Opens (creating if missing; the parent must exist) the partition directory and its segments.
 * Recovery: every segment whose batches extend past `recovery_point` is scanned batch by batch
 * (header sanity, batchLength inside the file, magic 2, CRC-32C, offsets increasing); at the first
 * bad or torn batch it is truncated there (WARN with the bytes dropped) and any later segments are
 * deleted; the indexes of scanned segments are rebuilt. A segment whose .index/.timeindex is
 * missing or inconsistent is rebuilt the same way. `log_start_offset` (-1 if unknown) is clamped to
 * [first segment base, log end]. A `<base>.log.swap` (an interrupted compaction swap, see
 * log_swap_cleaned) is completed: the segments it replaces (bases in (base, its last offset]) are
 * deleted and it becomes <base>.log with rebuilt indexes. Leftover `.deleted`/`.cleaned`/`.swap`
 * files and index files without a .log are removed. An empty directory gets one segment at max(0, log_start_offset). */
int log_open(const char *dir, const log_config_t *cfg, int64_t recovery_point,
             int64_t log_start_offset, log_t **out);
/* Writes the active segment's final time-index entry, closes the files, frees. Flushes nothing. */
void log_close(log_t *l);
/* Takes effect from the next append. Out-of-range values are clamped (segment_bytes >= 64,
 * segment_ms >= 1, index_interval_bytes >= 0). */
void log_set_config(log_t *l, const log_config_t *cfg);

/* Appends `len` bytes of one or more whole magic-2 batches (validated by the caller; only their
 * framing is re-checked here: LOG_ERR_INVALID, nothing written). Assigns offsets in place: each
 * batch's baseOffset becomes the next offset and its partitionLeaderEpoch becomes leader_epoch.
 * Rolls first when the active segment is non-empty and would exceed segment_bytes, when its first
 * append is older than segment_ms at now_ms, or when relative offsets would overflow int32.
 * *first_offset = first assigned offset, *next_offset = log end after the append. On LOG_ERR_IO
 * the log is left as before the call (the batches' offsets may have been rewritten). */
int log_append(log_t *l, uint8_t *batches, size_t len, int32_t leader_epoch, int64_t now_ms,
               int64_t *first_offset, int64_t *next_offset);

/* A follower's append (replication): whole batches exactly as the leader has them, offsets and
 * leader epochs kept. Their offsets must lie at or past the log end and increase. Rolls as
 * log_append does. *next_offset = log end after the append. */
int log_append_replica(log_t *l, const uint8_t *batches, size_t len, int64_t now_ms, int64_t *next_offset);
int64_t log_start_offset(const log_t *l);
int64_t log_end_offset(const log_t *l); /* next offset to be assigned */
int64_t log_size_bytes(const log_t *l); /* sum of segment .log sizes */
int log_segment_count(const log_t *l);
/* Base offset of the active (last) segment. */
int64_t log_active_base_offset(const log_t *l);
int64_t log_recovery_point(const log_t *l);

/* Data for a fetch at `offset`: the whole batch containing it plus the following whole batches of
 * the same segment, up to max_bytes in total; with min_one the first batch is returned even when
 * larger than max_bytes (without it, len 0). offset == log end -> LOG_OK with len 0;
 * offset < log start or > log end -> LOG_ERR_OUT_OF_RANGE. When the offset lies past the last batch
 * of the segment holding it, the read continues in the next segment. */
int log_read(log_t *l, int64_t offset, int32_t max_bytes, bool min_one, log_read_t *out);

/* ListOffsets by timestamp: the first batch in offset order, at or after the log start, whose
 * maxTimestamp >= ts. Returns 1 with that ONE batch's region in *out (the caller finds the record),
 * 0 when no batch qualifies, or a negative log_rc. */
int log_find_timestamp(log_t *l, int64_t ts, log_read_t *out);

/* The largest batch maxTimestamp in the log (ListOffsets -3). Returns 1 with *ts, *offset (the
 * lastOffset of the first batch reaching it; the caller refines to the record) and that batch's
 * region; 0 when the log holds no batch (then *ts = *offset = -1, batch->len = 0); or a negative
 * log_rc. Batches wholly below the log start offset are not considered. */
int log_max_timestamp(log_t *l, int64_t *ts, int64_t *offset, log_read_t *batch);

/* DeleteRecords: raises the log start offset to `offset` (<= log end, else LOG_ERR_OUT_OF_RANGE;
 * a lower value is a no-op) and deletes the segments lying entirely below it, never the active
 * one. */
int log_delete_records(log_t *l, int64_t offset);

/* Truncates so that log end <= offset (replication): drops every batch whose lastOffset >= offset;
 * a batch straddling `offset` goes whole, so the end may land lower. *new_end = resulting log end.
 * An offset below the first segment empties the log and restarts it at `offset`. */
int log_truncate_to(log_t *l, int64_t offset, int64_t *new_end);

/* Empties the log and restarts it at `offset`, which may lie past the log end (a follower whose
 * leader deleted everything it had). */
int log_restart_at(log_t *l, int64_t offset, int64_t *new_end);
/* fdatasyncs every segment holding data past the recovery point (and the directory when segments
 * were created or deleted); the recovery point then becomes the log end. */
int log_flush(log_t *l);
/* The same flush in three steps, so the fdatasyncs can run on another thread while the log goes
 * on taking appends (group commit): begin (owner thread) dup()s the descriptors of the segments
 * holding data past the recovery point and opens the directory when it needs an fsync; run (any
 * thread) syncs them; close releases them; end (owner thread, after a successful run) moves the
 * recovery point to the log end as of begin. LOG_ERR_INVALID from begin: too many segments to
 * sync at once, use log_flush. */
#define LOG_FLUSH_MAX_FDS 8
typedef struct log_flush_job {
    int64_t end;
    int fds[LOG_FLUSH_MAX_FDS];
    int nfds;
    int dir_fd;
    uint64_t dir_gen;
} log_flush_job_t;
int log_flush_begin(log_t *l, log_flush_job_t *job);
int log_flush_job_run(log_flush_job_t *job);
void log_flush_job_close(log_flush_job_t *job);
void log_flush_end(log_t *l, const log_flush_job_t *job);
/* Calls cb with every whole batch from the log start to the log end, in offset order, reading
 * chunks of at most chunk_max bytes (a larger batch is read whole). For rebuilding state kept in
 * a log (__consumer_offsets, __transaction_state). Returns the number of batches, or a negative
 * log_rc when a read fails (batches before it were delivered). Stops quietly at a damaged region. */
int64_t log_replay(log_t *l, int32_t chunk_max, void (*cb)(void *arg, const uint8_t *batch, size_t len),
                   void *arg);

/* Closes the log and deletes its whole directory (topic deletion). `l` is freed either way. */
int log_remove(log_t *l);

/* ---- retention ---- */

/* Deletes closed segments (never the active one) from the oldest on: while a segment's largest
 * timestamp (its .log's mtime when it holds no timestamps) is more than retention_ms before
 * now_ms (wall clock), then while the log minus the segment is still >= retention_bytes. Only
 * with cleanup_delete; negative limits mean no limit. The log start offset moves to the new
 * first segment. Every deletion is logged (topic, partition, segment, reason). Files are unlinked
 * at once: a Fetch answer holding a dup()ed descriptor still sends its region. Returns the number
 * of segments deleted, or a negative log_rc. */
int log_apply_retention(log_t *l, int64_t now_ms);

/* ---- support for the cleaner (cleaner.h); loop thread only ---- */

typedef struct log_segment_info {
    int64_t base_offset;
    int64_t end_offset;    /* the next segment's base; the log end for the active one */
    int64_t size;          /* bytes of .log */
    int64_t max_timestamp; /* largest batch maxTimestamp, -1 when none */
} log_segment_info_t;

const char *log_dir(const log_t *l);
const log_config_t *log_get_config(const log_t *l);
/* The segment list, oldest first (the last entry is the active segment). *out is malloc'd. */
int log_segments(const log_t *l, log_segment_info_t **out, int *n);
/* The cleaner's first dirty offset (cleaner-offset-checkpoint), -1 when unknown. */
int64_t log_cleaner_checkpoint(const log_t *l);
void log_set_cleaner_checkpoint(log_t *l, int64_t offset);
/* Earliest delete horizon of tombstones kept by the last cleaning (-1 none): the log needs
 * another pass once the clock passes it, dirty or not. */
int64_t log_cleaner_horizon(const log_t *l);
void log_set_cleaner_horizon(log_t *l, int64_t horizon);
/* Replaces the n_old consecutive closed segments `old` (as returned by log_segments; checked
 * against the current list: same bases and sizes, none active) by the compacted segment
 * <old[0].base>.{log,index,timeindex}.cleaned. Crash-safe order: rename .cleaned -> .swap (the
 * .log last: its .swap name is the commit point), delete the old segments, rename .swap -> the
 * final names; log_open completes an interrupted swap. LOG_ERR_INVALID when the list changed
 * (nothing touched; the caller deletes the .cleaned files). */
int log_swap_cleaned(log_t *l, const log_segment_info_t *old, int n_old);

#endif
