/* topics.c - see topics.h. Also holds the embedded single-node metadata store. */
#include "topics.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/compress.h"
#include "common/fsutil.h"
#include "common/logger.h"
#include "common/properties.h"
#include "protocol/record_batch.h"
#include "cluster/replication.h"
#include "storage/checkpoint.h"
#include "storage/cleaner.h"
#include "storage/flusher.h"
#include "txn/producer_state.h"

#define TOPICS_HASH_SIZE 4096
#define META_DIR "runnel-metadata/topics"

struct topics {
    topics_options_t opt;
    topic_t *buckets[TOPICS_HASH_SIZE];
    int ntopics;
    int *dir_partition_count; /* per log dir, to place new partitions */
    char meta_dir[PATH_MAX];
    cleaner_t *cleaner;        /* NULL with log.cleaner.enable=false */
    flusher_t *flusher;        /* flush.messages flushes off the loop; created at first use */
    int flushes_in_flight;     /* jobs handed to the flusher and not yet taken back */
    partition_t *flush_queue, **flush_queue_tail; /* partitions waiting for a flusher slot */
    int64_t next_retention_ms; /* monotonic clock of the next retention check */
    int64_t next_clean_ms;     /* ... and of the next look for a log to clean */
};

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

const char *topics_log_dir(const topics_t *t, int index) { return t->opt.log_dirs[index]; }
int topics_log_dir_count(const topics_t *t) { return t->opt.n_log_dirs; }
int topics_count(const topics_t *t) { return t->ntopics; }

/* ---- topic ids: Kafka prints them as URL-safe base64 without padding ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void topics_uuid_to_string(const kuuid_t *id, char out[23])
{
    int o = 0;
    for (int i = 0; i < 16; i += 3) {
        uint32_t v = (uint32_t)id->b[i] << 16;
        if (i + 1 < 16)
            v |= (uint32_t)id->b[i + 1] << 8;
        if (i + 2 < 16)
            v |= id->b[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (i + 1 < 16)
            out[o++] = b64url[(v >> 6) & 63];
        if (i + 2 < 16)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
}

int topics_uuid_from_string(const char *s, kuuid_t *id)
{
    if (strlen(s) != 22)
        return -1;
    uint8_t bits[22];
    for (int i = 0; i < 22; i++) {
        const char *p = strchr(b64url, s[i]);
        if (p == NULL || s[i] == '\0')
            return -1;
        bits[i] = (uint8_t)(p - b64url);
    }
    int o = 0;
    for (int i = 0; i < 22; i += 4) {
        uint32_t v = (uint32_t)bits[i] << 18 | (uint32_t)bits[i + 1] << 12;
        if (i + 2 < 22)
            v |= (uint32_t)bits[i + 2] << 6;
        if (i + 3 < 22)
            v |= bits[i + 3];
        id->b[o++] = (uint8_t)(v >> 16);
        if (o < 16)
            id->b[o++] = (uint8_t)(v >> 8);
        if (o < 16)
            id->b[o++] = (uint8_t)v;
    }
    return 0;
}

void topics_uuid_random(kuuid_t *id)
{
    do {
        size_t got = 0;
        while (got < sizeof(id->b)) {
            ssize_t r = getrandom(id->b + got, sizeof(id->b) - got, 0);
            if (r > 0)
                got += (size_t)r;
            else if (r == -1 && errno != EINTR)
                abort(); /* no entropy source at all: nothing sensible to do */
        }
        id->b[6] = (id->b[6] & 0x0f) | 0x40; /* version 4 */
        id->b[8] = (id->b[8] & 0x3f) | 0x80;
    } while (topics_uuid_is_zero(id));
}

bool topics_uuid_is_zero(const kuuid_t *id)
{
    for (int i = 0; i < 16; i++)
        if (id->b[i])
            return false;
    return true;
}

/* ---- names ---- */

int topics_validate_name(const char *name, size_t len, char *err, size_t errlen)
{
    if (len == 0) {
        snprintf(err, errlen, "Topic name is illegal, it can't be empty");
        return -1;
    }
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
        snprintf(err, errlen, "Topic name cannot be \".\" or \"..\"");
        return -1;
    }
    if (len > 249) {
        snprintf(err, errlen, "Topic name is illegal, it can't be longer than 249 characters, "
                              "topic name: %.*s...", 40, name);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-')) {
            snprintf(err, errlen, "Topic name \"%.*s\" is illegal, it contains a character other than "
                                  "ASCII alphanumerics, '.', '_' and '-'", (int)len, name);
            return -1;
        }
    }
    return 0;
}

static bool names_collide(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        char x = a[i] == '.' ? '_' : a[i], y = b[i] == '.' ? '_' : b[i];
        if (x != y)
            return false;
    }
    return true;
}

topic_t *topics_find(topics_t *t, const char *name, size_t len)
{
    for (topic_t *tp = t->buckets[name_hash(name, len) % TOPICS_HASH_SIZE]; tp; tp = tp->hnext)
        if (strlen(tp->name) == len && memcmp(tp->name, name, len) == 0)
            return tp;
    return NULL;
}

