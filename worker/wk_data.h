// wk_data.h: a worker's data sets: fetched from the scheduler's Data
// service by content hash, verified, cached on disk and kept parsed in
// memory for the executors of every slot; or the worker's own files
// (`canopy worker --data DIR`), as a federated client holds its own data.
//
// The cache directory is created private (0700) and refused when another
// user owns it or others may write to it; file names are SHA-256 digests
// only (a hash from the wire is validated first, so "../x" cannot name a
// file); a cached file is hashed again before its first use by this process,
// and a file that does not match is fetched anew; downloads are written to
// a temporary file opened with O_EXCL | O_NOFOLLOW and renamed into place.
// Thread rule: thread-safe; one mutex, held while a set is fetched or
// parsed, so two slots never fetch the same set twice.
#ifndef CANOPY_WK_DATA_H
#define CANOPY_WK_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common/cn_err.h"
#include "ml/ds.h"
#include "proto/rpc.h"

typedef struct wk_data wk_data;

// wk_data_open prepares the cache in cache_dir (created if missing). client
// (borrowed) reaches the scheduler. local_dir may be NULL or "".
// Errors: CN_EIO (cannot create), CN_EAUTH (owned by another user or
// writable by others: err says how to fix it).
cn_err wk_data_open(wk_data **out, const char *cache_dir, const char *local_dir, rpc_client *client,
                    char *err, size_t errlen);

// wk_data_file makes data set sha available on disk and writes its path.
// *fetch_s (may be NULL) receives the seconds spent downloading.
// Errors: CN_EINVAL (not a digest), those of sched_data_fetch, CN_EIO.
cn_err wk_data_file(wk_data *d, const char *sha, char *path, size_t n, double *fetch_s, char *err,
                    size_t errlen);

// wk_data_csv returns the CSV data set sha parsed with label column label
// and the comma-separated columns drop removed, kept in memory for later
// calls. The caller holds a reference: it must not free the set, and gives
// it back with wk_data_release. CN_EBUSY when every kept set is in use.
// *load_s (may be NULL) receives the seconds spent fetching and parsing
// (0 when it was in memory).
cn_err wk_data_csv(wk_data *d, const char *sha, const char *label, const char *drop,
                   const ds_dataset **out, double *load_s, char *err, size_t errlen);

// wk_data_idx returns the IDX images and labels (by hash) as one labelled
// data set of at most max_rows rows (0 = all), kept in memory like
// wk_data_csv.
cn_err wk_data_idx(wk_data *d, const char *images_sha, const char *labels_sha, size_t max_rows,
                   const ds_dataset **out, double *load_s, char *err, size_t errlen);

// wk_data_local returns the worker's own training set from --data DIR:
// DIR/train-images-idx3-ubyte[.gz] and DIR/train-labels-idx1-ubyte[.gz].
// Errors: CN_ENOTFOUND when the worker has no --data, or a file is missing
// (err names the paths looked for); those of idx_load.
cn_err wk_data_local(wk_data *d, size_t max_rows, const ds_dataset **out, char *err, size_t errlen);

// wk_data_release gives back a set from wk_data_csv, wk_data_idx or
// wk_data_local. Accepts NULL.
void wk_data_release(wk_data *d, const ds_dataset *ds);

// wk_data_close frees everything. Accepts NULL.
void wk_data_close(wk_data *d);

#endif
