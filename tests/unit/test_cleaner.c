/* Unit tests for the log cleaner (compaction) on hand-built logs: latest value per key, offsets
 * preserved, tombstones and their delete horizon, compressed batches, control and transactional
 * batches, several passes with a tiny key map, the lag and ratio rules, cancellation, and the
 * crash-safe swap. Everything runs in a fresh mkdtemp directory removed at the end. */
#define _XOPEN_SOURCE 700
#include "common/buf.h"
#include "common/compress.h"
#include "common/logger.h"
#include "protocol/record_batch.h"
#include "storage/cleaner.h"
#include "storage/log.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

#define MAXREC 16384
#define NOW 1700000000000LL

/* What was appended, by offset: the model the cleaned log is compared with. */
typedef struct mrec {
    int key;   /* -1: no key */
    int value; /* -1: tombstone */
    int64_t ts;
    bool present;
} mrec_t;

static mrec_t model[MAXREC];
static int64_t model_end;

static void model_reset(void)
{
    memset(model, 0, sizeof(model));
    model_end = 0;
}

static void keystr(char *out, int k) { snprintf(out, 16, "key-%d", k); }
static void valstr(char *out, int v) { snprintf(out, 32, "value-%d-%s", v, "xxxxxxxx"); }

/* Appends one batch of n records (keys[i], vals[i]; val -1 = tombstone, key -1 = no key) with
 * timestamps ts, ts+1, ... in `codec`; attributes bits in `extra` (transactional). */
static int64_t add_batch_ex(log_t *l, int codec, int n, const int *keys, const int *vals, int64_t ts,
                            bool transactional, bool control)
{
    buf_t out;
    buf_init(&out);
    rb_builder_t b;
    rb_builder_init(&b, &out, codec, 0, ts);
    if (transactional || control)
        rb_builder_set_producer(&b, 77, 1, 0, true);
    if (control)
        rb_builder_set_control(&b);
    for (int i = 0; i < n; i++) {
        char k[16], v[32];
        keystr(k, keys[i]);
        valstr(v, vals[i]);
        int kl = keys[i] < 0 ? -1 : (int)strlen(k), vl = vals[i] < 0 ? -1 : (int)strlen(v);
        CHECK_EQ_INT(rb_builder_add(&b, ts + i, -1, (const uint8_t *)k, kl, (const uint8_t *)v, vl, 0,
                                    NULL, NULL, NULL, NULL), 0);
    }
    CHECK_EQ_INT(rb_builder_finish(&b), 0);
    int64_t first = -1, next = -1;
    CHECK_EQ_INT(log_append(l, out.data, out.len, 5, NOW, &first, &next), LOG_OK);
    buf_free(&out);
    for (int i = 0; i < n && first + i < MAXREC; i++) {
        model[first + i].key = control ? -2 : keys[i];
        model[first + i].value = vals[i];
        model[first + i].ts = ts + i;
        model[first + i].present = true;
    }
    model_end = next;
    return first;
}

static int64_t add_batch(log_t *l, int codec, int n, const int *keys, const int *vals, int64_t ts)
{
    return add_batch_ex(l, codec, n, keys, vals, ts, false, false);
}

typedef struct seen {
    int64_t offset;
    int key, value;
    int64_t ts;
    int codec;
    bool control, transactional, horizon;
} seen_t;

static int parse_int_after(const uint8_t *p, int32_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (len < (int32_t)pl || memcmp(p, prefix, pl) != 0)
        return -3;
    return atoi((const char *)p + pl);
}