topic_t *topics_find_colliding(topics_t *t, const char *name, size_t len)
{
    for (int i = 0; i < TOPICS_HASH_SIZE; i++)
        for (topic_t *tp = t->buckets[i]; tp; tp = tp->hnext)
            if (names_collide(tp->name, strlen(tp->name), name, len) &&
                !(strlen(tp->name) == len && memcmp(tp->name, name, len) == 0))
                return tp;
    return NULL;
}

topic_t *topics_find_id(topics_t *t, const kuuid_t *id)
{
    for (int i = 0; i < TOPICS_HASH_SIZE; i++)
        for (topic_t *tp = t->buckets[i]; tp; tp = tp->hnext)
            if (memcmp(tp->id.b, id->b, 16) == 0)
                return tp;
    return NULL;
}

partition_t *topics_partition(topic_t *topic, int32_t index)
{
    if (topic == NULL || index < 0 || index >= topic->npartitions)
        return NULL;
    return topic->partitions[index];
}

void topics_foreach(topics_t *t, void (*cb)(void *arg, topic_t *topic), void *arg)
{
    for (int i = 0; i < TOPICS_HASH_SIZE; i++)
        for (topic_t *tp = t->buckets[i], *next; tp; tp = next) {
            next = tp->hnext;
            cb(arg, tp);
        }
}

/* ---- settings ---- */

static void topic_resolve_settings(topics_t *t, topic_t *tp)
{
    const broker_config_t *b = t->opt.config;
    topic_settings_t *s = &tp->settings;
    s->max_message_bytes = (int32_t)topic_config_get_long(tp->config, b, "max.message.bytes");
    const char *v = topic_config_get(tp->config, b, "message.timestamp.type", NULL);
    s->log_append_time = v && strcmp(v, "LogAppendTime") == 0;
    v = topic_config_get(tp->config, b, "compression.type", NULL);
    s->compression = (v == NULL || strcmp(v, "producer") == 0) ? -1 : compress_codec_from_name(v);
    v = topic_config_get(tp->config, b, "cleanup.policy", NULL);
    s->compact = v && strstr(v, "compact") != NULL;
    s->flush_messages = topic_config_get_long(tp->config, b, "flush.messages");
    s->flush_ms = topic_config_get_long(tp->config, b, "flush.ms");
    s->min_insync_replicas = (int32_t)topic_config_get_long(tp->config, b, "min.insync.replicas");
    s->log.segment_bytes = topic_config_get_long(tp->config, b, "segment.bytes");
    s->log.segment_ms = topic_config_get_long(tp->config, b, "segment.ms");
    s->log.index_interval_bytes = (int32_t)topic_config_get_long(tp->config, b, "index.interval.bytes");
    s->log.cleanup_compact = s->compact;
    s->log.cleanup_delete = v && config_list_contains(v, "delete");
    s->log.retention_ms = topic_config_get_long(tp->config, b, "retention.ms");
    s->log.retention_bytes = topic_config_get_long(tp->config, b, "retention.bytes");
    s->log.delete_retention_ms = topic_config_get_long(tp->config, b, "delete.retention.ms");
    s->log.min_compaction_lag_ms = topic_config_get_long(tp->config, b, "min.compaction.lag.ms");
    s->log.max_compaction_lag_ms = topic_config_get_long(tp->config, b, "max.compaction.lag.ms");
    s->log.min_cleanable_ratio = topic_config_get_double(tp->config, b, "min.cleanable.dirty.ratio");
    for (int32_t i = 0; i < tp->npartitions; i++)
        if (tp->partitions[i] && tp->partitions[i]->log)
            log_set_config(tp->partitions[i]->log, &s->log);
}

void topics_refresh_settings(topics_t *t)
{
    for (int i = 0; i < TOPICS_HASH_SIZE; i++)
        for (topic_t *tp = t->buckets[i]; tp; tp = tp->hnext)
            topic_resolve_settings(t, tp);
}

/* ---- the embedded metadata store: one properties file per topic ---- */

static void write_override(void *arg, const char *key, const char *value)
{
    char k[512];
    snprintf(k, sizeof(k), "config.%s", key);
    properties_write_entry(arg, k, value);
}

static int store_save_topic(topics_t *t, const topic_t *tp)
{
    buf_t b;
    buf_init(&b);
    char id[23], n[32], path[PATH_MAX];
    topics_uuid_to_string(&tp->id, id);
    snprintf(n, sizeof(n), "%d", tp->npartitions);
    properties_write_entry(&b, "topic.id", id);
    properties_write_entry(&b, "partitions", n);
    topic_config_foreach_override(tp->config, write_override, &b);
    snprintf(path, sizeof(path), "%s/%s", t->meta_dir, tp->name);
    int rc = b.oom ? -1 : fs_write_atomic(path, b.data, b.len);
    if (rc != 0)
        LOG_ERROR("metadata", "cannot save topic %s to %s: %s", tp->name, path, strerror(errno));
    buf_free(&b);
    return rc;
}

static int store_delete_topic(topics_t *t, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", t->meta_dir, name);
    if (unlink(path) == -1 && errno != ENOENT)
        return -1;
    return fs_sync_dir(t->meta_dir);
}

/* ---- partitions ---- */

typedef struct offsets_map {
    checkpoint_entry_t *recovery, *start, *cleaner;
    size_t nrecovery, nstart, ncleaner;
} offsets_map_t;

