/*
 * cli_main.c - entry point of the `runnel` tool: finds the subcommand, parses its
 * options (Kafka tools' long names, "--name value" or "--name=value"), prints help, and
 * maps the outcome to the exit code (0 ok, 1 operation failed, 2 usage).
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "server/broker.h" /* RUNNEL_VERSION */

static const cli_cmd_t *const commands[] = {
    &cli_cmd_topic_create,   &cli_cmd_topic_list,          &cli_cmd_topic_describe,
    &cli_cmd_topic_delete,   &cli_cmd_topic_alter,         &cli_cmd_produce,
    &cli_cmd_consume,        &cli_cmd_group_list,          &cli_cmd_group_describe,
    &cli_cmd_group_delete,   &cli_cmd_group_reset_offsets, &cli_cmd_cluster_info,
    &cli_cmd_config_describe, &cli_cmd_config_alter,       &cli_cmd_perf_produce,
    &cli_cmd_perf_consume,
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Options every subcommand accepts. */
static const cli_opt_t common_opts[] = {
    {"bootstrap-server", CLI_VALUE, "HOST:PORT",
     "broker(s) to connect to, comma-separated (default: $RUNNEL_BOOTSTRAP_SERVER, else "
     "localhost:9092)"},
    {"format", CLI_VALUE, "plain|json", "output for people (aligned tables) or for scripts"},
    {"timeout", CLI_VALUE, "MS", "how long to wait for the broker and for each operation "
                                 "(default 10000)"},
    {"command-config", CLI_VALUE, "FILE", "librdkafka client properties file (key=value lines)"},
    {"verbose", CLI_FLAG, NULL, "show librdkafka's log and extra diagnostics on stderr"},
    {"help", CLI_FLAG, NULL, "show this help"},
    {0},
};

/* ---- errors --------------------------------------------------------------------- */

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("runnel: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_FAIL;
}

int cli_usage(const cli_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    const char *name = ctx && ctx->cmd ? ctx->cmd->name : NULL;
    fflush(stdout);
    fprintf(stderr, "runnel%s%s: ", name ? " " : "", name ? name : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'runnel%s%s --help')\n", name ? " " : "", name ? name : "");
    return CLI_USAGE;
}

void cli_verbose(const cli_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    if (!ctx->verbose)
        return;
    fputs("runnel: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- argument access ------------------------------------------------------------ */

const char *cli_get(const cli_ctx_t *ctx, const char *name)
{
    for (int i = ctx->nargs - 1; i >= 0; i--)
        if (strcmp(ctx->args[i].opt->name, name) == 0)
            return ctx->args[i].value;
    return NULL;
}

bool cli_has(const cli_ctx_t *ctx, const char *name)
{
    for (int i = 0; i < ctx->nargs; i++)
        if (strcmp(ctx->args[i].opt->name, name) == 0)
            return true;
    return false;
}

const char *cli_next(const cli_ctx_t *ctx, const char *name, int *pos)
{
    for (int i = *pos; i < ctx->nargs; i++) {
        if (strcmp(ctx->args[i].opt->name, name) == 0) {
            *pos = i + 1;
            return ctx->args[i].value;
        }
    }
    *pos = ctx->nargs;
    return NULL;
}

int cli_parse_i64(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int cli_get_int(const cli_ctx_t *ctx, const char *name, int64_t min, int64_t max,
                int64_t def, int64_t *out)
{
    const char *s = cli_get(ctx, name);
    if (s == NULL) {
        *out = def;
        return 0;
    }
    int64_t v;
    if (cli_parse_i64(s, &v) != 0 || v < min || v > max) {
        cli_usage(ctx, "--%s must be an integer from %lld to %lld, not '%s'", name,
                  (long long)min, (long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- help ----------------------------------------------------------------------- */

static void print_opts(FILE *f, const cli_opt_t *opts)
{
    for (const cli_opt_t *o = opts; o->name; o++) {
        char lhs[96];
        snprintf(lhs, sizeof(lhs), "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        if (strlen(lhs) > 28)
            fprintf(f, "  %s\n  %-28s  %s%s\n", lhs, "", o->help,
                    o->kind == CLI_MULTI ? " (repeatable)" : "");
        else
            fprintf(f, "  %-28s  %s%s\n", lhs, o->help, o->kind == CLI_MULTI ? " (repeatable)" : "");
    }
}

static void print_cmd_help(const cli_cmd_t *c, FILE *f)
{
    fprintf(f, "Usage: runnel %s [options]\n\n%s\n", c->name, c->summary);
    if (c->details)
        fprintf(f, "\n%s\n", c->details);
    fprintf(f, "\nOptions:\n");
    print_opts(f, c->opts);
    fprintf(f, "\nCommon options:\n");
    print_opts(f, common_opts);
    if (c->examples)
        fprintf(f, "\nExamples:\n%s\n", c->examples);
    fprintf(f, "\nExit codes: 0 ok, 1 operation failed, 2 usage error.\n");
}

static void print_main_help(FILE *f)
{
    fprintf(f, "Usage: runnel <command> [<subcommand>] [options]\n\n"
               "Command-line tool for Runnel (and any Kafka-compatible broker).\n\n"
               "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-22s  %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "\nEvery command takes --bootstrap-server HOST:PORT (default: "
               "$RUNNEL_BOOTSTRAP_SERVER, else localhost:9092),\n"
               "--format plain|json, --timeout MS, --verbose and --help.\n"
               "Run 'runnel <command> --help' for its options and examples.\n");
}

/* ---- parsing -------------------------------------------------------------------- */

static const cli_opt_t *find_opt(const cli_opt_t *opts, const char *name, size_t len)
{
    for (const cli_opt_t *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

/* Parses argv[i..] into ctx; CLI_OK, or CLI_USAGE after an error line. */
static int parse_args(cli_ctx_t *ctx, int argc, char **argv, int i)
{
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0)
            a = "--help";
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return cli_usage(ctx, "unexpected argument '%s'", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt_t *o = find_opt(ctx->cmd->opts, name, len);
        if (o == NULL)
            o = find_opt(common_opts, name, len);
        if (o == NULL)
            return cli_usage(ctx, "unknown option '--%.*s'", (int)len, name);
        const char *value = NULL;
        if (o->kind == CLI_FLAG) {
            if (eq)
                return cli_usage(ctx, "option --%s takes no value", o->name);
        } else if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return cli_usage(ctx, "option --%s needs a value (%s)", o->name,
                                 o->metavar ? o->metavar : "VALUE");
            value = argv[++i];
        }
        if (o->kind == CLI_LIST) {
            /* the first value was taken above; the rest run up to the next option */
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                if (ctx->nargs >= CLI_MAX_ARGS - 1)
                    return cli_usage(ctx, "too many options");
                ctx->args[ctx->nargs].opt = o;
                ctx->args[ctx->nargs].value = value;
                ctx->nargs++;
                value = argv[++i];
            }
        }
        if (ctx->nargs >= CLI_MAX_ARGS)
            return cli_usage(ctx, "too many options");
        ctx->args[ctx->nargs].opt = o;
        ctx->args[ctx->nargs].value = value;
        ctx->nargs++;
    }
    return CLI_OK;
}

static int setup_common(cli_ctx_t *ctx)
{
    ctx->bootstrap = cli_get(ctx, "bootstrap-server");
    if (ctx->bootstrap == NULL) {
        const char *env = getenv("RUNNEL_BOOTSTRAP_SERVER");
        ctx->bootstrap = env && *env ? env : "localhost:9092";
    }
    if (*ctx->bootstrap == '\0')
        return cli_usage(ctx, "--bootstrap-server is empty");
    const char *fmt = cli_get(ctx, "format");
    if (fmt == NULL || strcmp(fmt, "plain") == 0 || strcmp(fmt, "table") == 0)
        ctx->format = CLI_FMT_PLAIN;
    else if (strcmp(fmt, "json") == 0)
        ctx->format = CLI_FMT_JSON;
    else
        return cli_usage(ctx, "--format must be plain or json, not '%s'", fmt);
    int64_t t;
    if (cli_get_int(ctx, "timeout", 1, 3600000, 10000, &t) != 0)
        return CLI_USAGE;
    ctx->timeout_ms = (int)t;
    ctx->verbose = cli_has(ctx, "verbose");
    return CLI_OK;
}

int main(int argc, char **argv)
{
    static cli_ctx_t ctx;
    if (argc < 2) {
        print_main_help(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_main_help(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("runnel %s (librdkafka %s)\n", RUNNEL_VERSION, rd_kafka_version_str());
        return CLI_OK;
    }
    /* Commands are one word ("produce") or two ("topic create"). */
    const cli_cmd_t *cmd = NULL;
    int first_opt = 2;
    bool group_known = false;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const char *n = commands[i]->name;
        const char *sp = strchr(n, ' ');
        if (sp == NULL) {
            if (strcmp(n, argv[1]) == 0) {
                cmd = commands[i];
                first_opt = 2;
            }
            continue;
        }
        if (strlen(argv[1]) != (size_t)(sp - n) || strncmp(n, argv[1], (size_t)(sp - n)) != 0)
            continue;
        group_known = true;
        if (argc > 2 && strcmp(sp + 1, argv[2]) == 0) {
            cmd = commands[i];
            first_opt = 3;
        }
    }
    if (cmd == NULL) {
        if (group_known) {
            bool help = argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0);
            FILE *f = help ? stdout : stderr;
            if (!help && argc > 2 && argv[2][0] != '-')
                fprintf(stderr, "runnel %s: unknown subcommand '%s'\n", argv[1], argv[2]);
            else if (!help)
                fprintf(stderr, "runnel %s: missing subcommand\n", argv[1]);
            fprintf(f, "Subcommands of 'runnel %s':\n", argv[1]);
            size_t l = strlen(argv[1]);
            for (size_t i = 0; i < NCOMMANDS; i++)
                if (strncmp(commands[i]->name, argv[1], l) == 0 && commands[i]->name[l] == ' ')
                    fprintf(f, "  %-22s  %s\n", commands[i]->name, commands[i]->summary);
            return help ? CLI_OK : CLI_USAGE;
        }
        fprintf(stderr, "runnel: unknown command '%s' (see 'runnel --help')\n", argv[1]);
        return CLI_USAGE;
    }
    ctx.cmd = cmd;
    int rc = parse_args(&ctx, argc, argv, first_opt);
    if (rc != CLI_OK)
        return rc;
    if (cli_has(&ctx, "help")) {
        print_cmd_help(cmd, stdout);
        return CLI_OK;
    }
    rc = setup_common(&ctx);
    if (rc != CLI_OK)
        return rc;
    rc = cmd->run(&ctx);
    fflush(stdout);
    if (ferror(stdout) && rc == CLI_OK)
        rc = cli_fail("error writing output");
    return rc;
}
