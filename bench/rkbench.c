/*
 * rkbench.c - the benchmark driver behind bench/run.sh, on librdkafka.
 *
 * One binary, one sub-command per job, so that every broker under test sees
 * the identical client workload and the script only glues steps together:
 *
 *   rkbench mock --brokers N [--topic NAME:PARTS]...   librdkafka's mock cluster in
 *                                                      this process; prints its bootstrap
 *   rkbench create   -b BOOT --topic NAME:PARTS... | --prefix P --topics N --partitions M
 *                    [--replication-factor RF [--brokers N] [--config KEY=VALUE]...]
 *                    (waits for N brokers before, and for every replica in sync after)
 *   rkbench produce  -b BOOT --topic T | --prefix P --topics N, --count --size --acks
 *                    --linger-ms [--rr PARTS] [--pid BROKER_PID] [--timeout-ms MS]
 *   rkbench consume  -b BOOT --topic T --partitions P --count N [--fetch-wait-ms W] [--pid]
 *   rkbench e2e      -b BOOT --topic T --rate R --seconds S --size B --acks A
 *                    --linger-ms L --fetch-wait-ms W [--pid]
 *                    [--dump FILE]  (also reports produce-to-acknowledgement latency,
 *                    ack_*; --dump writes each message's send time and latencies)
 *   rkbench tcp      [--seconds S]                     loopback TCP bandwidth
 *   rkbench disk     --dir D --mb M --block KIB --sync none|end|each
 *   rkbench floor    --dir D [--mb M] [--chunk-kib K] [--record-bytes B] [--passes P]
 *                    kernel-only floor of a persisting broker: loopback TCP
 *                    receive (+ pwrite to the page cache), receiver CPU per record
 *   rkbench freeport                                   prints a free loopback port
 *   rkbench waitport --port P --since-ns T [--timeout-ms MS]
 *                                                      ms from T (CLOCK_REALTIME) to accept
 *
 * Measuring commands print one line "RESULT key=value ..." on stdout; with
 * --pid they also report the CPU the broker process used during the measured
 * window (utime+stime from /proc/<pid>/stat) and its RSS afterwards;
 * --pid P1,P2,P3 (a cluster) sums them over the processes. produce, consume
 * and e2e also report this client process's own CPU over the same window
 * (client_cpu_s, client_cpu_us_per_rec, client_cpu_util = CPU s / wall s).
 * Errors go to stderr and give a non-zero exit status.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 1024

/* ---------------------------------------------------------------- helpers */

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t mono_ns(void)
{
    return now_ns(CLOCK_MONOTONIC);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rkbench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* CPU seconds (user+system) used so far by a process, from /proc/<pid>/stat;
 * -1 when unknown. Fields 14 and 15 counted from 1; the command name in
 * field 2 may hold spaces, so parsing starts after its closing parenthesis. */
static double proc_cpu_s(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    p += 2; /* field 3: state */
    unsigned long long ut = 0, st = 0;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds used so far by all threads of a process, from the first field
 * of /proc/<pid>/task/<tid>/schedstat (nanoseconds on CPU): finer than the
 * 10 ms ticks of /proc/<pid>/stat, which short runs need. -1 when unknown. */
static double proc_sched_s(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    unsigned long long total = 0;
    bool any = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p2[300];
        snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", pid, e->d_name);
        FILE *f = fopen(p2, "r");
        if (f == NULL)
            continue;
        unsigned long long ns = 0;
        if (fscanf(f, "%llu", &ns) == 1) {
            total += ns;
            any = true;
        }
        fclose(f);
    }
    closedir(d);
    return any ? (double)total / 1e9 : -1;
}

/* The broker processes whose CPU and memory a measurement reports: --pid
 * takes one pid or a comma-separated list (a cluster); figures are summed. */
#define MAX_PIDS 8
typedef struct pidset {
    int n;
    int pid[MAX_PIDS];
} pidset_t;

typedef struct cpu_mark {
    double stat_s;
    double sched_s;
    double each_s[MAX_PIDS]; /* schedstat per process */
    double self_s;           /* this client process, all threads (librdkafka's too) */
    int64_t wall_ns;         /* CLOCK_MONOTONIC when the mark was taken */
} cpu_mark_t;

/* CPU seconds (user+system) this process has used, all its threads
 * together, exited ones included: librdkafka does most of the client's work
 * in its own threads. Linux derives the sum from the scheduler's nanosecond
 * runtime, so it is fine-grained enough for short windows. */
static double self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == -1)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static cpu_mark_t cpu_mark(const pidset_t *ps)
{
    cpu_mark_t m = {ps->n ? 0 : -1, ps->n ? 0 : -1, {0}, -1, 0};
    for (int i = 0; i < ps->n; i++) {
        double st = proc_cpu_s(ps->pid[i]), sc = proc_sched_s(ps->pid[i]);
        m.each_s[i] = sc;
        m.stat_s = st < 0 || m.stat_s < 0 ? -1 : m.stat_s + st;
        m.sched_s = sc < 0 || m.sched_s < 0 ? -1 : m.sched_s + sc;
    }
    /* last, so that reading the brokers' /proc files counts for the window */
    m.self_s = self_cpu_s();
    m.wall_ns = mono_ns();
    return m;
}

/* The client's own CPU between two marks: on a machine with few cores the
 * client competes with the broker, and client_cpu_util near 1.0 (one core
 * busy for the whole window) means the client, not the broker, was the
 * limit. */
static void print_client(cpu_mark_t a, cpu_mark_t b, long records)
{
    if (a.self_s < 0 || b.self_s < 0)
        return;
    double cpu = b.self_s - a.self_s, wall = (double)(b.wall_ns - a.wall_ns) / 1e9;
    printf(" client_cpu_s=%.4f", cpu);
    if (records > 0)
        printf(" client_cpu_us_per_rec=%.4f", cpu * 1e6 / (double)records);
    if (wall > 0)
        printf(" client_cpu_util=%.3f", cpu / wall);
}