static int entry_cmp(const void *a, const void *b)
{
    const checkpoint_entry_t *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* Entries are sorted once when read (read_checkpoint): start-up looks up every partition. */
static int64_t offsets_lookup(const checkpoint_entry_t *e, size_t n, const char *topic, int32_t p)
{
    checkpoint_entry_t key;
    snprintf(key.topic, sizeof(key.topic), "%s", topic);
    key.partition = p;
    const checkpoint_entry_t *hit = n ? bsearch(&key, e, n, sizeof(*e), entry_cmp) : NULL;
    return hit ? hit->offset : -1;
}

static int pick_log_dir(topics_t *t)
{
    int best = 0;
    for (int i = 1; i < t->opt.n_log_dirs; i++)
        if (t->dir_partition_count[i] < t->dir_partition_count[best])
            best = i;
    return best;
}

/* Kafka's per-partition files: partition.metadata (the topic id, so a
 * directory can be matched to its topic) and leader-epoch-checkpoint (a single
 * node leads every partition at epoch 0 from the start of its log). */
/* Both files can be rebuilt, so they are written without fsyncs: creating
 * 10,000 partitions must not cost tens of thousands of disk flushes. */
static void partition_write_metadata_files(topic_t *tp, partition_t *p)
{
    char path[PATH_MAX], text[128], id[23];
    struct stat st;
    snprintf(path, sizeof(path), "%s/partition.metadata", p->dir);
    if (stat(path, &st) == -1) {
        topics_uuid_to_string(&tp->id, id);
        int n = snprintf(text, sizeof(text), "version: 0\ntopic_id: %s\n", id);
        if (fs_write_replace(path, text, (size_t)n) != 0)
            LOG_WARN("storage", "cannot write %s: %s", path, strerror(errno));
    }
    snprintf(path, sizeof(path), "%s/leader-epoch-checkpoint", p->dir);
    if (stat(path, &st) == -1) {
        int n = snprintf(text, sizeof(text), "0\n1\n%d %lld\n", p->leader_epoch,
                         (long long)log_start_offset(p->log));
        if (fs_write_replace(path, text, (size_t)n) != 0)
            LOG_WARN("storage", "cannot write %s: %s", path, strerror(errno));
    }
}

static partition_t *partition_open(topics_t *t, topic_t *tp, int32_t index, offsets_map_t *offs,
                                   char *err, size_t errlen)
{
    partition_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->topic = tp;
    p->index = index;
    p->waiters.next = p->waiters.prev = &p->waiters;
    p->hw_waiters.next = p->hw_waiters.prev = &p->hw_waiters;
    char path[PATH_MAX];
    p->log_dir_index = -1;
    for (int i = 0; i < t->opt.n_log_dirs; i++) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s-%d", t->opt.log_dirs[i], tp->name, index);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            p->log_dir_index = i;
            break;
        }
    }
    bool is_new = p->log_dir_index < 0;
    if (is_new) {
        p->log_dir_index = pick_log_dir(t);
        snprintf(path, sizeof(path), "%s/%s-%d", t->opt.log_dirs[p->log_dir_index], tp->name, index);
    }
    p->dir = strdup(path);
    int64_t recovery = 0, start = -1, cleaner_cp = -1;
    if (offs) {
        int64_t r = offsets_lookup(offs[p->log_dir_index].recovery, offs[p->log_dir_index].nrecovery,
                                   tp->name, index);
        recovery = r < 0 ? 0 : r;
        start = offsets_lookup(offs[p->log_dir_index].start, offs[p->log_dir_index].nstart, tp->name, index);
        cleaner_cp = offsets_lookup(offs[p->log_dir_index].cleaner, offs[p->log_dir_index].ncleaner,
                                    tp->name, index);
    }
    if (p->dir == NULL || log_open(p->dir, &tp->settings.log, recovery, start, &p->log) != 0) {
        snprintf(err, errlen, "cannot open log %s: %s", path, strerror(errno));
        if (is_new)
            fs_remove_tree(path); /* a failed creation leaves nothing behind */
        free(p->dir);
        free(p);
        return NULL;
    }
    log_set_cleaner_checkpoint(p->log, cleaner_cp);
    t->dir_partition_count[p->log_dir_index]++;
    partition_write_metadata_files(tp, p);
    p->flushed_offset = p->flush_wanted = log_end_offset(p->log);
    return p;
}

static void detach_list(partition_waiter_t *head)
{
    while (head->next != head) {
        partition_waiter_t *w = head->next;
        partition_remove_waiter(w);
        w->wake(w);
    }
}

static void partition_detach_waiters(partition_t *p)
{
    detach_list(&p->waiters);
    detach_list(&p->hw_waiters);
}

static void flush_queue_remove(topics_t *t, partition_t *p);

static void partition_free(topics_t *t, partition_t *p, bool remove_data)
{
    if (p == NULL)
        return;
    partition_detach_waiters(p);
    if (p->log && t->cleaner)
        cleaner_forget(t->cleaner, p->log);
    if (p->log) {
        if (remove_data)
            log_remove(p->log);
        else
            log_close(p->log);
    }
    t->dir_partition_count[p->log_dir_index]--;
    if (p->flush_job)
        p->flush_job->owner = NULL; /* comes back from the flusher to nobody */
    flush_queue_remove(t, p);
    repl_partition_free(p);
    pstate_free(p->pstate);
    free(p->dir);
    free(p);
}

