/* Unit tests for the leader epoch cache: loading (missing, empty, malformed, tolerated and
 * non-monotonic files), assign, endOffsetFor, truncation from either end, and the flush/reload
 * round trip. Cases mirror Kafka's LeaderEpochFileCacheTest where one exists. Everything runs
 * in a fresh mkdtemp directory that is removed at the end. */
#define _XOPEN_SOURCE 700
#include "common/buf.h"
#include "common/fsutil.h"
#include "storage/leader_epoch.h"
#include "test.h"

#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

/* ---------------------------------------------------------------- helpers */

/* A new empty directory under root, returned in a static buffer (one in use at a time). */
static const char *fresh_dir(const char *name)
{
    static char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", root, name);
    CHECK(fs_mkdirs(dir) == 0);
    return dir;
}

static void write_checkpoint(const char *dir, const char *text)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, LEC_FILE_NAME);
    CHECK(fs_write_replace(path, text, strlen(text)) == 0);
}

/* True when the file holds exactly `text`. */
static bool file_is(const char *dir, const char *text)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, LEC_FILE_NAME);
    buf_t b;
    buf_init(&b);
    bool ok = fs_read_file(path, &b, 1 << 20) == 0 && b.len == strlen(text) &&
              memcmp(b.data, text, b.len) == 0;
    if (!ok)
        fprintf(stderr, "file %s holds [%.*s], expected [%s]\n", path, (int)b.len,
                b.data ? (const char *)b.data : "", text);
    buf_free(&b);
    return ok;
}

/* True when the cache holds exactly the n (epoch, start) pairs in want. */
static bool entries_are(const leader_epoch_cache_t *c, const int64_t (*want)[2], int n)
{
    bool ok = lec_count(c) == n;
    for (int i = 0; ok && i < n; i++) {
        int32_t e = -7;
        int64_t s = -7;
        ok = lec_entry(c, i, &e, &s) && e == want[i][0] && s == want[i][1];
    }
    if (!ok) {
        fprintf(stderr, "cache holds %d entries:", lec_count(c));
        for (int i = 0; i < lec_count(c); i++) {
            int32_t e;
            int64_t s;
            lec_entry(c, i, &e, &s);
            fprintf(stderr, " (%d,%lld)", (int)e, (long long)s);
        }
        fprintf(stderr, "\n");
    }
    return ok;
}
#define ENTRIES(c, ...) do { \
        static const int64_t want_[][2] = {__VA_ARGS__}; \
        CHECK(entries_are((c), want_, (int)(sizeof(want_) / sizeof(want_[0])))); \
    } while (0)

static void check_end(const leader_epoch_cache_t *c, int32_t req, int64_t leo, int32_t want_epoch,
                      int64_t want_end, int line)
{
    int32_t e = -99;
    int64_t o = -99;
    lec_end_offset_for(c, req, leo, &e, &o);
    if (e != want_epoch || o != want_end) {
        fprintf(stderr, "line %d: end_offset_for(%d, %lld) = (%d, %lld), expected (%d, %lld)\n",
                line, (int)req, (long long)leo, (int)e, (long long)o, (int)want_epoch,
                (long long)want_end);
        test_checks_failed++;
    }
}
#define END(c, req, leo, we, wo) check_end((c), (req), (leo), (we), (wo), __LINE__)

/* A cache in a fresh directory holding (2,6) (3,8) (4,11). */
static leader_epoch_cache_t *three(const char *name)
{
    leader_epoch_cache_t *c = lec_open(fresh_dir(name));
    CHECK(c != NULL);
    CHECK(lec_assign(c, 2, 6));
    CHECK(lec_assign(c, 3, 8));
    CHECK(lec_assign(c, 4, 11));
    return c;
}

/* ------------------------------------------------------------------ tests */

static void test_missing_and_empty_files(void)
{
    const char *dir = fresh_dir("missing");
    leader_epoch_cache_t *c = lec_open(dir);
    CHECK(c != NULL);
    CHECK_EQ_INT(lec_count(c), 0);
    CHECK_EQ_INT(lec_latest_epoch(c), -1);
    int32_t e = 5;
    int64_t s = 5;
    CHECK(!lec_entry(c, 0, &e, &s));
    CHECK(!lec_entry(c, -1, &e, &s));
    CHECK(e == 5 && s == 5);
    CHECK(!lec_truncate_from_end(c, 0));
    CHECK(!lec_truncate_from_start(c, 10));
    lec_free(c);

    /* Kafka's reader: an empty file, or one holding only the version, is no entries. */
    const char *empties[] = {"", "0\n", "0", "0\n0\n", "0\r\n0\r\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        write_checkpoint(dir, empties[i]);
        c = lec_open(dir);
        CHECK(c != NULL);
        CHECK_EQ_INT(lec_count(c), 0);
        lec_free(c);
    }
    lec_free(NULL);
}

