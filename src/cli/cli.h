/*
 * cli.h - shared pieces of the `runnel` command-line tool: the command table, argument
 * parsing, client set-up on librdkafka, error reporting and output (aligned tables and
 * JSON).
 *
 * Every subcommand is a cli_cmd_t whose run function gets a parsed cli_ctx_t and returns
 * an exit code: CLI_OK (0), CLI_FAIL (1, the operation failed, including an unreachable
 * broker or a missing topic/group) or CLI_USAGE (2, bad flags). Errors are written as ONE
 * line on stderr, "runnel: <what went wrong>".
 *
 * The tool is single-threaded; librdkafka's own threads only reach our code through the
 * callbacks registered in cli_client_new (log and error callbacks, which only record or,
 * with --verbose, print).
 */
#ifndef RUNNEL_CLI_H
#define RUNNEL_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Option kinds: a flag without value, a value (last one wins), a repeatable value, and
 * a list (every following argument up to the next "--option", as Kafka's perf tools take
 * --producer-props a=1 b=2; stored like repeated CLI_MULTI values). */
enum { CLI_FLAG, CLI_VALUE, CLI_MULTI, CLI_LIST };

typedef struct cli_opt {
    const char *name;    /* long name without the leading "--" */
    int kind;            /* CLI_FLAG, CLI_VALUE or CLI_MULTI */
    const char *metavar; /* shown in --help, e.g. "N" */
    const char *help;
} cli_opt_t;

enum { CLI_FMT_PLAIN, CLI_FMT_JSON };

struct cli_ctx;

typedef struct cli_cmd {
    const char *name;     /* "topic create" */
    const char *summary;  /* one line */
    const char *details;  /* extra paragraphs for --help, or NULL */
    const char *examples; /* lines shown under "Examples:" */
    const cli_opt_t *opts; /* terminated by a zero entry */
    int (*run)(struct cli_ctx *ctx);
} cli_cmd_t;

#define CLI_MAX_ARGS 256

/* One parsed option occurrence. */
typedef struct cli_arg {
    const cli_opt_t *opt;
    const char *value; /* NULL for flags */
} cli_arg_t;

typedef struct cli_ctx {
    const cli_cmd_t *cmd;
    cli_arg_t args[CLI_MAX_ARGS];
    int nargs;
    const char *bootstrap;
    int format;     /* CLI_FMT_* */
    int timeout_ms; /* connect / admin operation timeout */
    bool verbose;
    /* Filled by the client callbacks. */
    volatile int all_brokers_down;
    char last_error[512];
    void *user; /* command-specific state reachable from callbacks */
} cli_ctx_t;

/* ---- commands (one per file) ---------------------------------------------------- */

extern const cli_cmd_t cli_cmd_topic_create, cli_cmd_topic_list, cli_cmd_topic_describe,
    cli_cmd_topic_delete, cli_cmd_topic_alter;
extern const cli_cmd_t cli_cmd_produce;
extern const cli_cmd_t cli_cmd_consume;
extern const cli_cmd_t cli_cmd_group_list, cli_cmd_group_describe, cli_cmd_group_delete,
    cli_cmd_group_reset_offsets;
extern const cli_cmd_t cli_cmd_cluster_info, cli_cmd_config_describe, cli_cmd_config_alter;
extern const cli_cmd_t cli_cmd_perf_produce, cli_cmd_perf_consume;

/* ---- arguments (cli_main.c) ----------------------------------------------------- */

/* Last value of a CLI_VALUE option, or NULL when absent. */
const char *cli_get(const cli_ctx_t *ctx, const char *name);
/* True if the option appeared at least once. */
bool cli_has(const cli_ctx_t *ctx, const char *name);
/* Iterates the values of a CLI_MULTI option: start with *pos = 0; NULL at the end. */
const char *cli_next(const cli_ctx_t *ctx, const char *name, int *pos);
/* Parses an integer option within [min, max]; absent -> def. Returns 0, or -1 after a
 * usage error line. */
int cli_get_int(const cli_ctx_t *ctx, const char *name, int64_t min, int64_t max,
                int64_t def, int64_t *out);
/* Parses a whole decimal integer (optional sign); 0 on success. */
int cli_parse_i64(const char *s, int64_t *out);

/* ---- errors (cli_main.c) -------------------------------------------------------- */