/* A "Vm...:" line of /proc/<pid>/status in KiB, -1 when unknown. */
static long proc_status_kb(int pid, const char *key)
{
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* Broker CPU between two marks: utime+stime from /proc/<pid>/stat
 * (broker_cpu_s) and the schedstat sum (broker_sched_s); the per-record
 * figure uses the finer of the two that is known. */
static void print_broker(const pidset_t *ps, cpu_mark_t a, cpu_mark_t b, long records)
{
    if (ps->n == 0)
        return;
    double fine = -1;
    if (a.stat_s >= 0 && b.stat_s >= 0) {
        printf(" broker_cpu_s=%.3f", b.stat_s - a.stat_s);
        fine = b.stat_s - a.stat_s;
    }
    if (a.sched_s >= 0 && b.sched_s >= 0) {
        printf(" broker_sched_s=%.4f", b.sched_s - a.sched_s);
        fine = b.sched_s - a.sched_s;
    }
    if (fine >= 0 && records > 0)
        printf(" broker_cpu_us_per_rec=%.4f", fine * 1e6 / (double)records);
    long rss = 0, hwm = 0;
    for (int i = 0; i < ps->n; i++) {
        long r = proc_status_kb(ps->pid[i], "VmRSS"), h = proc_status_kb(ps->pid[i], "VmHWM");
        rss = r < 0 || rss < 0 ? -1 : rss + r;
        hwm = h < 0 || hwm < 0 ? -1 : hwm + h;
    }
    printf(" broker_rss_kb=%ld broker_hwm_kb=%ld", rss, hwm);
    if (ps->n > 1) {
        /* per process, in --pid order (not a number: the summary skips it) */
        printf(" brokers_sched_s=");
        for (int i = 0; i < ps->n; i++)
            printf("%s%.4f", i ? "," : "", b.each_s[i] - a.each_s[i]);
    }
}

/* ---------------------------------------------------------------- options */

typedef struct opts {
    const char *bootstrap;
    const char *topics[MAX_TOPICS];
    int ntopics;
    const char *prefix;
    int prefix_topics;
    int partitions;
    long count;
    int size;
    const char *acks;
    int linger_ms;
    int rr;
    pidset_t pids;
    int replication_factor;
    const char *configs[64]; /* topic configs key=value for create */
    int nconfigs;
    int fetch_wait_ms;
    int rate;
    double seconds;
    int brokers;
    const char *dir;
    long mb;
    long block_kib;
    long chunk_kib;      /* floor: the sender's write size */
    double record_bytes; /* floor: bytes one workload-1 record takes in the log */
    int passes;          /* floor: repetitions, medians reported */
    const char *sync;
    int port;
    int64_t since_ns;
    int timeout_ms;
    double warmup_s;
    const char *dump; /* e2e: per-message times to this file */
} opts_t;

static void parse_opts(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->count = 100000;
    o->size = 100;
    o->acks = "1";
    o->linger_ms = 5;
    o->fetch_wait_ms = 500;
    o->rate = 10000;
    o->seconds = 10;
    o->brokers = 1;
    o->mb = 256;
    o->block_kib = 1024;
    o->chunk_kib = 1024;
    o->record_bytes = 110;
    o->passes = 3;
    o->sync = "end";
    o->timeout_ms = 30000;
    o->partitions = 1;
    o->warmup_s = 1;
    o->replication_factor = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v != NULL && ++i)
        if (OPT("-b") || (v && strcmp(a, "--bootstrap") == 0 && ++i))
            o->bootstrap = v;
        else if (OPT("--topic")) {
            if (o->ntopics == MAX_TOPICS)
                die("too many --topic");
            o->topics[o->ntopics++] = v;
        } else if (OPT("--prefix"))
            o->prefix = v;
        else if (OPT("--topics"))
            o->prefix_topics = atoi(v);
        else if (OPT("--partitions"))
            o->partitions = atoi(v);
        else if (OPT("--count"))
            o->count = atol(v);
        else if (OPT("--size"))
            o->size = atoi(v);
        else if (OPT("--acks"))
            o->acks = v;
        else if (OPT("--linger-ms"))
            o->linger_ms = atoi(v);
        else if (OPT("--rr"))
            o->rr = atoi(v);
        else if (OPT("--pid")) {
            for (const char *q = v; *q;) {
                if (o->pids.n == MAX_PIDS)
                    die("too many pids in --pid");
                char *end;
                long pid = strtol(q, &end, 10);
                if (end == q || pid <= 0)
                    die("bad --pid '%s'", v);
                o->pids.pid[o->pids.n++] = (int)pid;
                q = *end == ',' ? end + 1 : end;
                if (*end != ',' && *end != '\0')
                    die("bad --pid '%s'", v);
            }
        } else if (OPT("--replication-factor"))
            o->replication_factor = atoi(v);
        else if (OPT("--config")) {
            if (o->nconfigs == 64)
                die("too many --config");
            o->configs[o->nconfigs++] = v;
        }
        else if (OPT("--fetch-wait-ms"))
            o->fetch_wait_ms = atoi(v);
        else if (OPT("--rate"))
            o->rate = atoi(v);
        else if (OPT("--seconds"))
            o->seconds = atof(v);
        else if (OPT("--dump"))
            o->dump = v;
        else if (OPT("--warmup-s"))
            o->warmup_s = atof(v);
        else if (OPT("--brokers"))
            o->brokers = atoi(v);
        else if (OPT("--dir"))
            o->dir = v;
        else if (OPT("--mb"))
            o->mb = atol(v);
        else if (OPT("--block"))
            o->block_kib = atol(v);
        else if (OPT("--chunk-kib"))
            o->chunk_kib = atol(v);
        else if (OPT("--record-bytes"))
            o->record_bytes = atof(v);
        else if (OPT("--passes"))
            o->passes = atoi(v);
        else if (OPT("--sync"))
            o->sync = v;
        else if (OPT("--port"))
            o->port = atoi(v);
        else if (OPT("--since-ns"))
            o->since_ns = strtoll(v, NULL, 10);
        else if (OPT("--timeout-ms"))
            o->timeout_ms = atoi(v);
        else
            die("unknown or incomplete option '%s'", a);
#undef OPT
    }
    /* --prefix P --topics N names the topics P0 .. P(N-1) */
    if (o->prefix && o->prefix_topics > 0) {
        for (int t = 0; t < o->prefix_topics; t++) {
            if (o->ntopics == MAX_TOPICS)
                die("too many topics");
            char *name;
            if (asprintf(&name, "%s%d", o->prefix, t) < 0)
                die("out of memory");
            o->topics[o->ntopics++] = name;
        }
    }
}