/* Reads every record of the log from its start; returns the count (records in *out). */
static int read_all(log_t *l, seen_t *out, int max, int *batches)
{
    int n = 0;
    *batches = 0;
    int64_t off = log_start_offset(l);
    buf_t scratch, data;
    buf_init(&scratch);
    buf_init(&data);
    while (off < log_end_offset(l)) {
        log_read_t rd;
        if (log_read(l, off, 1 << 24, true, &rd) != LOG_OK || rd.len == 0)
            break;
        data.len = 0;
        uint8_t *p = buf_extend(&data, (size_t)rd.len);
        CHECK_EQ_INT(pread(rd.fd, p, (size_t)rd.len, rd.position), rd.len);
        size_t pos = 0;
        while (pos < (size_t)rd.len) {
            const uint8_t *h = data.data + pos;
            size_t bl = (size_t)rb_total_size(h);
            CHECK(rb_crc_ok(h));
            (*batches)++;
            const uint8_t *recs;
            size_t rl;
            CHECK_EQ_INT(rb_records_plain(h, bl, &scratch, 1 << 26, &recs, &rl), 0);
            rb_iter_t it;
            rb_record_t rec;
            rb_iter_init(&it, recs, rl, rb_records_count(h));
            while (rb_iter_next(&it, &rec) == 1 && n < max) {
                seen_t *s = &out[n++];
                s->offset = rb_base_offset(h) + rec.offset_delta;
                s->key = rec.key_len < 0 ? -1 : parse_int_after(rec.key, rec.key_len, "key-");
                s->value = rec.value_len < 0 ? -1 : parse_int_after(rec.value, rec.value_len, "value-");
                s->ts = rb_base_timestamp(h) + rec.timestamp_delta;
                s->codec = rb_codec(h);
                s->control = (rb_attributes(h) & RB_ATTR_CONTROL) != 0;
                s->transactional = (rb_attributes(h) & RB_ATTR_TRANSACTIONAL) != 0;
                s->horizon = (rb_attributes(h) & RB_ATTR_DELETE_HORIZON) != 0;
            }
            off = rb_last_offset(h) + 1;
            pos += bl;
        }
    }
    buf_free(&scratch);
    buf_free(&data);
    return n;
}

/* Every record read must be the one appended at its offset; applying them in order must give
 * the model's latest value per key (tombstone = absent); below `clean_end` no key twice. */
static void check_against_model(log_t *l, int nkeys, int64_t clean_end, int *records_out)
{
    static seen_t seen[MAXREC];
    int batches;
    int n = read_all(l, seen, MAXREC, &batches);
    if (records_out)
        *records_out = n;
    int latest_model[256], latest_log[256];
    bool twice = false;
    int64_t last_below[256];
    for (int k = 0; k < 256; k++)
        latest_model[k] = latest_log[k] = -2, last_below[k] = -1;
    for (int64_t o = 0; o < model_end; o++)
        if (model[o].present && model[o].key >= 0 && model[o].key < nkeys)
            latest_model[model[o].key] = model[o].value;
    int64_t prev = -1;
    for (int i = 0; i < n; i++) {
        seen_t *s = &seen[i];
        CHECK(s->offset > prev);
        prev = s->offset;
        CHECK(s->offset >= 0 && s->offset < model_end);
        if (s->offset < 0 || s->offset >= model_end)
            continue;
        mrec_t *m = &model[s->offset];
        CHECK(m->present);
        if (m->key == -2) { /* control record: not interpreted */
            CHECK(s->control);
            continue;
        }
        CHECK_EQ_INT(s->key, m->key);
        CHECK_EQ_INT(s->value, m->value);
        CHECK_EQ_INT(s->ts, m->ts);
        if (s->key >= 0 && s->key < nkeys) {
            latest_log[s->key] = s->value;
            if (s->offset < clean_end) {
                if (last_below[s->key] >= 0)
                    twice = true;
                last_below[s->key] = s->offset;
            }
        }
    }
    CHECK(!twice);
    for (int k = 0; k < nkeys; k++) {
        int want = latest_model[k] == -1 ? -2 : latest_model[k]; /* tombstone: may be absent */
        int got = latest_log[k] == -1 ? -2 : latest_log[k];
        if (want != got)
            fprintf(stderr, "key %d: want %d got %d\n", k, latest_model[k], latest_log[k]);
        CHECK_EQ_INT(got, want);
    }
}

static log_config_t compact_cfg(int64_t seg_bytes)
{
    log_config_t c;
    log_config_default(&c);
    c.segment_bytes = seg_bytes;
    c.index_interval_bytes = 64;
    c.cleanup_compact = true;
    c.cleanup_delete = false;
    c.min_cleanable_ratio = 0.0;
    c.delete_retention_ms = 86400000;
    return c;
}

