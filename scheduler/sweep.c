// sweep.c: the Sweep service (see sweep.h).
#include "scheduler/sweep.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cn_buf.h"
#include "common/cn_clock.h"
#include "common/cn_file.h"
#include "common/cn_log.h"
#include "ml/csv.h"
#include "scheduler/sweep_spec.h"
#include "sweep.pb-c.h"

#define MAX_BLOBS 8
#define MAX_DATA_BYTES (1024u << 20)
#define FETCH_CHUNK_MAX (32u << 20)

typedef enum { U_PENDING, U_RUNNING, U_DONE, U_FAILED } unit_state;

typedef struct unit {
    unit_state state;
    uint32_t attempt;    // attempts started so far
    uint64_t node;       // worker running it
    uint64_t started_ms; // monotonic
    double acc, bacc, f1, fit_s, pred_s;
    char *error; // last failure
} unit;

typedef struct sweep {
    char id[192];
    char dir[1400];
    sweep_spec *spec;
    char data_sha[65];
    uint64_t data_size;
    unit *units; // (n_trials * folds), index = trial * folds + fold
    size_t n_units;
    size_t *queue; // ring of pending unit indices
    size_t q_head, q_len, q_cap;
    size_t n_done, n_failed, n_running, n_replayed;
    int log_fd;
    uint64_t started_ms, finished_ms; // monotonic
    double overhead_ms_sum;           // scheduler time spent per unit (dispatch + record)
    size_t overhead_n;
    int finished;
    struct sweep *next;
} sweep;

typedef struct waiter {
    rpc_call *call;
    uint64_t node;
    uint64_t deadline_ms;
} waiter;

typedef struct blob {
    char sha[65];
    uint8_t *bytes;
    size_t len;
} blob;

struct sweep_svc {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sched_members *members;
    char state_dir[1024];
    sweep *sweeps; // oldest first
    waiter *waiters;
    size_t nw, wcap;
    blob blobs[MAX_BLOBS];
    int nblobs;
    int stopping;
    pthread_t ticker;
};

// ------------------------------------------------------------ helpers

static void queue_push(sweep *w, size_t u)
{
    if (w->q_len == w->q_cap) {
        size_t cap = w->q_cap ? w->q_cap * 2 : 64;
        size_t *nq = malloc(cap * sizeof *nq);
        CN_ASSERT(nq != NULL);
        for (size_t i = 0; i < w->q_len; i++)
            nq[i] = w->queue[(w->q_head + i) % w->q_cap];
        free(w->queue);
        w->queue = nq;
        w->q_head = 0;
        w->q_cap = cap;
    }
    w->queue[(w->q_head + w->q_len) % w->q_cap] = u;
    w->q_len++;
}

static int queue_pop(sweep *w, size_t *u)
{
    while (w->q_len > 0) {
        *u = w->queue[w->q_head];
        w->q_head = (w->q_head + 1) % w->q_cap;
        w->q_len--;
        if (w->units[*u].state == U_PENDING)
            return 1;
    }
    return 0;
}

static void sweep_free(sweep *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_units; i++)
        free(w->units[i].error);
    free(w->units);
    free(w->queue);
    if (w->log_fd >= 0)
        close(w->log_fd);
    sweep_spec_free(w->spec);
    free(w);
}

static sweep *find_sweep(sweep_svc *s, const char *id)
{
    for (sweep *w = s->sweeps; w; w = w->next)
        if (strcmp(w->id, id) == 0)
            return w;
    return NULL;
}

static void data_path(const sweep_svc *s, const char *sha, char *out, size_t n)
{
    snprintf(out, n, "%s/data/%s", s->state_dir, sha);
}

static int valid_sha(const char *sha)
{
    if (strlen(sha) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((sha[i] >= '0' && sha[i] <= '9') || (sha[i] >= 'a' && sha[i] <= 'f')))
            return 0;
    return 1;
}

// ------------------------------------------------------------ summaries

typedef struct trial_stat {
    uint32_t folds_done;
    double mean, std, bacc, f1, seconds;
    int failed;
    const char *error;
} trial_stat;

static void trial_stats(const sweep *w, size_t t, trial_stat *ts)
{
    memset(ts, 0, sizeof *ts);
    uint32_t k = w->spec->folds;
    double sum = 0, sq = 0;
    for (uint32_t f = 0; f < k; f++) {
        const unit *u = &w->units[t * k + f];
        if (u->state == U_DONE) {
            ts->folds_done++;
            sum += u->acc;
            sq += u->acc * u->acc;
            ts->bacc += u->bacc;
            ts->f1 += u->f1;
            ts->seconds += u->fit_s + u->pred_s;
        } else if (u->state == U_FAILED) {
            ts->failed = 1;
            ts->error = u->error;
        }
    }
    if (ts->folds_done) {
        double n = ts->folds_done;
        ts->mean = sum / n;
        double var = sq / n - ts->mean * ts->mean;
        ts->std = var > 0 ? sqrt(var) : 0;
        ts->bacc /= n;
        ts->f1 /= n;
    }
}

static void csv_escape(cn_buf *b, const char *s)
{
    cn_buf_append(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"')
            cn_buf_append(b, "\"", 1);
        cn_buf_append(b, s, 1);
    }
    cn_buf_append(b, "\"", 1);
}