static rd_kafka_conf_t *base_conf(const opts_t *o)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[512];
    if (o->bootstrap == NULL)
        die("-b BOOTSTRAP is required");
    if (rd_kafka_conf_set(c, "bootstrap.servers", o->bootstrap, err, sizeof err) != RD_KAFKA_CONF_OK)
        die("%s", err);
    return c;
}

static void conf_set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
        die("config %s=%s: %s", k, v, err);
}

/* Splits "name:parts" (parts defaults to def). */
static int topic_spec(const char *spec, char *name, size_t cap, int def)
{
    const char *colon = strrchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    if (n >= cap)
        die("topic name too long");
    memcpy(name, spec, n);
    name[n] = '\0';
    return colon ? atoi(colon + 1) : def;
}

/* ---------------------------------------------------------------- mock */

static int cmd_mock(const opts_t *o)
{
    char err[512];
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* blocked before librdkafka starts threads, so they inherit the mask */
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    rd_kafka_conf_t *c = rd_kafka_conf_new();
    conf_set(c, "log_level", "3");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (rk == NULL)
        die("rd_kafka_new: %s", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, o->brokers);
    if (mc == NULL)
        die("rd_kafka_mock_cluster_new failed");
    for (int i = 0; i < o->ntopics; i++) {
        char name[256];
        int parts = topic_spec(o->topics[i], name, sizeof name, o->partitions);
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, parts, 1);
        if (e)
            die("mock topic %s: %s", name, rd_kafka_err2str(e));
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}

/* ---------------------------------------------------------------- create */

/* Metadata of the whole cluster from any broker, or NULL. */
static const struct rd_kafka_metadata *cluster_metadata(rd_kafka_t *rk)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return md;
}

/* Waits until the cluster lists at least n brokers (all of a cluster's
 * brokers must have registered before a topic with replication factor n can
 * be created). */
static void wait_brokers(rd_kafka_t *rk, int n, int timeout_ms)
{
    int64_t end = mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        const struct rd_kafka_metadata *md = cluster_metadata(rk);
        int have = md ? md->broker_cnt : 0;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (have >= n)
            return;
        if (mono_ns() > end)
            die("only %d of %d brokers in the cluster after %d ms", have, n, timeout_ms);
        usleep(100000);
    }
}

/* Whether every partition of the topic has a leader and rf in-sync replicas. */
static bool topic_full_isr(const struct rd_kafka_metadata *md, const char *name, int parts, int rf)
{
    for (int t = 0; t < md->topic_cnt; t++) {
        const struct rd_kafka_metadata_topic *mt = &md->topics[t];
        if (strcmp(mt->topic, name) != 0)
            continue;
        if (mt->err || mt->partition_cnt < parts)
            return false;
        for (int p = 0; p < mt->partition_cnt; p++) {
            const struct rd_kafka_metadata_partition *mp = &mt->partitions[p];
            if (mp->err || mp->leader < 0 || mp->replica_cnt < rf || mp->isr_cnt < rf)
                return false;
        }
        return true;
    }
    return false;
}

static int cmd_create(const opts_t *o)
{
    char err[512];
    rd_kafka_conf_t *c = base_conf(o);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (rk == NULL)
        die("rd_kafka_new: %s", err);
    if (o->brokers > 1)
        wait_brokers(rk, o->brokers, o->timeout_ms);
    rd_kafka_NewTopic_t **nt = calloc((size_t)o->ntopics, sizeof *nt);
    for (int i = 0; i < o->ntopics; i++) {
        char name[256];
        int parts = topic_spec(o->topics[i], name, sizeof name, o->partitions);
        nt[i] = rd_kafka_NewTopic_new(name, parts, o->replication_factor, err, sizeof err);
        if (nt[i] == NULL)
            die("NewTopic %s: %s", name, err);
        for (int k = 0; k < o->nconfigs; k++) {
            char key[256];
            const char *eq = strchr(o->configs[k], '=');
            if (eq == NULL || (size_t)(eq - o->configs[k]) >= sizeof key)
                die("--config wants key=value, got '%s'", o->configs[k]);
            memcpy(key, o->configs[k], (size_t)(eq - o->configs[k]));
            key[eq - o->configs[k]] = '\0';
            if (rd_kafka_NewTopic_set_config(nt[i], key, eq + 1) != RD_KAFKA_RESP_ERR_NO_ERROR)
                die("--config %s: rejected", o->configs[k]);
        }
    }
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 60000, err, sizeof err);
    rd_kafka_AdminOptions_set_request_timeout(ao, 120000, err, sizeof err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    int64_t t0 = mono_ns();
    rd_kafka_CreateTopics(rk, nt, (size_t)o->ntopics, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 180000);
    if (ev == NULL)
        die("CreateTopics: no answer");
    if (rd_kafka_event_error(ev))
        die("CreateTopics: %s", rd_kafka_event_error_string(ev));
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            fprintf(stderr, "rkbench: create %s: %s\n", rd_kafka_topic_result_name(tr[i]),
                    rd_kafka_topic_result_error_string(tr[i]));
            bad++;
        }
    }
    double create_ms = (double)(mono_ns() - t0) / 1e6;
    /* With replicas: until the metadata shows every partition with a leader
     * and all replicas in sync (followers have fetched). */
    double isr_ms = -1;
    if (o->replication_factor > 1 && bad == 0) {
        int64_t end = mono_ns() + (int64_t)o->timeout_ms * 1000000;
        for (;;) {
            const struct rd_kafka_metadata *md = cluster_metadata(rk);
            bool ok = md != NULL;
            for (int i = 0; ok && i < o->ntopics; i++) {
                char name[256];
                int parts = topic_spec(o->topics[i], name, sizeof name, o->partitions);
                ok = topic_full_isr(md, name, parts, o->replication_factor);
            }
            if (md)
                rd_kafka_metadata_destroy(md);
            if (ok)
                break;
            if (mono_ns() > end) {
                fprintf(stderr, "rkbench: create: replicas not all in sync after %d ms\n", o->timeout_ms);
                bad++;
                break;
            }
            usleep(20000);
        }
        isr_ms = (double)(mono_ns() - t0) / 1e6;
    }
    printf("RESULT topics=%zu create_ms=%.1f", n, create_ms);
    if (isr_ms >= 0)
        printf(" replication_factor=%d in_sync_ms=%.1f", o->replication_factor, isr_ms);
    printf("\n");
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy_array(nt, (size_t)o->ntopics);
    free(nt);
    rd_kafka_destroy(rk);
    return bad ? 1 : 0;
}