static void pdir(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", root, name); }

static int count_files_with(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl >= sl && strcmp(e->d_name + nl - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static cleaner_t *new_cleaner(int64_t map_bytes)
{
    cleaner_options_t o = {.dedupe_buffer_bytes = map_bytes, .load_factor = 0.9};
    cleaner_t *c = cleaner_create(&o);
    CHECK(c != NULL);
    return c;
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) & 0xffffff;
}

/* Random keys, values and tombstones over many small segments. */
static void fill_random(log_t *l, int nbatches, int nkeys, int codec_mode, int tomb_pct)
{
    for (int b = 0; b < nbatches; b++) {
        int n = 1 + (int)(rnd() % 5), keys[8], vals[8];
        for (int i = 0; i < n; i++) {
            keys[i] = (int)(rnd() % (uint32_t)nkeys);
            vals[i] = (int)(rnd() % 100) < tomb_pct ? -1 : (int)(rnd() % 100000);
        }
        int codec = codec_mode >= 0 ? codec_mode : (int)(rnd() % 5);
        add_batch(l, codec, n, keys, vals, NOW - 100000 + b * 10);
    }
}

/* ---------------------------------------------------------------- tests */

static void test_basic_compaction(void)
{
    model_reset();
    char dir[512];
    pdir(dir, sizeof(dir), "basic-0");
    log_config_t cfg = compact_cfg(400);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, 0, &l), LOG_OK);
    fill_random(l, 120, 20, COMPRESS_NONE, 10);
    int segs_before = log_segment_count(l);
    CHECK(segs_before > 10);
    int64_t active = log_active_base_offset(l), end = log_end_offset(l);
    int before;
    check_against_model(l, 20, 0, &before);

    cleaner_t *c = new_cleaner(1 << 20);
    CHECK(cleaner_priority(l, NOW) >= 0.99); /* all dirty */
    CHECK_EQ_INT(cleaner_clean_now(c, l, NOW), LOG_OK);
    CHECK_EQ_INT(log_cleaner_checkpoint(l), active);
    CHECK_EQ_INT(log_end_offset(l), end);
    CHECK_EQ_INT(log_active_base_offset(l), active);
    int64_t size_before = log_size_bytes(l);
    int after;
    check_against_model(l, 20, active, &after);
    CHECK(after < before);
    CHECK_EQ_INT(count_files_with(dir, ".cleaned"), 0);
    CHECK_EQ_INT(count_files_with(dir, ".swap"), 0);
    /* Nothing dirty any more: no second job. */
    CHECK(cleaner_priority(l, NOW) < 0);
    /* A run with nothing dirty is harmless, and merges the now small segments. */
    CHECK_EQ_INT(cleaner_clean_now(c, l, NOW), LOG_OK);
    check_against_model(l, 20, active, NULL);
    CHECK(log_segment_count(l) < segs_before / 2);
    CHECK(log_size_bytes(l) <= size_before);
    cleaner_stats_t st = cleaner_get_stats(c);
    CHECK_EQ_INT(st.jobs, 2);
    CHECK(st.records_kept < st.records_read);

    /* Reopening finds a consistent log (indexes of cleaned segments load without rebuild). */
    log_close(l);
    CHECK_EQ_INT(log_open(dir, &cfg, end, 0, &l), LOG_OK);
    CHECK_EQ_INT(log_end_offset(l), end);
    check_against_model(l, 20, active, NULL);
    log_close(l);
    cleaner_destroy(c);
}