// write_summaries writes trials.csv, best.json and summary.json into the
// sweep's directory (atomically). Called with the lock held when the sweep
// finishes.
static void write_summaries(sweep_svc *s, sweep *w)
{
    (void)s;
    cn_buf csv;
    cn_buf_init(&csv);
    cn_buf_printf(&csv, "trial,params,folds_done,mean_accuracy,std_accuracy,"
                        "mean_balanced_accuracy,mean_macro_f1,seconds,failed\n");
    size_t best = 0;
    double best_acc = -1;
    for (size_t t = 0; t < w->spec->n_trials; t++) {
        trial_stat ts;
        trial_stats(w, t, &ts);
        cn_buf_printf(&csv, "%zu,", t);
        csv_escape(&csv, w->spec->trials[t]);
        cn_buf_printf(&csv, ",%u,%.6f,%.6f,%.6f,%.6f,%.3f,%d\n", ts.folds_done, ts.mean, ts.std,
                      ts.bacc, ts.f1, ts.seconds, ts.failed);
        if (!ts.failed && ts.folds_done == w->spec->folds && ts.mean > best_acc) {
            best_acc = ts.mean;
            best = t;
        }
    }
    char path[1500], err[CN_ERRBUF_LEN];
    snprintf(path, sizeof path, "%s/trials.csv", w->dir);
    if (cn_file_write_atomic(path, csv.data, csv.len, err, sizeof err) != CN_OK)
        CN_ERROR("sweep %s: %s", w->id, err);
    cn_buf_fini(&csv);

    trial_stat def, bst;
    trial_stats(w, 0, &def);
    trial_stats(w, best, &bst);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddNumberToObject(b, "trial", (double)best);
    cJSON_AddItemToObject(b, "params", cJSON_Parse(w->spec->trials[best]));
    cJSON_AddNumberToObject(b, "mean_accuracy", bst.mean);
    cJSON_AddNumberToObject(b, "std_accuracy", bst.std);
    char *text = cJSON_Print(b);
    snprintf(path, sizeof path, "%s/best.json", w->dir);
    if (text && cn_file_write_atomic(path, text, strlen(text), err, sizeof err) != CN_OK)
        CN_ERROR("sweep %s: %s", w->id, err);
    free(text);
    cJSON_Delete(b);

    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "sweep_id", w->id);
    cJSON_AddStringToObject(m, "name", w->spec->name);
    cJSON_AddStringToObject(m, "data_sha256", w->data_sha);
    cJSON_AddNumberToObject(m, "folds", w->spec->folds);
    cJSON_AddBoolToObject(m, "shuffle", w->spec->shuffle);
    cJSON_AddNumberToObject(m, "trials", (double)w->spec->n_trials);
    cJSON_AddNumberToObject(m, "units", (double)w->n_units);
    cJSON_AddNumberToObject(m, "units_done", (double)w->n_done);
    cJSON_AddNumberToObject(m, "units_failed", (double)w->n_failed);
    cJSON_AddNumberToObject(m, "units_replayed", (double)w->n_replayed);
    cJSON_AddNumberToObject(m, "elapsed_seconds",
                            (double)(w->finished_ms - w->started_ms) / 1000.0);
    cJSON_AddNumberToObject(m, "workers_alive",
                            (double)sched_members_count(s->members, CLUSTER_ROLE_WORKER));
    cJSON_AddNumberToObject(m, "dispatch_overhead_ms",
                            w->overhead_n ? w->overhead_ms_sum / (double)w->overhead_n : 0);
    cJSON *d = cJSON_AddObjectToObject(m, "default");
    cJSON_AddItemToObject(d, "params", cJSON_Parse(w->spec->trials[0]));
    cJSON_AddNumberToObject(d, "mean_accuracy", def.mean);
    cJSON_AddNumberToObject(d, "std_accuracy", def.std);
    cJSON *bb = cJSON_AddObjectToObject(m, "best");
    cJSON_AddNumberToObject(bb, "trial", (double)best);
    cJSON_AddItemToObject(bb, "params", cJSON_Parse(w->spec->trials[best]));
    cJSON_AddNumberToObject(bb, "mean_accuracy", bst.mean);
    cJSON_AddNumberToObject(bb, "std_accuracy", bst.std);
    text = cJSON_Print(m);
    snprintf(path, sizeof path, "%s/summary.json", w->dir);
    if (text && cn_file_write_atomic(path, text, strlen(text), err, sizeof err) != CN_OK)
        CN_ERROR("sweep %s: %s", w->id, err);
    free(text);
    cJSON_Delete(m);
}

static void check_finished(sweep_svc *s, sweep *w)
{
    if (w->finished || w->n_done + w->n_failed < w->n_units)
        return;
    w->finished = 1;
    w->finished_ms = cn_now_ms();
    write_summaries(s, w);
    CN_INFO("sweep %s finished: %zu units done, %zu failed, %.1f s", w->id, w->n_done, w->n_failed,
            (double)(w->finished_ms - w->started_ms) / 1000.0);
}

// ------------------------------------------------------------ dispatch