/* ---------------------------------------------------------------- produce */

typedef struct dr_state {
    long delivered;
    long failed;
    char first_err[256];
    /* e2e: called for every delivered message (the acknowledgement time) */
    void (*on_ack)(struct dr_state *s, const rd_kafka_message_t *m);
    void *ack_arg;
} dr_state_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    dr_state_t *s = opaque;
    if (m->err) {
        if (s->failed++ == 0)
            snprintf(s->first_err, sizeof s->first_err, "%s", rd_kafka_err2str(m->err));
    } else {
        s->delivered++;
        if (s->on_ack)
            s->on_ack(s, m);
    }
}

static rd_kafka_t *new_producer(const opts_t *o, dr_state_t *dr)
{
    char err[512], v[32];
    rd_kafka_conf_t *c = base_conf(o);
    conf_set(c, "acks", o->acks);
    snprintf(v, sizeof v, "%d", o->linger_ms);
    conf_set(c, "linger.ms", v);
    /* A broker that keeps refusing appends must not stall the bench for
     * librdkafka's default five minutes. */
    snprintf(v, sizeof v, "%d", o->timeout_ms);
    conf_set(c, "message.timeout.ms", v);
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_conf_set_opaque(c, dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (rk == NULL)
        die("rd_kafka_new: %s", err);
    return rk;
}

/* Enqueues one message, waiting for room in the client queue (serving
 * delivery reports meanwhile) rather than failing; other errors (an unknown
 * partition, say) count as failed deliveries. */
static void produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t part, void *payload,
                        size_t len, dr_state_t *dr)
{
    for (;;) {
        if (rd_kafka_produce(rkt, part, 0, payload, len, NULL, 0, NULL) == 0)
            return;
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (dr->failed++ == 0)
                snprintf(dr->first_err, sizeof dr->first_err, "%s [%d]: %s",
                         rd_kafka_topic_name(rkt), (int)part, rd_kafka_err2str(e));
            return;
        }
        rd_kafka_poll(rk, 10);
    }
}

static int cmd_produce(const opts_t *o)
{
    if (o->ntopics == 0)
        die("--topic or --prefix/--topics required");
    dr_state_t dr = {0};
    rd_kafka_t *rk = new_producer(o, &dr);
    rd_kafka_topic_t *rkt[MAX_TOPICS];
    for (int t = 0; t < o->ntopics; t++) {
        char name[256];
        topic_spec(o->topics[t], name, sizeof name, 0);
        rkt[t] = rd_kafka_topic_new(rk, name, NULL);
    }
    /* Payload stays valid until the end, so librdkafka needs no copy. */
    char *payload = malloc((size_t)o->size);
    for (int i = 0; i < o->size; i++)
        payload[i] = (char)('a' + i % 26);

    /* Fetch metadata first so connection setup is not timed. */
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, rkt[0], &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);

    cpu_mark_t cpu0 = cpu_mark(&o->pids);
    int64_t t0 = mono_ns();
    for (long i = 0; i < o->count; i++) {
        int t = (int)(i % o->ntopics);
        int32_t part = RD_KAFKA_PARTITION_UA;
        if (o->rr > 0)
            part = (int32_t)((i / o->ntopics) % o->rr);
        produce_one(rk, rkt[t], part, payload, (size_t)o->size, &dr);
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    rd_kafka_resp_err_t fe = rd_kafka_flush(rk, o->timeout_ms + 10000);
    int64_t t1 = mono_ns();
    cpu_mark_t cpu1 = cpu_mark(&o->pids);
    double secs = (double)(t1 - t0) / 1e9;
    printf("RESULT records=%ld delivered=%ld failed=%ld secs=%.3f rec_per_s=%.0f mb_per_s=%.2f",
           o->count, dr.delivered, dr.failed, secs, (double)dr.delivered / secs,
           (double)dr.delivered * o->size / secs / 1e6);
    print_broker(&o->pids, cpu0, cpu1, dr.delivered);
    print_client(cpu0, cpu1, dr.delivered);
    printf("\n");
    fflush(stdout);
    if (dr.failed)
        fprintf(stderr, "rkbench: %ld deliveries failed, first: %s\n", dr.failed, dr.first_err);
    if (fe)
        fprintf(stderr, "rkbench: flush: %s\n", rd_kafka_err2str(fe));
    for (int t = 0; t < o->ntopics; t++)
        rd_kafka_topic_destroy(rkt[t]);
    rd_kafka_destroy(rk);
    free(payload);
    return (dr.failed || fe || dr.delivered != o->count) ? 1 : 0;
}

/* ---------------------------------------------------------------- consume */

typedef struct cons_state {
    long records;
    long bytes;
    long errors;
    int64_t first_ns;
    int64_t last_ns;
    char first_err[256];
} cons_state_t;

static void on_message(rd_kafka_message_t *m, void *opaque)
{
    cons_state_t *s = opaque;
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            return;
        if (s->errors++ == 0)
            snprintf(s->first_err, sizeof s->first_err, "%s", rd_kafka_message_errstr(m));
        return;
    }
    s->last_ns = mono_ns();
    if (s->records++ == 0)
        s->first_ns = s->last_ns;
    s->bytes += (long)m->len;
}

static rd_kafka_t *new_consumer(const opts_t *o)
{
    char err[512], v[32];
    rd_kafka_conf_t *c = base_conf(o);
    snprintf(v, sizeof v, "%d", o->fetch_wait_ms);
    conf_set(c, "fetch.wait.max.ms", v);
    conf_set(c, "enable.partition.eof", "false");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (rk == NULL)
        die("rd_kafka_new: %s", err);
    return rk;
}