static void test_tombstones_and_horizon(void)
{
    model_reset();
    char dir[512];
    pdir(dir, sizeof(dir), "tomb-0");
    log_config_t cfg = compact_cfg(200);
    cfg.delete_retention_ms = 1000;
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, 0, &l), LOG_OK);
    int k[3] = {1, 2, 3}, v1[3] = {10, 20, 30}, v2[3] = {-1, 21, -1};
    add_batch(l, COMPRESS_NONE, 3, k, v1, NOW - 5000);
    add_batch(l, COMPRESS_NONE, 3, k, v2, NOW - 4000);
    int k4[1] = {4}, v4[1] = {40};
    add_batch(l, COMPRESS_NONE, 1, k4, v4, NOW - 3000); /* rolls: the tombstones' segment closes */
    add_batch(l, COMPRESS_NONE, 1, k4, v4, NOW - 2000);
    CHECK(log_segment_count(l) >= 3);
    cleaner_t *c = new_cleaner(1 << 20);
    CHECK_EQ_INT(cleaner_clean_now(c, l, NOW), LOG_OK);
    static seen_t seen[64];
    int batches;
    int n = read_all(l, seen, 64, &batches);
    /* key 1 tombstone (offset 3), key 2 = 21 (4), key 3 tombstone (5), key 4 (6 and 7: 7 is in
     * the active segment). */
    int tomb = 0;
    for (int i = 0; i < n; i++) {
        if (seen[i].value == -1) {
            tomb++;
            CHECK(seen[i].horizon);
        }
        CHECK(seen[i].offset >= 3);
    }
    CHECK_EQ_INT(tomb, 2);
    CHECK_EQ_INT(log_cleaner_horizon(l), NOW + 1000);
    check_against_model(l, 5, log_cleaner_checkpoint(l), NULL);
    /* Before the horizon nothing needs doing; after it the log is due even though clean. */
    CHECK(cleaner_priority(l, NOW + 500) < 0);
    CHECK(cleaner_priority(l, NOW + 1000) >= 1.0);
    CHECK_EQ_INT(cleaner_clean_now(c, l, NOW + 1500), LOG_OK);
    n = read_all(l, seen, 64, &batches);
    for (int i = 0; i < n; i++)
        CHECK(seen[i].value != -1 && seen[i].key != 1 && seen[i].key != 3);
    CHECK_EQ_INT(log_cleaner_horizon(l), -1);
    check_against_model(l, 5, log_cleaner_checkpoint(l), NULL);
    CHECK(cleaner_get_stats(c).tombstones_dropped == 2);
    log_close(l);
    cleaner_destroy(c);
}

static void test_compressed(void)
{
    static const int codecs[5] = {COMPRESS_NONE, COMPRESS_GZIP, COMPRESS_SNAPPY, COMPRESS_LZ4,
                                  COMPRESS_ZSTD};
    for (int ci = 0; ci < 5; ci++) {
        model_reset();
        char dir[512], name[64];
        snprintf(name, sizeof(name), "codec%d-0", codecs[ci]);
        pdir(dir, sizeof(dir), name);
        log_config_t cfg = compact_cfg(600);
        log_t *l;
        CHECK_EQ_INT(log_open(dir, &cfg, 0, 0, &l), LOG_OK);
        fill_random(l, 60, 8, codecs[ci], 15);
        cleaner_t *c = new_cleaner(1 << 20);
        int before, after;
        check_against_model(l, 8, 0, &before);
        CHECK_EQ_INT(cleaner_clean_now(c, l, NOW), LOG_OK);
        check_against_model(l, 8, log_cleaner_checkpoint(l), &after);
        CHECK(after < before);
        static seen_t seen[MAXREC];
        int batches;
        int n = read_all(l, seen, MAXREC, &batches);
        for (int i = 0; i < n; i++)
            CHECK_EQ_INT(seen[i].codec, codecs[ci]);
        log_close(l);
        cleaner_destroy(c);
    }
    /* Mixed codecs in one log. */
    model_reset();
    char dir[512];
    pdir(dir, sizeof(dir), "mixed-0");
    log_config_t cfg = compact_cfg(500);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, 0, &l), LOG_OK);
    fill_random(l, 80, 10, -1, 10);
    cleaner_t *c = new_cleaner(1 << 20);
    CHECK_EQ_INT(cleaner_clean_now(c, l, NOW), LOG_OK);
    check_against_model(l, 10, log_cleaner_checkpoint(l), NULL);
    log_close(l);
    cleaner_destroy(c);
}