// requeue_unit puts unit u back in the queue, or fails it when its retries
// are used up. Lock held.
static void requeue_unit(sweep_svc *s, sweep *w, size_t u, const char *why)
{
    unit *x = &w->units[u];
    if (x->state == U_RUNNING)
        w->n_running--;
    x->node = 0;
    uint32_t k = w->spec->folds;
    if (x->attempt > w->spec->retries) {
        x->state = U_FAILED;
        w->n_failed++;
        CN_WARN("sweep %s trial %zu fold %zu failed after %u attempts: %s", w->id, u / k, u % k,
                x->attempt, why);
        if (!x->error)
            x->error = strdup(why);
        check_finished(s, w);
        return;
    }
    x->state = U_PENDING;
    queue_push(w, u);
    CN_INFO("sweep %s trial %zu fold %zu re-queued (attempt %u): %s", w->id, u / k, u % k,
            x->attempt, why);
}

// pick_unit finds the next pending unit across sweeps, oldest sweep first,
// respecting each sweep's max_concurrent. Lock held.
static int pick_unit(sweep_svc *s, sweep **ws, size_t *u)
{
    for (sweep *w = s->sweeps; w; w = w->next) {
        if (w->finished)
            continue;
        if (w->spec->max_concurrent && w->n_running >= w->spec->max_concurrent)
            continue;
        if (queue_pop(w, u)) {
            *ws = w;
            return 1;
        }
    }
    return 0;
}

// reply_unit marks unit u running on node and answers call with it.
static void reply_unit(sweep *w, size_t u, uint64_t node, rpc_call *call, uint64_t t0_ns)
{
    unit *x = &w->units[u];
    x->state = U_RUNNING;
    x->attempt++;
    x->node = node;
    x->started_ms = cn_now_ms();
    w->n_running++;
    uint32_t k = w->spec->folds;
    Canopy__Sweep__Unit un = CANOPY__SWEEP__UNIT__INIT;
    un.sweep_id = w->id;
    un.trial = (uint32_t)(u / k);
    un.fold = (uint32_t)(u % k);
    un.folds = k;
    un.cv_seed = w->spec->cv_seed;
    un.shuffle = w->spec->shuffle;
    un.params_json = w->spec->trials[u / k];
    un.data_sha256 = w->data_sha;
    un.data_size = w->data_size;
    un.label = w->spec->label;
    un.drop = w->spec->drop;
    un.attempt = x->attempt;
    un.timeout_s = w->spec->unit_timeout_s;
    Canopy__Sweep__GetWorkReply rep = CANOPY__SWEEP__GET_WORK_REPLY__INIT;
    rep.has_work = 1;
    rep.unit = &un;
    w->overhead_ms_sum += (double)(cn_now_ns() - t0_ns) / 1e6;
    rpc_call_reply(call, &rep.base, NULL, 0);
}

// serve_waiters hands pending units to held long-polls. Lock held.
static void serve_waiters(sweep_svc *s)
{
    size_t i = 0;
    while (i < s->nw) {
        if (!sched_members_is_alive(s->members, s->waiters[i].node)) {
            i++;
            continue;
        }
        sweep *w;
        size_t u;
        if (!pick_unit(s, &w, &u))
            return;
        waiter wt = s->waiters[i];
        s->waiters[i] = s->waiters[--s->nw];
        reply_unit(w, u, wt.node, wt.call, cn_now_ns());
    }
}

static void reply_no_work(rpc_call *call, int shutdown)
{
    Canopy__Sweep__GetWorkReply rep = CANOPY__SWEEP__GET_WORK_REPLY__INIT;
    rep.shutdown = shutdown;
    rpc_call_reply(call, &rep.base, NULL, 0);
}

static void h_get_work(rpc_call *call, void *arg)
{
    sweep_svc *s = arg;
    uint64_t t0 = cn_now_ns();
    Canopy__Sweep__GetWorkRequest *req = (Canopy__Sweep__GetWorkRequest *)rpc_call_unpack(
        call, &canopy__sweep__get_work_request__descriptor);
    if (req == NULL)
        return;
    uint64_t node = req->node_id;
    uint32_t wait_ms = req->wait_ms > 30000 ? 30000 : req->wait_ms;
    canopy__sweep__get_work_request__free_unpacked(req, NULL);
    if (!sched_members_is_alive(s->members, node)) {
        rpc_call_fail(call, RPC_FAILED_PRECONDITION,
                      "GetWork: node %016" PRIx64 " is not a registered worker; register first",
                      node);
        return;
    }
    pthread_mutex_lock(&s->mu);
    sweep *w;
    size_t u;
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        reply_no_work(call, 1);
        return;
    }
    if (pick_unit(s, &w, &u)) {
        reply_unit(w, u, node, call, t0);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (wait_ms == 0) {
        pthread_mutex_unlock(&s->mu);
        reply_no_work(call, 0);
        return;
    }
    if (s->nw == s->wcap) {
        size_t cap = s->wcap ? s->wcap * 2 : 16;
        waiter *nwv = realloc(s->waiters, cap * sizeof *nwv);
        if (nwv == NULL) {
            pthread_mutex_unlock(&s->mu);
            reply_no_work(call, 0);
            return;
        }
        s->waiters = nwv;
        s->wcap = cap;
    }
    // Keep a margin so the reply arrives before the caller's own deadline.
    int64_t left = rpc_call_remaining_ms(call) - 200;
    uint64_t hold = left < (int64_t)wait_ms ? (uint64_t)(left > 0 ? left : 0) : wait_ms;
    s->waiters[s->nw++] = (waiter){call, node, cn_now_ms() + hold};
    pthread_mutex_unlock(&s->mu);
}

