// wk_data.c: the worker's data cache (see wk_data.h).
#include "worker/wk_data.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "common/cn_log.h"
#include "ml/csv.h"
#include "ml/idx.h"
#include "proto/sched_client.h"

#define MAX_SETS 8
#define MAX_VERIFIED 64
#define MAX_BYTES (1024u << 20)

typedef struct parsed {
    char key[512];
    ds_dataset *ds;
    int refs;         // executors using it
    uint64_t used_ms; // last handed out
} parsed;

struct wk_data {
    pthread_mutex_t mu;
    rpc_client *client;
    char dir[1024];
    char local[1024];
    char verified[MAX_VERIFIED][SCHED_SHA_LEN]; // hashed again by this process
    int n_verified;
    parsed sets[MAX_SETS];
    int n_sets;
    unsigned tmp_seq;
};

// check_private refuses a cache directory that someone else could fill.
static cn_err check_private(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return cn_errf(err, errlen, CN_EIO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cn_errf(err, errlen, CN_EAUTH,
                       "cache %s is not a directory (a link?); choose "
                       "another with --cache-dir",
                       dir);
    if (st.st_uid != geteuid())
        return cn_errf(err, errlen, CN_EAUTH,
                       "cache %s belongs to uid %u, not to this user (%u); choose another with "
                       "--cache-dir",
                       dir, (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return cn_errf(err, errlen, CN_EAUTH,
                       "cache %s is writable by others (mode %03o); `chmod 700 %s` or choose "
                       "another with --cache-dir",
                       dir, (unsigned)(st.st_mode & 0777), dir);
    return CN_OK;
}

cn_err wk_data_open(wk_data **out, const char *cache_dir, const char *local_dir, rpc_client *client,
                    char *err, size_t errlen)
{
    *out = NULL;
    if (mkdir(cache_dir, 0700) != 0 && errno != EEXIST) {
        cn_err e = cn_file_mkdirs(cache_dir, err, errlen);
        if (e != CN_OK)
            return e;
        chmod(cache_dir, 0700);
    }
    cn_err e = check_private(cache_dir, err, errlen);
    if (e != CN_OK)
        return e;
    wk_data *d = calloc(1, sizeof *d);
    if (d == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    pthread_mutex_init(&d->mu, NULL);
    d->client = client;
    snprintf(d->dir, sizeof d->dir, "%s", cache_dir);
    snprintf(d->local, sizeof d->local, "%s", local_dir ? local_dir : "");
    *out = d;
    return CN_OK;
}

static bool is_verified(const wk_data *d, const char *sha)
{
    for (int i = 0; i < d->n_verified; i++)
        if (strcmp(d->verified[i], sha) == 0)
            return true;
    return false;
}

static void mark_verified(wk_data *d, const char *sha)
{
    int slot = d->n_verified < MAX_VERIFIED ? d->n_verified++ : MAX_VERIFIED - 1;
    snprintf(d->verified[slot], sizeof d->verified[slot], "%s", sha);
}

// verify_file hashes the file at path; true when it matches sha.
static bool verify_file(const char *path, const char *sha)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    struct stat st;
    bool ok = false;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size <= MAX_BYTES) {
        uint8_t *b = malloc((size_t)st.st_size + 1);
        size_t got = 0;
        while (b && got < (size_t)st.st_size) {
            ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (b && got == (size_t)st.st_size) {
            char h[SCHED_SHA_LEN];
            cn_file_sha256_hex(b, got, h);
            ok = strcmp(h, sha) == 0;
        }
        free(b);
    }
    close(fd);
    return ok;
}

// store writes bytes to path through a private temporary file.
static cn_err store(wk_data *d, const char *path, const uint8_t *bytes, size_t len, char *err,
                    size_t errlen)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.%d.%u.part", path, (int)getpid(), d->tmp_seq++);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return cn_errf(err, errlen, CN_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, bytes + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            break;
        done += (size_t)w;
    }
    bool ok = done == len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return cn_errf(err, errlen, CN_EIO, "%s: cannot write the cached copy", path);
    }
    return CN_OK;
}