static void test_multi_pass_small_map(void)
{
    model_reset();
    char dir[512];
    pdir(dir, sizeof(dir), "passes-0");
    log_config_t cfg = compact_cfg(400);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, 0, &l), LOG_OK);
    fill_random(l, 150, 60, COMPRESS_NONE, 5);
    int64_t active = log_active_base_offset(l);
    cleaner_t *c = new_cleaner(16 * 24); /* 16 slots: 14 keys per pass */
    int passes = 0;
    while (log_cleaner_checkpoint(l) < active && passes < 100) {
        int64_t before = log_cleaner_checkpoint(l);
        CHECK_EQ_INT(cleaner_clean_now(c, l, NOW), LOG_OK);
        CHECK(log_cleaner_checkpoint(l) > before); /* progress every pass */
        passes++;
    }
    CHECK(passes >= 4);
    CHECK(cleaner_get_stats(c).passes_map_full >= 3);
    CHECK_EQ_INT(log_cleaner_checkpoint(l), active);
    check_against_model(l, 60, 0, NULL); /* values right; duplicates allowed across passes */
    /* One more pass with a big map: no key twice anywhere below the active segment. */
    cleaner_t *big = new_cleaner(1 << 20);
    log_set_cleaner_checkpoint(l, 0);
    CHECK_EQ_INT(cleaner_clean_now(big, l, NOW), LOG_OK);
    check_against_model(l, 60, active, NULL);
    log_close(l);
    cleaner_destroy(c);
    cleaner_destroy(big);
}

static void test_control_and_transactional_kept(void)
{
    model_reset();
    char dir[512];
    pdir(dir, sizeof(dir), "txn-0");
    log_config_t cfg = compact_cfg(150);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, 0, &l), LOG_OK);
    int k[2] = {1, 2}, v[2] = {100, 200};
    int64_t t0 = add_batch_ex(l, COMPRESS_NONE, 2, k, v, NOW - 900, true, false);
    int ck[1] = {-1}, cv[1] = {0};
    int64_t c0 = add_batch_ex(l, COMPRESS_NONE, 1, ck, cv, NOW - 800, false, true);
    int v2[2] = {101, 201};
    add_batch(l, COMPRESS_NONE, 2, k, v2, NOW - 700);
    add_batch(l, COMPRESS_NONE, 2, k, v2, NOW - 600);
    add_batch(l, COMPRESS_NONE, 2, k, v2, NOW - 500);
    cleaner_t *c = new_cleaner(1 << 20);
    CHECK_EQ_INT(cleaner_clean_now(c, l, NOW), LOG_OK);
    static seen_t seen[64];
    int batches;
    int n = read_all(l, seen, 64, &batches);
    bool txn = false, ctl = false;
    for (int i = 0; i < n; i++) {
        if (seen[i].offset == t0 || seen[i].offset == t0 + 1)
            txn = txn || seen[i].transactional;
        if (seen[i].offset == c0)
            ctl = seen[i].control;
    }
    CHECK(txn); /* superseded, but transactional: kept until transactions define the rules */
    CHECK(ctl);
    log_close(l);
    cleaner_destroy(c);
}

static void test_lag_and_ratio(void)
{
    model_reset();
    char dir[512];
    pdir(dir, sizeof(dir), "lag-0");
    log_config_t cfg = compact_cfg(200);
    cfg.min_compaction_lag_ms = 60000;
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, 0, &l), LOG_OK);
    int k[3] = {1, 2, 3}, v[3] = {1, 2, 3};
    for (int i = 0; i < 4; i++)
        add_batch(l, COMPRESS_NONE, 3, k, v, NOW - 120000 + i); /* old enough */
    int64_t young = -1;
    for (int i = 0; i < 4; i++) {
        int64_t f = add_batch(l, COMPRESS_NONE, 3, k, v, NOW - 1000 + i); /* too young */
        if (young < 0)
            young = f;
    }
    cleaner_t *c = new_cleaner(1 << 20);
    CHECK_EQ_INT(cleaner_clean_now(c, l, NOW), LOG_OK);
    /* The first young segment is the first uncleanable one. */
    int64_t cp = log_cleaner_checkpoint(l);
    CHECK(cp <= young && cp > 0);
    static seen_t seen[64];
    int batches;
    int n = read_all(l, seen, 64, &batches);
    int young_records = 0;
    for (int i = 0; i < n; i++)
        young_records += seen[i].offset >= young;
    CHECK_EQ_INT(young_records, 12); /* untouched */
    check_against_model(l, 4, cp, NULL);
    /* min.cleanable.dirty.ratio: with everything cleaned, a little new dirt is not enough. */
    cfg.min_compaction_lag_ms = 0;
    cfg.min_cleanable_ratio = 0.99;
    log_set_config(l, &cfg);
    CHECK(cleaner_priority(l, NOW) < 0);
    cfg.min_cleanable_ratio = 0.01;
    log_set_config(l, &cfg);
    CHECK(cleaner_priority(l, NOW) > 0.01);
    cfg.cleanup_compact = false;
    log_set_config(l, &cfg);
    CHECK(cleaner_priority(l, NOW) < 0);
    log_close(l);
    cleaner_destroy(c);
}

