/*
 * cli_output.c - output for the runnel tool: tables whose columns line up for people,
 * and a small streaming JSON writer for --format json.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

struct cli_table {
    int ncols;
    char **cells; /* row-major, row 0 is the header */
    size_t nrows, cap;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fputs("runnel: out of memory\n", stderr);
        exit(CLI_FAIL);
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n + 1);
    return d;
}

/* Splits a '\t'-separated line into t->ncols cells of a new row; missing cells are "". */
static void table_push(cli_table_t *t, const char *line)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = xrealloc(t->cells, t->cap * (size_t)t->ncols * sizeof(char *));
    }
    char **row = t->cells + t->nrows * (size_t)t->ncols;
    const char *p = line;
    for (int c = 0; c < t->ncols; c++) {
        const char *e = p ? strchr(p, '\t') : NULL;
        /* the last column takes the rest of the line, tabs included */
        if (c == t->ncols - 1)
            e = NULL;
        if (p == NULL) {
            row[c] = xstrdup("");
        } else {
            size_t n = e ? (size_t)(e - p) : strlen(p);
            row[c] = xrealloc(NULL, n + 1);
            memcpy(row[c], p, n);
            row[c][n] = '\0';
            /* a stray control character would break the alignment */
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)row[c][i] < 0x20)
                    row[c][i] = ' ';
        }
        p = e ? e + 1 : NULL;
    }
    t->nrows++;
}

cli_table_t *cli_table_new(const char *headers)
{
    cli_table_t *t = xrealloc(NULL, sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->ncols = 1;
    for (const char *p = headers; *p; p++)
        if (*p == '\t')
            t->ncols++;
    table_push(t, headers);
    return t;
}

void cli_table_addf(cli_table_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fputs("runnel: out of memory\n", stderr);
        exit(CLI_FAIL);
    }
    table_push(t, line);
    free(line);
}

size_t cli_table_rows(const cli_table_t *t) { return t->nrows - 1; }

/* Display width of a UTF-8 string: code points, which is right for the text we print. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

void cli_table_print(cli_table_t *t, FILE *f)
{
    size_t *width = xrealloc(NULL, (size_t)t->ncols * sizeof(size_t));
    for (int c = 0; c < t->ncols; c++) {
        width[c] = 0;
        for (size_t r = 0; r < t->nrows; r++) {
            size_t w = text_width(t->cells[r * (size_t)t->ncols + (size_t)c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * (size_t)t->ncols + (size_t)c];
            if (c == t->ncols - 1) {
                fputs(cell, f);
            } else {
                fputs(cell, f);
                for (size_t pad = text_width(cell); pad < width[c] + 2; pad++)
                    fputc(' ', f);
            }
        }
        fputc('\n', f);
    }
    free(width);
    cli_table_free(t);
}

void cli_table_free(cli_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

/* ---- JSON ----------------------------------------------------------------------- */

void cli_json_init(cli_json_t *j, FILE *f)
{
    memset(j, 0, sizeof(*j));
    j->f = f;
}

/* Emits the comma a new value needs, unless it follows a key. */
static void json_sep(cli_json_t *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth > 0 && j->need_comma[j->depth])
        fputc(',', j->f);
    if (j->depth > 0)
        j->need_comma[j->depth] = true;
}

static void json_open(cli_json_t *j, char c)
{
    json_sep(j);
    fputc(c, j->f);
    if (j->depth < 63)
        j->depth++;
    j->need_comma[j->depth] = false;
}

static void json_close(cli_json_t *j, char c)
{
    fputc(c, j->f);
    if (j->depth > 0)
        j->depth--;
}

void cli_json_obj(cli_json_t *j) { json_open(j, '{'); }
void cli_json_obj_end(cli_json_t *j) { json_close(j, '}'); }
void cli_json_arr(cli_json_t *j) { json_open(j, '['); }
void cli_json_arr_end(cli_json_t *j) { json_close(j, ']'); }

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    /* overlong forms, surrogates and values past U+10FFFF are not valid UTF-8 */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static void json_write_string(FILE *f, const unsigned char *p, size_t n)
{
    fputc('"', f);
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c == '\n') {
            fputs("\\n", f);
            i++;
        } else if (c == '\t') {
            fputs("\\t", f);
            i++;
        } else if (c == '\r') {
            fputs("\\r", f);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                fprintf(f, "\\u%04x", c);
                i++;
            } else {
                fwrite(p + i, 1, l, f);
                i += l;
            }
        }
    }
    fputc('"', f);
}

void cli_json_key(cli_json_t *j, const char *k)
{
    json_sep(j);
    json_write_string(j->f, (const unsigned char *)k, strlen(k));
    fputc(':', j->f);
    j->after_key = true;
}

void cli_json_strn(cli_json_t *j, const void *p, size_t n)
{
    json_sep(j);
    if (p == NULL)
        fputs("null", j->f);
    else
        json_write_string(j->f, p, n);
}

void cli_json_str(cli_json_t *j, const char *s) { cli_json_strn(j, s, s ? strlen(s) : 0); }

void cli_json_int(cli_json_t *j, int64_t v)
{
    json_sep(j);
    fprintf(j->f, "%lld", (long long)v);
}

void cli_json_double(cli_json_t *j, double v)
{
    json_sep(j);
    /* JSON has no NaN or infinity */
    if (v != v || v > 1e300 || v < -1e300)
        fputs("null", j->f);
    else
        fprintf(j->f, "%.3f", v);
}

void cli_json_bool(cli_json_t *j, bool v)
{
    json_sep(j);
    fputs(v ? "true" : "false", j->f);
}

void cli_json_null(cli_json_t *j)
{
    json_sep(j);
    fputs("null", j->f);
}

void cli_json_kstr(cli_json_t *j, const char *k, const char *s)
{
    cli_json_key(j, k);
    cli_json_str(j, s);
}

void cli_json_kint(cli_json_t *j, const char *k, int64_t v)
{
    cli_json_key(j, k);
    cli_json_int(j, v);
}

void cli_json_kdouble(cli_json_t *j, const char *k, double v)
{
    cli_json_key(j, k);
    cli_json_double(j, v);
}

void cli_json_kbool(cli_json_t *j, const char *k, bool v)
{
    cli_json_key(j, k);
    cli_json_bool(j, v);
}

void cli_json_done(cli_json_t *j)
{
    fputc('\n', j->f);
    fflush(j->f);
}