static int cmd_consume(const opts_t *o)
{
    if (o->ntopics != 1)
        die("consume takes one --topic");
    rd_kafka_t *rk = new_consumer(o);
    char name[256];
    int parts = topic_spec(o->topics[0], name, sizeof name, o->partitions);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, name, NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    cons_state_t s = {0};

    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);

    /* --count 0: everything the broker holds now. librdkafka's mock keeps
     * only the newest 5 MiB of each partition, so "from the start" means
     * from its log start offset there. */
    long want = o->count;
    if (want <= 0) {
        want = 0;
        for (int p = 0; p < parts; p++) {
            int64_t lo = 0, hi = 0;
            rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, name, p, &lo, &hi, 10000);
            if (e)
                die("watermarks %s/%d: %s", name, p, rd_kafka_err2str(e));
            want += (long)(hi - lo);
        }
    }

    cpu_mark_t cpu0 = cpu_mark(&o->pids);
    int64_t t0 = mono_ns();
    for (int p = 0; p < parts; p++)
        if (rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING, q) == -1)
            die("consume_start %s/%d: %s", name, p, rd_kafka_err2str(rd_kafka_last_error()));
    int64_t last_progress = mono_ns();
    bool stalled = false;
    while (s.records < want) {
        long before = s.records;
        rd_kafka_consume_callback_queue(q, 100, on_message, &s);
        int64_t now = mono_ns();
        if (s.records != before)
            last_progress = now;
        else if (now - last_progress > (int64_t)o->timeout_ms * 1000000) {
            stalled = true;
            break;
        }
    }
    int64_t t1 = mono_ns();
    cpu_mark_t cpu1 = cpu_mark(&o->pids);
    double secs = (double)(t1 - t0) / 1e9;
    printf("RESULT records=%ld bytes=%ld errors=%ld secs=%.3f first_ms=%.1f rec_per_s=%.0f "
           "mb_per_s=%.2f",
           s.records, s.bytes, s.errors, secs, s.first_ns ? (double)(s.first_ns - t0) / 1e6 : -1.0,
           (double)s.records / secs, (double)s.bytes / secs / 1e6);
    /* From the first record to the last: the delivery rate without the
     * start-up (offset lookup, first fetch round trip). */
    double steady = s.records > 1 ? (double)(s.last_ns - s.first_ns) / 1e9 : 0;
    if (steady > 0)
        printf(" steady_rec_per_s=%.0f steady_mb_per_s=%.2f", (double)(s.records - 1) / steady,
               (double)s.bytes * (double)(s.records - 1) / (double)s.records / steady / 1e6);
    print_broker(&o->pids, cpu0, cpu1, s.records);
    print_client(cpu0, cpu1, s.records);
    printf("\n");
    fflush(stdout);
    if (stalled)
        fprintf(stderr, "rkbench: consume stalled: %ld of %ld records, no progress for %d ms\n",
                s.records, want, o->timeout_ms);
    if (s.errors)
        fprintf(stderr, "rkbench: %ld consume errors, first: %s\n", s.errors, s.first_err);
    for (int p = 0; p < parts; p++)
        rd_kafka_consume_stop(rkt, p);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return stalled ? 1 : 0;
}

/* ---------------------------------------------------------------- e2e latency */

#define E2E_MAGIC 0x52424b4532453031ULL /* "RBKE2E01" */

typedef struct e2e_hdr {
    uint64_t magic;
    int64_t seq; /* -1 for warm-up messages, which are not measured */
    int64_t sent_ns;
} e2e_hdr_t;

typedef struct e2e_state {
    rd_kafka_queue_t *q;
    int64_t *lat_ns; /* indexed by seq */
    int64_t *ack_ns; /* produce to acknowledgement (delivery report), by seq */
    int64_t *sent_ns; /* send times (CLOCK_MONOTONIC), by seq, for --dump */
    long expected;
    long received;
    long dups;
    long errors;
    volatile int stop;
} e2e_state_t;

static void on_e2e(rd_kafka_message_t *m, void *opaque)
{
    e2e_state_t *s = opaque;
    int64_t now = mono_ns();
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            s->errors++;
        return;
    }
    e2e_hdr_t h;
    if (m->len < sizeof h)
        return;
    memcpy(&h, m->payload, sizeof h);
    if (h.magic != E2E_MAGIC || h.seq < 0 || h.seq >= s->expected)
        return;
    if (s->lat_ns[h.seq] >= 0) {
        s->dups++;
        return;
    }
    s->lat_ns[h.seq] = now - h.sent_ns;
    __atomic_store_n(&s->received, s->received + 1, __ATOMIC_RELAXED);
}

/* Delivery reports are served by rd_kafka_poll() on the producing thread. */
static void on_e2e_ack(dr_state_t *dr, const rd_kafka_message_t *m)
{
    e2e_state_t *s = dr->ack_arg;
    int64_t now = mono_ns();
    e2e_hdr_t h;
    if (m->len < sizeof h)
        return;
    memcpy(&h, m->payload, sizeof h);
    if (h.magic != E2E_MAGIC || h.seq < 0 || h.seq >= s->expected)
        return;
    s->ack_ns[h.seq] = now - h.sent_ns;
}

static void *e2e_consumer(void *arg)
{
    e2e_state_t *s = arg;
    while (!s->stop && __atomic_load_n(&s->received, __ATOMIC_RELAXED) < s->expected)
        rd_kafka_consume_callback_queue(s->q, 50, on_e2e, s);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const int64_t *sorted, long n, double p)
{
    if (n == 0)
        return -1;
    long i = (long)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1e6;
}

