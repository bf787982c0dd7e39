// sched_data.c: the Data service (see sched_data.h).
#include "scheduler/sched_data.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cn_file.h"
#include "common/cn_log.h"
#include "data.pb-c.h"
#include "proto/sched_client.h"

#define MAX_BLOBS 8
#define FETCH_CHUNK_MAX (32u << 20)

typedef struct blob {
    char sha[SCHED_SHA_LEN];
    uint8_t *bytes;
    size_t len;
} blob;

struct sched_data {
    pthread_mutex_t mu;
    char state_dir[1024];
    blob blobs[MAX_BLOBS]; // most recently loaded last
    int nblobs;
};

void sched_data_path(const char *state_dir, const char *sha, char *out, size_t n)
{
    snprintf(out, n, "%s/data/%s", state_dir, sha);
}

bool sched_data_has(const char *state_dir, const char *sha)
{
    if (!sched_sha_valid(sha))
        return false;
    char path[1200];
    sched_data_path(state_dir, sha, path, sizeof path);
    return access(path, R_OK) == 0;
}

// load_blob returns the bytes of data set sha, reading the file on first
// use. Lock held.
static const blob *load_blob(sched_data *d, const char *sha)
{
    for (int i = 0; i < d->nblobs; i++)
        if (strcmp(d->blobs[i].sha, sha) == 0)
            return &d->blobs[i];
    char path[1200];
    sched_data_path(d->state_dir, sha, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    struct stat st;
    uint8_t *bytes = NULL;
    size_t got = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (bytes = malloc((size_t)st.st_size + 1)) != NULL) {
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, bytes + got, (size_t)st.st_size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
    }
    close(fd);
    if (bytes == NULL || got != (size_t)st.st_size) {
        free(bytes);
        return NULL;
    }
    if (d->nblobs == MAX_BLOBS) { // evict the least recently loaded
        free(d->blobs[0].bytes);
        memmove(&d->blobs[0], &d->blobs[1], (MAX_BLOBS - 1) * sizeof(blob));
        d->nblobs--;
    }
    blob *b = &d->blobs[d->nblobs++];
    snprintf(b->sha, sizeof b->sha, "%s", sha);
    b->bytes = bytes;
    b->len = got;
    return b;
}

static void h_has(rpc_call *call, void *arg)
{
    sched_data *d = arg;
    Canopy__Data__HasRequest *req =
        (Canopy__Data__HasRequest *)rpc_call_unpack(call, &canopy__data__has_request__descriptor);
    if (req == NULL)
        return;
    Canopy__Data__HasReply rep = CANOPY__DATA__HAS_REPLY__INIT;
    char path[1200];
    struct stat st;
    if (sched_sha_valid(req->sha256)) {
        sched_data_path(d->state_dir, req->sha256, path, sizeof path);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            rep.present = 1;
            rep.size = (uint64_t)st.st_size;
        }
    }
    canopy__data__has_request__free_unpacked(req, NULL);
    rpc_call_reply(call, &rep.base, NULL, 0);
}

static void h_put(rpc_call *call, void *arg)
{
    sched_data *d = arg;
    size_t len = 0;
    const void *bytes = rpc_call_payload(call, &len);
    Canopy__Data__PutRequest *req =
        (Canopy__Data__PutRequest *)rpc_call_unpack(call, &canopy__data__put_request__descriptor);
    if (req == NULL)
        return;
    char err[CN_ERRBUF_LEN], path[1200], got[SCHED_SHA_LEN];
    Canopy__Data__PutReply rep = CANOPY__DATA__PUT_REPLY__INIT;
    if (!sched_sha_valid(req->sha256)) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT,
                      "Data/Put: \"%.80s\" is not a SHA-256 hex digest (64 lowercase hex digits)",
                      req->sha256);
        goto out;
    }
    if (len > SCHED_DATA_MAX_BYTES) {
        rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED,
                      "Data/Put: %s is %zu bytes; the store takes at most %u", req->name, len,
                      SCHED_DATA_MAX_BYTES);
        goto out;
    }
    sched_data_path(d->state_dir, req->sha256, path, sizeof path);
    if (access(path, R_OK) == 0) {
        rpc_call_reply(call, &rep.base, NULL, 0);
        goto out;
    }
    cn_file_sha256_hex(bytes ? bytes : "", len, got);
    if (strcmp(got, req->sha256) != 0) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT,
                      "Data/Put: the bytes of %s hash to %s, not %s as announced; send it again",
                      req->name, got, req->sha256);
        goto out;
    }
    if (cn_file_write_atomic(path, bytes ? bytes : "", len, err, sizeof err) != CN_OK) {
        rpc_call_fail(call, RPC_INTERNAL, "Data/Put: %s", err);
        goto out;
    }
    CN_INFO("data set %.12s stored (%s, %zu bytes)", req->sha256, req->name, len);
    rep.stored = 1;
    rpc_call_reply(call, &rep.base, NULL, 0);
out:
    canopy__data__put_request__free_unpacked(req, NULL);
}

static void h_fetch(rpc_call *call, void *arg)
{
    sched_data *d = arg;
    Canopy__Data__FetchRequest *req = (Canopy__Data__FetchRequest *)rpc_call_unpack(
        call, &canopy__data__fetch_request__descriptor);
    if (req == NULL)
        return;
    if (!sched_sha_valid(req->sha256)) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT,
                      "Data/Fetch: \"%.80s\" is not a SHA-256 hex digest", req->sha256);
        canopy__data__fetch_request__free_unpacked(req, NULL);
        return;
    }
    pthread_mutex_lock(&d->mu);
    const blob *b = load_blob(d, req->sha256);
    if (b == NULL) {
        rpc_call_fail(call, RPC_NOT_FOUND, "Data/Fetch: no data set %s on the scheduler",
                      req->sha256);
    } else if (req->offset > b->len) {
        rpc_call_fail(call, RPC_OUT_OF_RANGE, "Data/Fetch: offset %" PRIu64 " beyond %zu bytes",
                      req->offset, b->len);
    } else {
        size_t n = b->len - req->offset;
        size_t want = req->length && req->length < FETCH_CHUNK_MAX ? req->length : FETCH_CHUNK_MAX;
        if (n > want)
            n = want;
        Canopy__Data__FetchReply rep = CANOPY__DATA__FETCH_REPLY__INIT;
        rep.total = b->len;
        rpc_call_reply(call, &rep.base, b->bytes + req->offset, n);
    }
    pthread_mutex_unlock(&d->mu);
    canopy__data__fetch_request__free_unpacked(req, NULL);
}

cn_err sched_data_new(sched_data **out, rpc_server *server, const char *state_dir, char *err,
                      size_t errlen)
{
    *out = NULL;
    sched_data *d = calloc(1, sizeof *d);
    if (d == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    pthread_mutex_init(&d->mu, NULL);
    snprintf(d->state_dir, sizeof d->state_dir, "%s", state_dir);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/data", state_dir);
    cn_err e = cn_file_mkdirs(dir, err, errlen);
    if (e == CN_OK && ((e = rpc_server_register(server, "Data", "Has", h_has, d, 0)) != CN_OK ||
                       (e = rpc_server_register(server, "Data", "Put", h_put, d, 0)) != CN_OK ||
                       (e = rpc_server_register(server, "Data", "Fetch", h_fetch, d, 0)) != CN_OK))
        cn_errf(err, errlen, e, "cannot register the Data service");
    if (e != CN_OK) {
        sched_data_free(d);
        return e;
    }
    *out = d;
    return CN_OK;
}

void sched_data_free(sched_data *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < d->nblobs; i++)
        free(d->blobs[i].bytes);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
