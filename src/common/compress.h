/*
 * compress.h - the four Kafka record-batch codecs (gzip, snappy, lz4, zstd)
 * behind one append-to-buffer interface.
 *
 * Wire forms, as Kafka clients write and read them:
 *   gzip    RFC 1952 stream (one or more members).
 *   snappy  the Java client's "xerial" framing: magic 82 53 4E 41 50 50 59 00,
 *           int32 version, int32 compatible version, then blocks of int32
 *           compressed length + raw snappy. Decoding also accepts plain raw
 *           snappy, which librdkafka may send.
 *   lz4     LZ4 frame format.
 *   zstd    zstd frame(s); decoded by streaming, so a frame without a content
 *           size is fine.
 * Decompression is bounded by the caller's max_out so a tiny input that
 * inflates enormously fails instead of exhausting memory.
 */
#ifndef RUNNEL_COMPRESS_H
#define RUNNEL_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Values are the codec bits of a RecordBatch's attributes. */
enum { COMPRESS_NONE = 0, COMPRESS_GZIP = 1, COMPRESS_SNAPPY = 2, COMPRESS_LZ4 = 3, COMPRESS_ZSTD = 4 };

/* Kafka's names: "none" or "uncompressed" -> NONE, "gzip", "snappy", "lz4",
 * "zstd" (exact, lower case, as Kafka's config validator wants); -1 for
 * anything else, "producer" included (that one is the caller's business). */
int compress_codec_from_name(const char *name);
/* "none", "gzip", "snappy", "lz4", "zstd"; "unknown" for any other value. */
const char *compress_codec_name(int codec);

/* Appends the decompressed bytes of `in` to `out`. Returns 0, or -1 on an
 * unknown codec, corrupt or truncated input, out-of-memory, or when the
 * output would exceed max_out bytes; on -1 `out` keeps its original length. */
int compress_decompress(int codec, const uint8_t *in, size_t in_len, buf_t *out, size_t max_out);

/* Appends the compressed form of `in` to `out` (snappy in xerial framing,
 * what Kafka brokers write and every client reads). 0, or -1 (unknown codec,
 * library failure, out-of-memory) with `out` keeping its original length. */
int compress_compress(int codec, const uint8_t *in, size_t in_len, buf_t *out);

#endif