static void sleep_until(int64_t t_ns)
{
    struct timespec ts = {.tv_sec = t_ns / 1000000000LL, .tv_nsec = t_ns % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int cmd_e2e(const opts_t *o)
{
    if (o->ntopics != 1)
        die("e2e takes one --topic");
    if (o->size < (int)sizeof(e2e_hdr_t))
        die("--size must be at least %zu", sizeof(e2e_hdr_t));
    char name[256];
    int parts = topic_spec(o->topics[0], name, sizeof name, o->partitions);
    e2e_state_t s = {0};
    dr_state_t dr = {0};
    dr.on_ack = on_e2e_ack;
    dr.ack_arg = &s;
    rd_kafka_t *prod = new_producer(o, &dr);
    rd_kafka_t *cons = new_consumer(o);
    rd_kafka_topic_t *pt = rd_kafka_topic_new(prod, name, NULL);
    rd_kafka_topic_t *ct = rd_kafka_topic_new(cons, name, NULL);
    long warm = (long)(o->warmup_s * o->rate);
    s.expected = (long)(o->seconds * o->rate);
    s.lat_ns = malloc((size_t)s.expected * sizeof(int64_t));
    s.ack_ns = malloc((size_t)s.expected * sizeof(int64_t));
    s.sent_ns = calloc((size_t)s.expected, sizeof(int64_t));
    for (long i = 0; i < s.expected; i++)
        s.lat_ns[i] = s.ack_ns[i] = -1;
    s.q = rd_kafka_queue_new(cons);

    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(prod, 0, pt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    /* Start at the end: earlier runs may have left data in the topic. */
    for (int p = 0; p < parts; p++)
        if (rd_kafka_consume_start_queue(ct, p, RD_KAFKA_OFFSET_END, s.q) == -1)
            die("consume_start: %s", rd_kafka_err2str(rd_kafka_last_error()));
    pthread_t th;
    if (pthread_create(&th, NULL, e2e_consumer, &s) != 0)
        die("pthread_create failed");
    /* Give the consumer time to resolve the end offset before anything is sent. */
    usleep(500000);

    char *payload = calloc(1, (size_t)o->size);
    cpu_mark_t cpu0 = {-1, -1, {0}, -1, 0};
    int64_t t0 = mono_ns(), t_warm = t0;
    int64_t step = 1000000000LL / o->rate;
    long total = warm + s.expected;
    for (long i = 0; i < total; i++) {
        if (i == warm) {
            cpu0 = cpu_mark(&o->pids);
            t_warm = mono_ns();
        }
        sleep_until(t0 + i * step);
        e2e_hdr_t h = {.magic = E2E_MAGIC, .seq = i < warm ? -1 : i - warm, .sent_ns = mono_ns()};
        if (h.seq >= 0)
            s.sent_ns[h.seq] = h.sent_ns;
        memcpy(payload, &h, sizeof h);
        /* librdkafka copies: the buffer is rewritten for the next message */
        for (;;) {
            if (rd_kafka_produce(pt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, payload,
                                 (size_t)o->size, NULL, 0, NULL) == 0)
                break;
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_poll(prod, 1);
        }
        rd_kafka_poll(prod, 0);
    }
    int64_t t_sent = mono_ns();
    rd_kafka_flush(prod, 30000);
    /* wait for the consumer: at most 10 s after the last send */
    while (__atomic_load_n(&s.received, __ATOMIC_RELAXED) < s.expected &&
           mono_ns() - t_sent < 10000000000LL)
        usleep(10000);
    cpu_mark_t cpu1 = cpu_mark(&o->pids);
    s.stop = 1;
    pthread_join(th, NULL);

    /* --dump: one line per message, "seq sent_ns ack_ns e2e_ns" (CLOCK_MONOTONIC
     * send time, then latencies; -1 when missing), to line up with traces
     * taken with perf record -k CLOCK_MONOTONIC. */
    if (o->dump) {
        FILE *df = fopen(o->dump, "w");
        if (df == NULL)
            die("--dump %s: %s", o->dump, strerror(errno));
        for (long i = 0; i < s.expected; i++)
            fprintf(df, "%ld %" PRId64 " %" PRId64 " %" PRId64 "\n", i, s.sent_ns[i], s.ack_ns[i], s.lat_ns[i]);
        fclose(df);
    }
    /* Where the time goes: produce to acknowledgement (acks=all: until the
     * high watermark covers the message), and acknowledgement to receipt
     * (the consumer's fetch; negative when the consumer got it first). */
    long na = 0, nd = 0;
    int64_t *diff = malloc((size_t)s.expected * sizeof(int64_t));
    for (long i = 0; i < s.expected; i++) {
        if (s.ack_ns[i] >= 0 && s.lat_ns[i] >= 0)
            diff[nd++] = s.lat_ns[i] - s.ack_ns[i];
        if (s.ack_ns[i] >= 0)
            s.ack_ns[na++] = s.ack_ns[i];
    }
    qsort(s.ack_ns, (size_t)na, sizeof(int64_t), cmp_i64);
    qsort(diff, (size_t)nd, sizeof(int64_t), cmp_i64);
    long n = 0;
    for (long i = 0; i < s.expected; i++)
        if (s.lat_ns[i] >= 0)
            s.lat_ns[n++] = s.lat_ns[i];
    qsort(s.lat_ns, (size_t)n, sizeof(int64_t), cmp_i64);
    double secs = (double)(t_sent - t0) / 1e9;
    /* rec_per_s: measured messages received per second of the measured send window */
    double msecs = (double)(t_sent - t_warm) / 1e9;
    printf("RESULT records=%ld received=%ld lost=%ld dups=%ld failed=%ld rate_sent=%.0f rec_per_s=%.0f "
           "p50_ms=%.3f p90_ms=%.3f p95_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f",
           s.expected, n, s.expected - n, s.dups, dr.failed, (double)total / secs,
           msecs > 0 ? (double)n / msecs : 0.0, pct_ms(s.lat_ns, n, 50), pct_ms(s.lat_ns, n, 90),
           pct_ms(s.lat_ns, n, 95), pct_ms(s.lat_ns, n, 99), pct_ms(s.lat_ns, n, 99.9),
           n ? (double)s.lat_ns[n - 1] / 1e6 : -1.0);
    printf(" ack_p50_ms=%.3f ack_p99_ms=%.3f ack_max_ms=%.3f after_ack_p50_ms=%.3f after_ack_p99_ms=%.3f",
           pct_ms(s.ack_ns, na, 50), pct_ms(s.ack_ns, na, 99), na ? (double)s.ack_ns[na - 1] / 1e6 : -1.0,
           pct_ms(diff, nd, 50), pct_ms(diff, nd, 99));
    print_broker(&o->pids, cpu0, cpu1, n);
    print_client(cpu0, cpu1, n);
    printf("\n");
    fflush(stdout);
    if (n < s.expected)
        fprintf(stderr, "rkbench: e2e: %ld of %ld messages not received\n", s.expected - n,
                s.expected);
    for (int p = 0; p < parts; p++)
        rd_kafka_consume_stop(ct, p);
    rd_kafka_queue_destroy(s.q);
    rd_kafka_topic_destroy(ct);
    rd_kafka_topic_destroy(pt);
    rd_kafka_destroy(cons);
    rd_kafka_destroy(prod);
    free(payload);
    free(s.lat_ns);
    free(s.ack_ns);
    free(s.sent_ns);
    free(diff);
    return n == s.expected && dr.failed == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- machine limits */

static int loopback_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1)
        die("socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == -1 || listen(fd, 16) == -1 ||
        getsockname(fd, (struct sockaddr *)&a, &al) == -1)
        die("bind/listen: %s", strerror(errno));
    *port = ntohs(a.sin_port);
    return fd;
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1)
        die("socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == -1) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* One TCP stream over loopback, writer and reader in two processes (like a
 * client and a broker), 256 KiB writes and reads. */
static int cmd_tcp(const opts_t *o)
{
    int port;
    int lfd = loopback_listener(&port);
    signal(SIGPIPE, SIG_IGN);
    pid_t child = fork();
    if (child == -1)
        die("fork: %s", strerror(errno));
    size_t bs = 256 * 1024;
    char *buf = malloc(bs);
    memset(buf, 'x', bs);
    if (child == 0) {
        close(lfd);
        int fd = connect_port(port);
        if (fd == -1)
            _exit(1);
        for (;;) {
            ssize_t w = write(fd, buf, bs);
            if (w == -1 && errno == EINTR)
                continue;
            if (w <= 0)
                _exit(0);
        }
    }
    int fd;
    while ((fd = accept(lfd, NULL, NULL)) == -1 && errno == EINTR)
        ;
    if (fd == -1)
        die("accept: %s", strerror(errno));
    long long total = 0;
    int64_t t0 = mono_ns(), end = t0 + (int64_t)(o->seconds * 1e9);
    int64_t now = t0;
    while (now < end) {
        ssize_t r = read(fd, buf, bs);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        total += r;
        if ((total & ((1 << 24) - 1)) < r)
            now = mono_ns();
    }
    now = mono_ns();
    close(fd);
    close(lfd);
    waitpid(child, NULL, 0);
    double secs = (double)(now - t0) / 1e9;
    printf("RESULT bytes=%lld secs=%.3f mb_per_s=%.1f\n", total, secs, (double)total / secs / 1e6);
    free(buf);
    return 0;
}

/* Sequential write of --mb MiB in --block KiB writes: --sync none (page
 * cache only), end (one fdatasync at the end, like dd conv=fdatasync) or
 * each (fdatasync after every write, like a flush per request). */
static int cmd_disk(const opts_t *o)
{
    if (o->dir == NULL)
        die("--dir required");
    char path[4096];
    snprintf(path, sizeof path, "%s/rkbench-disk.%d", o->dir, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1)
        die("open %s: %s", path, strerror(errno));
    size_t bs = (size_t)o->block_kib * 1024;
    char *buf = malloc(bs);
    for (size_t i = 0; i < bs; i++)
        buf[i] = (char)(i * 131 + 7);
    long long total = (long long)o->mb * 1024 * 1024, done = 0;
    bool each = strcmp(o->sync, "each") == 0, end = strcmp(o->sync, "end") == 0;
    long syncs = 0;
    int64_t t0 = mono_ns();
    while (done < total) {
        ssize_t w = write(fd, buf, bs);
        if (w == -1 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write: %s", strerror(errno));
        done += w;
        if (each) {
            while (fdatasync(fd) == -1)
                if (errno != EINTR)
                    die("fdatasync: %s", strerror(errno));
            syncs++;
        }
    }
    if (end) {
        while (fdatasync(fd) == -1)
            if (errno != EINTR)
                die("fdatasync: %s", strerror(errno));
        syncs++;
    }
    int64_t t1 = mono_ns();
    close(fd);
    unlink(path);
    double secs = (double)(t1 - t0) / 1e9;
    printf("RESULT bytes=%lld block_kib=%ld sync=%s syncs=%ld secs=%.3f mb_per_s=%.1f "
           "sync_ms=%.3f\n",
           done, o->block_kib, o->sync, syncs, secs, (double)done / secs / 1e6,
           syncs ? secs * 1e3 / (double)syncs : 0.0);
    free(buf);
    return 0;
}

/* The floor: what the kernel alone costs a broker that persists what it
 * receives, without any Kafka parsing. A child process (the client) writes
 * --mb MiB over loopback TCP in --chunk-kib writes; this process reads into
 * one reused 1 MiB buffer (the broker reads request bodies of up to 1 MiB
 * straight into the frame) and, with to_file, pwrite()s every read at the
 * next offset of a file in --dir, like a log append, without sync. Those are
 * the two copies every persisting broker makes (socket to user memory, user
 * memory to page cache). The CPU is this thread's own (the sender is another
 * process), so it is the receiver's share alone. */
typedef struct floor_pass {
    long long bytes;
    long reads;
    double cpu_s;      /* receiving thread */
    double pwrite_s;   /* of which in pwrite (thread CPU around the calls) */
    double secs;       /* wall */
    double send_cpu_s; /* the sending child, from wait4 */
} floor_pass_t;

static double thread_cpu_s(void)
{
    return (double)now_ns(CLOCK_THREAD_CPUTIME_ID) / 1e9;
}

/* The child: connect, write total bytes in chunks, close. */
static void floor_sender(int port, long long total, size_t chunk) __attribute__((noreturn));
static void floor_sender(int port, long long total, size_t chunk)
{
    char *buf = malloc(chunk);
    if (buf == NULL)
        _exit(1);
    memset(buf, 'r', chunk);
    int fd = connect_port(port);
    if (fd == -1)
        _exit(1);
    long long sent = 0;
    while (sent < total) {
        size_t n = total - sent < (long long)chunk ? (size_t)(total - sent) : chunk;
        ssize_t w = write(fd, buf, n);
        if (w == -1 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(1);
        sent += w;
    }
    close(fd);
    _exit(0);
}

/* Appends len bytes at *off; pwrite to the page cache is normally whole. */
static void floor_append(int fd, const char *buf, size_t len, off_t *off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, buf, len, *off);
        if (w == -1 && errno == EINTR)
            continue;
        if (w <= 0)
            die("pwrite: %s", strerror(errno));
        buf += w;
        len -= (size_t)w;
        *off += w;
    }
}

static floor_pass_t floor_run(const opts_t *o, bool to_file)
{
    floor_pass_t r = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/rkbench-floor.%d", o->dir, (int)getpid());
    int file = -1;
    if (to_file && (file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
        die("open %s: %s", path, strerror(errno));
    size_t bs = 1024 * 1024;
    char *buf = malloc(bs);
    if (buf == NULL)
        die("out of memory");
    memset(buf, 0, bs); /* fault the buffer in before the window */
    long long total = (long long)o->mb * 1024 * 1024;
    int port;
    int lfd = loopback_listener(&port);
    /* a sender that cannot connect must not leave accept() waiting forever */
    struct timeval tv = {.tv_sec = 10};
    setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pid_t child = fork();
    if (child == -1)
        die("fork: %s", strerror(errno));
    if (child == 0)
        floor_sender(port, total, (size_t)o->chunk_kib * 1024);
    int fd;
    while ((fd = accept(lfd, NULL, NULL)) == -1 && errno == EINTR)
        ;
    if (fd == -1)
        die("accept: %s", strerror(errno));
    off_t off = 0;
    double c0 = thread_cpu_s();
    int64_t t0 = mono_ns();
    for (;;) {
        ssize_t n = read(fd, buf, bs);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            die("read: %s", strerror(errno));
        if (n == 0)
            break;
        r.bytes += n;
        r.reads++;
        if (to_file) {
            /* a syscall per clock read, ~0.1 µs, against ~100 µs per pwrite */
            double w0 = thread_cpu_s();
            floor_append(file, buf, (size_t)n, &off);
            r.pwrite_s += thread_cpu_s() - w0;
        }
    }
    r.cpu_s = thread_cpu_s() - c0;
    r.secs = (double)(mono_ns() - t0) / 1e9;
    close(fd);
    close(lfd);
    int st = 0;
    struct rusage ru;
    if (wait4(child, &st, 0, &ru) == child)
        r.send_cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || r.bytes != total)
        die("floor: sender failed (%lld of %lld bytes arrived)", r.bytes, total);
    if (to_file) {
        close(file);
        unlink(path);
    }
    free(buf);
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of one field over the passes (sorts a copy). */
static double floor_median(const floor_pass_t *p, int n, size_t field)
{
    double v[64];
    for (int i = 0; i < n; i++)
        memcpy(&v[i], (const char *)&p[i] + field, sizeof(double));
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_floor(const char *name, const floor_pass_t *p, int n, double records)
{
    double cpu = floor_median(p, n, offsetof(floor_pass_t, cpu_s));
    double secs = floor_median(p, n, offsetof(floor_pass_t, secs));
    long long bytes = 0;
    long reads = 0;
    for (int i = 0; i < n; i++) {
        bytes += p[i].bytes;
        reads += p[i].reads;
    }
    printf(" %s_cpu_s=%.4f %s_secs=%.3f %s_mb_per_s=%.1f %s_avg_read_kib=%.1f %s_cpu_us_per_rec=%.4f",
           name, cpu, name, secs, name, secs > 0 ? (double)p[0].bytes / secs / 1e6 : 0.0, name,
           reads ? (double)bytes / (double)reads / 1024 : 0.0, name, cpu * 1e6 / records);
}

/* --passes times: receive only, then receive + pwrite (pwrite_cpu_*: the
 * share of the calls to pwrite in that pass, timed around them); medians
 * over the passes, since single passes of a few hundred ms vary by 2x on a
 * shared VM. The default 256 MiB per pass is about what workload 1 appends
 * (2,000,000 records of ~110 B); much bigger files cost more per byte.
 * Per record = CPU / (bytes / --record-bytes), the bytes a workload-1 record
 * occupies in Runnel's log. */
static int cmd_floor(const opts_t *o)
{
    floor_pass_t ro[64], rw[64];
    int n = o->passes;
    if (o->dir == NULL)
        die("--dir required");
    if (o->mb <= 0 || o->chunk_kib <= 0 || o->record_bytes <= 0 || n < 1 || n > 64)
        die("--mb, --chunk-kib, --record-bytes must be positive, --passes 1-64");
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < n; i++) {
        ro[i] = floor_run(o, false);
        rw[i] = floor_run(o, true);
    }
    double records = (double)rw[0].bytes / o->record_bytes;
    double pw = floor_median(rw, n, offsetof(floor_pass_t, pwrite_s));
    double snd = floor_median(rw, n, offsetof(floor_pass_t, send_cpu_s));
    printf("RESULT bytes=%lld passes=%d chunk_kib=%ld record_bytes=%.1f records_equiv=%.0f",
           rw[0].bytes, n, o->chunk_kib, o->record_bytes, records);
    print_floor("recv_only", ro, n, records);
    print_floor("recv_write", rw, n, records);
    printf(" pwrite_cpu_s=%.4f pwrite_cpu_us_per_rec=%.4f send_cpu_s=%.4f send_cpu_us_per_rec=%.4f\n",
           pw, pw * 1e6 / records, snd, snd * 1e6 / records);
    return 0;
}

static int cmd_freeport(void)
{
    int port;
    int fd = loopback_listener(&port);
    close(fd);
    printf("%d\n", port);
    return 0;
}

/* Polls the port every millisecond until a connection succeeds. */
static int cmd_waitport(const opts_t *o)
{
    if (o->port <= 0)
        die("--port required");
    int64_t start = o->since_ns ? o->since_ns : now_ns(CLOCK_REALTIME);
    int64_t deadline = now_ns(CLOCK_REALTIME) + (int64_t)o->timeout_ms * 1000000;
    for (;;) {
        int fd = connect_port(o->port);
        if (fd != -1) {
            close(fd);
            printf("RESULT ready_ms=%.1f\n", (double)(now_ns(CLOCK_REALTIME) - start) / 1e6);
            return 0;
        }
        if (now_ns(CLOCK_REALTIME) > deadline) {
            fprintf(stderr, "rkbench: port %d not accepting after %d ms\n", o->port, o->timeout_ms);
            return 1;
        }
        usleep(1000);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: rkbench mock|create|produce|consume|e2e|tcp|disk|floor|freeport|waitport "
                        "[options] (see the comment at the top of bench/rkbench.c)\n");
        return 2;
    }
    opts_t o;
    parse_opts(argc - 2, argv + 2, &o);
    const char *cmd = argv[1];
    if (strcmp(cmd, "mock") == 0)
        return cmd_mock(&o);
    if (strcmp(cmd, "create") == 0)
        return cmd_create(&o);
    if (strcmp(cmd, "produce") == 0)
        return cmd_produce(&o);
    if (strcmp(cmd, "consume") == 0)
        return cmd_consume(&o);
    if (strcmp(cmd, "e2e") == 0)
        return cmd_e2e(&o);
    if (strcmp(cmd, "tcp") == 0)
        return cmd_tcp(&o);
    if (strcmp(cmd, "disk") == 0)
        return cmd_disk(&o);
    if (strcmp(cmd, "floor") == 0)
        return cmd_floor(&o);
    if (strcmp(cmd, "freeport") == 0)
        return cmd_freeport();
    if (strcmp(cmd, "waitport") == 0)
        return cmd_waitport(&o);
    die("unknown command '%s'", cmd);
}