/* "runnel: <msg>" on stderr; returns CLI_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "runnel <cmd>: <msg> (see 'runnel <cmd> --help')" on stderr; returns CLI_USAGE. */
int cli_usage(const cli_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Extra diagnostics with --verbose only. */
void cli_verbose(const cli_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- clients (cli_client.c) ----------------------------------------------------- */

/* A conf with bootstrap.servers, our log/error callbacks (quiet unless --verbose), ctx as
 * opaque and the --command-config properties applied. NULL (after an error line) if a
 * property is rejected. */
rd_kafka_conf_t *cli_conf_new(cli_ctx_t *ctx);
/* Sets one librdkafka property; -1 after an error line naming it. */
int cli_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value);
/* Applies every "k=v" value of the CLI_MULTI option `optname`; -1 after an error line. */
int cli_conf_apply_multi(cli_ctx_t *ctx, rd_kafka_conf_t *conf, const char *optname);
/* Creates the client (takes conf in every case) and checks, within --timeout, that a
 * broker answers. NULL after one error line (unreachable broker, bad config). */
rd_kafka_t *cli_client_new(cli_ctx_t *ctx, rd_kafka_type_t type, rd_kafka_conf_t *conf);
/* Destroys a client without letting its shutdown take longer than a few seconds. */
void cli_client_destroy(rd_kafka_t *rk);
/* Metadata for all topics (never auto-creates). NULL after an error line. */
const rd_kafka_metadata_t *cli_metadata_all(cli_ctx_t *ctx, rd_kafka_t *rk);
/* The topic's entry in md, or NULL. */
const rd_kafka_metadata_topic_t *cli_md_topic(const rd_kafka_metadata_t *md, const char *name);
/* Admin options with the request/operation timeouts from --timeout. */
rd_kafka_AdminOptions_t *cli_admin_options(cli_ctx_t *ctx, rd_kafka_t *rk,
                                           rd_kafka_admin_op_t op);
/* Waits for an admin result of `type` on q; NULL after an error line (timeout, or a
 * request-level error, which is reported with `what`). */
rd_kafka_event_t *cli_admin_wait(cli_ctx_t *ctx, rd_kafka_queue_t *q, rd_kafka_event_type_t type,
                                 const char *what);
/* Wall clock in ms and a monotonic clock in microseconds. */
int64_t cli_now_ms(void);
int64_t cli_mono_us(void);
/* Parses "2024-01-31T10:00:00[.000][Z|+01:00]" (local time without zone) or a number of
 * ms since the epoch. 0 on success. */
int cli_parse_datetime(const char *s, int64_t *ms_out);

/* Config entries read back from DescribeConfigs (cli_config.c). */
typedef struct cli_cfgent {
    char *name;
    char *value; /* NULL for null / sensitive */
    int source;  /* rd_kafka_ConfigSource_t */
    bool read_only, sensitive;
} cli_cfgent_t;

/* Describes one resource's configs. Returns the number of entries (>= 0) in *out (free
 * with cli_cfgents_free), or -1 after an error line. */
int cli_describe_configs(cli_ctx_t *ctx, rd_kafka_t *rk, rd_kafka_ResourceType_t type,
                         const char *name, cli_cfgent_t **out);
void cli_cfgents_free(cli_cfgent_t *e, int n);
/* Incremental change through AlterConfigs: reads the resource's current dynamic
 * overrides, sets `set` (n_set "k=v" strings) and removes `del` (n_del names), then
 * writes the full override set back. dry_run only validates on the broker. Returns
 * CLI_OK or CLI_FAIL/CLI_USAGE after an error line. */
int cli_alter_configs_incremental(cli_ctx_t *ctx, rd_kafka_t *rk, rd_kafka_ResourceType_t type,
                                  const char *name, char **set, int n_set, char **del,
                                  int n_del);

/* ---- output (cli_output.c) ------------------------------------------------------ */

typedef struct cli_table cli_table_t;

/* A table with the given column headers, separated by '\t' in `headers`. */
cli_table_t *cli_table_new(const char *headers);
/* Adds a row: printf-formatted, cells separated by '\t'. */
void cli_table_addf(cli_table_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t cli_table_rows(const cli_table_t *t);
/* Prints the header and rows with aligned columns (two blanks apart), then frees t. */
void cli_table_print(cli_table_t *t, FILE *f);
void cli_table_free(cli_table_t *t);

/* A streaming JSON writer that places commas itself. */
typedef struct cli_json {
    FILE *f;
    int depth;
    bool need_comma[64];
    bool after_key;
} cli_json_t;

void cli_json_init(cli_json_t *j, FILE *f);
void cli_json_obj(cli_json_t *j);
void cli_json_obj_end(cli_json_t *j);
void cli_json_arr(cli_json_t *j);
void cli_json_arr_end(cli_json_t *j);
void cli_json_key(cli_json_t *j, const char *k);
/* Bytes as a JSON string: valid UTF-8 is kept, control characters are escaped and any
 * byte that is not part of valid UTF-8 is written as \u00XX. NULL p writes null. */
void cli_json_strn(cli_json_t *j, const void *p, size_t n);
void cli_json_str(cli_json_t *j, const char *s);
void cli_json_int(cli_json_t *j, int64_t v);
void cli_json_double(cli_json_t *j, double v);
void cli_json_bool(cli_json_t *j, bool v);
void cli_json_null(cli_json_t *j);
/* key + value shorthands */
void cli_json_kstr(cli_json_t *j, const char *k, const char *s);
void cli_json_kint(cli_json_t *j, const char *k, int64_t v);
void cli_json_kdouble(cli_json_t *j, const char *k, double v);
void cli_json_kbool(cli_json_t *j, const char *k, bool v);
/* Ends a top-level value with a newline (after the outermost *_end). */
void cli_json_done(cli_json_t *j);

#endif