static void add_waiter(partition_waiter_t *head, partition_waiter_t *w)
{
    w->next = head;
    w->prev = head->prev;
    head->prev->next = w;
    head->prev = w;
}

void partition_add_waiter(partition_t *p, partition_waiter_t *w) { add_waiter(&p->waiters, w); }

void partition_add_hw_waiter(partition_t *p, partition_waiter_t *w) { add_waiter(&p->hw_waiters, w); }

void partition_wake_all(partition_waiter_t *head)
{
    /* Waiters unlink themselves or get re-added by their owner. */
    partition_waiter_t *w = head->next;
    while (w != head) {
        partition_waiter_t *next = w->next;
        w->wake(w);
        w = next;
    }
}

void partition_remove_waiter(partition_waiter_t *w)
{
    if (w->next == NULL)
        return;
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->next = w->prev = NULL;
}

/* flush.messages reached: the flush runs on the flusher thread; appends meanwhile are covered by
 * the next flush (group commit). Without a flusher (or too many segments to sync) it runs here. */
/* Flush jobs handed to the flusher at once. Each holds duplicated descriptors until it has run,
 * so thousands of partitions flushing together (durable mode, or every partition at shutdown)
 * ran out of descriptors; the rest wait in the flush queue, in order. */
#define FLUSH_MAX_IN_FLIGHT 64

static void start_flush(topics_t *t, partition_t *p)
{
    if (t->flusher && t->flushes_in_flight >= FLUSH_MAX_IN_FLIGHT) {
        p->flush_queued = true;
        p->flush_next = NULL;
        if (t->flush_queue == NULL)
            t->flush_queue_tail = &t->flush_queue;
        *t->flush_queue_tail = p;
        t->flush_queue_tail = &p->flush_next;
        return;
    }
    flush_job_t *job = t->flusher ? calloc(1, sizeof(*job)) : NULL;
    if (job && log_flush_begin(p->log, &job->log_job) == LOG_OK) {
        if (job->log_job.nfds == 0 && job->log_job.dir_fd < 0) {
            /* nothing written since the last flush (flush.ms may have come first) */
            if (job->log_job.end > p->flushed_offset)
                p->flushed_offset = job->log_job.end;
            free(job);
            return;
        }
        job->owner = p;
        p->flush_job = job;
        flusher_submit(t->flusher, job);
        t->flushes_in_flight++;
        return;
    }
    free(job);
    if (log_flush(p->log) != LOG_OK)
        p->flush_failed = true;
    p->flushed_offset = log_end_offset(p->log);
}

static void request_flush(topics_t *t, partition_t *p)
{
    p->flush_wanted = log_end_offset(p->log);
    if (p->flush_job)
        p->flush_again = true;
    else if (!p->flush_queued) /* a queued one covers the log end as of its start */
        start_flush(t, p);
}

static void flush_queue_remove(topics_t *t, partition_t *p)
{
    if (!p->flush_queued)
        return;
    partition_t **pp = &t->flush_queue;
    while (*pp != p)
        pp = &(*pp)->flush_next;
    *pp = p->flush_next;
    if (t->flush_queue_tail == &p->flush_next)
        t->flush_queue_tail = pp;
    p->flush_queued = false;
}

/* Starts queued flushes while slots are free. */
static void flush_queue_run(topics_t *t)
{
    while (t->flush_queue && t->flushes_in_flight < FLUSH_MAX_IN_FLIGHT) {
        partition_t *p = t->flush_queue;
        t->flush_queue = p->flush_next;
        p->flush_queued = false;
        start_flush(t, p);
        if (p->flush_job == NULL) /* ran here, or had nothing to do: its produces may go on */
            partition_wake_all(&p->hw_waiters);
    }
}

int topics_flusher_fd(const topics_t *t) { return t->flusher ? flusher_event_fd(t->flusher) : -1; }

void topics_flusher_poll(topics_t *t)
{
    if (t->flusher == NULL)
        return;
    for (flush_job_t *job = flusher_take_done(t->flusher), *next; job; job = next) {
        next = job->next;
        t->flushes_in_flight--;
        partition_t *p = job->owner;
        if (p) {
            p->flush_job = NULL;
            if (job->rc == LOG_OK) {
                log_flush_end(p->log, &job->log_job);
                if (job->log_job.end > p->flushed_offset)
                    p->flushed_offset = job->log_job.end;
            } else {
                LOG_ERROR("storage", "%s: flush failed", p->dir);
                p->flush_failed = true;
            }
            if (p->flush_again) {
                p->flush_again = false;
                start_flush(t, p);
            }
            partition_wake_all(&p->hw_waiters);
        }
        free(job);
    }
    flush_queue_run(t);
}

int partition_append(topics_t *t, partition_t *p, uint8_t *batches, size_t len, int64_t now_ms,
                     int64_t *first_offset, int64_t *next_offset)
{
    int rc = log_append(p->log, batches, len, p->leader_epoch, now_ms, first_offset, next_offset);
    if (rc != 0)
        return rc;
    p->unflushed_messages += *next_offset - *first_offset;
    if (p->unflushed_messages >= p->topic->settings.flush_messages) {
        request_flush(t, p);
        p->unflushed_messages = 0;
        p->last_flush_ms = now_ms;
    }
    partition_wake_all(&p->waiters);
    if (p->repl)
        repl_leader_appended(p);
    return 0;
}