// file_locked is wk_data_file with the lock held.
static cn_err file_locked(wk_data *d, const char *sha, char *path, size_t n, double *fetch_s,
                          char *err, size_t errlen)
{
    if (fetch_s)
        *fetch_s = 0;
    if (!sched_sha_valid(sha))
        return cn_errf(err, errlen, CN_EINVAL, "data set \"%.80s\" is not a SHA-256 digest", sha);
    snprintf(path, n, "%s/%s", d->dir, sha);
    if (is_verified(d, sha))
        return CN_OK;
    if (access(path, R_OK) == 0) {
        if (verify_file(path, sha)) {
            mark_verified(d, sha);
            return CN_OK;
        }
        CN_WARN("cached %s does not match its hash; fetching it again", path);
        unlink(path);
    }
    uint64_t t0 = cn_now_ns();
    CN_INFO("fetching data set %.12s from the scheduler", sha);
    uint8_t *bytes;
    size_t len;
    cn_err e = sched_data_fetch(d->client, sha, MAX_BYTES, &bytes, &len, err, errlen);
    if (e != CN_OK)
        return e;
    e = store(d, path, bytes, len, err, errlen);
    free(bytes);
    if (e == CN_OK)
        mark_verified(d, sha);
    if (fetch_s)
        *fetch_s = (double)(cn_now_ns() - t0) / 1e9;
    return e;
}

cn_err wk_data_file(wk_data *d, const char *sha, char *path, size_t n, double *fetch_s, char *err,
                    size_t errlen)
{
    pthread_mutex_lock(&d->mu);
    cn_err e = file_locked(d, sha, path, n, fetch_s, err, errlen);
    pthread_mutex_unlock(&d->mu);
    return e;
}

// find_set returns a kept set and takes a reference to it. Lock held.
static const ds_dataset *find_set(wk_data *d, const char *key)
{
    for (int i = 0; i < d->n_sets; i++)
        if (strcmp(d->sets[i].key, key) == 0) {
            d->sets[i].refs++;
            d->sets[i].used_ms = cn_now_ms();
            return d->sets[i].ds;
        }
    return NULL;
}

// keep_set remembers a parsed set, referenced once by the caller; when the
// table is full the least recently used set no executor holds is freed.
// Returns false (the caller keeps ds) if every kept set is in use. Lock held.
static bool keep_set(wk_data *d, const char *key, ds_dataset *ds)
{
    if (d->n_sets == MAX_SETS) {
        int victim = -1;
        for (int i = 0; i < d->n_sets; i++)
            if (d->sets[i].refs == 0 &&
                (victim < 0 || d->sets[i].used_ms < d->sets[victim].used_ms))
                victim = i;
        if (victim < 0)
            return false;
        ds_dataset_free(d->sets[victim].ds);
        d->sets[victim] = d->sets[--d->n_sets];
    }
    parsed *p = &d->sets[d->n_sets++];
    snprintf(p->key, sizeof p->key, "%s", key);
    p->ds = ds;
    p->refs = 1;
    p->used_ms = cn_now_ms();
    return true;
}

void wk_data_release(wk_data *d, const ds_dataset *ds)
{
    if (d == NULL || ds == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->n_sets; i++)
        if (d->sets[i].ds == ds && d->sets[i].refs > 0)
            d->sets[i].refs--;
    pthread_mutex_unlock(&d->mu);
}

// keep_or_fail keeps a freshly parsed set or frees it with an error.
static cn_err keep_or_fail(wk_data *d, const char *key, ds_dataset *ds, const ds_dataset **out,
                           char *err, size_t errlen)
{
    if (!keep_set(d, key, ds)) {
        ds_dataset_free(ds);
        return cn_errf(err, errlen, CN_EBUSY, "%d data sets are in use on this worker at once",
                       MAX_SETS);
    }
    *out = ds;
    return CN_OK;
}