// ------------------------------------------------------------ results log

static cn_err append_record(sweep *w, const Canopy__Sweep__UnitResult *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "trial", r->trial);
    cJSON_AddNumberToObject(o, "fold", r->fold);
    cJSON_AddNumberToObject(o, "attempt", r->attempt);
    cJSON_AddBoolToObject(o, "ok", r->ok);
    if (!r->ok)
        cJSON_AddStringToObject(o, "error", r->error ? r->error : "");
    cJSON_AddNumberToObject(o, "accuracy", r->accuracy);
    cJSON_AddNumberToObject(o, "balanced_accuracy", r->balanced_accuracy);
    cJSON_AddNumberToObject(o, "macro_f1", r->macro_f1);
    cJSON_AddNumberToObject(o, "fit_seconds", r->fit_seconds);
    cJSON_AddNumberToObject(o, "predict_seconds", r->predict_seconds);
    cJSON_AddNumberToObject(o, "n_train", r->n_train);
    cJSON_AddNumberToObject(o, "n_test", r->n_test);
    char node[17];
    snprintf(node, sizeof node, "%016" PRIx64, r->node_id);
    cJSON_AddStringToObject(o, "node", node);
    cJSON_AddStringToObject(o, "worker", r->worker_name ? r->worker_name : "");
    cJSON *cm = cJSON_AddArrayToObject(o, "confusion");
    for (size_t i = 0; i < r->n_confusion; i++)
        cJSON_AddItemToArray(cm, cJSON_CreateNumber((double)r->confusion[i]));
    cJSON_AddNumberToObject(o, "time_ms", (double)cn_wall_ms());
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text == NULL)
        return CN_ENOMEM;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (line == NULL) {
        free(text);
        return CN_ENOMEM;
    }
    line[n] = '\n';
    line[n + 1] = 0;
    cn_err e = cn_file_append_line(w->log_fd, line, n + 1);
    free(line);
    return e;
}

// replay_log marks the units recorded in an earlier run as done. A torn last
// line (a crash mid-write) is skipped with a warning.
static void replay_log(sweep *w)
{
    char path[1500], err[CN_ERRBUF_LEN];
    snprintf(path, sizeof path, "%s/results.jsonl", w->dir);
    uint8_t *text;
    size_t len;
    if (cn_file_read_all(path, 0, &text, &len, err, sizeof err) != CN_OK)
        return;
    uint32_t k = w->spec->folds;
    size_t lineno = 0;
    for (char *line = (char *)text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        lineno++;
        cJSON *o = cJSON_Parse(line);
        if (o == NULL) {
            CN_WARN("%s:%zu: unreadable record skipped (torn write?)", path, lineno);
            continue;
        }
        const cJSON *t = cJSON_GetObjectItem(o, "trial"), *f = cJSON_GetObjectItem(o, "fold"),
                    *ok = cJSON_GetObjectItem(o, "ok");
        if (cJSON_IsNumber(t) && cJSON_IsNumber(f) && cJSON_IsTrue(ok) && t->valuedouble >= 0 &&
            (size_t)t->valuedouble < w->spec->n_trials && f->valuedouble >= 0 &&
            f->valuedouble < k) {
            unit *x = &w->units[(size_t)t->valuedouble * k + (size_t)f->valuedouble];
            if (x->state != U_DONE) {
                x->state = U_DONE;
                x->acc = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "accuracy"));
                x->bacc = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "balanced_accuracy"));
                x->f1 = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "macro_f1"));
                x->fit_s = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "fit_seconds"));
                x->pred_s = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "predict_seconds"));
                w->n_done++;
                w->n_replayed++;
            }
        }
        cJSON_Delete(o);
    }
    free(text);
}

static void h_report(rpc_call *call, void *arg)
{
    sweep_svc *s = arg;
    uint64_t t0 = cn_now_ns();
    Canopy__Sweep__UnitResult *r =
        (Canopy__Sweep__UnitResult *)rpc_call_unpack(call, &canopy__sweep__unit_result__descriptor);
    if (r == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    sweep *w = find_sweep(s, r->sweep_id);
    Canopy__Sweep__ReportReply rep = CANOPY__SWEEP__REPORT_REPLY__INIT;
    if (w == NULL || r->trial >= w->spec->n_trials || r->fold >= w->spec->folds) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_fail(call, RPC_NOT_FOUND, "Report: no unit %s trial %u fold %u", r->sweep_id,
                      r->trial, r->fold);
        canopy__sweep__unit_result__free_unpacked(r, NULL);
        return;
    }
    size_t u = (size_t)r->trial * w->spec->folds + r->fold;
    unit *x = &w->units[u];
    if (x->state == U_DONE || x->state == U_FAILED) {
        rep.duplicate = 1; // another attempt got there first: recorded once
    } else if (r->ok) {
        cn_err e = append_record(w, r);
        if (e != CN_OK) {
            pthread_mutex_unlock(&s->mu);
            rpc_call_fail(call, RPC_INTERNAL, "Report: cannot write the results log: %s",
                          cn_strerror(e));
            canopy__sweep__unit_result__free_unpacked(r, NULL);
            return;
        }
        if (x->state == U_RUNNING)
            w->n_running--;
        x->state = U_DONE;
        x->node = 0;
        x->acc = r->accuracy;
        x->bacc = r->balanced_accuracy;
        x->f1 = r->macro_f1;
        x->fit_s = r->fit_seconds;
        x->pred_s = r->predict_seconds;
        w->n_done++;
        rep.recorded = 1;
        w->overhead_ms_sum += (double)(cn_now_ns() - t0) / 1e6;
        w->overhead_n++;
        check_finished(s, w);
    } else if (x->state == U_RUNNING && x->node == r->node_id) {
        free(x->error);
        x->error = strdup(r->error ? r->error : "failed");
        append_record(w, r);
        requeue_unit(s, w, u, r->error ? r->error : "failed");
        serve_waiters(s);
    }
    pthread_mutex_unlock(&s->mu);
    canopy__sweep__unit_result__free_unpacked(r, NULL);
    rpc_call_reply(call, &rep.base, NULL, 0);
}