/* ---- topics ---- */

static void topic_free(topics_t *t, topic_t *tp, bool remove_data)
{
    for (int32_t i = 0; i < tp->npartitions; i++)
        partition_free(t, tp->partitions[i], remove_data);
    free(tp->partitions);
    topic_config_free(tp->config);
    free(tp->name);
    free(tp);
}

static void topics_insert(topics_t *t, topic_t *tp)
{
    uint32_t h = name_hash(tp->name, strlen(tp->name)) % TOPICS_HASH_SIZE;
    tp->hnext = t->buckets[h];
    t->buckets[h] = tp;
    t->ntopics++;
}

static void topics_unlink(topics_t *t, topic_t *tp)
{
    topic_t **pp = &t->buckets[name_hash(tp->name, strlen(tp->name)) % TOPICS_HASH_SIZE];
    while (*pp && *pp != tp)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = tp->hnext;
        t->ntopics--;
    }
}

static topic_t *topic_new(const char *name, size_t len, int32_t npartitions, topic_config_t *cfg)
{
    topic_t *tp = calloc(1, sizeof(*tp));
    if (tp == NULL)
        return NULL;
    tp->name = strndup(name, len);
    tp->partitions = calloc((size_t)(npartitions > 0 ? npartitions : 1), sizeof(partition_t *));
    if (tp->name == NULL || tp->partitions == NULL) {
        free(tp->name);
        free(tp->partitions);
        free(tp);
        return NULL;
    }
    tp->npartitions = npartitions;
    tp->config = cfg;
    tp->internal = name[0] == '_' && (strcmp(tp->name, "__consumer_offsets") == 0 ||
                                      strcmp(tp->name, "__transaction_state") == 0);
    return tp;
}

static int topic_open_partitions(topics_t *t, topic_t *tp, int32_t from, offsets_map_t *offs, char *err,
                                 size_t errlen)
{
    for (int32_t i = from; i < tp->npartitions; i++) {
        tp->partitions[i] = partition_open(t, tp, i, offs, err, errlen);
        if (tp->partitions[i] == NULL)
            return -1;
    }
    return 0;
}

int topics_create(topics_t *t, const char *name, int32_t npartitions, topic_config_t *overrides,
                  topic_t **out, char *err, size_t errlen)
{
    return topics_create_id(t, name, NULL, npartitions, overrides, out, err, errlen);
}