cn_err wk_data_csv(wk_data *d, const char *sha, const char *label, const char *drop,
                   const ds_dataset **out, double *load_s, char *err, size_t errlen)
{
    char key[512];
    snprintf(key, sizeof key, "csv|%s|%s|%s", sha, label, drop);
    pthread_mutex_lock(&d->mu);
    uint64_t t0 = cn_now_ns();
    *out = find_set(d, key);
    if (load_s)
        *load_s = 0;
    cn_err e = CN_OK;
    if (*out == NULL) {
        char path[1200];
        e = file_locked(d, sha, path, sizeof path, NULL, err, errlen);
        ds_dataset *ds = NULL;
        csv_options o = csv_options_default();
        o.label_mode = CSV_LABEL_NAME;
        o.label_name = label;
        o.drop_columns = drop;
        if (e == CN_OK)
            e = ds_load_csv(path, &o, &ds, err, errlen);
        if (e == CN_OK)
            e = keep_or_fail(d, key, ds, out, err, errlen);
        if (e == CN_OK) {
            if (load_s)
                *load_s = (double)(cn_now_ns() - t0) / 1e9;
            CN_INFO("data set %.12s loaded: %zu rows x %zu features, %d classes", sha, ds->n_rows,
                    ds->n_features, ds->n_classes);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return e;
}

cn_err wk_data_idx(wk_data *d, const char *images_sha, const char *labels_sha, size_t max_rows,
                   const ds_dataset **out, double *load_s, char *err, size_t errlen)
{
    char key[512];
    snprintf(key, sizeof key, "idx|%s|%s|%zu", images_sha, labels_sha, max_rows);
    pthread_mutex_lock(&d->mu);
    uint64_t t0 = cn_now_ns();
    *out = find_set(d, key);
    if (load_s)
        *load_s = 0;
    cn_err e = CN_OK;
    if (*out == NULL) {
        char ip[1200], lp[1200];
        e = file_locked(d, images_sha, ip, sizeof ip, NULL, err, errlen);
        if (e == CN_OK)
            e = file_locked(d, labels_sha, lp, sizeof lp, NULL, err, errlen);
        ds_dataset *ds = NULL;
        if (e == CN_OK)
            e = idx_load(ip, lp, max_rows, &ds, err, errlen);
        if (e == CN_OK)
            e = keep_or_fail(d, key, ds, out, err, errlen);
        if (e == CN_OK) {
            if (load_s)
                *load_s = (double)(cn_now_ns() - t0) / 1e9;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return e;
}

// local_file finds DIR/base or DIR/base.gz.
static bool local_file(const char *dir, const char *base, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", dir, base);
    if (access(out, R_OK) == 0)
        return true;
    snprintf(out, n, "%s/%s.gz", dir, base);
    return access(out, R_OK) == 0;
}

cn_err wk_data_local(wk_data *d, size_t max_rows, const ds_dataset **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!d->local[0])
        return cn_errf(err, errlen, CN_ENOTFOUND,
                       "the job trains on each worker's own data, but this worker was started "
                       "without --data DIR");
    char ip[1200], lp[1200], key[512];
    if (!local_file(d->local, "train-images-idx3-ubyte", ip, sizeof ip) ||
        !local_file(d->local, "train-labels-idx1-ubyte", lp, sizeof lp))
        return cn_errf(err, errlen, CN_ENOTFOUND,
                       "--data %s: expected train-images-idx3-ubyte[.gz] and "
                       "train-labels-idx1-ubyte[.gz] there",
                       d->local);
    snprintf(key, sizeof key, "local|%zu", max_rows);
    pthread_mutex_lock(&d->mu);
    *out = find_set(d, key);
    cn_err e = CN_OK;
    if (*out == NULL) {
        ds_dataset *ds = NULL;
        e = idx_load(ip, lp, max_rows, &ds, err, errlen);
        if (e == CN_OK)
            e = keep_or_fail(d, key, ds, out, err, errlen);
    }
    pthread_mutex_unlock(&d->mu);
    return e;
}

void wk_data_close(wk_data *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < d->n_sets; i++)
        ds_dataset_free(d->sets[i].ds);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