static void test_assign(void)
{
    leader_epoch_cache_t *c = lec_open(fresh_dir("assign"));
    CHECK(lec_assign(c, 2, 6));
    CHECK_EQ_INT(lec_latest_epoch(c), 2);
    /* The same epoch again at the same or a later offset: the first start offset stays. */
    CHECK(!lec_assign(c, 2, 6));
    CHECK(!lec_assign(c, 2, 10));
    ENTRIES(c, {2, 6});
    CHECK(lec_assign(c, 3, 8));
    CHECK(lec_assign(c, 7, 8)); /* a new epoch at the same offset replaces the empty epoch 3 */
    ENTRIES(c, {2, 6}, {7, 8});
    CHECK(lec_assign(c, 9, 20));
    CHECK_EQ_INT(lec_latest_epoch(c), 9);
    CHECK_EQ_INT(lec_count(c), 3);
    /* Negative arguments are refused. */
    CHECK(!lec_assign(c, -1, 30));
    CHECK(!lec_assign(c, 10, -1));
    ENTRIES(c, {2, 6}, {7, 8}, {9, 20});
    /* Many entries (the array grows). */
    for (int i = 0; i < 100; i++)
        CHECK(lec_assign(c, 10 + i, 100 + 10 * i));
    CHECK_EQ_INT(lec_count(c), 103);
    CHECK_EQ_INT(lec_latest_epoch(c), 109);
    lec_free(c);
}

static void test_assign_lower_start_offset(void)
{
    /* A newer epoch starting below the latest start: conflicting entries go first. */
    leader_epoch_cache_t *c = lec_open(fresh_dir("lower1"));
    CHECK(lec_assign(c, 2, 6));
    CHECK(lec_assign(c, 3, 5));
    ENTRIES(c, {3, 5});
    CHECK(lec_assign(c, 4, 10));
    CHECK(lec_assign(c, 5, 20));
    CHECK(lec_assign(c, 6, 30));
    CHECK(lec_assign(c, 8, 20));
    ENTRIES(c, {3, 5}, {4, 10}, {8, 20});
    CHECK(lec_assign(c, 9, 0));
    ENTRIES(c, {9, 0});
    lec_free(c);

    /* The latest epoch again at a lower offset (Kafka: the conflicting suffix is replaced). */
    c = lec_open(fresh_dir("lower2"));
    CHECK(lec_assign(c, 5, 11));
    CHECK(lec_assign(c, 6, 12));
    CHECK(lec_assign(c, 7, 13));
    CHECK(lec_assign(c, 7, 12));
    ENTRIES(c, {5, 11}, {7, 12});
    END(c, 5, 0, 5, 12);
    END(c, 6, 0, 5, 12);
    lec_free(c);

    /* An older epoch at a later offset (Kafka: later epochs are dropped so the cache stays
     * monotonic and follows the log). */
    c = lec_open(fresh_dir("lower3"));
    CHECK(lec_assign(c, 1, 5));
    CHECK(lec_assign(c, 2, 6));
    CHECK(lec_assign(c, 1, 7));
    ENTRIES(c, {1, 7});
    CHECK_EQ_INT(lec_latest_epoch(c), 1);
    END(c, 1, 8, 1, 8);
    END(c, 2, 8, -1, -1);
    lec_free(c);
}

static void test_end_offset_for(void)
{
    leader_epoch_cache_t *c = lec_open(fresh_dir("endoff"));
    /* Empty cache: always undefined. */
    END(c, -1, 50, -1, -1);
    END(c, 0, 50, -1, -1);
    END(c, 7, 50, -1, -1);

    CHECK(lec_assign(c, 0, 10));
    CHECK(lec_assign(c, 2, 13));
    CHECK(lec_assign(c, 4, 17));
    END(c, -1, 50, -1, -1); /* UNDEFINED_EPOCH requested */
    END(c, 0, 50, 0, 13);
    END(c, 1, 50, 0, 13);   /* between epochs: the epoch below, ended by the one above */
    END(c, 2, 50, 2, 17);
    END(c, 3, 50, 2, 17);
    END(c, 4, 50, 4, 50);   /* the latest epoch ends at the log end */
    END(c, 5, 50, -1, -1);  /* newer than anything known */
    END(c, 1000, 50, -1, -1);
    lec_free(c);

    /* Older than the first epoch: the requested epoch, ended by the first entry's start. */
    c = lec_open(fresh_dir("endoff2"));
    CHECK(lec_assign(c, 5, 11));
    CHECK(lec_assign(c, 6, 12));
    CHECK(lec_assign(c, 7, 13));
    END(c, 4, 0, 4, 11);
    END(c, 0, 0, 0, 11);
    END(c, 7, 99, 7, 99);
    lec_free(c);

    /* One entry. */
    c = lec_open(fresh_dir("endoff3"));
    CHECK(lec_assign(c, 2, 100));
    END(c, 2, 150, 2, 150);
    END(c, 3, 100, -1, -1);
    END(c, 1, 150, 1, 100);
    lec_free(c);
}

