// cn_file.h: whole-file reads (gzip transparently), atomic writes and
// durable appends: the file operations the results log, checkpoints and data
// loaders share.
#ifndef CN_FILE_H
#define CN_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"

// cn_file_read_all reads path into a new heap buffer, decompressing it if it
// is gzip (detected by magic bytes, not by name). A NUL byte is appended
// after the data (not counted in *len) so text parsers may treat it as a
// string. On success *data is owned by the caller (free()). max_bytes (0 =
// no limit) bounds the decompressed size.
// Errors: CN_ENOTFOUND (no such file), CN_EIO, CN_EFORMAT (corrupt gzip, or
// a gzip stream that ends before its trailer: "f.csv.gz: the file is
// truncated: ..."), CN_ETOOBIG, CN_ENOMEM; err names the file and the
// reason. No data from a corrupt or truncated file is returned.
cn_err cn_file_read_all(const char *path, size_t max_bytes, uint8_t **data, size_t *len, char *err,
                        size_t errlen);

// cn_file_write_atomic replaces path with data: write to "path.tmp", fsync,
// rename over path, fsync the directory. A reader sees the old or the new
// content, never a mix. Errors: CN_EIO with err naming the step.
cn_err cn_file_write_atomic(const char *path, const void *data, size_t len, char *err,
                            size_t errlen);

// cn_file_append_line appends line (which must end in '\n') to the file open
// on fd with one write and fsyncs it. Returns CN_OK or CN_EIO.
cn_err cn_file_append_line(int fd, const char *line, size_t len);

// cn_file_mkdirs creates dir and its parents (like mkdir -p). CN_OK if it
// already exists; CN_EIO otherwise with err set.
cn_err cn_file_mkdirs(const char *dir, char *err, size_t errlen);

// cn_file_sha256_hex writes the lowercase hex SHA-256 of data (65 bytes with
// the NUL) into out. Used for content-addressed data sets and checkpoints.
void cn_file_sha256_hex(const void *data, size_t len, char out[65]);

#endif