// ------------------------------------------------------------ data

// load_blob returns the cached bytes of data set sha, reading them from the
// state dir on first use. Lock held.
static const blob *load_blob(sweep_svc *s, const char *sha)
{
    for (int i = 0; i < s->nblobs; i++)
        if (strcmp(s->blobs[i].sha, sha) == 0)
            return &s->blobs[i];
    char path[1200], err[CN_ERRBUF_LEN];
    data_path(s, sha, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    uint8_t *bytes = NULL;
    if (fstat(fd, &st) == 0 && (bytes = malloc((size_t)st.st_size + 1)) != NULL) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, bytes + got, (size_t)st.st_size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != (size_t)st.st_size) {
            free(bytes);
            bytes = NULL;
        }
    }
    close(fd);
    (void)err;
    if (bytes == NULL)
        return NULL;
    if (s->nblobs == MAX_BLOBS) { // evict the oldest
        free(s->blobs[0].bytes);
        memmove(&s->blobs[0], &s->blobs[1], (MAX_BLOBS - 1) * sizeof(blob));
        s->nblobs--;
    }
    blob *bl = &s->blobs[s->nblobs++];
    snprintf(bl->sha, sizeof bl->sha, "%s", sha);
    bl->bytes = bytes;
    bl->len = (size_t)st.st_size;
    return bl;
}

static void h_fetch_data(rpc_call *call, void *arg)
{
    sweep_svc *s = arg;
    Canopy__Sweep__FetchDataRequest *req = (Canopy__Sweep__FetchDataRequest *)rpc_call_unpack(
        call, &canopy__sweep__fetch_data_request__descriptor);
    if (req == NULL)
        return;
    if (!valid_sha(req->sha256)) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT, "FetchData: \"%s\" is not a sha256 hex digest",
                      req->sha256);
        canopy__sweep__fetch_data_request__free_unpacked(req, NULL);
        return;
    }
    pthread_mutex_lock(&s->mu);
    const blob *bl = load_blob(s, req->sha256);
    if (bl == NULL) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_fail(call, RPC_NOT_FOUND, "FetchData: no data set %s on the scheduler",
                      req->sha256);
    } else if (req->offset > bl->len) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_fail(call, RPC_OUT_OF_RANGE, "FetchData: offset %" PRIu64 " beyond %zu bytes",
                      req->offset, bl->len);
    } else {
        size_t n = bl->len - req->offset;
        size_t want = req->length ? req->length : FETCH_CHUNK_MAX;
        if (want > FETCH_CHUNK_MAX)
            want = FETCH_CHUNK_MAX;
        if (n > want)
            n = want;
        Canopy__Sweep__FetchDataReply rep = CANOPY__SWEEP__FETCH_DATA_REPLY__INIT;
        rep.total = bl->len;
        rpc_call_reply(call, &rep.base, bl->bytes + req->offset, n);
        pthread_mutex_unlock(&s->mu);
    }
    canopy__sweep__fetch_data_request__free_unpacked(req, NULL);
}

static void h_has_data(rpc_call *call, void *arg)
{
    sweep_svc *s = arg;
    Canopy__Sweep__HasDataRequest *req = (Canopy__Sweep__HasDataRequest *)rpc_call_unpack(
        call, &canopy__sweep__has_data_request__descriptor);
    if (req == NULL)
        return;
    char path[1200];
    Canopy__Sweep__HasDataReply rep = CANOPY__SWEEP__HAS_DATA_REPLY__INIT;
    if (valid_sha(req->sha256)) {
        data_path(s, req->sha256, path, sizeof path);
        rep.present = access(path, R_OK) == 0;
    }
    canopy__sweep__has_data_request__free_unpacked(req, NULL);
    rpc_call_reply(call, &rep.base, NULL, 0);
}

// ------------------------------------------------------------ submit

static cn_err store_data(sweep_svc *s, const char *sha, const void *bytes, size_t n, char *err,
                         size_t errlen)
{
    char path[1200];
    data_path(s, sha, path, sizeof path);
    if (access(path, R_OK) == 0)
        return CN_OK;
    char got[65];
    cn_file_sha256_hex(bytes, n, got);
    if (strcmp(got, sha) != 0)
        return cn_errf(err, errlen, CN_EINVAL,
                       "the data sent hashes to %s, not %s as announced; resend it", got, sha);
    return cn_file_write_atomic(path, bytes, n, err, errlen);
}

