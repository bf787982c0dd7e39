// cn_jsonl.h: an append-only log of JSON records, one per line, each
// fsynced before the append returns: the results log of every job.
//
// Opening a log replays it and repairs what a crash can leave at its end:
// a torn last line (no newline) or a zero-filled tail (the file grew but the
// data never reached the disk). Both are cut off, with a warning naming the
// bytes dropped, so the next record starts on a clean line. A complete line
// that is not JSON is skipped with a warning and kept in the file. Replay
// never stops early: a NUL byte in the middle of the file does not hide the
// records after it.
// Thread rule: a cn_jsonl is used by one thread at a time (callers lock).
#ifndef CN_JSONL_H
#define CN_JSONL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/cn_err.h"

typedef struct cn_jsonl cn_jsonl;

// cn_jsonl_replay_fn receives each record in file order; rec is borrowed for
// the call. lineno counts from 1.
typedef void (*cn_jsonl_replay_fn)(const cJSON *rec, size_t lineno, void *arg);

// cn_jsonl_open opens (creating it, and fsyncing its directory, if needed)
// the log at path, repairs its tail, and calls fn for every record already
// in it (fn may be NULL). warn, if not NULL, receives one message per repair
// or skipped line (borrowed for the call).
// Errors: CN_EIO (cannot open, read, truncate), CN_ENOMEM; err names the file.
cn_err cn_jsonl_open(cn_jsonl **out, const char *path, cn_jsonl_replay_fn fn, void *arg,
                     void (*warn)(const char *msg, void *arg), char *err, size_t errlen);

// cn_jsonl_append writes rec as one line and fsyncs it. rec is borrowed.
// Errors: CN_EIO, CN_ENOMEM, CN_ECLOSED (l is NULL).
cn_err cn_jsonl_append(cn_jsonl *l, const cJSON *rec);

// cn_jsonl_write_ns returns the time appends have spent writing and
// syncing (ns, since open): the price of durability, apart from the rest.
uint64_t cn_jsonl_write_ns(const cn_jsonl *l);

// cn_jsonl_records returns the number of records replayed plus appended.
size_t cn_jsonl_records(const cn_jsonl *l);

// cn_jsonl_close closes the log. Accepts NULL.
void cn_jsonl_close(cn_jsonl *l);

#endif