static void test_truncate_from_end(void)
{
    leader_epoch_cache_t *c = three("end1");
    CHECK(lec_truncate_from_end(c, 8)); /* on an epoch boundary: that epoch goes too */
    ENTRIES(c, {2, 6});
    lec_free(c);

    c = three("end2");
    CHECK(lec_truncate_from_end(c, 9)); /* between boundaries */
    ENTRIES(c, {2, 6}, {3, 8});
    CHECK_EQ_INT(lec_latest_epoch(c), 3);
    lec_free(c);

    c = three("end3");
    CHECK(!lec_truncate_from_end(c, 12)); /* past the last start: nothing */
    CHECK(!lec_truncate_from_end(c, -1)); /* undefined offset: nothing */
    ENTRIES(c, {2, 6}, {3, 8}, {4, 11});
    CHECK(lec_truncate_from_end(c, 11));
    ENTRIES(c, {2, 6}, {3, 8});
    CHECK(lec_truncate_from_end(c, 0));
    CHECK_EQ_INT(lec_count(c), 0);
    CHECK_EQ_INT(lec_latest_epoch(c), -1);
    lec_free(c);
}

static void test_truncate_from_start(void)
{
    leader_epoch_cache_t *c = three("start1");
    CHECK(lec_truncate_from_start(c, 8)); /* on a boundary: that entry is kept as is */
    ENTRIES(c, {3, 8}, {4, 11});
    lec_free(c);

    c = three("start2");
    CHECK(lec_truncate_from_start(c, 9)); /* between boundaries: the covering epoch moves up */
    ENTRIES(c, {3, 9}, {4, 11});
    lec_free(c);

    c = three("start3");
    CHECK(!lec_truncate_from_start(c, 1));  /* before the first entry */
    CHECK(!lec_truncate_from_start(c, 6));  /* exactly the first entry */
    CHECK(!lec_truncate_from_start(c, -1)); /* undefined offset */
    ENTRIES(c, {2, 6}, {3, 8}, {4, 11});
    CHECK(lec_truncate_from_start(c, 7));
    ENTRIES(c, {2, 7}, {3, 8}, {4, 11});
    CHECK(lec_truncate_from_start(c, 11)); /* on the last boundary */
    ENTRIES(c, {4, 11});
    CHECK(lec_truncate_from_start(c, 15)); /* beyond the last start: the last moves up */
    ENTRIES(c, {4, 15});
    CHECK(!lec_truncate_from_start(c, 15));
    /* Appends continue normally afterwards. */
    CHECK(lec_assign(c, 5, 20));
    ENTRIES(c, {4, 15}, {5, 20});
    lec_free(c);

    c = lec_open(fresh_dir("start4"));
    CHECK(lec_assign(c, 0, 0));
    CHECK(lec_assign(c, 1, 7));
    CHECK(lec_assign(c, 2, 10));
    CHECK(lec_truncate_from_start(c, 5));
    ENTRIES(c, {0, 5}, {1, 7}, {2, 10});
    lec_free(c);
}

static void test_flush_and_reload(void)
{
    const char *dir = fresh_dir("flush");
    leader_epoch_cache_t *c = lec_open(dir);
    CHECK(lec_flush(c) == 0);
    CHECK(file_is(dir, "0\n0\n"));
    CHECK(lec_assign(c, 2, 6));
    CHECK(lec_assign(c, 3, 8));
    CHECK(lec_assign(c, 2147483647, 9223372036854775807LL));
    CHECK(lec_flush(c) == 0);
    CHECK(file_is(dir, "0\n3\n2 6\n3 8\n2147483647 9223372036854775807\n"));
    lec_free(c);

    c = lec_open(dir);
    CHECK(c != NULL);
    ENTRIES(c, {2, 6}, {3, 8}, {2147483647, 9223372036854775807LL});
    CHECK(lec_truncate_from_end(c, 9));
    CHECK(lec_truncate_from_start(c, 7));
    CHECK(lec_flush(c) == 0);
    CHECK(file_is(dir, "0\n2\n2 7\n3 8\n"));
    lec_free(c);

    c = lec_open(dir);
    ENTRIES(c, {2, 7}, {3, 8});
    lec_free(c);

    /* No temp file is left behind. */
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, LEC_FILE_NAME);
    CHECK(access(tmp, F_OK) == -1 && errno == ENOENT);

    /* A directory that has gone: -1 with errno. */
    char gone[600];
    snprintf(gone, sizeof(gone), "%s/gone", root);
    CHECK(fs_mkdirs(gone) == 0);
    c = lec_open(gone);
    CHECK(lec_assign(c, 1, 1));
    CHECK(rmdir(gone) == 0);
    errno = 0;
    CHECK(lec_flush(c) == -1);
    CHECK_EQ_INT(errno, ENOENT);
    lec_free(c);
}

