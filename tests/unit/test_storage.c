/* Unit tests for the partition log storage: segments, indexes, recovery, checkpoints.
 * Everything runs in a fresh mkdtemp directory that is removed at the end. */
#define _XOPEN_SOURCE 700
#include "common/buf.h"
#include "common/crc32c.h"
#include "protocol/record_batch.h"
#include "storage/checkpoint.h"
#include "storage/flusher.h"
#include "storage/log.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char root[256];

/* ---------------------------------------------------------------- helpers */

/* Appends one uncompressed magic-2 batch of nrec records of value_size bytes; record i has
 * timestamp ts0 + i*step (step >= 0). baseOffset is left as garbage (-7) for the log to set. */
static void put_batch(buf_t *b, int nrec, int value_size, int64_t ts0, int64_t step)
{
    size_t start = b->len;
    buf_put_i64(b, -7);
    buf_put_i32(b, 0); /* batchLength, patched below */
    buf_put_i32(b, -1);
    buf_put_i8(b, 2);
    buf_put_u32(b, 0); /* crc, patched below */
    buf_put_i16(b, 0);
    buf_put_i32(b, nrec - 1);
    buf_put_i64(b, ts0);
    buf_put_i64(b, ts0 + (int64_t)(nrec - 1) * step);
    buf_put_i64(b, -1);
    buf_put_i16(b, -1);
    buf_put_i32(b, -1);
    buf_put_i32(b, nrec);
    for (int i = 0; i < nrec; i++) {
        buf_t r;
        buf_init(&r);
        buf_put_i8(&r, 0);
        buf_put_varlong(&r, (int64_t)i * step);
        buf_put_varint(&r, i);
        buf_put_varint(&r, -1);
        buf_put_varint(&r, value_size);
        for (int j = 0; j < value_size; j++)
            buf_put_i8(&r, (int8_t)('a' + (i + j) % 26));
        buf_put_varint(&r, 0);
        buf_put_varint(b, (int32_t)r.len);
        buf_put(b, r.data, r.len);
        buf_free(&r);
    }
    be_put32(b->data + start + RB_OFF_BATCH_LENGTH, (uint32_t)(b->len - start - RB_LOG_OVERHEAD));
    be_put32(b->data + start + RB_OFF_CRC,
             crc32c(b->data + start + RB_OFF_ATTRIBUTES, b->len - start - RB_OFF_ATTRIBUTES));
}

static int64_t batch_size(int nrec, int value_size)
{
    buf_t b;
    buf_init(&b);
    put_batch(&b, nrec, value_size, 0, 0);
    int64_t n = (int64_t)b.len;
    buf_free(&b);
    return n;
}

/* Appends one batch; returns the first assigned offset (or a negative rc). */
static int64_t append1(log_t *l, int nrec, int value_size, int64_t ts0, int64_t step, int64_t now)
{
    buf_t b;
    buf_init(&b);
    put_batch(&b, nrec, value_size, ts0, step);
    int64_t first = -100, next = -100;
    int rc = log_append(l, b.data, b.len, 3, now, &first, &next);
    buf_free(&b);
    return rc == LOG_OK ? first : rc;
}

static void pdir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", root, name);
}

static void seg_file(char *out, size_t cap, const char *dir, int64_t base, const char *ext)
{
    snprintf(out, cap, "%s/%020lld%s", dir, (long long)base, ext);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd == -1)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) == -1) {
        close(fd);
        return NULL;
    }
    uint8_t *p = malloc((size_t)st.st_size + 1);
    ssize_t r = read(fd, p, (size_t)st.st_size);
    close(fd);
    *len = r > 0 ? (size_t)r : 0;
    return p;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static void append_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK_EQ_INT(write(fd, p, n), n);
        close(fd);
    }
}

static void write_at(const char *path, int64_t pos, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK_EQ_INT(pwrite(fd, p, n, pos), n);
        close(fd);
    }
}

