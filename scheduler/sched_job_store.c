// sched_job_store.c: the job kernel's store (see sched_job_impl.h): a job's
// directory under state_dir/<kind dir>/<id> with spec.json (as submitted),
// job.json (id, kind, state, data, times; rewritten atomically at each state
// change) and results.jsonl; and the restore of every job at start-up.
#include "scheduler/sched_job_impl.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cn_buf.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "common/cn_log.h"

static bool job_state_parse(const char *s, job_state *out)
{
    for (int i = JOB_QUEUED; i <= JOB_CANCELLED; i++)
        if (s && strcmp(s, job_state_name((job_state)i)) == 0) {
            *out = (job_state)i;
            return true;
        }
    return false;
}

// write_meta rewrites job.json: what the store needs to restore the job.
void sched_job_write_meta(sched_job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "kind", j->kind->name);
    cJSON_AddStringToObject(o, "name", j->name);
    cJSON_AddStringToObject(o, "state", job_state_name(j->state));
    cJSON_AddStringToObject(o, "error", j->error);
    cJSON_AddStringToObject(o, "spec_name", j->spec_name);
    cJSON_AddStringToObject(o, "spec_sha256", j->spec_sha);
    cJSON_AddNumberToObject(o, "created_unix_ms", (double)j->created_unix_ms);
    cJSON_AddNumberToObject(o, "started_unix_ms", (double)j->started_unix_ms);
    cJSON_AddNumberToObject(o, "finished_unix_ms", (double)j->finished_unix_ms);
    cJSON *d = cJSON_AddArrayToObject(o, "data");
    for (size_t i = 0; i < j->n_data; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "role", j->data[i].role);
        cJSON_AddStringToObject(r, "sha256", j->data[i].sha256);
        cJSON_AddNumberToObject(r, "size", (double)j->data[i].size);
        cJSON_AddStringToObject(r, "name", j->data[i].name);
        cJSON_AddItemToArray(d, r);
    }
    sched_job_write_json(j, "job.json", o);
    cJSON_Delete(o);
}

const sched_kind *sched_jobs_find_kind(const sched_jobs *k, const char *name)
{
    for (size_t i = 0; i < k->n_kinds; i++)
        if (strcmp(k->kinds[i]->name, name) == 0)
            return k->kinds[i];
    return NULL;
}

void sched_job_free(sched_job *j)
{
    if (j == NULL)
        return;
    if (j->kind && j->kind->free)
        j->kind->free(j->impl);
    cn_jsonl_close(j->log);
    free(j->data);
    free(j->items);
    free(j->queue);
    free(j);
}

static void warn_log(const char *msg, void *arg)
{
    (void)arg;
    CN_WARN("%s", msg);
}

static void replay_one(const cJSON *rec, size_t lineno, void *arg)
{
    (void)lineno;
    sched_job *j = arg;
    if (j->kind->replay)
        j->kind->replay(j, rec);
}

// spec_digest: what identifies a job's definition (kind, spec, data).
void sched_job_digest(const char *kind, const sched_job_input *in, char out[SCHED_SHA_LEN])
{
    cn_buf b;
    cn_buf_init(&b);
    cn_buf_printf(&b, "%s\n%s", kind, in->spec_json);
    for (size_t i = 0; i < in->n_data; i++)
        cn_buf_printf(&b, "\n%s=%s", in->data[i].role, in->data[i].sha256);
    cn_file_sha256_hex(b.data ? b.data : "", b.len, out);
    cn_buf_fini(&b);
}

// job_new builds a job around impl (taking it) with its directory and
// results log opened and replayed. Not linked into the list.
cn_err sched_job_new(sched_jobs *k, const sched_kind *kind, void *impl, const char *id,
                     const sched_job_input *in, sched_job **out, char *err, size_t errlen)
{
    *out = NULL;
    sched_job *j = calloc(1, sizeof *j);
    sched_data_ref *refs = calloc(in->n_data + 1, sizeof *refs);
    if (j == NULL || refs == NULL) {
        free(j);
        free(refs);
        kind->free(impl);
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    }
    j->k = k;
    j->kind = kind;
    j->impl = impl;
    j->lease_ms = 30000;
    j->retries = 2;
    memcpy(refs, in->data, in->n_data * sizeof *refs);
    j->data = refs;
    j->n_data = in->n_data;
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->dir, sizeof j->dir, "%s/%s/%s", k->state_dir, kind->dir, id);
    snprintf(j->spec_name, sizeof j->spec_name, "%s", in->spec_name ? in->spec_name : "job");
    sched_job_digest(kind->name, in, j->spec_sha);
    const char *dash = strrchr(id, '-');
    snprintf(j->name, sizeof j->name, "%.*s", dash ? (int)(dash - id) : (int)strlen(id), id);
    j->created_unix_ms = cn_wall_ms();
    char path[1600];
    cn_err e = cn_file_mkdirs(j->dir, err, errlen);
    if (e == CN_OK && !in->restoring) {
        snprintf(path, sizeof path, "%s/spec.json", j->dir);
        e = cn_file_write_atomic(path, in->spec_json, strlen(in->spec_json), err, errlen);
    }
    if (e == CN_OK) {
        snprintf(path, sizeof path, "%s/results.jsonl", j->dir);
        e = cn_jsonl_open(&j->log, path, replay_one, j, warn_log, err, errlen);
    }
    if (e != CN_OK) {
        sched_job_free(j);
        return e;
    }
    *out = j;
    return CN_OK;
}

void sched_jobs_link(sched_jobs *k, sched_job *j)
{
    sched_job **tail = &k->jobs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
}

void sched_jobs_unlink(sched_jobs *k, sched_job *j)
{
    for (sched_job **pp = &k->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            return;
        }
}