int topics_create_id(topics_t *t, const char *name, const kuuid_t *id, int32_t npartitions,
                     topic_config_t *overrides, topic_t **out, char *err, size_t errlen)
{
    topic_t *tp = topic_new(name, strlen(name), npartitions, overrides);
    if (tp == NULL) {
        topic_config_free(overrides);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (id)
        tp->id = *id;
    else
        topics_uuid_random(&tp->id);
    topic_resolve_settings(t, tp);
    if (store_save_topic(t, tp) != 0) {
        snprintf(err, errlen, "cannot persist topic metadata");
        topic_free(t, tp, false);
        return -1;
    }
    if (topic_open_partitions(t, tp, 0, NULL, err, errlen) != 0) {
        store_delete_topic(t, tp->name);
        topic_free(t, tp, true);
        return -1;
    }
    topic_resolve_settings(t, tp);
    topics_insert(t, tp);
    if (strchr(tp->name, '.') && strchr(tp->name, '_'))
        LOG_WARN("metadata", "topic %s: due to limitations in metric names, topics with a period ('.') "
                 "or underscore ('_') could collide; best to use either, not both", tp->name);
    LOG_INFO("metadata", "created topic %s with %d partition(s)", tp->name, npartitions);
    if (out)
        *out = tp;
    return 0;
}

int topics_ensure_internal(topics_t *t, const char *name, int32_t npartitions, int64_t segment_bytes,
                           char *err, size_t errlen)
{
    if (topics_find(t, name, strlen(name)))
        return 0;
    char seg[32];
    snprintf(seg, sizeof(seg), "%lld", (long long)segment_bytes);
    topic_config_t *tc = topic_config_new();
    if (tc == NULL || topic_config_set(tc, "cleanup.policy", "compact", err, errlen) != 0 ||
        topic_config_set(tc, "segment.bytes", seg, err, errlen) != 0 ||
        topic_config_set(tc, "compression.type", "producer", err, errlen) != 0) {
        if (tc == NULL)
            snprintf(err, errlen, "out of memory");
        topic_config_free(tc);
        return -1;
    }
    if (topics_create(t, name, npartitions > 0 ? npartitions : 1, tc, NULL, err, errlen) != 0)
        return -1;
    return 1;
}

int topics_delete(topics_t *t, topic_t *tp)
{
    topics_unlink(t, tp);
    store_delete_topic(t, tp->name);
    LOG_INFO("metadata", "deleted topic %s", tp->name);
    topic_free(t, tp, true);
    return 0;
}

int topics_add_partitions(topics_t *t, topic_t *tp, int32_t new_count, char *err, size_t errlen)
{
    partition_t **np = realloc(tp->partitions, (size_t)new_count * sizeof(*np));
    if (np == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    tp->partitions = np;
    int32_t old = tp->npartitions;
    for (int32_t i = old; i < new_count; i++)
        np[i] = NULL;
    tp->npartitions = new_count;
    if (topic_open_partitions(t, tp, old, NULL, err, errlen) != 0 || store_save_topic(t, tp) != 0) {
        for (int32_t i = old; i < new_count; i++)
            partition_free(t, np[i], true);
        tp->npartitions = old;
        if (!*err)
            snprintf(err, errlen, "cannot persist topic metadata");
        return -1;
    }
    LOG_INFO("metadata", "topic %s now has %d partitions (was %d)", tp->name, new_count, old);
    return 0;
}

int topics_set_config(topics_t *t, topic_t *tp, topic_config_t *overrides, char *err, size_t errlen)
{
    topic_config_t *old = tp->config;
    tp->config = overrides;
    if (store_save_topic(t, tp) != 0) {
        tp->config = old;
        topic_config_free(overrides);
        snprintf(err, errlen, "cannot persist topic config");
        return -1;
    }
    topic_config_free(old);
    topic_resolve_settings(t, tp);
    return 0;
}

/* ---- loading ---- */

typedef struct load_ctx {
    topics_t *t;
    topic_t *tp;
    int32_t partitions;
    char id[64];
    int bad;
} load_ctx_t;

static void load_entry(void *arg, const char *key, const char *value, int line)
{
    load_ctx_t *lc = arg;
    char err[256];
    if (strcmp(key, "topic.id") == 0)
        snprintf(lc->id, sizeof(lc->id), "%s", value);
    else if (strcmp(key, "partitions") == 0)
        lc->partitions = (int32_t)strtol(value, NULL, 10);
    else if (strncmp(key, "config.", 7) == 0) {
        if (topic_config_set(lc->tp->config, key + 7, value, err, sizeof(err)) != 0)
            LOG_WARN("metadata", "topic %s: ignoring stored config %s (line %d): %s", lc->tp->name,
                     key + 7, line, err);
    }
}

static void read_checkpoint(const char *dir, const char *name, checkpoint_entry_t **e, size_t *n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    *e = NULL;
    *n = 0;
    if (checkpoint_read(path, e, n) != 0) {
        LOG_WARN("storage", "ignoring malformed checkpoint %s", path);
        *e = NULL;
        *n = 0;
    }
    if (*n > 1)
        qsort(*e, *n, sizeof(**e), entry_cmp);
}

/* Removes directories of deleted topics left by an interrupted deletion. */
static void remove_stale_dirs(const char *log_dir)
{
    DIR *d = opendir(log_dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > 7 && strcmp(de->d_name + n - 7, "-delete") == 0) {
            char path[PATH_MAX];
            snprintf(path, sizeof(path), "%s/%s", log_dir, de->d_name);
            fs_remove_tree(path);
        }
    }
    closedir(d);
}

topics_t *topics_open(const topics_options_t *opt, char *err, size_t errlen)
{
    topics_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->opt = *opt;
    t->dir_partition_count = calloc((size_t)opt->n_log_dirs, sizeof(int));
    snprintf(t->meta_dir, sizeof(t->meta_dir), "%s/%s", opt->log_dirs[0], META_DIR);
    if (fs_mkdirs(t->meta_dir) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", t->meta_dir, strerror(errno));
        topics_close(t, false);
        return NULL;
    }
    offsets_map_t *offs = calloc((size_t)opt->n_log_dirs, sizeof(*offs));
    for (int i = 0; i < opt->n_log_dirs; i++) {
        if (fs_mkdirs(opt->log_dirs[i]) != 0) {
            snprintf(err, errlen, "cannot create log dir %s: %s", opt->log_dirs[i], strerror(errno));
            free(offs);
            topics_close(t, false);
            return NULL;
        }
        remove_stale_dirs(opt->log_dirs[i]);
        read_checkpoint(opt->log_dirs[i], "recovery-point-offset-checkpoint", &offs[i].recovery,
                        &offs[i].nrecovery);
        read_checkpoint(opt->log_dirs[i], "log-start-offset-checkpoint", &offs[i].start, &offs[i].nstart);
        read_checkpoint(opt->log_dirs[i], "cleaner-offset-checkpoint", &offs[i].cleaner, &offs[i].ncleaner);
    }
    int rc = 0;
    DIR *d = opendir(t->meta_dir);
    struct dirent *de;
    while (d && rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp"))
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", t->meta_dir, de->d_name);
        load_ctx_t lc = {.t = t};
        lc.tp = topic_new(de->d_name, strlen(de->d_name), 0, topic_config_new());
        if (lc.tp == NULL || lc.tp->config == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        char perr[256];
        if (properties_load_file(path, load_entry, &lc, perr, sizeof(perr)) != 0 || lc.partitions <= 0 ||
            topics_uuid_from_string(lc.id, &lc.tp->id) != 0) {
            LOG_ERROR("metadata", "skipping unreadable topic definition %s", path);
            topic_free(t, lc.tp, false);
            continue;
        }
        partition_t **parts = calloc((size_t)lc.partitions, sizeof(*parts));
        free(lc.tp->partitions);
        lc.tp->partitions = parts;
        lc.tp->npartitions = lc.partitions;
        topic_resolve_settings(t, lc.tp);
        if (parts == NULL || topic_open_partitions(t, lc.tp, 0, offs, err, errlen) != 0) {
            topic_free(t, lc.tp, false);
            rc = -1;
            break;
        }
        topics_insert(t, lc.tp);
    }
    if (d)
        closedir(d);
    for (int i = 0; i < opt->n_log_dirs; i++) {
        free(offs[i].recovery);
        free(offs[i].start);
        free(offs[i].cleaner);
    }
    free(offs);
    if (rc != 0) {
        topics_close(t, false);
        return NULL;
    }
    if (broker_config_get_bool(opt->config, "log.cleaner.enable")) {
        cleaner_options_t co = {
            .dedupe_buffer_bytes = broker_config_get_long(opt->config, "log.cleaner.dedupe.buffer.size"),
            .load_factor = broker_config_get_double(opt->config, "log.cleaner.io.buffer.load.factor"),
        };
        t->cleaner = cleaner_create(&co);
        if (t->cleaner == NULL)
            LOG_ERROR("cleaner", "cannot start the log cleaner: %s", strerror(errno));
    }
    t->flusher = flusher_new();
    if (t->flusher == NULL)
        LOG_WARN("storage", "no flusher thread (%s): flush.messages flushes run on the event loop",
                 strerror(errno));
    return t;
}

/* ---- checkpoints and flushing ---- */

typedef struct ckpt_ctx {
    topics_t *t;
    int dir;
    checkpoint_entry_t *rec, *start;
    size_t n, cap;
    checkpoint_entry_t *cl; /* cleaner-offset-checkpoint: compacted logs only */
    size_t ncl, capcl;
} ckpt_ctx_t;

static void ckpt_collect(void *arg, topic_t *tp)
{
    ckpt_ctx_t *c = arg;
    for (int32_t i = 0; i < tp->npartitions; i++) {
        partition_t *p = tp->partitions[i];
        if (p == NULL || p->log_dir_index != c->dir)
            continue;
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 64;
            checkpoint_entry_t *r = realloc(c->rec, cap * sizeof(*r));
            if (r)
                c->rec = r;
            checkpoint_entry_t *s = realloc(c->start, cap * sizeof(*s));
            if (s)
                c->start = s;
            if (r == NULL || s == NULL)
                return;
            c->cap = cap;
        }
        snprintf(c->rec[c->n].topic, sizeof(c->rec[c->n].topic), "%s", tp->name);
        c->rec[c->n].partition = i;
        c->rec[c->n].offset = log_recovery_point(p->log);
        c->start[c->n] = c->rec[c->n];
        c->start[c->n].offset = log_start_offset(p->log);
        if (log_cleaner_checkpoint(p->log) >= 0 && log_get_config(p->log)->cleanup_compact) {
            if (c->ncl == c->capcl) {
                size_t cap = c->capcl ? c->capcl * 2 : 16;
                checkpoint_entry_t *e = realloc(c->cl, cap * sizeof(*e));
                if (e) {
                    c->cl = e;
                    c->capcl = cap;
                }
            }
            if (c->ncl < c->capcl) {
                c->cl[c->ncl] = c->rec[c->n];
                c->cl[c->ncl++].offset = log_cleaner_checkpoint(p->log);
            }
        }
        c->n++;
    }
}

void topics_write_checkpoints(topics_t *t)
{
    for (int i = 0; i < t->opt.n_log_dirs; i++) {
        ckpt_ctx_t c = {.t = t, .dir = i};
        topics_foreach(t, ckpt_collect, &c);
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/recovery-point-offset-checkpoint", t->opt.log_dirs[i]);
        if (checkpoint_write(path, c.rec, c.n) != 0)
            LOG_ERROR("storage", "cannot write %s: %s", path, strerror(errno));
        snprintf(path, sizeof(path), "%s/log-start-offset-checkpoint", t->opt.log_dirs[i]);
        if (checkpoint_write(path, c.start, c.n) != 0)
            LOG_ERROR("storage", "cannot write %s: %s", path, strerror(errno));
        /* High watermarks: on a single node the log end. The array is reused. */
        for (size_t k = 0; k < c.n; k++) {
            topic_t *tp = topics_find(t, c.start[k].topic, strlen(c.start[k].topic));
            partition_t *p = topics_partition(tp, c.start[k].partition);
            c.start[k].offset = p ? log_end_offset(p->log) : 0;
        }
        snprintf(path, sizeof(path), "%s/replication-offset-checkpoint", t->opt.log_dirs[i]);
        if (checkpoint_write(path, c.start, c.n) != 0)
            LOG_ERROR("storage", "cannot write %s: %s", path, strerror(errno));
        snprintf(path, sizeof(path), "%s/cleaner-offset-checkpoint", t->opt.log_dirs[i]);
        if (checkpoint_write(path, c.cl, c.ncl) != 0)
            LOG_ERROR("storage", "cannot write %s: %s", path, strerror(errno));
        free(c.cl);
        free(c.rec);
        free(c.start);
    }
}

typedef struct flush_ctx {
    int64_t now;
    bool all;
} flush_ctx_t;

static void flush_topic(void *arg, topic_t *tp)
{
    flush_ctx_t *f = arg;
    for (int32_t i = 0; i < tp->npartitions; i++) {
        partition_t *p = tp->partitions[i];
        if (p == NULL)
            continue;
        if (f->all || (p->unflushed_messages > 0 && f->now - p->last_flush_ms >= tp->settings.flush_ms)) {
            log_flush(p->log);
            p->unflushed_messages = 0;
            p->last_flush_ms = f->now;
        }
    }
}

void topics_flush_due(topics_t *t, int64_t now_ms)
{
    flush_ctx_t f = {.now = now_ms, .all = false};
    topics_foreach(t, flush_topic, &f);
}

static void request_flush_topic(void *arg, topic_t *tp)
{
    topics_t *t = arg;
    for (int32_t i = 0; i < tp->npartitions; i++)
        if (tp->partitions[i] && tp->partitions[i]->log)
            request_flush(t, tp->partitions[i]);
}

/* Flushes every log before a clean exit. With the flusher the partitions sync several at once
 * (one after the other, 10,000 partitions holding data took seconds), at most
 * FLUSH_MAX_IN_FLIGHT queued at a time like any flush. */
static void flush_all(topics_t *t)
{
    if (t->flusher == NULL) {
        flush_ctx_t f = {.now = 0, .all = true};
        topics_foreach(t, flush_topic, &f);
        return;
    }
    topics_foreach(t, request_flush_topic, t);
    while (t->flushes_in_flight > 0 || t->flush_queue) {
        struct pollfd pfd = {.fd = flusher_event_fd(t->flusher), .events = POLLIN};
        (void)poll(&pfd, 1, 1000);
        topics_flusher_poll(t);
    }
}

void topics_close(topics_t *t, bool clean)
{
    if (t == NULL)
        return;
    if (clean) {
        flush_all(t);
        topics_write_checkpoints(t);
    }
    cleaner_destroy(t->cleaner); /* cancels a running job before the logs go */
    t->cleaner = NULL;
    flusher_free(t->flusher); /* syncs what is queued; the clean path flushed everything anyway */
    t->flusher = NULL;
    for (int i = 0; i < TOPICS_HASH_SIZE; i++)
        while (t->buckets[i]) {
            topic_t *tp = t->buckets[i];
            t->buckets[i] = tp->hnext;
            topic_free(t, tp, false);
        }
    free(t->dir_partition_count);
    free(t);
}

/* ---- retention and the log cleaner ---- */

typedef struct tick_ctx {
    topics_t *t;
    int64_t wall;
    bool retention, clean;
    log_t *best;
    double best_prio;
} tick_ctx_t;

static void tick_topic(void *arg, topic_t *tp)
{
    tick_ctx_t *c = arg;
    for (int32_t i = 0; i < tp->npartitions; i++) {
        partition_t *p = tp->partitions[i];
        if (p == NULL || p->log == NULL)
            continue;
        if (c->retention && log_apply_retention(p->log, c->wall) < 0)
            LOG_ERROR("storage", "%s-%d: retention failed", tp->name, i);
        if (c->clean && tp->settings.compact) {
            double prio = cleaner_priority(p->log, c->wall);
            if (prio >= 0 && (c->best == NULL || prio > c->best_prio)) {
                c->best = p->log;
                c->best_prio = prio;
            }
        }
    }
}

/* Retention over every log and/or, when the cleaner is idle, a job for the log needing it most. */
static void topics_scan(topics_t *t, int64_t wall, bool retention, bool clean)
{
    tick_ctx_t c = {.t = t, .wall = wall, .retention = retention,
                    .clean = clean && t->cleaner && !cleaner_busy(t->cleaner)};
    if (!c.retention && !c.clean)
        return;
    topics_foreach(t, tick_topic, &c);
    if (c.best && cleaner_start(t->cleaner, c.best, wall) != LOG_OK)
        LOG_WARN("cleaner", "%s: could not start cleaning", log_dir(c.best));
}

int64_t topics_log_tick(topics_t *t, int64_t now_ms, int64_t wall_ms)
{
    const broker_config_t *b = t->opt.config;
    bool retention = now_ms >= t->next_retention_ms;
    bool clean = t->cleaner && now_ms >= t->next_clean_ms;
    if (retention) {
        int64_t every = broker_config_get_long(b, "log.retention.check.interval.ms");
        t->next_retention_ms = now_ms + (every > 0 ? every : 300000);
    }
    if (clean) {
        int64_t backoff = broker_config_get_long(b, "log.cleaner.backoff.ms");
        t->next_clean_ms = now_ms + (backoff > 0 ? backoff : 15000);
    }
    topics_scan(t, wall_ms, retention, clean);
    int64_t next = t->next_retention_ms;
    if (t->cleaner && t->next_clean_ms < next)
        next = t->next_clean_ms;
    return next > now_ms ? next - now_ms : 1;
}

int topics_cleaner_fd(const topics_t *t)
{
    return t->cleaner ? cleaner_event_fd(t->cleaner) : -1;
}

void topics_cleaner_poll(topics_t *t, int64_t wall_ms)
{
    if (t->cleaner == NULL)
        return;
    cleaner_poll(t->cleaner);
    /* Another pass, or the next log: look at once rather than after the backoff. */
    topics_scan(t, wall_ms, false, true);
}