static void test_forget_cancels(void)
{
    model_reset();
    char dir[512];
    pdir(dir, sizeof(dir), "cancel-0");
    log_config_t cfg = compact_cfg(4000);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, 0, &l), LOG_OK);
    fill_random(l, 1500, 50, COMPRESS_GZIP, 5);
    int64_t end = log_end_offset(l);
    int segs = log_segment_count(l);
    cleaner_t *c = new_cleaner(1 << 20);
    CHECK_EQ_INT(cleaner_start(c, l, NOW), LOG_OK);
    CHECK(cleaner_busy(c));
    CHECK_EQ_INT(cleaner_start(c, l, NOW), LOG_ERR_INVALID); /* one job at a time */
    cleaner_forget(c, l);
    CHECK(!cleaner_busy(c));
    CHECK(cleaner_poll(c) == NULL);
    CHECK_EQ_INT(count_files_with(dir, ".cleaned"), 0);
    CHECK_EQ_INT(log_segment_count(l), segs);
    CHECK_EQ_INT(log_end_offset(l), end);
    check_against_model(l, 50, 0, NULL);
    /* Destroy while a job runs: files cleaned up, thread joined. */
    CHECK_EQ_INT(cleaner_start(c, l, NOW), LOG_OK);
    cleaner_destroy(c);
    CHECK_EQ_INT(count_files_with(dir, ".cleaned"), 0);
    log_close(l);
}

/* A segment list that changed under the job (retention deleted the first segment) makes that
 * group's swap a no-op; the later groups still go in. */
static void test_swap_after_concurrent_delete(void)
{
    model_reset();
    char dir[512];
    pdir(dir, sizeof(dir), "concurrent-0");
    log_config_t cfg = compact_cfg(300);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, 0, &l), LOG_OK);
    fill_random(l, 60, 6, COMPRESS_NONE, 0);
    cleaner_t *c = new_cleaner(1 << 20);
    CHECK_EQ_INT(cleaner_start(c, l, NOW), LOG_OK);
    log_segment_info_t *segs;
    int n;
    CHECK_EQ_INT(log_segments(l, &segs, &n), LOG_OK);
    CHECK_EQ_INT(log_delete_records(l, segs[1].base_offset), LOG_OK);
    free(segs);
    for (int i = 0; i < 500 && cleaner_busy(c); i++) {
        (void)cleaner_poll(c);
        usleep(10000);
    }
    CHECK(!cleaner_busy(c));
    CHECK_EQ_INT(count_files_with(dir, ".cleaned"), 0);
    for (int64_t o = 0; o < log_start_offset(l); o++)
        model[o].present = false;
    check_against_model(l, 6, 0, NULL);
    log_close(l);
    cleaner_destroy(c);
}

static void copy_file(const char *from, const char *to)
{
    int a = open(from, O_RDONLY), b = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(a >= 0 && b >= 0);
    char buf[65536];
    ssize_t r;
    while ((r = read(a, buf, sizeof(buf))) > 0)
        CHECK_EQ_INT(write(b, buf, (size_t)r), r);
    close(a);
    close(b);
}