// set_aside moves a job directory out of the way (a fresh start).
cn_err sched_job_set_aside(const char *dir, char *err, size_t errlen)
{
    char old[1800];
    snprintf(old, sizeof old, "%.1700s.old-%" PRIu64, dir, cn_wall_ms());
    if (rename(dir, old) != 0 && errno != ENOENT)
        return cn_errf(err, errlen, CN_EIO, "cannot move %s aside: %s", dir, strerror(errno));
    CN_INFO("earlier results of %s moved to %s", dir, old);
    return CN_OK;
}

static cn_err read_text(const char *path, char **out, char *err, size_t errlen)
{
    uint8_t *t;
    size_t len;
    cn_err e = cn_file_read_all(path, 16 << 20, &t, &len, err, errlen);
    *out = (char *)t;
    return e;
}

// restore_one brings back the job in dir from job.json, spec.json and its
// results log. Jobs that were running resume at sched_jobs_start.
static void restore_one(sched_jobs *k, const sched_kind *kind, const char *dir)
{
    char path[1700], err[CN_ERRBUF_LEN];
    char *meta_text = NULL, *spec = NULL;
    cJSON *meta = NULL;
    sched_data_ref *refs = NULL;
    void *impl = NULL;
    snprintf(path, sizeof path, "%s/job.json", dir);
    if (access(path, R_OK) != 0)
        return; // not a job directory of this version (or set aside)
    if (read_text(path, &meta_text, err, sizeof err) != CN_OK ||
        (meta = cJSON_Parse(meta_text)) == NULL) {
        CN_WARN("%s: unreadable; job not restored", path);
        goto out;
    }
    snprintf(path, sizeof path, "%s/spec.json", dir);
    if (read_text(path, &spec, err, sizeof err) != CN_OK) {
        CN_WARN("job in %s not restored: %s", dir, err);
        goto out;
    }
    const cJSON *data = cJSON_GetObjectItem(meta, "data");
    size_t n = (size_t)cJSON_GetArraySize(data);
    refs = calloc(n + 1, sizeof *refs);
    if (refs == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const cJSON *r = cJSON_GetArrayItem(data, (int)i);
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItem(r, "role"));
        const char *sha = cJSON_GetStringValue(cJSON_GetObjectItem(r, "sha256"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(r, "name"));
        snprintf(refs[i].role, sizeof refs[i].role, "%s", role ? role : "");
        snprintf(refs[i].sha256, sizeof refs[i].sha256, "%s", sha ? sha : "");
        snprintf(refs[i].name, sizeof refs[i].name, "%s", name ? name : "");
        refs[i].size = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(r, "size"));
    }
    const char *spec_name = cJSON_GetStringValue(cJSON_GetObjectItem(meta, "spec_name"));
    sched_job_input in = {.spec_json = spec,
                          .spec_name = spec_name ? spec_name : "job",
                          .data = refs,
                          .n_data = n,
                          .restoring = true};
    if (kind->create(k, &in, &impl, err, sizeof err) != CN_OK) {
        CN_WARN("job in %s not restored: %s", dir, err);
        goto out;
    }
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(meta, "id"));
    job_state st = JOB_FAILED;
    job_state_parse(cJSON_GetStringValue(cJSON_GetObjectItem(meta, "state")), &st);
    sched_job *j;
    if (id == NULL || sched_job_new(k, kind, impl, id, &in, &j, err, sizeof err) != CN_OK) {
        impl = NULL;
        CN_WARN("job in %s not restored: %s", dir, id ? err : "job.json has no id");
        goto out;
    }
    impl = NULL;
    j->state = st;
    j->restored = true;
    j->created_unix_ms =
        (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(meta, "created_unix_ms"));
    j->started_unix_ms =
        (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(meta, "started_unix_ms"));
    j->finished_unix_ms =
        (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(meta, "finished_unix_ms"));
    const char *error = cJSON_GetStringValue(cJSON_GetObjectItem(meta, "error"));
    snprintf(j->error, sizeof j->error, "%s", error ? error : "");
    sched_jobs_link(k, j);
out:
    if (impl)
        kind->free(impl);
    free(refs);
    free(spec);
    free(meta_text);
    cJSON_Delete(meta);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static cn_err restore_all(sched_jobs *k, const sched_kind *kind, char *err, size_t errlen)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/%s", k->state_dir, kind->dir);
    cn_err e = cn_file_mkdirs(dir, err, errlen);
    if (e != CN_OK)
        return e;
    DIR *d = opendir(dir);
    if (d == NULL)
        return cn_errf(err, errlen, CN_EIO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.' || strstr(ent->d_name, ".old-"))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **v = realloc(names, cap * sizeof *v);
            if (v == NULL)
                break;
            names = v;
        }
        names[n] = strdup(ent->d_name);
        if (names[n])
            n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char path[1500];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        restore_one(k, kind, path);
        free(names[i]);
    }
    free(names);
    return CN_OK;
}

// sort_jobs orders restored jobs by creation time, as they were submitted.
static void sort_jobs(sched_jobs *k)
{
    sched_job *sorted = NULL;
    while (k->jobs) {
        sched_job *j = k->jobs;
        k->jobs = j->next;
        sched_job **pp = &sorted;
        while (*pp && (*pp)->created_unix_ms <= j->created_unix_ms)
            pp = &(*pp)->next;
        j->next = *pp;
        *pp = j;
    }
    k->jobs = sorted;
}

cn_err sched_jobs_restore(sched_jobs *k, char *err, size_t errlen)
{
    cn_err e = CN_OK;
    for (size_t i = 0; i < k->n_kinds && e == CN_OK; i++)
        e = restore_all(k, k->kinds[i], err, errlen);
    sort_jobs(k);
    return e;
}