static void test_tolerated_files(void)
{
    const char *dir = fresh_dir("tolerated");
    /* No final newline, CRLF line ends, runs of blanks, trailing blanks, a '+' sign. */
    const char *texts[] = {
        "0\n2\n1 5\n3 9",
        "0\r\n2\r\n1 5\r\n3 9\r\n",
        "0\n2\n1  \t 5\n3\t9 \n",
        "+0\n2\n1 +5\n3 9\n",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        write_checkpoint(dir, texts[i]);
        leader_epoch_cache_t *c = lec_open(dir);
        CHECK(c != NULL);
        ENTRIES(c, {1, 5}, {3, 9});
        lec_free(c);
    }

    /* Entries that break monotonicity are applied in order, as Kafka's loader does. */
    write_checkpoint(dir, "0\n3\n1 5\n3 10\n2 12\n");
    leader_epoch_cache_t *c = lec_open(dir);
    ENTRIES(c, {1, 5}, {2, 12});
    lec_free(c);
    write_checkpoint(dir, "0\n3\n1 5\n3 10\n4 7\n");
    c = lec_open(dir);
    ENTRIES(c, {1, 5}, {4, 7});
    lec_free(c);
    write_checkpoint(dir, "0\n2\n1 5\n1 9\n");
    c = lec_open(dir);
    ENTRIES(c, {1, 5});
    lec_free(c);
}

static void test_malformed_files(void)
{
    const char *dir = fresh_dir("malformed");
    const char *texts[] = {
        "1\n0\n",                   /* unknown version */
        "x\n",                      /* not a number */
        "0\nx\n",                   /* bad count */
        "0\n-1\n",                  /* negative count */
        "0\n2\n1 5\n",              /* fewer lines than the count */
        "0\n1\n1 5\n2 6\n",         /* more lines than the count */
        "0\n1\n1\n",                /* one field */
        "0\n1\n1 5 7\n",            /* three fields */
        "0\n1\n 1 5\n",             /* leading blank (Kafka's split gives an empty field) */
        "0\n2\n1 5\n\n",            /* an empty line */
        "0\n1\n-1 5\n",             /* negative epoch */
        "0\n1\n1 -5\n",             /* negative offset */
        "0\n1\n2147483648 5\n",     /* epoch beyond int32 */
        "0\n1\n1 9223372036854775808\n", /* offset beyond int64 */
        "0\n1\n1x 5\n",
        "0\n1\n1 5x\n",
        "0\n1\n1,5\n",
        "\n",
        "garbage that is not a checkpoint",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        write_checkpoint(dir, texts[i]);
        leader_epoch_cache_t *c = lec_open(dir);
        CHECK(c != NULL);
        if (lec_count(c) != 0)
            fprintf(stderr, "malformed file %zu was accepted\n", i);
        CHECK_EQ_INT(lec_count(c), 0);
        CHECK_EQ_INT(lec_latest_epoch(c), -1);
        /* The cache is usable, and a flush replaces the bad file. */
        CHECK(lec_assign(c, 4, 40));
        CHECK(lec_flush(c) == 0);
        CHECK(file_is(dir, "0\n1\n4 40\n"));
        lec_free(c);
    }

    /* Unreadable (the checkpoint path is a directory): logged, empty. */
    const char *d2 = fresh_dir("unreadable");
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", d2, LEC_FILE_NAME);
    CHECK(mkdir(path, 0755) == 0);
    leader_epoch_cache_t *c = lec_open(d2);
    CHECK(c != NULL);
    CHECK_EQ_INT(lec_count(c), 0);
    lec_free(c);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/runnel-lec-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    RUN_TEST(test_missing_and_empty_files);
    RUN_TEST(test_assign);
    RUN_TEST(test_assign_lower_start_offset);
    RUN_TEST(test_end_offset_for);
    RUN_TEST(test_truncate_from_end);
    RUN_TEST(test_truncate_from_start);
    RUN_TEST(test_flush_and_reload);
    RUN_TEST(test_tolerated_files);
    RUN_TEST(test_malformed_files);
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return TEST_REPORT();
}