// check_data parses the stored data set as workers will, so a wrong label
// column or a broken row is reported before anything runs.
static cn_err check_data(sweep_svc *s, const char *sha, const sweep_spec *spec,
                         const char *data_name, char *err, size_t errlen)
{
    char path[1200];
    data_path(s, sha, path, sizeof path);
    uint8_t *text;
    size_t len;
    cn_err e = cn_file_read_all(path, MAX_DATA_BYTES, &text, &len, err, errlen);
    if (e != CN_OK)
        return e;
    csv_options o = csv_options_default();
    o.label_mode = CSV_LABEL_NAME;
    o.label_name = spec->label;
    o.drop_columns = spec->drop;
    ds_dataset *d = NULL;
    e = ds_parse_csv((const char *)text, len, data_name, &o, &d, err, errlen);
    free(text);
    if (e == CN_OK) {
        size_t *counts = calloc((size_t)d->n_classes, sizeof *counts);
        if (counts) {
            ds_class_counts(d, counts);
            size_t minc = (size_t)-1;
            for (int c = 0; c < d->n_classes; c++)
                if (counts[c] < minc)
                    minc = counts[c];
            if (minc < spec->folds)
                CN_WARN("%s: the smallest class has %zu rows, fewer than %u folds", data_name, minc,
                        spec->folds);
            free(counts);
        }
        if (d->n_rows < spec->folds)
            e = cn_errf(err, errlen, CN_EINVAL, "%s: %zu rows cannot make %u folds", data_name,
                        d->n_rows, spec->folds);
    }
    ds_dataset_free(d);
    return e;
}

static void h_submit(rpc_call *call, void *arg)
{
    sweep_svc *s = arg;
    size_t plen = 0;
    const void *payload = rpc_call_payload(call, &plen);
    Canopy__Sweep__SubmitRequest *req = (Canopy__Sweep__SubmitRequest *)rpc_call_unpack(
        call, &canopy__sweep__submit_request__descriptor);
    if (req == NULL)
        return;
    char err[CN_ERRBUF_LEN];
    sweep_spec *spec = NULL;
    sweep *w = NULL;
    if (sweep_spec_parse(req->spec_json, "sweep", &spec, err, sizeof err) != CN_OK) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT, "%s", err);
        goto out;
    }
    if (!valid_sha(req->data_sha256)) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT, "Submit: data_sha256 is not a sha256 digest");
        goto out;
    }
    if (plen > 0) {
        if (store_data(s, req->data_sha256, payload, plen, err, sizeof err) != CN_OK) {
            rpc_call_fail(call, RPC_INVALID_ARGUMENT, "Submit: %s", err);
            goto out;
        }
    } else {
        char path[1200];
        data_path(s, req->data_sha256, path, sizeof path);
        if (access(path, R_OK) != 0) {
            rpc_call_fail(call, RPC_FAILED_PRECONDITION,
                          "Submit: the scheduler does not hold data set %s; send its bytes",
                          req->data_sha256);
            goto out;
        }
    }
    if (check_data(s, req->data_sha256, spec, req->data_name[0] ? req->data_name : "data", err,
                   sizeof err) != CN_OK) {
        rpc_call_fail(call, RPC_INVALID_ARGUMENT, "%s", err);
        goto out;
    }
    // The id depends only on what defines the results: the spec and the data.
    cn_buf key;
    cn_buf_init(&key);
    cn_buf_printf(&key, "%s\n%s", req->spec_json, req->data_sha256);
    char h[65];
    cn_file_sha256_hex(key.data, key.len, h);
    cn_buf_fini(&key);
    char id[192];
    snprintf(id, sizeof id, "%.160s-%.12s", spec->name, h);
    for (char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            *p = '_';

    pthread_mutex_lock(&s->mu);
    sweep *live = find_sweep(s, id);
    if (live) {
        Canopy__Sweep__SubmitReply rep = CANOPY__SWEEP__SUBMIT_REPLY__INIT;
        if (!req->resume && !live->finished) {
            pthread_mutex_unlock(&s->mu);
            rpc_call_fail(call, RPC_ALREADY_EXISTS,
                          "sweep %s is already running; follow it with --resume", id);
            goto out;
        }
        if (req->resume || !req->fresh) {
            rep.sweep_id = live->id;
            rep.trials = (uint32_t)live->spec->n_trials;
            rep.units = (uint32_t)live->n_units;
            rep.units_done = (uint32_t)live->n_done;
            rpc_call_reply(call, &rep.base, NULL, 0);
            pthread_mutex_unlock(&s->mu);
            goto out;
        }
        // fresh over a finished sweep: drop it from memory; the dir is renamed below.
        sweep **pp = &s->sweeps;
        while (*pp != live)
            pp = &(*pp)->next;
        *pp = live->next;
        sweep_free(live);
    }
    w = calloc(1, sizeof *w);
    if (w == NULL) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "Submit: out of memory");
        goto out;
    }
    w->log_fd = -1;
    snprintf(w->id, sizeof w->id, "%s", id);
    snprintf(w->dir, sizeof w->dir, "%s/sweeps/%s", s->state_dir, id);
    snprintf(w->data_sha, sizeof w->data_sha, "%s", req->data_sha256);
    char logp[1500];
    snprintf(logp, sizeof logp, "%s/results.jsonl", w->dir);
    struct stat st;
    int has_results = stat(logp, &st) == 0 && st.st_size > 0;
    if (has_results && !req->resume && !req->fresh) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_fail(call, RPC_ALREADY_EXISTS,
                      "sweep %s already has results in %s; pass --resume to continue it or "
                      "--fresh to start over",
                      id, w->dir);
        goto out;
    }
    if (has_results && req->fresh) {
        char old[1600];
        snprintf(old, sizeof old, "%s.old-%" PRIu64, w->dir, cn_wall_ms());
        if (rename(w->dir, old) != 0) {
            pthread_mutex_unlock(&s->mu);
            rpc_call_fail(call, RPC_INTERNAL, "Submit: cannot move %s aside: %s", w->dir,
                          strerror(errno));
            goto out;
        }
        CN_INFO("sweep %s: earlier results moved to %s", id, old);
    }
    if (cn_file_mkdirs(w->dir, err, sizeof err) != CN_OK) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_fail(call, RPC_INTERNAL, "Submit: %s", err);
        goto out;
    }
    char specp[1500];
    snprintf(specp, sizeof specp, "%s/spec.json", w->dir);
    cn_file_write_atomic(specp, req->spec_json, strlen(req->spec_json), err, sizeof err);
    w->spec = spec;
    spec = NULL;
    {
        const blob *bl = load_blob(s, w->data_sha);
        w->data_size = bl ? bl->len : 0;
    }
    w->n_units = w->spec->n_trials * w->spec->folds;
    w->units = calloc(w->n_units, sizeof *w->units);
    w->log_fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (w->units == NULL || w->log_fd < 0) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_fail(call, RPC_INTERNAL, "Submit: cannot open %s: %s", logp, strerror(errno));
        goto out;
    }
    if (req->resume)
        replay_log(w);
    for (size_t u = 0; u < w->n_units; u++)
        if (w->units[u].state == U_PENDING)
            queue_push(w, u);
    w->started_ms = cn_now_ms();
    sweep **tail = &s->sweeps;
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;
    CN_INFO("sweep %s: %zu trials x %u folds = %zu units (%zu already done)", w->id,
            w->spec->n_trials, w->spec->folds, w->n_units, w->n_done);
    Canopy__Sweep__SubmitReply rep = CANOPY__SWEEP__SUBMIT_REPLY__INIT;
    rep.sweep_id = w->id;
    rep.trials = (uint32_t)w->spec->n_trials;
    rep.units = (uint32_t)w->n_units;
    rep.units_done = (uint32_t)w->n_done;
    check_finished(s, w);
    w = NULL;
    serve_waiters(s);
    pthread_mutex_unlock(&s->mu);
    rpc_call_reply(call, &rep.base, NULL, 0);