/* Reads the 61-byte header at a region's start and returns its baseOffset (-1 on failure). */
static int64_t region_base(const log_read_t *r)
{
    uint8_t h[RB_HEADER_SIZE];
    if (r->fd < 0 || pread(r->fd, h, sizeof(h), r->position) != (ssize_t)sizeof(h))
        return -1;
    return rb_base_offset(h);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static log_config_t cfg_with(int64_t seg_bytes, int64_t seg_ms, int32_t interval)
{
    log_config_t c;
    log_config_default(&c);
    if (seg_bytes)
        c.segment_bytes = seg_bytes;
    if (seg_ms)
        c.segment_ms = seg_ms;
    if (interval >= 0)
        c.index_interval_bytes = interval;
    return c;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* ---------------------------------------------------------------- tests */

static void test_append_assigns_offsets(void)
{
    char dir[512], path[600];
    pdir(dir, sizeof(dir), "append-0");
    log_config_t cfg = cfg_with(0, 0, -1);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    CHECK_EQ_INT(log_end_offset(l), 0);
    CHECK_EQ_INT(log_start_offset(l), 0);
    seg_file(path, sizeof(path), dir, 0, ".log");
    CHECK(exists(path));

    CHECK_EQ_INT(append1(l, 1, 10, 100, 1, 0), 0);
    CHECK_EQ_INT(append1(l, 5, 10, 100, 1, 0), 1);
    CHECK_EQ_INT(append1(l, 3, 10, 100, 1, 0), 6);
    /* Two batches in one call; the caller's buffer is rewritten in place. */
    buf_t b;
    buf_init(&b);
    put_batch(&b, 2, 10, 100, 1);
    size_t second = b.len;
    put_batch(&b, 4, 10, 100, 1);
    int64_t first, next;
    CHECK_EQ_INT(log_append(l, b.data, b.len, 9, 0, &first, &next), LOG_OK);
    CHECK_EQ_INT(first, 9);
    CHECK_EQ_INT(next, 15);
    CHECK_EQ_INT(rb_base_offset(b.data), 9);
    CHECK_EQ_INT(rb_base_offset(b.data + second), 11);
    CHECK_EQ_INT(rb_leader_epoch(b.data + second), 9);
    buf_free(&b);
    CHECK_EQ_INT(log_end_offset(l), 15);
    CHECK_EQ_INT(log_segment_count(l), 1);

    size_t len;
    uint8_t *data = slurp(path, &len);
    CHECK_EQ_INT(log_size_bytes(l), len);
    static const int64_t want_base[] = {0, 1, 6, 9, 11};
    static const int32_t want_epoch[] = {3, 3, 3, 9, 9};
    size_t pos = 0;
    int i = 0;
    while (data && pos + RB_HEADER_SIZE <= len && i < 5) {
        const uint8_t *h = data + pos;
        CHECK_EQ_INT(rb_base_offset(h), want_base[i]);
        CHECK_EQ_INT(rb_leader_epoch(h), want_epoch[i]);
        CHECK(rb_crc(h) ==
              crc32c(h + RB_OFF_ATTRIBUTES, (size_t)rb_total_size(h) - RB_OFF_ATTRIBUTES));
        pos += (size_t)rb_total_size(h);
        i++;
    }
    CHECK_EQ_INT(i, 5);
    CHECK_EQ_INT(pos, len);
    free(data);

    /* Malformed input is refused and nothing is written. */
    uint8_t junk[80] = {0};
    CHECK_EQ_INT(log_append(l, junk, sizeof(junk), 0, 0, &first, &next), LOG_ERR_INVALID);
    buf_init(&b);
    put_batch(&b, 1, 10, 0, 0);
    CHECK_EQ_INT(log_append(l, b.data, b.len - 1, 0, 0, &first, &next), LOG_ERR_INVALID);
    buf_free(&b);
    CHECK_EQ_INT(log_end_offset(l), 15);
    CHECK_EQ_INT(file_size(path), len);
    log_close(l);
}

static void check_reads(const char *name, int32_t interval)
{
    char dir[512];
    pdir(dir, sizeof(dir), name);
    log_config_t cfg = cfg_with(0, 0, interval);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    int64_t S = batch_size(3, 20);
    for (int i = 0; i < 100; i++)
        CHECK_EQ_INT(append1(l, 3, 20, 1000 + i, 0, 0), 3 * i);
    log_read_t r;
    CHECK_EQ_INT(log_read(l, 0, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.position, 0);
    CHECK_EQ_INT(r.len, 100 * S);
    CHECK_EQ_INT(r.first_batch_base, 0);
    CHECK_EQ_INT(region_base(&r), 0);
    /* Middle of a batch: the whole containing batch. */
    CHECK_EQ_INT(log_read(l, 4, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.position, S);
    CHECK_EQ_INT(r.len, 99 * S);
    CHECK_EQ_INT(r.first_batch_base, 3);
    CHECK_EQ_INT(region_base(&r), 3);
    CHECK_EQ_INT(log_read(l, 299, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.position, 99 * S);
    CHECK_EQ_INT(r.len, S);
    CHECK_EQ_INT(log_read(l, 200, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.position, 66 * S);
    CHECK_EQ_INT(r.first_batch_base, 198);
    /* max_bytes counts whole batches only. */
    CHECK_EQ_INT(log_read(l, 5, (int32_t)(2 * S), false, &r), LOG_OK);
    CHECK_EQ_INT(r.position, S);
    CHECK_EQ_INT(r.len, 2 * S);
    CHECK_EQ_INT(log_read(l, 5, (int32_t)(3 * S - 1), false, &r), LOG_OK);
    CHECK_EQ_INT(r.len, 2 * S);
    for (int k = 1; k < 99; k += 7) {
        CHECK_EQ_INT(log_read(l, 3 * k + 2, (int32_t)(37 * S + k), false, &r), LOG_OK);
        CHECK_EQ_INT(r.position, k * S);
        CHECK_EQ_INT(r.len, (k + 37 <= 100 ? 37 : 100 - k) * S);
    }
    CHECK_EQ_INT(log_read(l, 5, 10, false, &r), LOG_OK);
    CHECK_EQ_INT(r.len, 0);
    CHECK_EQ_INT(r.fd, -1);
    CHECK_EQ_INT(log_read(l, 5, 10, true, &r), LOG_OK);
    CHECK_EQ_INT(r.len, S);
    CHECK_EQ_INT(r.position, S);
    CHECK_EQ_INT(log_read(l, 5, 0, true, &r), LOG_OK);
    CHECK_EQ_INT(r.len, S);
    /* Log end and beyond. */
    CHECK_EQ_INT(log_read(l, 300, 1 << 20, true, &r), LOG_OK);
    CHECK_EQ_INT(r.len, 0);
    CHECK_EQ_INT(log_read(l, 301, 1 << 20, true, &r), LOG_ERR_OUT_OF_RANGE);
    CHECK_EQ_INT(log_read(l, -1, 1 << 20, true, &r), LOG_ERR_OUT_OF_RANGE);
    log_close(l);
}

static void test_read(void)
{
    /* Without index entries, with one per batch, and with one every few batches. */
    check_reads("read-0", 1 << 20);
    check_reads("read-1", 0);
    check_reads("read-2", 500);
}

static void test_roll_by_bytes(void)
{
    char dir[512], path[600];
    pdir(dir, sizeof(dir), "rollb-0");
    int64_t S = batch_size(3, 50);
    log_config_t cfg = cfg_with(3 * S + 10, 0, -1);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(append1(l, 3, 50, 5000 + 10 * i, 1, 0), 3 * i);
    CHECK_EQ_INT(log_segment_count(l), 4);
    CHECK_EQ_INT(log_active_base_offset(l), 27);
    CHECK_EQ_INT(log_size_bytes(l), 10 * S);
    static const int64_t bases[] = {0, 9, 18, 27};
    for (int i = 0; i < 4; i++) {
        seg_file(path, sizeof(path), dir, bases[i], ".log");
        CHECK_EQ_INT(file_size(path), i < 3 ? 3 * S : S);
    }
    CHECK(exists(strcat(strcpy(path, dir), "/00000000000000000009.log")));
    CHECK(exists(strcat(strcpy(path, dir), "/00000000000000000018.timeindex")));
    /* A rolled segment's time index ends with its largest timestamp (batch 8: 5082, offset 26). */
    seg_file(path, sizeof(path), dir, 18, ".timeindex");
    size_t len;
    uint8_t *ti = slurp(path, &len);
    CHECK_EQ_INT(len, 12);
    if (ti && len == 12) {
        CHECK_EQ_INT(be_get64(ti), 5082);
        CHECK_EQ_INT(be_get32(ti + 8), 26 - 18);
    }
    free(ti);

    /* Reads stay inside one segment. */
    log_read_t r;
    CHECK_EQ_INT(log_read(l, 0, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.len, 3 * S);
    CHECK_EQ_INT(log_read(l, 8, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.position, 2 * S);
    CHECK_EQ_INT(r.len, S);
    CHECK_EQ_INT(r.first_batch_base, 6);
    CHECK_EQ_INT(log_read(l, 9, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.position, 0);
    CHECK_EQ_INT(r.len, 3 * S);
    CHECK_EQ_INT(region_base(&r), 9);
    CHECK_EQ_INT(log_read(l, 28, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(region_base(&r), 27);
    CHECK_EQ_INT(r.len, S);

    /* A batch larger than segment_bytes goes alone into a fresh segment. */
    CHECK_EQ_INT(append1(l, 3, 400, 0, 0, 0), 30);
    CHECK_EQ_INT(log_segment_count(l), 5);
    CHECK_EQ_INT(log_active_base_offset(l), 30);
    CHECK_EQ_INT(append1(l, 1, 1, 0, 0, 0), 33);
    CHECK_EQ_INT(log_segment_count(l), 6);

    /* Reading older segments keeps at most one of them open besides the active one. */
    int before = count_fds();
    for (int off = 0; off < 30; off += 3)
        CHECK_EQ_INT(log_read(l, off, 1 << 20, false, &r), LOG_OK);
    CHECK(count_fds() - before <= 3);
    log_close(l);
}

static void test_roll_by_time(void)
{
    char dir[512];
    pdir(dir, sizeof(dir), "rollt-0");
    log_config_t cfg = cfg_with(0, 1000, -1);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    CHECK_EQ_INT(append1(l, 1, 5, 1, 0, 10000), 0);
    CHECK_EQ_INT(append1(l, 1, 5, 1, 0, 10500), 1);
    CHECK_EQ_INT(append1(l, 1, 5, 1, 0, 11000), 2);
    CHECK_EQ_INT(log_segment_count(l), 1);
    CHECK_EQ_INT(append1(l, 1, 5, 1, 0, 11001), 3);
    CHECK_EQ_INT(log_segment_count(l), 2);
    CHECK_EQ_INT(log_active_base_offset(l), 3);
    /* The new segment's clock starts at its first append. */
    CHECK_EQ_INT(append1(l, 1, 5, 1, 0, 12001), 4);
    CHECK_EQ_INT(log_segment_count(l), 2);
    CHECK_EQ_INT(append1(l, 1, 5, 1, 0, 12002), 5);
    CHECK_EQ_INT(log_segment_count(l), 3);
    char path[600];
    seg_file(path, sizeof(path), dir, 5, ".log");
    CHECK(exists(path));
    /* A lowered segment.ms applies from the next append. */
    log_config_t c2 = cfg_with(0, 10, -1);
    log_set_config(l, &c2);
    CHECK_EQ_INT(append1(l, 1, 5, 1, 0, 12013), 6);
    CHECK_EQ_INT(log_segment_count(l), 4);
    log_close(l);
}

static void test_index_entries(void)
{
    char dir[512], dir2[512], path[600], path2[600];
    pdir(dir, sizeof(dir), "index-0");
    pdir(dir2, sizeof(dir2), "index-1");
    /* Four batches stay under 4096 bytes, five reach it. */
    int64_t S = batch_size(1, 900);
    CHECK(S * 4 < 4096 && S * 5 >= 4096);
    log_config_t cfg = cfg_with(0, 0, 4096);
    log_t *l, *l2;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    CHECK_EQ_INT(log_open(dir2, &cfg, 0, -1, &l2), LOG_OK);
    buf_t all;
    buf_init(&all);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ_INT(append1(l, 1, 900, 1000 + 10 * i, 0, 0), i);
        put_batch(&all, 1, 900, 1000 + 10 * i, 0);
    }
    int64_t f, n;
    CHECK_EQ_INT(log_append(l2, all.data, all.len, 3, 0, &f, &n), LOG_OK);
    CHECK_EQ_INT(n, 20);
    buf_free(&all);
    /* After each indexed batch 5 batches accumulate 4096 bytes: 5, 10, 15 get entries. */
    seg_file(path, sizeof(path), dir, 0, ".index");
    seg_file(path2, sizeof(path2), dir2, 0, ".index");
    size_t len, len2;
    uint8_t *ix = slurp(path, &len), *ix2 = slurp(path2, &len2);
    CHECK_EQ_INT(len, 24);
    if (ix && len == 24) {
        for (int k = 0; k < 3; k++) {
            CHECK_EQ_INT(be_get32(ix + 8 * k), 5 * (k + 1));
            CHECK_EQ_INT(be_get32(ix + 8 * k + 4), 5 * (k + 1) * S);
        }
    }
    CHECK(len == len2 && ix && ix2 && memcmp(ix, ix2, len) == 0);
    free(ix);
    free(ix2);
    seg_file(path, sizeof(path), dir, 0, ".timeindex");
    CHECK_EQ_INT(file_size(path), 36);
    log_close(l);
    log_close(l2);
    /* Closing adds the final entry: the largest timestamp 1190 at offset 19. */
    uint8_t *ti = slurp(path, &len);
    CHECK_EQ_INT(len, 48);
    if (ti && len == 48) {
        static const int64_t ts[] = {1050, 1100, 1150, 1190};
        static const int32_t off[] = {5, 10, 15, 19};
        for (int k = 0; k < 4; k++) {
            CHECK_EQ_INT(be_get64(ti + 12 * k), ts[k]);
            CHECK_EQ_INT(be_get32(ti + 12 * k + 8), off[k]);
        }
    }
    free(ti);
}

static void test_find_timestamp(void)
{
    char dir[512];
    pdir(dir, sizeof(dir), "ts-0");
    int64_t S = batch_size(2, 30);
    log_config_t cfg = cfg_with(10 * S, 0, 200);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    /* Batch i: offsets 2i, 2i+1; timestamps 1000+100i and 1010+100i. */
    for (int i = 0; i < 30; i++)
        CHECK_EQ_INT(append1(l, 2, 30, 1000 + 100 * i, 10, 0), 2 * i);
    CHECK_EQ_INT(log_segment_count(l), 3);
    log_read_t r;
    static const struct { int64_t ts; int batch; } q[] = {
        {-5, 0}, {1000, 0}, {1010, 0}, {1011, 1}, {2505, 15}, {2010, 10}, {2011, 11},
        {1999, 10}, {3910, 29}, {3011, 21}};
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
        CHECK_EQ_INT(log_find_timestamp(l, q[i].ts, &r), 1);
        CHECK_EQ_INT(r.first_batch_base, 2 * q[i].batch);
        CHECK_EQ_INT(region_base(&r), 2 * q[i].batch);
        CHECK_EQ_INT(r.len, S);
        CHECK_EQ_INT(r.position, (q[i].batch % 10) * S);
    }
    CHECK_EQ_INT(log_find_timestamp(l, 3911, &r), 0);
    CHECK_EQ_INT(r.len, 0);
    /* Batches below the log start offset do not count. */
    CHECK_EQ_INT(log_delete_records(l, 25), LOG_OK);
    CHECK_EQ_INT(log_find_timestamp(l, 1000, &r), 1);
    CHECK_EQ_INT(r.first_batch_base, 24);
    /* Same answers after reopening from the files alone. */
    log_close(l);
    CHECK_EQ_INT(log_open(dir, &cfg, 60, 25, &l), LOG_OK);
    CHECK_EQ_INT(log_find_timestamp(l, 2505, &r), 1);
    CHECK_EQ_INT(r.first_batch_base, 30);
    CHECK_EQ_INT(log_find_timestamp(l, 3910, &r), 1);
    CHECK_EQ_INT(r.first_batch_base, 58);
    CHECK_EQ_INT(log_find_timestamp(l, 3911, &r), 0);
    log_close(l);

    /* Timestamps that go backwards: the first batch in offset order with max >= ts wins. */
    pdir(dir, sizeof(dir), "ts-1");
    cfg = cfg_with(0, 0, 0);
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    CHECK_EQ_INT(append1(l, 1, 5, 5000, 0, 0), 0);
    CHECK_EQ_INT(append1(l, 1, 5, 3000, 0, 0), 1);
    CHECK_EQ_INT(append1(l, 1, 5, 6000, 0, 0), 2);
    CHECK_EQ_INT(append1(l, 1, 5, 4000, 0, 0), 3);
    CHECK_EQ_INT(log_find_timestamp(l, 4000, &r), 1);
    CHECK_EQ_INT(r.first_batch_base, 0);
    CHECK_EQ_INT(log_find_timestamp(l, 5500, &r), 1);
    CHECK_EQ_INT(r.first_batch_base, 2);
    CHECK_EQ_INT(log_find_timestamp(l, 6001, &r), 0);
    log_close(l);
}

static void test_max_timestamp(void)
{
    char dir[512];
    pdir(dir, sizeof(dir), "maxts-0");
    int64_t S = batch_size(2, 10);
    log_config_t cfg = cfg_with(4 * S, 0, 0);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    int64_t ts, off;
    log_read_t r;
    CHECK_EQ_INT(log_max_timestamp(l, &ts, &off, &r), 0);
    CHECK_EQ_INT(ts, -1);
    CHECK_EQ_INT(off, -1);
    CHECK_EQ_INT(r.len, 0);
    /* Batch 5 (offsets 10, 11) holds the maximum 9005; batch 9 ties it later. */
    static const int64_t t0[] = {100, 300, 200, 500, 400, 9000, 700, 800, 600, 9000, 50};
    for (int i = 0; i < 11; i++)
        CHECK_EQ_INT(append1(l, 2, 10, t0[i], 5, 0), 2 * i);
    CHECK_EQ_INT(log_segment_count(l), 3);
    CHECK_EQ_INT(log_max_timestamp(l, &ts, &off, &r), 1);
    CHECK_EQ_INT(ts, 9005);
    CHECK_EQ_INT(off, 11);
    CHECK_EQ_INT(r.first_batch_base, 10);
    CHECK_EQ_INT(region_base(&r), 10);
    CHECK_EQ_INT(r.len, S);
    CHECK_EQ_INT(r.position, S);
    log_close(l);
    CHECK_EQ_INT(log_open(dir, &cfg, 22, -1, &l), LOG_OK);
    CHECK_EQ_INT(log_max_timestamp(l, &ts, &off, &r), 1);
    CHECK_EQ_INT(ts, 9005);
    CHECK_EQ_INT(off, 11);
    CHECK_EQ_INT(region_base(&r), 10);
    /* With the start past batch 5, the tie in batch 9 is the answer; past that, batch 7. */
    CHECK_EQ_INT(log_delete_records(l, 12), LOG_OK);
    CHECK_EQ_INT(log_max_timestamp(l, &ts, &off, &r), 1);
    CHECK_EQ_INT(ts, 9005);
    CHECK_EQ_INT(off, 19);
    CHECK_EQ_INT(r.first_batch_base, 18);
    CHECK_EQ_INT(log_delete_records(l, 20), LOG_OK);
    CHECK_EQ_INT(log_max_timestamp(l, &ts, &off, &r), 1);
    CHECK_EQ_INT(ts, 55);
    CHECK_EQ_INT(off, 21);
    log_close(l);
}

static void test_reopen(void)
{
    char dir[512];
    pdir(dir, sizeof(dir), "reopen-0");
    int64_t S = batch_size(4, 100);
    log_config_t cfg = cfg_with(5 * S, 0, 300);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 12; i++)
        CHECK_EQ_INT(append1(l, 4, 100, 100 * i, 1, 0), 4 * i);
    CHECK_EQ_INT(log_flush(l), LOG_OK);
    CHECK_EQ_INT(log_recovery_point(l), 48);
    CHECK_EQ_INT(append1(l, 4, 100, 5000, 1, 0), 48);
    CHECK_EQ_INT(log_recovery_point(l), 48);
    int64_t size = log_size_bytes(l);
    log_close(l);
    /* Clean reopen (recovery point at the end) and a full scan give the same log. */
    for (int pass = 0; pass < 2; pass++) {
        CHECK_EQ_INT(log_open(dir, &cfg, pass ? 0 : 52, -1, &l), LOG_OK);
        CHECK_EQ_INT(log_end_offset(l), 52 + pass);
        CHECK_EQ_INT(log_start_offset(l), 0);
        CHECK_EQ_INT(log_segment_count(l), 3);
        CHECK_EQ_INT(log_size_bytes(l), size + pass * batch_size(1, 1));
        CHECK_EQ_INT(log_recovery_point(l), pass ? 0 : 52);
        log_read_t r;
        CHECK_EQ_INT(log_read(l, 22, 1 << 20, false, &r), LOG_OK);
        CHECK_EQ_INT(r.first_batch_base, 20);
        CHECK_EQ_INT(r.len, 5 * S);
        CHECK_EQ_INT(r.position, 0);
        int64_t ts, off;
        CHECK_EQ_INT(log_max_timestamp(l, &ts, &off, &r), 1);
        CHECK_EQ_INT(ts, 5003);
        CHECK_EQ_INT(off, 51);
        CHECK_EQ_INT(log_find_timestamp(l, 1101, &r), 1);
        CHECK_EQ_INT(r.first_batch_base, 44);
        CHECK_EQ_INT(log_find_timestamp(l, 1104, &r), 1);
        CHECK_EQ_INT(r.first_batch_base, 48);
        CHECK_EQ_INT(append1(l, 1, 1, 10, 0, 0), 52 + pass);
        log_close(l);
    }
    /* The start offset from a checkpoint is kept, and clamped to the log. */
    CHECK_EQ_INT(log_open(dir, &cfg, 54, 7, &l), LOG_OK);
    CHECK_EQ_INT(log_recovery_point(l), 54);
    CHECK_EQ_INT(log_start_offset(l), 7);
    CHECK_EQ_INT(log_end_offset(l), 54);
    log_close(l);
    CHECK_EQ_INT(log_open(dir, &cfg, 54, 1000, &l), LOG_OK);
    CHECK_EQ_INT(log_start_offset(l), 54);
    log_close(l);
}

/* Builds a one-segment log of n 2-record batches and closes it; returns the batch size. */
static int64_t make_log(const char *dir, int n)
{
    log_config_t cfg = cfg_with(0, 0, 0);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < n; i++)
        CHECK_EQ_INT(append1(l, 2, 40, 100 + i, 1, 0), 2 * i);
    log_close(l);
    return batch_size(2, 40);
}

static void check_recovered(const char *dir, int64_t rp, int64_t want_end, int64_t want_size,
                            int want_batches)
{
    char path[600];
    log_config_t cfg = cfg_with(0, 0, 0);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, rp, -1, &l), LOG_OK);
    CHECK_EQ_INT(log_end_offset(l), want_end);
    CHECK_EQ_INT(log_size_bytes(l), want_size);
    seg_file(path, sizeof(path), dir, 0, ".log");
    CHECK_EQ_INT(file_size(path), want_size);
    /* Index rebuilt: with interval 0 every batch has an entry. */
    seg_file(path, sizeof(path), dir, 0, ".index");
    CHECK_EQ_INT(file_size(path), 8 * want_batches);
    CHECK_EQ_INT(append1(l, 1, 5, 7, 0, 0), want_end);
    log_read_t r;
    CHECK_EQ_INT(log_read(l, want_end, 100, true, &r), LOG_OK);
    CHECK_EQ_INT(r.position, want_size);
    CHECK_EQ_INT(region_base(&r), want_end);
    log_close(l);
}

static void test_recovery(void)
{
    char dir[512], path[600];
    /* Garbage after the last batch. */
    pdir(dir, sizeof(dir), "rec-0");
    int64_t S = make_log(dir, 5);
    seg_file(path, sizeof(path), dir, 0, ".log");
    uint8_t junk[100];
    memset(junk, 0xab, sizeof(junk));
    append_bytes(path, junk, sizeof(junk));
    check_recovered(dir, 0, 10, 5 * S, 5);

    /* Half a batch. */
    pdir(dir, sizeof(dir), "rec-1");
    make_log(dir, 5);
    buf_t b;
    buf_init(&b);
    put_batch(&b, 2, 40, 0, 0);
    rb_set_base_offset(b.data, 10);
    seg_file(path, sizeof(path), dir, 0, ".log");
    append_bytes(path, b.data, b.len / 2);
    check_recovered(dir, 0, 10, 5 * S, 5);
    /* Even with a recovery point at the end, a torn tail is noticed and cut. */
    append_bytes(path, b.data, b.len - 3);
    check_recovered(dir, 11, 11, 5 * S + batch_size(1, 5), 6);
    buf_free(&b);

    /* A flipped byte inside the last batch: the CRC catches it, the batch goes. */
    pdir(dir, sizeof(dir), "rec-2");
    make_log(dir, 5);
    seg_file(path, sizeof(path), dir, 0, ".log");
    uint8_t x = 0x5a;
    write_at(path, 4 * S + 70, &x, 1);
    check_recovered(dir, 0, 8, 4 * S, 4);

    /* Bad batch in the middle segment: truncated there, later segments deleted. */
    pdir(dir, sizeof(dir), "rec-3");
    log_config_t cfg = cfg_with(3 * S, 0, 0);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 9; i++)
        CHECK_EQ_INT(append1(l, 2, 40, 100 + i, 1, 0), 2 * i);
    CHECK_EQ_INT(log_segment_count(l), 3);
    log_close(l);
    seg_file(path, sizeof(path), dir, 6, ".log");
    write_at(path, S + RB_OFF_CRC, &x, 1); /* batch 4 (offsets 8, 9) */
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    CHECK_EQ_INT(log_segment_count(l), 2);
    CHECK_EQ_INT(log_end_offset(l), 8);
    CHECK_EQ_INT(log_active_base_offset(l), 6);
    CHECK_EQ_INT(file_size(path), S);
    seg_file(path, sizeof(path), dir, 12, ".log");
    CHECK(!exists(path));
    seg_file(path, sizeof(path), dir, 12, ".index");
    CHECK(!exists(path));
    CHECK_EQ_INT(append1(l, 1, 5, 7, 0, 0), 8);
    log_close(l);

    /* Below the recovery point the same damage goes unnoticed (no scan there). */
    pdir(dir, sizeof(dir), "rec-4");
    make_log(dir, 5);
    seg_file(path, sizeof(path), dir, 0, ".log");
    write_at(path, 2 * S + 70, &x, 1);
    check_recovered(dir, 10, 10, 5 * S, 5);
}

static void test_segments_with_gaps(void)
{
    /* Segments written by hand: 0 holds offsets 0..4, 10 holds 10..12 (as after compaction). */
    char dir[512], path[600];
    pdir(dir, sizeof(dir), "gap-0");
    CHECK_EQ_INT(mkdir(dir, 0755), 0);
    buf_t b;
    buf_init(&b);
    put_batch(&b, 2, 10, 1, 0);
    rb_set_base_offset(b.data, 0);
    size_t one = b.len;
    put_batch(&b, 3, 10, 2, 0);
    rb_set_base_offset(b.data + one, 2);
    seg_file(path, sizeof(path), dir, 0, ".log");
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    CHECK_EQ_INT(write(fd, b.data, b.len), b.len);
    close(fd);
    size_t seg0 = b.len;
    b.len = 0;
    put_batch(&b, 3, 10, 3, 0);
    rb_set_base_offset(b.data, 10);
    seg_file(path, sizeof(path), dir, 10, ".log");
    fd = open(path, O_WRONLY | O_CREAT, 0644);
    CHECK_EQ_INT(write(fd, b.data, b.len), b.len);
    close(fd);
    size_t seg1 = b.len;
    buf_free(&b);
    /* Leftovers that opening must remove. */
    static const char *const junk[] = {"00000000000000000000.log.deleted", "x.swap",
                                       "00000000000000000010.log.cleaned",
                                       "00000000000000000077.index",
                                       "00000000000000000077.timeindex"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, junk[i]);
        fd = open(path, O_WRONLY | O_CREAT, 0644);
        close(fd);
    }
    log_config_t cfg = cfg_with(0, 0, -1);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, junk[i]);
        CHECK(!exists(path));
    }
    CHECK_EQ_INT(log_segment_count(l), 2);
    CHECK_EQ_INT(log_end_offset(l), 13);
    CHECK_EQ_INT(log_size_bytes(l), seg0 + seg1);
    log_read_t r;
    CHECK_EQ_INT(log_read(l, 3, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.first_batch_base, 2);
    CHECK_EQ_INT(r.position, one);
    CHECK_EQ_INT(log_read(l, 7, 1 << 20, false, &r), LOG_OK); /* in the gap: next segment */
    CHECK_EQ_INT(r.first_batch_base, 10);
    CHECK_EQ_INT(r.position, 0);
    CHECK_EQ_INT(r.len, seg1);
    CHECK_EQ_INT(region_base(&r), 10);
    CHECK_EQ_INT(log_read(l, 5, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.first_batch_base, 10);
    log_close(l);
}

static void test_index_rebuilt(void)
{
    char dir[512], path[600], tpath[600];
    pdir(dir, sizeof(dir), "rebuild-0");
    int64_t S = batch_size(1, 300);
    log_config_t cfg = cfg_with(12 * S, 0, 1000);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(append1(l, 1, 300, 50 + i, 0, 0), i);
    CHECK_EQ_INT(log_segment_count(l), 2);
    log_close(l);
    seg_file(path, sizeof(path), dir, 0, ".index");
    seg_file(tpath, sizeof(tpath), dir, 0, ".timeindex");
    size_t ilen, tlen;
    uint8_t *ix = slurp(path, &ilen), *ti = slurp(tpath, &tlen);
    CHECK(ilen >= 16);
    CHECK(tlen >= 24);
    /* Rounds 4 and 5 open with recovery point 0, so the whole log is scanned and its indexes
     * rebuilt over the existing files: a damaged entry in the middle is rewritten, an intact
     * index stays as it is. */
    for (int round = 0; round < 6; round++) {
        if (round == 0)
            CHECK_EQ_INT(unlink(path), 0);
        else if (round == 1)
            CHECK_EQ_INT(unlink(tpath), 0);
        else if (round == 2)
            append_bytes(path, "xyz", 3);
        else if (round == 3)
            write_at(path, (int64_t)ilen - 4, "\x7f\0\0\0", 4); /* last position past the end */
        else if (round == 4)
            write_at(tpath, 12, "\x55\x55\x55\x55\x55\x55\x55\x55", 8);
        CHECK_EQ_INT(log_open(dir, &cfg, round >= 4 ? 0 : 20, -1, &l), LOG_OK);
        log_read_t r;
        CHECK_EQ_INT(log_read(l, 9, 1 << 20, false, &r), LOG_OK);
        CHECK_EQ_INT(r.position, 9 * S);
        CHECK_EQ_INT(r.len, 3 * S);
        CHECK_EQ_INT(log_find_timestamp(l, 58, &r), 1);
        CHECK_EQ_INT(r.first_batch_base, 8);
        log_close(l);
        size_t l2, t2;
        uint8_t *ix2 = slurp(path, &l2), *ti2 = slurp(tpath, &t2);
        CHECK(ix && ix2 && l2 == ilen && memcmp(ix, ix2, ilen) == 0);
        CHECK(ti && ti2 && t2 == tlen && memcmp(ti, ti2, tlen) == 0);
        free(ix2);
        free(ti2);
    }
    free(ix);
    free(ti);
}

static void test_garbage_files(void)
{
    /* Random bytes in every file: opening and reading must not crash, whatever the answer. */
    char dir[512], path[600];
    uint32_t seed = 12345;
    for (int round = 0; round < 6; round++) {
        snprintf(dir, sizeof(dir), "%s/garbage-%d", root, round);
        CHECK_EQ_INT(mkdir(dir, 0755), 0);
        static const int64_t bases[] = {0, 40, 90};
        static const char *const exts[] = {".log", ".index", ".timeindex"};
        for (int k = 0; k < 3; k++) {
            for (int e = 0; e < 3; e++) {
                seg_file(path, sizeof(path), dir, bases[k], exts[e]);
                size_t n = (size_t)(round * 97 + k * 31 + e * 7) % 600;
                if (e > 0)
                    n -= n % (e == 1 ? 8 : 12); /* whole entries, so the contents get used */
                uint8_t *junk = malloc(n + 1);
                for (size_t i = 0; i < n; i++) {
                    seed = seed * 1103515245u + 12345u;
                    junk[i] = (uint8_t)(seed >> 16);
                }
                if (round % 2 && e == 0 && n >= 61) { /* plausible headers */
                    be_put64(junk, (uint64_t)bases[k]);
                    be_put32(junk + 8, (uint32_t)(n - 12));
                    junk[16] = 2;
                }
                int fd = open(path, O_WRONLY | O_CREAT, 0644);
                CHECK_EQ_INT(write(fd, junk, n), n);
                close(fd);
                free(junk);
            }
        }
        log_config_t cfg = cfg_with(0, 0, -1);
        log_t *l;
        int rc = log_open(dir, &cfg, round < 3 ? 0 : INT64_MAX, -1, &l);
        CHECK_EQ_INT(rc, LOG_OK);
        if (rc != LOG_OK)
            continue;
        log_read_t r;
        for (int64_t off = 0; off < 100; off += 3)
            CHECK(log_read(l, off, 1000, true, &r) <= LOG_OK);
        int64_t ts, o;
        CHECK(log_max_timestamp(l, &ts, &o, &r) <= 1);
        CHECK(log_find_timestamp(l, 0, &r) <= 1);
        int64_t end = log_end_offset(l);
        CHECK_EQ_INT(append1(l, 1, 5, 1, 0, 0), end);
        log_close(l);
    }
}

static void test_delete_records(void)
{
    char dir[512], path[600];
    pdir(dir, sizeof(dir), "delrec-0");
    int64_t S = batch_size(3, 50);
    log_config_t cfg = cfg_with(3 * S, 0, -1);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(append1(l, 3, 50, 1, 0, 0), 3 * i);
    CHECK_EQ_INT(log_segment_count(l), 4);
    CHECK_EQ_INT(log_delete_records(l, 31), LOG_ERR_OUT_OF_RANGE);
    CHECK_EQ_INT(log_delete_records(l, 10), LOG_OK);
    CHECK_EQ_INT(log_start_offset(l), 10);
    CHECK_EQ_INT(log_segment_count(l), 3);
    CHECK_EQ_INT(log_size_bytes(l), 7 * S);
    seg_file(path, sizeof(path), dir, 0, ".log");
    CHECK(!exists(path));
    seg_file(path, sizeof(path), dir, 0, ".index");
    CHECK(!exists(path));
    seg_file(path, sizeof(path), dir, 9, ".log");
    CHECK(exists(path));
    log_read_t r;
    CHECK_EQ_INT(log_read(l, 9, 1 << 20, false, &r), LOG_ERR_OUT_OF_RANGE);
    CHECK_EQ_INT(log_read(l, 10, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.first_batch_base, 9);
    CHECK_EQ_INT(log_delete_records(l, 5), LOG_OK); /* lower: no-op */
    CHECK_EQ_INT(log_start_offset(l), 10);
    CHECK_EQ_INT(log_delete_records(l, 30), LOG_OK);
    CHECK_EQ_INT(log_segment_count(l), 1);
    CHECK_EQ_INT(log_active_base_offset(l), 27);
    CHECK_EQ_INT(log_start_offset(l), 30);
    CHECK_EQ_INT(log_read(l, 30, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.len, 0);
    CHECK_EQ_INT(log_read(l, 29, 1 << 20, false, &r), LOG_ERR_OUT_OF_RANGE);
    CHECK_EQ_INT(append1(l, 1, 1, 0, 0, 0), 30);
    log_close(l);
    CHECK_EQ_INT(log_open(dir, &cfg, 31, -1, &l), LOG_OK);
    CHECK_EQ_INT(log_start_offset(l), 27);
    CHECK_EQ_INT(log_end_offset(l), 31);
    log_close(l);
}

static void test_truncate_to(void)
{
    char dir[512], path[600];
    pdir(dir, sizeof(dir), "trunc-0");
    int64_t S = batch_size(3, 50);
    log_config_t cfg = cfg_with(3 * S, 0, 0);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(append1(l, 3, 50, 100 * i, 1, 0), 3 * i);
    int64_t end;
    CHECK_EQ_INT(log_truncate_to(l, 30, &end), LOG_OK);
    CHECK_EQ_INT(end, 30);
    CHECK_EQ_INT(log_truncate_to(l, 20, &end), LOG_OK); /* batch 18..20 goes whole */
    CHECK_EQ_INT(end, 18);
    CHECK_EQ_INT(log_end_offset(l), 18);
    CHECK_EQ_INT(log_segment_count(l), 3);
    CHECK_EQ_INT(log_size_bytes(l), 6 * S);
    seg_file(path, sizeof(path), dir, 27, ".log");
    CHECK(!exists(path));
    CHECK_EQ_INT(append1(l, 3, 50, 7, 0, 0), 18);
    CHECK_EQ_INT(log_truncate_to(l, 13, &end), LOG_OK);
    CHECK_EQ_INT(end, 12);
    CHECK_EQ_INT(log_segment_count(l), 2);
    seg_file(path, sizeof(path), dir, 9, ".log");
    CHECK_EQ_INT(file_size(path), S);
    /* Interval 0 indexes every batch: one entry left (offset 11 at 0); time index (911, 2). */
    seg_file(path, sizeof(path), dir, 9, ".index");
    size_t len;
    uint8_t *ix = slurp(path, &len);
    CHECK_EQ_INT(len, 8);
    if (ix && len == 8) {
        CHECK_EQ_INT(be_get32(ix), 2);
        CHECK_EQ_INT(be_get32(ix + 4), 0);
    }
    free(ix);
    seg_file(path, sizeof(path), dir, 9, ".timeindex");
    CHECK_EQ_INT(file_size(path), 12);
    int64_t ts, off;
    log_read_t r;
    CHECK_EQ_INT(log_max_timestamp(l, &ts, &off, &r), 1);
    CHECK_EQ_INT(ts, 302);
    CHECK_EQ_INT(off, 11);
    CHECK_EQ_INT(log_truncate_to(l, 12, &end), LOG_OK); /* on a batch boundary: nothing goes */
    CHECK_EQ_INT(end, 12);
    CHECK_EQ_INT(append1(l, 3, 50, 7, 0, 0), 12);
    CHECK_EQ_INT(append1(l, 3, 50, 7, 0, 0), 15);
    CHECK_EQ_INT(log_segment_count(l), 2);
    CHECK_EQ_INT(log_read(l, 13, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.first_batch_base, 12);
    CHECK_EQ_INT(r.position, S);
    log_close(l);
    CHECK_EQ_INT(log_open(dir, &cfg, 18, -1, &l), LOG_OK);
    CHECK_EQ_INT(log_end_offset(l), 18);
    CHECK_EQ_INT(log_size_bytes(l), 6 * S);
    /* Below the first segment (after DeleteRecords): the log restarts at the offset. */
    CHECK_EQ_INT(log_delete_records(l, 10), LOG_OK);
    CHECK_EQ_INT(log_segment_count(l), 1);
    CHECK_EQ_INT(log_truncate_to(l, 5, &end), LOG_OK);
    CHECK_EQ_INT(end, 5);
    CHECK_EQ_INT(log_start_offset(l), 5);
    CHECK_EQ_INT(log_segment_count(l), 1);
    CHECK_EQ_INT(log_size_bytes(l), 0);
    seg_file(path, sizeof(path), dir, 5, ".log");
    CHECK(exists(path));
    seg_file(path, sizeof(path), dir, 9, ".log");
    CHECK(!exists(path));
    CHECK_EQ_INT(append1(l, 1, 1, 0, 0, 0), 5);
    log_close(l);
}

/* One batch of nrec records with the given base offset and leader epoch, as a leader holds it. */
static void leader_batch(buf_t *b, int64_t base, int32_t epoch, int nrec)
{
    size_t start = b->len;
    put_batch(b, nrec, 20, 1000, 1);
    be_put64(b->data + start, (uint64_t)base);
    be_put32(b->data + start + RB_OFF_LEADER_EPOCH, (uint32_t)epoch);
}

static void test_append_replica(void)
{
    char dir[512], path[600];
    pdir(dir, sizeof(dir), "replica-0");
    int64_t S = batch_size(2, 20);
    log_config_t cfg = cfg_with(2 * S, 0, 0);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    buf_t b;
    buf_init(&b);
    leader_batch(&b, 0, 4, 2);
    leader_batch(&b, 2, 5, 2);
    int64_t next;
    CHECK_EQ_INT(log_append_replica(l, b.data, b.len, 0, &next), LOG_OK);
    CHECK_EQ_INT(next, 4);
    /* Offsets and epochs stay as the leader wrote them (a gap left by compaction too). */
    b.len = 0;
    leader_batch(&b, 10, 5, 2);
    CHECK_EQ_INT(log_append_replica(l, b.data, b.len, 0, &next), LOG_OK);
    CHECK_EQ_INT(next, 12);
    CHECK_EQ_INT(log_segment_count(l), 2); /* rolled at segment.bytes */
    log_read_t r;
    CHECK_EQ_INT(log_read(l, 2, 1 << 20, true, &r), LOG_OK);
    CHECK_EQ_INT(r.first_batch_base, 2);
    uint8_t h[RB_HEADER_SIZE];
    CHECK_EQ_INT(pread(r.fd, h, sizeof(h), r.position), (ssize_t)sizeof(h));
    CHECK_EQ_INT(rb_leader_epoch(h), 5);
    CHECK_EQ_INT(log_read(l, 10, 1 << 20, true, &r), LOG_OK);
    CHECK_EQ_INT(r.first_batch_base, 10);
    /* Behind the log end, or out of order: refused, nothing written. */
    b.len = 0;
    leader_batch(&b, 11, 5, 2);
    CHECK_EQ_INT(log_append_replica(l, b.data, b.len, 0, &next), LOG_ERR_INVALID);
    CHECK_EQ_INT(log_end_offset(l), 12);
    log_close(l);
    /* Reopened, the log ends where the leader's batches did. */
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    CHECK_EQ_INT(log_end_offset(l), 12);
    /* A follower behind its leader's log start empties its log and restarts there. */
    int64_t end;
    CHECK_EQ_INT(log_restart_at(l, 40, &end), LOG_OK);
    CHECK_EQ_INT(end, 40);
    CHECK_EQ_INT(log_start_offset(l), 40);
    CHECK_EQ_INT(log_end_offset(l), 40);
    CHECK_EQ_INT(log_segment_count(l), 1);
    seg_file(path, sizeof(path), dir, 40, ".log");
    CHECK(exists(path));
    seg_file(path, sizeof(path), dir, 0, ".log");
    CHECK(!exists(path));
    b.len = 0;
    leader_batch(&b, 40, 6, 2);
    CHECK_EQ_INT(log_append_replica(l, b.data, b.len, 0, &next), LOG_OK);
    CHECK_EQ_INT(next, 42);
    buf_free(&b);
    log_close(l);
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    CHECK_EQ_INT(log_start_offset(l), 40);
    CHECK_EQ_INT(log_end_offset(l), 42);
    log_close(l);
}

static void test_flush_off_thread(void)
{
    char dir[512];
    pdir(dir, sizeof(dir), "flusher-0");
    int64_t S = batch_size(2, 20);
    log_config_t cfg = cfg_with(2 * S, 0, 0);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    flusher_t *f = flusher_new();
    CHECK(f != NULL);
    if (f == NULL) {
        log_close(l);
        return;
    }
    /* Nothing to sync yet except the new directory entry. */
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(append1(l, 2, 20, 0, 1, 0), 2 * i); /* rolls: two segments past the recovery point */
    flush_job_t *job = calloc(1, sizeof(*job));
    CHECK_EQ_INT(log_flush_begin(l, &job->log_job), LOG_OK);
    CHECK_EQ_INT(job->log_job.end, 6);
    CHECK_EQ_INT(job->log_job.nfds, 2);
    CHECK(job->log_job.dir_fd >= 0);
    flusher_submit(f, job);
    /* Appends go on while the flush runs; the recovery point moves only at the end. */
    CHECK_EQ_INT(append1(l, 2, 20, 0, 1, 0), 6);
    flush_job_t *done = NULL;
    for (int i = 0; i < 5000 && done == NULL; i++) {
        struct pollfd pfd = {.fd = flusher_event_fd(f), .events = POLLIN};
        poll(&pfd, 1, 10);
        done = flusher_take_done(f);
    }
    CHECK(done == job);
    if (done) {
        CHECK_EQ_INT(done->rc, LOG_OK);
        CHECK_EQ_INT(done->log_job.nfds, 0); /* closed by the worker */
        CHECK_EQ_INT(log_recovery_point(l), 0);
        log_flush_end(l, &done->log_job);
        CHECK_EQ_INT(log_recovery_point(l), 6);
        free(done);
    }
    /* A segment rolled after begin keeps the directory dirty: the next flush syncs it. */
    job = calloc(1, sizeof(*job));
    CHECK_EQ_INT(log_flush_begin(l, &job->log_job), LOG_OK);
    CHECK_EQ_INT(job->log_job.end, 8);
    CHECK(job->log_job.dir_fd >= 0);
    log_flush_job_close(&job->log_job);
    free(job);
    flusher_free(f);
    log_close(l);
}

static void test_flush_and_remove(void)
{
    char dir[512];
    pdir(dir, sizeof(dir), "flush-0");
    int64_t S = batch_size(1, 10);
    log_config_t cfg = cfg_with(2 * S, 0, -1);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(append1(l, 1, 10, 1, 0, 0), i);
    CHECK_EQ_INT(log_recovery_point(l), 0);
    CHECK_EQ_INT(log_flush(l), LOG_OK);
    CHECK_EQ_INT(log_recovery_point(l), 5);
    CHECK_EQ_INT(append1(l, 1, 10, 1, 0, 0), 5);
    CHECK_EQ_INT(log_flush(l), LOG_OK);
    CHECK_EQ_INT(log_recovery_point(l), 6);
    CHECK_EQ_INT(log_remove(l), LOG_OK);
    CHECK(!exists(dir));
}

static void test_checkpoint(void)
{
    char path[600];
    pdir(path, sizeof(path), "recovery-point-offset-checkpoint");
    checkpoint_entry_t in[3] = {
        {"orders", 0, 42}, {"orders", 11, 0}, {"__consumer_offsets", 7, 9000000000LL}};
    CHECK_EQ_INT(checkpoint_write(path, in, 3), LOG_OK);
    size_t len;
    uint8_t *text = slurp(path, &len);
    const char *want = "0\n3\norders 0 42\norders 11 0\n__consumer_offsets 7 9000000000\n";
    CHECK_EQ_INT(len, strlen(want));
    CHECK(text && len == strlen(want) && memcmp(text, want, len) == 0);
    free(text);
    char tmp[700];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    CHECK(!exists(tmp));
    checkpoint_entry_t *out;
    size_t n;
    CHECK_EQ_INT(checkpoint_read(path, &out, &n), LOG_OK);
    CHECK_EQ_INT(n, 3);
    for (size_t i = 0; out && i < n && i < 3; i++) {
        CHECK(strcmp(out[i].topic, in[i].topic) == 0);
        CHECK_EQ_INT(out[i].partition, in[i].partition);
        CHECK_EQ_INT(out[i].offset, in[i].offset);
    }
    free(out);
    /* Rewrite with nothing. */
    CHECK_EQ_INT(checkpoint_write(path, NULL, 0), LOG_OK);
    CHECK_EQ_INT(checkpoint_read(path, &out, &n), LOG_OK);
    CHECK_EQ_INT(n, 0);
    CHECK(out == NULL);
    /* Missing file: no entries. */
    pdir(path, sizeof(path), "no-such-checkpoint");
    CHECK_EQ_INT(checkpoint_read(path, &out, &n), LOG_OK);
    CHECK_EQ_INT(n, 0);
    /* Bad topics are refused on write. */
    checkpoint_entry_t bad = {"a b", 0, 1};
    CHECK_EQ_INT(checkpoint_write(path, &bad, 1), LOG_ERR_INVALID);
    checkpoint_entry_t empty = {"", 0, 1};
    CHECK_EQ_INT(checkpoint_write(path, &empty, 1), LOG_ERR_INVALID);
    CHECK(!exists(path));
    /* Malformed files. */
    static const char *const bads[] = {
        "", "1\n1\nt 0 5\n", "0\n2\nt 0 5\n", "0\n1\nt 0 5\nu 1 6\n", "0\n1\nt 0 5",
        "0\n1\nt 0 x5\n", "0\n1\nt -1 5\n", "0\n1\nt 0\n", "0\n1\nt  0 5\n", "0\n-1\n",
        "0\n1\nt 0 99999999999999999999\n", "0\n1\nt 0 5 6\n", "0\n99999999\nt 0 5\n", "x\n0\n"};
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK_EQ_INT(write(fd, bads[i], strlen(bads[i])), strlen(bads[i]));
        close(fd);
        out = (checkpoint_entry_t *)1;
        int rc = checkpoint_read(path, &out, &n);
        if (rc != LOG_ERR_CORRUPT)
            fprintf(stderr, "malformed checkpoint %zu accepted\n", i);
        CHECK_EQ_INT(rc, LOG_ERR_CORRUPT);
        CHECK(out == NULL);
    }
    unlink(path);
}


/* ---------------------------------------------------------------- retention */

static log_config_t retention_cfg(int64_t seg_bytes, int64_t ms, int64_t bytes)
{
    log_config_t c = cfg_with(seg_bytes, 0, -1);
    c.retention_ms = ms;
    c.retention_bytes = bytes;
    return c;
}

static void test_retention_time(void)
{
    char dir[512], path[600];
    pdir(dir, sizeof(dir), "rettime-0");
    int64_t S = batch_size(2, 20);
    log_config_t cfg = retention_cfg(S, 10000, -1); /* one batch per segment */
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(append1(l, 2, 20, 1000 + i * 1000, 1, 0), 2 * i); /* largest ts 1001.. 5001 */
    CHECK_EQ_INT(append1(l, 2, 20, 100000, 1, 0), 10);
    CHECK_EQ_INT(log_segment_count(l), 6);
    /* At 12000 only the first segment (largest 1001) is more than 10 s old. */
    CHECK_EQ_INT(log_apply_retention(l, 12000), 1);
    CHECK_EQ_INT(log_start_offset(l), 2);
    CHECK_EQ_INT(log_apply_retention(l, 13001), 1); /* 13001 - 2001 = 11000 > 10000 */
    CHECK_EQ_INT(log_apply_retention(l, 13001), 0); /* 3001: exactly 10000, kept */
    CHECK_EQ_INT(log_start_offset(l), 4);
    seg_file(path, sizeof(path), dir, 0, ".log");
    CHECK(!exists(path));
    seg_file(path, sizeof(path), dir, 2, ".timeindex");
    CHECK(!exists(path));
    /* -1 keeps everything; cleanup.policy=compact alone keeps everything. */
    cfg.retention_ms = -1;
    log_set_config(l, &cfg);
    CHECK_EQ_INT(log_apply_retention(l, INT64_MAX / 2), 0);
    cfg.retention_ms = 10000;
    cfg.cleanup_delete = false;
    cfg.cleanup_compact = true;
    log_set_config(l, &cfg);
    CHECK_EQ_INT(log_apply_retention(l, INT64_MAX / 2), 0);
    /* compact,delete: retention again; the active segment survives however old. */
    cfg.cleanup_delete = true;
    log_set_config(l, &cfg);
    CHECK_EQ_INT(log_apply_retention(l, 10000000), 3);
    CHECK_EQ_INT(log_segment_count(l), 1);
    CHECK_EQ_INT(log_start_offset(l), 10);
    CHECK_EQ_INT(log_end_offset(l), 12);
    log_read_t r;
    CHECK_EQ_INT(log_read(l, 9, 1 << 20, false, &r), LOG_ERR_OUT_OF_RANGE);
    CHECK_EQ_INT(log_read(l, 10, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(r.first_batch_base, 10);
    CHECK_EQ_INT(append1(l, 1, 1, 200000, 0, 0), 12);
    log_close(l);
    /* The start offset comes back from the first segment after a restart. */
    CHECK_EQ_INT(log_open(dir, &cfg, 13, -1, &l), LOG_OK);
    CHECK_EQ_INT(log_start_offset(l), 10);
    CHECK_EQ_INT(log_end_offset(l), 13);
    log_close(l);
}

static void test_retention_bytes(void)
{
    char dir[512];
    pdir(dir, sizeof(dir), "retbytes-0");
    int64_t S = batch_size(2, 20);
    log_config_t cfg = retention_cfg(S, -1, 3 * S + 1);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(append1(l, 2, 20, 1000, 1, 0), 2 * i);
    CHECK_EQ_INT(log_size_bytes(l), 6 * S);
    /* Kafka's rule: delete the oldest while what remains is still >= retention.bytes. */
    CHECK_EQ_INT(log_apply_retention(l, 5000), 2);
    CHECK_EQ_INT(log_size_bytes(l), 4 * S);
    CHECK_EQ_INT(log_start_offset(l), 4);
    CHECK_EQ_INT(log_apply_retention(l, 5000), 0);
    /* Changed at run time: the next check uses it. */
    cfg.retention_bytes = 0;
    log_set_config(l, &cfg);
    CHECK_EQ_INT(log_apply_retention(l, 5000), 3); /* never the active one */
    CHECK_EQ_INT(log_segment_count(l), 1);
    CHECK_EQ_INT(log_start_offset(l), 10);
    log_close(l);
}

/* A Fetch answer holds a dup() of the segment fd: deleting the segment does not break it. */
static void test_retention_while_reading(void)
{
    char dir[512];
    pdir(dir, sizeof(dir), "retread-0");
    int64_t S = batch_size(50, 1000);
    log_config_t cfg = retention_cfg(2 * S, 1, -1);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(append1(l, 50, 1000, 1000, 1, 0), 50 * i);
    log_read_t r;
    CHECK_EQ_INT(log_read(l, 0, 1 << 24, true, &r), LOG_OK);
    CHECK_EQ_INT(r.len, 2 * S);
    int fd = dup(r.fd);
    CHECK(fd >= 0);
    CHECK_EQ_INT(log_apply_retention(l, 1000000), 1);
    CHECK_EQ_INT(log_start_offset(l), 100);
    uint8_t *buf = malloc((size_t)r.len);
    CHECK_EQ_INT(pread(fd, buf, (size_t)r.len, r.position), r.len);
    CHECK_EQ_INT(rb_base_offset(buf), 0);
    CHECK(rb_crc_ok(buf));
    CHECK_EQ_INT(rb_base_offset(buf + S), 50);
    CHECK(rb_crc_ok(buf + S));
    free(buf);
    close(fd);
    log_close(l);
}

/* Batches without timestamps (-1): the segment file's mtime stands in, as in Kafka. */
static void test_retention_mtime(void)
{
    char dir[512], path[600];
    pdir(dir, sizeof(dir), "retmtime-0");
    int64_t S = batch_size(1, 10);
    log_config_t cfg = retention_cfg(S, 60000, -1);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(append1(l, 1, 10, -1, 0, 0), i);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    CHECK_EQ_INT(log_apply_retention(l, now_ms), 0); /* just written */
    seg_file(path, sizeof(path), dir, 0, ".log");
    struct timespec old[2] = {{now.tv_sec - 3600, 0}, {now.tv_sec - 3600, 0}};
    CHECK_EQ_INT(utimensat(AT_FDCWD, path, old, 0), 0);
    CHECK_EQ_INT(log_apply_retention(l, now_ms), 1);
    CHECK_EQ_INT(log_start_offset(l), 1);
    log_close(l);
}

/* Reopened logs hold no descriptors until used; the active segment's files then stay open. */
static void test_lazy_open(void)
{
    char dir[512];
    pdir(dir, sizeof(dir), "lazy-0");
    log_config_t cfg = cfg_with(batch_size(2, 20), 0, -1);
    log_t *l;
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(append1(l, 2, 20, 1000 + i, 1, 0), 2 * i);
    log_close(l);
    int before = count_fds();
    CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &l), LOG_OK); /* recovery scan of everything */
    CHECK_EQ_INT(count_fds(), before);
    CHECK_EQ_INT(log_end_offset(l), 6);
    log_read_t r;
    CHECK_EQ_INT(log_read(l, 4, 1 << 20, false, &r), LOG_OK);
    CHECK_EQ_INT(region_base(&r), 4);
    CHECK_EQ_INT(count_fds(), before + 3);
    CHECK_EQ_INT(append1(l, 1, 1, 5000, 0, 0), 6);
    log_close(l);
    CHECK_EQ_INT(count_fds(), before);
    CHECK_EQ_INT(log_open(dir, &cfg, 7, -1, &l), LOG_OK);
    CHECK_EQ_INT(count_fds(), before);
    CHECK_EQ_INT(append1(l, 1, 1, 6000, 0, 0), 7); /* the first append opens the files */
    /* ... and rolls (two small batches exceed segment_bytes): the new active segment plus the
     * one just closed, kept as the cached older segment. */
    CHECK_EQ_INT(log_segment_count(l), 5);
    CHECK_EQ_INT(count_fds(), before + 6);
    int64_t ts, off;
    CHECK_EQ_INT(log_max_timestamp(l, &ts, &off, &r), 1);
    CHECK_EQ_INT(ts, 6000);
    log_close(l);
}

/* With a bound on logs holding open files, many busy logs stay readable and
 * appendable while the descriptors in use stay bounded. */
static void test_open_files_bounded(void)
{
    enum { NLOGS = 12, LIMIT = 3 };
    log_set_open_files_limit(LIMIT);
    log_config_t cfg = cfg_with(1 << 20, 0, -1);
    log_t *logs[NLOGS];
    int before = count_fds();
    for (int i = 0; i < NLOGS; i++) {
        char dir[512], name[32];
        snprintf(name, sizeof(name), "lru-%d", i);
        pdir(dir, sizeof(dir), name);
        CHECK_EQ_INT(log_open(dir, &cfg, 0, -1, &logs[i]), LOG_OK);
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < NLOGS; i++) {
            CHECK_EQ_INT(append1(logs[i], 2, 20, 1000 + round, 1, 0), 2 * round);
            CHECK(count_fds() <= before + 6 * LIMIT);
        }
    for (int i = 0; i < NLOGS; i++) {
        log_read_t r;
        CHECK_EQ_INT(log_end_offset(logs[i]), 6);
        CHECK_EQ_INT(log_read(logs[i], 2, 1 << 20, false, &r), LOG_OK);
        CHECK_EQ_INT(region_base(&r), 2);
        CHECK(count_fds() <= before + 6 * LIMIT);
    }
    for (int i = 0; i < NLOGS; i++)
        log_close(logs[i]);
    CHECK_EQ_INT(count_fds(), before);
    log_set_open_files_limit(0); /* back to the default */
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/runnel-storage-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    RUN_TEST(test_append_assigns_offsets);
    RUN_TEST(test_read);
    RUN_TEST(test_roll_by_bytes);
    RUN_TEST(test_roll_by_time);
    RUN_TEST(test_index_entries);
    RUN_TEST(test_find_timestamp);
    RUN_TEST(test_max_timestamp);
    RUN_TEST(test_reopen);
    RUN_TEST(test_recovery);
    RUN_TEST(test_segments_with_gaps);
    RUN_TEST(test_index_rebuilt);
    RUN_TEST(test_garbage_files);
    RUN_TEST(test_delete_records);
    RUN_TEST(test_truncate_to);
    RUN_TEST(test_append_replica);
    RUN_TEST(test_flush_off_thread);
    RUN_TEST(test_flush_and_remove);
    RUN_TEST(test_checkpoint);
    RUN_TEST(test_retention_time);
    RUN_TEST(test_retention_bytes);
    RUN_TEST(test_retention_while_reading);
    RUN_TEST(test_retention_mtime);
    RUN_TEST(test_lazy_open);
    RUN_TEST(test_open_files_bounded);
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return TEST_REPORT();
}