static void append_file(const char *from, const char *to)
{
    int a = open(from, O_RDONLY), b = open(to, O_WRONLY | O_APPEND);
    CHECK(a >= 0 && b >= 0);
    char buf[65536];
    ssize_t r;
    while ((r = read(a, buf, sizeof(buf))) > 0)
        CHECK_EQ_INT(write(b, buf, (size_t)r), r);
    close(a);
    close(b);
}

static void seg_file(char *out, size_t cap, const char *dir, int64_t base, const char *ext)
{
    snprintf(out, cap, "%s/%020lld%s", dir, (long long)base, ext);
}

static bool exists(const char *p) { return access(p, F_OK) == 0; }

/* Interrupted swaps: a committed .log.swap is completed on open, an uncommitted one dropped. */
static void test_swap_recovery(void)
{
    for (int stage = 0; stage < 3; stage++) {
        model_reset();
        char dir[512], name[64];
        snprintf(name, sizeof(name), "swaprec%d-0", stage);
        pdir(dir, sizeof(dir), name);
        log_config_t cfg = compact_cfg(250);
        log_t *l;
        CHECK_EQ_INT(log_open(dir, &cfg, 0, 0, &l), LOG_OK);
        fill_random(l, 30, 5, COMPRESS_NONE, 0);
        log_segment_info_t *segs;
        int n;
        CHECK_EQ_INT(log_segments(l, &segs, &n), LOG_OK);
        CHECK(n >= 4);
        int64_t end = log_end_offset(l);
        log_close(l);
        /* A "cleaned" group of segments 0 and 1 that removed nothing: their bytes back to back. */
        char a[600], b[600], s[600];
        seg_file(a, sizeof(a), dir, segs[0].base_offset, ".log");
        seg_file(b, sizeof(b), dir, segs[1].base_offset, ".log");
        seg_file(s, sizeof(s), dir, segs[0].base_offset, stage == 0 ? ".log.cleaned" : ".log.swap");
        copy_file(a, s);
        append_file(b, s);
        if (stage == 2) {
            /* Crash after step 3: the second segment is already gone, an index swap renamed. */
            char bi[600], bt[600], ai[600], as[600];
            seg_file(bi, sizeof(bi), dir, segs[1].base_offset, ".index");
            seg_file(bt, sizeof(bt), dir, segs[1].base_offset, ".timeindex");
            unlink(b);
            unlink(bi);
            unlink(bt);
            seg_file(ai, sizeof(ai), dir, segs[0].base_offset, ".index");
            seg_file(as, sizeof(as), dir, segs[0].base_offset, ".index.swap");
            copy_file(ai, as);
        }
        CHECK_EQ_INT(log_open(dir, &cfg, end, 0, &l), LOG_OK);
        CHECK_EQ_INT(log_end_offset(l), end);
        CHECK_EQ_INT(log_segment_count(l), stage == 0 ? n : n - 1);
        CHECK(!exists(s));
        CHECK_EQ_INT(count_files_with(dir, ".swap"), 0);
        CHECK_EQ_INT(count_files_with(dir, ".cleaned"), 0);
        if (stage > 0)
            CHECK(!exists(b));
        check_against_model(l, 5, 0, NULL);
        static seen_t seen[MAXREC];
        int batches;
        int got = read_all(l, seen, MAXREC, &batches);
        CHECK_EQ_INT(got, end); /* nothing lost, nothing doubled */
        log_close(l);
        free(segs);
    }
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    snprintf(root, sizeof(root), "/tmp/runnel-cleaner-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    logger_min_level = LOG_LEVEL_WARN;
    RUN_TEST(test_basic_compaction);
    RUN_TEST(test_tombstones_and_horizon);
    RUN_TEST(test_compressed);
    RUN_TEST(test_multi_pass_small_map);
    RUN_TEST(test_control_and_transactional_kept);
    RUN_TEST(test_lag_and_ratio);
    RUN_TEST(test_forget_cancels);
    RUN_TEST(test_swap_after_concurrent_delete);
    RUN_TEST(test_swap_recovery);
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return TEST_REPORT();
}
