/*
 * properties.h - a reader and writer for Java .properties text, the format of Kafka's
 * server.properties and of Runnel's stored topic overrides.
 *
 * Reading follows java.util.Properties.load:
 *   - a line is ended by \n, \r or \r\n; a line whose first non-blank character is '#' or
 *     '!' is a comment; blank lines are skipped (blanks are space, tab and form feed);
 *   - a line ending in an odd number of backslashes continues on the next line, whose
 *     leading blanks are dropped (a comment line never continues);
 *   - the key ends at the first unescaped '=', ':' or blank; blanks, then at most one
 *     '=' or ':', then blanks separate it from the value, so `a=b`, `a: b` and `a b`
 *     are all key "a", value "b";
 *   - escapes \t \n \r \f and \uXXXX (UTF-16 code units; a surrogate pair makes one
 *     character) are decoded, the result written as UTF-8; a backslash before any
 *     other character yields that character;
 *   - trailing blanks of a value are KEPT, as Java keeps them ("a=b " has value "b ").
 *     Kafka's config layer trims typed values itself (see config.h), so this matters
 *     only to callers that want the raw text.
 * Input is taken as bytes (UTF-8 passes through unchanged) rather than ISO-8859-1.
 * A NUL byte, in the text or from \u0000, is refused: keys and values are C strings.
 */
#ifndef RUNNEL_PROPERTIES_H
#define RUNNEL_PROPERTIES_H

#include <stddef.h>

#include "common/buf.h"

/* Called once per key, in file order; `line` is the 1-based line the entry starts on.
 * The strings are only valid during the call. */
typedef void (*properties_cb)(void *arg, const char *key, const char *value, int line);

/* Parses `len` bytes of `text`. Returns 0, or -1 with a message ("line N: ...") in err
 * on malformed input (bad \u escape, NUL byte). Entries before the error were already
 * reported through cb. */
int properties_parse(const char *text, size_t len, properties_cb cb, void *arg,
                     char *err, size_t errlen);

/* Reads the file (at most 64 MiB) and parses it. -1 with a message naming the path on
 * an I/O error (errno kept) or a parse error. */
int properties_load_file(const char *path, properties_cb cb, void *arg, char *err, size_t errlen);

/* Appends `key=value\n` to out, escaped so that properties_parse gives back the exact
 * strings: '\\', '=', ':', '#', '!', control characters and a leading blank of the
 * value (and any blank of the key) are escaped; other bytes, UTF-8 included, are kept. */
void properties_write_entry(buf_t *out, const char *key, const char *value);

#endif