out:
    sweep_free(w);
    sweep_spec_free(spec);
    canopy__sweep__submit_request__free_unpacked(req, NULL);
}

// ------------------------------------------------------------ status

static void h_status(rpc_call *call, void *arg)
{
    sweep_svc *s = arg;
    Canopy__Sweep__StatusRequest *req = (Canopy__Sweep__StatusRequest *)rpc_call_unpack(
        call, &canopy__sweep__status_request__descriptor);
    if (req == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    sweep *w = find_sweep(s, req->sweep_id);
    if (w == NULL) {
        pthread_mutex_unlock(&s->mu);
        rpc_call_fail(call, RPC_NOT_FOUND,
                      "Status: no sweep %s on this scheduler (it may have restarted: resubmit "
                      "with --resume)",
                      req->sweep_id);
        canopy__sweep__status_request__free_unpacked(req, NULL);
        return;
    }
    size_t nt = w->spec->n_trials;
    Canopy__Sweep__TrialSummary *ts = calloc(nt, sizeof *ts);
    Canopy__Sweep__TrialSummary **tp = calloc(nt, sizeof *tp);
    if (ts == NULL || tp == NULL) {
        pthread_mutex_unlock(&s->mu);
        free(ts);
        free(tp);
        rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "Status: out of memory");
        canopy__sweep__status_request__free_unpacked(req, NULL);
        return;
    }
    for (size_t t = 0; t < nt; t++) {
        Canopy__Sweep__TrialSummary init = CANOPY__SWEEP__TRIAL_SUMMARY__INIT;
        trial_stat st;
        trial_stats(w, t, &st);
        ts[t] = init;
        ts[t].trial = (uint32_t)t;
        ts[t].params_json = w->spec->trials[t];
        ts[t].folds_done = st.folds_done;
        ts[t].mean_accuracy = st.mean;
        ts[t].std_accuracy = st.std;
        ts[t].mean_balanced_accuracy = st.bacc;
        ts[t].mean_macro_f1 = st.f1;
        ts[t].seconds = st.seconds;
        ts[t].failed = st.failed;
        ts[t].error = (char *)(st.error ? st.error : "");
        tp[t] = &ts[t];
    }
    Canopy__Sweep__StatusReply rep = CANOPY__SWEEP__STATUS_REPLY__INIT;
    rep.sweep_id = w->id;
    rep.state = (char *)(w->finished ? (w->n_failed ? "failed" : "done") : "running");
    rep.units = (uint32_t)w->n_units;
    rep.units_done = (uint32_t)w->n_done;
    rep.units_running = (uint32_t)w->n_running;
    rep.units_failed = (uint32_t)w->n_failed;
    uint64_t end = w->finished ? w->finished_ms : cn_now_ms();
    rep.elapsed_seconds = (double)(end - w->started_ms) / 1000.0;
    size_t fresh = w->n_done - w->n_replayed;
    rep.eta_seconds = w->finished ? 0
                      : fresh     ? rep.elapsed_seconds / (double)fresh *
                                    (double)(w->n_units - w->n_done - w->n_failed)
                              : -1;
    rep.n_trials = nt;
    rep.trials = tp;
    rep.workers = (uint32_t)sched_members_count(s->members, CLUSTER_ROLE_WORKER);
    rep.dispatch_overhead_ms = w->overhead_n ? w->overhead_ms_sum / (double)w->overhead_n : 0;
    rep.results_dir = w->dir;
    rpc_call_reply(call, &rep.base, NULL, 0);
    pthread_mutex_unlock(&s->mu);
    free(tp);
    free(ts);
    canopy__sweep__status_request__free_unpacked(req, NULL);
}

