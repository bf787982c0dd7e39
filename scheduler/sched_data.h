// sched_data.h: the Data service: the scheduler's content-addressed store of
// data sets, under state_dir/data/<sha256>. Clients put the bytes of a file
// the scheduler lacks (checked against the hash they announce); workers
// fetch a set once, in chunks, and cache it. Every job kind names its data
// by hash, so no worker needs a copy of a data set at any path.
// Thread rule: thread-safe; one mutex guards the in-memory cache of the
// most recently fetched sets.
#ifndef CANOPY_SCHED_DATA_H
#define CANOPY_SCHED_DATA_H

#include <stdbool.h>
#include <stddef.h>

#include "common/cn_err.h"
#include "proto/rpc.h"

#define SCHED_DATA_MAX_BYTES (1024u << 20) // largest data set stored

typedef struct sched_data sched_data;

// sched_data_new registers Data/Has, Data/Put and Data/Fetch on server
// (before it starts) over the store in state_dir/data.
// Errors: CN_EIO (cannot create the directory), CN_EEXIST.
cn_err sched_data_new(sched_data **out, rpc_server *server, const char *state_dir, char *err,
                      size_t errlen);

// sched_data_path writes the stored path of data set sha.
void sched_data_path(const char *state_dir, const char *sha, char *out, size_t n);

// sched_data_has reports whether the store holds sha (a valid digest).
bool sched_data_has(const char *state_dir, const char *sha);

// sched_data_free frees d; call after the server closed. Accepts NULL.
void sched_data_free(sched_data *d);

#endif