// ------------------------------------------------------------ liveness

static void on_dead(uint64_t node, int role, uint32_t rank, void *arg)
{
    (void)rank;
    sweep_svc *s = arg;
    if (role != CLUSTER_ROLE_WORKER)
        return;
    pthread_mutex_lock(&s->mu);
    for (sweep *w = s->sweeps; w; w = w->next)
        for (size_t u = 0; u < w->n_units; u++)
            if (w->units[u].state == U_RUNNING && w->units[u].node == node)
                requeue_unit(s, w, u, "its worker stopped heartbeating");
    serve_waiters(s);
    pthread_mutex_unlock(&s->mu);
}

static void *ticker_main(void *arg)
{
    sweep_svc *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        if (s->stopping)
            break;
        uint64_t now = cn_now_ms();
        for (size_t i = 0; i < s->nw;) {
            if (s->waiters[i].deadline_ms <= now) {
                rpc_call *c = s->waiters[i].call;
                s->waiters[i] = s->waiters[--s->nw];
                reply_no_work(c, 0);
            } else {
                i++;
            }
        }
        int requeued = 0;
        for (sweep *w = s->sweeps; w; w = w->next)
            for (size_t u = 0; u < w->n_units; u++) {
                unit *x = &w->units[u];
                if (x->state == U_RUNNING &&
                    now - x->started_ms > (uint64_t)w->spec->unit_timeout_s * 1000) {
                    requeue_unit(s, w, u, "it ran past the unit timeout");
                    requeued = 1;
                }
            }
        if (requeued)
            serve_waiters(s);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

// ------------------------------------------------------------ lifecycle

cn_err sweep_svc_new(sweep_svc **out, rpc_server *server, sched_members *members,
                     const char *state_dir, char *err, size_t errlen)
{
    *out = NULL;
    sweep_svc *s = calloc(1, sizeof *s);
    if (s == NULL)
        return cn_errf(err, errlen, CN_ENOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->members = members;
    snprintf(s->state_dir, sizeof s->state_dir, "%s", state_dir);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/data", state_dir);
    cn_err e = cn_file_mkdirs(dir, err, errlen);
    if (e == CN_OK) {
        snprintf(dir, sizeof dir, "%s/sweeps", state_dir);
        e = cn_file_mkdirs(dir, err, errlen);
    }
    if (e != CN_OK) {
        free(s);
        return e;
    }
    struct {
        const char *m;
        rpc_handler_fn fn;
    } hs[] = {{"Submit", h_submit},        {"HasData", h_has_data}, {"GetWork", h_get_work},
              {"FetchData", h_fetch_data}, {"Report", h_report},    {"Status", h_status}};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if ((e = rpc_server_register(server, "Sweep", hs[i].m, hs[i].fn, s,
                                     strcmp(hs[i].m, "Report") == 0 ? RPC_MUTATING : 0)) != CN_OK) {
            free(s);
            return cn_errf(err, errlen, e, "cannot register Sweep/%s", hs[i].m);
        }
    if (pthread_create(&s->ticker, NULL, ticker_main, s) != 0) {
        free(s);
        return cn_errf(err, errlen, CN_ENOMEM, "cannot start the sweep ticker");
    }
    sched_members_on_dead(members, on_dead, s);
    *out = s;
    return CN_OK;
}

void sweep_svc_stop(sweep_svc *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    int first = !s->stopping;
    s->stopping = 1;
    pthread_cond_signal(&s->cv);
    for (size_t i = 0; i < s->nw; i++)
        reply_no_work(s->waiters[i].call, 1);
    s->nw = 0;
    pthread_mutex_unlock(&s->mu);
    if (first)
        pthread_join(s->ticker, NULL);
}

void sweep_svc_free(sweep_svc *s)
{
    if (s == NULL)
        return;
    sweep_svc_stop(s);
    for (sweep *w = s->sweeps, *next; w; w = next) {
        next = w->next;
        sweep_free(w);
    }
    for (int i = 0; i < s->nblobs; i++)
        free(s->blobs[i].bytes);
    free(s->waiters);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
